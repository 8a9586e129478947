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
output (periodic boundary); synthesis is its adjoint.
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


def _analysis(x: torch.Tensor, bank: torch.Tensor, dim: int) -> torch.Tensor:
    """One level along ``dim`` (even length ``N``): ``[lo; hi]`` of ``N/2`` each, concatenated."""
    x = x.movedim(dim, -1)
    n, length = x.shape[-1], bank.shape[1]
    idx = (2 * torch.arange(n // 2, device=x.device)[:, None] + torch.arange(length, device=x.device)) % n
    windows = x[..., idx]  # (..., N/2, L): x[(2n + k) mod N]
    coeffs = windows @ bank.T.to(windows.dtype)  # (..., N/2, 2)
    out = torch.cat([coeffs[..., 0], coeffs[..., 1]], dim=-1)
    return out.movedim(-1, dim)


def _synthesis(c: torch.Tensor, bank: torch.Tensor, dim: int) -> torch.Tensor:
    """The adjoint (and inverse) of ``_analysis``."""
    c = c.movedim(dim, -1)
    n = c.shape[-1]
    half = n // 2
    length = bank.shape[1]
    idx = (torch.arange(n, device=c.device)[:, None] - torch.arange(length, device=c.device)) % n
    out = torch.zeros_like(c)
    for band in range(2):
        up = torch.zeros_like(c)
        up[..., 0::2] = c[..., band * half : (band + 1) * half]
        # x[m] += sum_k f[k] up[m - k] (periodic)
        windows = up[..., idx]  # (..., N, L): up[(m - k) mod N]
        out = out + windows @ bank[band].to(windows.dtype)
    return out.movedim(-1, dim)


class Wavelet(Linop):
    """``levels``-level 2D periodic wavelet transform of the last two axes (see the module docstring)."""

    def __init__(self, image_hw: tuple[int, int], wave: str = "db4", levels: int = 3, shift: tuple[int, int] = (0, 0)):
        self.wave = wave
        self.image_hw = tuple(image_hw)
        self.levels = max(0, min(int(levels), *(int(math.log2(max(s, 1))) for s in image_hw)))
        step = 2**self.levels
        self.padded_hw = tuple(-(-s // step) * step for s in image_hw)
        self.shift = tuple(shift)
        self._banks: dict = {}

    def _bank(self, x: torch.Tensor) -> torch.Tensor:
        key = (x.device, x.real.dtype if x.is_complex() else x.dtype)
        if key not in self._banks:
            self._banks[key] = filter_bank(self.wave, key[1], x.device)
        return self._banks[key]

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
        bank = self._bank(x)
        out = x.clone()
        rows, cols = ph, pw
        for _ in range(self.levels):
            block = out[..., :rows, :cols]
            block = _analysis(_analysis(block, bank, -2), bank, -1)
            out[..., :rows, :cols] = block
            rows, cols = rows // 2, cols // 2
        return out

    def adjoint(self, c: torch.Tensor) -> torch.Tensor:
        h, w = self.image_hw
        ph, pw = self.padded_hw
        bank = self._bank(c)
        out = c.clone()
        sizes = [(ph // 2**k, pw // 2**k) for k in range(self.levels)]
        for rows, cols in reversed(sizes):
            block = out[..., :rows, :cols]
            out[..., :rows, :cols] = _synthesis(_synthesis(block, bank, -1), bank, -2)
        if any(self.shift):
            out = torch.roll(out, shifts=(-self.shift[0], -self.shift[1]), dims=(-2, -1))
        return out[..., :h, :w]
