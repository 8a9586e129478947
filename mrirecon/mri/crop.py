"""Centre cropping with fastMRI's index conventions."""

from __future__ import annotations

from typing import TypeVar

import numpy as np
import torch

ArrayT = TypeVar("ArrayT", torch.Tensor, np.ndarray)


def center_crop(data: ArrayT, shape: tuple[int, int]) -> ArrayT:
    """Crop the last two axes of ``data`` to ``shape`` around the centre.

    Same offsets as ``fastmri.data.transforms.center_crop``: ``(size - crop) // 2``.
    """
    h, w = int(shape[0]), int(shape[1])
    if not (0 < h <= data.shape[-2] and 0 < w <= data.shape[-1]):
        raise ValueError(f"cannot crop {tuple(data.shape[-2:])} to {(h, w)}")
    top = (data.shape[-2] - h) // 2
    left = (data.shape[-1] - w) // 2
    return data[..., top : top + h, left : left + w]


def recon_crop_size(image_shape: tuple[int, int], recon_size: tuple[int, int]) -> tuple[int, int]:
    """The crop fastMRI applies to a reconstruction of ``image_shape`` (H, W).

    Normally the header's recon size; when the image is narrower than that (fastMRI's
    "FLAIR 203" rule) a square of the image width. Never larger than the image.
    """
    h, w = recon_size
    if image_shape[-1] < w:
        h, w = image_shape[-1], image_shape[-1]
    return min(h, image_shape[-2]), min(w, image_shape[-1])
