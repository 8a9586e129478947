"""Readout cropping in hybrid space: keep only the image rows a reconstruction will output.

fastMRI k-space has a 2x oversampled readout (the rows, ``H``; e.g. 640 rows for a 320-row
output). When the readout is fully sampled (column masks act on ``W`` only), an inverse FFT along
``H`` separates the rows: each hybrid-space row ``h[r, k_x]`` is measured on its own, so dropping
rows and FFT-ing back along ``H`` gives a shorter k-space grid whose data-consistency terms are
exactly those of the kept rows (orthonormal FFTs: the image values are unchanged). Only the
regulariser couples rows, hence a ``margin`` of spare rows on each side of the output rows.
"""

from __future__ import annotations

import torch


def _smooth(n: int) -> bool:
    """True when ``n`` has no prime factor above 5 (a fast FFT length)."""
    for p in (2, 3, 5):
        while n % p == 0:
            n //= p
    return n == 1


def readout_window(height: int, out_rows: int, margin: int) -> tuple[int, int] | None:
    """Rows ``(top, n)`` of the image to keep so that ``out_rows`` centred rows (``center_crop``'s
    offset ``(height - out_rows) // 2``) have at least ``margin`` kept rows on each side, ``n``
    even with no prime factor above 5, and the output rows are ``center_crop``'s crop of the
    ``n`` kept rows. ``None`` when that window would not be shorter than ``height``."""
    first = (height - out_rows) // 2
    n = out_rows + 2 * margin
    while not (n % 2 == 0 and _smooth(n)):
        n += 1
    top = first - (n - out_rows) // 2
    if n >= height or top < 0 or top + n > height:
        return None
    return top, n


def crop_readout(kspace: torch.Tensor, window: tuple[int, int]) -> torch.Tensor:
    """K-space ``(..., H, W)`` of the image rows ``window = (top, n)``: ``(..., n, W)``.

    Centred orthonormal transforms along ``H`` (fastMRI's convention): the image of the result
    (``ifft2c``) equals rows ``top .. top + n - 1`` of the image of ``kspace``.
    """
    top, n = window
    hybrid = torch.fft.fftshift(torch.fft.ifft(torch.fft.ifftshift(kspace, dim=-2), dim=-2, norm="ortho"), dim=-2)
    rows = hybrid[..., top : top + n, :]
    return torch.fft.fftshift(torch.fft.fft(torch.fft.ifftshift(rows, dim=-2), dim=-2, norm="ortho"), dim=-2)


def crop_rows(images: torch.Tensor, window: tuple[int, int]) -> torch.Tensor:
    """Rows ``window = (top, n)`` of image-domain data ``(..., H, W)`` (e.g. sensitivity maps)."""
    top, n = window
    return images[..., top : top + n, :]
