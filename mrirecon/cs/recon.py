"""TV compressed-sensing reconstruction of a batch of slices: scaling, solver choice, result.

Lambda is dimensionless: every slice's k-space is divided by a reference level, the 99th
percentile of the magnitude of its zero-filled SENSE-combined image ``|A^H y|`` (BART scales by
a percentile of the zero-filled image the same way), the problem is solved at that scale, and
the image is multiplied back. Multiplying the input by ``c`` multiplies the output by ``c``.

When ``kspace`` holds only a window of ``n`` of the image's ``H`` readout rows
(``mrirecon.mri.readout``, ``full_rows=H``), the same top ``1%`` of the full image is taken as
the top ``1% * H / n`` of the kept rows: the scale equals the full grid's whenever the brightest
1% of the full image lies in the kept rows (the oversampled readout ends are mostly background).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from mrirecon.cs.admm import ADMM
from mrirecon.cs.pdhg import PDHG
from mrirecon.cs.problem import Algorithm, TVProblem
from mrirecon.mri.sense import broadcast_mask

SOLVERS = ("admm", "pdhg")
#: The percentile of ``|A^H y|`` that is scaled to 1.
REFERENCE_QUANTILE = 0.99


@dataclass
class TVResult:
    """Complex images ``(S, H, W)`` at the input's scale, iterations run, objective history, scales."""

    image: torch.Tensor
    iterations: int
    history: list[float] = field(default_factory=list)
    scale: torch.Tensor | None = None


def reference_scale(problem_adjoint: torch.Tensor, full_rows: int | None = None) -> torch.Tensor:
    """Per-slice reference level ``(S,)``: a high percentile of ``|A^H y|`` (1 for empty slices).

    ``full_rows``: the image height when ``problem_adjoint`` holds only some of its rows (see the
    module docstring)."""
    mag = problem_adjoint.abs().flatten(1)
    quantile = REFERENCE_QUANTILE
    if full_rows is not None and full_rows > problem_adjoint.shape[-2]:
        quantile = max(0.5, 1.0 - (1.0 - REFERENCE_QUANTILE) * full_rows / problem_adjoint.shape[-2])
    scale = torch.quantile(mag, quantile, dim=1)
    return torch.where(scale > 0, scale, torch.ones_like(scale))


def make_solver(
    problem: TVProblem, solver: str, max_iter: int, tol: float, track_objective: bool, compile_mode: str | None = None
) -> Algorithm:
    """The solver object named ``solver`` (``admm`` or ``pdhg``) for ``problem``; ``compile_mode``:
    ADMM's multi-coil iteration through ``torch.compile`` in that mode (PDHG always runs eagerly)."""
    if solver == "admm":
        return ADMM(problem, max_iter=max_iter, tol=tol, track_objective=track_objective, compile_mode=compile_mode)
    if solver == "pdhg":
        return PDHG(problem, max_iter=max_iter, tol=tol, track_objective=track_objective)
    raise ValueError(f"unknown solver {solver!r}; use admm or pdhg")


def tv_recon(
    kspace: torch.Tensor,
    mask: torch.Tensor,
    maps: torch.Tensor | None,
    lam: float | torch.Tensor,
    *,
    solver: str = "admm",
    max_iter: int = 50,
    tol: float = 1e-4,
    kind: str = "isotropic",
    track_objective: bool = False,
    full_rows: int | None = None,
    compile_mode: str | None = None,
) -> TVResult:
    """Solve ``min_x 1/2 ||M F S x - y||^2 + lam TV(x)`` for every slice of ``kspace``.

    ``kspace`` is ``(S, C, H, W)`` with unit-norm ``maps`` of the same shape, or single-coil
    ``(S, H, W)`` with ``maps=None``; unsampled entries are ignored (multiplied by ``mask``).
    ``lam`` (a number or per slice ``(S,)``) applies to the k-space scaled to its reference level (see the module docstring);
    ``full_rows`` is the full image height when ``kspace`` is a readout window of it;
    ``compile_mode``: see ``make_solver`` (``None``: eager).
    """
    lam = torch.as_tensor(lam, dtype=torch.float32)
    if not bool((lam >= 0).all()):
        raise ValueError(f"lambda must be non-negative, got {lam}")
    if max_iter < 1:
        raise ValueError(f"the iteration count must be at least 1, got {max_iter}")
    if kspace.ndim == 3:
        kspace = kspace.unsqueeze(1)
    # Everything periodic commutes with circular shifts: solve in ifftshifted order with plain FFTs.
    dims = (-2, -1)
    mask4 = broadcast_mask(mask, kspace.device).expand(1, 1, *kspace.shape[-2:])
    mask4 = torch.fft.ifftshift(mask4, dim=dims)
    kspace = torch.fft.ifftshift(kspace, dim=dims) * mask4
    maps = None if maps is None else torch.fft.ifftshift(maps, dim=dims)
    unscaled = TVProblem(kspace, mask4, maps, lam, kind, centred=False)
    scale = reference_scale(unscaled.adjoint_image(), full_rows)
    problem = TVProblem(kspace / scale.reshape(-1, 1, 1, 1), mask4, maps, lam, kind, centred=False)
    alg = make_solver(problem, solver, max_iter, tol, track_objective, compile_mode)
    image = torch.fft.fftshift(alg.run(), dim=dims) * scale.reshape(-1, 1, 1)
    return TVResult(image, alg.iteration, alg.history, scale)
