"""``subsample``: fully sampled fastMRI files -> test-style files (undersampled k-space + mask)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from mrirecon.io.errors import InputError
from mrirecon.io.fastmri_h5 import TARGET_KEYS, atomic_h5, check_writable, open_volume
from mrirecon.mri.masks import MaskSpec
from mrirecon.pipelines.common import BatchSummary, FileResult, expand_inputs, output_path, run_batch
from mrirecon.pipelines.sampling import sampling_for

#: Slices read and written at a time: bounds memory for large multi-coil volumes.
SLICES_PER_CHUNK = 4


@dataclass
class SubsampleConfig:
    """Mask options (``mask.seed`` None: fastMRI's per-volume seed) and output policy."""

    mask: MaskSpec = field(default_factory=MaskSpec)
    overwrite: bool = False


def subsample_file(path: Path, out_path: Path, config: SubsampleConfig) -> FileResult:
    """Undersample one volume into ``out_path``: masked ``kspace``, ``mask``, attributes
    ``acceleration`` and ``num_low_frequency``, header and other attributes carried over, no target."""
    check_writable(out_path, config.overwrite)
    with open_volume(path) as volume:
        if volume.mask is not None:
            raise InputError(path, "is already undersampled (it has a 'mask')")
        sampling = sampling_for(volume, config.mask)
        assert sampling is not None
        shape = volume.kspace_shape
        with atomic_h5(out_path, config.overwrite) as out:
            kspace_out = out.create_dataset("kspace", shape=shape, dtype=np.complex64)
            for start in range(0, volume.num_slices, SLICES_PER_CHUNK):
                stop = min(start + SLICES_PER_CHUNK, volume.num_slices)
                chunk = volume.read_kspace(start, stop)
                kspace_out[start:stop] = chunk * sampling.mask.astype(np.complex64)
            out.create_dataset("mask", data=sampling.mask)
            if volume.header_xml is not None:
                out.create_dataset("ismrmrd_header", data=volume.header_xml)
            for key, value in volume.handle.attrs.items():
                out.attrs[key] = value
            out.attrs["acceleration"] = config.mask.acceleration
            out.attrs["num_low_frequency"] = sampling.num_low_frequency
            out.attrs["mask_type"] = config.mask.mask_type
        sampled = float(sampling.mask.mean())
        return FileResult(
            str(path),
            output=str(out_path),
            info={
                "sampled_fraction": sampled,
                "num_low_frequency": sampling.num_low_frequency,
                "warnings": volume.warnings,
                "dropped": [k for k in TARGET_KEYS.values() if k in volume.handle],
            },
        )


def subsample(
    inputs: Sequence[str | Path],
    out_dir: str | Path,
    config: SubsampleConfig,
    *,
    quiet: bool = False,
    debug: bool = False,
) -> BatchSummary:
    """Subsample every input file (folders expand to their ``*.h5``) into ``out_dir``."""
    config.mask.validate()
    out_dir = Path(out_dir)
    files = expand_inputs(inputs)
    if not files:
        raise InputError(None, "no input files found")
    return run_batch(
        "subsample",
        files,
        lambda p: subsample_file(p, output_path(out_dir, p), config),
        quiet=quiet,
        debug=debug,
    )
