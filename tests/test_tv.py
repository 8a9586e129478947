"""Total variation: adjointness, the l1 proxes and the TV prox against brute-force solutions."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.optimize import minimize

from mrirecon.cs.admm import ADMM
from mrirecon.cs.problem import TVProblem
from mrirecon.cs.tv import grad, grad_adjoint, laplacian_spectrum, prox_l1, tv
from mrirecon.mri.fft import fft2c

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_grad_adjoint_dot_product():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(2, 7, 5, dtype=torch.complex64, generator=gen)
    g = torch.randn(2, 2, 7, 5, dtype=torch.complex64, generator=gen)
    lhs = torch.vdot(grad(x).flatten(), g.flatten())
    rhs = torch.vdot(x.flatten(), grad_adjoint(g).flatten())
    assert torch.allclose(lhs, rhs, rtol=1e-5, atol=1e-5)


def test_laplacian_spectrum_diagonalises_grad_normal():
    x = torch.randn(1, 6, 8, dtype=torch.complex64, generator=torch.Generator().manual_seed(1))
    direct = grad_adjoint(grad(x))
    spectral = torch.fft.ifft2(torch.fft.fft2(x) * laplacian_spectrum(6, 8))
    assert torch.allclose(direct, spectral, atol=1e-5)


@pytest.mark.parametrize("kind", ["isotropic", "anisotropic"])
def test_prox_l1_matches_brute_force(kind):
    rng = np.random.default_rng(2)
    v = rng.standard_normal((1, 2, 2, 3)) + 1j * rng.standard_normal((1, 2, 2, 3))
    t = 0.7

    def objective(flat):
        z = flat[: v.size].reshape(v.shape) + 1j * flat[v.size :].reshape(v.shape)
        mag = np.sqrt((np.abs(z) ** 2).sum(axis=1)) if kind == "isotropic" else np.abs(z)
        return 0.5 * np.sum(np.abs(z - v) ** 2) + t * mag.sum()

    start = np.concatenate([v.real.ravel(), v.imag.ravel()])
    brute = minimize(objective, start, method="Powell", options={"xtol": 1e-9, "ftol": 1e-12, "maxfev": 200000})
    ours = prox_l1(torch.from_numpy(v.astype(np.complex64)), t, kind).numpy()
    ours_flat = np.concatenate([ours.real.ravel(), ours.imag.ravel()])
    assert objective(ours_flat) <= brute.fun + 1e-6
    np.testing.assert_allclose(ours_flat, brute.x, atol=2e-3)


def _tv_prox_brute_force(image: np.ndarray, lam: float, kind: str) -> np.ndarray:
    """argmin_x 1/2||x - image||^2 + lam TV(x) for a real image, through its constrained dual:
    x = image - D^T q with |q| <= lam per pixel (box for anisotropic, disc for isotropic)."""
    h, w = image.shape

    def d_t(q):
        qy, qx = q.reshape(2, h, w)
        return grad_adjoint(torch.from_numpy(np.stack([qy, qx]))).numpy()

    def dual(q):
        x = image - d_t(q)
        return 0.5 * np.sum(x**2)

    def dual_grad(q):
        x = image - d_t(q)
        return -grad(torch.from_numpy(x)).numpy().ravel()

    n = 2 * h * w
    if kind == "anisotropic":
        res = minimize(dual, np.zeros(n), jac=dual_grad, method="L-BFGS-B", bounds=[(-lam, lam)] * n,
                       options={"ftol": 1e-15, "gtol": 1e-12, "maxiter": 10000})
    else:
        cons = {"type": "ineq", "fun": lambda q: lam**2 - q[: h * w] ** 2 - q[h * w :] ** 2}
        res = minimize(dual, np.zeros(n), jac=dual_grad, method="SLSQP", constraints=[cons],
                       options={"ftol": 1e-15, "maxiter": 1000})
    return image - d_t(res.x)


@pytest.mark.parametrize("kind", ["isotropic", "anisotropic"])
def test_tv_prox_through_admm_matches_brute_force(kind):
    """With a fully sampled single-coil problem, A = F and the TV problem is TV's prox."""
    rng = np.random.default_rng(3)
    image = np.zeros((4, 5))
    image[1:3, 1:4] = 1.0
    image += 0.3 * rng.standard_normal(image.shape)
    lam = 0.25
    expected = _tv_prox_brute_force(image, lam, kind)
    kspace = fft2c(torch.from_numpy(image.astype(np.complex64)))[None, None]
    problem = TVProblem(kspace, torch.ones(5, dtype=torch.bool), None, torch.tensor(lam), kind)
    ours = ADMM(problem, max_iter=3000, tol=1e-9).run()[0]
    assert ours.imag.abs().max() < 1e-4
    np.testing.assert_allclose(ours.real.numpy(), expected, atol=2e-3)
    assert float(tv(ours, kind)) == pytest.approx(float(tv(torch.from_numpy(expected), kind)), rel=1e-2)
