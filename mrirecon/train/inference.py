"""Learned reconstruction of whole volumes (U-Net or VarNet), batched over slices."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import numpy as np
import torch

from mrirecon.io import InputError, Volume
from mrirecon.mri.crop import center_crop, recon_crop_size
from mrirecon.models.varnet import VarNet
from mrirecon.train.transforms import UnetInputs, apply_mask, unet_inputs, varnet_inputs


def autocast(device: torch.device, amp: bool) -> contextlib.AbstractContextManager:
    """bf16 autocast on ``device`` when ``amp``, else nothing."""
    if not amp:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16)


@dataclass
class VolumeRecon:
    """A reconstruction ``(slices, h, w)`` at the input's scale, and the L1 loss summed over
    pixels (when a target was given) on the images the model is trained on: normalised per
    image for the U-Net, divided by the volume maximum for the VarNet."""

    recon: np.ndarray
    l1_sum: float = 0.0
    pixels: int = 0


def unet_forward(
    model: torch.nn.Module, kspace: torch.Tensor, crop: tuple[int, int], *, amp: bool = False, channels_last: bool = False
) -> tuple[torch.Tensor, UnetInputs]:
    """The model's normalised output ``(S, h, w)`` for masked k-space on its device, and the inputs
    (``inputs.denormalise(output)`` is the image at the k-space's scale)."""
    inputs = unet_inputs(kspace, crop)
    image = inputs.image[:, None]
    if channels_last:
        image = image.contiguous(memory_format=torch.channels_last)
    with autocast(kspace.device, amp):
        output = model(image)
    return output[:, 0].float(), inputs


@torch.no_grad()
def reconstruct_volume(
    model: torch.nn.Module,
    volume: Volume,
    crop: tuple[int, int],
    *,
    mask: np.ndarray | None,
    device: torch.device,
    batch_size: int = 8,
    amp: bool = False,
    channels_last: bool = False,
    target: np.ndarray | None = None,
) -> VolumeRecon:
    """Reconstruct every slice of ``volume`` (read ``batch_size`` slices at a time).

    ``mask`` (columns or 2D) is applied to the k-space first; ``None`` uses the k-space as
    stored (test-style files are already undersampled; the VarNet takes their ``mask``).
    """
    if isinstance(model, VarNet):
        return _varnet_volume(model, volume, crop, mask=mask, device=device, batch_size=batch_size, amp=amp,
                              target=target)
    was_training = model.training
    model.eval()
    mask_t = None if mask is None else torch.from_numpy(np.asarray(mask, dtype=bool)).to(device)
    parts: list[torch.Tensor] = []
    l1_sum, pixels = 0.0, 0
    for start in range(0, volume.num_slices, batch_size):
        stop = min(start + batch_size, volume.num_slices)
        kspace = torch.from_numpy(volume.read_kspace(start, stop)).to(device, non_blocking=True)
        if mask_t is not None:
            kspace = apply_mask(kspace, mask_t)
        output, inputs = unet_forward(model, kspace, crop, amp=amp, channels_last=channels_last)
        if target is not None:
            normalised_target = inputs.normalise_target(torch.from_numpy(target[start:stop]).to(device))
            l1_sum += float((output - normalised_target).abs().sum())
            pixels += output.numel()
        parts.append(inputs.denormalise(output).cpu())
    if was_training:
        model.train()
    return VolumeRecon(torch.cat(parts).numpy().astype(np.float32), l1_sum, pixels)


def varnet_forward(
    model: VarNet,
    kspace: torch.Tensor,
    mask: torch.Tensor,
    padding: tuple[int, int] | None,
    *,
    amp: bool = False,
    rows: int | None = None,
) -> torch.Tensor:
    """The VarNet's image ``(S, H, W)`` (full grid, not yet cropped) for multi-coil k-space on its
    device; ``mask`` (``(W,)`` or ``(H, W)``) is applied within the acquired columns ``padding``.
    ``rows`` is the target's height (a model with ``readout_crop`` returns only those rows)."""
    inputs = varnet_inputs(kspace, mask, (kspace.shape[-2], kspace.shape[-1]), padding)
    with autocast(kspace.device, amp):
        output = model(inputs.kspace, inputs.mask, rows=rows)
    return output.float()


def _varnet_volume(
    model: VarNet,
    volume: Volume,
    crop: tuple[int, int],
    *,
    mask: np.ndarray | None,
    device: torch.device,
    batch_size: int,
    amp: bool,
    target: np.ndarray | None,
) -> VolumeRecon:
    """``reconstruct_volume`` for the VarNet: masked k-space and mask in, RSS image cropped out."""
    if not volume.multicoil:
        raise InputError(volume.path, "is single-coil; the VarNet needs multi-coil data, so use a U-Net checkpoint")
    if mask is None:
        mask = volume.mask if volume.mask is not None else np.ones(volume.num_cols, dtype=bool)
    mask_t = torch.from_numpy(np.asarray(mask, dtype=bool)).to(device)
    scale = float(target.max()) if target is not None else 1.0
    was_training = model.training
    model.eval()
    parts: list[torch.Tensor] = []
    l1_sum, pixels = 0.0, 0
    for start in range(0, volume.num_slices, batch_size):
        stop = min(start + batch_size, volume.num_slices)
        kspace = torch.from_numpy(volume.read_kspace(start, stop)).to(device, non_blocking=True)
        output = center_crop(varnet_forward(model, kspace, mask_t, volume.padding, amp=amp, rows=crop[0]), crop)
        if target is not None:
            part = torch.from_numpy(target[start:stop]).to(device)
            l1_sum += float((output - center_crop(part, output.shape[-2:])).abs().sum()) / max(scale, 1e-30)
            pixels += output.numel()
        parts.append(output.cpu())
    if was_training:
        model.train()
    return VolumeRecon(torch.cat(parts).numpy().astype(np.float32), l1_sum, pixels)

