"""The end-to-end variational network (E2E-VarNet, Sriram et al. 2020) on complex tensors.

An unrolled solver: ``cascades`` blocks, each a gradient-like step in k-space

    k <- k - w * M (k - k0) - F S U(S^H F^H k)

with a learned soft data-consistency weight ``w`` (M the sampling mask, k0 the measured
k-space), and a regulariser ``U``: the coil images are combined with the sensitivity maps ``S``,
a U-Net (the project's, with its normalisation factory) refines the combined complex image,
and the maps expand it back to the coils. The maps come from a second, small U-Net run on
each coil's low-frequency image, divided by their root-sum-of-squares (RSS = 1).

Everything is shaped as fastMRI's ``VarNet``, except that complex values are complex tensors
``(B, C, H, W)`` rather than a trailing axis of 2: with instance norm and fastMRI's weights
(``load_fastmri_varnet_weights``) the outputs are the same.

Two optional input reductions make the network cheap on a CPU (both off by default, as in
fastMRI), and both are part of the model, so every reconstruction path applies them alike:

- ``readout_crop``: the readout (H) is fully sampled, so the k-space can be taken to image space
  along H, cropped to the rows of the target, and taken back: exact for the cropped image, and
  a 2x-oversampled readout halves every cost.
- ``virtual_coils``: the coils are compressed to their strongest principal components
  (``mri.coil_compression``; the covariance of the measured k-space of each slice), a unitary
  projection, so RSS and data consistency hold up to the energy left out.

``warm_start`` (off by default, as in fastMRI) makes a short training run start from the
classical answer rather than from noise: the sensitivity U-Net becomes residual, the cascades'
U-Nets return a correction (their output times the image's standard deviation, without adding its
mean back), and all of them start with a zero output layer. The first maps are then the
low-frequency coil images divided by their RSS, and the untrained network is plain data
consistency: the zero-filled image.

``hard_dc`` (off by default, as in fastMRI) puts the measured samples back into the last cascade's
k-space before the RSS: the same projection as ``cs-recon``'s default ``--data-consistency hard``
(``mri.coils.data_consistent_coils``), so the two are compared on equal terms.
"""

from __future__ import annotations

import math
import re
from typing import Mapping

import torch
from torch import nn
from torch.nn import functional as F

from mrirecon.mri.coil_compression import compress, compression_matrix
from mrirecon.mri.coils import rss
from mrirecon.mri.fft import fft2c, ifft2c
from mrirecon.mri.readout import crop_readout as crop_readout_window
from mrirecon.models.unet import Unet

#: The U-Net's input is padded to a multiple of this (2**pools for up to 4 pools).
PAD_MULTIPLE = 16


class NormUnet(nn.Module):
    """A U-Net on one complex image per item: real and imaginary parts as two channels,
    each normalised by its mean and standard deviation over the image, padded to a multiple
    of 16, and mapped back afterwards (fastMRI's ``NormUnet``)."""

    def __init__(self, chans: int, pools: int, norm: str = "group", groups: int = 32, drop_prob: float = 0.0,
                 residual: bool = False, add_mean: bool = True):
        super().__init__()
        self.add_mean = add_mean
        self.unet = Unet(2, 2, chans=chans, num_pool_layers=pools, norm=norm, groups=groups, drop_prob=drop_prob,
                         residual=residual)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """``(B, 1, H, W)`` complex -> ``(B, 1, H, W)`` complex."""
        x = torch.cat([image.real, image.imag], dim=1)
        b, c, h, w = x.shape
        flat = x.reshape(b, 2, -1)
        mean = flat.mean(dim=2).view(b, 2, 1, 1)
        std = flat.std(dim=2).view(b, 2, 1, 1)
        x = (x - mean) / std
        h_mult, w_mult = ((h - 1) | (PAD_MULTIPLE - 1)) + 1, ((w - 1) | (PAD_MULTIPLE - 1)) + 1
        w_pad = [math.floor((w_mult - w) / 2), math.ceil((w_mult - w) / 2)]
        h_pad = [math.floor((h_mult - h) / 2), math.ceil((h_mult - h) / 2)]
        x = self.unet(F.pad(x, w_pad + h_pad))
        x = x[..., h_pad[0] : h_mult - h_pad[1], w_pad[0] : w_mult - w_pad[1]]
        x = x * std + mean if self.add_mean else x * std
        return torch.complex(x[:, :1], x[:, 1:])


