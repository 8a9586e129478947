"""The one atomic writer: all or nothing, never clobbers without overwrite, umask modes, disk
errors as one sentence (on a real full tmpfs and by injection), nothing left behind."""

from __future__ import annotations

import builtins
import errno
import json
import multiprocessing
import os
import stat
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from faults.fault_helpers import leftovers
from mrirecon.io import atomic
from mrirecon.io.atomic import (
    atomic_h5,
    atomic_path,
    remove_temporaries,
    torch_save_atomic,
    write_bytes_atomic,
    write_text_atomic,
)
from mrirecon.io.errors import InputError, OutputError, OutputExistsError


@pytest.fixture
def umask():
    """Set the umask for one test and restore it after."""
    old = os.umask(0o022)
    yield lambda mask: os.umask(mask)
    os.umask(old)


def test_write_text_lands_whole_and_leaves_no_temporary(tmp_path: Path) -> None:
    out = write_text_atomic(tmp_path / "sub" / "a.json", '{"a": 1}\n')
    assert json.loads(out.read_text()) == {"a": 1}
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("mask, mode", [(0o022, 0o644), (0o027, 0o640), (0o002, 0o664), (0o077, 0o600)])
def test_final_mode_follows_the_umask(tmp_path: Path, umask, mask: int, mode: int) -> None:
    umask(mask)
    paths = [
        write_bytes_atomic(tmp_path / "b.bin", b"x"),
        torch_save_atomic({"w": torch.ones(2)}, tmp_path / "c.pt"),
    ]
    with atomic_h5(tmp_path / "d.h5") as handle:
        handle["x"] = np.zeros(3)
    paths.append(tmp_path / "d.h5")
    for path in paths:
        assert stat.S_IMODE(path.stat().st_mode) == mode, path


def test_existing_output_is_kept_without_overwrite(tmp_path: Path) -> None:
    target = tmp_path / "a.txt"
    target.write_text("old")
    with pytest.raises(OutputExistsError):
        write_text_atomic(target, "new")
    assert target.read_text() == "old"
    write_text_atomic(target, "new", overwrite=True)
    assert target.read_text() == "new"
    assert leftovers(tmp_path) == []


def test_a_dangling_symlink_at_the_target_counts_as_existing(tmp_path: Path) -> None:
    link = tmp_path / "out.h5"
    link.symlink_to(tmp_path / "nowhere.h5")
    with pytest.raises(OutputExistsError):
        write_text_atomic(link, "x")
    assert link.is_symlink() and not (tmp_path / "nowhere.h5").exists()


def test_overwrite_replaces_a_symlink_not_the_file_it_points_to(tmp_path: Path) -> None:
    precious = tmp_path / "input.h5"
    precious.write_text("input")
    link = tmp_path / "out" / "x.h5"
    link.parent.mkdir()
    link.symlink_to(precious)
    write_text_atomic(link, "output", overwrite=True)
    assert precious.read_text() == "input"
    assert not link.is_symlink() and link.read_text() == "output"


def test_target_that_appears_meanwhile_is_not_clobbered(tmp_path: Path) -> None:
    target = tmp_path / "a.h5"
    with pytest.raises(OutputExistsError):
        with atomic_path(target) as tmp:
            tmp.write_text("mine")
            target.write_text("theirs")  # another writer finished first
    assert target.read_text() == "theirs"
    assert leftovers(tmp_path) == []


