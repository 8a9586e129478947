"""Coil combination."""

from __future__ import annotations

import torch

from mrirecon.mri.fft import ifft2c


def rss(coil_images: torch.Tensor, dim: int = -3) -> torch.Tensor:
    """Root-sum-of-squares over the coil axis ``dim`` (real output)."""
    if coil_images.is_complex():
        power = coil_images.real.square() + coil_images.imag.square()
    else:
        power = coil_images.square()
    return power.sum(dim=dim).sqrt()


def data_consistent_coils(predicted: torch.Tensor, measured: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Coil images ``(S, C, H, W)`` whose centred k-space is ``measured`` where ``mask`` (broadcasting
    against it) samples and the reconstruction's ``predicted`` k-space elsewhere: the projection onto
    the images that agree exactly with the data (the equality-constrained CS problem's constraint)."""
    return ifft2c(torch.where(mask.bool(), measured, predicted))
