"""``mrirecon eval`` / ``pipelines.evaluate`` against ``fastmri.evaluate`` on tiny fastMRI-style folders."""

from __future__ import annotations

import json
from argparse import Namespace
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from fastmri.data.transforms import center_crop as fastmri_center_crop
from fastmri.evaluate import evaluate as fastmri_evaluate
from fastmri.evaluate import nmse as fm_nmse
from fastmri.evaluate import psnr as fm_psnr
from fastmri.evaluate import ssim as fm_ssim

from cli_helpers import run_cli
from conftest import write_test_volume
from mrirecon.io import make_header_xml, open_volume, write_reconstruction, write_volume
from mrirecon.mri.zero_filled import zero_filled
from mrirecon.pipelines.evaluate import EvalConfig, evaluate

TOL = 1e-6


def fastmri_scores(target: np.ndarray, recon: np.ndarray) -> dict[str, float]:
    """The per-volume steps of ``fastmri.evaluate.evaluate``."""
    width = target.shape[-1]
    target = fastmri_center_crop(target, (width, width))
    recon = fastmri_center_crop(recon, (width, width))
    return {
        "nmse": fm_nmse(target, recon).item(),
        "psnr": float(fm_psnr(target, recon)),
        "ssim": fm_ssim(target, recon).item(),
    }


def write_prediction(path: Path, target: np.ndarray, seed: int, grow: int = 0, attrs: dict | None = None) -> np.ndarray:
    """A noisy, blurred copy of ``target``, optionally embedded in a larger image (so the crop matters)."""
    rng = np.random.default_rng(seed)
    blurred = (target + np.roll(target, 1, -1)) / 2
    recon = np.abs(blurred + rng.standard_normal(target.shape) * 0.05 * target.max()).astype(np.float32)
    if grow:
        big = np.abs(rng.standard_normal((target.shape[0], target.shape[1] + grow, target.shape[2] + grow + 1)))
        big = (big * 0.1 * target.max()).astype(np.float32)
        top, left = grow // 2, (grow + 1) // 2
        big[:, top : top + target.shape[1], left : left + target.shape[2]] = recon
        recon = big
    write_reconstruction(path, recon, attrs=attrs)
    return recon


def read_target(path: Path, key: str) -> np.ndarray:
    with h5py.File(path, "r") as handle:
        return handle[key][()]


@pytest.fixture
def folders(tmp_path: Path) -> tuple[Path, Path]:
    """Three multi-coil targets (two acquisitions) and their predictions, one larger than its target."""
    target_dir, pred_dir = tmp_path / "target", tmp_path / "pred"
    acquisitions = ["CORPD_FBK", "CORPD_FBK", "CORPDFS_FBK"]
    for i, acquisition in enumerate(acquisitions):
        path = target_dir / f"vol{i}.h5"
        write_test_volume(path, slices=3 + i, coils=2, shape=(48, 40), recon=(24, 24), seed=i,
                          attrs={"acquisition": acquisition})
        write_prediction(pred_dir / path.name, read_target(path, "reconstruction_rss"), seed=10 + i, grow=6 * (i == 1),
                         attrs={"acceleration": 4 if i < 2 else 8})
    return target_dir, pred_dir


def test_equals_fastmri_evaluate(folders):
    target_dir, pred_dir = folders
    summary = evaluate(target_dir, pred_dir, EvalConfig(device="cpu"), quiet=True)
    assert summary.ok and not summary.skipped and len(summary.volumes) == 3

    for score in summary.volumes:
        ref = fastmri_scores(
            read_target(target_dir / score.name, "reconstruction_rss"), read_target(pred_dir / score.name, "reconstruction")
        )
        for key in ref:
            assert getattr(score, key) == pytest.approx(ref[key], abs=TOL), (score.name, key)
        assert score.target == "reconstruction_rss"

    args = Namespace(target_path=target_dir, predictions_path=pred_dir, acquisition=None, acceleration=None)
    metrics = fastmri_evaluate(args, "reconstruction_rss")
    means, stddevs = metrics.means(), metrics.stddevs()
    for ours, theirs in (("nmse", "NMSE"), ("psnr", "PSNR"), ("ssim", "SSIM")):
        assert summary.mean[ours] == pytest.approx(float(np.squeeze(means[theirs])), abs=TOL)
        assert summary.sd2[ours] == pytest.approx(2 * float(np.squeeze(stddevs[theirs])), abs=TOL)


