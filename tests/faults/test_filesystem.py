"""The file system fights back: full disks, read-only mounts, symlinks, inputs given as outputs.
Whatever happens: one sentence, an exit code in {1, 2}, inputs unchanged, no partial output."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import pytest

from cli_helpers import run_cli
from faults.fault_helpers import leftovers, tree_hashes, write_small_volume

#: The batch layer (input dedupe, output==input refusal, clean stops) is issue 8's.


def _volumes(folder: Path, n: int = 2, **kwargs) -> list[Path]:
    return [write_small_volume(folder / f"v{i}.h5", seed=i, **kwargs) for i in range(n)]


def test_recon_onto_a_full_disk_is_one_sentence_and_leaves_nothing(tmp_path: Path, tmpfs) -> None:
    _volumes(tmp_path / "in", 1, shape=(128, 96), slices=8)  # 8 x 64 x 64 floats: 128 kB > 64 kB
    disk = tmpfs("64k")
    before = tree_hashes(tmp_path / "in")
    result = run_cli("zf-recon", tmp_path / "in", "-o", disk / "out", "--quiet")
    assert result.exit_code == 1, result.stderr
    assert "no space left on the device" in result.stderr and "Traceback" not in result.stderr
    assert str(disk / "out" / "v0.h5") in result.stderr
    assert [p for p in disk.rglob("*") if p.is_file() and ".mrirecon" not in p.parts] == []  # the manifest may say why
    assert tree_hashes(tmp_path / "in") == before


def test_json_summary_onto_a_full_disk_fails_after_printing_the_summary(tmp_path: Path, tmpfs) -> None:
    _volumes(tmp_path / "in", 1)
    disk = tmpfs("4k")
    (disk / "filler").write_bytes(b"x" * 4096)  # the disk is full before the summary is written
    result = run_cli("zf-recon", tmp_path / "in", "-o", tmp_path / "out", "--json", disk / "s.json")
    assert result.exit_code == 1 and "Traceback" not in result.stderr
    assert "1 file(s) done" in result.stderr and "no space left" in result.stderr
    assert not (disk / "s.json").exists() and leftovers(disk) == []
    assert (tmp_path / "out" / "v0.h5").is_file()


def test_read_only_output_mount(tmp_path: Path, tmpfs) -> None:
    _volumes(tmp_path / "in", 1)
    disk = tmpfs("64k", "ro")
    result = run_cli("zf-recon", tmp_path / "in", "-o", disk, "--quiet")
    # exit 2 when the batch's manifest folder cannot be made up front, 1 when the file fails
    assert result.exit_code in (1, 2) and "read-only" in result.stderr and "Traceback" not in result.stderr
    assert str(disk) in result.stderr and list(disk.iterdir()) == []


def test_dangling_symlink_input_is_named(tmp_path: Path) -> None:
    link = tmp_path / "in" / "gone.h5"
    link.parent.mkdir()
    link.symlink_to(tmp_path / "deleted.h5")
    result = run_cli("zf-recon", link, "-o", tmp_path / "out", "--quiet")
    assert result.exit_code in (1, 2) and "Traceback" not in result.stderr
    assert str(link) in result.stderr and ("dangling" in result.stderr or "does not exist" in result.stderr)


def test_symlinked_input_is_read_and_left_alone(tmp_path: Path) -> None:
    (real,) = _volumes(tmp_path / "store", 1)
    link = tmp_path / "in" / "v0.h5"
    link.parent.mkdir()
    link.symlink_to(real)
    before = tree_hashes(tmp_path / "store")
    result = run_cli("zf-recon", link, "-o", tmp_path / "out", "--quiet")
    assert result.exit_code == 0, result.stderr
    with h5py.File(tmp_path / "out" / "v0.h5") as handle:
        assert handle["reconstruction"].shape == (2, 8, 8)
    assert tree_hashes(tmp_path / "store") == before and link.is_symlink()


def test_output_symlink_to_the_input_never_writes_through(tmp_path: Path) -> None:
    """out/v0.h5 is a symlink to the input: --overwrite may replace the link, never the input."""
    (src,) = _volumes(tmp_path / "in", 1)
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "v0.h5").symlink_to(src)
    before = tree_hashes(tmp_path / "in")
    result = run_cli("zf-recon", src, "-o", tmp_path / "out", "--overwrite", "--quiet")
    assert result.exit_code in (0, 1, 2) and "Traceback" not in result.stderr
    assert tree_hashes(tmp_path / "in") == before
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("command", ["zf-recon", "subsample"])
def test_output_folder_equal_to_the_input_folder_is_refused(tmp_path: Path, command: str) -> None:
    _volumes(tmp_path / "d", 2)
    before = tree_hashes(tmp_path / "d")
    result = run_cli(command, tmp_path / "d", "-o", tmp_path / "d", "--overwrite", "--quiet")
    assert result.exit_code == 2 and "Traceback" not in result.stderr and str(tmp_path / "d") in result.stderr
    assert tree_hashes(tmp_path / "d") == before


def test_two_inputs_with_one_basename_are_refused(tmp_path: Path) -> None:
    write_small_volume(tmp_path / "a" / "x.h5", seed=1)
    write_small_volume(tmp_path / "b" / "x.h5", seed=2)
    result = run_cli("zf-recon", tmp_path / "a" / "x.h5", tmp_path / "b" / "x.h5", "-o", tmp_path / "out", "--quiet")
    assert result.exit_code == 2 and "x.h5" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "out" / "x.h5").exists()


def test_the_same_file_twice_is_one_input(tmp_path: Path) -> None:
    (src,) = _volumes(tmp_path / "in", 1)
    out = tmp_path / "s.json"
    result = run_cli("zf-recon", src, src, "-o", tmp_path / "out", "--quiet", "--json", out)
    assert result.exit_code == 0, result.stderr
    assert json.loads(out.read_text())["succeeded"] == 1


def test_folder_without_h5_files_is_named(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("no scans here")
    result = run_cli("zf-recon", tmp_path / "empty", "-o", tmp_path / "out", "--quiet")
    assert result.exit_code == 2 and str(tmp_path / "empty") in result.stderr


def test_folder_with_hdf5_and_a_dangling_symlink(tmp_path: Path) -> None:
    """.hdf5 files are inputs too; a dangling symlink in the folder is reported, not skipped."""
    write_small_volume(tmp_path / "in" / "a.hdf5")
    write_small_volume(tmp_path / "in" / "b.h5", seed=1)
    (tmp_path / "in" / "c.h5").symlink_to(tmp_path / "nowhere.h5")
    out = tmp_path / "s.json"
    result = run_cli("zf-recon", tmp_path / "in", "-o", tmp_path / "out", "--quiet", "--json", out)
    assert result.exit_code == 1 and "Traceback" not in result.stderr
    assert str(tmp_path / "in" / "c.h5") in result.stderr and "does not exist" in result.stderr
    summary = json.loads(out.read_text())
    assert summary["succeeded"] == 2 and summary["failed"] == 1
    assert (tmp_path / "out" / "a.hdf5").is_file() and (tmp_path / "out" / "b.h5").is_file()


@pytest.mark.parametrize("case", ["output is a folder", "output is the input", "empty .npy", "not an array"])
def test_convert_refuses_without_damage(tmp_path: Path, case: str) -> None:
    """The campaign's convert cases: -o DIR --overwrite, x.npy -o x.npy --overwrite, an empty .npy."""
    import numpy as np

    src = tmp_path / "k.npy"
    if case == "empty .npy":
        src.write_bytes(b"")
    elif case == "not an array":
        src.write_bytes(b"\x93NUMPY garbage that is not an array header")
    else:
        np.save(src, np.ones((2, 16, 12), np.complex64))
    (tmp_path / "d").mkdir()
    out = {"output is a folder": tmp_path / "d", "output is the input": src}.get(case, tmp_path / "out.h5")
    before = tree_hashes(tmp_path)
    result = run_cli("convert", src, "-o", out, "--overwrite", "--quiet")
    assert result.exit_code == 2 and "Traceback" not in result.stderr and "Aborted" not in result.stderr
    assert result.stderr.startswith("error: ") and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert tree_hashes(tmp_path) == before and leftovers(tmp_path) == []
