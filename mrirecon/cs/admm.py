"""ADMM for TV-regularised SENSE, with splittings whose updates are closed form through the FFT.

Single coil (``z = grad x``): the x-update ``(F^H M F + rho grad^H grad) x = ...`` is diagonal
in Fourier space (Cartesian mask, periodic differences), so it is one FFT pair.

Multi-coil (coil-image splitting ``v = S x``, ``z = grad x``): the v-update is a per-sample
average of the data and the estimate in k-space (diagonal), the z-update a soft threshold,
and the x-update solves ``(S^H S + grad^H grad) x = S^H (v - u1) + grad^H (z - u2)``: closed
form through the FFT when the maps have unit norm (``S^H S = I``, our ESPIRiT and ACS maps),
otherwise a few warm-started conjugate-gradient steps preconditioned by that closed form.

The penalty ``rho`` is per slice and balanced adaptively (Boyd et al. 2011, section 3.4.1).
"""

from __future__ import annotations

import torch

from mrirecon.cs.problem import Algorithm, TVProblem, squared_norm
from mrirecon.cs.tv import grad, grad_adjoint, laplacian_spectrum, prox_l1


def _norm(x: torch.Tensor) -> torch.Tensor:
    return squared_norm(x).sqrt()


def _per_slice(t: torch.Tensor, ndim: int) -> torch.Tensor:
    return t.reshape(-1, *([1] * (ndim - 1)))


