"""scripts/compare_methods.py end to end at a tiny size: its tables hold every method, budget and
scan, and its numbers are the ones ``mrirecon eval`` and the checkpoints give."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from cli_helpers import run_cli
from conftest import REAL_DATA
from mrirecon.train.checkpoint import load_checkpoint

REPO = Path(__file__).resolve().parents[1]
BUDGETS = (0.01, 0.02)  # CPU minutes: two sessions of one run, the second resumed from the first


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> dict:
    work = tmp_path_factory.mktemp("compare_methods")
    command = [sys.executable, str(REPO / "scripts" / "compare_methods.py"), "--budgets", *map(str, BUDGETS),
               "--accels", "8", "--train-volumes", "1", "--test-volumes", "1", "--slices", "2",
               "--real", "brain_t2_4coil", "--real-dir", str(REAL_DATA), "--work", str(work / "work"),
               "--json", str(work / "results.json")]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run(command, capture_output=True, text=True, cwd=REPO, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return {"work": work / "work", "stdout": done.stdout, "results": json.loads((work / "results.json").read_text())}


def _table(stdout: str, header_start: str) -> list[list[str]]:
    lines = stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(header_start))
    rows = []
    for line in lines[start:]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip("|").split("|")])
    return rows


def test_tables_hold_every_method_budget_and_scan(run: dict) -> None:
    overview = _table(run["stdout"], "| method | CPU min | steps |")
    assert overview[0] == ["method", "CPU min", "steps", "accel", "sample SSIM", "sample PSNR", "recon CPU s/volume",
                           "real brain SSIM", "real brain PSNR"]
    budgets = [f"{b:g}" for b in BUDGETS]
    expected = [("zero-filled", "-"), ("CS (TV)", "-")] + [(m, b) for m in ("unet", "varnet") for b in budgets]
    assert [(r[0], r[1]) for r in overview[2:]] == expected
    assert all(r[3] == "8x" for r in overview[2:])
    per_scan = _table(run["stdout"], "| method | CPU min | accel | brain_t2_4coil |")
    assert [(r[0], r[1]) for r in per_scan[2:]] == expected
    for row in overview[2:]:
        assert 0 < float(row[4]) < 1 and 0 < float(row[7]) < 1 and float(row[6]) > 0
    for row, scan_row in zip(overview[2:], per_scan[2:]):
        assert scan_row[3] == row[7]  # one real brain: its column is the overview's


def test_numbers_are_evals_and_checkpoints(run: dict) -> None:
    work, rows = run["work"], run["results"]["rows"]
    zf = next(r for r in rows if r["method"] == "zero-filled")
    for name, scores in (("test", zf["test_volumes"]), ("real", zf["real_volumes"])):
        result = run_cli("eval", "--target", work / name, "--pred", work / "recon" / f"{name}_8x" / "zf",
                         "--json", work / f"eval_{name}.json", "--quiet")
        assert result.exit_code == 0, result.stderr
        volumes = json.loads((work / f"eval_{name}.json").read_text())["volumes"]
        assert volumes.keys() == scores.keys()
        for volume, value in volumes.items():
            assert scores[volume]["ssim"] == pytest.approx(value["ssim"], abs=1e-12)
            assert scores[volume]["psnr"] == pytest.approx(value["psnr"], abs=1e-9)
    for model in ("unet", "varnet"):
        learned = [r for r in rows if r["method"] == model]
        steps = [r["steps"] for r in learned]
        assert 0 < steps[0] < steps[1]  # the second budget resumed the first run and went on
        for row in learned:
            [checkpoint] = work.glob(f"ckpt_{model}_8x_*_{row['cpu_minutes']}min.pt")
            state = load_checkpoint(checkpoint)
            assert state["step"] == row["steps"] and state["model_kind"] == model
            assert state["config"]["max_cpu_minutes"] is not None and state["config"]["schedule"] == "none"
            assert state["config"]["center_fraction"] == 0.04 and state["config"]["accel"] == 8
    assert next(r for r in rows if r["method"] == "CS (TV)")["test_volumes"] != zf["test_volumes"]
