"""Generic solvers written once over ``mrirecon.ops``: CG, FISTA, PDHG, ADMM, and a norm estimate.

A solver knows nothing of MRI: it gets operators, functionals (or their gradients and proxes)
and a start, and works on every slice of the batch at once with per-slice step sizes and inner
products (SigPy's ``alg.py``, mrpro's ``pdhg``). ``callback(iteration, x)`` runs after every
iteration (cycle spinning draws its random wavelet shift there).

``ADMM`` takes its x-update as a hook: ``least_squares_update`` (warm-started CG, any operators)
by default, or a closed form such as ``mrirecon.cs.fourier_tv.fourier_update`` (one FFT pair when
``A^H A`` and ``K^H K`` are both diagonal in Fourier space). The multi-coil TV fast path,
``mrirecon.cs.admm.ADMM``, keeps its own fused closed-form updates.
"""

from __future__ import annotations

from typing import Callable, Optional

import torch

from mrirecon.ops.functionals import Functional
from mrirecon.ops.linop import Linop
from mrirecon.ops.vector import Vector, add, norm2, scale, tree_map, vdot

Callback = Optional[Callable[[int, Vector], None]]


def _safe_div(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return a / torch.clamp(b, min=1e-30)


def max_eigenvalue(gram: Linop | Callable, x0: torch.Tensor, iters: int = 20) -> torch.Tensor:
    """Largest eigenvalue of a self-adjoint non-negative operator per slice ``(S,)`` (power iteration)."""
    gen = torch.Generator(device="cpu").manual_seed(0)
    x = torch.randn(x0.shape, dtype=x0.dtype, generator=gen).to(x0.device)
    x = scale(x, torch.rsqrt(torch.clamp(norm2(x), min=1e-30)))
    value = torch.zeros(x.shape[0], device=x.device)
    for _ in range(iters):
        y = gram(x)
        value = vdot(x, y)
        x = scale(y, torch.rsqrt(torch.clamp(norm2(y), min=1e-30)))
    return value


def cg(
    gram: Linop | Callable, rhs: Vector, x0: Vector, max_iter: int = 10, tol: float = 0.0,
    precondition: Callable | None = None,
) -> Vector:
    """(Preconditioned) conjugate gradient for ``gram x = rhs`` per slice, from ``x0``."""
    x = x0
    r = add(rhs, gram(x), -1.0)
    z = precondition(r) if precondition else r
    p = z
    rz = vdot(r, z)
    rhs_norm = norm2(rhs)
    for _ in range(max_iter):
        if tol > 0 and bool((norm2(r) <= tol**2 * rhs_norm).all()):
            break
        ap = gram(p)
        alpha = _safe_div(rz, vdot(p, ap))
        x = add(x, p, alpha)
        r = add(r, ap, -alpha)
        z = precondition(r) if precondition else r
        rz_new = vdot(r, z)
        p = add(z, p, _safe_div(rz_new, rz))
        rz = rz_new
    return x


def fista(
    grad_f: Callable[[Vector], Vector], prox_g: Callable[[Vector, torch.Tensor | float], Vector], x0: Vector,
    step: torch.Tensor | float, max_iter: int, callback: Callback = None,
) -> Vector:
    """FISTA (Beck and Teboulle 2009) for ``min f(x) + g(x)`` with ``step <= 1 / L(grad f)``."""
    x, z, t = x0, x0, 1.0
    for i in range(max_iter):
        x_new = prox_g(add(z, grad_f(z), -step), step)
        t_new = 0.5 * (1.0 + (1.0 + 4.0 * t * t) ** 0.5)
        z = add(x_new, add(x_new, x, -1.0), (t - 1.0) / t_new)
        x, t = x_new, t_new
        if callback:
            callback(i, x)
    return x


def pdhg(
    f: Functional, g: Functional, K: Linop, x0: Vector, tau: torch.Tensor | float, sigma: torch.Tensor | float,
    max_iter: int, theta: float = 1.0, callback: Callback = None,
) -> Vector:
    """Chambolle–Pock for ``min_x f(K x) + g(x)``; needs ``tau sigma ||K||^2 < 1``."""
    x, x_bar = x0, x0
    y = tree_map(torch.zeros_like, K(x0))
    for i in range(max_iter):
        y = f.prox_conj(add(y, K(x_bar), sigma), sigma)
        x_new = g.prox(add(x, K.H(y), -tau), tau)
        x_bar = add(x_new, add(x_new, x, -1.0), theta)
        x = x_new
        if callback:
            callback(i, x)
    return x


XUpdate = Callable[[Vector, torch.Tensor, Vector], Vector]


def least_squares_update(A: Linop, y: torch.Tensor, K: Linop, cg_iters: int = 5) -> XUpdate:
    """The ADMM x-update for ``f(x) = 1/2 ||A x - y||^2``: ``(A^H A + rho K^H K) x = A^H y + rho K^H v``
    by ``cg_iters`` warm-started CG steps."""
    aty = A.H(y)

    def update(v: Vector, rho: torch.Tensor, x: Vector) -> Vector:
        def gram(t):
            return add(A.H(A(t)), K.H(K(t)), rho)

        return cg(gram, add(aty, K.H(v), rho), x, cg_iters)

    return update


def admm(
    x_update: XUpdate, K: Linop, g: Functional, x0: Vector, rho: torch.Tensor | float, max_iter: int,
    callback: Callback = None, relaxation: float = 1.0,
) -> Vector:
    """Scaled-form ADMM for ``min_x f(x) + g(K x)`` with the split ``z = K x``.

    ``x_update(v, rho, x)`` returns ``argmin_x f(x) + rho/2 ||K x - v||^2`` (``x``: the current
    iterate, for warm starts); ``rho`` is a number or per slice. ``relaxation`` in ``(0, 2)``:
    the x-update and the dual see ``a z + (1 - a) K x`` for ``z`` (over-relaxation for ``a > 1``,
    Boyd et al. 2011, section 3.4.3); 1 is plain ADMM."""
    if not 0.0 < relaxation < 2.0:
        raise ValueError(f"the ADMM relaxation must be in (0, 2), got {relaxation}")
    x = x0
    kx = K(x)
    u = tree_map(torch.zeros_like, kx)
    first = kx[0] if isinstance(kx, tuple) else kx
    rho_t = rho if isinstance(rho, torch.Tensor) else torch.full((first.shape[0],), float(rho), device=first.device)
    for i in range(max_iter):
        z = g.prox(add(kx, u), 1.0 / rho_t)
        if relaxation != 1.0:
            z = add(scale(z, relaxation), kx, 1.0 - relaxation)  # K x of the previous iterate
        x = x_update(add(z, u, -1.0), rho_t, x)
        kx = K(x)
        u = add(u, add(kx, z, -1.0))
        if callback:
            callback(i, x)
    return x
