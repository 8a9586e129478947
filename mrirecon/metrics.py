"""NMSE, PSNR and SSIM of a volume, exactly as ``fastmri.evaluate`` scores them, in torch.

A volume is ``(slices, H, W)``. Everything is computed in float64 on the tensors' device,
batched over slices: on a GPU the whole volume at once, on a CPU in blocks of slices small
enough to stay in cache (the arithmetic is memory-bound there).

fastMRI's definitions, which these reproduce:

- NMSE = ||gt - pred||^2 / ||gt||^2 over the volume;
- PSNR = 10 log10(data_range^2 / MSE) with data_range = gt.max() of the volume (skimage);
- SSIM = mean over slices of skimage's ``structural_similarity`` with data_range = gt.max():
  a 7x7 uniform window, K1 = 0.01, K2 = 0.03, sample covariance (49/48), averaged over the
  image less a 3-pixel border. Because the border is dropped, only "valid" windows count and
  the filter's padding never matters.

fastMRI computes on float32 arrays, so its own values carry float32 rounding: its NMSE uses a
float32 BLAS dot product (relative error ~1e-4 on a 35x320x320 volume), its SSIM float32
filters (~1e-8). ``nmse``, ``psnr`` and ``ssim`` give the float64 values those approximate.
``volume_metrics`` (what ``eval`` reports) reproduces fastMRI's NMSE rounding too, by the same
numpy float32 call, so its NMSE equals ``fastmri.evaluate``'s in the same environment.

That one NMSE stays on the host even when the volumes are on a GPU: a float32 sum's rounding
depends on the order of its additions, so no device reduction reproduces the CPU BLAS's value
to the 1e-6 that ``eval`` promises (fastMRI's own float32 error is ~1e-4 relative). Callers
that hold the volumes' host copies anyway (``eval`` reads them from HDF5) pass them as
``host`` so nothing is copied back; everything else (the float64 sums, PSNR, SSIM) runs on the
device and is read back in one transfer.
"""

from __future__ import annotations

import contextlib
import math
from typing import Iterator

import numpy as np
import torch

from mrirecon.mri.crop import center_crop

WINDOW = 7
K1, K2 = 0.01, 0.03
#: Elements per quantity in one block of slices: small on a CPU (cache), large on a GPU.
CPU_BLOCK_ELEMENTS = 1 << 17
GPU_BLOCK_ELEMENTS = 1 << 24
#: torch threads for the CPU arithmetic. It is many short memory-bound steps: a second thread
#: gains little, and when the cores are busy with other work every step waits for the
#: descheduled thread (measured 4x slower on 2 busy cores). None: leave torch's setting.
CPU_THREADS: int | None = 1

ArrayLike = torch.Tensor | np.ndarray


def nmse(gt: ArrayLike, pred: ArrayLike) -> float:
    """Normalised mean squared error ``||gt - pred||^2 / ||gt||^2`` of a volume (fastMRI)."""
    gt, pred = _pair(gt, pred)
    sse, energy, _ = _volume_sums(gt, pred, None)
    return sse / energy


def psnr(gt: ArrayLike, pred: ArrayLike, data_range: float | None = None) -> float:
    """Peak signal-to-noise ratio in dB; ``data_range`` defaults to ``gt.max()`` (fastMRI)."""
    gt, pred = _pair(gt, pred)
    sse, _, _ = _volume_sums(gt, pred, None)
    return _psnr(sse, gt.numel(), _data_range(gt, data_range))


def ssim(gt: ArrayLike, pred: ArrayLike, data_range: float | None = None) -> float:
    """Mean over slices of skimage's 7x7 SSIM; ``data_range`` defaults to the volume's ``gt.max()``.

    ``gt`` and ``pred`` are ``(slices, H, W)`` (or one ``(H, W)`` slice), H and W at least 7.
    """
    gt, pred = _pair(gt, pred)
    _, _, ssim_sum = _volume_sums(gt, pred, _data_range(gt, data_range))
    return ssim_sum / _slices(gt)


