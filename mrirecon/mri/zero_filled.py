"""Zero-filled reconstruction: inverse FFT, coil combination, fastMRI's crop."""

from __future__ import annotations

import torch

from mrirecon.mri.coils import rss
from mrirecon.mri.crop import center_crop, recon_crop_size
from mrirecon.mri.fft import ifft2c


def zero_filled(kspace: torch.Tensor, crop_size: tuple[int, int]) -> torch.Tensor:
    """Magnitude images ``(slices, h, w)`` from k-space ``(slices, H, W)`` or ``(slices, coils, H, W)``.

    Multi-coil images are combined by RSS; the crop follows ``recon_crop_size`` (fastMRI).
    """
    image = ifft2c(kspace)
    magnitude = rss(image, dim=1) if kspace.ndim == 4 else image.abs()
    return center_crop(magnitude, recon_crop_size(tuple(magnitude.shape[-2:]), crop_size))
