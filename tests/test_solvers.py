"""The solvers: same minimiser from ADMM and PDHG, the lambda -> 0 limit, scale invariance, bad options."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import smooth_image
from mrirecon.cs.admm import ADMM
from mrirecon.cs.pdhg import PDHG
from mrirecon.cs.problem import TVProblem
from mrirecon.cs.recon import tv_recon
from mrirecon.mri.fft import fft2c
from mrirecon.mri.sense import sense_combine

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _problem_data(coils: int | None, slices: int = 2, height: int = 20, width: int = 16, seed: int = 0):
    rng = np.random.default_rng(seed)
    images = torch.from_numpy(np.stack([smooth_image(height, width, rng) for _ in range(slices)]))
    gen = torch.Generator().manual_seed(seed)
    mask = torch.rand(width, generator=gen) < 0.35
    mask[width // 2 - 2 : width // 2 + 2] = True
    if coils is None:
        kspace = fft2c(images)[:, None]
        maps = None
    else:
        maps = torch.randn(slices, coils, height, width, dtype=torch.complex64, generator=gen) + 2.0
        maps = maps / torch.linalg.vector_norm(maps, dim=1, keepdim=True)
        kspace = fft2c(maps * images[:, None])
    kspace = kspace + 0.02 * torch.randn(kspace.shape, dtype=torch.complex64, generator=gen)
    return kspace * mask, mask, maps


@pytest.mark.parametrize("coils", [None, 3])
def test_admm_and_pdhg_reach_the_same_minimiser(coils):
    kspace, mask, maps = _problem_data(coils, height=16, width=12)
    problem = TVProblem(kspace, mask, maps, torch.tensor(0.05))
    start = float(problem.objective(problem.adjoint_image()).sum())
    f_admm = float(problem.objective(ADMM(problem, max_iter=150, tol=0).run()).sum())
    f_pdhg = float(problem.objective(PDHG(problem, max_iter=400, tol=0).run()).sum())
    assert f_admm == pytest.approx(f_pdhg, rel=1e-3)
    assert f_admm < start


@pytest.mark.parametrize("solver", [ADMM, PDHG])
def test_objective_history_is_recorded_and_falls(solver):
    kspace, mask, maps = _problem_data(3, height=16, width=12)
    alg = solver(TVProblem(kspace, mask, maps, torch.tensor(0.05)), max_iter=12, tol=0, track_objective=True)
    alg.run()
    assert len(alg.history) == 12 == alg.iteration
    assert alg.history[-1] < alg.history[0]


def test_admm_with_non_unit_maps_uses_cg_and_agrees_with_pdhg():
    kspace, mask, maps = _problem_data(3, height=16, width=12)
    maps = maps * torch.linspace(0.5, 1.0, maps.shape[-1])  # S^H S != I: the x-update needs CG
    problem = TVProblem(kspace, mask, maps, torch.tensor(0.05))
    admm = ADMM(problem, max_iter=150, tol=0, cg_iters=4)
    assert not admm.unit
    f_admm = float(problem.objective(admm.run()).sum())
    f_pdhg = float(problem.objective(PDHG(problem, max_iter=400, tol=0).run()).sum())
    assert f_admm == pytest.approx(f_pdhg, rel=1e-3)


@pytest.mark.parametrize("solver", ["admm", "pdhg"])
@pytest.mark.parametrize("coils", [None, 3])
def test_tiny_lambda_full_sampling_is_coil_combined_ifft(solver, coils):
    kspace, _, maps = _problem_data(coils)
    full = torch.ones(kspace.shape[-1], dtype=torch.bool)
    kspace = fft2c(torch.randn(kspace.shape, dtype=torch.complex64, generator=torch.Generator().manual_seed(5)))
    result = tv_recon(kspace, full, maps, 1e-7, solver=solver, max_iter=200, tol=1e-7)
    expected = sense_combine(kspace, maps)
    assert torch.allclose(result.image, expected, atol=1e-4 * float(expected.abs().max()))


@pytest.mark.parametrize("solver", ["admm", "pdhg"])
def test_scale_invariance(solver):
    kspace, mask, maps = _problem_data(3)
    base = tv_recon(kspace, mask, maps, 0.02, solver=solver, max_iter=30, tol=0).image
    scaled = tv_recon(kspace * 1000, mask, maps, 0.02, solver=solver, max_iter=30, tol=0).image
    assert torch.allclose(scaled, 1000 * base, rtol=1e-4, atol=1e-4 * float(1000 * base.abs().max()))


def test_tolerance_stops_early_and_bad_options_are_refused():
    kspace, mask, maps = _problem_data(3)
    early = tv_recon(kspace, mask, maps, 0.02, max_iter=500, tol=1e-2)
    assert 1 < early.iterations < 500
    with pytest.raises(ValueError, match="lambda"):
        tv_recon(kspace, mask, maps, -1.0)
    with pytest.raises(ValueError, match="iteration"):
        tv_recon(kspace, mask, maps, 0.01, max_iter=0)
    with pytest.raises(ValueError, match="solver"):
        tv_recon(kspace, mask, maps, 0.01, solver="sgd")
    with pytest.raises(ValueError, match="TV kind"):
        tv_recon(kspace, mask, maps, 0.01, kind="huber")
