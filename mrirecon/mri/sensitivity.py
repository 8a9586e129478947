"""Coil sensitivity maps for SENSE: ESPIRiT (default), low-resolution ACS maps, or a file.

All maps returned here have unit norm at every pixel (``sum_c |S_c|^2 = 1``). With such maps
the magnitude of the SENSE-combined image ``|S^H F^H y|`` equals the RSS of the coil images
wherever the coil images are consistent with the maps (Cauchy–Schwarz gives ``<=`` elsewhere),
so CS reconstructions are on the same scale as fastMRI's RSS targets.

Weak ESPIRiT maps (too few calibration patches for the kernel, or low top eigenvalues over the
object) fall back to the ACS method, which needs no rank conditions.

Map files (``--sens-maps FILE``): ``.npy`` holding a complex array, or ``.h5`` with a complex
dataset ``sens_maps``; shape ``(slices, coils, H, W)`` or ``(coils, H, W)`` (the same maps for
every slice), ``H, W`` equal to the k-space's. They are normalised to unit norm per pixel.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from mrirecon.io.errors import InputError
from mrirecon.mri.crop import center_crop
from mrirecon.mri.espirit import espirit
from mrirecon.mri.fft import ifft2c
from mrirecon.ops.sense import coil_norm, normalise_maps  # noqa: F401 (re-exported: the one normalisation)

SENS_METHODS = ("espirit", "acs")

#: ESPIRiT maps are "weak" when the mean top eigenvalue over the object is below this.
WEAK_EIGENVALUE = 0.85
#: ... or when the calibration matrix has fewer patches than this multiple of its kept rank.
MIN_PATCHES_PER_RANK = 2.0


@dataclass
class SensitivityResult:
    """Unit-norm maps ``(S, C, H, W)``, the method actually used, and notes (e.g. a fallback)."""

    maps: torch.Tensor
    method: str
    notes: list[str] = field(default_factory=list)
    #: per slice ``(S,)``: True where ESPIRiT was weak and ACS maps were used instead
    weak: torch.Tensor | None = None
    #: per slice ``(S,)``: ``map_misfit`` of the ESPIRiT maps (before any fallback)
    misfit: torch.Tensor | None = None


def object_region(images: torch.Tensor) -> torch.Tensor:
    """Where the coil images ``(S, C, H, W)`` are bright: RSS above 20% of its maximum, ``(S, H, W)``."""
    power = coil_norm(images, dim=1)
    return power > 0.2 * power.amax(dim=(-2, -1), keepdim=True)


def map_misfit(images: torch.Tensor, maps: torch.Tensor, region: torch.Tensor | None = None) -> torch.Tensor:
    """Per slice ``(S,)``: the share of the coil images' energy ``(S, C, H, W)`` that one set of
    unit-norm ``maps`` cannot explain, ``||(I - S S^H) x||^2 / ||x||^2``, over ``region`` ``(S, H, W)``
    (default ``object_region``: the background, e.g. an oversampled readout's ends, does not count).
    0: every pixel's coil vector is parallel to the maps. On the low-resolution calibration images
    it tests the maps against the only fully sampled data there is."""
    region = object_region(images) if region is None else region
    weight = region.unsqueeze(1).to(images.real.dtype)
    proj = maps * (maps.conj() * images).sum(dim=1, keepdim=True)
    lost = (torch.view_as_real(images - proj).square().sum(-1) * weight).flatten(1).sum(1)
    return lost / (torch.view_as_real(images).square().sum(-1) * weight).flatten(1).sum(1).clamp(min=1e-30)


def centred_runs(mask: np.ndarray) -> np.ndarray:
    """For each column of ``mask`` ``(L, ...)``: the largest ``n`` such that the centred crop of
    length ``n`` (``center_crop``'s offset ``(L - n) // 2``) is all True (0 if none)."""
    mask = np.asarray(mask, dtype=bool)
    length = mask.shape[0]
    missing = np.concatenate([np.zeros((1,) + mask.shape[1:], dtype=np.int64), np.cumsum(~mask, axis=0)])
    n = np.arange(1, length + 1)
    lo = (length - n) // 2
    full = (missing[lo + n] - missing[lo]) == 0  # (L, ...): crop of length n is all sampled
    best = np.where(full, n.reshape((-1,) + (1,) * (mask.ndim - 1)), 0)
    return best.max(axis=0)


def calibration_region(
    mask: np.ndarray, kspace_hw: tuple[int, int], num_low_frequency: int | None = None, max_rows: int = 48
) -> tuple[int, int]:
    """The fully sampled centre ``(rows, cols)`` to calibrate from (a ``center_crop`` of k-space).

    Column masks sample every row, so the region is ``num_low_frequency`` (or the detected
    centred run of sampled columns) wide and ``max(24, 2*cols)`` rows tall, at most ``max_rows``.
    2D masks: the largest centred fully sampled rectangle.
    """
    height, width = kspace_hw
    mask = np.asarray(mask, dtype=bool)
    if mask.ndim == 1:
        cols = int(num_low_frequency) if num_low_frequency else int(centred_runs(mask))
        cols = min(cols, width)
        rows = min(height, max_rows, max(24, 2 * cols))
        return rows, cols
    rows = int(centred_runs(mask[:, width // 2]))
    cols = int(centred_runs(mask[height // 2, :]))
    while True:  # shrink alternately until the centred rectangle is fully sampled
        new_rows = int(centred_runs(center_crop(mask, (height, cols))).min()) if cols else 0
        new_cols = int(centred_runs(center_crop(mask, (new_rows, width)).T).min()) if new_rows else 0
        if (new_rows, new_cols) == (rows, cols):
            return rows, cols
        rows, cols = new_rows, new_cols


def low_res_images(kspace: torch.Tensor, calib: tuple[int, int], window: tuple[int, int] | None = None) -> torch.Tensor:
    """Coil images ``(S, C, H, W)`` from the Hann-windowed calibration region alone; with
    ``window = (top, n)`` only those image rows ``(S, C, n, W)``, computed without the full grid."""
    height, width = kspace.shape[-2:]
    rows, cols = calib
    acs = center_crop(kspace, (rows, cols))
    win_r = torch.hann_window(rows + 2, periodic=False, device=kspace.device)[1:-1]
    win_c = torch.hann_window(cols + 2, periodic=False, device=kspace.device)[1:-1]
    top, left = (height - rows) // 2, (width - cols) // 2
    if window is None:
        padded = torch.zeros_like(kspace)
        padded[..., top : top + rows, left : left + cols] = acs * (win_r[:, None] * win_c[None, :])
        return ifft2c(padded)
    # columns: a centred inverse FFT of the zero-padded calibration rows; rows: the centred
    # inverse DFT from the calibration rows to the window's rows, as one small matrix product
    padded = kspace.new_zeros(*kspace.shape[:-2], rows, width)
    padded[..., left : left + cols] = acs * (win_r[:, None] * win_c[None, :])
    hybrid = torch.fft.fftshift(torch.fft.ifft(torch.fft.ifftshift(padded, dim=-1), dim=-1, norm="ortho"), dim=-1)
    return centred_idft_rows(height, range(top, top + rows), range(window[0], window[0] + window[1]), kspace.device) @ hybrid


def centred_idft_rows(length: int, freqs: range, outputs: range, device: torch.device | None = None) -> torch.Tensor:
    """The ``(len(outputs), len(freqs))`` block of the centred orthonormal inverse DFT of ``length``
    (``fftshift(ifft(ifftshift(.)))``): rows ``outputs`` of the image from k-space rows ``freqs``."""
    centre = length // 2
    m = torch.arange(outputs.start, outputs.stop, dtype=torch.float64) - centre
    k = torch.arange(freqs.start, freqs.stop, dtype=torch.float64) - centre
    # the phase reduced modulo the length in integers, so float64 keeps it exact for any size
    turns = torch.remainder(m[:, None] * k[None, :], length) / length
    return (torch.polar(torch.ones_like(turns), 2 * torch.pi * turns) / length**0.5).to(torch.complex64).to(device)


def acs_maps(kspace: torch.Tensor, calib: tuple[int, int], images: torch.Tensor | None = None) -> torch.Tensor:
    """Low-resolution maps: the ``low_res_images`` divided by their RSS (unit norm everywhere)."""
    images = low_res_images(kspace, calib) if images is None else images
    return normalise_maps(images, floor=1e-6)


def estimate_maps(
    kspace: torch.Tensor,
    calib: tuple[int, int],
    method: str = "espirit",
    kernel: int = 6,
    thresh: float = 0.02,
    window: tuple[int, int] | None = None,
) -> SensitivityResult:
    """Unit-norm maps ``(S, C, H, W)`` from undersampled k-space ``(S, C, H, W)`` and its calibration size
    (``(S, C, n, W)`` with ``window = (top, n)``: only those image rows, e.g. a readout window)."""
    if method not in SENS_METHODS:
        raise ValueError(f"unknown sensitivity method {method!r}; use espirit, acs or a file")
    rows, cols = calib
    if rows < 2 or cols < 2:
        raise ValueError(f"the calibration region ({rows}x{cols}) is too small to estimate coil sensitivities")
    if method == "acs":
        return SensitivityResult(acs_maps(kspace, calib, low_res_images(kspace, calib, window)), "acs")
    image_hw = tuple(kspace.shape[-2:])
    result = espirit(center_crop(kspace, (rows, cols)), image_hw, kernel=kernel, thresh=thresh, rows=window)
    ky, kx = min(kernel, rows - 1), min(kernel, cols - 1)
    patches = (rows - ky + 1) * (cols - kx + 1)
    images = low_res_images(kspace, calib, window)
    # the object: where the low-resolution image is bright
    obj = object_region(images)
    eig = result.eigenvalues[:, 0]
    mean_eig = (eig * obj).sum(dim=(-2, -1)) / obj.sum(dim=(-2, -1)).clamp(min=1)
    weak = (mean_eig < WEAK_EIGENVALUE) | (patches < MIN_PATCHES_PER_RANK * result.rank)
    misfit = map_misfit(images, result.maps, obj)
    notes: list[str] = []
    if bool(weak.any()):
        idx = weak.nonzero().flatten().tolist()
        notes.append(
            f"ESPIRiT maps are weak for {len(idx)} slice(s) (calibration {rows}x{cols}, mean eigenvalue "
            f"{float(mean_eig.min()):.2f}); using low-resolution ACS maps there"
        )
        maps = torch.where(weak[:, None, None, None], acs_maps(kspace, calib, images), result.maps)
        return SensitivityResult(maps, "espirit" if not bool(weak.all()) else "acs", notes, weak, misfit)
    return SensitivityResult(result.maps, "espirit", notes, weak, misfit)


def load_maps(path: str | Path, kspace_shape: tuple[int, ...]) -> torch.Tensor:
    """Maps from ``path`` (``.npy`` or ``.h5`` dataset ``sens_maps``) for k-space ``(S, C, H, W)``,
    broadcast over slices when stored as ``(C, H, W)`` and normalised to unit norm."""
    path = Path(path)
    if not path.exists():
        raise InputError(path, "sensitivity map file does not exist")
    if path.suffix == ".npy":
        try:
            data = np.load(path, allow_pickle=False)
        except (ValueError, OSError) as exc:
            raise InputError(path, "is not a .npy array file") from exc
    elif path.suffix in (".h5", ".hdf5"):
        from mrirecon.io.h5_input import open_h5, read_dataset

        with open_h5(path) as handle:
            data = read_dataset(handle, "sens_maps", path)
        if data is None:
            raise InputError(path, "has no 'sens_maps' dataset")
    else:
        raise InputError(path, "sensitivity maps must be a .npy file or an .h5 file with a 'sens_maps' dataset")
    s, c, h, w = kspace_shape
    if data.ndim == 3:
        data = data[None]
    if data.ndim != 4 or tuple(data.shape[1:]) != (c, h, w) or data.shape[0] not in (1, s):
        raise InputError(
            path,
            f"sensitivity maps have shape {tuple(np.shape(data))} but the k-space needs ({s}, {c}, {h}, {w}) or ({c}, {h}, {w})",
        )
    if not np.iscomplexobj(data) and data.dtype.kind != "f":
        raise InputError(path, f"sensitivity maps are {data.dtype}, not complex or real numbers")
    maps = torch.from_numpy(np.ascontiguousarray(data).astype(np.complex64))
    if not torch.isfinite(torch.view_as_real(maps)).all():
        raise InputError(path, "sensitivity maps have NaN or Inf values")
    if not bool(maps.abs().amax(dim=(1, 2, 3)).gt(0).all()):
        raise InputError(path, "sensitivity maps are all zero (in every coil of at least one slice)")
    return normalise_maps(maps).expand(s, c, h, w)