def volume_metrics(
    target: ArrayLike,
    recon: ArrayLike,
    match_fastmri: bool = True,
    host: tuple[np.ndarray, np.ndarray] | None = None,
) -> dict[str, float]:
    """``{"nmse", "psnr", "ssim"}`` of one volume after fastMRI's crop.

    As ``fastmri.evaluate.evaluate``: both volumes are centre-cropped to ``W x W`` with ``W``
    the target's width, and the metrics use the cropped target's maximum as data range.
    With ``match_fastmri`` the NMSE is fastMRI's own float32 expression (see the module
    docstring), computed on ``host`` (the same two volumes, uncropped, as host arrays) when
    given, else on host copies of the tensors; otherwise the float64 value from the device.
    """
    target, recon = _as_tensor(target), _as_tensor(recon)
    if target.ndim != 3 or recon.ndim != 3:
        raise ValueError(
            f"target and reconstruction must be (slices, H, W); got {tuple(target.shape)} and {tuple(recon.shape)}"
        )
    if target.shape[0] != recon.shape[0]:
        raise ValueError(f"target has {target.shape[0]} slices but the reconstruction has {recon.shape[0]}")
    width = target.shape[-1]
    if target.shape[-2] < width:
        raise ValueError(
            f"target is {target.shape[-2]}x{width}: fastMRI crops it to a {width}x{width} square, "
            "which needs at least as many rows as columns"
        )
    if recon.shape[-2] < width or recon.shape[-1] < width:
        raise ValueError(
            f"reconstruction is {recon.shape[-2]}x{recon.shape[-1]}, smaller than the "
            f"{width}x{width} crop of the target"
        )
    target = center_crop(target, (width, width))
    recon = center_crop(recon, (width, width))
    gt, pred = _pair(target, recon)
    data_range = _data_range(gt, None)
    sse, energy, ssim_sum = _volume_sums(gt, pred, data_range)
    if match_fastmri and host is not None:
        host_gt, host_pred = (center_crop(np.asarray(a), (width, width)) for a in host)
        if host_gt.shape != gt.shape or host_pred.shape != pred.shape:
            raise ValueError("host copies do not have the shapes of the volumes they stand for")
        nmse_value = _fastmri_nmse_np(host_gt, host_pred)
    elif match_fastmri:
        nmse_value = _fastmri_nmse(gt, pred)
    else:
        nmse_value = sse / energy
    return {
        "nmse": nmse_value,
        "psnr": _psnr(sse, gt.numel(), data_range),
        "ssim": ssim_sum / _slices(gt),
    }


# --- internals --------------------------------------------------------------------------


def _fastmri_nmse(gt: torch.Tensor, pred: torch.Tensor) -> float:
    """``fastmri.evaluate.nmse`` verbatim on the host arrays: numpy's norm in the arrays' dtype."""
    return _fastmri_nmse_np(gt.detach().cpu().numpy(), pred.detach().cpu().numpy())


def _fastmri_nmse_np(gt: np.ndarray, pred: np.ndarray) -> float:
    return float(np.linalg.norm(gt - pred) ** 2 / np.linalg.norm(gt) ** 2)


def _as_tensor(x: ArrayLike) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(x)) if isinstance(x, np.ndarray) else x


def _pair(gt: ArrayLike, pred: ArrayLike) -> tuple[torch.Tensor, torch.Tensor]:
    gt, pred = _as_tensor(gt), _as_tensor(pred)
    if gt.shape != pred.shape:
        raise ValueError(f"shapes differ: target {tuple(gt.shape)}, prediction {tuple(pred.shape)}")
    if gt.is_complex() or pred.is_complex():
        raise ValueError("metrics take real (magnitude) images, not complex ones")
    if gt.numel() == 0:
        raise ValueError("empty volume")
    return gt, pred.to(gt.device)


def _slices(gt: torch.Tensor) -> int:
    return gt.shape[0] if gt.ndim == 3 else 1


