"""Coil sensitivities as an operator (one or two map sets) and the one map normalisation.

One set: maps ``(S, C, H, W)``, images ``(S, H, W)``. Two (or more) sets, as ESPIRiT's soft-SENSE:
maps ``(S, M, C, H, W)``, images ``(S, M, H, W)``, and coil image ``c`` is ``sum_m S_mc x_m``.
"""

from __future__ import annotations

import torch

from mrirecon.ops.fourier import FFT2, Sampling
from mrirecon.ops.linop import Linop


class Sensitivity(Linop):
    """``x -> S x`` (coil images); the adjoint combines coils with the conjugate maps."""

    def __init__(self, maps: torch.Tensor):
        self.maps = maps
        self.sets = maps.ndim == 5

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.sets:
            return (self.maps * x.unsqueeze(2)).sum(dim=1)
        return self.maps * x.unsqueeze(1)

    def adjoint(self, y: torch.Tensor) -> torch.Tensor:
        if self.sets:
            return torch.linalg.vecdot(self.maps, y.unsqueeze(1), dim=2)
        return torch.linalg.vecdot(self.maps, y, dim=1)  # sum_c conj(S_c) y_c


def sense_op(mask: torch.Tensor, maps: torch.Tensor | None, centred: bool = True) -> Linop:
    """``A = M F S`` (``maps=None``: single coil, images ``(S, H, W)`` -> k-space ``(S, 1, H, W)``)."""
    if maps is None:
        return Sampling(mask) @ FFT2(centred) @ _AddCoilAxis()
    return Sampling(mask) @ FFT2(centred) @ Sensitivity(maps)


class _AddCoilAxis(Linop):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.unsqueeze(1)

    def adjoint(self, y: torch.Tensor) -> torch.Tensor:
        return y[:, 0]


def coil_norm(x: torch.Tensor, dim: int = 1, keepdim: bool = False) -> torch.Tensor:
    """``sqrt(sum |x|^2)`` over axis ``dim`` (real output): ``torch.linalg.vector_norm``'s value,
    summed through the real view, which on CPU is ~3x faster than its complex path."""
    if not x.is_complex():
        return torch.linalg.vector_norm(x, dim=dim, keepdim=keepdim)
    dim = dim % x.ndim
    power = torch.view_as_real(x).square().sum(dim=(dim, -1))
    return (power.unsqueeze(dim) if keepdim else power).sqrt()


def normalise_maps(maps: torch.Tensor, floor: float = 0.0, dim: int = 1) -> torch.Tensor:
    """Scale maps to unit norm over the coil axis ``dim`` at every pixel.

    Pixels whose norm is at most ``floor`` times the slice's largest norm (all-zero pixels when
    ``floor`` is 0) get the uniform map ``1/sqrt(C)``. The one place maps are normalised."""
    norm = coil_norm(maps, dim=dim, keepdim=True)
    limit = floor * norm.flatten(1).amax(dim=1).reshape(-1, *([1] * (maps.ndim - 1))) if floor > 0 else 0.0
    uniform = torch.full_like(maps, 1.0 / maps.shape[dim] ** 0.5)
    return torch.where(norm > limit, maps / torch.clamp(norm, min=1e-30), uniform)
