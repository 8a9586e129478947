"""Noise prewhitening: make the coils' noise uncorrelated with unit variance.

With the noise covariance ``Psi = L L^H`` (Cholesky), the whitened data ``L^{-1} y`` has identity
noise covariance. The noise scan may be sampled with another dwell time than the image: noise
variance scales with the bandwidth (1 / dwell), so the image's covariance is
``Psi * dwell_noise / dwell_image`` and the whitening matrix is
``L^{-1} * sqrt(dwell_image / dwell_noise)`` (Gadgetron's noise adjust does the same).
"""

from __future__ import annotations

import torch


def noise_covariance(noise: torch.Tensor) -> torch.Tensor:
    """The ``(C, C)`` sample covariance of noise samples ``(C, N)`` (complex, mean removed)."""
    if noise.ndim != 2 or noise.shape[1] < 2:
        raise ValueError(f"noise must be (coils, samples) with at least 2 samples, got {tuple(noise.shape)}")
    noise = noise.to(torch.complex128)
    centred = noise - noise.mean(dim=1, keepdim=True)
    return centred @ centred.conj().T / (noise.shape[1] - 1)


def whitening_matrix(noise: torch.Tensor, dwell_ratio: float | None = None) -> torch.Tensor:
    """``W = L^{-1}`` (times the bandwidth scale) from noise samples ``(C, N)``; ``W Psi W^H = I``.

    ``dwell_ratio`` = noise dwell time / image dwell time, when known.
    Raises ``ValueError`` when the covariance is not positive definite (a dead or duplicate coil).
    """
    cov = noise_covariance(noise)
    chol, info = torch.linalg.cholesky_ex(cov)
    if int(info) != 0:
        raise ValueError(f"the noise covariance is not positive definite (coil {int(info) - 1} is dead or duplicated)")
    eye = torch.eye(cov.shape[0], dtype=cov.dtype)
    inverse = torch.linalg.solve_triangular(chol, eye, upper=False)
    if dwell_ratio is not None:
        inverse = inverse / dwell_ratio**0.5
    return inverse


def apply_whitening(kspace: torch.Tensor, matrix: torch.Tensor) -> torch.Tensor:
    """Whiten multi-coil k-space ``(S, C, H, W)``: every sample's coil vector is multiplied by ``matrix``."""
    if kspace.ndim != 4 or kspace.shape[1] != matrix.shape[0]:
        raise ValueError(f"k-space {tuple(kspace.shape)} does not match a {tuple(matrix.shape)} whitening matrix")
    return torch.einsum("dc,schw->sdhw", matrix.to(kspace.dtype), kspace)
