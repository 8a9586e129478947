"""The TV-regularised SENSE problem ``min_x 1/2 ||M F S x - y||^2 + lam TV(x)``, batched over slices."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import torch

from mrirecon.cs.tv import TV_KINDS, grad, l1_norm
from mrirecon.mri.sense import SenseOp


@dataclass
class TVProblem:
    """Data ``kspace`` ``(S, C, H, W)`` (zero where unsampled), ``mask`` broadcastable to it,
    ``maps`` ``(S, C, H, W)`` or ``None`` (single coil, ``C = 1``), ``lam`` per slice ``(S,)``."""

    kspace: torch.Tensor
    mask: torch.Tensor
    maps: torch.Tensor | None
    lam: torch.Tensor
    kind: str = "isotropic"
    #: False when image and k-space are stored ifftshifted (plain FFTs; see ``mrirecon.cs.recon``)
    centred: bool = True

    def __post_init__(self) -> None:
        if self.kind not in TV_KINDS:
            raise ValueError(f"unknown TV kind {self.kind!r}; use isotropic or anisotropic")
        if self.kspace.ndim != 4:
            raise ValueError(f"kspace must be (S, C, H, W), got {tuple(self.kspace.shape)}")
        if self.maps is None and self.kspace.shape[1] != 1:
            raise ValueError("multi-coil k-space needs sensitivity maps")
        self.op = SenseOp(self.mask, self.maps, centred=self.centred)
        self.mask = self.op.mask
        self.lam = torch.as_tensor(self.lam, dtype=torch.float32, device=self.kspace.device).reshape(-1)
        if self.lam.numel() == 1:
            self.lam = self.lam.expand(self.kspace.shape[0]).clone()

    @property
    def image_shape(self) -> tuple[int, int, int]:
        s, _, h, w = self.kspace.shape
        return s, h, w

    @property
    def unit_norm_maps(self) -> bool:
        """True when ``S^H S = I`` (single coil, or maps of unit norm at every pixel)."""
        if self.maps is None:
            return True
        power = (self.maps.real.square() + self.maps.imag.square()).sum(dim=1)
        return bool(torch.allclose(power, torch.ones_like(power), atol=1e-4))

    def objective(self, x: torch.Tensor) -> torch.Tensor:
        """Objective per slice ``(S,)``."""
        residual = self.op.forward(x) - self.kspace
        data = 0.5 * (residual.real.square() + residual.imag.square()).sum(dim=(1, 2, 3))
        return data + self.lam * l1_norm(grad(x), self.kind)

    def adjoint_image(self) -> torch.Tensor:
        """``A^H y``, the zero-filled SENSE-combined image (the solvers' starting point)."""
        return self.op.adjoint(self.kspace)


def squared_norm(x: torch.Tensor) -> torch.Tensor:
    """``||x||^2`` per slice ``(S,)`` (through the real view: much faster than complex ``abs``)."""
    r = torch.view_as_real(x) if x.is_complex() else x
    return r.square().flatten(1).sum(dim=1)


def relative_change(new: torch.Tensor, old: torch.Tensor) -> torch.Tensor:
    """``||new - old|| / ||new||`` per slice ``(S,)``."""
    return (squared_norm(new - old) / torch.clamp(squared_norm(new), min=1e-60)).sqrt()


class Algorithm(ABC):
    """An iterative solver as a small object (SigPy style): ``update()`` one step, ``done()`` the test.

    Stops after ``max_iter`` iterations or when every slice's relative change of ``x`` is
    below ``tol``. With ``track_objective`` the objective (summed over slices) is appended to
    ``history`` after every iteration.
    """

    def __init__(self, problem: TVProblem, max_iter: int, tol: float, track_objective: bool = False):
        if max_iter < 1:
            raise ValueError(f"the iteration count must be at least 1, got {max_iter}")
        if tol < 0:
            raise ValueError(f"the tolerance must be non-negative, got {tol}")
        self.problem = problem
        self.max_iter = int(max_iter)
        self.tol = float(tol)
        self.track_objective = track_objective
        self.iteration = 0
        self.change = torch.full((problem.image_shape[0],), float("inf"))
        self.history: list[float] = []
        self.x = problem.adjoint_image()

    @abstractmethod
    def _step(self) -> None:
        """One iteration: update ``self.x`` (and the solver's own variables)."""

    def update(self) -> None:
        old = self.x
        self._step()
        self.iteration += 1
        self.change = relative_change(self.x, old)
        if self.track_objective:
            self.history.append(float(self.problem.objective(self.x).sum()))

    def done(self) -> bool:
        return self.iteration >= self.max_iter or bool((self.change < self.tol).all())

    def run(self) -> torch.Tensor:
        """Iterate until ``done()``; returns ``x``."""
        while not self.done():
            self.update()
        return self.x
