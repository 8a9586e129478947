"""``unet-recon``: reconstruct fastMRI files with a trained U-Net checkpoint."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from mrirecon.io.errors import InputError
from mrirecon.io.fastmri_h5 import check_writable, open_volume, write_reconstruction
from mrirecon.mri.masks import MaskSpec
from mrirecon.pipelines.common import BatchSummary, FileResult, expand_inputs, output_path, run_batch
from mrirecon.pipelines.sampling import sampling_for
from mrirecon.pipelines.zf_recon import recon_attrs
from mrirecon.train.checkpoint import model_from_checkpoint
from mrirecon.train.distributed import resolve_device
from mrirecon.train.inference import reconstruct_volume


@dataclass
class UnetReconConfig:
    """The checkpoint, an optional on-the-fly mask for fully sampled inputs, and run options."""

    checkpoint: Path
    mask: MaskSpec | None = None
    device: str = "auto"
    batch_slices: int = 8
    amp: bool = False
    overwrite: bool = False


def unet_recon(
    inputs: Sequence[str | Path],
    out_dir: str | Path,
    config: UnetReconConfig,
    *,
    quiet: bool = False,
    debug: bool = False,
) -> BatchSummary:
    """Reconstruct every input with the U-Net of ``config.checkpoint`` into ``out_dir``.

    The checkpoint is checked before any file is touched (``CheckpointError`` otherwise).
    Outputs are cropped like ``zf-recon`` (header recon size, fastMRI's rule for narrow
    images) and de-normalised to the input's scale.
    """
    if config.batch_slices < 1:
        raise ValueError("--batch-slices must be at least 1")
    if config.mask is not None:
        config.mask.validate()
    device = resolve_device(config.device)
    model, train_config = model_from_checkpoint(config.checkpoint)
    model = model.to(device)
    files = expand_inputs(inputs)
    if not files:
        raise InputError(None, "no input files found")
    out_dir = Path(out_dir)

    def process(path: Path) -> FileResult:
        out_path = check_writable(output_path(out_dir, path), config.overwrite)
        with open_volume(path) as volume:
            sampling = sampling_for(volume, config.mask, required=True)
            mask = sampling.mask if sampling.drawn else None
            result = reconstruct_volume(model, volume, volume.recon_crop, mask=mask, device=device,
                                        batch_size=config.batch_slices, amp=config.amp)
            attrs = recon_attrs(volume.attrs, sampling.acceleration, "unet")
            attrs["checkpoint"] = str(config.checkpoint)
            write_reconstruction(out_path, result.recon, attrs=attrs, overwrite=config.overwrite)
            return FileResult(str(path), output=str(out_path),
                              info={"shape": list(result.recon.shape), "warnings": volume.warnings})

    summary = run_batch("unet-recon", files, process, quiet=quiet, debug=debug)
    summary.extra["model"] = {"chans": train_config.chans, "pools": train_config.pools, "norm": train_config.norm}
    return summary
