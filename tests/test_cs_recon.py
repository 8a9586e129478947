"""``mrirecon cs-recon`` end to end: outputs, scores against zero-filled, inputs, bad options."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from conftest import REAL_DATA
from mrirecon.cli import app
from mrirecon.io import open_volume, read_reconstruction, write_volume
from mrirecon.metrics import volume_metrics
from mrirecon.mri.masks import MaskSpec
from mrirecon.pipelines.convert import ConvertConfig, convert_npy
from mrirecon.pipelines.sample_data import SampleDataConfig, generate_sample_data

runner = CliRunner()


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _invoke(*args: str):
    return runner.invoke(app, [str(a) for a in args])


def _scores(target_path: Path, recon_path: Path) -> dict[str, float]:
    with open_volume(target_path) as volume:
        target = volume.read_target()
    return volume_metrics(target, read_reconstruction(recon_path))


def _cs_vs_zf(path: Path, tmp: Path, mask_options: tuple[str, ...], iters: int) -> tuple[dict, dict]:
    cs = _invoke("cs-recon", path, "-o", tmp / "cs", "-q", "--iters", iters, *mask_options)
    assert cs.exit_code == 0, cs.output
    zf = _invoke("zf-recon", path, "-o", tmp / "zf", "-q", *mask_options)
    assert zf.exit_code == 0, zf.output
    name = path.name
    return _scores(path, tmp / "cs" / name), _scores(path, tmp / "zf" / name)


@pytest.fixture(scope="module")
def sample_files(tmp_path_factory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("sample")
    files = {}
    for challenge in ("multicoil", "singlecoil"):
        cfg = SampleDataConfig(challenge=challenge, volumes=1, slices=1, coils=6 if challenge == "multicoil" else None)
        summary = generate_sample_data(out / challenge, cfg, quiet=True)
        files[challenge] = Path(summary.results[0].output)
    return files


@pytest.mark.parametrize("challenge", ["multicoil", "singlecoil"])
@pytest.mark.parametrize("accel", [4, 8])
def test_cs_beats_zero_filled_on_sample_scans(sample_files, tmp_path, challenge, accel):
    path = sample_files[challenge]
    cs, zf = _cs_vs_zf(path, tmp_path, ("--mask", "random", "--accel", str(accel)), 30)
    # the issue's target: at least zero-filled + 0.02 SSIM (textured sample scans since i11's texture;
    # 8x keeps 6 centre columns of 144 here: a hard case, and ESPIRiT falls back to ACS maps)
    assert cs["ssim"] > zf["ssim"] + 0.02, (cs, zf)
    assert cs["psnr"] > zf["psnr"]


@pytest.mark.parametrize("challenge", ["multicoil", "singlecoil"])
def test_readout_window_equals_full_grid_solution(sample_files, tmp_path, challenge):
    """Sample scans have fastMRI's 2x oversampled readout: the default solves 180 of 256 rows."""
    path = sample_files[challenge]
    common = ("--mask", "random", "--accel", "4", "--iters", "20", "-q", "--json", "-")
    window = _invoke("cs-recon", path, "-o", tmp_path / "window", *common)
    full = _invoke("cs-recon", path, "-o", tmp_path / "full", *common, "--full-readout")
    assert window.exit_code == 0 and full.exit_code == 0, window.output + full.output
    assert '"solved_rows": 180' in window.output and '"solved_rows": 256' in full.output
    a = read_reconstruction(tmp_path / "window" / path.name)
    b = read_reconstruction(tmp_path / "full" / path.name)
    assert a.shape == b.shape
    assert np.linalg.norm(a - b) / np.linalg.norm(b) < 1e-3
    assert volume_metrics(b, a)["ssim"] > 0.999


