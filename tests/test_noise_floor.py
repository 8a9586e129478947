"""The noise floor ``cs-recon`` restores by default (``mrirecon.cs.noise_floor``): the background
noise estimate, the k-space shares, the energy arithmetic, and the pipeline on real and sample
scans (where it is measured, where it is left out, scale, coil compression, ``--no-noise-floor``)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from scipy.ndimage import uniform_filter
from typer.testing import CliRunner

from conftest import REAL_DATA
from mrirecon.cli import app
from mrirecon.cs.noise_floor import (
    HAAR_METHOD,
    QUIET_ROWS_METHOD,
    background_noise,
    missing_noise_energy,
    sampled_shares,
    with_noise_floor,
)
from mrirecon.io import read_reconstruction
from mrirecon.mri.fft import fft2c
from mrirecon.mri.masks import MaskSpec, column_mask
from mrirecon.pipelines.convert import ConvertConfig, convert_npy
from mrirecon.pipelines.cs_recon import CSConfig, cs_file

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _noise(shape, sigma: float, seed: int) -> torch.Tensor:
    """Complex white noise of ``E|n|^2 = sigma^2`` per sample."""
    gen = torch.Generator().manual_seed(seed)
    return torch.complex(torch.randn(shape, generator=gen), torch.randn(shape, generator=gen)) * (sigma / math.sqrt(2))


def _object_kspace(rows: slice, coils: int = 4, height: int = 128, width: int = 96, seed: int = 0,
                   smooth: bool = False) -> torch.Tensor:
    """Noise-free k-space ``(1, C, H, W)`` of an object on readout rows ``rows`` (all columns), with
    texture at the finest scale unless ``smooth``."""
    rng = np.random.default_rng(seed)
    image = np.zeros((height, width), np.complex64)
    n = rows.stop - rows.start
    image[rows] = 1.0 + (0.0 if smooth else 0.5) * rng.standard_normal((n, width))
    y, x = np.mgrid[0:height, 0:width] / max(height, width)
    maps = np.stack([np.exp(-((y - 0.5 - 0.3 * np.cos(a)) ** 2 + (x - 0.5 - 0.3 * np.sin(a)) ** 2))
                     for a in np.linspace(0, 2 * np.pi, coils, endpoint=False)])
    return fft2c(torch.from_numpy((maps * image).astype(np.complex64))).unsqueeze(0)


def test_background_noise_reads_the_quiet_readout_rows_and_declines_without_them():
    """An object on the middle half of the readout (an oversampled readout) with white noise of known
    energy: the quiet rows give it within 10%. The same object spanning the readout has no
    noise-only rows: at low noise (fine detail would pass for noise) nothing is read; where the
    noise outweighs the detail the Haar estimate is used. A 2D mask has no fully sampled readout:
    nothing is read."""
    coils, sigma = 4, 0.05
    mask = torch.from_numpy(column_mask("random", 96, 4, 0.08, seed=(1,))[0])
    truth = coils * sigma**2  # per k-space sample, summed over the coils
    clean = _object_kspace(slice(32, 96), coils)
    noisy = (clean + _noise(clean.shape, sigma, 3)) * mask
    estimate = background_noise(noisy, mask)
    assert estimate.methods == [QUIET_ROWS_METHOD]
    assert abs(float(estimate.variance[0]) / truth - 1) < 0.1, float(estimate.variance[0]) / truth
    spanning = _object_kspace(slice(0, 128), coils, smooth=True)
    quiet = background_noise((spanning + _noise(spanning.shape, 0.002, 3)) * mask, mask)
    assert quiet.variance.isnan().all() and quiet.methods == [None]
    loud = background_noise((spanning + _noise(spanning.shape, 0.5, 3)) * mask, mask)
    assert loud.methods == [HAAR_METHOD] and abs(float(loud.variance[0]) / (coils * 0.25) - 1) < 0.15
    mask2d = torch.rand(128, 96, generator=torch.Generator().manual_seed(0)) < 0.3
    assert background_noise(noisy * mask2d, mask2d).methods == [None]


def test_background_noise_scales_with_the_data():
    mask = torch.from_numpy(column_mask("random", 96, 4, 0.08, seed=(1,))[0])
    clean = _object_kspace(slice(40, 90))
    k = (clean + _noise(clean.shape, 0.05, 4)) * mask
    ratio = background_noise(1000 * k, mask).variance / background_noise(k, mask).variance
    assert torch.allclose(ratio, torch.tensor([1e6]), rtol=1e-3)


def test_sampled_shares_count_padding_and_the_mask():
    """``present``: the grid's share with data (zero-padded columns excluded); ``measured``: the share
    the mask keeps with data."""
    k = torch.ones(1, 2, 8, 20, dtype=torch.complex64)
    k[..., :2] = 0  # two zero-padded columns
    everything = torch.ones(20, dtype=torch.bool)
    assert sampled_shares(k, everything) == pytest.approx((18 / 20, 18 / 20))
    every_other = torch.arange(20) % 2 == 0  # samples padded column 0, so 9 of its 10 columns hold data
    present, measured = sampled_shares(k * every_other, every_other)
    assert measured == pytest.approx(9 / 20) and present == pytest.approx(9 / 10)


def test_missing_noise_energy_is_what_the_reference_has_and_the_output_lacks():
    ref, out = torch.tensor([4.0, 4.0, float("nan"), 1.0]), torch.tensor([2.0, float("nan"), 2.0, 8.0])
    missing = missing_noise_energy(ref, out, present=1.0, measured=0.25)
    # 4 - 2 * 0.25; not measured (NaN) -> nothing added; never negative (1 - 8 * 0.25 < 0)
    assert missing.tolist() == [3.5, 0.0, 0.0, 0.0]


def test_with_noise_floor_adds_in_quadrature_per_slice():
    magnitude = torch.tensor([[[3.0, 0.0]], [[0.0, 1.0]]])
    out = with_noise_floor(magnitude, torch.tensor([16.0, 0.0]))
    assert out.tolist() == [[[5.0, 4.0]], [[0.0, 1.0]]]


@pytest.fixture(scope="module")
def brain(tmp_path_factory):
    """The real 4-coil brain (fastMRI-like: the head inside an oversampled readout)."""
    path = tmp_path_factory.mktemp("brain") / "brain.h5"
    convert_npy(REAL_DATA / "brain_t2_4coil.npy", path, ConvertConfig())
    return path


def _recon(path, out, **options):
    result = cs_file(path, out, CSConfig(mask=MaskSpec("random", options.pop("accel", 4)), device="cpu", overwrite=True, **options))
    assert result.ok, result.error
    return np.asarray(read_reconstruction(out)), result.info


def test_the_floor_lifts_ssim_on_the_real_brain_and_is_reported(bench, brain, tmp_path):
    """Measured 0.878 -> 0.910 at 4x (``scripts/bench_cs_choice.py --floor``); the background sits at the
    reference's noise level instead of below it."""
    *_, target, _ = bench.undersample(brain, 4)
    with_floor, info = _recon(brain, tmp_path / "floor.h5")
    without, info_off = _recon(brain, tmp_path / "plain.h5", noise_floor=False)
    (s,) = info["slices"]
    assert s["noise_floor"] > 0 and s["noise_floor_method"] == QUIET_ROWS_METHOD
    assert "noise_floor" not in info_off["slices"][0]
    ssim_floor, ssim_plain = bench.score(target, with_floor)[0], bench.score(target, without)[0]
    assert ssim_floor > ssim_plain + 0.02, (ssim_floor, ssim_plain)
    # the background (where the smoothed reference is below 5% of its peak, 47% of the image):
    # with the floor its mean energy is the reference's within 30%, without it well below
    background = uniform_filter(target.astype(np.float64), (1, 9, 9)) < 0.05 * float(target.max())
    energy = lambda image: float((image[background].astype(np.float64) ** 2).mean())  # noqa: E731
    assert abs(energy(with_floor) / energy(target) - 1) < 0.3, (energy(with_floor), energy(target))
    assert energy(without) < 0.6 * energy(target), (energy(without), energy(target))


