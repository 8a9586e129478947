"""``unet-recon``: reconstruct fastMRI files with a trained checkpoint (U-Net or VarNet, as it records)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import torch

from mrirecon.cs.noise_floor import restore_noise_floor
from mrirecon.io.errors import InputError
from mrirecon.io.fastmri_h5 import Volume
from mrirecon.mri.crop import recon_crop_size
from mrirecon.mri.masks import MaskSpec
from mrirecon.pipelines.batch import BatchOptions
from mrirecon.pipelines.common import BatchSummary
from mrirecon.pipelines.devices import resolve_device
from mrirecon.pipelines.runner import Method, RunOptions, VolumeJob, run_recon
from mrirecon.pipelines.sampling import SamplingMask
from mrirecon.train.checkpoint import model_from_checkpoint
from mrirecon.models import VarNet
from mrirecon.train.inference import unet_forward, varnet_forward


@dataclass
class UnetReconConfig:
    """The checkpoint, an optional on-the-fly mask for fully sampled inputs, and run options."""

    checkpoint: Path
    mask: MaskSpec | None = None
    device: str = "auto"
    batch_slices: int = 8
    amp: bool = False
    overwrite: bool = False
    noise_floor: bool = True  # VarNet: the noise floor of its hard-data-consistent RSS (mrirecon.cs.noise_floor)


class _UnetJob(VolumeJob):
    def __init__(self, method: "UnetMethod", volume: Volume, sampling: SamplingMask | None, device: torch.device):
        super().__init__(volume, sampling, device)
        self.method = method
        self.floors: list[dict] = []

    def reconstruct(self, kspace: torch.Tensor, start: int, stop: int) -> torch.Tensor:
        model = self.method.model_on(self.device)
        if isinstance(model, VarNet):
            mask = self.mask if self.mask is not None else torch.ones(kspace.shape[-1], dtype=torch.bool, device=self.device)
            rows = recon_crop_size(tuple(kspace.shape[-2:]), self.volume.recon_crop)[0]
            output = varnet_forward(model, kspace, mask, self.volume.padding, amp=self.method.amp, rows=rows)
            if not self.method.noise_floor:
                return output
            # the VarNet's output is the RSS of hard-data-consistent coil images, as cs-recon's
            output, floors = restore_noise_floor(output, kspace, mask)  # the runner masked the k-space
            self.floors.extend(floors)  # after the chunk succeeded (an out-of-memory retry repeats it)
            return output
        output, inputs = unet_forward(model, kspace, self.volume.recon_crop, amp=self.method.amp)
        return inputs.denormalise(output)

    def attrs(self) -> dict[str, Any]:
        attrs: dict[str, Any] = {"checkpoint": str(self.method.checkpoint)}
        if self.method.name == "varnet":
            attrs["noise_floor"] = self.method.noise_floor
        return attrs

    def info(self) -> dict[str, Any]:
        if not self.floors:
            return {}
        return {"noise_floor": [f["noise_floor"] for f in self.floors], "noise_floor_method": [f["noise_floor_method"] for f in self.floors]}


class UnetMethod(Method):
    """A trained U-Net (de-normalised to the input's scale) or VarNet (``mrirecon train``), cropped like zf-recon."""

    name = "unet"
    needs_mask = True

    def __init__(self, checkpoint: Path, amp: bool = False, noise_floor: bool = True):
        self.checkpoint = Path(checkpoint)
        self.amp = amp
        self.noise_floor = noise_floor
        self.model, self.train_config = model_from_checkpoint(self.checkpoint)  # checked before any file is touched
        self.model.eval()
        self.name = "varnet" if isinstance(self.model, VarNet) else "unet"

    def model_on(self, device: torch.device) -> torch.nn.Module:
        if next(self.model.parameters()).device != device:
            self.model = self.model.to(device)
        return self.model

    def options(self) -> dict[str, Any]:
        weights = hashlib.sha256(self.checkpoint.read_bytes()).hexdigest()[:16]
        return {"checkpoint": weights, "amp": self.amp, "noise_floor": self.noise_floor}

    def begin(self, volume: Volume, sampling: SamplingMask | None, device: torch.device) -> VolumeJob:
        if isinstance(self.model, VarNet) and not volume.multicoil:
            raise InputError(volume.path, "is single-coil; the VarNet needs multi-coil data, so use a U-Net checkpoint")
        return _UnetJob(self, volume, sampling, device)


def unet_recon(
    inputs: Sequence[str | Path],
    out_dir: str | Path,
    config: UnetReconConfig,
    *,
    quiet: bool = False,
    debug: bool = False,
    batch: BatchOptions | None = None,
) -> BatchSummary:
    """Reconstruct every input with the U-Net of ``config.checkpoint`` into ``out_dir``.

    The checkpoint is checked before any file is touched (``CheckpointError`` otherwise).
    Outputs are cropped like ``zf-recon`` (header recon size, fastMRI's rule for narrow
    images) and de-normalised to the input's scale.
    """
    options = RunOptions.of(batch, mask=config.mask, device=config.device, batch_slices=config.batch_slices,
                            overwrite=config.overwrite, quiet=quiet, debug=debug)
    options.validate()
    resolve_device(config.device)
    method = UnetMethod(config.checkpoint, config.amp, config.noise_floor)
    summary = run_recon("unet-recon", method, inputs, out_dir, options)
    tc = method.train_config
    summary.extra["model"] = {"kind": tc.model, "chans": tc.chans, "pools": tc.pools, "norm": tc.norm}
    if tc.model == "varnet":
        summary.extra["model"].update(cascades=tc.cascades, sens_chans=tc.sens_chans)
    return summary
