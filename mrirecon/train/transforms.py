"""fastMRI's U-Net data transform (``UnetDataTransform``), batched over slices, in torch.

Masked k-space -> inverse FFT -> crop to the target size (fastMRI's rule) -> magnitude
(RSS over coils) -> per-image normalisation by its own mean and standard deviation,
clamped to [-6, 6]. The target is cropped alike and normalised with the input's statistics.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from mrirecon.mri.crop import center_crop
from mrirecon.mri.zero_filled import zero_filled

#: fastMRI's normalisation constants.
NORM_EPS = 1e-11
CLAMP = 6.0


@dataclass
class UnetInputs:
    """Normalised zero-filled images ``(S, h, w)`` and the per-image ``mean``/``std`` ``(S,)``."""

    image: torch.Tensor
    mean: torch.Tensor
    std: torch.Tensor
    crop: tuple[int, int]

    def denormalise(self, output: torch.Tensor) -> torch.Tensor:
        """Map a network output ``(S, h, w)`` back to the input's intensity scale."""
        return output * (self.std + NORM_EPS)[:, None, None] + self.mean[:, None, None]

    def normalise_target(self, target: torch.Tensor) -> torch.Tensor:
        """Crop ``target`` ``(S, H', W')`` to the input's size and normalise it with its statistics."""
        target = center_crop(target, self.crop)
        return ((target - self.mean[:, None, None]) / (self.std[:, None, None] + NORM_EPS)).clamp(-CLAMP, CLAMP)


def apply_mask(kspace: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Zero the unsampled k-space; ``mask`` is ``(W,)`` (columns) or ``(H, W)`` and broadcasts."""
    return kspace * mask.to(kspace.device, torch.float32) + 0.0


def unet_inputs(masked_kspace: torch.Tensor, crop_size: tuple[int, int]) -> UnetInputs:
    """fastMRI's U-Net input for k-space ``(S, H, W)`` (single-coil) or ``(S, C, H, W)``.

    ``crop_size`` is the target's size (fastMRI uses the target's shape when it has one,
    else the header's recon size); images narrower than it get a square crop of their width.
    """
    if masked_kspace.ndim not in (3, 4):
        raise ValueError(f"k-space must be (slices, [coils,] H, W), got {tuple(masked_kspace.shape)}")
    magnitude = zero_filled(masked_kspace, crop_size)
    crop = (magnitude.shape[-2], magnitude.shape[-1])
    mean = magnitude.mean(dim=(-2, -1))
    std = magnitude.flatten(1).std(dim=1)
    normalised = ((magnitude - mean[:, None, None]) / (std[:, None, None] + NORM_EPS)).clamp(-CLAMP, CLAMP)
    return UnetInputs(normalised, mean, std, crop)


@dataclass
class VarNetInputs:
    """fastMRI's ``VarNetSample`` for a batch of slices: masked k-space ``(S, C, H, W)`` complex,
    the mask ``(S, 1, 1, W)`` or ``(S, 1, H, W)`` bool (zero outside the acquired columns), the
    width of the fully sampled centre (0: let the network find it), and the crop."""

    kspace: torch.Tensor
    mask: torch.Tensor
    num_low_frequencies: int
    crop: tuple[int, int]


def varnet_inputs(
    kspace: torch.Tensor,
    mask: torch.Tensor,
    crop: tuple[int, int],
    padding: tuple[int, int] | None = None,
    num_low_frequencies: int = 0,
) -> VarNetInputs:
    """fastMRI's ``VarNetDataTransform`` for multi-coil k-space ``(S, C, H, W)``.

    ``mask`` is ``(W,)`` (columns) or ``(H, W)``; columns outside ``padding`` (the header's
    acquired range) are dropped from it, and the k-space is multiplied by it (``+ 0.0``, as
    fastMRI, so no negative zeros). Single-coil k-space is refused: the VarNet needs coils.
    """
    if kspace.ndim != 4:
        raise ValueError("the VarNet needs multi-coil k-space (slices, coils, H, W); use the U-Net for single-coil data")
    mask = mask.to(kspace.device, torch.bool)
    mask = mask.view(1, 1, 1, -1) if mask.ndim == 1 else mask.view(1, 1, *mask.shape[-2:])
    if padding is not None:
        cols = torch.arange(mask.shape[-1], device=mask.device)
        mask = mask & (cols >= padding[0]) & (cols < padding[1])
    mask = mask.expand(kspace.shape[0], -1, -1, -1)
    return VarNetInputs(kspace * mask + 0.0, mask, int(num_low_frequencies), crop)
