"""``scripts/bench_cs.py``: the suite holds every case the issue names, and one tiny case runs end to end
(mrirecon's default TV, wavelet and TV+wavelet against zero-filled; BART left out, CI need not have it);
``scripts/bench_wavelet.py``'s settings sweep on one suite case."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from conftest import REAL_DATA

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "bench_cs.py"
#: Real files without ground truth: the suite cannot score them.
NO_GROUND_TRUTH = {"brain_8coil_poisson_undersampled", "noise_16coil_96"}


def test_suite_has_every_case_the_issue_names(bench):
    cases = bench.suite(knee_slices=3)
    labels = [c.label for c in cases]
    for challenge in ("multicoil", "singlecoil"):
        assert sum(label.startswith(f"sample {challenge} seed") for label in labels) >= 3
    assert all(c.accels == (4, 8) for c in cases if not c.knee)
    assert [c.accels for c in cases if c.knee] == [(4,)]
    assert any("aliased" in label for label in labels) and any("GE phantom 8-coil 7 sl" in label for label in labels)
    assert any("brain 1-coil" in label for label in labels)
    if REAL_DATA.is_dir():
        with_truth = {p.stem for p in REAL_DATA.glob("*.npy")} - NO_GROUND_TRUTH
        assert {name for _, name, _ in bench.REAL_CASES} == with_truth
    assert [c.label for c in bench.select(cases, "aliased, GE")] == ["real brain aliased FOV", "real GE phantom 8-coil 7 sl"]


def test_real_variants_alias_and_make_one_virtual_coil(bench):
    rng = np.random.default_rng(0)
    kspace = (rng.standard_normal((2, 3, 8, 6)) + 1j * rng.standard_normal((2, 3, 8, 6))).astype(np.complex64)
    assert np.array_equal(bench.real_variant(kspace, "aliased"), kspace[..., ::2])
    single = bench.real_variant(kspace, "virtual1")
    assert single.shape == (2, 8, 6) and single.dtype == np.complex64
    # the dominant coil combination keeps more energy than any single coil
    assert np.linalg.norm(single) >= max(np.linalg.norm(kspace[:, c]) for c in range(3)) - 1e-4


def test_one_tiny_case_runs_and_prints_its_row_and_targets(bench, tmp_path, capsys):
    case = bench.Case("sample multicoil seed 5", bench._sample("multicoil", 5, slices=1))
    path = case.make(tmp_path)
    row = bench.run_case(case, path, 4, tmp_path, bench.Options(bart=False, tv_wavelet=True))
    assert row["case"] == "sample multicoil seed 5 4x"
    zf_ssim = row["zf"][0]
    for tool in ("mrirecon", "wavelet", "tv+wavelet"):
        seconds, (ssim, psnr), setting = row[tool]
        assert setting == "default" and seconds > 0 and np.isfinite(psnr)
        assert ssim > zf_ssim, f"{tool} {ssim:.4f} not above zero-filled {zf_ssim:.4f}"
    bench.print_table([row])
    out = capsys.readouterr().out
    assert "| sample multicoil seed 5 4x |" in out and "BART" not in out.split("\n")[1]
    assert "wavelet default >= zero-filled + 0.02: " in out and "TV+wavelet default >= zero-filled + 0.02: " in out


def test_variant_columns_run_cs_recon_with_their_options(bench, tmp_path, capsys):
    """``--variant ARGS``: cs-recon with extra options as its own column, scored like the default (one
    iteration must differ from the default's 30 and score below it on this case)."""
    case = bench.Case("sample multicoil seed 5", bench._sample("multicoil", 5, slices=1))
    path = case.make(tmp_path)
    row = bench.run_case(case, path, 4, tmp_path, bench.Options(wavelet=False, bart=False, variants=("--iters 1",)))
    seconds, (ssim, psnr), setting = row["cs-recon --iters 1"]
    assert setting == "--iters 1" and seconds > 0 and row["cs-recon --iters 1 cpu"] > 0
    assert ssim < row["mrirecon"][1][0], (ssim, row["mrirecon"])
    bench.print_table([row])
    head = capsys.readouterr().out.strip().split("\n")[0]
    assert head.index("cs-recon TV default") < head.index("cs-recon --iters 1")


def test_bart_columns_run_the_real_bart(bench, tmp_path):
    """The peer columns come from Debian's BART itself (``ecalib`` + ``pics -R T`` / ``pics -l1``),
    installed with apt when missing: best over the lambda sweep, scored like our columns."""
    from conftest import apt_tool

    apt_tool("bart", "bart")
    case = bench.Case("sample multicoil seed 5", bench._sample("multicoil", 5, slices=1))
    path = case.make(tmp_path)
    row = bench.run_case(case, path, 4, tmp_path, bench.Options(tv=False, wavelet=False, bart=True, bart_dc=True))
    for column, settings in (("bart", bench.LAMS_BART), ("bart -l1", bench.LAMS_BART_L1),
                             ("bart dc", bench.LAMS_BART), ("bart -l1 dc", bench.LAMS_BART_L1)):
        seconds, (ssim, psnr), setting = row[column]
        assert seconds > 0 and np.isfinite(psnr) and ssim > row["zf"][0], (column, ssim, row["zf"])
        assert float(str(setting).split()[-1 if "-l1" in column else 0]) in settings


def test_hard_dc_of_another_tools_image_fits_its_scale_and_equals_ours(bench):
    """``--bart-dc``: BART's image, at whatever scale ``pics -S`` left it, gets exactly the step
    ``cs-recon --data-consistency hard`` applies (``mri.coils.data_consistent_coils`` + RSS + the noise floor)."""
    import torch

    from mrirecon.cs.noise_floor import background_noise, missing_noise_energy, sampled_shares, with_noise_floor
    from mrirecon.mri.coils import data_consistent_coils, rss
    from mrirecon.mri.fft import fft2c

    rng = np.random.default_rng(0)
    maps = (rng.standard_normal((3, 16, 12)) + 1j * rng.standard_normal((3, 16, 12))).astype(np.complex64)
    image = (rng.standard_normal((16, 12)) + 1j * rng.standard_normal((16, 12))).astype(np.complex64)
    kspace = (rng.standard_normal((3, 16, 12)) + 1j * rng.standard_normal((3, 16, 12))).astype(np.complex64)
    mask = rng.random(12) < 0.5
    measured = kspace * mask
    # the image that explains the data best on the measured samples, at the data's scale
    pred = fft2c(torch.from_numpy(maps * image[None])).numpy()
    p, y = pred[:, :, mask], measured[:, :, mask]
    fitted = image * (np.vdot(p, y) / np.vdot(p, p).real)
    ours = rss(data_consistent_coils(fft2c(torch.from_numpy(maps * fitted[None])), torch.from_numpy(measured),
                                     torch.from_numpy(mask[None, None, :])), dim=0).numpy()
    # and the default's noise floor (this k-space is all noise: every readout row is noise-only)
    data, column = torch.from_numpy(measured)[None], torch.from_numpy(mask)
    noise = background_noise(data, column).variance
    assert noise.isfinite().all()
    ours = with_noise_floor(torch.from_numpy(ours)[None], missing_noise_energy(noise, noise, *sampled_shares(data, column)))[0].numpy()
    for scale in (1.0, 1e-3, 250.0 - 3j):
        np.testing.assert_allclose(bench.hard_dc_rss(image * scale, maps, measured, mask), ours, rtol=1e-4, atol=1e-5)


def test_wavelet_sweep_scores_each_setting_and_restores_the_defaults(bench, tmp_path, monkeypatch, capsys):
    """``scripts/bench_wavelet.py``: one row per setting on a suite case, best lambda per family, and
    the module constants it sets per run are put back."""
    import importlib.util

    import mrirecon.cs.formulations as formulations

    spec = importlib.util.spec_from_file_location("bench_wavelet", SCRIPT.parent / "bench_wavelet.py")
    sweep = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(sweep)
    defaults = (formulations.WAVELET, formulations.WAVELET_LEVELS)
    rows = tmp_path / "rows.jsonl"
    monkeypatch.setattr(sys, "argv", ["bench_wavelet.py", "--cases", "sample multicoil seed 21", "--accels", "4",
                                      "--waves", "db1,db4", "--lams", "0.002,0.005", "--iters", "5",
                                      "--work", str(tmp_path), "--json", str(rows)])
    sweep.main()
    saved = [json.loads(line) for line in rows.read_text().splitlines()]
    assert [(r["wave"], r["lam"]) for r in saved] == [("db1", "0.002"), ("db1", "0.005"), ("db4", "0.002"), ("db4", "0.005")]
    assert all(0 < r["ssim"] < 1 for r in saved)
    out = capsys.readouterr().out
    for wave in ("db1", "db4"):
        best = max((r for r in saved if r["wave"] == wave), key=lambda r: r["ssim"])
        assert f"sample multicoil seed 21 4x: {wave} 4 levels, iters 5: lambda {best['lam']} SSIM {best['ssim']:.4f}" in out
    assert (formulations.WAVELET, formulations.WAVELET_LEVELS) == defaults
