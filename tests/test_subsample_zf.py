"""subsample and zf-recon end to end on tiny volumes, including SliceDataset compatibility."""

from __future__ import annotations

import hashlib
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from fastmri.data import SliceDataset
from fastmri.data.subsample import create_mask_for_mask_type

from cli_helpers import run_cli
from mrirecon.mri.masks import volume_seed
from mrirecon.mri.zero_filled import zero_filled


def _digest(path: Path) -> str:
    """The file's bytes: "the same command twice gives the same bytes"."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("coils", [4, None])
def test_subsample_writes_test_style_file(tmp_path: Path, volume_factory, coils) -> None:
    src = volume_factory("file_a.h5", coils=coils, padding=3)
    out = tmp_path / "4x"
    result = run_cli("subsample", src.parent, "-o", out, "--mask", "equispaced_fraction", "--accel", "4")
    assert result.exit_code == 0, result.stderr
    with h5py.File(src, "r") as f_in, h5py.File(out / src.name, "r") as f_out:
        assert "reconstruction_rss" not in f_out and "reconstruction_esc" not in f_out
        mask = f_out["mask"][()]
        ref, num_low = create_mask_for_mask_type("equispaced_fraction", [0.08], [4])((1, 48, 1), seed=volume_seed(src.name))
        ref = ref.numpy().reshape(-1).astype(bool)
        ref[:3] = ref[45:] = False
        np.testing.assert_array_equal(mask, ref)
        np.testing.assert_array_equal(f_out["kspace"][()], f_in["kspace"][()] * mask)
        assert f_out.attrs["acceleration"] == 4 and f_out.attrs["num_low_frequency"] == num_low
        assert f_out.attrs["acquisition"] == f_in.attrs["acquisition"]
        assert f_out["ismrmrd_header"][()] == f_in["ismrmrd_header"][()]
    challenge = "multicoil" if coils else "singlecoil"
    dataset = SliceDataset(out, challenge)
    kspace, mask, target, attrs, fname, _ = dataset[1]
    assert target is None and mask.shape == (48,) and attrs["padding_left"] == 3 and attrs["padding_right"] == 45


def test_subsample_is_deterministic_and_refuses_overwrite(tmp_path: Path, volume_factory) -> None:
    src = volume_factory("file_b.h5")
    assert run_cli("subsample", src, "-o", tmp_path / "a", "--accel", "8").exit_code == 0
    assert run_cli("subsample", src, "-o", tmp_path / "b", "--accel", "8").exit_code == 0
    assert _digest(tmp_path / "a" / src.name) == _digest(tmp_path / "b" / src.name)
    before = _digest(tmp_path / "a" / src.name)
    again = run_cli("subsample", src, "-o", tmp_path / "a", "--accel", "4")
    assert again.exit_code == 1 and "--overwrite" in again.stderr
    assert _digest(tmp_path / "a" / src.name) == before
    assert run_cli("subsample", src, "-o", tmp_path / "a", "--accel", "4", "--overwrite").exit_code == 0
    assert _digest(tmp_path / "a" / src.name) != before
    assert run_cli("subsample", src, "-o", tmp_path / "c", "--accel", "8", "--seed", "5").exit_code == 0
    assert _digest(tmp_path / "c" / src.name) != _digest(tmp_path / "b" / src.name)


def test_subsample_poisson_writes_2d_mask(tmp_path: Path, volume_factory) -> None:
    src = volume_factory("file_p.h5", shape=(64, 48), padding=2)
    assert run_cli("subsample", src, "-o", tmp_path / "p", "--mask", "poisson", "--accel", "4").exit_code == 0
    with h5py.File(tmp_path / "p" / src.name) as f:
        mask = f["mask"][()]
        assert mask.shape == (64, 48)
        assert not mask[:, :2].any() and not mask[:, 46:].any()
        assert 0.15 < mask.mean() < 0.35
        assert (f["kspace"][()][..., ~mask] == 0).all()


def test_zf_recon_of_fully_sampled_equals_target(tmp_path: Path, volume_factory) -> None:
    src = volume_factory("file_c.h5", shape=(64, 48), recon=(32, 32))
    assert run_cli("zf-recon", src, "-o", tmp_path / "zf").exit_code == 0
    with h5py.File(tmp_path / "zf" / src.name) as f, h5py.File(src) as g:
        recon = f["reconstruction"][()]
        assert recon.dtype == np.float32 and recon.shape == (3, 32, 32)
        np.testing.assert_allclose(recon, g["reconstruction_rss"][()], rtol=1e-6)


def test_zf_recon_narrow_image_uses_fastmri_square_crop(tmp_path: Path, volume_factory) -> None:
    """fastMRI's FLAIR-203 rule: an image narrower than the recon width is cropped to W x W."""
    src = volume_factory("narrow.h5", shape=(64, 24), recon=(32, 32))
    assert run_cli("zf-recon", src, "-o", tmp_path / "zf").exit_code == 0
    with h5py.File(tmp_path / "zf" / src.name) as f:
        assert f["reconstruction"].shape == (3, 24, 24)


def test_zf_recon_on_the_fly_mask_equals_subsample_then_zf(tmp_path: Path, volume_factory) -> None:
    src = volume_factory("file_d.h5")
    assert run_cli("subsample", src, "-o", tmp_path / "sub", "--accel", "4").exit_code == 0
    assert run_cli("zf-recon", tmp_path / "sub", "-o", tmp_path / "zf1").exit_code == 0
    assert run_cli("zf-recon", src, "-o", tmp_path / "zf2", "--accel", "4").exit_code == 0
    with h5py.File(tmp_path / "zf1" / src.name) as a, h5py.File(tmp_path / "zf2" / src.name) as b:
        np.testing.assert_array_equal(a["reconstruction"][()], b["reconstruction"][()])
        assert a.attrs["acceleration"] == 4


def test_zero_filled_matches_fastmri_rss() -> None:
    import fastmri

    kspace = torch.randn(2, 5, 40, 30, dtype=torch.complex64)
    ours = zero_filled(kspace, (20, 20))
    ref = fastmri.rss(fastmri.complex_abs(fastmri.ifft2c(torch.view_as_real(kspace))), dim=1)
    from fastmri.data.transforms import center_crop

    torch.testing.assert_close(ours, center_crop(ref, (20, 20)), rtol=1e-5, atol=1e-6)


def test_already_undersampled_input_refuses_mask_options(tmp_path: Path, volume_factory) -> None:
    src = volume_factory("file_e.h5")
    assert run_cli("subsample", src, "-o", tmp_path / "sub").exit_code == 0
    result = run_cli("zf-recon", tmp_path / "sub", "-o", tmp_path / "zf", "--accel", "8")
    assert result.exit_code == 1 and "already undersampled" in result.stderr
