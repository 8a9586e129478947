"""Arithmetic on the elements operators act on: a tensor, or a tuple of them (a ``VStack`` output).

Inner products and norms are per slice: they reduce every dimension but the first and return ``(S,)``.
"""

from __future__ import annotations

from typing import Callable, Union

import torch

Vector = Union[torch.Tensor, tuple]


def tree_map(fn: Callable, *xs: Vector) -> Vector:
    """Apply ``fn`` leaf-wise to tensors or (nested) tuples of tensors of the same structure."""
    if isinstance(xs[0], tuple):
        return tuple(tree_map(fn, *parts) for parts in zip(*xs))
    return fn(*xs)


def per_slice(t: torch.Tensor | float, like: torch.Tensor) -> torch.Tensor | float:
    """A per-slice ``(S,)`` tensor shaped to broadcast against ``like`` ``(S, ...)``; scalars pass through."""
    if isinstance(t, torch.Tensor) and t.ndim == 1:
        return t.reshape(-1, *([1] * (like.ndim - 1)))
    return t


def vdot(a: Vector, b: Vector) -> torch.Tensor:
    """``Re <a, b>`` per slice ``(S,)``."""
    if isinstance(a, tuple):
        return sum(vdot(x, y) for x, y in zip(a, b))
    if a.is_complex():
        return torch.view_as_real(a).mul(torch.view_as_real(b)).flatten(1).sum(dim=1)
    return a.mul(b).flatten(1).sum(dim=1)


def norm2(a: Vector) -> torch.Tensor:
    """``||a||^2`` per slice ``(S,)``."""
    return vdot(a, a)


def add(a: Vector, b: Vector, alpha: torch.Tensor | float = 1.0) -> Vector:
    """``a + alpha b`` with ``alpha`` scalar or per slice."""
    return tree_map(lambda x, y: x + per_slice(alpha, y) * y, a, b)


def scale(a: Vector, alpha: torch.Tensor | float) -> Vector:
    """``alpha a`` with ``alpha`` scalar or per slice."""
    return tree_map(lambda x: per_slice(alpha, x) * x, a)


def zeros_like(a: Vector) -> Vector:
    return tree_map(torch.zeros_like, a)
