"""SENSE forward and adjoint operators, batched over slices.

Shapes: images ``(S, H, W)``, k-space ``(S, C, H, W)``, maps ``(S, C, H, W)`` complex64.
Single-coil data is the ``C = 1`` case with no maps (the sensitivity is 1).
The mask broadcasts against ``(S, C, H, W)``: ``(W,)`` column masks become ``(1, 1, 1, W)``,
2D masks ``(1, 1, H, W)``; it may be boolean or real.
"""

from __future__ import annotations

import torch

from mrirecon.mri.fft import fft2c, ifft2c


def broadcast_mask(mask: torch.Tensor, device: torch.device | str | None = None) -> torch.Tensor:
    """A real ``(…, H, W)`` mask shaped to broadcast against ``(S, C, H, W)`` (float32)."""
    mask = torch.as_tensor(mask)
    if mask.ndim == 1:
        mask = mask.reshape(1, -1)
    while mask.ndim < 4:
        mask = mask.unsqueeze(0)
    return mask.to(device=device, dtype=torch.float32)


class SenseOp:
    """``A = M F S``: coil sensitivities, centred orthonormal FFT, sampling mask.

    ``maps`` is ``(S, C, H, W)`` or ``None`` (single coil, ``C = 1``). ``forward`` maps an
    image ``(S, H, W)`` to masked k-space ``(S, C, H, W)``; ``adjoint`` is its exact adjoint.
    """

    def __init__(self, mask: torch.Tensor, maps: torch.Tensor | None = None, centred: bool = True):
        self.maps = maps
        self.mask = broadcast_mask(mask, None if maps is None else maps.device)
        # centred=False: plain orthonormal FFTs, for data kept in ifftshifted order (saves the shifts)
        self.fft = fft2c if centred else _fft2
        self.ifft = ifft2c if centred else _ifft2

    def coil_images(self, image: torch.Tensor) -> torch.Tensor:
        """``S x``: ``(S, H, W)`` -> ``(S, C, H, W)``."""
        return image.unsqueeze(1) if self.maps is None else self.maps * image.unsqueeze(1)

    def combine(self, coil_images: torch.Tensor) -> torch.Tensor:
        """``S^H v``: ``(S, C, H, W)`` -> ``(S, H, W)``."""
        if self.maps is None:
            return coil_images[:, 0]
        return torch.linalg.vecdot(self.maps, coil_images, dim=1)  # sum_c conj(S_c) v_c

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.fft(self.coil_images(image)) * self.mask.to(image.device)

    def adjoint(self, kspace: torch.Tensor) -> torch.Tensor:
        return self.combine(self.ifft(kspace * self.mask.to(kspace.device)))

    def normal(self, image: torch.Tensor) -> torch.Tensor:
        """``A^H A x``."""
        return self.adjoint(self.forward(image))


def _fft2(x: torch.Tensor) -> torch.Tensor:
    return torch.fft.fft2(x, norm="ortho")


def _ifft2(x: torch.Tensor) -> torch.Tensor:
    return torch.fft.ifft2(x, norm="ortho")


def sense_combine(kspace: torch.Tensor, maps: torch.Tensor | None) -> torch.Tensor:
    """The coil-combined inverse FFT ``S^H F^H y`` (``|.|`` equals RSS for unit-norm, exact maps)."""
    image = ifft2c(kspace if kspace.ndim == 4 else kspace.unsqueeze(1))
    if maps is None:
        return image[:, 0]
    return (maps.conj() * image).sum(dim=1)
