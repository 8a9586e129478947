"""Which k-space samples a reconstruction sees: the file's own mask, or one drawn on the fly.

Every recon command (zf-recon, cs-recon, unet-recon) takes either a test-style file (undersampled
k-space plus ``mask``) or a fully sampled file plus mask options; this module is that choice, so
the on-the-fly mask is exactly the one ``subsample`` would have written.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from mrirecon.io.errors import InputError
from mrirecon.io.fastmri_h5 import Volume
from mrirecon.mri.masks import MaskSpec, make_mask, volume_seed


@dataclass(frozen=True)
class SamplingMask:
    """A volume's sampling pattern: ``mask`` is ``(W,)`` (columns) or ``(H, W)`` (2D), boolean."""

    mask: np.ndarray
    num_low_frequency: int
    acceleration: float
    drawn: bool  # True when drawn here (the k-space must still be masked)

    def as_tensor(self, ndim: int, device: torch.device | str = "cpu") -> torch.Tensor:
        """The mask shaped to broadcast against k-space of ``ndim`` dimensions (``(..., H, W)``)."""
        mask = torch.from_numpy(self.mask)
        if mask.ndim == 1:
            mask = mask.reshape(1, -1)
        return mask.reshape((1,) * (ndim - 2) + tuple(mask.shape)).to(device)

    def apply(self, kspace: torch.Tensor) -> torch.Tensor:
        """Zero the unsampled entries of ``kspace`` (``(..., H, W)``)."""
        return kspace * self.as_tensor(kspace.ndim, kspace.device)


def calibration_width(mask: np.ndarray) -> int:
    """Width of the fully sampled calibration region at the centre of ``mask``.

    For column masks: the contiguous sampled columns around the centre. For 2D masks: the side of
    the largest fully sampled square centred on the k-space centre.
    """
    if mask.ndim == 1:
        center = mask.shape[0] // 2
        if not mask[center]:
            return 0
        left = center
        while left > 0 and mask[left - 1]:
            left -= 1
        right = center
        while right + 1 < mask.shape[0] and mask[right + 1]:
            right += 1
        return int(right - left + 1)
    height, width = mask.shape
    side = 0
    while side < min(height, width):
        size = side + 1
        top, left = height // 2 - size // 2, width // 2 - size // 2
        if not mask[top : top + size, left : left + size].all():
            break
        side = size
    return side


def sampling_for(volume: Volume, spec: MaskSpec | None, required: bool = True) -> SamplingMask | None:
    """The sampling mask a reconstruction of ``volume`` uses.

    A test-style file brings its own ``mask`` (mask options are then refused: the data is already
    undersampled). A fully sampled file needs ``spec``, unless ``required`` is false, in which case
    ``None`` means "use all of it".
    """
    if volume.mask is not None:
        if spec is not None:
            raise InputError(volume.path, "is already undersampled (it has a 'mask'); drop the --mask option")
        mask = volume.mask
        num_low = int(volume.attrs.get("num_low_frequency", calibration_width(mask)))
        accel = float(volume.attrs.get("acceleration", mask.size / max(int(mask.sum()), 1)))
        return SamplingMask(mask, num_low, accel, drawn=False)
    if spec is None:
        if required:
            raise InputError(
                volume.path, "is fully sampled and has no 'mask'; pass --mask/--accel to undersample it on the fly"
            )
        return None
    mask, num_low = make_mask(spec, volume.kspace_shape, volume_seed(volume.path.name, spec.seed), volume.padding)
    return SamplingMask(mask, num_low, float(spec.acceleration), drawn=True)


def read_sampled_kspace(volume: Volume, sampling: SamplingMask | None, start: int, stop: int) -> torch.Tensor:
    """Slices ``[start:stop]`` of the k-space as a complex64 tensor, masked if the mask was drawn."""
    kspace = torch.from_numpy(volume.read_kspace(start, stop))
    if sampling is not None and sampling.drawn:
        kspace = sampling.apply(kspace)
    return kspace
