"""The promises every command keeps (README "Commands"), checked over every command at once:
files or folders, a missing input is exit 2 naming it, existing outputs are refused without
``--overwrite`` (untouched) and replaced with it, ``--json -`` is the summary on stdout, a summary
line ends stderr, ``--debug`` shows the traceback of a per-file error. Also: version, help order,
resume of a complete run, DataLoader workers."""

from __future__ import annotations

import json
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

import mrirecon
from cli_helpers import run_cli
from conftest import write_test_volume
from mrirecon.cli import app
from mrirecon.train import workers as workers_module
from mrirecon.train.workers import loader_workers


def test_version() -> None:
    result = run_cli("--version")
    assert result.exit_code == 0 and result.stdout.strip() == f"mrirecon {mrirecon.__version__}"


def test_help_lists_commands_in_pipeline_order() -> None:
    text = run_cli("--help").stdout
    panels = [m.group(1) for m in re.finditer(r"─ (\w+) ─", text)]
    assert panels[panels.index("Data"):] == ["Data", "Reconstruct", "Train", "Score"]
    listed = re.findall(r"^│ ([a-z][a-z-]+) ", text, flags=re.M)
    expected = ["sample-data", "convert", "subsample", "export", "zf-recon", "cs-recon", "unet-recon", "status", "train",
                "eval", "compare"]
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
def finished_run(world) -> Path:
    """A complete 1-epoch run of a tiny U-Net (the contract's own)."""
    return world.checkpoint.parent


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


# --- one contract over every command -------------------------------------------------------


@dataclass
class World:
    """Small inputs for every command, made once."""

    full: Path  # two fully sampled multi-coil volumes, a.h5 and b.h5
    sub: Path  # the same, 4x undersampled
    zf: Path  # zero-filled reconstructions of sub
    npy: Path  # a complex k-space array for convert
    checkpoint: Path  # a tiny trained U-Net
    root: Path


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> World:
    root = tmp_path_factory.mktemp("contract")
    for i, name in enumerate(("a.h5", "b.h5")):
        write_test_volume(root / "full" / name, slices=2, coils=3, shape=(32, 24), recon=(16, 16), seed=i)
    for args in (("subsample", root / "full", "-o", root / "sub", "--seed", 0, "--center-fraction", 0.25),
                 ("zf-recon", root / "sub", "-o", root / "zf"),
                 ("train", "--train", root / "full", "--val", root / "full", "-o", root / "run", "--epochs", 1,
                  "--chans", 4, "--pools", 2, "--groups", 2, "--device", "cpu")):
        result = run_cli(*args, "--quiet")
        assert result.exit_code == 0, result.stderr
    rng = np.random.default_rng(0)
    kspace = (rng.standard_normal((2, 3, 32, 24)) + 1j * rng.standard_normal((2, 3, 32, 24))).astype(np.complex64)
    np.save(root / "scan.npy", kspace)
    return World(root / "full", root / "sub", root / "zf", root / "scan.npy", root / "run" / "best.pt", root)


@dataclass
class Command:
    """How to call one command: ``argv(world, input, out)``, the file it writes under ``out``, a
    working input (folder) and a single-file input, and ``None`` where a check does not apply."""

    name: str
    argv: Callable[[World, Path, Path], list]
    output: Callable[[Path], Path]
    folder_input: Callable[[World], Path] | None
    file_input: Callable[[World], Path] | None = None
    writes_json: bool = False  # the output is the --json file itself


COMMANDS = [
    Command("sample-data", lambda w, i, o: ["sample-data", o, "--volumes", 1, "--slices", 2, "--coils", 2],
            lambda o: o / "sample_multicoil_0_000.h5", None),
    Command("convert", lambda w, i, o: ["convert", i, "-o", o / "scan.h5"], lambda o: o / "scan.h5",
            None, lambda w: w.npy),
    Command("subsample", lambda w, i, o: ["subsample", i, "-o", o, "--accel", 4], lambda o: o / "a.h5",
            lambda w: w.full, lambda w: w.full / "a.h5"),
    Command("zf-recon", lambda w, i, o: ["zf-recon", i, "-o", o], lambda o: o / "a.h5",
            lambda w: w.sub, lambda w: w.sub / "a.h5"),
    Command("cs-recon", lambda w, i, o: ["cs-recon", i, "-o", o, "--iters", 2, "--sens", "acs"], lambda o: o / "a.h5",
            lambda w: w.sub, lambda w: w.sub / "a.h5"),
    Command("unet-recon", lambda w, i, o: ["unet-recon", i, "--checkpoint", w.checkpoint, "-o", o],
            lambda o: o / "a.h5", lambda w: w.sub, lambda w: w.sub / "a.h5"),
    Command("train", lambda w, i, o: ["train", "--train", i, "--val", w.full, "-o", o, "--epochs", 1, "--chans", 4,
                                      "--pools", 2, "--groups", 2, "--device", "cpu"],
            lambda o: o / "last.pt", lambda w: w.full),
    Command("eval", lambda w, i, o: ["eval", "--target", w.full, "--pred", i, "--json", o / "m.json"],
            lambda o: o / "m.json", lambda w: w.zf, lambda w: w.zf / "a.h5", writes_json=True),
    Command("compare", lambda w, i, o: ["compare", "--target", w.full, "--pred", f"zf={i}", "--png", o / "fig.png"],
            lambda o: o / "fig.png", lambda w: w.zf, lambda w: w.zf / "a.h5"),
    Command("export", lambda w, i, o: ["export", i, "--format", "nifti", "-o", o], lambda o: o / "a.nii.gz",
            lambda w: w.zf, lambda w: w.zf / "a.h5"),
]
WITH_INPUT = [c for c in COMMANDS if c.folder_input or c.file_input]
#: Commands that write one output file per input and go on past a failed one.
BATCHES = {"subsample", "zf-recon", "cs-recon", "unet-recon", "export"}
PER_FILE = [c for c in COMMANDS if c.file_input and c.folder_input]


