"""Neural networks for reconstruction: the U-Net and its normalisation-layer factory."""

from mrirecon.models.norms import NORM_TYPES, make_norm
from mrirecon.models.unet import Unet

__all__ = ["NORM_TYPES", "Unet", "make_norm"]
