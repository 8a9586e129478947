"""Orthonormal periodic Daubechies wavelet transform in torch, batched, on any device.

``Wavelet`` maps images ``(..., H, W)`` to packed coefficients ``(..., H', W')`` (Mallat's
layout: the coarsest approximation in the top-left corner), where ``H', W'`` are ``H, W``
rounded up to a multiple of ``2**levels`` (the image is zero-padded at the end first). On the
padded grid the transform is orthonormal (``W W^H = W^H W = I``); with padding it is an
isometry (``W^H W = I``). ``shift`` rolls the image before the transform: drawing a new shift
per iteration (``random_shift``) is BART's cycle spinning, which removes the blocking that a
fixed wavelet grid leaves in thresholded images.

Filters are the Daubechies scaling filters (``db1`` = Haar, ``db2``, ``db4``); one level of
analysis along an axis correlates with the low- and high-pass filters and keeps every other
output (periodic boundary): an orthogonal matrix, applied as a dense product (cached per size);
synthesis is its transpose.
"""

from __future__ import annotations

import math

import torch

from mrirecon.ops.linop import Linop

#: Daubechies scaling (low-pass) filters, unit norm.
FILTERS: dict[str, tuple[float, ...]] = {
    "db1": (1 / math.sqrt(2), 1 / math.sqrt(2)),
    "db2": (0.48296291314469025, 0.836516303737469, 0.22414386804185735, -0.12940952255092145),
    "db4": (
        0.23037781330885523, 0.7148465705525415, 0.6308807679295904, -0.02798376941698385,
        -0.18703481171888114, 0.030841381835986965, 0.032883011666982945, -0.010597401784997278,
    ),
}


def filter_bank(wave: str, dtype: torch.dtype = torch.float32, device=None) -> torch.Tensor:
    """``(2, L)``: the low-pass filter and its quadrature mirror ``g[k] = (-1)^k h[L-1-k]``."""
    if wave not in FILTERS:
        raise ValueError(f"unknown wavelet {wave!r}; use {', '.join(FILTERS)}")
    h = torch.tensor(FILTERS[wave], dtype=torch.float64)
    sign = torch.tensor([(-1.0) ** k for k in range(len(h))], dtype=torch.float64)
    g = sign * h.flip(0)
    return torch.stack([h, g]).to(dtype=dtype, device=device)


