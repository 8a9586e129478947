"""Coil compression: project multi-coil k-space onto its strongest virtual coils (per slice).

The virtual coils are the principal components of the calibration region's coil covariance
(Buehrer et al. 2007; BART's ``cc -S``): a unitary transform followed by dropping the weakest
components, so white noise stays white and RSS/SENSE magnitudes are unchanged up to the energy
left out. Fewer coils make every ESPIRiT and CS iteration proportionally cheaper.
"""

from __future__ import annotations

import torch

from mrirecon.mri.crop import center_crop
from mrirecon.mri.eigen import hermitian_eigh


def compression_matrix(kspace: torch.Tensor, calib: tuple[int, int], energy: float = 0.99, max_coils: int | None = None) -> torch.Tensor:
    """Per-slice ``(S, C, n)`` orthonormal virtual-coil bases keeping ``energy`` of the calibration
    region's power (the same ``n`` for every slice: the largest any slice needs, at most ``max_coils``)."""
    acs = center_crop(kspace, calib).flatten(2)  # (S, C, P)
    cov = acs @ acs.conj().transpose(1, 2)
    evals, evecs = hermitian_eigh(cov)  # ascending
    evals, evecs = evals.flip(-1).clamp(min=0), evecs.flip(-1)
    cumulative = evals.cumsum(-1) / evals.sum(-1, keepdim=True).clamp(min=1e-30)
    needed = int((cumulative < energy).sum(-1).max()) + 1
    n = min(needed, kspace.shape[1], max_coils or kspace.shape[1])
    return evecs[..., :n]


def compress(data: torch.Tensor, basis: torch.Tensor) -> torch.Tensor:
    """Apply the bases ``(S, C, n)`` to coil data ``(S, C, H, W)`` -> ``(S, n, H, W)``."""
    s, c, h, w = data.shape
    return (basis.conj().transpose(1, 2) @ data.reshape(s, c, h * w)).reshape(s, -1, h, w)
