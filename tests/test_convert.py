"""convert: .npy k-space (the real scans in ../shared/data/real) -> fastMRI files."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest
from fastmri.data import SliceDataset

from cli_helpers import run_cli
from conftest import REAL_DATA
from mrirecon.io import open_volume


def test_convert_real_brain_is_a_valid_fastmri_file(tmp_path: Path) -> None:
    src = REAL_DATA / "brain_t2_4coil.npy"
    out = tmp_path / "full" / "brain.h5"
    result = run_cli("convert", src, "-o", out, "--acquisition", "AXT2")
    assert result.exit_code == 0, result.stderr
    kspace = np.load(src)
    with open_volume(out) as volume:
        np.testing.assert_array_equal(volume.read_kspace(), kspace)
        assert volume.multicoil and volume.padding == (0, 256) and volume.recon_crop == (256, 256)
        target = volume.read_target()
        assert volume.attrs["max"] == pytest.approx(float(target.max()))
        assert volume.attrs["acquisition"] == "AXT2"
    # the target is the RSS of the coil images: bright brain, dark corners
    assert target[0, 100:150, 100:150].mean() > 5 * target[0, :20, :20].mean()
    kspace_ds, mask, tgt, attrs, _, _ = SliceDataset(out.parent, "multicoil")[0]
    assert tgt.shape == (256, 256) and mask is None and attrs["recon_size"] == (256, 256, 1)


def test_convert_oversampled_readout_crops_half(tmp_path: Path) -> None:
    out = tmp_path / "os2.h5"
    result = run_cli("convert", REAL_DATA / "phantom_gre_2coil_os2.npy", "-o", out, "--readout-oversampling", "2")
    assert result.exit_code == 0, result.stderr
    with h5py.File(out) as f:
        assert f["reconstruction_rss"].shape == (1, 160, 160)


def test_convert_axis_order_and_single_coil(tmp_path: Path) -> None:
    kspace = np.load(REAL_DATA / "phantom_gre_1coil.npy")  # (1, 256, 256)
    hw_first = np.ascontiguousarray(np.transpose(kspace, (1, 2, 0)))  # (H, W, S)
    np.save(tmp_path / "hws.npy", hw_first)
    out = tmp_path / "single.h5"
    assert run_cli("convert", tmp_path / "hws.npy", "-o", out, "--axes", "HWS").exit_code == 0
    with open_volume(out) as volume:
        assert not volume.multicoil and volume.target_key == "reconstruction_esc"
        np.testing.assert_array_equal(volume.read_kspace(), kspace)


def test_convert_undersampled_writes_test_style_2d_mask(tmp_path: Path) -> None:
    out = tmp_path / "poisson.h5"
    src = REAL_DATA / "brain_8coil_poisson_undersampled.npy"
    result = run_cli("convert", src, "-o", out, "--undersampled")
    assert result.exit_code == 0, result.stderr
    with open_volume(out) as volume:
        assert volume.mask is not None and volume.mask.shape == (230, 180)
        assert volume.target_key is None
        assert 5 < volume.attrs["acceleration"] < 12
        assert volume.attrs["num_low_frequency"] >= 8


@pytest.mark.parametrize(
    "setup,expected",
    [
        (lambda p: np.save(p, np.zeros((4, 4), np.float32)), "must be complex"),
        (lambda p: p.write_text("garbage"), "not a .npy array"),
        (lambda p: np.save(p, np.ones((2, 2, 2, 2, 2), np.complex64)), "rank 5"),
        (lambda p: np.save(p, np.full((1, 4, 4), np.nan, np.complex64)), "NaN or Inf"),
    ],
)
def test_convert_bad_input(tmp_path: Path, setup, expected: str) -> None:
    src = tmp_path / "bad.npy"
    setup(src)
    out = tmp_path / "out" / "bad.h5"
    result = run_cli("convert", src, "-o", out)
    assert result.exit_code == 2
    assert "bad.npy" in result.stderr and expected in result.stderr and "Traceback" not in result.stderr
    assert not out.exists() and not (out.parent.exists() and any(out.parent.iterdir()))


def test_convert_wrong_axes_is_refused(tmp_path: Path) -> None:
    result = run_cli("convert", REAL_DATA / "brain_t2_4coil.npy", "-o", tmp_path / "x.h5", "--axes", "SCHX")
    assert result.exit_code == 2 and "--axes" in result.stderr
