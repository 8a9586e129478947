"""What every command's process start does: OpenMP's wait policy set before torch loads (a user's
choice kept), glibc's malloc told to keep freed memory (a user's tuning kept), and fastMRI's mask
module loaded without fastMRI's dataset imports (pandas)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from fastmri.data.subsample import create_mask_for_mask_type

from mrirecon import allocator, openmp
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


def test_train_gets_a_short_spin_instead_of_passive_wait(monkeypatch) -> None:
    for name in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT"):
        monkeypatch.delenv(name, raising=False)
    assert openmp.prefer_passive_wait(["mrirecon", "--quiet", "train", "--config", "x.yaml"]) is None
    assert os.environ["GOMP_SPINCOUNT"] == openmp.SPIN_COUNT and "OMP_WAIT_POLICY" not in os.environ
    monkeypatch.delenv("GOMP_SPINCOUNT")
    assert openmp.prefer_passive_wait(["mrirecon", "cs-recon", "train"]) == "PASSIVE"  # a folder named train
    assert "GOMP_SPINCOUNT" not in os.environ


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


#: Page faults of allocating and freeing a 64 MB tensor twelve times, after ``keep_freed_memory`` or not.
FAULTS_PROBE = """
import resource, sys, torch
from mrirecon import allocator
print(allocator.keep_freed_memory())
counts = []
for _ in range(12):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    block = torch.ones(16 * 2**20)  # 64 MB, touched
    del block
    counts.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
print(counts[0], max(counts[-3:]))
"""


@pytest.mark.parametrize("keep", ["1", "0"])
def test_freed_memory_is_reused_without_new_page_faults(keep: str) -> None:
    """With the CLI's malloc settings freed large blocks are reused (no new page faults once the
    heap holds a few: torch's aligned allocations leave holes the first few cannot reuse); with
    glibc's defaults (``MRIRECON_KEEP_FREED_MEMORY=0``) every allocation faults in all its pages."""
    clean = {k: v for k, v in os.environ.items() if k != "GLIBC_TUNABLES" and not k.startswith("MALLOC_")}
    env = {**clean, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", allocator.ENV_SWITCH: keep}
    result = subprocess.run([sys.executable, "-c", FAULTS_PROBE], env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    applied, counts = result.stdout.split("\n", 1)
    first, later = map(int, counts.split())
    pages = 64 * 2**20 // 4096
    assert first > 0.9 * pages  # the first allocation always faults its pages in
    if keep == "1":
        assert applied == "True" and later < 0.05 * pages
    else:
        assert applied == "False" and later > 0.9 * pages


def test_a_users_malloc_tuning_or_opt_out_is_kept() -> None:
    assert not allocator.user_tunes_malloc({})
    assert allocator.user_tunes_malloc({"GLIBC_TUNABLES": "glibc.malloc.trim_threshold=0"})
    assert allocator.user_tunes_malloc({"MALLOC_ARENA_MAX": "2"}) is False  # not a MALLOC_*_ variable
    assert allocator.user_tunes_malloc({"MALLOC_MMAP_THRESHOLD_": "65536"})
    assert allocator.user_tunes_malloc({allocator.ENV_SWITCH: "0"})
    assert not allocator.user_tunes_malloc({allocator.ENV_SWITCH: "1", "GLIBC_TUNABLES": "glibc.cpu.x86_rep_movsb_threshold=1"})
