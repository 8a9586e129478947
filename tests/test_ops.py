"""``mrirecon.ops``: every operator passes the adjointness check; algebra; wavelets; functionals."""

from __future__ import annotations

import pytest
import torch

from ops_helpers import assert_adjoint, random_like
from mrirecon.mri.fft import fft2c
from mrirecon.ops import (
    FFT2, L1, FiniteDifference, Identity, L2Squared, Multiply, Sampling, Sensitivity, SeparableSum, TransformedL1,
    VStack, Wavelet, Zero, normalise_maps, sense_op,
)
from mrirecon.ops.vector import norm2, vdot
from mrirecon.ops.wavelet import FILTERS, WaveletDetails, filter_bank

pytestmark = pytest.mark.usefixtures("one_torch_thread")

S, C, H, W = 2, 3, 12, 10
GEN = torch.Generator().manual_seed(0)


def _c(*shape):
    return torch.randn(*shape, dtype=torch.complex64, generator=GEN)


MASK = (torch.rand(W, generator=GEN) < 0.5).float()
MAPS = _c(S, C, H, W)
MAPS2 = _c(S, 2, C, H, W)
IMAGE = _c(S, H, W)

OPERATORS = {
    "fft centred": (FFT2(), IMAGE),
    "fft plain": (FFT2(centred=False), IMAGE),
    "sampling": (Sampling(MASK), _c(S, C, H, W)),
    "sensitivity": (Sensitivity(MAPS), IMAGE),
    "sensitivity two sets": (Sensitivity(MAPS2), _c(S, 2, H, W)),
    "sense": (sense_op(MASK, MAPS), IMAGE),
    "sense single coil": (sense_op(MASK, None), IMAGE),
    "finite difference": (FiniteDifference(), IMAGE),
    "multiply": (Multiply(_c(1, H, W)), IMAGE),
    "wavelet db4 shifted": (Wavelet((H, W), "db4", 2, shift=(3, 1)), IMAGE),
    "wavelet padded": (Wavelet((13, 9), "db2", 3), _c(S, 13, 9)),
    "wavelet details": (WaveletDetails(Wavelet((H, W), "db4", 2, shift=(1, 2))), IMAGE),
    "sum": (FFT2() + 2.0 * Identity(), IMAGE),
    "scaled per slice": (torch.tensor([1.0, 3.0]) * FiniteDifference(), IMAGE),
    "vstack": (VStack([sense_op(MASK, MAPS), FiniteDifference()]), IMAGE),
    "gram": (sense_op(MASK, MAPS).gram, IMAGE),
    "adjoint of a composition": ((FiniteDifference() @ FFT2()).H, _c(S, 2, H, W)),
}


@pytest.mark.parametrize("name", list(OPERATORS))
def test_every_operator_is_adjoint(name):
    op, x = OPERATORS[name]
    assert_adjoint(op, x)


def test_sense_op_matches_the_definition():
    y = sense_op(MASK, MAPS)(IMAGE)
    assert torch.allclose(y, fft2c(MAPS * IMAGE[:, None]) * MASK, atol=1e-5)
    two = Sensitivity(MAPS2)(torch.stack([IMAGE, 2 * IMAGE], dim=1))
    assert torch.allclose(two, (MAPS2[:, 0] + 2 * MAPS2[:, 1]) * IMAGE[:, None], atol=1e-5)


def test_algebra_composes_sums_and_stacks():
    fd, f = FiniteDifference(), FFT2()
    x = IMAGE
    assert torch.allclose((fd @ f.H)(x), fd(f.H(x)))
    assert torch.allclose((f + f)(x), 2 * f(x))
    a, b = VStack([f, fd])(x)
    assert torch.allclose(a, f(x)) and torch.allclose(b, fd(x))
    assert torch.allclose(f.gram(x), x, atol=1e-5)  # orthonormal


