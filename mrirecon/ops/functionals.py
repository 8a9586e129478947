"""Functionals with their proximal operators, per slice (mrpro's ``ProximableFunctional``).

``f(x)`` returns one value per slice ``(S,)``. ``f.prox(x, sigma)`` is
``argmin_z sigma f(z) + 1/2 ||z - x||^2`` and ``f.prox_conj(x, sigma)`` the same for the convex
conjugate ``f*`` (Moreau: ``x - sigma prox_{f/sigma}(x / sigma)``, overridden where a closed form
is cheaper); ``sigma`` and the weights are numbers or per-slice ``(S,)`` tensors.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Sequence

import torch

from mrirecon.ops.linop import Linop
from mrirecon.ops.vector import Vector, per_slice, tree_map

Scalar = torch.Tensor | float


def _abs2(x: torch.Tensor) -> torch.Tensor:
    return x.real.square() + x.imag.square() if x.is_complex() else x.square()


def _recip(s: Scalar) -> Scalar:
    return 1.0 / s


class Functional(ABC):
    """A proper convex functional on slice batches."""

    @abstractmethod
    def __call__(self, x: Vector) -> torch.Tensor:
        """Value per slice ``(S,)``."""

    @abstractmethod
    def prox(self, x: Vector, sigma: Scalar) -> Vector:
        """``argmin_z sigma f(z) + 1/2 ||z - x||^2``."""

    def prox_conj(self, x: Vector, sigma: Scalar) -> Vector:
        """The prox of ``sigma f*`` by Moreau's identity."""
        inner = self.prox(tree_map(lambda t: t / per_slice(sigma, t), x), _recip(sigma))
        return tree_map(lambda t, p: t - per_slice(sigma, t) * p, x, inner)


class Zero(Functional):
    """``f = 0``: its prox is the identity, its conjugate's prox returns zeros."""

    def __call__(self, x: Vector) -> torch.Tensor:
        first = x[0] if isinstance(x, tuple) else x
        return torch.zeros(first.shape[0], device=first.device)

    def prox(self, x: Vector, sigma: Scalar) -> Vector:
        return x

    def prox_conj(self, x: Vector, sigma: Scalar) -> Vector:
        return tree_map(torch.zeros_like, x)


class L2Squared(Functional):
    """``f(x) = weight/2 ||x - target||^2`` (``target`` ``None`` means 0)."""

    def __init__(self, target: torch.Tensor | None = None, weight: Scalar = 1.0):
        self.target, self.weight = target, weight

    def _diff(self, x: torch.Tensor) -> torch.Tensor:
        return x if self.target is None else x - self.target

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        w = self.weight
        return 0.5 * w * _abs2(self._diff(x)).flatten(1).sum(dim=1)

    def grad(self, x: torch.Tensor) -> torch.Tensor:
        return per_slice(self.weight, x) * self._diff(x)

    def prox(self, x: torch.Tensor, sigma: Scalar) -> torch.Tensor:
        sw = per_slice(sigma, x) * per_slice(self.weight, x)
        num = x if self.target is None else x + sw * self.target
        return num / (1.0 + sw)

    def prox_conj(self, x: torch.Tensor, sigma: Scalar) -> torch.Tensor:
        s = per_slice(sigma, x)
        w = per_slice(self.weight, x)
        num = x if self.target is None else x - s * self.target
        return num / (1.0 + s / w)


class L1(Functional):
    """``f(x) = weight * sum_i sqrt(sum_{group} |x_i|^2)``: plain L1 when ``group_dims`` is empty,
    isotropic TV on a gradient field with ``group_dims=(-3,)``, joint sparsity across coils by also
    grouping the coil axis."""

    def __init__(self, weight: Scalar = 1.0, group_dims: Sequence[int] = ()):
        self.weight = weight
        self.group_dims = tuple(group_dims)

    def magnitude(self, x: torch.Tensor) -> torch.Tensor:
        a = _abs2(x)
        if self.group_dims:
            a = a.sum(dim=self.group_dims, keepdim=True)
        return a.sqrt()

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.weight * self.magnitude(x).flatten(1).sum(dim=1)

    def prox(self, x: torch.Tensor, sigma: Scalar) -> torch.Tensor:
        t = per_slice(sigma, x) * per_slice(self.weight, x)
        return x * torch.clamp(1.0 - t / torch.clamp(self.magnitude(x), min=1e-30), min=0.0)

    def prox_conj(self, x: torch.Tensor, sigma: Scalar) -> torch.Tensor:
        """Projection onto ``{magnitude <= weight}`` (independent of ``sigma``)."""
        w = per_slice(self.weight, x)
        return x * torch.clamp(w / torch.clamp(self.magnitude(x), min=1e-30), max=1.0)


class TransformedL1(Functional):
    """``f(x) = L1(T x)`` for an orthonormal transform ``T`` (a wavelet): ``prox = T^H prox_L1(T x)``.

    Exact when ``T`` is unitary; with a zero-padded wavelet (``T^H T = I`` only) it is the usual
    approximation, as in BART and SigPy."""

    def __init__(self, transform: Linop, l1: L1):
        self.transform, self.l1 = transform, l1

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.l1(self.transform(x))

    def prox(self, x: torch.Tensor, sigma: Scalar) -> torch.Tensor:
        return self.transform.H(self.l1.prox(self.transform(x), sigma))


class SeparableSum(Functional):
    """``f(x_1, x_2, ...) = sum_i f_i(x_i)`` on tuples (the dual of a ``VStack``)."""

    def __init__(self, parts: Sequence[Functional]):
        self.parts = list(parts)

    def __call__(self, x: tuple) -> torch.Tensor:
        return sum(f(p) for f, p in zip(self.parts, x))

    def prox(self, x: tuple, sigma: Scalar) -> tuple:
        return tuple(f.prox(p, sigma) for f, p in zip(self.parts, x))

    def prox_conj(self, x: tuple, sigma: Scalar) -> tuple:
        return tuple(f.prox_conj(p, sigma) for f, p in zip(self.parts, x))
