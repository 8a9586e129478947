"""Hermitian eigen-problems of calibration data, fast on a shared CPU and on a GPU.

Two facts drive this module:

- On a CPU, LAPACK's ``heevd`` (behind ``torch.linalg.eigh``) on the few-hundred-sized matrices
  of ESPIRiT and coil compression gains nothing from threads: its tridiagonal reduction
  synchronises its threads once per column. When the cores are shared with other processes
  (a loaded node, a CI runner), every such barrier waits for a descheduled peer, and two
  threads take 3-100x longer than one (``scripts/bench_eigh.py`` measures it). So
  ``hermitian_eigh`` runs on one thread on a CPU; the scale of the data plays no part
  (values of 1e-5 are far from float32's denormals, and normalising the matrices changes
  nothing measurable).
- On CUDA, batched ``eigh`` is truly batched only for matrices up to 32x32; larger ones run one
  cuSOLVER call each. ``spectral_projector`` gets ESPIRiT's signal-space projector from batched
  matrix products alone: a power iteration for the top eigenvalue, then the Newton-Schulz
  iteration for the matrix sign function of the shifted, scaled Gram matrix.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import torch

#: Newton-Schulz steps: eigenvalues at 1e-3 of the top one from the threshold need about 17
#: steps to reach O(1) (a gain of 1.5 per step), then a few quadratic steps; 40 leaves margin.
SIGN_ITERATIONS = 40
#: Power-iteration steps for the top eigenvalue (the threshold is relative to it).
POWER_ITERATIONS = 30


@contextmanager
def single_thread(device: torch.device) -> Iterator[None]:
    """Run the body on one intra-op thread when ``device`` is a CPU (restored afterwards)."""
    if device.type != "cpu":
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def hermitian_eigh(matrix: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``torch.linalg.eigh`` of a batch of Hermitian matrices, on one thread on a CPU (see above)."""
    with single_thread(matrix.device):
        return torch.linalg.eigh(matrix)


def top_eigenvalue(matrix: torch.Tensor, iters: int = POWER_ITERATIONS) -> torch.Tensor:
    """The largest eigenvalue ``(B,)`` of positive semi-definite matrices ``(B, N, N)`` by power
    iteration from a fixed start (deterministic, no host synchronisation)."""
    n = matrix.shape[-1]
    v = torch.ones(matrix.shape[0], n, 1, dtype=matrix.dtype, device=matrix.device)
    # a fixed, non-symmetric start: all-ones alone can be orthogonal to the top eigenvector
    v = v + 0.01 * torch.arange(n, device=matrix.device, dtype=torch.float32).reshape(1, n, 1)
    for _ in range(iters):
        v = matrix @ v
        v = v / torch.linalg.vector_norm(v, dim=1, keepdim=True).clamp(min=1e-30)
    return (v.conj().transpose(-1, -2) @ (matrix @ v)).real.reshape(-1)


def spectral_projector(
    gram: torch.Tensor, rel_threshold: float, iters: int = SIGN_ITERATIONS
) -> tuple[torch.Tensor, torch.Tensor]:
    """Projector ``(B, N, N)`` onto the eigenvectors of PSD ``gram`` whose eigenvalue exceeds
    ``rel_threshold`` times the largest, and its rank ``(B,)`` (the trace, rounded).

    Only batched matrix products: with ``X = (G - t I) / (l_max - t)`` (spectrum in ``[-1, 1]``),
    ``X <- 1.5 X - 0.5 X^3`` drives every eigenvalue to its sign, and ``(I + X) / 2`` is the
    projector. Eigenvalues within about 1e-6 of the threshold stay partly weighted (a soft edge
    where ``eigh`` makes a hard cut); elsewhere it equals ``eigh``'s projector to float32 precision.
    """
    n = gram.shape[-1]
    lmax = top_eigenvalue(gram)
    shift = rel_threshold * lmax
    scale = (lmax - shift).clamp(min=1e-30)
    eye = torch.eye(n, dtype=gram.dtype, device=gram.device)
    x = (gram - shift.reshape(-1, 1, 1) * eye) / scale.reshape(-1, 1, 1)
    for _ in range(iters):
        x = torch.baddbmm(x, x @ x, x, beta=1.5, alpha=-0.5)
    proj = 0.5 * (eye + x)
    proj = 0.5 * (proj + proj.conj().transpose(-1, -2))
    proj = proj * (lmax > 0).reshape(-1, 1, 1)  # an all-zero matrix has no signal space (as eigh's cut)
    rank = proj.diagonal(dim1=-2, dim2=-1).real.sum(-1).round().long()
    return proj, rank
