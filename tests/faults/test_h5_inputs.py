"""HDF5 inputs that try to make the tool read outside the file, or declare sizes and values the
file cannot back: each is refused with one sentence naming the file, exit 2 for a single bad
input (exit 1 when it is one failed file of a batch), no output written, the input unchanged."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import h5py
import numpy as np
import pytest

from cli_helpers import run_cli
from faults.fault_helpers import leftovers, tree_hashes, write_small_volume
from mrirecon.io import InputError, open_volume
from mrirecon.io.fastmri_h5 import read_reconstruction

SECRET = b"root:x:0:0:SECRET-BYTES-THAT-MUST-NOT-LEAK:/root:/bin/bash\n" * 40


def _secret(tmp: Path) -> Path:
    path = tmp / "secret.txt"
    path.write_bytes(SECRET)
    return path


def _replace(path: Path, name: str, make: Callable[[h5py.File], None]) -> None:
    with h5py.File(path, "a") as handle:
        if name in handle or handle.get(name, getlink=True) is not None:
            del handle[name]
        make(handle)


def external_storage(tmp: Path, path: Path, name: str = "kspace") -> None:
    secret = _secret(tmp)
    with h5py.File(path, "r") as handle:
        shape, dtype = handle[name].shape, handle[name].dtype
    if dtype.kind == "O" or shape == ():  # HDF5 keeps no external storage for scalars/strings
        shape, dtype = (1,), np.dtype("S200")
    nbytes = int(np.prod(shape)) * dtype.itemsize
    secret.write_bytes((SECRET * (nbytes // len(SECRET) + 1))[:nbytes])
    _replace(path, name, lambda h: h.create_dataset(name, shape=shape, dtype=dtype, external=[(str(secret), 0, nbytes)]))


def external_link(tmp: Path, path: Path, name: str = "kspace") -> None:
    other = tmp / "other.h5"
    with h5py.File(path, "r") as src, h5py.File(other, "a") as dst:
        if name not in dst:
            dst.create_dataset(name, data=src[name][()])
    _replace(path, name, lambda h: h.__setitem__(name, h5py.ExternalLink(str(other), name)))


def virtual(tmp: Path, path: Path, name: str = "kspace") -> None:
    other = tmp / "source.h5"
    with h5py.File(path, "r") as src:
        data = src[name][()]
    with h5py.File(other, "w") as dst:
        dst[name] = data
    layout = h5py.VirtualLayout(shape=data.shape, dtype=data.dtype)
    layout[...] = h5py.VirtualSource(str(other), name, shape=data.shape)
    _replace(path, name, lambda h: h.create_virtual_dataset(name, layout))


def dangling_soft_link(tmp: Path, path: Path, name: str = "kspace") -> None:
    _replace(path, name, lambda h: h.__setitem__(name, h5py.SoftLink("/nowhere")))


def soft_link_to_external(tmp: Path, path: Path, name: str = "kspace") -> None:
    external_link(tmp, path, name)
    with h5py.File(path, "a") as handle:
        handle.move(name, "hidden")
        handle[name] = h5py.SoftLink("/hidden")


def declared_slices_contiguous(tmp: Path, path: Path) -> None:
    _replace(path, "kspace", lambda h: h.create_dataset("kspace", shape=(200_000, 2, 16, 12), dtype=np.complex64))


def declared_slices_chunked(tmp: Path, path: Path) -> None:
    def make(handle: h5py.File) -> None:
        dset = handle.create_dataset("kspace", shape=(200_000, 2, 16, 12), dtype=np.complex64, chunks=(1, 2, 16, 12))
        dset[0] = np.ones((2, 16, 12), np.complex64)

    _replace(path, "kspace", make)


def truncated(tmp: Path, path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) * 2 // 3])


def too_many_slices(tmp: Path, path: Path) -> None:
    _replace(path, "kspace", lambda h: h.create_dataset("kspace", data=np.ones((10_001, 1, 2), np.complex64)))


def zero_kspace(tmp: Path, path: Path) -> None:
    _replace(path, "kspace", lambda h: h.create_dataset("kspace", data=np.zeros((2, 2, 16, 12), np.complex64)))


def target_slices(tmp: Path, path: Path) -> None:
    _replace(path, "reconstruction_rss", lambda h: h.create_dataset("reconstruction_rss", data=np.ones((3, 8, 8), np.float32)))


def attr(name: str, value) -> Callable[[Path, Path], None]:
    def change(tmp: Path, path: Path) -> None:
        with h5py.File(path, "a") as handle:
            handle.attrs[name] = value

    return change


def mask_values(values) -> Callable[[Path, Path], None]:
    def change(tmp: Path, path: Path) -> None:
        _replace(path, "mask", lambda h: h.create_dataset("mask", data=np.asarray(values)))

    return change


def on(name: str, make) -> Callable[[Path, Path], None]:
    return lambda tmp, path: make(tmp, path, name)


FULL_CASES = {
    "kspace external storage": (external_storage, "external file"),
    "kspace external link": (external_link, "external link"),
    "kspace virtual dataset": (virtual, "virtual dataset"),
    "kspace dangling soft link": (dangling_soft_link, "does not exist"),
    "kspace soft link to an external link": (soft_link_to_external, "external link"),
    "header external storage": (on("ismrmrd_header", external_storage), "external file"),
    "target external link": (on("reconstruction_rss", external_link), "external link"),
    "target external storage": (on("reconstruction_rss", external_storage), "external file"),
    "target virtual": (on("reconstruction_rss", virtual), "virtual dataset"),
    "200,000 declared slices, contiguous": (declared_slices_contiguous, "stores none of it"),
    "200,000 declared slices, chunked": (declared_slices_chunked, "1 of its 200000 chunks"),
    "truncated file": (truncated, ""),
    "more slices than any scanner": (too_many_slices, "10001 slices"),
    "all-zero k-space": (zero_kspace, "all zero"),
    "target slices differ": (target_slices, "3 slices"),
    "acceleration 0": (attr("acceleration", 0), "'acceleration'"),
    "acceleration -4": (attr("acceleration", -4), "'acceleration'"),
    "acceleration nan": (attr("acceleration", np.nan), "'acceleration'"),
    "acceleration text": (attr("acceleration", "four"), "'acceleration'"),
    "num_low_frequency -7": (attr("num_low_frequency", -7), "'num_low_frequency'"),
    "num_low_frequency 10**6": (attr("num_low_frequency", 10**6), "'num_low_frequency'"),
    "num_low_frequency 2.5": (attr("num_low_frequency", 2.5), "'num_low_frequency'"),
}

TEST_STYLE_CASES = {
    "mask 2.5": (mask_values([2.5] * 12), "only 0 and 1"),
    "mask 0.3": (mask_values([0.3] * 12), "only 0 and 1"),
    "mask all zero": (mask_values(np.zeros(12, bool)), "all zero"),
    "mask external storage": (on("mask", external_storage), "external file"),
    "mask external link": (on("mask", external_link), "external link"),
    "mask as strings": (mask_values(np.array([b"1"] * 12)), "booleans or 0/1"),
}


def _check_refused(tmp_path: Path, make, expected: str, style: str, command: str) -> None:
    src = tmp_path / "in" / "vol.h5"
    write_small_volume(src, mask=style == "test")
    make(tmp_path, src)
    before = tree_hashes(tmp_path)
    out = tmp_path / "out"
    with pytest.raises(InputError, match=expected or "."):
        open_volume(src).close()
    result = run_cli(command, src, "-o", out, "--quiet", *(["--accel", "4"] if command == "subsample" else []))
    assert result.exit_code == 1, result.stderr  # one failed file in a batch
    assert "Traceback" not in result.stderr and str(src) in result.stderr and expected in result.stderr
    assert not out.exists() or [p for p in out.iterdir() if p.name != ".mrirecon"] == []  # manifest only
    assert tree_hashes(tmp_path) == before
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("case", sorted(FULL_CASES))
def test_bad_fully_sampled_input_is_refused(tmp_path: Path, case: str) -> None:
    make, expected = FULL_CASES[case]
    _check_refused(tmp_path, make, expected, "full", "subsample" if "target" not in case else "zf-recon")


@pytest.mark.parametrize("case", sorted(TEST_STYLE_CASES))
def test_bad_test_style_input_is_refused(tmp_path: Path, case: str) -> None:
    make, expected = TEST_STYLE_CASES[case]
    _check_refused(tmp_path, make, expected, "test", "zf-recon")


def test_external_bytes_never_reach_an_output(tmp_path: Path) -> None:
    """The campaign's case: subsample copied /etc/passwd-like bytes into its output."""
    src = write_small_volume(tmp_path / "in" / "vol.h5")
    external_storage(tmp_path, src)
    run_cli("subsample", src, "-o", tmp_path / "out", "--quiet")
    for path in tmp_path.rglob("*"):
        if path.is_file() and path.name != "secret.txt":
            assert b"SECRET-BYTES" not in path.read_bytes(), path