def analysis_matrix(n: int, bank: torch.Tensor) -> torch.Tensor:
    """One analysis level along an axis of even length ``n`` as an orthogonal ``(n, n)`` matrix:
    row ``m < n/2`` is ``lo[m] = sum_k h[k] x[(2m + k) mod n]``, row ``n/2 + m`` the same with ``g``
    (periodic boundary). A dense product beats a strided convolution on a CPU at MRI sizes."""
    length = bank.shape[1]
    cols = (2 * torch.arange(n // 2)[:, None] + torch.arange(length)) % n  # (n/2, L)
    a = torch.zeros(n, n, dtype=torch.float64)
    for band in range(2):
        rows = (band * (n // 2) + torch.arange(n // 2))[:, None].expand_as(cols)
        a.index_put_((rows.reshape(-1), cols.reshape(-1)), bank[band].double().repeat(n // 2), accumulate=True)
    return a.to(dtype=bank.dtype, device=bank.device)


def _apply(x: torch.Tensor, a: torch.Tensor, dim: int) -> torch.Tensor:
    """``a`` applied along ``dim`` (``-1`` or ``-2``) of a real ``x``."""
    return x @ a.T if dim == -1 else a @ x


def _planes(x: torch.Tensor) -> torch.Tensor:
    """A complex ``(..., H, W)`` as real ``(..., 2, H, W)`` (contiguous: real matrix products on
    strided real and imaginary views are many times slower)."""
    return torch.view_as_real(x).movedim(-1, -3).contiguous() if x.is_complex() else x


def _unplanes(x: torch.Tensor, complex_: bool) -> torch.Tensor:
    return torch.view_as_complex(x.movedim(-3, -1).contiguous()) if complex_ else x


class Wavelet(Linop):
    """``levels``-level 2D periodic wavelet transform of the last two axes (see the module docstring)."""

    def __init__(self, image_hw: tuple[int, int], wave: str = "db4", levels: int = 3, shift: tuple[int, int] = (0, 0)):
        self.wave = wave
        self.image_hw = tuple(image_hw)
        self.levels = max(0, min(int(levels), *(int(math.log2(max(s, 1))) for s in image_hw)))
        step = 2**self.levels
        self.padded_hw = tuple(-(-s // step) * step for s in image_hw)
        self.shift = tuple(shift)
        self._matrices: dict = {}

    def _matrix(self, n: int, x: torch.Tensor) -> torch.Tensor:
        dtype = x.real.dtype if x.is_complex() else x.dtype
        key = (n, x.device, dtype)
        if key not in self._matrices:
            self._matrices[key] = analysis_matrix(n, filter_bank(self.wave, dtype, x.device))
        return self._matrices[key]

    def random_shift(self, generator: torch.Generator) -> None:
        """Draw a new shift in ``[0, 2**levels)`` per axis (cycle spinning)."""
        step = 2**self.levels
        self.shift = tuple(int(v) for v in torch.randint(0, step, (2,), generator=generator))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = self.image_hw
        ph, pw = self.padded_hw
        if (ph, pw) != (h, w):
            x = torch.nn.functional.pad(x, (0, pw - w, 0, ph - h)) if not x.is_complex() else torch.complex(
                torch.nn.functional.pad(x.real, (0, pw - w, 0, ph - h)), torch.nn.functional.pad(x.imag, (0, pw - w, 0, ph - h)))
        if any(self.shift):
            x = torch.roll(x, shifts=self.shift, dims=(-2, -1))
        complex_ = x.is_complex()
        out = _planes(x).clone()
        rows, cols = ph, pw
        for _ in range(self.levels):
            block = _apply(out[..., :rows, :cols], self._matrix(rows, x), -2)
            out[..., :rows, :cols] = _apply(block, self._matrix(cols, x), -1)
            rows, cols = rows // 2, cols // 2
        return _unplanes(out, complex_)

    def adjoint(self, c: torch.Tensor) -> torch.Tensor:
        h, w = self.image_hw
        ph, pw = self.padded_hw
        complex_ = c.is_complex()
        out = _planes(c).clone()
        sizes = [(ph // 2**k, pw // 2**k) for k in range(self.levels)]
        for rows, cols in reversed(sizes):
            block = _apply(out[..., :rows, :cols], self._matrix(cols, c).T, -1)
            out[..., :rows, :cols] = _apply(block, self._matrix(rows, c).T, -2)
        out = _unplanes(out, complex_)
        if any(self.shift):
            out = torch.roll(out, shifts=(-self.shift[0], -self.shift[1]), dims=(-2, -1))
        return out[..., :h, :w]


class WaveletDetails(Linop):
    """``x -> W x`` with the coarsest approximation block zeroed: the coefficients a sparsity
    penalty acts on (BART and SigPy leave the low-pass band unpenalised; shrinking it darkens the
    whole image). The adjoint zeroes the block and synthesises."""

    def __init__(self, wavelet: Wavelet):
        self.wavelet = wavelet

    def approximation(self) -> tuple[slice, slice]:
        """The index of the coarsest approximation block in the packed coefficients (last two axes)."""
        ph, pw = self.wavelet.padded_hw
        step = 2**self.wavelet.levels
        return slice(0, ph // step), slice(0, pw // step)

    def _zero(self, c: torch.Tensor) -> torch.Tensor:
        rows, cols = self.approximation()
        c = c.clone()
        c[..., rows, cols] = 0
        return c

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._zero(self.wavelet(x))

    def adjoint(self, c: torch.Tensor) -> torch.Tensor:
        return self.wavelet.H(self._zero(c))

    def prox_l1(self, x: torch.Tensor, l1, sigma) -> torch.Tensor:
        """The prox of ``l1(details(x))`` at ``x`` (exact for an orthonormal ``W``): shrink the
        detail coefficients, keep the approximation."""
        rows, cols = self.approximation()
        c = self.wavelet(x)
        kept = c[..., rows, cols].clone()
        c = l1.prox(c, sigma)
        c[..., rows, cols] = kept
        return self.wavelet.H(c)
