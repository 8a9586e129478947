"""``mrirecon.metrics`` against ``fastmri.evaluate`` (which calls scikit-image)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from fastmri.data.transforms import center_crop as fastmri_center_crop
from fastmri.evaluate import nmse as fm_nmse
from fastmri.evaluate import psnr as fm_psnr
from fastmri.evaluate import ssim as fm_ssim

from conftest import smooth_image
from mrirecon.metrics import nmse, psnr, ssim, volume_metrics

TOL = 1e-6


def random_pair(shape: tuple[int, ...], seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Uniform noise target and a noisy copy, float32 like fastMRI's datasets."""
    rng = np.random.default_rng(seed)
    gt = (rng.random(shape) * 3e-4).astype(np.float32)
    pred = np.abs(gt + rng.standard_normal(shape).astype(np.float32) * 4e-5).astype(np.float32)
    return gt, pred


def image_pair(shape: tuple[int, int, int], seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Magnitude images with smooth anatomy, flat background and noise (sample-like), and a blurred,
    noisier reconstruction of them."""
    rng = np.random.default_rng(seed)
    slices, h, w = shape
    gt = np.stack([np.abs(smooth_image(h, w, rng)) for _ in range(slices)]) * 2e-4
    gt = np.abs(gt + rng.standard_normal(gt.shape) * 5e-6).astype(np.float32)
    blurred = (gt + np.roll(gt, 1, -1) + np.roll(gt, 1, -2)) / 3
    pred = np.abs(blurred + rng.standard_normal(gt.shape) * 1e-5).astype(np.float32)
    return gt, pred


def reference(gt: np.ndarray, pred: np.ndarray) -> tuple[float, float, float]:
    return fm_nmse(gt, pred).item(), float(fm_psnr(gt, pred)), fm_ssim(gt, pred).item()


SHAPES = [(1, 33, 35), (3, 35, 33), (2, 320, 320), (1, 321, 317), (12, 40, 24), (4, 7, 7), (2, 8, 50)]


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("kind", ["random", "image"])
def test_equals_fastmri(shape, kind):
    make = random_pair if kind == "random" else image_pair
    gt, pred = make(shape, seed=sum(shape))
    ref_nmse, ref_psnr, ref_ssim = reference(gt, pred)
    assert nmse(gt, pred) == pytest.approx(ref_nmse, abs=TOL)
    assert psnr(gt, pred) == pytest.approx(ref_psnr, abs=TOL)
    assert ssim(gt, pred) == pytest.approx(ref_ssim, abs=TOL)
    # tensors give what arrays give
    assert ssim(torch.from_numpy(gt), torch.from_numpy(pred)) == ssim(gt, pred)


def test_many_slices_knee_size():
    """A 35x320x320 volume: SSIM and PSNR to 1e-6. fastMRI's NMSE is a float32 BLAS dot product
    whose rounding reaches ~1e-4 relative at this size: ours equals its formula in float64."""
    gt, pred = image_pair((35, 320, 320), seed=7)
    ref_nmse, ref_psnr, ref_ssim = reference(gt, pred)
    assert ssim(gt, pred) == pytest.approx(ref_ssim, abs=TOL)
    assert psnr(gt, pred) == pytest.approx(ref_psnr, abs=TOL)
    exact = fm_nmse(gt.astype(np.float64), pred.astype(np.float64)).item()
    assert nmse(gt, pred) == pytest.approx(exact, rel=1e-12)
    assert nmse(gt, pred) == pytest.approx(ref_nmse, rel=1e-3)
    # what eval reports reproduces fastMRI's float32 rounding as well
    assert volume_metrics(gt, pred)["nmse"] == pytest.approx(ref_nmse, abs=1e-9)
    assert volume_metrics(gt, pred, match_fastmri=False)["nmse"] == pytest.approx(exact, rel=1e-12)


def test_explicit_data_range():
    gt, pred = image_pair((3, 40, 36), seed=3)
    assert ssim(gt, pred, 1e-3) == pytest.approx(fm_ssim(gt, pred, 1e-3).item(), abs=TOL)
    assert psnr(gt, pred, 1e-3) == pytest.approx(float(fm_psnr(gt, pred, 1e-3)), abs=TOL)
    assert ssim(gt, pred, 1e-3) != pytest.approx(ssim(gt, pred), abs=1e-4)


def test_single_slice_2d_equals_3d():
    gt, pred = image_pair((1, 30, 41), seed=4)
    assert ssim(gt[0], pred[0]) == pytest.approx(ssim(gt, pred), abs=1e-15)
    assert nmse(gt[0], pred[0]) == pytest.approx(nmse(gt, pred), abs=1e-15)


def test_cpu_blocks_do_not_change_the_result(monkeypatch):
    """Slices are processed in blocks on the CPU; any block size gives the same sums."""
    import mrirecon.metrics as metrics

    gt, pred = image_pair((9, 24, 20), seed=5)
    whole = volume_metrics(gt, pred)
    monkeypatch.setattr(metrics, "CPU_BLOCK_ELEMENTS", 2 * 24 * 20)  # blocks of 2 slices, last one of 1
    blocked = volume_metrics(gt, pred)
    for key in whole:
        assert blocked[key] == pytest.approx(whole[key], abs=1e-12)


def fastmri_volume(target: np.ndarray, recon: np.ndarray) -> dict[str, float]:
    """``fastmri.evaluate.evaluate``'s per-volume steps."""
    width = target.shape[-1]
    target = fastmri_center_crop(target, (width, width))
    recon = fastmri_center_crop(recon, (width, width))
    n, p, s = reference(target, recon)
    return {"nmse": n, "psnr": p, "ssim": s}


@pytest.mark.parametrize(
    "target_shape, recon_shape",
    [((3, 32, 32), (3, 32, 32)), ((3, 40, 32), (3, 40, 32)), ((2, 40, 32), (2, 51, 45)), ((2, 33, 33), (2, 64, 35))],
)
def test_volume_metrics_applies_fastmri_crop(target_shape, recon_shape):
    rng = np.random.default_rng(1)
    target, _ = image_pair(target_shape, seed=2)
    recon = np.abs(rng.standard_normal(recon_shape) * 1e-5 + 1e-4).astype(np.float32)
    top = (recon_shape[1] - target_shape[1]) // 2
    left = (recon_shape[2] - target_shape[2]) // 2
    recon[:, top : top + target_shape[1], left : left + target_shape[2]] += target
    ours = volume_metrics(target, recon)
    ref = fastmri_volume(target, recon)
    for key in ("nmse", "psnr", "ssim"):
        assert ours[key] == pytest.approx(ref[key], abs=TOL), key


def test_volume_metrics_rejects_what_fastmri_cannot_score():
    gt = np.ones((2, 20, 30), np.float32)
    with pytest.raises(ValueError, match="square"):
        volume_metrics(gt, gt)
    with pytest.raises(ValueError, match="smaller than"):
        volume_metrics(np.ones((2, 32, 32), np.float32), np.ones((2, 32, 30), np.float32))
    with pytest.raises(ValueError, match="slices"):
        volume_metrics(np.ones((2, 32, 32), np.float32), np.ones((3, 32, 32), np.float32))
    with pytest.raises(ValueError, match="shapes differ"):
        ssim(np.ones((2, 32, 32), np.float32), np.ones((2, 32, 31), np.float32))
    with pytest.raises(ValueError, match="7x7"):
        ssim(np.ones((2, 6, 32), np.float32), np.ones((2, 6, 32), np.float32))


def test_identical_volumes():
    gt, _ = image_pair((2, 20, 20), seed=9)
    scores = volume_metrics(gt, gt)
    assert scores["nmse"] == 0.0
    assert scores["psnr"] == float("inf")
    assert scores["ssim"] == pytest.approx(1.0, abs=1e-12)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_equals_fastmri():
    gt, pred = image_pair((35, 320, 320), seed=11)
    ours = volume_metrics(torch.from_numpy(gt).cuda(), torch.from_numpy(pred).cuda())
    ref = fastmri_volume(gt, pred)
    assert ours["ssim"] == pytest.approx(ref["ssim"], abs=TOL)
    assert ours["psnr"] == pytest.approx(ref["psnr"], abs=TOL)
    assert ours["nmse"] == pytest.approx(ref["nmse"], abs=TOL)
    cpu = volume_metrics(gt, pred)
    for key in cpu:
        assert ours[key] == pytest.approx(cpu[key], rel=1e-10)
    # eval's path: the host copies it read give fastMRI's NMSE without a copy back
    assert volume_metrics(torch.from_numpy(gt).cuda(), torch.from_numpy(pred).cuda(), host=(gt, pred)) == ours


def test_host_copies_give_the_same_metrics():
    gt, pred = image_pair((3, 40, 32), seed=5)
    big = np.pad(pred, ((0, 0), (2, 2), (3, 3)))
    assert volume_metrics(gt, big, host=(gt, big)) == volume_metrics(gt, big)
    with pytest.raises(ValueError, match="host copies"):
        volume_metrics(gt, big, host=(gt[:2], big))
