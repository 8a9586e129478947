"""ADMM for TV-regularised SENSE, with splittings whose updates are closed form through the FFT.

Single coil (``z = grad x``): the x-update ``(F^H M F + rho grad^H grad) x = ...`` is diagonal
in Fourier space (Cartesian mask, periodic differences), so it is one FFT pair.

Multi-coil (coil-image splitting ``v = S x``, ``z = grad x``): the v-update is a per-sample
average of the data and the estimate in k-space (diagonal), the z-update a soft threshold,
and the x-update solves ``(S^H S + grad^H grad) x = S^H (v - u1) + grad^H (z - u2)``: closed
form through the FFT when the maps have unit norm (``S^H S = I``, our ESPIRiT and ACS maps),
otherwise a few warm-started conjugate-gradient steps preconditioned by that closed form.

The penalty ``rho`` is per slice and balanced adaptively (Boyd et al. 2011, section 3.4.1).

The multi-coil iteration is written for memory traffic (it is memory-bound on every device):

- with a column mask (the readout fully sampled) the v-update runs in hybrid space: 1D FFTs
  along the columns only, on the data inverse-transformed along the rows once;
- unnormalised FFTs, their ``1/sqrt(N)`` factors folded into the cached per-rho constants
  ``y / (sqrt(N) (M + rho))`` and ``rho / (N (M + rho))`` and the x-update's spectrum;
- ``conj(maps)`` computed once; the x-update's right-hand side needs ``u1 - v`` only, which
  also gives the new ``u1 = (u1 - v) + S x`` in one fused pass;
- every coil-sized result goes into a preallocated buffer (``out=``), so an iteration allocates
  only image-sized tensors; with ``out=None`` the same function is purely functional, which is
  what ``torch.compile`` (``compile_mode``, e.g. ``"reduce-overhead"`` for CUDA graphs) captures;
- no host synchronisation inside an iteration: residual balancing runs on the device
  (``torch.where``) every ``adapt_every`` iterations, and the convergence test reads one boolean
  from the device at those iterations only (``check_every``).
"""

from __future__ import annotations

import math
from typing import Callable

import torch

from mrirecon.cs.problem import Algorithm, TVProblem, relative_change, squared_norm
from mrirecon.cs.tv import grad, grad_adjoint, laplacian_spectrum, prox_l1

#: Iterations between convergence tests when residual balancing is off (``adapt_every=0``).
CHECK_EVERY = 5
#: Over-relaxation of the multi-coil iteration (Boyd et al. 2011, section 3.4.3; 1 is plain ADMM).
#: With hard data consistency the coil-image splitting was far from converged at the default
#: iteration counts (sample multi-coil seed 22 at 4x: 0.693 SSIM at 20 iterations, 0.819 at 150);
#: 1.8 with the lower start below reached 0.805 at 20 (``scripts/bench_cs.py``'s suite). Single
#: coil (an exact x-update, converged at its iteration count) gained nothing: it keeps 1.
RELAXATION = 1.8
#: The starting penalty ``rho = a * lam`` clamped to ``[floor, 1]`` at the reference scale (see
#: ``mrirecon.cs.recon``), per path; residual balancing adapts it from there. Balancing only ever
#: raised rho on the multi-coil path (primal residual 10-50x the dual one), and starting low
#: converged faster: on the seed-22 scan above, 20 relaxed iterations scored 0.780 SSIM from
#: ``10 lam`` (min 0.02) and 0.805 from ``2.5 lam``; the latter is as close to the minimiser as 50
#: plain iterations (``tests/test_admm_lean.py``).
START_RHO = {"single": (10.0, 0.02), "multi": (2.5, 0.001)}


def _norm(x: torch.Tensor) -> torch.Tensor:
    return squared_norm(x).sqrt()


def _per_slice(t: torch.Tensor, ndim: int) -> torch.Tensor:
    return t.reshape(-1, *([1] * (ndim - 1)))


def _fft(t: torch.Tensor, centred: bool, out: torch.Tensor | None = None, dim: tuple[int, ...] = (-2, -1)) -> torch.Tensor:
    """Unnormalised FFT over ``dim`` (into ``out`` when given and the data is stored uncentred)."""
    if centred:
        return torch.fft.fftshift(torch.fft.fftn(torch.fft.ifftshift(t, dim=dim), dim=dim), dim=dim)
    return torch.fft.fftn(t, dim=dim, out=out)