class ADMM(Algorithm):
    """ADMM solver for ``TVProblem`` (see the module docstring for the splittings)."""

    def __init__(
        self,
        problem: TVProblem,
        max_iter: int = 50,
        tol: float = 1e-4,
        rho: float | None = None,
        adapt_every: int = 5,
        cg_iters: int = 3,
        track_objective: bool = False,
    ):
        super().__init__(problem, max_iter, tol, track_objective)
        s, h, w = problem.image_shape
        device = problem.kspace.device
        # at the reference scale (see mrirecon.cs.recon) 10 * lam is a good start; balancing adapts it
        start = rho if rho is not None else min(max(10.0 * float(problem.lam.max()), 0.02), 1.0)
        self.rho = torch.full((s,), float(start), device=device)
        self.adapt_every = adapt_every
        self.cg_iters = cg_iters
        self.single = problem.maps is None
        self.lap = laplacian_spectrum(h, w, device)  # uncentred DFT order
        self.gx = grad(self.x)  # grad of the current x, reused by the next z-update
        self.z = self.gx
        self.u2 = torch.zeros_like(self.z)
        if self.single:
            self.lap_k = torch.fft.fftshift(self.lap, dim=(-2, -1)) if problem.centred else self.lap
            self.mask2d = problem.mask[:, 0]  # (1|S, H, W)
        else:
            self.unit = problem.unit_norm_maps
            self.v = problem.op.coil_images(self.x)
            self.u1 = torch.zeros_like(self.v)
            self._cache_rho()
            if not self.unit:
                self.weight = (problem.maps.real.square() + problem.maps.imag.square()).sum(dim=1)

    # --- x-updates ----------------------------------------------------------------------
    def _x_single(self) -> torch.Tensor:
        rho = _per_slice(self.rho, 3)
        y = self.problem.kspace[:, 0]
        op = self.problem.op
        rhs = y + rho * op.fft(grad_adjoint(self.z - self.u2))
        denom = self.mask2d + rho * self.lap_k
        return op.ifft(rhs / torch.clamp(denom, min=1e-12))

    def _precondition(self, r: torch.Tensor) -> torch.Tensor:
        """``(I + grad^H grad)^{-1} r`` through the FFT."""
        return torch.fft.ifft2(torch.fft.fft2(r) / (1.0 + self.lap))

    def _x_multi(self) -> torch.Tensor:
        op = self.problem.op
        rhs = op.combine(self.v - self.u1) + grad_adjoint(self.z - self.u2)
        if self.unit:
            return self._precondition(rhs)
        # preconditioned CG on (W + grad^H grad) x = rhs, warm-started at the current x
        x = self.x

        def normal(t: torch.Tensor) -> torch.Tensor:
            return self.weight * t + grad_adjoint(grad(t))

        r = rhs - normal(x)
        zr = self._precondition(r)
        p = zr
        rz = (r.conj() * zr).real.sum(dim=(1, 2))
        for _ in range(self.cg_iters):
            ap = normal(p)
            alpha = rz / torch.clamp((p.conj() * ap).real.sum(dim=(1, 2)), min=1e-30)
            x = x + _per_slice(alpha, 3) * p
            r = r - _per_slice(alpha, 3) * ap
            zr = self._precondition(r)
            rz_new = (r.conj() * zr).real.sum(dim=(1, 2))
            p = zr + _per_slice(rz_new / torch.clamp(rz, min=1e-30), 3) * p
            rz = rz_new
        return x

    # --- one iteration ------------------------------------------------------------------
    # Block order (v, z) -> x -> duals, so that the first step already moves x off A^H y.
    def _step(self) -> None:
        problem = self.problem
        lam_over_rho = problem.lam / self.rho
        x_old = self.x
        balance = bool(self.adapt_every) and (self.iteration + 1) % self.adapt_every == 0
        if self.single:
            self.z = prox_l1(self.gx + self.u2, lam_over_rho, problem.kind)
            self.x = self._x_single()
            gx = self.gx = grad(self.x)
            self.u2 = self.u2 + gx - self.z
            if balance:
                primal = _norm(gx - self.z)
                dual = self.rho * _norm(grad(self.x - x_old))
                self._balance(primal, dual, [self.u2])
        else:
            op, maps = problem.op, problem.maps
            a = op.fft(torch.addcmul(self.u1, maps, self.x.unsqueeze(1)))
            # v-hat = (y + rho a) / (M + rho), with y / (M + rho) and rho / (M + rho) cached per rho
            self.v = op.ifft(torch.addcmul(self.y_over, a, self.rho_over))
            self.z = prox_l1(self.gx + self.u2, lam_over_rho, problem.kind)
            self.x = self._x_multi()
            gx = self.gx = grad(self.x)
            if balance:
                sx = op.coil_images(self.x)
                self.u1 = self.u1 + sx - self.v
            else:
                self.u1 = torch.addcmul(self.u1 - self.v, maps, self.x.unsqueeze(1))
            self.u2 = self.u2 + gx - self.z
            if balance:
                primal = torch.sqrt(_norm(sx - self.v).square() + _norm(gx - self.z).square())
                step = self.x - x_old
                dual = self.rho * torch.sqrt(_norm(op.coil_images(step)).square() + _norm(grad(step)).square())
                self._balance(primal, dual, [self.u1, self.u2])

    def _cache_rho(self) -> None:
        """The v-update's per-rho factors ``y / (M + rho)`` and ``rho / (M + rho)``."""
        rho4 = _per_slice(self.rho, 4)
        inv = 1.0 / (self.problem.mask + rho4)
        self.y_over = self.problem.kspace * inv
        self.rho_over = (rho4 * inv).to(self.problem.kspace.dtype)

    def _balance(self, primal: torch.Tensor, dual: torch.Tensor, duals: list[torch.Tensor]) -> None:
        """Residual balancing: raise rho when the primal residual dominates, lower it otherwise."""
        factor = torch.ones_like(self.rho)
        factor = torch.where(primal > 10.0 * dual, torch.full_like(factor, 2.0), factor)
        factor = torch.where(dual > 10.0 * primal, torch.full_like(factor, 0.5), factor)
        self.rho = self.rho * factor
        for i, u in enumerate(duals):
            duals[i] = u / _per_slice(factor, u.ndim)
        if self.single:
            self.u2 = duals[0]
        else:
            self.u1, self.u2 = duals
            if bool((factor != 1).any()):
                self._cache_rho()
