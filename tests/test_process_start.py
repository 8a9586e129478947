"""What every command's process start does: OpenMP's wait policy set before torch loads (a user's
choice kept), and fastMRI's mask module loaded without fastMRI's dataset imports (pandas)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from fastmri.data.subsample import create_mask_for_mask_type

from mrirecon import openmp
from mrirecon.mri import masks

ROOT = Path(__file__).resolve().parents[1]

#: Fails if torch starts loading before ``mrirecon.openmp`` ran, then prints the policy in force.
PROBE = """
import sys
class Spy:
    def find_spec(self, name, path=None, target=None):
        if name == "torch" and "mrirecon.openmp" not in sys.modules:
            raise SystemExit("torch was imported before mrirecon.openmp")
        return None
sys.meta_path.insert(0, Spy())
import mrirecon.cli, os, torch
from mrirecon.mri.masks import column_mask
column_mask("random", 368, 4, 0.08, seed=(1, 2))
print(os.environ.get("OMP_WAIT_POLICY"), "pandas" in sys.modules)
"""


def _probe(**env: str) -> str:
    clean = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    result = subprocess.run([sys.executable, "-c", PROBE], env={**clean, "PYTHONPATH": str(ROOT), **env},
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_cli_sets_passive_wait_before_torch_loads_and_skips_pandas() -> None:
    assert _probe() == "PASSIVE False"


def test_a_users_policy_or_spin_count_is_kept(monkeypatch) -> None:
    monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")
    assert openmp.prefer_passive_wait() == "ACTIVE"
    monkeypatch.delenv("OMP_WAIT_POLICY")
    monkeypatch.setenv("GOMP_SPINCOUNT", "300000")
    assert openmp.prefer_passive_wait() is None
    assert "OMP_WAIT_POLICY" not in os.environ


@pytest.mark.parametrize("mask_type", masks.COLUMN_MASK_TYPES)
def test_standalone_fastmri_mask_module_draws_fastmris_masks(mask_type: str, monkeypatch) -> None:
    monkeypatch.delitem(sys.modules, "fastmri.data.subsample")
    assert masks.fastmri_subsample() is masks._standalone_subsample()
    seed = masks.volume_seed("file1000031.h5")
    ours, num_low = masks.column_mask(mask_type, 372, 4, 0.08, seed=seed)
    ref, ref_low = create_mask_for_mask_type(mask_type, [0.08], [4])((1, 372, 1), seed=seed)
    np.testing.assert_array_equal(ours, ref.numpy().reshape(-1).astype(bool))
    assert num_low == ref_low
