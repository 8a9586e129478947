"""Hermitian eigen-problems: one-thread eigh on a CPU, the matrix-product signal projector, and
ESPIRiT's two subspace methods against each other (and CUDA against CPU, marked gpu), maps of a
readout window."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import smooth_image
from mrirecon.mri.crop import center_crop
from mrirecon.mri.eigen import hermitian_eigh, spectral_projector, top_eigenvalue
from mrirecon.mri.espirit import espirit
from mrirecon.mri.fft import fft2c

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _psd_batch(batch: int = 3, n: int = 40, rank: int = 12, seed: int = 0) -> torch.Tensor:
    """PSD matrices with ``rank`` eigenvalues in [1e-2, 1] and the rest at most 1e-6 (a clear gap)."""
    gen = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(batch, n, n, dtype=torch.complex128, generator=gen))
    evals = torch.cat([torch.logspace(0, -2, rank, dtype=torch.float64), 1e-6 * torch.rand(n - rank, generator=gen, dtype=torch.float64)])
    evals = evals.expand(batch, n) * torch.tensor([1.0, 1e-5, 3e3], dtype=torch.float64)[:batch, None]  # any scale
    return ((q * evals[:, None, :]) @ q.conj().transpose(1, 2)).to(torch.complex64)


def test_projector_by_matrix_products_equals_eigh():
    gram = _psd_batch()
    proj, rank = spectral_projector(gram, 1e-3)
    evals, evecs = torch.linalg.eigh(gram.to(torch.complex128))
    kept = evecs[..., -12:]
    ref = kept @ kept.conj().transpose(1, 2)
    assert rank.tolist() == [12, 12, 12]
    err = torch.linalg.matrix_norm(proj.to(torch.complex128) - ref) / torch.linalg.matrix_norm(ref)
    assert float(err.max()) < 1e-4
    assert torch.allclose(top_eigenvalue(gram), evals[:, -1].float(), rtol=1e-4)
    empty, empty_rank = spectral_projector(torch.zeros_like(gram[:1]), 1e-3)  # a slice without signal
    assert empty_rank.tolist() == [0] and not empty.abs().any()


def test_one_thread_eigh_equals_eigh_and_restores_threads():
    torch.set_num_threads(2)
    gram = _psd_batch(n=24)
    ours = hermitian_eigh(gram)
    assert torch.get_num_threads() == 2
    ref = torch.linalg.eigh(gram)
    assert torch.allclose(ours[0], ref[0])


def _calibration(slices: int = 2, coils: int = 6, height: int = 48, width: int = 40) -> torch.Tensor:
    rng = np.random.default_rng(3)
    y = np.linspace(-1, 1, height)[:, None]
    x = np.linspace(-1, 1, width)[None, :]
    maps = np.stack([np.exp(-((y - np.cos(a)) ** 2 + (x - np.sin(a)) ** 2)) * np.exp(1j * a * x) for a in np.linspace(0, 6, coils)])
    images = np.stack([smooth_image(height, width, rng) for _ in range(slices)])
    kspace = fft2c(torch.from_numpy((maps[None] * images[:, None]).astype(np.complex64)))
    kspace = kspace + 1e-3 * torch.randn(kspace.shape, dtype=torch.complex64, generator=torch.Generator().manual_seed(1))
    return center_crop(kspace, (24, 20))


def test_espirit_subspace_methods_give_the_same_maps():
    acs = _calibration()
    by_eigh = espirit(acs, (48, 40), subspace="eigh")
    by_products = espirit(acs, (48, 40), subspace="matmul")
    assert torch.equal(by_eigh.rank, by_products.rank)
    inner = (by_eigh.maps.conj() * by_products.maps).sum(dim=1).abs()
    assert float(inner.mean()) > 0.999
    with pytest.raises(ValueError, match="subspace"):
        espirit(acs, (48, 40), subspace="qr")


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("subspace", ["eigh", "matmul"])
def test_espirit_cuda_equals_cpu(subspace):
    acs = _calibration(slices=3, coils=8)
    cpu = espirit(acs, (48, 40), subspace=subspace)
    gpu = espirit(acs.cuda(), (48, 40), subspace=subspace)
    diff = torch.linalg.vector_norm(gpu.maps.cpu() - cpu.maps) / torch.linalg.vector_norm(cpu.maps)
    assert float(diff) < 1e-4
    assert torch.equal(gpu.rank.cpu(), cpu.rank)


def test_espirit_maps_of_a_row_window_equal_the_full_maps_cropped():
    acs = _calibration()
    full = espirit(acs, (48, 40))
    window = espirit(acs, (48, 40), rows=(10, 24))
    assert torch.equal(window.maps, full.maps[..., 10:34, :])
    assert torch.equal(window.eigenvalues, full.eigenvalues[..., 10:34, :])
