"""Chambolle–Pock primal-dual hybrid gradient for TV-regularised SENSE.

``min_x F(K x)`` with ``K = [A; grad]``, ``F(a, g) = 1/2 ||a - y||^2 + lam ||g||_1``: both dual
proxes are closed form (a scaling and a projection), so every step is one ``A``/``A^H`` pair.
Step sizes satisfy ``tau * sigma * ||K||^2 < 1`` with ``||K||^2 <= max_r sum_c |S_c(r)|^2 + 8``.
"""

from __future__ import annotations

import math

import torch

from mrirecon.cs.problem import Algorithm, TVProblem
from mrirecon.cs.tv import grad, grad_adjoint, project_dual


class PDHG(Algorithm):
    """Primal-dual solver for ``TVProblem`` (over-relaxation ``theta = 1``)."""

    def __init__(
        self,
        problem: TVProblem,
        max_iter: int = 100,
        tol: float = 1e-4,
        ratio: float = 1.0,
        track_objective: bool = False,
    ):
        super().__init__(problem, max_iter, tol, track_objective)
        if problem.maps is None:
            a_norm2 = 1.0
        else:
            a_norm2 = float((problem.maps.real.square() + problem.maps.imag.square()).sum(dim=1).max())
        bound = math.sqrt(a_norm2 + 8.0) * 1.01
        # tau * sigma * bound^2 = 1 / 1.0201 < 1; ``ratio`` = tau / sigma
        self.tau = math.sqrt(ratio) / bound
        self.sigma = 1.0 / (math.sqrt(ratio) * bound)
        self.x_bar = self.x
        self.p = torch.zeros_like(problem.kspace)
        self.q = torch.zeros_like(grad(self.x))

    def _step(self) -> None:
        problem, sigma = self.problem, self.sigma
        self.p = (self.p + sigma * (problem.op.forward(self.x_bar) - problem.kspace)) / (1.0 + sigma)
        self.q = project_dual(self.q + sigma * grad(self.x_bar), problem.lam, problem.kind)
        x_new = self.x - self.tau * (problem.op.adjoint(self.p) + grad_adjoint(self.q))
        self.x_bar = 2.0 * x_new - self.x
        self.x = x_new
