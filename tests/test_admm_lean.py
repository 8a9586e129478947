"""The lean multi-coil ADMM iteration: host reads per iteration, in-place equals functional,
capturable by torch.compile, and CUDA equals CPU (marked gpu)."""

from __future__ import annotations

import pytest
import torch

from mrirecon.cs import admm as admm_module
from mrirecon.cs.admm import ADMM, coil_iteration
from mrirecon.cs.problem import TVProblem

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _problem(slices: int = 2, coils: int = 4, height: int = 24, width: int = 20, device: str = "cpu") -> TVProblem:
    gen = torch.Generator().manual_seed(0)
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, height), torch.linspace(-1, 1, width), indexing="ij")
    image = (((yy / 0.7) ** 2 + (xx / 0.5) ** 2) < 1).to(torch.complex64) * torch.exp(1j * xx)
    maps = torch.randn(slices, coils, height, width, dtype=torch.complex64, generator=gen) + 2.0
    maps = maps / torch.linalg.vector_norm(maps, dim=1, keepdim=True)
    mask = torch.rand(width, generator=gen) < 0.4
    mask[:3] = True  # the (ifftshifted) centre
    kspace = torch.fft.fft2(maps * image, norm="ortho")
    kspace = (kspace + 0.01 * torch.randn(kspace.shape, dtype=torch.complex64, generator=gen)) * mask
    return TVProblem(kspace.to(device), mask.to(device), maps.to(device), torch.tensor(0.01), centred=False)


class _HostReads:
    """Counts every way a tensor's value reaches Python (``bool``, ``item``, ``float``, ``int``, ``tolist``)."""

    NAMES = ("__bool__", "item", "__float__", "__int__", "tolist")

    def __init__(self, monkeypatch):
        self.count = 0
        for name in self.NAMES:
            original = getattr(torch.Tensor, name)

            def counted(tensor, *args, _original=original, **kwargs):
                self.count += 1
                return _original(tensor, *args, **kwargs)

            monkeypatch.setattr(torch.Tensor, name, counted)


@pytest.mark.parametrize("adapt_every", [5, 0])
def test_at_most_one_host_read_per_check_interval(monkeypatch, adapt_every):
    solver = ADMM(_problem(), max_iter=20, tol=0, adapt_every=adapt_every)
    reads = _HostReads(monkeypatch)
    solver.run()
    assert solver.iteration == 20
    assert reads.count <= 20 // solver.check_every  # the stop test, once per interval
    assert reads.count >= 1  # the counter does see the stop test


@pytest.mark.parametrize("relaxation", [1.0, 1.8])
def test_in_place_iteration_equals_functional_bit_for_bit(relaxation):
    problem = _problem()
    solver = ADMM(problem, max_iter=3, tol=0)
    solver.run()  # a state with non-zero duals
    args = (
        solver.x, solver.gx, solver.u1.clone(), solver.u2, problem.maps, solver.maps_h, solver.y_over,
        solver.rho_over, problem.lam / solver.rho, solver.inv_spectrum, problem.kind, False,
    )
    functional = coil_iteration(*args, buffers=None, data_dim=solver.data_dim, relaxation=relaxation)
    buffers = tuple(torch.empty_like(solver.u1) for _ in range(3))
    in_place = coil_iteration(*args[:2], solver.u1.clone(), *args[3:], buffers=buffers, data_dim=solver.data_dim,
                              relaxation=relaxation)
    for a, b in zip(functional, in_place):
        assert torch.equal(a, b)


def test_column_mask_solves_in_hybrid_space_with_the_same_result(monkeypatch):
    problem = _problem()
    hybrid = ADMM(problem, max_iter=15, tol=0)
    assert hybrid.data_dim == (-1,)
    hybrid_x = hybrid.run()
    monkeypatch.setattr(admm_module, "is_column_mask", lambda mask: False)
    full = ADMM(problem, max_iter=15, tol=0)
    assert full.data_dim == (-2, -1)
    full_x = full.run()
    assert float(torch.linalg.vector_norm(hybrid_x - full_x) / torch.linalg.vector_norm(full_x)) < 1e-5