def low_frequency_band(mask: torch.Tensor, num_low_frequencies: int | torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Per item, the first column and the width of the fully sampled centre band.

    ``mask``: ``(B, 1, 1, W)`` or ``(B, 1, H, W)`` (only the central row is read). Without
    ``num_low_frequencies``, the band is the run of sampled columns around the centre, made
    symmetric (fastMRI's rule, including its width of 1 when the centre is not sampled).
    """
    width = mask.shape[-1]
    if num_low_frequencies is None or (not torch.is_tensor(num_low_frequencies) and num_low_frequencies == 0):
        row = mask[:, 0, mask.shape[-2] // 2, :].to(torch.int8)
        centre = width // 2
        left = torch.argmin(row[:, :centre].flip(1), dim=1)
        right = torch.argmin(row[:, centre:], dim=1)
        count = torch.maximum(2 * torch.minimum(left, right), torch.ones_like(left))
    else:
        count = num_low_frequencies * torch.ones(mask.shape[0], dtype=torch.long, device=mask.device)
    count = count.to(torch.long)
    return ((width - count + 1) // 2).to(torch.long), count


class SensitivityNet(nn.Module):
    """Coil sensitivity maps from the centre of k-space: each coil's low-frequency image
    through a small ``NormUnet``, then divided by the RSS over coils."""

    def __init__(self, chans: int, pools: int, norm: str = "group", groups: int = 32, mask_center: bool = True,
                 residual: bool = False):
        super().__init__()
        self.mask_center = mask_center
        self.norm_unet = NormUnet(chans, pools, norm, groups, residual=residual)

    def forward(
        self, masked_kspace: torch.Tensor, mask: torch.Tensor, num_low_frequencies: int | torch.Tensor | None = None
    ) -> torch.Tensor:
        """``(B, C, H, W)`` complex k-space -> ``(B, C, H, W)`` complex maps."""
        if self.mask_center:
            start, count = low_frequency_band(mask, num_low_frequencies)
            cols = torch.arange(masked_kspace.shape[-1], device=masked_kspace.device).view(1, -1)
            keep = (cols >= start.view(-1, 1)) & (cols < (start + count).view(-1, 1))
            masked_kspace = masked_kspace * keep[:, None, None, :]
        b, c, h, w = masked_kspace.shape
        images = ifft2c(masked_kspace).reshape(b * c, 1, h, w)
        maps = self.norm_unet(images).reshape(b, c, h, w)
        return maps / rss(maps, dim=1).unsqueeze(1)


class VarNetBlock(nn.Module):
    """One cascade: soft data consistency with a learned weight, plus the regulariser."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model
        self.dc_weight = nn.Parameter(torch.ones(1))

    def forward(
        self, kspace: torch.Tensor, measured: torch.Tensor, mask: torch.Tensor, maps: torch.Tensor
    ) -> torch.Tensor:
        soft_dc = torch.where(mask, kspace - measured, torch.zeros((), dtype=kspace.dtype, device=kspace.device))
        combined = (ifft2c(kspace) * maps.conj()).sum(dim=1, keepdim=True)
        model_term = fft2c(self.model(combined) * maps)
        return kspace - soft_dc * self.dc_weight - model_term


class VarNet(nn.Module):
    """E2E-VarNet: sensitivity network, ``cascades`` unrolled blocks, RSS of the coil images.

    ``forward(masked_kspace (B, C, H, W) complex, mask (B, 1, 1, W) or (B, 1, H, W) bool,
    num_low_frequencies=None, rows=None)`` returns the magnitude image ``(B, H, W)`` on the full
    k-space grid (crop it to the target afterwards, as fastMRI does); with ``readout_crop`` and
    ``rows`` (the target's height) it is ``(B, rows, W)``. Multi-coil data only.
    """

    def __init__(
        self,
        cascades: int = 12,
        chans: int = 18,
        pools: int = 4,
        sens_chans: int = 8,
        sens_pools: int = 4,
        norm: str = "group",
        groups: int = 32,
        mask_center: bool = True,
        readout_crop: bool = False,
        virtual_coils: int = 0,
        warm_start: bool = False,
        hard_dc: bool = False,
    ):
        super().__init__()
        self.readout_crop = readout_crop
        self.hard_dc = hard_dc
        self.virtual_coils = virtual_coils
        if cascades < 1 or sens_chans < 1 or sens_pools < 1:
            raise ValueError(f"cascades, sens_chans and sens_pools must be positive, got {cascades}, {sens_chans}, {sens_pools}")
        self.sens_net = SensitivityNet(sens_chans, sens_pools, norm, groups, mask_center, residual=warm_start)
        self.cascades = nn.ModuleList(VarNetBlock(NormUnet(chans, pools, norm, groups, add_mean=not warm_start))
                                      for _ in range(cascades))
        if warm_start:
            for unet in [self.sens_net.norm_unet.unet, *(c.model.unet for c in self.cascades)]:
                nn.init.zeros_(unet.head.weight)
                nn.init.zeros_(unet.head.bias)

    def forward(
        self,
        masked_kspace: torch.Tensor,
        mask: torch.Tensor,
        num_low_frequencies: int | torch.Tensor | None = None,
        rows: int | None = None,
    ) -> torch.Tensor:
        if masked_kspace.ndim != 4 or not masked_kspace.is_complex():
            raise ValueError(f"VarNet needs complex multi-coil k-space (batch, coils, H, W), got {tuple(masked_kspace.shape)}")
        mask = mask.to(torch.bool)
        if self.readout_crop and rows is not None and rows < masked_kspace.shape[-2]:
            masked_kspace = crop_readout(masked_kspace, rows)
            if mask.shape[-2] > 1:
                mask = mask[..., (mask.shape[-2] - rows) // 2 : (mask.shape[-2] - rows) // 2 + rows, :]
        if 0 < self.virtual_coils < masked_kspace.shape[1]:
            masked_kspace = compress_coils(masked_kspace, self.virtual_coils)
        maps = self.sens_net(masked_kspace, mask, num_low_frequencies)
        kspace = masked_kspace.clone()
        for cascade in self.cascades:
            kspace = cascade(kspace, masked_kspace, mask, maps)
        if self.hard_dc:
            kspace = torch.where(mask, masked_kspace, kspace)
        return rss(ifft2c(kspace), dim=1)


def crop_readout(kspace: torch.Tensor, rows: int) -> torch.Tensor:
    """The k-space ``(..., rows, W)`` of the central ``rows`` of the image along the readout (H),
    centred as ``center_crop`` centres (``mri.readout.crop_readout`` on that window)."""
    return crop_readout_window(kspace, ((kspace.shape[-2] - rows) // 2, rows))


@torch.no_grad()
def compress_coils(kspace: torch.Tensor, coils: int) -> torch.Tensor:
    """Project ``(B, C, H, W)`` k-space onto its ``coils`` strongest virtual coils, per item (the
    principal components of the coil covariance of the measured samples)."""
    basis = compression_matrix(kspace, tuple(kspace.shape[-2:]), energy=1.0, max_coils=coils)
    return compress(kspace, basis)


# --- fastMRI's weights ----------------------------------------------------------------------

_UNET_KEYS = (
    (re.compile(r"down_sample_layers\.(\d+)\.layers\."), r"down.\1.layers."),
    (re.compile(r"conv\.layers\."), "bottleneck.layers."),
    (re.compile(r"up_transpose_conv\.(\d+)\.layers\."), r"up_transpose.\1.layers."),
)


def fastmri_unet_keys(state: Mapping[str, torch.Tensor], pools: int) -> dict[str, torch.Tensor]:
    """Rename the keys of a ``fastmri.models.Unet`` state dict to this project's ``Unet``'s.

    fastMRI keeps the 1x1 output convolution inside its last up block (``up_conv.{n}.1``);
    here it is ``head``.
    """
    renamed = {}
    last = pools - 1
    for key, value in state.items():
        new = key
        if key.startswith(f"up_conv.{last}.0.layers."):
            new = key.replace(f"up_conv.{last}.0.layers.", f"up_conv.{last}.layers.", 1)
        elif key.startswith(f"up_conv.{last}.1."):
            new = key.replace(f"up_conv.{last}.1.", "head.", 1)
        elif not key.startswith("up_conv."):
            for pattern, replacement in _UNET_KEYS:
                if pattern.match(key):
                    new = pattern.sub(replacement, key, count=1)
                    break
        renamed[new] = value
    return renamed


def load_fastmri_varnet_weights(model: VarNet, state: Mapping[str, torch.Tensor], pools: int, sens_pools: int) -> None:
    """Load a ``fastmri.models.VarNet`` state dict into ``model`` (built with ``norm='instance'``).

    fastMRI's instance norm has no affine parameters; ours keep theirs at 1 and 0, so the
    only keys allowed to be missing are those.
    """
    renamed: dict[str, torch.Tensor] = {}
    groups: dict[str, tuple[dict[str, torch.Tensor], int]] = {}
    for key, value in state.items():
        match = re.match(r"(sens_net\.norm_unet\.unet\.|cascades\.\d+\.model\.unet\.)(.*)", key)
        if match is None:
            renamed[key] = value
            continue
        prefix = match.group(1)
        groups.setdefault(prefix, ({}, sens_pools if prefix.startswith("sens_net") else pools))[0][match.group(2)] = value
    for prefix, (sub, count) in groups.items():
        renamed.update({prefix + k: v for k, v in fastmri_unet_keys(sub, count).items()})
    missing, unexpected = model.load_state_dict(renamed, strict=False)
    norm_params = [k for k in missing if re.search(r"layers\.\d+\.(weight|bias)$", k)
                   and isinstance(model.get_submodule(k.rsplit(".", 1)[0]), nn.InstanceNorm2d)]
    if unexpected or set(missing) - set(norm_params):
        raise ValueError(f"fastMRI weights do not fit: missing {sorted(set(missing) - set(norm_params))}, "
                         f"unexpected {sorted(unexpected)}")