def test_two_d_mask_solves_the_whole_oversampled_grid(volume_factory, tmp_path):
    path = volume_factory("vol.h5", slices=1, coils=4, shape=(128, 48), recon=(32, 32))
    sub = _invoke("subsample", path, "-o", tmp_path / "sub", "--mask", "poisson", "--accel", "4", "-q")
    assert sub.exit_code == 0, sub.output
    args = (tmp_path / "sub" / "vol.h5", "--iters", "5", "-q", "--json", "-")
    default = _invoke("cs-recon", *args, "-o", tmp_path / "a")
    full = _invoke("cs-recon", *args, "-o", tmp_path / "b", "--full-readout")
    assert default.exit_code == 0 and full.exit_code == 0, default.output + full.output
    assert '"solved_rows": 128' in default.output
    np.testing.assert_array_equal(read_reconstruction(tmp_path / "a" / "vol.h5"), read_reconstruction(tmp_path / "b" / "vol.h5"))
    column = _invoke("cs-recon", path, "-o", tmp_path / "c", "--mask", "random", "--accel", "4", "--iters", "5", "-q", "--json", "-")
    assert column.exit_code == 0 and '"solved_rows": 72' in column.output


@pytest.fixture(scope="module")
def real_brain(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("real") / "brain_t2_4coil.h5"
    convert_npy(REAL_DATA / "brain_t2_4coil.npy", path, ConvertConfig())
    return path


@pytest.mark.parametrize("accel", [4, 8])
def test_cs_beats_zero_filled_on_real_brain(real_brain, tmp_path, accel):
    cs, zf = _cs_vs_zf(real_brain, tmp_path, ("--mask", "random", "--accel", str(accel)), 40)
    assert cs["ssim"] > zf["ssim"] + 0.05, (cs, zf)
    assert cs["psnr"] > zf["psnr"] + 1.0


#: Shared real multi-coil scans where one-set SENSE at its default fell below zero filling, and
#: the map-free formulation the default ``--maps auto`` chooses there (``--json`` reports it).
REAL_DEFAULT_CASES = [
    ("phantom_16coil", 4, "coil"),  # maps that do not fit the calibration images (SENSE 0.589, zf 0.631)
    ("phantom_16coil_96_with_noise", 8, "coil"),  # weak maps, 4 calibration columns
    ("brain_t2_4coil_aliased", 4, "coil"),  # field of view half the head's (SENSE 0.569, zf 0.615)
]


@pytest.mark.parametrize("name,accel,formulation", REAL_DEFAULT_CASES)
def test_default_reconstruction_beats_zero_filled_on_shared_real_scans(tmp_path, name, accel, formulation):
    """Default options (maps auto, default lambda and iterations) on real scans: never below zero filling."""
    source = REAL_DATA / f"{name.removesuffix('_aliased')}.npy"
    if name.endswith("_aliased"):  # every other phase-encode column: the head folds over itself
        aliased = tmp_path / f"{name}.npy"
        np.save(aliased, np.ascontiguousarray(np.load(source)[..., ::2]))
        source = aliased
    path = tmp_path / f"{name}.h5"
    convert_npy(source, path, ConvertConfig())
    mask = ("--mask", "random", "--accel", str(accel))
    cs = _invoke("cs-recon", path, "-o", tmp_path / "cs", "-q", "--json", "-", *mask)
    assert cs.exit_code == 0, cs.output
    import json

    assert [s["formulation"] for s in json.loads(cs.stdout)["results"][0]["info"]["slices"]] == [formulation]
    zf = _invoke("zf-recon", path, "-o", tmp_path / "zf", "-q", *mask)
    assert zf.exit_code == 0, zf.output
    cs_scores, zf_scores = _scores(path, tmp_path / "cs" / path.name), _scores(path, tmp_path / "zf" / path.name)
    assert cs_scores["ssim"] > zf_scores["ssim"] + 0.02, (cs_scores, zf_scores)


def test_output_matches_zf_crop_and_test_style_input_equals_on_the_fly(volume_factory, tmp_path):
    path = volume_factory("vol.h5", slices=2, coils=4, shape=(64, 48), recon=(32, 32))
    fly = _invoke("cs-recon", path, "-o", tmp_path / "fly", "--mask", "equispaced", "--accel", "4", "--iters", "5", "-q")
    assert fly.exit_code == 0, fly.output
    sub = _invoke("subsample", path, "-o", tmp_path / "sub", "--mask", "equispaced", "--accel", "4", "-q")
    assert sub.exit_code == 0, sub.output
    test_style = _invoke("cs-recon", tmp_path / "sub" / "vol.h5", "-o", tmp_path / "ts", "--iters", "5", "-q")
    assert test_style.exit_code == 0, test_style.output
    zf = _invoke("zf-recon", path, "-o", tmp_path / "zf", "--mask", "equispaced", "--accel", "4", "-q")
    a = read_reconstruction(tmp_path / "fly" / "vol.h5")
    b = read_reconstruction(tmp_path / "ts" / "vol.h5")
    assert zf.exit_code == 0 and a.shape == read_reconstruction(tmp_path / "zf" / "vol.h5").shape == (2, 32, 32)
    np.testing.assert_array_equal(a, b)
    # the same command twice gives the same bytes; a third without --overwrite is refused
    again = _invoke("cs-recon", path, "-o", tmp_path / "fly2", "--mask", "equispaced", "--accel", "4", "--iters", "5", "-q")
    assert again.exit_code == 0
    np.testing.assert_array_equal(a, read_reconstruction(tmp_path / "fly2" / "vol.h5"))
    refused = _invoke("cs-recon", path, "-o", tmp_path / "fly", "--mask", "equispaced", "--accel", "4")
    assert refused.exit_code == 1 and "--overwrite" in refused.output


def test_options_solver_tv_batching_and_map_file(volume_factory, tmp_path):
    path = volume_factory("vol.h5", slices=3, coils=4, shape=(64, 48), recon=(32, 32))
    common = ("--mask", "random", "--accel", "4", "--iters", "8", "--lam", "0.01", "-q")
    whole = _invoke("cs-recon", path, "-o", tmp_path / "a", *common, "--batch-slices", "3")
    split = _invoke("cs-recon", path, "-o", tmp_path / "b", *common, "--batch-slices", "2")
    assert whole.exit_code == 0 and split.exit_code == 0, whole.output + split.output
    np.testing.assert_allclose(
        read_reconstruction(tmp_path / "a" / "vol.h5"), read_reconstruction(tmp_path / "b" / "vol.h5"), rtol=1e-4, atol=1e-6
    )
    for extra in (("--solver", "pdhg"), ("--tv", "anisotropic"), ("--sens", "acs")):
        result = _invoke("cs-recon", path, "-o", tmp_path / extra[1], *common, *extra)
        assert result.exit_code == 0, result.output
    maps = np.ones((4, 64, 48), dtype=np.complex64)
    np.save(tmp_path / "maps.npy", maps)
    result = _invoke("cs-recon", path, "-o", tmp_path / "maps", *common, "--sens-maps", tmp_path / "maps.npy")
    assert result.exit_code == 0, result.output


def test_two_d_poisson_mask_input(volume_factory, tmp_path):
    path = volume_factory("vol.h5", slices=1, coils=4, shape=(64, 48), recon=(32, 32))
    sub = _invoke("subsample", path, "-o", tmp_path / "sub", "--mask", "poisson", "--accel", "4", "-q")
    assert sub.exit_code == 0, sub.output
    result = _invoke("cs-recon", tmp_path / "sub" / "vol.h5", "-o", tmp_path / "cs", "--iters", "20", "--json", "-", "-q")
    assert result.exit_code == 0, result.output
    cs, zf_path = _scores(path, tmp_path / "cs" / "vol.h5"), tmp_path / "zf"
    assert _invoke("zf-recon", tmp_path / "sub" / "vol.h5", "-o", zf_path, "-q").exit_code == 0
    assert cs["ssim"] > _scores(path, zf_path / "vol.h5")["ssim"]


def test_real_undersampled_poisson_brain(tmp_path):
    path = tmp_path / "brain8.h5"
    convert_npy(REAL_DATA / "brain_8coil_poisson_undersampled.npy", path, ConvertConfig(undersampled=True))
    result = _invoke("cs-recon", path, "-o", tmp_path / "cs", "--iters", "20", "-q")
    assert result.exit_code == 0, result.output
    recon = read_reconstruction(tmp_path / "cs" / "brain8.h5")
    assert recon.shape[0] == 1 and np.isfinite(recon).all() and recon.max() > 0


@pytest.mark.parametrize("challenge", ["multicoil", "singlecoil"])
def test_hard_data_consistency_is_closer_to_the_target_than_the_soft_solution(sample_files, tmp_path, challenge):
    """The default output keeps the measured samples (the target's own values there); ``soft`` is the
    solver's image, whose measured samples the L2 data term smoothed: hard must have the lower error."""
    path = sample_files[challenge]
    mask = ("--mask", "random", "--accel", "8")
    for mode in ("hard", "soft"):
        result = _invoke("cs-recon", path, "-o", tmp_path / mode, "-q", "--data-consistency", mode, *mask)
        assert result.exit_code == 0, result.output
        with h5py.File(tmp_path / mode / path.name) as f:
            assert f.attrs["data_consistency"] == mode
    hard, soft = _scores(path, tmp_path / "hard" / path.name), _scores(path, tmp_path / "soft" / path.name)
    assert hard["nmse"] < soft["nmse"] and hard["ssim"] > soft["ssim"], (hard, soft)


def _one_line_error(result, code: int, *words: str) -> None:
    assert result.exit_code == code, result.output
    text = result.output.strip()
    assert "Traceback" not in text
    for word in words:
        assert word in text, text


def test_bad_inputs_give_one_sentence(volume_factory, tmp_path):
    path = volume_factory("vol.h5", slices=2, coils=4, shape=(64, 48), recon=(32, 32))
    _one_line_error(_invoke("cs-recon", path, "-o", tmp_path / "o"), 1, "no 'mask'", "--mask")
    _one_line_error(_invoke("cs-recon", path, "-o", tmp_path / "o", "--accel", "4", "--lam", "-1"), 2, "--lam")
    _one_line_error(_invoke("cs-recon", path, "-o", tmp_path / "o", "--accel", "4", "--iters", "0"), 2, "--iters")
    _one_line_error(_invoke("cs-recon", path, "-o", tmp_path / "o", "--accel", "4", "--solver", "sgd"), 2, "solver")
    _one_line_error(_invoke("cs-recon", path, "-o", tmp_path / "o", "--accel", "4", "--data-consistency", "exact"), 2,
                    "--data-consistency")
    np.save(tmp_path / "bad.npy", np.ones((3, 64, 48), dtype=np.complex64))
    _one_line_error(
        _invoke("cs-recon", path, "-o", tmp_path / "o", "--accel", "4", "--sens-maps", tmp_path / "bad.npy"), 2, "shape"
    )
    _one_line_error(_invoke("cs-recon", path, "-o", tmp_path / "o", "--accel", "4", "--sens", "nope"), 2, "nope")
    assert not (tmp_path / "o").exists() or [p.name for p in (tmp_path / "o").iterdir()] == [".mrirecon"]  # manifest only


def test_single_coil_file_without_padding_header(tmp_path):
    """A single-coil volume with a 2D mask and no num_low_frequency attribute."""
    rng = np.random.default_rng(0)
    kspace = (rng.standard_normal((1, 32, 24)) + 1j * rng.standard_normal((1, 32, 24))).astype(np.complex64)
    mask = np.zeros((32, 24), dtype=bool)
    mask[12:20, 8:16] = True
    mask[::2, ::3] = True
    write_volume(tmp_path / "sc.h5", kspace * mask, header_xml=None, attrs={}, mask=mask)
    result = _invoke("cs-recon", tmp_path / "sc.h5", "-o", tmp_path / "out", "--iters", "3", "-q")
    assert result.exit_code == 0, result.output
    zf = _invoke("zf-recon", tmp_path / "sc.h5", "-o", tmp_path / "zf", "-q")
    assert zf.exit_code == 0
    assert read_reconstruction(tmp_path / "out" / "sc.h5").shape == read_reconstruction(tmp_path / "zf" / "sc.h5").shape


def test_no_calibration_region_is_one_clear_error(tmp_path: Path, volume_factory) -> None:
    """A 2D mask on a narrow matrix can leave no fully sampled centre: a sentence, not a crash."""
    from mrirecon.io import write_volume
    from mrirecon.io.fastmri_h5 import open_volume

    src = volume_factory("narrow.h5", shape=(128, 32), recon=(64, 32))
    with open_volume(src) as volume:
        kspace, header = volume.read_kspace(), volume.header_xml
    mask = np.zeros((128, 32), dtype=bool)
    mask[::2, ::3] = True  # no fully sampled centre at all
    out = tmp_path / "test" / "narrow.h5"
    write_volume(out, kspace * mask, header_xml=header, attrs={"acceleration": 6}, mask=mask)
    result = runner.invoke(app, ["cs-recon", str(out), "-o", str(tmp_path / "cs")])
    assert result.exit_code == 1
    assert "too small to estimate coil sensitivities" in result.stderr and "narrow.h5" in result.stderr
    assert not (tmp_path / "cs" / "narrow.h5").exists()


def test_out_of_memory_halves_the_chunk_and_retries(tmp_path: Path, volume_factory, monkeypatch) -> None:
    """On CUDA OOM the chunk is halved and retried: same output, a note, no crash (simulated on CPU)."""
    import mrirecon.pipelines.cs_recon as cs

    src = volume_factory("oom.h5", slices=6, shape=(64, 48), recon=(32, 32))
    config = cs.CSConfig(device="cpu", batch_slices=6, iters=5, mask=MaskSpec("random", 4))
    expected = cs.cs_file(src, tmp_path / "a" / "oom.h5", config)
    real = cs.reconstruct_chunk
    sizes: list[int] = []

    def fake_chunk(kspace, *args, **kwargs):
        sizes.append(kspace.shape[0])
        if kspace.shape[0] > 2:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)")
        return real(kspace, *args, **kwargs)

    monkeypatch.setattr(cs, "reconstruct_chunk", fake_chunk)
    result = cs.cs_file(src, tmp_path / "b" / "oom.h5", config)
    assert sizes[:3] == [6, 3, 1] and result.ok
    assert any("out of memory" in note for note in result.info["warnings"])
    np.testing.assert_allclose(
        read_reconstruction(tmp_path / "b" / "oom.h5"), read_reconstruction(tmp_path / "a" / "oom.h5"), rtol=1e-4, atol=1e-7
    )
    assert expected.ok