def test_iteration_is_capturable_by_torch_compile():
    problem = _problem()
    eager = ADMM(problem, max_iter=6, tol=0).run()
    compiled = ADMM(problem, max_iter=6, tol=0, compile_mode="default")
    compiled._iteration = torch.compile(coil_iteration, backend="aot_eager", fullgraph=True, dynamic=False)
    result = compiled.run()
    assert torch.allclose(result, eager, rtol=1e-5, atol=1e-6 * float(eager.abs().max()))


def _distance(x: torch.Tensor, reference: torch.Tensor) -> float:
    return float(torch.linalg.vector_norm(x - reference) / torch.linalg.vector_norm(reference))


@pytest.fixture(scope="module")
def sample_sense_problem(tmp_path_factory, bench):
    """Sample multi-coil seed 22 at 4x (the suite's slowest-converging row) as the TV problem
    ``cs-recon`` solves on it: ESPIRiT maps, ifftshifted order, the reference scale, lambda 0.002."""
    from mrirecon.cs.recon import reference_scale
    from mrirecon.mri.sensitivity import estimate_maps

    path = bench.suite(0, seeds=[22])[0].make(tmp_path_factory.mktemp("sample"))
    kspace, mask, calib, _, _ = bench.undersample(path, 4)
    k = torch.from_numpy(kspace)
    maps = estimate_maps(k, (k.shape[-2], calib)).maps
    shift = lambda t: torch.fft.ifftshift(t, dim=(-2, -1))  # noqa: E731
    mask4 = shift(torch.from_numpy(mask).float().reshape(1, 1, 1, -1).expand(1, 1, *k.shape[-2:]))
    unscaled = TVProblem(shift(k) * mask4, mask4, shift(maps), torch.tensor(0.002), centred=False)
    scale = reference_scale(unscaled.adjoint_image()).reshape(-1, 1, 1, 1)
    return TVProblem(unscaled.kspace / scale, mask4, unscaled.maps, torch.tensor(0.002), centred=False)


def test_over_relaxation_reaches_the_same_minimiser_in_fewer_iterations(sample_sense_problem):
    problem = sample_sense_problem
    converged = ADMM(problem, max_iter=400, tol=0, relaxation=1.0).run()
    assert _distance(ADMM(problem, max_iter=400, tol=0).run(), converged) < 0.01  # the same minimiser
    # plain ADMM from the multi-coil start it had before relaxation (10 lam, at least 0.02)
    plain = {n: _distance(ADMM(problem, max_iter=n, tol=0, relaxation=1.0, rho=0.02).run(), converged) for n in (20, 50)}
    assert ADMM(problem, max_iter=1).relaxation == admm_module.RELAXATION > 1.0
    # the multi-coil default: relaxed, started at 2.5 lam
    relaxed = {n: _distance(ADMM(problem, max_iter=n, tol=0).run(), converged) for n in (20, 30)}
    print(f"distance to the minimiser: plain {plain}, relaxed {relaxed}")
    assert relaxed[20] < 0.6 * plain[20]
    assert relaxed[30] < 0.7 * plain[50]  # 30 relaxed iterations (the 4x default) beat 50 plain ones


def test_relaxation_outside_the_convergent_range_is_refused():
    with pytest.raises(ValueError, match="relaxation"):
        ADMM(_problem(), max_iter=5, relaxation=2.0)


def test_stops_early_when_converged():
    solver = ADMM(_problem(), max_iter=200, tol=1e-3)
    solver.run()
    assert solver.iteration < 200 and solver.iteration % solver.check_every == 0
    assert bool((solver.change < 1e-3).all())


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_equals_cpu():
    cpu = ADMM(_problem(slices=3, coils=8, height=64, width=48), max_iter=20, tol=0).run()
    gpu = ADMM(_problem(slices=3, coils=8, height=64, width=48, device="cuda"), max_iter=20, tol=0).run().cpu()
    assert float(torch.linalg.vector_norm(gpu - cpu) / torch.linalg.vector_norm(cpu)) < 1e-4


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("mode", ["default", "reduce-overhead"])
def test_compiled_cuda_equals_eager(mode):
    problem = _problem(slices=3, coils=8, height=64, width=48, device="cuda")
    eager = ADMM(problem, max_iter=20, tol=0).run()
    compiled = ADMM(problem, max_iter=20, tol=0, compile_mode=mode).run()
    assert float(torch.linalg.vector_norm(compiled - eager) / torch.linalg.vector_norm(eager)) < 1e-4