def test_the_floor_is_scale_free_and_keeps_the_background_level_under_coil_compression(tmp_path):
    """The real 16-coil phantom: k-space x1000 gives the output x1000; compressing the coils changes how
    much noise the output keeps, not the level the floor brings its background to."""
    raw = np.load(REAL_DATA / "phantom_16coil.npy")
    paths = {}
    for name, scale in (("one", 1.0), ("thousand", 1000.0)):
        (tmp_path / name).mkdir()
        np.save(tmp_path / name / "phantom.npy", (raw * scale).astype(np.complex64))
        paths[name] = tmp_path / name / "phantom.h5"  # one name: the random mask depends on it
        convert_npy(tmp_path / name / "phantom.npy", paths[name], ConvertConfig())
    base, info = _recon(paths["one"], tmp_path / "o1.h5", coil_energy=1.0)
    scaled, _ = _recon(paths["thousand"], tmp_path / "o1000.h5", coil_energy=1.0)
    assert info["slices"][0]["noise_floor"] > 0
    np.testing.assert_allclose(scaled, 1000 * base, rtol=2e-3, atol=2e-3 * 1000 * float(base.max()))
    compressed, cinfo = _recon(paths["one"], tmp_path / "oc.h5", coil_energy=0.9)
    assert cinfo["virtual_coils"] < 16
    quiet = base < np.quantile(base, 0.1)
    level = lambda image: float((image[quiet].astype(np.float64) ** 2).mean())  # noqa: E731
    assert abs(level(compressed) / level(base) - 1) < 0.2, (level(compressed), level(base))