def test_a_folder_is_never_an_output(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    for overwrite in (False, True):
        with pytest.raises(OutputError, match="is a folder"):
            write_text_atomic(tmp_path / "d", "x", overwrite=overwrite)
    assert (tmp_path / "d").is_dir()


@pytest.mark.parametrize("exc", [RuntimeError("boom"), KeyboardInterrupt(), SystemExit(143)])
def test_any_failure_in_the_body_removes_the_temporary(tmp_path: Path, exc: BaseException) -> None:
    target = tmp_path / "a.h5"
    with pytest.raises(type(exc)):
        with atomic_h5(target) as handle:
            handle["x"] = np.zeros(10)
            raise exc
    assert not target.exists()
    assert leftovers(tmp_path) == []


def test_remove_temporaries_deletes_writes_in_progress(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        with atomic_path(tmp_path / "a.bin") as tmp:
            tmp.write_bytes(b"partial")
            remove_temporaries()  # what a signal handler does before the process ends
            assert not tmp.exists()
    assert leftovers(tmp_path) == [] and not (tmp_path / "a.bin").exists()


def test_injected_enospc_is_one_sentence_naming_the_output(tmp_path: Path, monkeypatch) -> None:
    """The same path the full-tmpfs test covers, for machines where mounting is refused."""
    real_open = builtins.open

    class FullDisk:
        def __init__(self, handle):
            self.handle = handle

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.handle.close()

        def write(self, data):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def fake_open(file, mode="r", *args, **kwargs):
        handle = real_open(file, mode, *args, **kwargs)
        return FullDisk(handle) if "w" in mode and str(file).endswith(".tmp") else handle

    monkeypatch.setattr(builtins, "open", fake_open)
    target = tmp_path / "summary.json"
    with pytest.raises(OutputError) as info:
        write_text_atomic(target, "{}")
    assert str(info.value) == f"{target}: cannot be written: no space left on the device"
    assert isinstance(info.value, InputError)
    assert not target.exists() and leftovers(tmp_path) == []


@pytest.mark.parametrize("kind", ["text", "h5", "torch"])
def test_full_tmpfs_is_one_sentence_and_leaves_nothing(tmpfs, kind: str) -> None:
    disk = tmpfs("64k")
    target = disk / f"out.{kind}"
    big = np.random.default_rng(0).standard_normal(40_000).astype(np.float32)  # 160 kB > 64 kB
    with pytest.raises(OutputError, match="no space left on the device") as info:
        if kind == "text":
            write_text_atomic(target, "x" * 200_000)
        elif kind == "h5":
            with atomic_h5(target) as handle:
                handle.create_dataset("reconstruction", data=big)
        else:
            torch_save_atomic({"w": torch.from_numpy(big)}, target)
    assert str(target) in str(info.value)
    assert list(disk.iterdir()) == []


def test_read_only_file_system_is_one_sentence(tmpfs) -> None:
    disk = tmpfs("64k", "ro")
    with pytest.raises(OutputError, match="read-only"):
        write_text_atomic(disk / "a.json", "{}")


def test_h5py_and_torch_error_texts_are_recognised() -> None:
    h5_text = "Unable to synchronously write (file write failed: time = now, errno = 28, error message = 'No space')"
    assert atomic.disk_errno(OSError(h5_text)) == errno.ENOSPC
    assert atomic.disk_errno(RuntimeError("[enforce fail at inline_container.cc] No space left on device")) == errno.ENOSPC
    assert atomic.disk_errno(RuntimeError("shape mismatch")) is None


def test_reading_errors_in_the_body_stay_what_they_are(tmp_path: Path) -> None:
    """An input that vanishes while the output is written is not an output error."""
    with pytest.raises(FileNotFoundError):
        with atomic_path(tmp_path / "a.h5") as tmp:
            (tmp_path / "missing_input.h5").read_bytes()
    assert leftovers(tmp_path) == []


def _write_same_name(args: tuple[str, int]) -> str:
    folder, index = args
    try:
        with atomic_h5(Path(folder) / "same.h5") as handle:
            handle.create_dataset("reconstruction", data=np.full((4, 32, 32), index, np.float32))
        return "won"
    except OutputExistsError:
        return "refused"


def _write_own_name(args: tuple[str, int]) -> str:
    folder, index = args
    write_text_atomic(Path(folder) / f"f{index}.json", json.dumps({"i": index}))
    return "ok"


def test_concurrent_writers_to_one_folder(tmp_path: Path) -> None:
    """Eight processes race for one name: exactly one wins, the file is whole; eight more
    write eight names into the same folder at once: all land."""
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(4) as pool:
        outcomes = pool.map(_write_same_name, [(str(tmp_path), i) for i in range(8)])
        own = pool.map(_write_own_name, [(str(tmp_path), i) for i in range(8)])
    assert sorted(outcomes) == ["refused"] * 7 + ["won"]
    with h5py.File(tmp_path / "same.h5", "r") as handle:
        data = handle["reconstruction"][()]
    assert data.shape == (4, 32, 32) and len(np.unique(data)) == 1
    assert own == ["ok"] * 8
    assert sorted(json.loads((tmp_path / f"f{i}.json").read_text())["i"] for i in range(8)) == list(range(8))
    assert leftovers(tmp_path) == []


def test_old_import_path_of_atomic_h5_still_works() -> None:
    from mrirecon.io.fastmri_h5 import atomic_h5 as old, check_writable

    assert old is atomic_h5 and check_writable is atomic.check_writable
