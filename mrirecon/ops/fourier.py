"""The orthonormal 2D FFT (fastMRI's centred convention, or plain for ifftshifted data) and sampling."""

from __future__ import annotations

import torch

from mrirecon.ops.linop import Linop


class FFT2(Linop):
    """Orthonormal FFT over the last two axes; ``centred`` keeps DC in the middle (fftshifts)."""

    def __init__(self, centred: bool = True):
        self.centred = centred

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.centred:
            return torch.fft.fft2(x, norm="ortho")
        x = torch.fft.ifftshift(x, dim=(-2, -1))
        return torch.fft.fftshift(torch.fft.fft2(x, norm="ortho"), dim=(-2, -1))

    def adjoint(self, y: torch.Tensor) -> torch.Tensor:
        if not self.centred:
            return torch.fft.ifft2(y, norm="ortho")
        y = torch.fft.ifftshift(y, dim=(-2, -1))
        return torch.fft.fftshift(torch.fft.ifft2(y, norm="ortho"), dim=(-2, -1))


class Sampling(Linop):
    """Multiplication by a real 0/1 (or weight) mask broadcast against k-space; self-adjoint."""

    def __init__(self, mask: torch.Tensor):
        self.mask = mask.to(torch.float32) if not mask.is_floating_point() else mask

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.mask

    adjoint = forward
