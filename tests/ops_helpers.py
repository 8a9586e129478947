"""One adjointness check for every operator (mrpro's ``tests/helper.py``)."""

from __future__ import annotations

import torch

from mrirecon.ops.linop import Linop
from mrirecon.ops.vector import tree_map, vdot


def random_like(x, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    return tree_map(lambda t: torch.randn(t.shape, dtype=t.dtype, generator=gen), x)


def assert_adjoint(op: Linop, x: torch.Tensor, rtol: float = 1e-4) -> None:
    """``<A x, y> = <x, A^H y>`` per slice, for random ``x`` of ``x``'s shape and ``y`` of ``A x``'s,
    and the same for ``A.H`` (whose adjoint is ``A``)."""
    x = random_like(x, 1)
    ax = op(x)
    y = random_like(ax, 2)
    lhs, rhs = vdot(ax, y), vdot(x, op.H(y))
    # the imaginary parts agree too: check Re <A x, i y> = Re <x, A^H (i y)>
    iy = tree_map(lambda t: 1j * t if t.is_complex() else t, y)
    lhs_i, rhs_i = vdot(ax, iy), vdot(x, op.H(iy))
    scale = torch.sqrt(vdot(ax, ax) * vdot(y, y))
    assert torch.allclose(lhs, rhs, atol=rtol * float(scale.max())), (lhs, rhs)
    assert torch.allclose(lhs_i, rhs_i, atol=rtol * float(scale.max())), (lhs_i, rhs_i)
    assert torch.allclose(vdot(op.H.H(x), y), lhs)
