"""2D total variation with periodic forward differences, batched over slices.

``grad``, ``grad_adjoint`` and ``laplacian_spectrum`` live in ``mrirecon.ops.finite_diff``
(re-exported here); this module holds the TV norms and their proxes used by the TV solvers.

``kind`` is ``"isotropic"`` (``sum sqrt(|dy|^2 + |dx|^2)``) or ``"anisotropic"``
(``sum |dy| + |dx|``); complex images use complex magnitudes.
"""

from __future__ import annotations

import torch

from mrirecon.ops.finite_diff import grad, grad_adjoint, laplacian_spectrum  # noqa: F401 (re-exported)

TV_KINDS = ("isotropic", "anisotropic")


def _abs2(x: torch.Tensor) -> torch.Tensor:
    return x.real.square() + x.imag.square() if x.is_complex() else x.square()


def magnitude(g: torch.Tensor, kind: str) -> torch.Tensor:
    """Pointwise magnitudes of a gradient field: ``(..., 1, H, W)`` isotropic, ``(..., 2, H, W)`` anisotropic."""
    if kind == "isotropic":
        return _abs2(g).sum(dim=-3, keepdim=True).sqrt()
    if kind == "anisotropic":
        return _abs2(g).sqrt()
    raise ValueError(f"unknown TV kind {kind!r}; use isotropic or anisotropic")


def l1_norm(g: torch.Tensor, kind: str) -> torch.Tensor:
    """The (mixed) l1 norm of a gradient field, one value per leading index: ``(...)``."""
    return magnitude(g, kind).sum(dim=(-3, -2, -1))


def tv(x: torch.Tensor, kind: str = "isotropic") -> torch.Tensor:
    """Total variation of images ``(..., H, W)``, one value per image."""
    return l1_norm(grad(x), kind)


def _expand(t: torch.Tensor | float, g: torch.Tensor) -> torch.Tensor | float:
    """Per-slice thresholds ``(S,)`` broadcast against ``(S, 2, H, W)``."""
    if isinstance(t, torch.Tensor) and t.ndim == 1:
        return t.reshape(-1, *([1] * (g.ndim - 1)))
    return t


def prox_l1(g: torch.Tensor, t: torch.Tensor | float, kind: str) -> torch.Tensor:
    """Prox of ``t * l1_norm(., kind)``: (group) soft thresholding. ``t`` scalar or per slice ``(S,)``."""
    t = _expand(t, g)
    mag = magnitude(g, kind)
    scale = torch.clamp(1.0 - t / torch.clamp(mag, min=1e-30), min=0.0)
    return g * scale


def project_dual(q: torch.Tensor, t: torch.Tensor | float, kind: str) -> torch.Tensor:
    """Projection onto the dual ball ``{q : magnitude(q) <= t}`` (prox of the conjugate of ``t * l1``)."""
    t = _expand(t, q)
    mag = magnitude(q, kind)
    return q * torch.clamp(t / torch.clamp(mag, min=1e-30), max=1.0)