def _ifft(t: torch.Tensor, centred: bool, out: torch.Tensor | None = None, dim: tuple[int, ...] = (-2, -1)) -> torch.Tensor:
    """Unnormalised inverse FFT over ``dim`` (no ``1/N``): the adjoint of ``_fft``."""
    if centred:
        return torch.fft.fftshift(torch.fft.ifftn(torch.fft.ifftshift(t, dim=dim), dim=dim, norm="forward"), dim=dim)
    return torch.fft.ifftn(t, dim=dim, norm="forward", out=out)


def is_column_mask(mask: torch.Tensor) -> bool:
    """True when a ``(..., H, W)`` mask is the same in every row (a Cartesian column mask)."""
    return bool(torch.equal(mask, mask[..., :1, :].expand_as(mask)))


def coil_iteration(
    x: torch.Tensor,
    gx: torch.Tensor,
    u1: torch.Tensor,
    u2: torch.Tensor,
    maps: torch.Tensor,
    maps_h: torch.Tensor,
    y_over: torch.Tensor,
    rho_over: torch.Tensor,
    lam_over_rho: torch.Tensor,
    inv_spectrum: torch.Tensor,
    kind: str,
    centred: bool,
    buffers: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None,
    x_solve: Callable[[torch.Tensor], torch.Tensor] | None = None,
    data_dim: tuple[int, ...] = (-2, -1),
    relaxation: float = 1.0,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """One multi-coil ADMM iteration; returns ``(x, gx, z, u1, u2, v)``.

    ``data_dim``: the axes the v-update transforms: both, or only the columns (``(-1,)``) for a
    column mask, with ``y_over`` then holding the hybrid (row-inverse-transformed) data.

    ``buffers`` ``(t, f, nd)``: coil-sized scratch tensors the iteration writes into (``u1``
    itself is then updated in place, and ``v`` is ``t``); ``None`` allocates (functional form).
    ``x_solve`` replaces the closed-form x-update (non-unit maps: preconditioned CG).
    """
    t, f, nd = buffers if buffers is not None else (None, None, None)
    # v-hat = (y + rho F(u1 + S x)) / (M + rho), with the FFT scaling folded into the constants
    t = torch.addcmul(u1, maps, x.unsqueeze(1), out=t)
    f = _fft(t, centred, out=f, dim=data_dim)
    f = torch.addcmul(y_over, f, rho_over, out=f)
    v = _ifft(f, centred, out=t, dim=data_dim)
    z = prox_l1(gx + u2, lam_over_rho, kind)
    if relaxation == 1.0:
        nd = torch.sub(u1, v, out=nd)  # u1 - v
        zr = z
    else:
        # over-relaxation (Boyd et al. 2011, 3.4.3): v, z replaced by a v + (1 - a) S x_old, a z + (1 - a) grad x_old
        nd = torch.addcmul(u1, maps, x.unsqueeze(1), value=relaxation - 1.0, out=nd)
        nd = torch.sub(nd, v, alpha=relaxation, out=nd if buffers is not None else None)
        zr = relaxation * z + (1.0 - relaxation) * gx
    combined = torch.mul(maps_h, nd, out=f).sum(dim=1)  # S^H (u1 - v), v relaxed
    rhs = grad_adjoint(zr - u2) - combined
    if x_solve is None:
        x = _ifft(_fft(rhs, centred) * inv_spectrum, centred)
    else:
        x = x_solve(rhs)
    gx = grad(x)
    u1 = torch.addcmul(nd, maps, x.unsqueeze(1), out=u1 if buffers is not None else None)
    u2 = u2 + gx - zr
    return x, gx, z, u1, u2, v


class ADMM(Algorithm):
    """ADMM solver for ``TVProblem`` (see the module docstring for the splittings).

    ``compile_mode`` (multi-coil only): run the iteration through ``torch.compile`` with this
    mode (``"default"``, ``"reduce-overhead"``, ...); ``None`` runs it eagerly in place.
    """

    def __init__(
        self,
        problem: TVProblem,
        max_iter: int = 50,
        tol: float = 1e-4,
        rho: float | None = None,
        adapt_every: int = 5,
        cg_iters: int = 3,
        track_objective: bool = False,
        compile_mode: str | None = None,
        relaxation: float | None = None,
    ):
        super().__init__(problem, max_iter, tol, track_objective)
        self.single = problem.maps is None
        self.relaxation = float(relaxation if relaxation is not None else (1.0 if self.single else RELAXATION))
        if not 0.0 < self.relaxation < 2.0:
            raise ValueError(f"the ADMM relaxation must be in (0, 2), got {self.relaxation}")
        s, h, w = problem.image_shape
        device = problem.kspace.device
        per_lam, floor = START_RHO["single" if self.single else "multi"]
        start = rho if rho is not None else min(max(per_lam * float(problem.lam.max()), floor), 1.0)
        self.rho = torch.full((s,), float(start), device=device)
        self.adapt_every = adapt_every
        self.check_every = adapt_every if adapt_every else CHECK_EVERY
        self.cg_iters = cg_iters
        self.change = torch.full((s,), float("inf"), device=device)
        self._stop = False
        self.lap = laplacian_spectrum(h, w, device)  # uncentred DFT order
        self.gx = grad(self.x)  # grad of the current x, reused by the next z-update
        self.z = self.gx
        self.u2 = torch.zeros_like(self.z)
        self.compile_mode = compile_mode
        if self.single:
            self.lap_k = torch.fft.fftshift(self.lap, dim=(-2, -1)) if problem.centred else self.lap
            self.mask2d = problem.mask[:, 0]  # (1|S, H, W)
            return
        self.unit = problem.unit_norm_maps
        lap = torch.fft.fftshift(self.lap, dim=(-2, -1)) if problem.centred else self.lap
        self.inv_spectrum = 1.0 / (h * w * (1.0 + lap))  # (I + grad^H grad)^-1 with the 1/N of the FFT pair
        # A column mask is constant along the readout, so the v-update's row FFTs cancel: it runs in
        # hybrid space (rows in image space) with 1D FFTs along the columns, on data F_rows^H y.
        self.data_dim: tuple[int, ...] = (-1,) if is_column_mask(problem.mask) else (-2, -1)
        self.numel = w if self.data_dim == (-1,) else h * w
        self.data_mask = problem.mask[..., :1, :] if self.data_dim == (-1,) else problem.mask
        self.data = problem.kspace
        if self.data_dim == (-1,):
            self.data = _ifft(problem.kspace, problem.centred, dim=(-2,)) / math.sqrt(h)
        self.maps_h = problem.maps.conj().resolve_conj()
        self.v = problem.op.coil_images(self.x)
        self.u1 = torch.zeros_like(self.v)
        self.buffers = None if compile_mode else (torch.empty_like(self.v), torch.empty_like(self.v), torch.empty_like(self.v))
        self._cache_rho()
        if not self.unit:
            self.weight = (problem.maps.real.square() + problem.maps.imag.square()).sum(dim=1)
        self._iteration = coil_iteration
        if compile_mode:
            for constant in (problem.maps, self.maps_h, self.y_over, self.inv_spectrum):
                torch._dynamo.mark_static_address(constant)  # CUDA graphs read them in place, no copies
            self._iteration = torch.compile(coil_iteration, mode=compile_mode, fullgraph=self.unit, dynamic=False)

    # --- x-updates ----------------------------------------------------------------------
    def _x_single(self, z: torch.Tensor) -> torch.Tensor:
        rho = _per_slice(self.rho, 3)
        y = self.problem.kspace[:, 0]
        op = self.problem.op
        rhs = y + rho * op.fft(grad_adjoint(z - self.u2))
        denom = self.mask2d + rho * self.lap_k
        return op.ifft(rhs / torch.clamp(denom, min=1e-12))

    def _precondition(self, r: torch.Tensor) -> torch.Tensor:
        """``(I + grad^H grad)^{-1} r`` through the FFT."""
        centred = self.problem.centred
        return _ifft(_fft(r, centred) * self.inv_spectrum, centred)

    def _x_cg(self, rhs: torch.Tensor) -> torch.Tensor:
        """Preconditioned CG on ``(W + grad^H grad) x = rhs``, warm-started at the current x."""
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
        x_old, balance = self._x_old, self._balance_now
        if self.single:
            self.z = prox_l1(self.gx + self.u2, lam_over_rho, problem.kind)
            a = self.relaxation
            zr = self.z if a == 1.0 else a * self.z + (1.0 - a) * self.gx
            self.x = self._x_single(zr)
            gx = self.gx = grad(self.x)
            self.u2 = self.u2 + gx - zr
            if balance:
                primal = _norm(gx - self.z)
                dual = self.rho * _norm(grad(self.x - x_old))
                self._balance(primal, dual)
            return
        if self.compile_mode and torch.cuda.is_available() and self.x.is_cuda:
            torch.compiler.cudagraph_mark_step_begin()
        x, gx, z, u1, u2, v = self._iteration(
            self.x, self.gx, self.u1, self.u2, problem.maps, self.maps_h, self.y_over, self.rho_over,
            lam_over_rho, self.inv_spectrum, problem.kind, problem.centred, self.buffers,
            None if self.unit else self._x_cg, self.data_dim, self.relaxation,
        )
        self.x, self.gx, self.z, self.u1, self.u2, self.v = x, gx, z, u1, u2, v
        if balance:
            # ||S x - v|| (one coil-sized pass, every adapt_every iterations) and rho ||S (x - x_old)||
            # from image-sized data: ||S d||^2 = sum_r w(r) |d(r)|^2 (w = 1 for unit-norm maps)
            sx_minus_v = torch.addcmul(-v, problem.maps, x.unsqueeze(1))
            primal = torch.sqrt(squared_norm(sx_minus_v) + squared_norm(gx - z))
            step = x - x_old
            coil_step = squared_norm(step) if self.unit else (self.weight * (step.real.square() + step.imag.square())).sum(dim=(1, 2))
            dual = self.rho * torch.sqrt(coil_step + squared_norm(grad(step)))
            self._balance(primal, dual)

    def _cache_rho(self) -> None:
        """The v-update's per-rho factors ``y / (sqrt(N) (M + rho))`` and ``rho / (N (M + rho))``
        (``y_over`` rewritten in place once it exists: a fixed address for CUDA graphs)."""
        rho4 = _per_slice(self.rho, 4)
        inv = 1.0 / (self.data_mask + rho4)
        self.y_over = torch.mul(self.data, inv / math.sqrt(self.numel), out=getattr(self, "y_over", None))
        self.rho_over = (rho4 * inv / self.numel).to(self.data.dtype)

    def _balance(self, primal: torch.Tensor, dual: torch.Tensor) -> None:
        """Residual balancing on the device: raise rho where the primal residual dominates, lower it
        where the dual one does (per slice, no host read), and rescale the scaled duals to match."""
        factor = torch.ones_like(self.rho)
        factor = torch.where(primal > 10.0 * dual, torch.full_like(factor, 2.0), factor)
        factor = torch.where(dual > 10.0 * primal, torch.full_like(factor, 0.5), factor)
        self.rho = self.rho * factor
        self.u2 = self.u2 / _per_slice(factor, self.u2.ndim)
        if not self.single:
            if self.buffers is not None:
                self.u1.div_(_per_slice(factor, 4))
            else:
                self.u1 = self.u1 / _per_slice(factor, 4)
            self._cache_rho()

    # --- the loop: one host read per check_every iterations -------------------------------
    def update(self) -> None:
        upcoming = self.iteration + 1
        self._balance_now = bool(self.adapt_every) and upcoming % self.adapt_every == 0
        self._check_now = upcoming % self.check_every == 0 or upcoming >= self.max_iter
        old = self.x
        if (self._balance_now or self._check_now) and self.compile_mode:
            old = old.clone()  # CUDA graphs reuse the output memory of x on the next replay
        self._x_old = old
        self._step()
        self.iteration += 1
        if self._check_now:
            self.change = relative_change(self.x, old)
            if self.iteration < self.max_iter:
                self._stop = bool((self.change < self.tol).all())
        if self.track_objective:
            self.history.append(float(self.problem.objective(self.x).sum()))

    def done(self) -> bool:
        return self.iteration >= self.max_iter or self._stop
