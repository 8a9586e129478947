"""Generic solvers (``mrirecon.cs.solvers``) against brute force and against each other."""

from __future__ import annotations

import pytest
import torch

from mrirecon.cs.admm import ADMM
from mrirecon.cs.problem import TVProblem
from mrirecon.cs.solvers import admm, cg, fista, least_squares_update, max_eigenvalue, pdhg
from mrirecon.ops import L1, FiniteDifference, L2Squared, SeparableSum, TransformedL1, VStack, Wavelet, Zero, sense_op
from mrirecon.ops.vector import add

pytestmark = pytest.mark.usefixtures("one_torch_thread")
GEN = torch.Generator().manual_seed(1)


def _spd(n: int) -> torch.Tensor:
    a = torch.randn(2, n, n, dtype=torch.complex128, generator=GEN)
    return a @ a.conj().transpose(1, 2) + n * torch.eye(n, dtype=torch.complex128)


def test_cg_and_power_iteration_match_dense_linear_algebra():
    m = _spd(8)
    b = torch.randn(2, 8, dtype=torch.complex128, generator=GEN)

    def gram(x):
        return (m @ x.unsqueeze(-1)).squeeze(-1)

    x = cg(gram, b, torch.zeros_like(b), max_iter=30)
    assert torch.allclose(x, torch.linalg.solve(m, b), atol=1e-8)
    top = max_eigenvalue(gram, b, iters=200)
    assert torch.allclose(top, torch.linalg.eigvalsh(m)[:, -1], rtol=1e-3)


def _sense_problem():
    s, c, h, w = 2, 3, 12, 10
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, h), torch.linspace(-1, 1, w), indexing="ij")
    image = ((yy**2 + xx**2) < 0.5).to(torch.complex64) * torch.tensor([1.0, 0.5]).reshape(2, 1, 1)
    maps = torch.randn(s, c, h, w, dtype=torch.complex64, generator=GEN) + 2
    maps = maps / torch.linalg.vector_norm(maps, dim=1, keepdim=True)
    mask = torch.rand(w, generator=GEN) < 0.5
    mask[w // 2 - 1 : w // 2 + 2] = True
    a = sense_op(mask, maps)
    y = a(image) + 0.02 * a(torch.randn(image.shape, dtype=torch.complex64, generator=GEN))
    return a, y, mask, maps


def _tv_objective(a, y, lam):
    def f(x):
        return L2Squared(y)(a(x)) + L1(lam, group_dims=(-3,))(FiniteDifference()(x))

    return f


def test_pdhg_and_admm_reach_the_fast_path_minimiser_on_tv_sense():
    a, y, mask, maps = _sense_problem()
    lam = 0.05
    objective = _tv_objective(a, y, lam)
    fast = ADMM(TVProblem(y, mask, maps, torch.tensor(lam)), max_iter=300, tol=0).run()
    d = FiniteDifference()
    k = VStack([a, d])
    x0 = a.H(y)
    bound = 1.0 + 8.0
    x_pd = pdhg(SeparableSum([L2Squared(y), L1(lam, group_dims=(-3,))]), Zero(), k, x0, 0.99 / bound**0.5,
                0.99 / bound**0.5, max_iter=800)
    x_admm = admm(least_squares_update(a, y, d, cg_iters=5), d, L1(lam, group_dims=(-3,)), x0, 0.5, max_iter=300)
    x_relaxed = admm(least_squares_update(a, y, d, cg_iters=5), d, L1(lam, group_dims=(-3,)), x0, 0.5, max_iter=300,
                     relaxation=1.8)
    best = objective(fast)
    assert torch.allclose(objective(x_pd), best, rtol=2e-3)
    assert torch.allclose(objective(x_admm), best, rtol=2e-3)
    assert torch.allclose(objective(x_relaxed), best, rtol=2e-3)
    with pytest.raises(ValueError, match="relaxation"):
        admm(least_squares_update(a, y, d), d, L1(lam), x0, 0.5, max_iter=1, relaxation=0.0)
    assert bool((best < objective(x0)).all())


def test_fista_and_pdhg_agree_on_l1_wavelet_sense():
    a, y, _, _ = _sense_problem()
    wav = Wavelet((12, 10), "db2", 1)  # 12 x 10 needs no padding at one level: unitary
    reg = TransformedL1(wav, L1(0.02))
    x0 = a.H(y)
    step = 1.0 / float(max_eigenvalue(a.gram, x0, 50).max())
    x_f = fista(lambda x: a.H(add(a(x), y, -1.0)), reg.prox, x0, step, max_iter=400)
    k = VStack([a, wav])
    x_p = pdhg(SeparableSum([L2Squared(y), L1(0.02)]), Zero(), k, x0, 0.7, 0.7, max_iter=800)

    def objective(x):
        return L2Squared(y)(a(x)) + reg(x)

    assert torch.allclose(objective(x_f), objective(x_p), rtol=2e-3)
    assert bool((objective(x_f) < objective(x0)).all())