def test_l1_wavelet_and_tv_beat_zero_filling_and_barts_l1_on_the_real_brain_at_8x(real_brain, tmp_path):
    """``--reg wavelet`` at its default lambda (FISTA, cycle spinning): measured 0.747, TV 0.758 (0.736
    before the ADMM over-relaxation), zero filling 0.603, BART's best ``pics -l1`` over its sweep 0.501
    (``scripts/bench_cs.py``)."""
    opts = ("--mask", "random", "--accel", "8")
    wav = _invoke("cs-recon", real_brain, "-o", tmp_path / "wav", "-q", "--reg", "wavelet", *opts)
    tv = _invoke("cs-recon", real_brain, "-o", tmp_path / "tv", "-q", *opts)
    zf = _invoke("zf-recon", real_brain, "-o", tmp_path / "zf", "-q", *opts)
    assert wav.exit_code == tv.exit_code == zf.exit_code == 0, wav.output + tv.output
    s_wav, s_tv, s_zf = (_scores(real_brain, tmp_path / d / real_brain.name)["ssim"] for d in ("wav", "tv", "zf"))
    assert min(s_wav, s_tv) > s_zf + 0.1 and min(s_wav, s_tv) > 0.501 + 0.2, (s_wav, s_tv, s_zf)
    bad = _invoke("cs-recon", real_brain, "-o", tmp_path / "bad", "-q", "--reg", "l2", *opts)
    assert bad.exit_code == 2 and "--reg" in bad.output + str(bad.stderr)
    for lam in ("abc", "-1", "nan"):
        bad = _invoke("cs-recon", real_brain, "-o", tmp_path / "bad", "-q", "--lam", lam, *opts)
        assert bad.exit_code == 2 and "--lam" in bad.output + str(bad.stderr), bad.output
