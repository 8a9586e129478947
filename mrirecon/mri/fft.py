"""Centred, orthonormal 2D FFTs on complex tensors (fastMRI's convention: DC in the middle)."""

from __future__ import annotations

import torch


def fft2c(image: torch.Tensor, dim: tuple[int, int] = (-2, -1)) -> torch.Tensor:
    """Centred orthonormal 2D FFT over ``dim`` (image -> k-space)."""
    x = torch.fft.ifftshift(image, dim=dim)
    x = torch.fft.fftn(x, dim=dim, norm="ortho")
    return torch.fft.fftshift(x, dim=dim)


def ifft2c(kspace: torch.Tensor, dim: tuple[int, int] = (-2, -1)) -> torch.Tensor:
    """Centred orthonormal 2D inverse FFT over ``dim`` (k-space -> image)."""
    x = torch.fft.ifftshift(kspace, dim=dim)
    x = torch.fft.ifftn(x, dim=dim, norm="ortho")
    return torch.fft.fftshift(x, dim=dim)


def ifft_readout(kspace: torch.Tensor) -> torch.Tensor:
    """Centred orthonormal inverse FFT along the readout (dim -2): k-space ``(..., H, W)`` to hybrid
    space (image rows x phase-encode columns)."""
    return ifft2c(kspace, dim=(-2,))