def test_acquisition_and_acceleration_filters(folders):
    target_dir, pred_dir = folders
    fs = evaluate(target_dir, pred_dir, EvalConfig(acquisition="CORPDFS_FBK", device="cpu"), quiet=True)
    assert [v.name for v in fs.volumes] == ["vol2.h5"]
    assert len(fs.skipped) == 2 and "CORPD_FBK" in fs.skipped[0]["reason"]

    # the targets carry no acceleration: the predictions' attribute decides
    four = evaluate(target_dir, pred_dir, EvalConfig(acceleration=4, device="cpu"), quiet=True)
    assert [v.name for v in four.volumes] == ["vol0.h5", "vol1.h5"]

    # a target's own attribute wins over the prediction's
    with h5py.File(target_dir / "vol2.h5", "a") as handle:
        handle.attrs["acceleration"] = 4
    four = evaluate(target_dir, pred_dir, EvalConfig(acceleration=4, device="cpu"), quiet=True)
    assert [v.name for v in four.volumes] == ["vol0.h5", "vol1.h5", "vol2.h5"]

    # neither has one: the volume does not match
    with h5py.File(pred_dir / "vol0.h5", "a") as handle:
        del handle.attrs["acceleration"]
    four = evaluate(target_dir, pred_dir, EvalConfig(acceleration=4, device="cpu"), quiet=True)
    assert [v.name for v in four.volumes] == ["vol1.h5", "vol2.h5"]
    assert "no acceleration attribute" in four.skipped[0]["reason"]

    result = run_cli("eval", "--target", target_dir, "--pred", pred_dir, "--acquisition", "AXT2", "--device", "cpu")
    assert result.exit_code == 2 and "no volume matches" in result.stderr


def test_challenge_picks_the_target_dataset(tmp_path):
    """Single-coil files: reconstruction_esc by default (k-space rank 3), reconstruction_rss with
    --challenge multicoil (fastMRI's single-coil files hold both)."""
    target_dir, pred_dir = tmp_path / "t", tmp_path / "p"
    path = target_dir / "sc.h5"
    write_test_volume(path, slices=2, coils=None, shape=(40, 32), recon=(20, 20), seed=3)
    esc = read_target(path, "reconstruction_esc")
    rss = np.abs(esc * 1.1 + 0.01 * esc.max()).astype(np.float32)
    with h5py.File(path, "a") as handle:
        handle.create_dataset("reconstruction_rss", data=rss)
    recon = write_prediction(pred_dir / "sc.h5", esc, seed=1)

    default = evaluate(target_dir, pred_dir, EvalConfig(device="cpu"), quiet=True).volumes[0]
    assert default.target == "reconstruction_esc"
    assert default.ssim == pytest.approx(fastmri_scores(esc, recon)["ssim"], abs=TOL)
    multi = evaluate(target_dir, pred_dir, EvalConfig(challenge="multicoil", device="cpu"), quiet=True).volumes[0]
    assert multi.target == "reconstruction_rss"
    assert multi.nmse == pytest.approx(fastmri_scores(rss, recon)["nmse"], abs=TOL)


def test_kspace_only_target(tmp_path):
    """A fully sampled file without a target dataset: the target is its zero-filled image."""
    target_dir, pred_dir = tmp_path / "t", tmp_path / "p"
    kspace = write_test_volume(tmp_path / "src.h5", slices=2, coils=3, shape=(48, 40), recon=(24, 24), seed=5)
    header = make_header_xml((48, 40), (24, 24))
    write_volume(target_dir / "k.h5", kspace, header_xml=header, attrs={"acquisition": "AXT2"})
    with open_volume(target_dir / "k.h5") as volume:
        expected_target = zero_filled(torch.from_numpy(volume.read_kspace()), volume.recon_crop).numpy()
    recon = write_prediction(pred_dir / "k.h5", expected_target, seed=2, grow=4)

    score = evaluate(target_dir, pred_dir, EvalConfig(device="cpu"), quiet=True).volumes[0]
    assert score.target == "kspace"
    ref = fastmri_scores(expected_target, recon)
    for key in ref:
        assert getattr(score, key) == pytest.approx(ref[key], abs=TOL), key

    # the single-coil challenge's dataset cannot come from multi-coil k-space
    bad = evaluate(target_dir, pred_dir, EvalConfig(challenge="singlecoil", device="cpu"), quiet=True)
    assert not bad.volumes and "multicoil" in bad.failed[0]["error"]