def test_no_floor_where_the_object_spans_the_readout(tmp_path):
    """Sample scans are legs running through the readout: no noise-only rows, so no floor (reported
    as null) and the output is the one without it."""
    from mrirecon.pipelines.sample_data import SampleDataConfig, generate_sample_data

    summary = generate_sample_data(tmp_path / "data", SampleDataConfig(volumes=1, slices=2, coils=4, seed=22), quiet=True)
    path = summary.results[0].output
    default, info = _recon(path, tmp_path / "a.h5")
    plain, _ = _recon(path, tmp_path / "b.h5", noise_floor=False)
    assert all(s["noise_floor"] is None and s["noise_floor_method"] is None for s in info["slices"])
    np.testing.assert_array_equal(default, plain)


def test_noisier_copy_of_a_held_out_scan_clears_zero_filling_with_the_floor(bench, tmp_path):
    """Sample seed 31 with 3x its own noise at 8x (``bench_cs_choice.py --floor --seeds 31 --add-noise 3``):
    without the floor CS fell below zero filling (0.379 against 0.396), with it 0.476."""
    import importlib.util

    from mrirecon.mri.zero_filled import zero_filled

    script = Path(__file__).resolve().parents[1] / "scripts" / "bench_cs_choice.py"
    spec = importlib.util.spec_from_file_location("bench_cs_choice", script)
    bench_cs_choice = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench_cs_choice)

    (case,) = bench.select(bench.suite(knee_slices=0, seeds=[31]), "sample multicoil")
    path = bench_cs_choice.noisy_copy(case.make(tmp_path), 3, tmp_path)
    kspace, _, _, target, crop = bench.undersample(path, 8)
    zf = bench.score(target, zero_filled(torch.from_numpy(kspace), crop).numpy())[0]
    default, _ = _recon(path, tmp_path / "cs.h5", accel=8)
    plain, _ = _recon(path, tmp_path / "plain.h5", accel=8, noise_floor=False)
    ssim, ssim_plain = bench.score(target, default)[0], bench.score(target, plain)[0]
    assert ssim >= zf + 0.02 and ssim > ssim_plain, (ssim, ssim_plain, zf)


def test_no_noise_floor_flag_reaches_the_output_and_its_attributes(volume_factory, tmp_path):
    src = volume_factory("vol.h5", slices=1)
    runner = CliRunner()
    for flag, name in (("--noise-floor", "on"), ("--no-noise-floor", "off")):
        result = runner.invoke(app, ["cs-recon", str(src), "-o", str(tmp_path / name), "--mask", "random", "--accel", "4",
                                     flag, "-q", "--json", "-"])
        assert result.exit_code == 0, result.output
        (s,) = json.loads(result.stdout)["results"][0]["info"]["slices"]
        assert ("noise_floor" in s) == (name == "on")
        with h5py.File(tmp_path / name / "vol.h5") as h5:
            assert bool(h5.attrs["noise_floor"]) == (name == "on")


def test_quiet_rows_read_the_noise_of_a_real_noise_acquisition():
    """The real 16-coil phantom comes with a noise-only acquisition of the same coils
    (``noise_16coil_96.npy``), an estimate-free truth nothing here was tuned on: the quiet-row
    reading of the undersampled phantom is 0.80 (4x) and 0.82 (8x) of its energy per sample, on the
    low side (a floor a little too low costs less than one too high)."""
    kspace = torch.from_numpy(np.load(REAL_DATA / "phantom_16coil_96_with_noise.npy").astype(np.complex64))
    noise = np.load(REAL_DATA / "noise_16coil_96.npy")
    truth = float((np.abs(noise) ** 2).mean(axis=1).sum())
    for accel, centre in ((4, 0.08), (8, 0.04)):
        mask = torch.from_numpy(column_mask("random", kspace.shape[-1], accel, centre, seed=(1,))[0])
        estimate = background_noise(kspace * mask, mask)
        assert estimate.methods == [QUIET_ROWS_METHOD]
        assert 0.7 < float(estimate.variance[0]) / truth < 1.1, float(estimate.variance[0]) / truth
