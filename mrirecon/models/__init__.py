"""Neural networks for reconstruction: the U-Net, the E2E-VarNet and the normalisation-layer factory."""

from mrirecon.models.norms import NORM_TYPES, make_norm
from mrirecon.models.unet import Unet
from mrirecon.models.varnet import VarNet

__all__ = ["NORM_TYPES", "Unet", "VarNet", "make_norm"]