@pytest.mark.parametrize("wave", list(FILTERS))
def test_wavelet_filters_are_orthonormal_daubechies(wave):
    h, g = filter_bank(wave, torch.float64)
    length = h.numel()
    assert float(h.sum()) == pytest.approx(2**0.5, abs=1e-12)
    for shift in range(0, length, 2):  # orthogonal to their own even shifts and to each other
        expected = 1.0 if shift == 0 else 0.0
        assert float((h[shift:] * h[: length - shift]).sum()) == pytest.approx(expected, abs=1e-12)
        assert float((h[shift:] * g[: length - shift]).sum()) == pytest.approx(0.0, abs=1e-12)
    k = torch.arange(length, dtype=torch.float64)
    for p in range(length // 2):  # dbN: the high-pass filter kills polynomials of degree < N
        assert float((g * k**p).sum()) == pytest.approx(0.0, abs=1e-8 * length**p)


def test_wavelet_is_orthonormal_and_sparse_on_smooth_images():
    op = Wavelet((16, 24), "db4", 3, shift=(5, 2))
    x = _c(S, 16, 24)
    c = op(x)
    assert torch.allclose(norm2(c), norm2(x), rtol=1e-5)
    assert torch.allclose(op.H(c), x, atol=1e-5)
    assert torch.allclose(op(op.H(c)), c, atol=1e-5)  # no padding: unitary
    yy, xx = torch.meshgrid(torch.linspace(0, 1, 16), torch.linspace(0, 1, 24), indexing="ij")
    smooth = (torch.cos(2 * torch.pi * yy) * torch.sin(2 * torch.pi * xx)).to(torch.complex64)[None]
    coeffs = Wavelet((16, 24), "db4", 3)(smooth).abs().flatten()
    top = coeffs.sort(descending=True).values
    assert float(top[: coeffs.numel() // 10].square().sum() / top.square().sum()) > 0.99


def test_random_shift_is_deterministic_per_seed():
    a, b = Wavelet((16, 16), "db2", 2), Wavelet((16, 16), "db2", 2)
    a.random_shift(torch.Generator().manual_seed(3))
    b.random_shift(torch.Generator().manual_seed(3))
    assert a.shift == b.shift and all(0 <= s < 4 for s in a.shift)


def _prox_by_descent(f, x, sigma, steps=400):
    z = x.clone().requires_grad_(True)
    opt = torch.optim.Adam([z], lr=0.01)
    for _ in range(steps):
        opt.zero_grad()
        loss = (sigma * f(z) + 0.5 * (z - x).abs().square().flatten(1).sum(1)).sum()
        loss.backward()
        opt.step()
    return z.detach()


@pytest.mark.parametrize(
    "functional",
    [L2Squared(torch.randn(2, 5, generator=GEN)), L1(0.3), L1(torch.tensor([0.2, 0.5]), group_dims=(1,))],
    ids=["l2", "l1", "group l1 per slice"],
)
def test_proxes_minimise_their_objective(functional):
    x = torch.randn(2, 5, generator=GEN)
    sigma = 0.7
    p = functional.prox(x, sigma)
    value = sigma * functional(p) + 0.5 * (p - x).square().sum(1)
    for _ in range(20):  # no random perturbation does better
        q = p + 0.05 * torch.randn(p.shape, generator=GEN)
        assert bool((value <= sigma * functional(q) + 0.5 * (q - x).square().sum(1) + 1e-6).all())
    if not isinstance(functional, L2Squared):
        assert torch.allclose(p, _prox_by_descent(functional, x, sigma), atol=3e-2)


def test_conjugate_prox_is_moreau_and_l1_projects():
    x = torch.randn(2, 6, generator=GEN) * 3
    l1 = L1(0.5, group_dims=(1,))
    generic = super(L1, l1).prox_conj(x, 2.0)
    assert torch.allclose(l1.prox_conj(x, 2.0), generic, atol=1e-5)
    assert bool((l1.magnitude(l1.prox_conj(x, 2.0)) <= 0.5 + 1e-6).all())
    l2 = L2Squared(torch.randn(2, 6, generator=GEN), weight=2.0)
    assert torch.allclose(l2.prox_conj(x, 0.3), super(L2Squared, l2).prox_conj(x, 0.3), atol=1e-5)
    assert torch.equal(Zero().prox_conj(x, 1.0), torch.zeros_like(x))
    pair = SeparableSum([l1, l2])
    assert torch.allclose(pair((x, x)), l1(x) + l2(x))


def test_transformed_l1_prox_is_exact_for_an_orthonormal_wavelet():
    op = Wavelet((8, 8), "db2", 2)
    f = TransformedL1(op, L1(0.1))
    x = _c(1, 8, 8)
    p = f.prox(x, 1.0)
    assert torch.allclose(op(p), L1(0.1).prox(op(x), 1.0), atol=1e-5)


def test_map_normalisation_is_unit_norm_with_a_uniform_floor():
    maps = _c(S, C, H, W)
    maps[0, :, 0, 0] = 0
    out = normalise_maps(maps)
    assert torch.allclose(torch.linalg.vector_norm(out, dim=1), torch.ones(S, H, W), atol=1e-5)
    assert torch.allclose(out[0, :, 0, 0], torch.full((C,), C**-0.5, dtype=out.dtype))
    assert torch.allclose(vdot(out, out), torch.full((S,), float(H * W)), rtol=1e-5)
    assert random_like(out).shape == out.shape


def test_wavelet_details_prox_keeps_the_approximation_and_shrinks_the_details():
    op = WaveletDetails(Wavelet((16, 16), "db2", 2))
    x = torch.randn(2, 16, 16, dtype=torch.complex64)
    out = op.prox_l1(x, L1(0.1), 1.0)
    rows, cols = op.approximation()
    c_in, c_out = op.wavelet(x), op.wavelet(out)
    torch.testing.assert_close(c_out[..., rows, cols], c_in[..., rows, cols])
    detail = torch.ones(16, 16, dtype=torch.bool)
    detail[rows, cols] = False
    assert (c_out.abs()[..., detail] <= c_in.abs()[..., detail] + 1e-6).all()
    assert c_out.abs()[..., detail].sum() < c_in.abs()[..., detail].sum() - 0.05
