"""Validation: reconstruct whole volumes with fixed per-volume masks and score them with ``eval``'s
metrics (``mrirecon.metrics.volume_metrics``: fastMRI's crop, volume maximum as data range)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from mrirecon.io import open_volume
from mrirecon.metrics import volume_metrics
from mrirecon.mri.masks import MaskSpec, make_mask, volume_seed
from mrirecon.mri.zero_filled import zero_filled
from mrirecon.train.dataset import volume_crop
from mrirecon.train.distributed import DistInfo, all_reduce_sum
from mrirecon.train.inference import reconstruct_volume
from mrirecon.train.transforms import apply_mask


@dataclass
class ValidationResult:
    """Means over volumes (and the L1 loss on normalised images over all pixels)."""

    ssim: float
    psnr: float
    nmse: float
    loss: float
    volumes: int

    def as_dict(self, prefix: str = "val_") -> dict[str, float]:
        return {f"{prefix}{k}": getattr(self, k) for k in ("loss", "ssim", "psnr", "nmse")}


def _volume_target(volume, crop: tuple[int, int]) -> np.ndarray:
    target = volume.read_target()
    if target is None:
        target = zero_filled(torch.from_numpy(volume.read_kspace()), crop).numpy()
    return target


def validate(
    model: torch.nn.Module | None,
    files: Sequence[Path],
    mask_spec: MaskSpec,
    *,
    device: torch.device,
    info: DistInfo = DistInfo(),
    batch_size: int = 8,
    amp: bool = False,
    channels_last: bool = False,
) -> ValidationResult:
    """Score ``model`` on ``files`` (``None`` scores the zero-filled baseline instead).

    Each rank takes every ``world``-th volume and the sums are reduced across ranks, so
    per-volume metrics are exact under DDP too.
    """
    sums = torch.zeros(6, dtype=torch.float64)
    for path in list(files)[info.rank :: info.world]:
        with open_volume(path) as volume:
            mask, _ = make_mask(mask_spec, volume.kspace_shape, volume_seed(path.name, mask_spec.seed), volume.padding)
            crop = volume_crop(volume)
            target = _volume_target(volume, crop)
            if model is None:
                kspace = apply_mask(torch.from_numpy(volume.read_kspace()), torch.from_numpy(mask))
                recon = zero_filled(kspace, crop).numpy()
                l1, pixels = 0.0, 0
            else:
                out = reconstruct_volume(model, volume, crop, mask=mask, device=device, batch_size=batch_size, amp=amp,
                                         channels_last=channels_last, target=target)
                recon, l1, pixels = out.recon, out.l1_sum, out.pixels
        scores = volume_metrics(target, recon)
        sums += torch.tensor([scores["ssim"], scores["psnr"], scores["nmse"], 1.0, l1, pixels], dtype=torch.float64)
    if info.enabled:
        sums = all_reduce_sum(sums.to(device), info).cpu()
    n = max(sums[3].item(), 1.0)
    return ValidationResult(
        ssim=sums[0].item() / n,
        psnr=sums[1].item() / n,
        nmse=sums[2].item() / n,
        loss=sums[4].item() / max(sums[5].item(), 1.0),
        volumes=int(sums[3].item()),
    )