def _data_range(gt: torch.Tensor, data_range: float | None) -> float:
    if data_range is not None:
        return float(data_range)
    with _threads(CPU_THREADS if gt.device.type == "cpu" else None):
        return float(gt.max())


def _psnr(sse: float, count: int, data_range: float) -> float:
    mse = sse / count
    return 10.0 * math.log10(data_range**2 / mse) if mse > 0 else math.inf


def _volume_sums(gt: torch.Tensor, pred: torch.Tensor, data_range: float | None) -> tuple[float, float, float]:
    """``(sum (gt-pred)^2, sum gt^2, sum over slices of SSIM)`` in float64, one pass in blocks of
    slices; SSIM only when ``data_range`` is given."""
    if data_range is not None:
        if gt.ndim not in (2, 3):
            raise ValueError(f"SSIM needs (slices, H, W) or (H, W) images, got {tuple(gt.shape)}")
        if min(gt.shape[-2:]) < WINDOW:
            raise ValueError(f"SSIM needs images of at least {WINDOW}x{WINDOW}, got {tuple(gt.shape[-2:])}")
    if gt.ndim == 2:
        gt, pred = gt[None], pred[None]
    elif gt.ndim != 3:
        gt, pred = gt.reshape(1, 1, -1), pred.reshape(1, 1, -1)
    n, h, w = gt.shape
    budget = GPU_BLOCK_ELEMENTS if gt.device.type == "cuda" else CPU_BLOCK_ELEMENTS
    block = max(1, min(n, budget // (h * w)))
    work = _Workspace(block, h, w, gt.device, with_ssim=data_range is not None)
    sse = gt.new_zeros((), dtype=torch.float64)
    energy = gt.new_zeros((), dtype=torch.float64)
    ssim_sum = gt.new_zeros((), dtype=torch.float64)
    with _threads(CPU_THREADS if gt.device.type == "cpu" else None):
        for start in range(0, n, block):
            stop = min(n, start + block)
            x, y = work.load(gt[start:stop], pred[start:stop], data_range)
            diff = torch.sub(x, y, out=work.diff[: stop - start])
            sse += torch.dot(diff.reshape(-1), diff.reshape(-1))
            energy += torch.dot(x.reshape(-1), x.reshape(-1))
            if data_range is not None:
                ssim_sum += work.ssim_sum(data_range)
    # one host read for all three (each float() would be a device sync of its own)
    sse_f, energy_f, ssim_f = torch.stack((sse, energy, ssim_sum)).tolist()
    return sse_f, energy_f, ssim_f


@contextlib.contextmanager
def _threads(threads: int | None) -> Iterator[None]:
    """Run with ``threads`` torch CPU threads, restoring the previous setting afterwards."""
    previous = torch.get_num_threads()
    if threads is None or threads == previous:
        yield
        return
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


class _Workspace:
    """Float64 buffers for one block of slices, reused from block to block."""

    def __init__(self, block: int, h: int, w: int, device: torch.device, with_ssim: bool):
        f64 = dict(dtype=torch.float64, device=device)
        # moments: x, y, x^2 + y^2, x*y (stacked so each box-filter step is one operation)
        self.moments = torch.empty((4, block, h, w), **f64)
        self.diff = torch.empty((block, h, w), **f64)
        self.with_ssim = with_ssim
        if with_ssim:
            self.scratch1 = torch.empty((4, block, h, w - 1), **f64)
            self.scratch2 = torch.empty((4, block, h, w - 3), **f64)
            self.scratch3 = torch.empty((4, block, h - 3, w - WINDOW + 1), **f64)
        self.count = 0

    def load(self, gt: torch.Tensor, pred: torch.Tensor, data_range: float | None) -> tuple[torch.Tensor, torch.Tensor]:
        """Copy a block into the float64 moments; with a data range, the second moments carry
        SSIM's stabilising constants (see ``ssim_sum``)."""
        self.count = gt.shape[0]
        m = self.moments[:, : self.count]
        m[0].copy_(gt)
        m[1].copy_(pred)
        if data_range is not None:
            k_sq, k_xy = _moment_offsets(data_range)
            torch.addcmul(m.new_tensor(k_sq), m[0], m[0], out=m[2]).addcmul_(m[1], m[1])
            torch.addcmul(m.new_tensor(k_xy), m[0], m[1], out=m[3])
        return m[0], m[1]

    def ssim_sum(self, data_range: float) -> torch.Tensor:
        """Sum over this block's slices of each slice's mean SSIM."""
        c = self.count
        sx, sy, sq, sxy = _box_sums(
            self.moments[:, :c], self.scratch1[:, :c], self.scratch2[:, :c], self.scratch3[:, :c]
        )
        # skimage's SSIM on window sums S (49 x the local means), its constants folded in:
        #   SSIM = 4 (P + c1/2)(P - n Sxy') / ((Q + c1)(Q - n Sq')),
        #   P = Sx Sy, Q = Sx^2 + Sy^2, n = 49, c1 = (K1 R n)^2, and Sxy', Sq' the sums of the
        #   offset second moments (``_moment_offsets``), which carry C2 and the 49/48 factor.
        n = float(WINDOW * WINDOW)
        c1 = (K1 * data_range * n) ** 2
        # scratch1 is free again once the window sums are done: results go there, not into
        # fresh allocations (those cost page faults at every block)
        hv, wv = sx.shape[-2:]
        p, q, num2, den2 = self.scratch1[:, :c, :hv, :wv]
        torch.mul(sx, sy, out=p)
        torch.mul(sx, sx, out=q).addcmul_(sy, sy)
        torch.add(p, sxy, alpha=-n, out=num2)
        torch.add(q, sq, alpha=-n, out=den2)
        num = p.add_(c1 / 2).mul_(num2)
        den = q.add_(c1).mul_(den2)
        s = num.div_(den)
        return s.sum() * (4.0 / (s.shape[-2] * s.shape[-1]))


def _moment_offsets(data_range: float) -> tuple[float, float]:
    """Constants ``k`` added to ``x^2 + y^2`` and to ``x y`` before window summing: a window sum
    then grows by ``n k``, so ``n Sq' - Q = (n Sq - Q) + n^2 C2 / cov`` and ``n Sxy' - P =
    (n Sxy - P) + n^2 C2 / (2 cov)``: skimage's ``B2`` and ``A2`` times ``n^2 / cov`` (n = 49,
    cov = 49/48 for the sample covariance, C2 = (K2 R)^2)."""
    n = float(WINDOW * WINDOW)
    cov = n / (n - 1)
    c2 = (K2 * data_range) ** 2
    return c2 / cov, c2 / (2 * cov)


def _box_sums(
    m: torch.Tensor, t1: torch.Tensor, t2: torch.Tensor, t3: torch.Tensor
) -> torch.Tensor:
    """7x7 window sums over the valid region of the last two axes: ``(..., H-6, W-6)``.

    Built from pairwise sums (1+1 -> 2, 2+2 -> 4, 4+2+1 -> 7) along each axis, written into
    the scratch buffers ``t1 (..., H, W-1)``, ``t2 (..., H, W-3)``, ``t3 (..., H-3, W-6)``.
    """
    h, w = m.shape[-2:]
    wv, hv = w - WINDOW + 1, h - WINDOW + 1
    s2 = torch.add(m[..., :-1], m[..., 1:], out=t1)
    s4 = torch.add(s2[..., :-2], s2[..., 2:], out=t2)
    rows = s4[..., :wv].add_(s2[..., 4 : 4 + wv]).add_(m[..., 6:])
    s2 = torch.add(rows[..., :-1, :], rows[..., 1:, :], out=t1[..., : h - 1, :wv])
    s4 = torch.add(s2[..., :-2, :], s2[..., 2:, :], out=t3)
    return s4[..., :hv, :].add_(s2[..., 4 : 4 + hv, :]).add_(rows[..., 6:, :])
