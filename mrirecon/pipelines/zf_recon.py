"""``zf-recon``: zero-filled reconstruction written as fastMRI reconstruction files."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from mrirecon.io.errors import InputError
from mrirecon.io.fastmri_h5 import check_writable, open_volume, write_reconstruction
from mrirecon.mri.masks import MaskSpec
from mrirecon.mri.zero_filled import zero_filled
from mrirecon.pipelines.common import BatchSummary, FileResult, expand_inputs, output_path, run_batch
from mrirecon.pipelines.devices import resolve_device
from mrirecon.pipelines.sampling import read_sampled_kspace, sampling_for


@dataclass
class ZeroFilledConfig:
    """Optional on-the-fly mask for fully sampled inputs, device, slices per batch, output policy."""

    mask: MaskSpec | None = None
    device: str = "auto"
    batch_slices: int = 16
    overwrite: bool = False


def recon_attrs(volume_attrs: dict, acceleration: float | None, method: str) -> dict:
    """Attributes a reconstruction file carries: the ones ``eval`` filters on, and the method."""
    attrs = {"method": method}
    for key in ("acquisition", "patient_id"):
        if key in volume_attrs:
            attrs[key] = volume_attrs[key]
    if acceleration is not None:
        attrs["acceleration"] = acceleration
    return attrs


def zero_filled_file(path: Path, out_path: Path, config: ZeroFilledConfig) -> FileResult:
    """Reconstruct one volume by zero filling and write it to ``out_path``."""
    check_writable(out_path, config.overwrite)
    device = resolve_device(config.device)
    with open_volume(path) as volume:
        sampling = sampling_for(volume, config.mask, required=False)
        chunks = []
        for start in range(0, volume.num_slices, config.batch_slices):
            stop = min(start + config.batch_slices, volume.num_slices)
            kspace = read_sampled_kspace(volume, sampling, start, stop).to(device)
            chunks.append(zero_filled(kspace, volume.recon_crop).cpu())
        recon = torch.cat(chunks).numpy().astype(np.float32)
        accel = None if sampling is None else sampling.acceleration
        write_reconstruction(
            out_path, recon, attrs=recon_attrs(volume.attrs, accel, "zero-filled"), overwrite=config.overwrite
        )
        return FileResult(str(path), output=str(out_path), info={"shape": list(recon.shape), "warnings": volume.warnings})


def zf_recon(
    inputs: Sequence[str | Path],
    out_dir: str | Path,
    config: ZeroFilledConfig,
    *,
    quiet: bool = False,
    debug: bool = False,
) -> BatchSummary:
    """Zero-filled reconstruction of every input file into ``out_dir``."""
    if config.mask is not None:
        config.mask.validate()
    if config.batch_slices < 1:
        raise ValueError("--batch-slices must be at least 1")
    resolve_device(config.device)
    files = expand_inputs(inputs)
    if not files:
        raise InputError(None, "no input files found")
    out_dir = Path(out_dir)
    return run_batch(
        "zf-recon", files, lambda p: zero_filled_file(p, output_path(out_dir, p), config), quiet=quiet, debug=debug
    )
