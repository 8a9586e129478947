"""Formulations and data-driven choices of ``mrirecon.cs.chunk``: two ESPIRiT map
sets on an aliased sample scan, the map-free formulation on a tiny calibration region, lambda auto."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from cli_helpers import ssim_against_target
from mrirecon.cli import app
from mrirecon.cs.chunk import MAX_MAP_MISFIT, ChunkConfig, reconstruct_chunk
from mrirecon.cs.lambda_choice import LAMBDA_RANGE
from mrirecon.io import open_volume
from mrirecon.metrics import volume_metrics
from mrirecon.mri.crop import center_crop
from mrirecon.mri.espirit import espirit
from mrirecon.mri.fft import ifft2c
from mrirecon.mri.masks import column_mask
from mrirecon.mri.sensitivity import calibration_region, estimate_maps, low_res_images, map_misfit
from mrirecon.pipelines.sample_data import SampleDataConfig, generate_sample_data

pytestmark = pytest.mark.usefixtures("one_torch_thread")
runner = CliRunner()


@pytest.fixture(scope="module")
def sample_slice(tmp_path_factory):
    """One fully sampled multi-coil sample slice ``(1, 8, H, W)``."""
    out = tmp_path_factory.mktemp("sample")
    summary = generate_sample_data(out, SampleDataConfig(challenge="multicoil", volumes=1, slices=1, coils=8), quiet=True)
    with open_volume(Path(summary.results[0].output)) as volume:
        return torch.from_numpy(volume.read_kspace(0, 1))


@pytest.fixture(scope="module")
def aliased_sample(sample_slice):
    """A multi-coil sample slice whose field of view is halved by dropping every other phase-encode
    column: the head folds over itself."""
    full = sample_slice[..., ::2].contiguous()
    h, w = full.shape[-2:]
    target = center_crop(torch.linalg.vector_norm(ifft2c(full), dim=1), (h // 2, w)).numpy()
    return full, target


def _score(target: np.ndarray, magnitude: torch.Tensor) -> float:
    return volume_metrics(target, center_crop(magnitude, target.shape[-2:]).numpy().astype(np.float32))["ssim"]


def test_two_map_sets_fix_an_aliased_field_of_view(aliased_sample):
    full, target = aliased_sample
    h, w = full.shape[-2:]
    mask_np, low = column_mask("random", w, 4, 0.2, seed=(1, 2, 3))
    mask = torch.from_numpy(mask_np)
    kspace = full * mask
    calib = calibration_region(mask_np, (h, w), low)
    two = espirit(center_crop(kspace, calib), (h, w), sets=2)
    second = two.maps[:, 1]
    assert two.maps.shape == (1, 2, full.shape[1], h, w)
    assert 0.02 < float((torch.linalg.vector_norm(second, dim=1) > 0).float().mean()) < 0.9  # only where it folds
    # where both sets are kept they are orthonormal eigenvectors (up to interpolation)
    both = (torch.linalg.vector_norm(second, dim=1) > 0)[0]
    inner = torch.linalg.vecdot(two.maps[0, 0], two.maps[0, 1], dim=0).abs()[both]
    assert float(inner.median()) < 0.1
    zf = _score(target, torch.linalg.vector_norm(ifft2c(kspace), dim=1))
    scores, results = {}, {}
    for maps in ("1", "2", "auto"):
        results[maps] = reconstruct_chunk(kspace, mask, calib, ChunkConfig(0.002, 0.002, 20, maps=maps))
        scores[maps] = _score(target, results[maps].magnitude)
    assert scores["2"] > max(scores["1"], zf) + 0.02, (scores, zf)
    # the one-set maps do not hold for folded data: auto leaves them (from the calibration data alone)
    info = results["auto"].slices[0]
    assert info["formulation"] == "coil" and (info["weak_maps"] or info["map_misfit"] > MAX_MAP_MISFIT), info
    assert scores["auto"] > scores["1"] + 0.1 and scores["auto"] > zf + 0.02, (scores, zf)


def test_map_misfit_trusts_maps_that_explain_the_calibration_images(sample_slice):
    """``map_misfit`` is 0 for maps parallel to the coil images, large for maps of another object,
    and ESPIRiT's maps of a full field of view pass the ``maps=auto`` test at 4x."""
    h, w = sample_slice.shape[-2:]
    mask_np, low = column_mask("random", w, 4, 0.08, seed=(1,))
    calib = calibration_region(mask_np, (h, w), low)
    kspace = sample_slice * torch.from_numpy(mask_np)
    images = low_res_images(kspace, calib)
    own = images / torch.linalg.vector_norm(images, dim=1, keepdim=True).clamp(min=1e-30)
    assert float(map_misfit(images, own)) < 1e-6
    assert float(map_misfit(images, own.roll(w // 3, dims=-1))) > 0.3
    from mrirecon.mri.coil_compression import compress, compression_matrix

    kspace = compress(kspace, compression_matrix(kspace, calib, 0.99))  # as cs-recon does first
    est = estimate_maps(kspace, calib)
    assert not bool(est.weak[0]) and float(est.misfit[0]) < MAX_MAP_MISFIT, float(est.misfit[0])


def test_map_free_formulation_on_a_tiny_calibration_region(tmp_path, volume_factory):
    """Three calibration columns: one-set SENSE refuses, ``--maps auto`` (the default) solves without maps and beats zero filling."""
    src = volume_factory("tiny.h5", slices=2, coils=4, shape=(64, 64), recon=(32, 32))
    common = ["--mask", "equispaced", "--accel", "4", "--center-fraction", "0.05", "-q", "--iters", "20"]
    refused = runner.invoke(app, ["cs-recon", str(src), "-o", str(tmp_path / "one"), *common, "--maps", "1"])
    assert refused.exit_code == 1 and "too small" in refused.output + str(refused.stderr)
    auto = runner.invoke(app, ["cs-recon", str(src), "-o", str(tmp_path / "auto"), *common, "--json", "-"])
    assert auto.exit_code == 0, auto.output
    info = json.loads(auto.stdout)["results"][0]["info"]
    assert [s["formulation"] for s in info["slices"]] == ["coil", "coil"]
    zf = runner.invoke(app, ["zf-recon", str(src), "-o", str(tmp_path / "zf"), *common[:-2]])
    assert zf.exit_code == 0, zf.output
    cs_ssim, zf_ssim = (ssim_against_target(src, tmp_path / name) for name in ("auto", "zf"))
    assert cs_ssim > zf_ssim + 0.02, (cs_ssim, zf_ssim)


@pytest.mark.parametrize("rule", ["auto", "discrepancy"])
def test_lambda_rules_are_per_slice_and_scale_free_and_fixed_lambda_is_unchanged(aliased_sample, rule):
    full, _ = aliased_sample
    full = full.expand(2, -1, -1, -1).clone()
    full[1] *= 3.0  # a brighter slice: lambda is dimensionless, so the choice may differ only through the data
    h, w = full.shape[-2:]
    mask_np, low = column_mask("random", w, 4, 0.2, seed=(4,))
    mask = torch.from_numpy(mask_np)
    calib = calibration_region(mask_np, (h, w), low)
    auto = reconstruct_chunk(full * mask, mask, calib, ChunkConfig(None, 0.002, 10, maps="1", lam_rule=rule))
    assert all(0.002 / LAMBDA_RANGE * 0.999 <= s["lambda"] <= 0.002 * LAMBDA_RANGE * 1.001 for s in auto.slices)
    # scale invariance: both slices hold the same image (and noise), so they get the same lambda
    assert auto.slices[0]["lambda"] == pytest.approx(auto.slices[1]["lambda"], rel=1e-3)
    assert auto.slices[1]["noise_sigma"] == pytest.approx(3 * auto.slices[0]["noise_sigma"], rel=1e-3)
    assert auto.slices[0]["lambda_rule"] == auto.slices[1]["lambda_rule"]
    rules = {"auto": ("noise-scaled", "default (noise below the reference)"),
             "discrepancy": ("discrepancy", "default (residual above the noise target)")}[rule]
    assert auto.slices[0]["lambda_rule"] in rules
    fixed = reconstruct_chunk(full * mask, mask, calib, ChunkConfig(0.004, 0.002, 10, maps="1"))
    assert [s["lambda"] for s in fixed.slices] == [pytest.approx(0.004)] * 2
    assert "lambda_rule" not in fixed.slices[0] and "noise_sigma" not in fixed.slices[0]