def invoke(*args: object):
    """The CLI in-process; an exception escaping the command is the test's failure, not a crash."""
    return CliRunner().invoke(app, [str(a) for a in args], catch_exceptions=True)


def _input(command: Command, world: World) -> Path:
    return (command.folder_input or command.file_input)(world)


def test_every_command_is_covered() -> None:
    registered = {c.name for c in app.registered_commands}
    assert {c.name for c in COMMANDS} == registered - {"status"}


@pytest.mark.parametrize("command", WITH_INPUT, ids=lambda c: c.name)
def test_a_missing_input_is_exit_2_naming_it(command: Command, world: World, tmp_path: Path) -> None:
    missing = tmp_path / "no_such_folder"
    result = invoke(*command.argv(world, missing, tmp_path / "out"))
    assert result.exit_code == 2, result.stderr
    assert str(missing) in result.stderr and "does not exist" in result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not command.output(tmp_path / "out").exists()


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: c.name)
def test_existing_output_is_refused_then_replaced_with_overwrite(command: Command, world: World,
                                                                  tmp_path: Path) -> None:
    out = tmp_path / "out"
    target = command.output(out)
    target.parent.mkdir(parents=True)
    target.write_bytes(b"precious")
    argv = command.argv(world, _input(command, world) if command in WITH_INPUT else None, out)
    refused = invoke(*argv, "--quiet")
    # a batch refuses that file (1: some files failed); a single output (a --json, --png, run) is bad input
    assert refused.exit_code == (1 if command.name in BATCHES else 2), refused.stderr
    assert "--overwrite" in refused.stderr and "Traceback" not in refused.stderr
    assert target.read_bytes() == b"precious"

    replaced = invoke(*argv, "--overwrite", *([] if command.writes_json else ["--json", "-"]))
    assert replaced.exit_code == 0, replaced.stderr
    assert target.read_bytes() != b"precious"
    summary = target.read_text() if command.writes_json else replaced.stdout  # --json -: the summary alone
    assert isinstance(json.loads(summary), dict)
    last = replaced.stderr.strip().splitlines()[-1]
    assert last.startswith(f"{command.name}: "), last  # the summary line
    leftovers = [p.name for p in target.parent.iterdir() if (p.name.startswith(".") and p.name != ".mrirecon") or p.suffix == ".tmp"]
    assert not leftovers  # (.mrirecon holds the batch manifest)


@pytest.mark.parametrize("command", [c for c in COMMANDS if c.file_input], ids=lambda c: c.name)
def test_a_single_file_is_an_input(command: Command, world: World, tmp_path: Path) -> None:
    result = invoke(*command.argv(world, command.file_input(world), tmp_path / "out"), "--quiet")
    assert result.exit_code == 0, result.stderr
    assert command.output(tmp_path / "out").exists()


@pytest.mark.parametrize("command", PER_FILE, ids=lambda c: c.name)
def test_debug_shows_the_traceback_of_a_per_file_error(command: Command, world: World, tmp_path: Path) -> None:
    folder = tmp_path / "in"
    shutil.copytree(command.folder_input(world), folder)
    (folder / "b.h5").write_bytes(b"not an HDF5 file")
    argv = command.argv(world, folder, tmp_path / "out")
    plain = invoke(*argv, "--quiet")
    assert plain.exit_code == 1 and "b.h5" in plain.stderr and "Traceback" not in plain.stderr
    debug = invoke(*argv, "--quiet", "--overwrite", "--debug")
    assert debug.exit_code == 1 and "b.h5" in debug.stderr and "Traceback" in debug.stderr


@pytest.mark.parametrize("command", WITH_INPUT, ids=lambda c: c.name)
def test_debug_shows_the_traceback_and_keeps_the_exit_code(command: Command, world: World, tmp_path: Path) -> None:
    missing = tmp_path / "no_such_folder"
    result = invoke(*command.argv(world, missing, tmp_path / "out"), "--debug")
    assert result.exit_code == 2 and "Traceback" in result.stderr
    assert result.stderr.strip().splitlines()[-1].endswith("does not exist")


@pytest.mark.parametrize("command", [c for c in PER_FILE if c.output(Path("o")).name == "a.h5"], ids=lambda c: c.name)
def test_an_input_is_never_an_output(command: Command, world: World, tmp_path: Path) -> None:
    folder = tmp_path / "in"
    shutil.copytree(command.folder_input(world), folder)
    before = (folder / "a.h5").read_bytes()
    result = invoke(*command.argv(world, folder, folder), "--overwrite", "--quiet")
    assert result.exit_code == 2 and "both an input and an output" in result.stderr
    assert (folder / "a.h5").read_bytes() == before


def test_status_names_a_missing_folder_and_prints_json(world: World, tmp_path: Path) -> None:
    # status reads a batch's manifest and writes nothing: no --overwrite, and --json is a flag (stdout)
    missing = invoke("status", tmp_path / "no_such_folder")
    assert missing.exit_code == 2 and "does not exist" in missing.stderr and "Traceback" not in missing.stderr
    report = invoke("status", world.zf, "--inputs", world.sub, "--json")
    assert report.exit_code == 0, report.stderr
    assert json.loads(report.stdout)["done"] == 2
