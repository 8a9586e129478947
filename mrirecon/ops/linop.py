"""Linear operators with adjoints, composition, sums, scaling, vertical stacking and Gram operators.

An operator maps slice batches ``(S, ...)`` to slice batches; ``A.H`` is its adjoint, ``A @ B``
the composition (``A @ x`` applies ``A`` to a tensor ``x``), ``A + B`` the sum, ``c * A`` a scaled
copy (``c`` a number or a per-slice ``(S,)`` tensor), ``VStack([A, B])`` maps ``x`` to the tuple
``(A x, B x)`` and ``A.gram`` is ``A.H @ A``. Subclasses implement ``forward`` and ``adjoint``
(SigPy's ``Linop``, mrpro's ``LinearOperator``); every one is checked by the same adjointness
helper in the tests.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Sequence

import torch

from mrirecon.ops.vector import Vector, per_slice, tree_map


class Linop(ABC):
    """A linear operator on slice batches."""

    @abstractmethod
    def forward(self, x: Vector) -> Vector:
        """``A x``."""

    @abstractmethod
    def adjoint(self, y: Vector) -> Vector:
        """``A^H y``."""

    def __call__(self, x: Vector) -> Vector:
        return self.forward(x)

    @property
    def H(self) -> "Linop":
        return Adjoint(self)

    @property
    def gram(self) -> "Linop":
        """``A^H A``."""
        return Compose([self.H, self])

    def __matmul__(self, other):
        if isinstance(other, Linop):
            return Compose([self, other])
        return self.forward(other)

    def __add__(self, other: "Linop") -> "Linop":
        return Sum([self, other])

    def __mul__(self, c) -> "Linop":
        return Scaled(self, c)

    __rmul__ = __mul__


class Adjoint(Linop):
    def __init__(self, op: Linop):
        self.op = op

    def forward(self, x: Vector) -> Vector:
        return self.op.adjoint(x)

    def adjoint(self, y: Vector) -> Vector:
        return self.op.forward(y)

    @property
    def H(self) -> Linop:
        return self.op


class Compose(Linop):
    """``ops[0] @ ops[1] @ ...`` (the last one acts first)."""

    def __init__(self, ops: Sequence[Linop]):
        flat: list[Linop] = []
        for op in ops:
            flat.extend(op.ops if isinstance(op, Compose) else [op])
        self.ops = flat

    def forward(self, x: Vector) -> Vector:
        for op in reversed(self.ops):
            x = op.forward(x)
        return x

    def adjoint(self, y: Vector) -> Vector:
        for op in self.ops:
            y = op.adjoint(y)
        return y


class Sum(Linop):
    """``sum_i ops[i]`` (same input and output shapes)."""

    def __init__(self, ops: Sequence[Linop]):
        self.ops = list(ops)

    def forward(self, x: Vector) -> Vector:
        out = self.ops[0].forward(x)
        for op in self.ops[1:]:
            out = tree_map(torch.add, out, op.forward(x))
        return out

    def adjoint(self, y: Vector) -> Vector:
        out = self.ops[0].adjoint(y)
        for op in self.ops[1:]:
            out = tree_map(torch.add, out, op.adjoint(y))
        return out


class Scaled(Linop):
    """``c A`` with ``c`` a real or complex number or a per-slice ``(S,)`` tensor."""

    def __init__(self, op: Linop, c):
        self.op, self.c = op, c

    def _conj(self):
        return self.c.conj() if isinstance(self.c, torch.Tensor) else complex(self.c).conjugate() if isinstance(self.c, complex) else self.c

    def forward(self, x: Vector) -> Vector:
        return tree_map(lambda t: per_slice(self.c, t) * t, self.op.forward(x))

    def adjoint(self, y: Vector) -> Vector:
        c = self._conj()
        return self.op.adjoint(tree_map(lambda t: per_slice(c, t) * t, y))


class VStack(Linop):
    """``x -> (ops[0] x, ops[1] x, ...)``; the adjoint sums ``ops[i]^H y_i``."""

    def __init__(self, ops: Sequence[Linop]):
        self.ops = list(ops)

    def forward(self, x: Vector) -> tuple:
        return tuple(op.forward(x) for op in self.ops)

    def adjoint(self, y: tuple) -> Vector:
        out = self.ops[0].adjoint(y[0])
        for op, part in zip(self.ops[1:], y[1:]):
            out = tree_map(torch.add, out, op.adjoint(part))
        return out


class Identity(Linop):
    def forward(self, x: Vector) -> Vector:
        return x

    def adjoint(self, y: Vector) -> Vector:
        return y


class Multiply(Linop):
    """Pointwise multiplication by ``weight`` (broadcast against the input); the adjoint by its conjugate."""

    def __init__(self, weight: torch.Tensor):
        self.weight = weight

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.weight * x

    def adjoint(self, y: torch.Tensor) -> torch.Tensor:
        return (self.weight.conj() if self.weight.is_complex() else self.weight) * y
