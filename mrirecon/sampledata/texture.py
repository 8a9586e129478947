"""Tissue texture: band-limited Gaussian noise, correlated across neighbouring slices, and the
thin networks (trabeculae, fat septa, fibre streaks) drawn along its zero crossings."""

from __future__ import annotations

import math

import numpy as np
import torch

from mrirecon.sampledata.shapes import Grid


def bandlimited_noise(
    grid: Grid,
    generator: torch.Generator,
    wavelength: float,
    bandwidth: float = 0.6,
    stretch_u: float = 1.0,
    z_correlation: float = 0.05,
) -> torch.Tensor:
    """Zero-mean, unit-variance noise (S, H, W) on ``grid`` with in-plane detail at about ``wavelength``.

    White noise is filtered in 3D Fourier space: a Gaussian ring around 1/``wavelength`` in
    plane (relative width ``bandwidth``; ``stretch_u`` > 1 makes streaks along u, like muscle
    fibres) and a Gaussian low-pass across slices with correlation length ``z_correlation``
    (phantom units), so slices close together share texture and distant ones do not. The
    stack is padded across slices so the first and last slices are not correlated by the FFT's
    wrap-around. The white noise is drawn on the CPU from ``generator``, and no step sums
    over threads, so the result is the same on any CPU (and close on a GPU).
    """
    slices, height, width = grid.shape
    spacing = _slice_spacing(grid)
    pad = 0 if slices == 1 else int(math.ceil(3.0 * z_correlation / spacing)) + 1
    depth = slices + 2 * pad
    white = torch.randn((depth, height, width), generator=generator, dtype=torch.float32).to(grid.device)
    spectrum = rfft3(white)
    del white
    fz = torch.fft.fftfreq(depth, d=spacing, device=grid.device).view(-1, 1, 1)
    fu = torch.fft.fftfreq(height, d=grid.pixel, device=grid.device).view(1, -1, 1)
    fv = torch.fft.rfftfreq(width, d=grid.pixel, device=grid.device).view(1, 1, -1)
    radial = torch.sqrt((fu * stretch_u).square() + fv.square())
    f0 = 1.0 / wavelength
    gain = torch.exp(-0.5 * ((radial - f0) / (bandwidth * f0)).square()) * torch.exp(
        -2.0 * (math.pi * z_correlation * fz).square()
    )
    gain[0, 0, 0] = 0.0  # zero mean
    spectrum.mul_(gain)
    field = irfft3(spectrum, width)
    return field[pad : pad + slices].div_(_filtered_std(gain, width))


def rfft3(field: torch.Tensor) -> torch.Tensor:
    """``torch.fft.rfftn(field, dim=(-3, -2, -1), norm="ortho")`` as one-axis transforms (see ``irfft3``)."""
    spectrum = torch.fft.rfft(field, dim=-1, norm="ortho")
    return torch.fft.fft(torch.fft.fft(spectrum, dim=-2, norm="ortho"), dim=-3, norm="ortho")


def irfft3(spectrum: torch.Tensor, width: int) -> torch.Tensor:
    """``torch.fft.irfftn(spectrum, dim=(-3, -2, -1), norm="ortho")`` with a last axis of ``width``,
    as one-axis transforms (the same transform).

    Not ``irfftn``: torch 2.14.1's CPU FFT over several axes that leave out the last one (which
    ``irfftn`` does first) writes outside its buffers for shapes such as (12, 640, 185) or
    (2, 640, 185): glibc aborts ("free(): corrupted unsorted chunks") or the heap is silently
    corrupted. One-axis transforms along any axis, and transforms over the last two axes (all
    the reconstruction code uses), were sound on every shape tried; ``tests/test_sample_data.py``
    runs shapes that crashed."""
    partial = torch.fft.ifft(torch.fft.ifft(spectrum, dim=-3, norm="ortho"), dim=-2, norm="ortho")
    return torch.fft.irfft(partial, n=width, dim=-1, norm="ortho")


def ridges(field: torch.Tensor, width: float) -> torch.Tensor:
    """A network of thin lines in [0, 1] along the zero crossings of a unit-variance ``field``.

    The zero set of band-limited noise is a web of closed curves, like trabeculae in marrow or
    fibrous septa in fat; ``width`` (in units of the field's standard deviation) sets how thick
    the lines are relative to the field's wavelength (0.3: about a tenth of it).
    """
    return torch.exp(-(field / width).square())


def _filtered_std(gain: torch.Tensor, width: int) -> float:
    """The standard deviation of unit white noise filtered by ``gain`` (a half spectrum, as
    rfftn's): the root mean square of the gain over the full spectrum. Summed in numpy, in
    float64, so the result does not depend on the number of threads (bytes stay identical)."""
    power = gain.square().cpu().numpy().astype(np.float64)
    last = width // 2 if width % 2 == 0 else None  # the Nyquist column appears once
    total = power[..., 0].sum() + 2.0 * power[..., 1:last].sum()
    if last is not None:
        total += power[..., last].sum()
    return float(math.sqrt(total / (power.shape[0] * power.shape[1] * width)))


def _slice_spacing(grid: Grid) -> float:
    z = grid.z.flatten()
    if z.numel() < 2:
        return 1.0
    return float((z[-1] - z[0]).abs() / (z.numel() - 1)) or 1.0
