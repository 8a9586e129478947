"""A U-Net of fastMRI's shape with a choice of normalisation layer."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from mrirecon.models.norms import make_norm


class ConvBlock(nn.Module):
    """Two (3x3 convolution, normalisation, LeakyReLU, dropout) layers."""

    def __init__(self, in_chans: int, out_chans: int, norm: str, groups: int, drop_prob: float = 0.0):
        super().__init__()
        bias = norm == "none"
        self.layers = nn.Sequential(
            nn.Conv2d(in_chans, out_chans, kernel_size=3, padding=1, bias=bias),
            make_norm(norm, out_chans, groups),
            nn.LeakyReLU(negative_slope=0.2, inplace=True),
            nn.Dropout2d(drop_prob),
            nn.Conv2d(out_chans, out_chans, kernel_size=3, padding=1, bias=bias),
            make_norm(norm, out_chans, groups),
            nn.LeakyReLU(negative_slope=0.2, inplace=True),
            nn.Dropout2d(drop_prob),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


class UpBlock(nn.Module):
    """2x2 transposed convolution (stride 2), normalisation, LeakyReLU."""

    def __init__(self, in_chans: int, out_chans: int, norm: str, groups: int):
        super().__init__()
        self.layers = nn.Sequential(
            nn.ConvTranspose2d(in_chans, out_chans, kernel_size=2, stride=2, bias=norm == "none"),
            make_norm(norm, out_chans, groups),
            nn.LeakyReLU(negative_slope=0.2, inplace=True),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


class Unet(nn.Module):
    """fastMRI's U-Net (``fastmri.models.Unet``) with the normalisation layer as a parameter.

    ``chans`` channels after the first block, doubled at each of ``num_pool_layers``
    average-pool downsamplings; transposed-convolution upsampling with skip connections;
    a 1x1 output convolution. Inputs of any size (odd sizes are reflect-padded after
    upsampling, as fastMRI does). ``norm`` is one of ``mrirecon.models.NORM_TYPES``.
    ``residual`` adds the input to the output (the network learns the correction of the
    zero-filled image; fastMRI's U-Net has no such skip, and it is off by default).
    """

    def __init__(
        self,
        in_chans: int = 1,
        out_chans: int = 1,
        chans: int = 32,
        num_pool_layers: int = 4,
        norm: str = "group",
        groups: int = 32,
        drop_prob: float = 0.0,
        residual: bool = False,
    ):
        super().__init__()
        if residual and in_chans != out_chans:
            raise ValueError("a residual U-Net needs as many output channels as input channels")
        self.residual = residual
        if chans < 1 or num_pool_layers < 1:
            raise ValueError(f"chans and num_pool_layers must be positive, got {chans} and {num_pool_layers}")
        self.down = nn.ModuleList([ConvBlock(in_chans, chans, norm, groups, drop_prob)])
        ch = chans
        for _ in range(num_pool_layers - 1):
            self.down.append(ConvBlock(ch, ch * 2, norm, groups, drop_prob))
            ch *= 2
        self.bottleneck = ConvBlock(ch, ch * 2, norm, groups, drop_prob)
        self.up_transpose = nn.ModuleList()
        self.up_conv = nn.ModuleList()
        for _ in range(num_pool_layers):
            self.up_transpose.append(UpBlock(ch * 2, ch, norm, groups))
            self.up_conv.append(ConvBlock(ch * 2, ch, norm, groups, drop_prob))
            ch //= 2
        self.head = nn.Conv2d(chans, out_chans, kernel_size=1)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """``(N, in_chans, H, W)`` -> ``(N, out_chans, H, W)``."""
        skips = []
        x = image
        for block in self.down:
            x = block(x)
            skips.append(x)
            x = F.avg_pool2d(x, kernel_size=2, stride=2)
        x = self.bottleneck(x)
        for up, conv in zip(self.up_transpose, self.up_conv, strict=True):
            skip = skips.pop()
            x = up(x)
            pad_w = skip.shape[-1] - x.shape[-1]
            pad_h = skip.shape[-2] - x.shape[-2]
            if pad_w or pad_h:
                x = F.pad(x, [0, pad_w, 0, pad_h], mode="reflect")
            x = conv(torch.cat([x, skip], dim=1))
        out = self.head(x)
        return out + image if self.residual else out