def test_kspace_target_over_several_chunks_and_a_nan_slice(tmp_path):
    """More slices than one read chunk: the chunks through the reused, read-ahead buffers give the
    whole zero-filled target; a NaN in the k-space fails that volume with the slices named."""
    from mrirecon.pipelines.evaluate import KSPACE_SLICES_PER_CHUNK

    slices = 2 * KSPACE_SLICES_PER_CHUNK + 3
    target_dir, pred_dir = tmp_path / "t", tmp_path / "p"
    kspace = write_test_volume(tmp_path / "src.h5", slices=slices, coils=2, shape=(32, 24), recon=(16, 16), seed=7)
    header = make_header_xml((32, 24), (16, 16))
    write_volume(target_dir / "k.h5", kspace, header_xml=header, attrs={})
    expected = zero_filled(torch.from_numpy(kspace), (16, 16)).numpy()
    recon = write_prediction(pred_dir / "k.h5", expected, seed=3)
    score = evaluate(target_dir, pred_dir, EvalConfig(device="cpu"), quiet=True).volumes[0]
    ref = fastmri_scores(expected, recon)
    for key in ref:
        assert getattr(score, key) == pytest.approx(ref[key], abs=TOL), key

    kspace[KSPACE_SLICES_PER_CHUNK + 1, 1, 3, 4] = np.nan
    write_volume(target_dir / "k.h5", kspace, header_xml=header, attrs={}, overwrite=True)
    failed = evaluate(target_dir, pred_dir, EvalConfig(device="cpu"), quiet=True).failed
    last = min(2 * KSPACE_SLICES_PER_CHUNK, slices) - 1
    assert "k.h5" in failed[0]["name"] and f"NaN or Inf values in slices {KSPACE_SLICES_PER_CHUNK}..{last}" in failed[0]["error"]


def test_undersampled_kspace_is_no_target(tmp_path):
    target_dir, pred_dir = tmp_path / "t", tmp_path / "p"
    kspace = write_test_volume(tmp_path / "src.h5", slices=2, coils=2, shape=(48, 40), recon=(24, 24))
    mask = np.zeros(40, bool)
    mask[::4] = True
    write_volume(target_dir / "u.h5", kspace * mask, header_xml=make_header_xml((48, 40), (24, 24)), attrs={}, mask=mask)
    write_reconstruction(pred_dir / "u.h5", np.ones((2, 24, 24), np.float32))
    summary = evaluate(target_dir, pred_dir, EvalConfig(device="cpu"), quiet=True)
    assert "undersampled" in summary.failed[0]["error"]


def test_missing_and_mismatched_predictions_fail_alone(folders):
    target_dir, pred_dir = folders
    (pred_dir / "vol0.h5").unlink()
    write_reconstruction(pred_dir / "vol1.h5", np.ones((2, 24, 24), np.float32), overwrite=True)  # 2 slices, not 4
    summary = evaluate(target_dir, pred_dir, EvalConfig(device="cpu"), quiet=True)
    assert [v.name for v in summary.volumes] == ["vol2.h5"]
    errors = {f["name"]: f["error"] for f in summary.failed}
    assert "no prediction" in errors["vol0.h5"] and "vol0.h5" in errors["vol0.h5"]
    assert "2 slices" in errors["vol1.h5"]

    result = run_cli("eval", "--target", target_dir, "--pred", pred_dir, "--device", "cpu", "--quiet")
    assert result.exit_code == 1
    assert "no prediction" in result.stderr and "2 slices" in result.stderr

    (pred_dir / "vol2.h5").write_text("not HDF5")
    summary = evaluate(target_dir, pred_dir, EvalConfig(device="cpu"), quiet=True)
    assert not summary.volumes and "pred/vol2.h5: is not an HDF5 file" in summary.failed[-1]["error"]