def test_soft_link_inside_the_file_is_followed(tmp_path: Path) -> None:
    src = write_small_volume(tmp_path / "vol.h5")
    with h5py.File(src, "a") as handle:
        handle.move("kspace", "data/kspace_raw")
        handle["kspace"] = h5py.SoftLink("/data/kspace_raw")
    with open_volume(src) as volume:
        assert volume.read_kspace().shape == (2, 2, 16, 12)


def test_nested_external_group_is_refused(tmp_path: Path) -> None:
    """A name reached through a group that is itself an external link."""
    from mrirecon.io.h5_input import get_dataset

    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as handle:
        handle["grp/sens_maps"] = np.ones(3)
    src = tmp_path / "maps.h5"
    with h5py.File(src, "w") as handle:
        handle["grp"] = h5py.ExternalLink(str(other), "/grp")
    with h5py.File(src, "r") as handle, pytest.raises(InputError, match="external link"):
        get_dataset(handle, "grp/sens_maps", src)


@pytest.mark.parametrize("make, expected", [(external_link, "external link"), (external_storage, "external file"),
                                             (virtual, "virtual dataset")])
def test_eval_refuses_predictions_that_read_elsewhere(tmp_path: Path, make, expected: str) -> None:
    target_dir, pred_dir = tmp_path / "target", tmp_path / "pred"
    write_small_volume(target_dir / "vol.h5")
    pred = pred_dir / "vol.h5"
    pred.parent.mkdir()
    with h5py.File(pred, "w") as handle:
        handle["reconstruction"] = np.ones((2, 8, 8), np.float32)
    make(tmp_path, pred, "reconstruction")
    result = run_cli("eval", "--target", target_dir, "--pred", pred_dir, "--device", "cpu", "--quiet")
    assert result.exit_code == 1 and expected in result.stderr and str(pred) in result.stderr
    assert "Traceback" not in result.stderr
    with pytest.raises(InputError, match=expected):
        read_reconstruction(pred)


def test_sensitivity_map_file_with_external_storage_is_refused(tmp_path: Path) -> None:
    from mrirecon.mri.sensitivity import load_maps

    maps = tmp_path / "maps.h5"
    with h5py.File(maps, "w") as handle:
        handle["sens_maps"] = np.ones((2, 16, 12), np.complex64)
    external_storage(tmp_path, maps, "sens_maps")
    with pytest.raises(InputError, match="external file"):
        load_maps(maps, (2, 2, 16, 12))
