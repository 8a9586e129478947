"""How much of a scan's k-space energy lies at high phase-encode frequencies (fine detail)."""

from __future__ import annotations

import numpy as np


def outer_energy_fraction(kspace: np.ndarray, padding: tuple[int, int] | None = None) -> float:
    """The fraction of k-space energy in the outer half of the sampled phase-encode range.

    ``kspace``: centred k-space (..., H, W), phase encode on the last axis; ``padding``: the
    sampled columns ``[left, right)`` (the header's ``encodingLimits``), so zero-padded columns
    count neither in the range nor in the energy. The outer half is the quarter of the sampled
    columns furthest from the centre on each side. Piecewise-smooth cartoons hold well under 1%
    there; real knee and brain scans 1-3%.
    """
    width = kspace.shape[-1]
    left, right = padding if padding is not None else (0, width)
    energy = np.square(np.abs(kspace)).reshape(-1, width).sum(axis=0, dtype=np.float64)[left:right]
    count = right - left
    offset = np.abs(np.arange(count) - 0.5 * (count - 1))
    return float(energy[offset >= 0.25 * count].sum() / energy.sum())
