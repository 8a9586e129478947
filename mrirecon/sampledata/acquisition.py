"""The scanner: coil images -> fully sampled k-space with noise and zero-padded columns,
and the target the tool computes from it."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from mrirecon.mri.coils import rss
from mrirecon.mri.crop import center_crop, recon_crop_size
from mrirecon.sampledata.coils import CoilArray, sensitivity_maps, single_coil_weights
from mrirecon.sampledata.shapes import Grid

#: Complex values per k-space batch (slices x coils x H x W): bounds memory for knee volumes.
BATCH_ELEMENTS = 1 << 23


@dataclass(frozen=True)
class Scan:
    """Per-volume acquisition settings."""

    acquisition: str
    field_strength: float  # tesla
    snr: float  # tissue (muscle) signal over the background noise level of the target
    scale: float  # signal of fat in proton density, in fastMRI's units (1e-4 .. 1e-3)
    span: float  # slab thickness (phantom units)
    sampled: tuple[int, int]  # acquired phase-encode columns [first, stop); the rest is zero padding


def draw_scan(rng: np.random.Generator, acquisition: str, width: int, multicoil: bool) -> Scan:
    """Random scanner settings for ``acquisition`` and ``width`` phase-encode columns: field
    strength and SNR (lower at 1.5 T and with fat suppression), signal scale, slab, padding."""
    field_strength = float(rng.choice([1.5, 3.0]))
    snr = rng.uniform(25.0, 40.0) * (1.0 if field_strength == 3.0 else 0.75)
    snr *= 0.75 if "FS" in acquisition else 1.0
    scale = (2.5e-4 if multicoil else 1.0e-4) * math.exp(rng.normal(0.0, 0.3))
    span = rng.uniform(1.25, 1.5)
    padded = int(round(width * rng.uniform(0.06, 0.11)))
    left = max(1, padded // 2 + int(rng.integers(-1, 2)))
    return Scan(acquisition, field_strength, float(snr), scale, span, (left, width - (padded - left)))


def noise_std(scan: Scan, tissue_signal: float, coils: int, multicoil: bool) -> float:
    """Per-coil complex noise standard deviation that puts the target's background noise
    at ``tissue_signal / scan.snr`` (the RSS of C noise-only coils is about sqrt(C) times one)."""
    return scan.scale * tissue_signal / scan.snr / (math.sqrt(coils) if multicoil else 1.0)


def centred_fft_factors(height: int, width: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """A +-1 checkerboard ``c`` (H, W) with ``fft2c(x) == c * fft2(c * x)`` for even H and W.

    It replaces fft2c's two full-size shifts by sign flips, one of which is folded into
    the image (shared by all coils).
    """
    if height % 2 or width % 2:
        raise ValueError(f"centred_fft_factors needs even sizes, got {height}x{width}")
    rows = torch.arange(height, device=device).view(-1, 1)
    cols = torch.arange(width, device=device).view(1, -1)
    board = (1 - 2 * ((rows + cols) % 2)) * (-1) ** ((height // 2 + width // 2) % 2)
    return board.to(torch.float32)


def target_from_unsigned(
    kspace: torch.Tensor, recon_hw: tuple[int, int], multicoil: bool, out: torch.Tensor | None = None
) -> torch.Tensor:
    """``zero_filled(c * kspace, recon_hw)`` (equal up to float rounding; ``c`` the checkerboard),
    faster: the signs only flip image pixels, which magnitudes ignore, and the crop comes
    before the coil combination. ``out``: an array of ``kspace``'s shape to hold the image."""
    image = torch.fft.ifft2(kspace, norm="ortho", out=out)
    image = center_crop(image, recon_crop_size(tuple(image.shape[-2:]), recon_hw))
    return rss(image, dim=1) if multicoil else image.abs()


def acquire(
    image: torch.Tensor,
    grid: Grid,
    array: CoilArray,
    scan: Scan,
    recon_hw: tuple[int, int],
    multicoil: bool,
    noise_level: float,
    noise_mixing: torch.Tensor | None,
    generator: torch.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """k-space (S, C, H, W) or, single-coil, (S, H, W) complex64 and its target (S, h, w) float32.

    Each batch of slices: coil images (object times sensitivities; single-coil: one coil
    emulated from the array), centred FFT, complex Gaussian noise of std ``noise_level``
    (correlated across coils by ``noise_mixing``, a Cholesky factor), the padded columns set
    to exactly zero.
    The noise is drawn on the CPU from ``generator``, so it does not depend on the device.
    """
    slices, height, width = image.shape
    coils = array.num_coils
    signs = centred_fft_factors(height, width, image.device)
    image = image * signs
    combine = None if multicoil else single_coil_weights(array, image.device).view(1, -1, 1, 1)
    kspace = np.empty((slices, coils, height, width) if multicoil else (slices, height, width), dtype=np.complex64)
    target = np.empty((slices, *recon_hw), dtype=np.float32)
    first, stop = scan.sampled
    batch = min(slices, max(1, BATCH_ELEMENTS // (coils * height * width)))
    # work arrays reused by every batch: fresh large arrays cost a page fault per 4 KiB
    shape = (batch, coils, height, width) if multicoil else (batch, height, width)
    spectrum = torch.empty(shape, dtype=torch.complex64, device=image.device)
    white = torch.empty((*shape, 2), dtype=torch.float32)
    mixed = torch.empty_like(spectrum) if noise_mixing is not None else None
    for start in range(0, slices, batch):
        end = min(start + batch, slices)
        n = end - start
        maps = sensitivity_maps(array, grid.slices(start, end))
        if combine is not None:
            coil_images = maps.mul_(combine).sum(dim=1).mul_(image[start:end])
        else:
            coil_images = maps.mul_(image[start:end].unsqueeze(1))
        data = torch.fft.fft2(coil_images, norm="ortho", out=spectrum[:n])  # fft2c up to the signs below
        torch.randn(white[:n].shape, generator=generator, out=white[:n])
        noise = torch.view_as_complex(white[:n]).to(image.device).mul_(noise_level / math.sqrt(2.0))
        if noise_mixing is not None:
            noise = torch.matmul(noise_mixing, noise.flatten(-2), out=mixed[:n].flatten(-2)).view_as(data)
        data += noise  # white noise: flipping its signs with the data's below changes nothing
        data[..., :first] = 0
        data[..., stop:] = 0
        target[start:end] = target_from_unsigned(data, recon_hw, multicoil, out=coil_images).cpu().numpy()
        data *= signs
        kspace[start:end] = data.cpu().numpy()
        del maps, coil_images, noise
    return kspace, target
