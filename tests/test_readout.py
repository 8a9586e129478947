"""The readout window (``mrirecon.mri.readout``) and CS solved on it: exact rows, same scale, lambda -> 0 limit."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mrirecon.cs.recon import reference_scale, tv_recon
from mrirecon.mri.crop import center_crop
from mrirecon.mri.fft import fft2c, ifft2c
from mrirecon.mri.readout import crop_readout, crop_rows, readout_window
from mrirecon.mri.sense import sense_combine
from mrirecon.mri.sensitivity import low_res_images
from mrirecon.pipelines.cs_recon import solve_window

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _random(shape, seed=0) -> torch.Tensor:
    return torch.randn(shape, dtype=torch.complex64, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize(("height", "out_rows", "margin"), [(96, 32, 8), (97, 31, 5), (640, 320, 20), (256, 128, 20)])
def test_window_holds_the_output_rows_with_margin(height, out_rows, margin):
    top, n = readout_window(height, out_rows, margin)
    assert n % 2 == 0 and n < height and 0 <= top and top + n <= height
    first = (height - out_rows) // 2  # center_crop's offset on the full grid
    assert top + margin <= first and first + out_rows + margin <= top + n
    rows = np.arange(height)[:, None]
    assert (center_crop(rows[top : top + n], (out_rows, 1)) == center_crop(rows, (out_rows, 1))).all()
    n_factors = n
    for p in (2, 3, 5):
        while n_factors % p == 0:
            n_factors //= p
    assert n_factors == 1


def test_no_window_when_it_would_not_be_shorter():
    assert readout_window(64, 32, 20) is None
    assert readout_window(256, 256, 20) is None


def test_cropped_kspace_images_the_kept_rows():
    kspace = _random((2, 3, 96, 20))
    top, n = window = readout_window(96, 32, 8)
    cropped = crop_readout(kspace, window)
    assert cropped.shape == (2, 3, n, 20)
    image = ifft2c(kspace)
    torch.testing.assert_close(ifft2c(cropped), image[..., top : top + n, :], atol=1e-5, rtol=0)
    torch.testing.assert_close(crop_rows(image, window), image[..., top : top + n, :])


@pytest.mark.parametrize(("height", "calib", "window"), [(96, (12, 10), (20, 56)), (97, (11, 9), (3, 60)), (640, (24, 30), (140, 360))])
def test_low_res_images_of_a_window_are_the_full_grids_rows(height, calib, window):
    """Computed from the calibration rows straight to the window's rows (a small DFT block), the
    images equal the full grid's, for even and odd heights."""
    kspace = _random((2, 3, height, 40))
    full = low_res_images(kspace, calib)[..., window[0] : window[0] + window[1], :]
    part = low_res_images(kspace, calib, window)
    assert part.shape == full.shape
    torch.testing.assert_close(part, full, rtol=0, atol=2e-6 * float(full.abs().max()))


def test_only_column_masks_get_a_window():
    column = np.ones(368, dtype=bool)
    assert solve_window(column, (640, 368), (320, 320)) == readout_window(640, 320, 20)
    assert solve_window(np.ones((640, 368), dtype=bool), (640, 368), (320, 320)) is None
    assert solve_window(np.ones(256, dtype=bool), (256, 256), (256, 256)) is None  # not oversampled


def test_reference_scale_of_the_window_matches_the_full_grid():
    height, width = 128, 40
    top, n = window = readout_window(height, 48, 10)
    image = torch.zeros(2, height, width, dtype=torch.complex64)
    image[:, top : top + n] = _random((2, n, width), seed=3)  # all signal in the kept rows
    full = reference_scale(image)
    torch.testing.assert_close(reference_scale(crop_rows(image, window), full_rows=height), full, rtol=2e-3, atol=0)
    assert (reference_scale(crop_rows(image, window)) > 1.03 * full).all()  # the plain percentile would not


@pytest.mark.parametrize("solver", ["admm", "pdhg"])
@pytest.mark.parametrize("coils", [None, 3])
def test_tiny_lambda_full_sampling_on_the_window_is_coil_combined_ifft(solver, coils):
    height, width = 64, 16
    window = readout_window(height, 24, 8)
    kspace = fft2c(_random((2, coils or 1, height, width), seed=1))
    maps = None
    if coils:
        maps = _random((2, coils, height, width), seed=2) + 2.0
        maps = maps / torch.linalg.vector_norm(maps, dim=1, keepdim=True)
    full = torch.ones(width, dtype=torch.bool)
    result = tv_recon(
        crop_readout(kspace, window), full, None if maps is None else crop_rows(maps, window).contiguous(), 1e-7,
        solver=solver, max_iter=200, tol=1e-7, full_rows=height,
    )
    expected = crop_rows(sense_combine(kspace, maps), window)
    assert torch.allclose(result.image, expected, atol=1e-4 * float(expected.abs().max()))
