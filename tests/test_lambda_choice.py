"""``--lam auto``'s pieces (``mrirecon.cs.lambda_choice``): the noise estimate from the data, the
discrepancy search, lambda's response to noise in a chunk reconstruction, and ``cs-recon --lam auto``
end to end on a real scan."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from cli_helpers import ssim_against_target
from conftest import REAL_DATA
from mrirecon.cli import app
from mrirecon.cs.chunk import DISCREPANCY_TAU, ChunkConfig, reconstruct_chunk
from mrirecon.cs.recon import tv_recon
from mrirecon.cs.lambda_choice import (
    LAMBDA_RANGE,
    NOISE_REFERENCE,
    discrepancy_lambda,
    noise_scaled_lambda,
    noise_to_signal,
    noise_variance,
)
from mrirecon.io import open_volume
from mrirecon.mri.fft import fft2c
from mrirecon.mri.masks import column_mask
from mrirecon.mri.sensitivity import calibration_region
from mrirecon.pipelines.convert import ConvertConfig, convert_npy
from mrirecon.pipelines.sample_data import SampleDataConfig, generate_sample_data

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def sample_kspace(tmp_path_factory):
    """One fully sampled single-coil and one 8-coil sample slice, with a 4x random column mask each."""
    out = {}
    for challenge in ("singlecoil", "multicoil"):
        folder = tmp_path_factory.mktemp(challenge)
        config = SampleDataConfig(challenge=challenge, volumes=1, slices=1, coils=8 if challenge == "multicoil" else None, seed=5)
        summary = generate_sample_data(folder, config, quiet=True)
        with open_volume(Path(summary.results[0].output)) as volume:
            k = torch.from_numpy(volume.read_kspace(0, 1))
        k = k if k.ndim == 4 else k.unsqueeze(1)
        mask, low = column_mask("random", k.shape[-1], 4, 0.08, seed=(3,))
        out[challenge] = (k, torch.from_numpy(mask), low)
    return out


def _noise(like: torch.Tensor, sigma: float, seed: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.complex(torch.randn(like.shape, generator=gen), torch.randn(like.shape, generator=gen)) * (sigma / math.sqrt(2))


@pytest.mark.parametrize("challenge", ["singlecoil", "multicoil"])
def test_noise_estimate_recovers_added_noise(sample_kspace, challenge):
    """Noise of known variance added to a sample scan comes back within 10% (the scan's own noise,
    estimated first, adds to it); column masks and a 2D mask."""
    k, mask, _ = sample_kspace[challenge]
    coils = k.shape[1]
    own = noise_variance(k * mask, mask).variance
    sigma = 3.0 * math.sqrt(float(own) / coils)  # per coil, 9x the scan's own noise energy
    noisy = k + _noise(k, sigma, 0)
    estimate = noise_variance(noisy * mask, mask)
    assert estimate.method == "haar-readout"
    assert float(estimate.variance) == pytest.approx(float(own) + coils * sigma**2, rel=0.1)
    mask2d = torch.rand(k.shape[-2:], generator=torch.Generator().manual_seed(1)) < 0.4
    estimate2d = noise_variance(noisy * mask2d, mask2d)
    assert estimate2d.method == "haar-kspace"
    assert float(estimate2d.variance) == pytest.approx(float(own) + coils * sigma**2, rel=0.1)


def test_noise_scaled_lambda_keeps_the_default_below_the_reference_and_grows_in_proportion_above():
    default = torch.tensor([0.002, 0.002, 0.002, 0.002])
    ratio = torch.tensor([0.0, NOISE_REFERENCE, 2 * NOISE_REFERENCE, 1e3])
    assert noise_scaled_lambda(default, ratio).tolist() == pytest.approx([0.002, 0.002, 0.004, 0.002 * LAMBDA_RANGE])


def test_noise_to_signal_is_scale_free_and_rises_with_added_noise(sample_kspace):
    k, mask, _ = sample_kspace["multicoil"]
    own = noise_variance(k * mask, mask)
    ratio = float(noise_to_signal(k * mask, own))
    scaled = 7.0 * k * mask
    assert float(noise_to_signal(scaled, noise_variance(scaled, mask))) == pytest.approx(ratio, rel=1e-4)
    sigma = 3.0 * math.sqrt(float(own.variance) / k.shape[1])  # 9x the scan's own noise energy
    noisy = (k + _noise(k, sigma, 0)) * mask
    assert float(noise_to_signal(noisy, noise_variance(noisy, mask))) > 2.5 * ratio
    assert float(noise_to_signal(torch.zeros_like(k), own)) == 0.0


def test_default_lambda_rule_raises_lambda_only_for_noisy_multicoil_slices(sample_kspace):
    """``--lam auto`` (chunk ``lam=None``, rule ``auto``): a clean multi-coil sample slice keeps the
    default exactly; with 10x its own noise it gets default x ratio / reference; single coil keeps
    the default whatever the noise; each slice reports its rule and ratio."""
    k, mask, low = sample_kspace["multicoil"]
    calib = calibration_region(mask.numpy(), tuple(k.shape[-2:]), low)
    own = float(noise_variance(k * mask, mask).variance)
    noisy = k + _noise(k, 10.0 * math.sqrt(own / k.shape[1]), 1)
    batch = torch.cat([k, noisy]) * mask
    result = reconstruct_chunk(batch, mask, calib, ChunkConfig(None, 0.002, 6, maps="1"))
    clean, loud = result.slices
    assert clean["noise_to_signal"] < NOISE_REFERENCE < loud["noise_to_signal"]
    assert clean["lambda"] == pytest.approx(0.002) and clean["lambda_rule"] == "default (noise below the reference)"
    assert loud["lambda_rule"] == "noise-scaled"
    assert loud["lambda"] == pytest.approx(0.002 * loud["noise_to_signal"] / NOISE_REFERENCE, rel=1e-3)
    ks, masks, lows = sample_kspace["singlecoil"]
    calib_s = calibration_region(masks.numpy(), tuple(ks.shape[-2:]), lows)
    own_s = float(noise_variance(ks * masks, masks).variance)
    single = reconstruct_chunk((ks + _noise(ks, 10.0 * math.sqrt(own_s), 1)) * masks, masks, calib_s,
                               ChunkConfig(None, 0.02, 6), multicoil=False)
    assert single.slices[0]["lambda"] == pytest.approx(0.02) and single.slices[0]["lambda_rule"] == "default (single coil)"


def test_discrepancy_lambda_hits_the_target_of_a_power_law_and_clamps():
    default = torch.tensor([0.01, 0.01, 0.01])
    target = torch.tensor([2.0, 1e-12, 1e12])

    def residual(lam: torch.Tensor) -> torch.Tensor:
        return 5e3 * lam**1.5  # residual(0.01) = 5.0

    lam, probes, applied = discrepancy_lambda(residual, target, default)
    assert probes.shape == (2, 3)
    assert float(residual(lam[:1])) == pytest.approx(2.0, rel=1e-4)
    # a target below the lower probe's residual (model error, not noise) keeps the default
    assert lam[1:].tolist() == pytest.approx([0.01, 0.01 * LAMBDA_RANGE], rel=1e-5)
    assert applied.tolist() == [True, False, True]


def test_chosen_lambda_rises_with_noise_and_its_residual_meets_the_target(sample_kspace):
    """Single-coil sample slice at 4x: more noise, larger lambda; the chosen lambda's residual (a
    probe-length solve) lands near the discrepancy target it was chosen for."""
    k, mask, low = sample_kspace["singlecoil"]
    calib = calibration_region(mask.numpy(), tuple(k.shape[-2:]), low)
    own = float(noise_variance(k * mask, mask).variance)
    lams, infos = [], []
    for factor in (0.0, 3.0, 10.0):
        noisy = (k + _noise(k, factor * math.sqrt(own), 2)) * mask
        result = reconstruct_chunk(noisy, mask, calib, ChunkConfig(None, 0.002, 20, lam_rule="discrepancy"), multicoil=False)
        lams.append(result.slices[0]["lambda"])
        infos.append(result.slices[0])
    assert lams[0] < lams[1] < lams[2], lams
    # where the principle chose lambda inside the clamp, a probe-length solve there meets the target
    inside = [i for i, lam in enumerate(lams) if infos[i]["lambda_rule"] == "discrepancy"
              and 0.002 / LAMBDA_RANGE * 1.01 < lam < 0.002 * LAMBDA_RANGE / 1.01]
    assert inside, (lams, infos)
    for i in inside:
        noisy = (k + _noise(k, (0.0, 3.0, 10.0)[i] * math.sqrt(own), 2)) * mask
        image = tv_recon(noisy[:, 0], mask, None, lams[i], max_iter=ChunkConfig(None, 0.002, 20).selection_iters).image
        residual = float(torch.view_as_real(fft2c(image) * mask - noisy[:, 0]).square().sum())
        measured = int((noisy[:, 0].abs() > 0).sum())
        target = DISCREPANCY_TAU * float(noise_variance(noisy, mask).variance) * measured
        assert residual == pytest.approx(target, rel=0.25), (i, lams, infos)


def test_lambda_discrepancy_end_to_end_on_a_real_scan_reports_its_choice_and_beats_zero_filling(tmp_path):
    """``cs-recon --lam discrepancy`` on the real 16-coil phantom with its noise (8x): the JSON says what set
    lambda per slice, and the image clears zero filling + 0.02 SSIM."""
    path = tmp_path / "phantom.h5"
    convert_npy(REAL_DATA / "phantom_16coil_96_with_noise.npy", path, ConvertConfig())
    mask = ("--mask", "random", "--accel", "8")
    runner = CliRunner()
    cs = runner.invoke(app, ["cs-recon", str(path), "-o", str(tmp_path / "cs"), "-q", "--lam", "discrepancy", "--json", "-", *mask])
    assert cs.exit_code == 0, cs.output
    (info,) = json.loads(cs.stdout)["results"][0]["info"]["slices"]
    assert info["lambda_rule"] in ("discrepancy", "default (residual above the noise target)")
    assert info["noise_sigma"] > 0 and len(info["probe_residual_ratio"]) == 2 and info["lambda"] > 0
    zf = runner.invoke(app, ["zf-recon", str(path), "-o", str(tmp_path / "zf"), "-q", *mask])
    assert zf.exit_code == 0, zf.output
    cs_ssim, zf_ssim = (ssim_against_target(path, tmp_path / name) for name in ("cs", "zf"))
    assert cs_ssim > zf_ssim + 0.02, (cs_ssim, zf_ssim)


@pytest.mark.parametrize("value", ["often", "-1", "nan"])
def test_an_unusable_lam_is_one_sentence_and_writes_nothing(volume_factory, tmp_path, value):
    src = volume_factory("vol.h5", slices=1)
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["cs-recon", str(src), "-o", str(out), "--mask", "random", "--accel", "4",
                                      "--lam", value, "-q"])
    assert result.exit_code != 0
    message = (result.stderr or result.output).strip()
    assert "--lam" in message and len(message.splitlines()) == 1, message
    assert not out.exists()
