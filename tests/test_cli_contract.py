"""The promises every command keeps (README "Commands"): version, help order, resume, workers."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
import torch

import mrirecon
from cli_helpers import run_cli
from conftest import write_test_volume
from mrirecon.train import workers as workers_module
from mrirecon.train.workers import loader_workers


def test_version() -> None:
    result = run_cli("--version")
    assert result.exit_code == 0 and result.stdout.strip() == f"mrirecon {mrirecon.__version__}"


def test_help_lists_commands_in_pipeline_order() -> None:
    text = run_cli("--help").stdout
    panels = [m.group(1) for m in re.finditer(r"─ (\w+) ─", text)]
    assert panels[-4:] == ["Data", "Reconstruct", "Train", "Score"]
    listed = re.findall(r"^│ ([a-z][a-z-]+) ", text, flags=re.M)
    expected = ["sample-data", "convert", "subsample", "zf-recon", "cs-recon", "unet-recon", "train", "eval", "compare"]
    assert [name for name in listed if name in expected] == expected


@pytest.mark.parametrize("cpus, requested, per_node, expected", [(2, 8, 1, 2), (2, 0, 1, 0), (16, 8, 1, 8), (16, 8, 4, 4)])
def test_loader_workers_are_capped_by_the_cpus(monkeypatch, cpus, requested, per_node, expected) -> None:
    monkeypatch.setattr(workers_module, "usable_cpus", lambda: cpus)
    workers, warning = loader_workers(requested, per_node)
    assert workers == expected
    assert (warning is not None) == (expected < requested)
    if warning:
        assert f"{requested} requested" in warning


def test_usable_cpus_is_the_affinity_mask() -> None:
    assert workers_module.usable_cpus() == len(os.sched_getaffinity(0))


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> Path:
    """A complete 1-epoch run of a tiny U-Net on tiny single-coil volumes."""
    root = tmp_path_factory.mktemp("run")
    write_test_volume(root / "train" / "t0.h5", slices=2, coils=None, shape=(32, 24), recon=(16, 16), seed=1)
    write_test_volume(root / "val" / "v0.h5", slices=1, coils=None, shape=(32, 24), recon=(16, 16), seed=2)
    result = run_cli("train", "--train", root / "train", "--val", root / "val", "-o", root / "run", "--epochs", 1,
                     "--chans", 4, "--pools", 2, "--groups", 2, "--batch-size", 2, "--device", "cpu", "--quiet")
    assert result.exit_code == 0, result.stderr
    return root / "run"


def _snapshot(run_dir: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(run_dir.iterdir())}


def test_resuming_a_complete_run_says_so_and_changes_nothing(finished_run: Path) -> None:
    before = _snapshot(finished_run)
    result = run_cli("train", "-o", finished_run, "--resume")
    assert result.exit_code == 0, result.stderr
    assert "complete" in result.stderr and "--epochs" in result.stderr
    assert _snapshot(finished_run) == before  # config.yaml, checkpoints, metrics, curves untouched


def test_resuming_with_more_epochs_continues(finished_run: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    for name, data in _snapshot(finished_run).items():
        (run_dir / name).write_bytes(data)
    result = run_cli("train", "-o", run_dir, "--resume", "--epochs", 2, "--quiet")
    assert result.exit_code == 0, result.stderr
    state = torch.load(run_dir / "last.pt", weights_only=True)
    assert state["epoch"] == 2 and len(state["history"]) == 2
    assert "epochs: 2" in (run_dir / "config.yaml").read_text()
