"""Periodic forward differences along the last two axes: ``(..., H, W)`` -> ``(..., 2, H, W)``.

Periodic boundaries make ``D^H D`` diagonal in Fourier space (``laplacian_spectrum``), which the
ADMM solvers use for closed-form updates.
"""

from __future__ import annotations

import math

import torch

from mrirecon.ops.linop import Linop


def grad(x: torch.Tensor) -> torch.Tensor:
    """Row and column differences ``(..., H, W)`` -> ``(..., 2, H, W)``."""
    dy = torch.roll(x, shifts=-1, dims=-2) - x
    dx = torch.roll(x, shifts=-1, dims=-1) - x
    return torch.stack((dy, dx), dim=-3)


def grad_adjoint(g: torch.Tensor) -> torch.Tensor:
    """The adjoint of ``grad`` (minus the backward-difference divergence)."""
    dy, dx = g.unbind(dim=-3)
    return (torch.roll(dy, shifts=1, dims=-2) - dy) + (torch.roll(dx, shifts=1, dims=-1) - dx)


def laplacian_spectrum(height: int, width: int, device: torch.device | str | None = None) -> torch.Tensor:
    """Eigenvalues of ``grad^H grad`` in the (uncentred) DFT basis: ``4 sin^2(pi k/H) + 4 sin^2(pi l/W)``."""
    ky = torch.arange(height, device=device, dtype=torch.float32)
    kx = torch.arange(width, device=device, dtype=torch.float32)
    ly = 4.0 * torch.sin(math.pi * ky / height).square()
    lx = 4.0 * torch.sin(math.pi * kx / width).square()
    return ly[:, None] + lx[None, :]


class FiniteDifference(Linop):
    """``grad`` as an operator (the difference axis is inserted at ``-3``)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return grad(x)

    def adjoint(self, y: torch.Tensor) -> torch.Tensor:
        return grad_adjoint(y)