def test_cli_table_json_and_thresholds(folders, tmp_path):
    target_dir, pred_dir = folders
    base = ["eval", "--target", target_dir, "--pred", pred_dir, "--device", "cpu"]
    out = tmp_path / "scores.json"
    result = run_cli(*base, "--json", out)
    assert result.exit_code == 0, result.stderr
    assert "mean ± 2 SD" in result.stdout and "vol1.h5" in result.stdout

    data = json.loads(out.read_text())
    summary = evaluate(target_dir, pred_dir, EvalConfig(device="cpu"), quiet=True)
    assert set(data["volumes"]) == {"vol0.h5", "vol1.h5", "vol2.h5"}
    assert data["volumes"]["vol1.h5"]["ssim"] == pytest.approx(summary.volumes[1].ssim, abs=1e-15)
    assert data["mean"]["psnr"] == pytest.approx(summary.mean["psnr"], abs=1e-12)
    assert data["sd2"]["nmse"] == pytest.approx(summary.sd2["nmse"], abs=1e-12)
    assert data["failed"] == []

    mean_ssim = summary.mean["ssim"]
    ok = run_cli(*base, "--min-ssim", mean_ssim - 0.01, "--min-psnr", 1, "--max-nmse", 1, "--quiet")
    assert ok.exit_code == 0, ok.stderr
    low = run_cli(*base, "--min-ssim", mean_ssim + 0.01, "--quiet")
    assert low.exit_code == 1
    assert f"mean SSIM {mean_ssim:.4g} < --min-ssim" in low.stderr
    nmse = run_cli(*base, "--max-nmse", summary.mean["nmse"] / 2, "--quiet")
    assert nmse.exit_code == 1 and "mean NMSE" in nmse.stderr and "--max-nmse" in nmse.stderr

    piped = run_cli(*base, "--json", "-", "--min-psnr", 1000)
    assert piped.exit_code == 1
    assert json.loads(piped.stdout)["regressions"] == [f"mean PSNR {summary.mean['psnr']:.4g} < --min-psnr 1000"]


def test_bad_arguments_exit_2(folders, tmp_path):
    target_dir, pred_dir = folders
    missing = run_cli("eval", "--target", tmp_path / "nope", "--pred", pred_dir)
    assert missing.exit_code == 2 and "does not exist" in missing.stderr
    assert run_cli("eval", "--target", target_dir, "--pred", tmp_path / "nope").exit_code == 2
    (tmp_path / "empty").mkdir()
    empty = run_cli("eval", "--target", tmp_path / "empty", "--pred", pred_dir)
    assert empty.exit_code == 2 and "no *.h5" in empty.stderr
    assert run_cli("eval", "--target", target_dir, "--pred", pred_dir, "--acceleration", "-1").exit_code == 2


def test_prefetch_gives_the_same_scores_and_names_a_failing_read(folders, tmp_path):
    """The next pair is read in a background thread; scores are identical to serial reading, and
    a pair whose read fails (here: the middle one's prediction is corrupt) is the one reported."""
    target_dir, pred_dir = folders
    (pred_dir / "vol1.h5").write_bytes(b"not an HDF5 file")
    serial = evaluate(target_dir, pred_dir, EvalConfig(device="cpu"), quiet=True, prefetch=False)
    ahead = evaluate(target_dir, pred_dir, EvalConfig(device="cpu"), quiet=True, prefetch=True)
    assert [f["name"] for f in ahead.failed] == ["vol1.h5"] == [f["name"] for f in serial.failed]
    assert ahead.failed[0]["error"] == serial.failed[0]["error"] and "vol1.h5" in ahead.failed[0]["error"]
    assert [v.name for v in ahead.volumes] == ["vol0.h5", "vol2.h5"]
    for ours, ref in zip(ahead.volumes, serial.volumes):
        assert (ours.nmse, ours.psnr, ours.ssim) == (ref.nmse, ref.psnr, ref.ssim)
