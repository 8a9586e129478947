"""Kills at random points of a write: SIGKILL, SIGTERM and SIGINT sent to ``python -m mrirecon
subsample`` while it writes (the moment a temporary output appears, plus a seeded random delay).

Always: the inputs are unchanged and every output present is whole (no half-written file under
an output name). SIGINT and SIGTERM: exit 130 and 143, no temporary file left (also when Python
swallows the signal's exception in a cleanup callback: the campaign's "Ctrl-C swallowed, exit 0").
After SIGKILL a rerun with ``--overwrite`` completes the batch and sweeps the temporary file left.
"""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

from cli_helpers import run_cli
from faults.fault_helpers import REPO, cli_env, leftovers, tree_hashes, write_small_volume

SIGNALS = {"SIGKILL": signal.SIGKILL, "SIGTERM": signal.SIGTERM, "SIGINT": signal.SIGINT}


def _whole(path: Path, expected_shape: tuple[int, ...]) -> bool:
    with h5py.File(path, "r") as handle:
        kspace = handle["kspace"][()]
        return kspace.shape == expected_shape and "mask" in handle and np.isfinite(kspace.view(np.float32)).all()


@pytest.fixture(scope="module")
def killed(tmp_path_factory) -> dict:
    """Start one subsample per signal at once (one process start-up for all), kill each mid-write."""
    root = tmp_path_factory.mktemp("kills")
    shape = (16, 8, 128, 96)
    for i in range(2):
        write_small_volume(root / "in" / f"v{i}.h5", slices=shape[0], coils=shape[1], shape=shape[2:], seed=i)
    before = tree_hashes(root / "in")
    rng = random.Random(7)
    procs = {}
    for name in SIGNALS:
        out = root / f"out_{name}"
        procs[name] = (out, subprocess.Popen(
            [sys.executable, "-m", "mrirecon", "subsample", str(root / "in"), "-o", str(out), "--accel", "4", "--quiet"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=cli_env(), cwd=REPO,
        ))
    pending = dict(procs)
    delays = {name: rng.uniform(0.0, 0.05) for name in SIGNALS}
    deadline = time.monotonic() + 240
    sent: dict[str, bool] = {}
    while pending and time.monotonic() < deadline:
        for name, (out, proc) in list(pending.items()):
            if proc.poll() is not None:
                sent[name] = False  # finished before a write was seen: the case did not happen
                del pending[name]
            elif out.exists() and leftovers(out):
                time.sleep(delays[name])
                proc.send_signal(SIGNALS[name])
                sent[name] = True
                del pending[name]
        time.sleep(0.01)
    results = {}
    for name, (out, proc) in procs.items():
        try:
            _, stderr = proc.communicate(timeout=120)
        except subprocess.TimeoutExpired:
            proc.kill()
            _, stderr = proc.communicate()
        results[name] = {"out": out, "code": proc.returncode, "stderr": stderr, "sent": sent.get(name, False)}
    return {"root": root, "before": before, "shape": shape, "results": results}


@pytest.mark.parametrize("name", list(SIGNALS))
def test_kill_mid_write_leaves_inputs_and_whole_outputs(killed, name: str) -> None:
    result = killed["results"][name]
    assert result["sent"], f"{name}: the write finished before the signal could be sent"
    assert tree_hashes(killed["root"] / "in") == killed["before"]
    for path in sorted(result["out"].glob("*.h5")):
        assert _whole(path, killed["shape"]), f"{path} is not a whole output"
    assert "Traceback" not in result["stderr"], result["stderr"]


def test_sigint_is_exit_130_and_leaves_no_temporary(killed) -> None:
    result = killed["results"]["SIGINT"]
    assert result["code"] == 128 + signal.SIGINT, result
    assert leftovers(result["out"]) == []


def test_sigterm_is_exit_143_and_leaves_no_temporary(killed) -> None:
    result = killed["results"]["SIGTERM"]
    assert result["code"] == 128 + signal.SIGTERM, result
    assert leftovers(result["out"]) == []


def test_rerun_after_sigkill_completes_the_batch(killed) -> None:
    result = killed["results"]["SIGKILL"]
    assert result["code"] == -signal.SIGKILL
    rerun = run_cli("subsample", killed["root"] / "in", "-o", result["out"], "--accel", "4", "--overwrite", "--quiet")
    assert rerun.exit_code == 0, rerun.stderr
    outputs = sorted(result["out"].glob("*.h5"))
    assert [p.name for p in outputs] == ["v0.h5", "v1.h5"]
    assert all(_whole(p, killed["shape"]) for p in outputs)
    assert leftovers(result["out"]) == []  # the batch layer sweeps what the killed run left
