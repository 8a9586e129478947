"""Noise prewhitening on the real 16-coil noise scan and phantom."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from cli_helpers import run_cli
from conftest import REAL_DATA
from mrirecon.mri.prewhiten import apply_whitening, noise_covariance, whitening_matrix
from mrirecon.mri.zero_filled import zero_filled


@pytest.fixture(scope="module")
def noise() -> torch.Tensor:
    return torch.from_numpy(np.load(REAL_DATA / "noise_16coil_96.npy"))  # (16, 18432)


def test_whitened_noise_covariance_is_identity_within_sampling_error(noise: torch.Tensor) -> None:
    # whiten with the first half, check on the second half: no self-fulfilling estimate
    first, second = noise[:, : noise.shape[1] // 2], noise[:, noise.shape[1] // 2 :]
    raw = noise_covariance(second)
    scale = torch.sqrt(torch.diagonal(raw).real)
    correlation = raw / (scale[:, None] * scale[None, :])
    assert (correlation - torch.eye(16)).abs().max() > 0.3  # the coils' noise is correlated before
    whitened = noise_covariance(whitening_matrix(first).to(torch.complex64) @ second)
    sampling_error = 1 / np.sqrt(second.shape[1])  # std of a sample covariance entry of unit noise
    assert (whitened - torch.eye(16)).abs().max() < 6 * sampling_error


def test_bandwidth_ratio_scales_the_whitening(noise: torch.Tensor) -> None:
    torch.testing.assert_close(whitening_matrix(noise, dwell_ratio=4.0), whitening_matrix(noise) / 2)


def test_dead_coil_is_refused(noise: torch.Tensor) -> None:
    dead = noise.clone()
    dead[3] = 0
    with pytest.raises(ValueError, match="coil 3"):
        whitening_matrix(dead)


def rss_snr(kspace: torch.Tensor) -> float:
    """Mean of the object (over half the maximum) over the noise std in the four 12x12 corners."""
    image = zero_filled(kspace, (96, 96))[0].numpy()
    background = np.zeros(image.shape, bool)
    for rows in (slice(0, 12), slice(-12, None)):
        for cols in (slice(0, 12), slice(-12, None)):
            background[rows, cols] = True
    return float(image[image > 0.5 * image.max()].mean() / image[background].std())


def test_rss_snr_does_not_drop_on_the_real_phantom(noise: torch.Tensor) -> None:
    kspace = torch.from_numpy(np.load(REAL_DATA / "phantom_16coil_96_with_noise.npy"))
    before = rss_snr(kspace)
    after = rss_snr(apply_whitening(kspace, whitening_matrix(noise)))
    assert after >= before, (before, after)


def test_convert_prewhiten_with_noise_file(tmp_path: Path) -> None:
    out = tmp_path / "white.h5"
    src, noise_file = REAL_DATA / "phantom_16coil_96_with_noise.npy", REAL_DATA / "noise_16coil_96.npy"
    result = run_cli("convert", src, "-o", out, "--prewhiten", "--noise", noise_file)
    assert result.exit_code == 0, result.stderr
    expected = apply_whitening(torch.from_numpy(np.load(src)), whitening_matrix(torch.from_numpy(np.load(noise_file))))
    with h5py.File(out) as handle:
        np.testing.assert_allclose(handle["kspace"][()], expected.numpy(), rtol=1e-5, atol=1e-6 * float(expected.abs().max()))
        assert handle.attrs["prewhitened"] and handle.attrs["noise_source"] == str(noise_file)
        assert "unknown" in handle.attrs["noise_dwell_ratio"]
    eight = REAL_DATA / "phantom_gre_8coil_7slices.npy"
    wrong = run_cli("convert", eight, "-o", tmp_path / "w.h5", "--prewhiten", "--noise", noise_file)
    assert wrong.exit_code == 2 and "noise_16coil_96.npy" in wrong.stderr and "coils=8" in wrong.stderr
    assert not (tmp_path / "w.h5").exists()
    missing = run_cli("convert", src, "-o", tmp_path / "m.h5", "--prewhiten")
    assert missing.exit_code == 2 and "--noise" in missing.stderr and not (tmp_path / "m.h5").exists()
