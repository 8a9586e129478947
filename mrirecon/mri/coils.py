"""Coil combination."""

from __future__ import annotations

import torch


def rss(coil_images: torch.Tensor, dim: int = -3) -> torch.Tensor:
    """Root-sum-of-squares over the coil axis ``dim`` (real output)."""
    if coil_images.is_complex():
        power = coil_images.real.square() + coil_images.imag.square()
    else:
        power = coil_images.square()
    return power.sum(dim=dim).sqrt()
