"""Tissue signal levels of the two fastMRI knee protocols, jittered per volume."""

from __future__ import annotations

import numpy as np

#: fastMRI's knee acquisitions: proton density, without and with fat suppression.
ACQUISITIONS = ("CORPD_FBK", "CORPDFS_FBK")

#: Relative signal (fat = 1 in proton density). Fat suppression darkens fat and fatty marrow,
#: so fluid and cartilage become the brightest tissues.
_LEVELS = {
    "CORPD_FBK": {
        "fat": 1.0,
        "marrow": 0.86,
        "muscle": 0.40,
        "cartilage": 0.62,
        "fluid": 0.70,
        "cortex": 0.04,
        "fibrous": 0.07,
        "skin": 0.55,
        "flow_void": 0.06,
        "blood": 0.80,
    },
    "CORPDFS_FBK": {
        "fat": 0.16,
        "marrow": 0.20,
        "muscle": 0.46,
        "cartilage": 0.72,
        "fluid": 1.0,
        "cortex": 0.03,
        "fibrous": 0.06,
        "skin": 0.40,
        "flow_void": 0.05,
        "blood": 0.90,
    },
}


def tissue_levels(acquisition: str, rng: np.random.Generator, jitter: float = 0.12) -> dict[str, float]:
    """The signal of each tissue for ``acquisition``, each scaled by an independent log-normal
    factor of relative spread ``jitter`` (contrast varies between volumes, as between scanners)."""
    base = _LEVELS[acquisition]
    return {name: float(level * np.exp(rng.normal(0.0, jitter))) for name, level in base.items()}
