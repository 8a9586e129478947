"""SENSE operators, calibration regions, ESPIRiT and ACS maps, weak-map fallback, map files."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
import torch

from conftest import smooth_image
from mrirecon.io.errors import InputError
from mrirecon.mri.crop import center_crop
from mrirecon.mri.espirit import espirit
from mrirecon.mri.fft import fft2c, ifft2c
from mrirecon.mri.sense import SenseOp, sense_combine
from mrirecon.mri.sensitivity import acs_maps, calibration_region, estimate_maps, load_maps

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _true_maps(coils: int, height: int, width: int) -> torch.Tensor:
    y = np.linspace(-1, 1, height)[:, None]
    x = np.linspace(-1, 1, width)[None, :]
    maps = np.stack(
        [
            np.exp(-((y - np.cos(a)) ** 2 + (x - np.sin(a)) ** 2)) * np.exp(1j * (a * x + y))
            for a in np.linspace(0, 2 * np.pi, coils, endpoint=False)
        ]
    )
    maps = torch.from_numpy(maps.astype(np.complex64))
    return maps / torch.linalg.vector_norm(maps, dim=0, keepdim=True)


@pytest.mark.parametrize("mask_shape", [(12,), (10, 12)])
@pytest.mark.parametrize("coils", [None, 3])
def test_sense_adjoint_dot_product(mask_shape, coils):
    gen = torch.Generator().manual_seed(0)
    maps = None if coils is None else torch.randn(2, coils, 10, 12, dtype=torch.complex64, generator=gen)
    op = SenseOp(torch.rand(mask_shape, generator=gen) > 0.5, maps)
    x = torch.randn(2, 10, 12, dtype=torch.complex64, generator=gen)
    y = torch.randn(2, coils or 1, 10, 12, dtype=torch.complex64, generator=gen)
    lhs = torch.vdot(op.forward(x).flatten(), y.flatten())
    rhs = torch.vdot(x.flatten(), op.adjoint(y).flatten())
    assert torch.allclose(lhs, rhs, rtol=1e-4, atol=1e-4)


def test_sense_combine_with_exact_maps_equals_rss():
    maps = _true_maps(4, 16, 12)
    image = torch.from_numpy(smooth_image(16, 12, np.random.default_rng(0)))
    kspace = fft2c(maps * image)[None]
    combined = sense_combine(kspace, maps[None]).abs()
    rss = torch.linalg.vector_norm(ifft2c(kspace), dim=1)
    assert torch.allclose(combined, rss, atol=1e-5)


def test_calibration_region_column_and_2d_masks():
    cols = np.zeros(40, dtype=bool)
    cols[16:24] = True
    cols[2::4] = True
    assert calibration_region(cols, (64, 40)) == (24, 8)
    assert calibration_region(cols, (64, 40), num_low_frequency=8) == (24, 8)
    assert calibration_region(cols, (300, 40), num_low_frequency=20) == (40, 20)
    mask2d = np.zeros((30, 40), dtype=bool)
    mask2d[11:19, 15:25] = True
    mask2d[::5, ::3] = True
    assert calibration_region(mask2d, (30, 40)) == (8, 10)


def _multicoil_slices(slices=2, coils=6, height=48, width=40, seed=0):
    rng = np.random.default_rng(seed)
    maps = _true_maps(coils, height, width)
    images = torch.from_numpy(np.stack([smooth_image(height, width, rng) for _ in range(slices)]))
    return fft2c(maps[None] * images[:, None]), maps, images


def test_espirit_recovers_true_maps_up_to_phase():
    kspace, maps, images = _multicoil_slices()
    result = espirit(center_crop(kspace, (24, 20)), (48, 40))
    inner = (result.maps * maps.conj()[None]).sum(dim=1).abs()
    obj = images.abs() > 0.1
    assert inner[obj].mean() > 0.995
    assert inner[obj].min() > 0.95
    assert torch.allclose(torch.linalg.vector_norm(result.maps, dim=1), torch.ones(2, 48, 40), atol=1e-4)
    assert (result.eigenvalues[:, 0][obj] > 0.9).float().mean() > 0.95


def test_acs_maps_unit_norm_and_close_to_truth():
    kspace, maps, images = _multicoil_slices()
    est = acs_maps(kspace, (24, 20))
    assert torch.allclose(torch.linalg.vector_norm(est, dim=1), torch.ones(2, 48, 40), atol=1e-4)
    inner = (est * maps.conj()[None]).sum(dim=1).abs()
    assert inner[images.abs() > 0.1].mean() > 0.9


def test_weak_maps_fall_back_to_acs():
    kspace, _, _ = _multicoil_slices()
    result = estimate_maps(kspace, (4, 4))  # too few patches for any kernel: ESPIRiT is ambiguous
    assert result.method == "acs"
    assert result.notes and "weak" in result.notes[0]
    good = estimate_maps(kspace, (24, 20))
    assert good.method == "espirit" and not good.notes


def test_load_maps_npy_h5_and_shapes(tmp_path):
    maps = _true_maps(3, 8, 6).numpy() * 2.0
    np.save(tmp_path / "maps.npy", maps)  # (C, H, W): shared by every slice, renormalised
    loaded = load_maps(tmp_path / "maps.npy", (4, 3, 8, 6))
    assert loaded.shape == (4, 3, 8, 6)
    assert torch.allclose(torch.linalg.vector_norm(loaded, dim=1), torch.ones(4, 8, 6), atol=1e-5)
    with h5py.File(tmp_path / "maps.h5", "w") as handle:
        handle["sens_maps"] = np.stack([maps] * 4)
    assert torch.allclose(load_maps(tmp_path / "maps.h5", (4, 3, 8, 6)), loaded)
    with pytest.raises(InputError, match="shape"):
        load_maps(tmp_path / "maps.npy", (4, 3, 8, 7))
    with h5py.File(tmp_path / "other.h5", "w") as handle:
        handle["maps"] = maps
    with pytest.raises(InputError, match="sens_maps"):
        load_maps(tmp_path / "other.h5", (4, 3, 8, 6))


def test_coil_compression_is_unitary_and_drops_weak_virtual_coils():
    from mrirecon.mri.coil_compression import compress, compression_matrix

    kspace, _, _ = _multicoil_slices(coils=6)
    full = compression_matrix(kspace, (24, 20), energy=1.0)
    assert full.shape == (2, 6, 6)
    rss_before = torch.linalg.vector_norm(ifft2c(kspace), dim=1)
    rss_after = torch.linalg.vector_norm(ifft2c(compress(kspace, full)), dim=1)
    assert torch.allclose(rss_before, rss_after, rtol=1e-4, atol=1e-4 * float(rss_before.max()))
    fewer = compression_matrix(kspace, (24, 20), energy=0.9)
    assert fewer.shape[-1] < 6
    kept = torch.linalg.vector_norm(compress(kspace, fewer)) / torch.linalg.vector_norm(kspace)
    assert kept > 0.9


def test_data_consistent_coils_keep_the_measured_samples_and_the_prediction_elsewhere():
    from mrirecon.mri.coils import data_consistent_coils

    g = torch.Generator().manual_seed(3)
    measured = torch.randn(2, 3, 16, 12, generator=g, dtype=torch.complex64)
    predicted = torch.randn(2, 3, 16, 12, generator=g, dtype=torch.complex64)
    for mask in (torch.rand(1, 1, 1, 12, generator=g) < 0.5, torch.rand(1, 1, 16, 12, generator=g) < 0.5):
        kspace = fft2c(data_consistent_coils(predicted, measured * mask, mask.float()))
        full = mask.expand_as(measured)
        assert torch.allclose(kspace[full], measured[full], atol=1e-5)
        assert torch.allclose(kspace[~full], predicted[~full], atol=1e-5)
