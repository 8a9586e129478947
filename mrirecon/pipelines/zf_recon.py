"""``zf-recon``: zero-filled reconstruction written as fastMRI reconstruction files."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import torch

from mrirecon.io.fastmri_h5 import Volume
from mrirecon.mri.masks import MaskSpec
from mrirecon.mri.zero_filled import zero_filled
from mrirecon.pipelines.batch import BatchOptions
from mrirecon.pipelines.common import BatchSummary
from mrirecon.pipelines.runner import Method, RunOptions, VolumeJob, recon_attrs, run_recon
from mrirecon.pipelines.sampling import SamplingMask

__all__ = ["ZeroFilled", "ZeroFilledConfig", "zf_recon", "recon_attrs"]


class _ZeroFilledJob(VolumeJob):
    def reconstruct(self, kspace: torch.Tensor, start: int, stop: int) -> torch.Tensor:
        return zero_filled(kspace, self.volume.recon_crop)


class ZeroFilled(Method):
    """Inverse FFT, RSS over coils, fastMRI's crop; uses all of the k-space when no mask is given."""

    name = "zero-filled"
    needs_mask = False

    def options(self) -> dict[str, Any]:
        return {}

    def chunk_slices(self, volume: Volume, device: torch.device) -> int:
        return 16

    def begin(self, volume: Volume, sampling: SamplingMask | None, device: torch.device) -> VolumeJob:
        return _ZeroFilledJob(volume, sampling, device)


@dataclass
class ZeroFilledConfig:
    """Optional on-the-fly mask for fully sampled inputs, device, slices per batch, output policy."""

    mask: MaskSpec | None = None
    device: str = "auto"
    batch_slices: int = 16
    overwrite: bool = False


def zf_recon(
    inputs: Sequence[str | Path],
    out_dir: str | Path,
    config: ZeroFilledConfig,
    *,
    quiet: bool = False,
    debug: bool = False,
    batch: BatchOptions | None = None,
) -> BatchSummary:
    """Zero-filled reconstruction of this shard's input files into ``out_dir``."""
    options = RunOptions.of(
        batch, mask=config.mask, device=config.device, batch_slices=config.batch_slices, overwrite=config.overwrite,
        quiet=quiet, debug=debug,
    )
    return run_recon("zf-recon", ZeroFilled(), inputs, out_dir, options)
