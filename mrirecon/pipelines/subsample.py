"""``subsample``: fully sampled fastMRI files -> test-style files (undersampled k-space + mask)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import h5py
import numpy as np

from mrirecon.io.errors import InputError
from mrirecon.io.fastmri_h5 import TARGET_KEYS, atomic_h5, open_volume
from mrirecon.mri.masks import MaskSpec
from mrirecon.pipelines.batch import (
    REDO, SKIP, BatchOptions, dataset_problem, h5_output_problem, output_action, run_file_batch, skipped,
)
from mrirecon.pipelines.common import BatchSummary, FileResult
from mrirecon.pipelines.manifest import dataset_manifest_dir
from mrirecon.pipelines.sampling import sampling_for

#: Slices read and written at a time: bounds memory for large multi-coil volumes.
SLICES_PER_CHUNK = 4


@dataclass
class SubsampleConfig(BatchOptions):
    """Mask options (``mask.seed`` None: fastMRI's per-volume seed) and the batch options."""

    mask: MaskSpec = field(default_factory=MaskSpec)

    def options_hash(self) -> str:
        """A short hash of the mask options (stored in each output; ``--skip-existing`` compares it)."""
        return hashlib.sha256(json.dumps(asdict(self.mask), sort_keys=True).encode()).hexdigest()[:16]


def _output_check(shape: tuple[int, ...]) -> Callable[[h5py.File], str | None]:
    def check(handle: h5py.File) -> str | None:
        if "mask" not in handle:
            return "it has no 'mask' dataset"
        return dataset_problem(handle, "kspace", shape)

    return check


def subsample_file(path: Path, out_path: Path, config: SubsampleConfig) -> FileResult:
    """Undersample one volume into ``out_path``: masked ``kspace``, ``mask``, attributes
    ``acceleration`` and ``num_low_frequency``, header and other attributes carried over, no target."""
    digest = config.options_hash()
    with open_volume(path) as volume:
        shape = volume.kspace_shape
        action, reason = output_action(out_path, config, lambda out: h5_output_problem(out, digest, _output_check(shape)))
        if action == SKIP:
            return skipped(path, out_path)
        if volume.mask is not None:
            raise InputError(path, "is already undersampled (it has a 'mask')")
        sampling = sampling_for(volume, config.mask)
        assert sampling is not None
        with atomic_h5(out_path, action == REDO) as out:
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
            out.attrs["options_hash"] = digest
        sampled = float(sampling.mask.mean())
        warnings = list(volume.warnings)
        if action == REDO and reason != "--overwrite":
            warnings.append(f"{out_path}: redone, because {reason}")
        return FileResult(
            str(path),
            output=str(out_path),
            status="redone" if action == REDO and reason != "--overwrite" else "done",
            info={
                "sampled_fraction": sampled,
                "num_low_frequency": sampling.num_low_frequency,
                "warnings": warnings,
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
    """Subsample this shard's input files (folders expand to their ``*.h5``/``*.hdf5``) into ``out_dir``."""
    config.mask.validate()
    config.quiet = config.quiet or quiet
    config.debug = config.debug or debug
    return run_file_batch(
        "subsample", inputs, out_dir, config, lambda p, out: subsample_file(p, out, config),
        options_hash=config.options_hash(), manifest_folder=dataset_manifest_dir(out_dir),
    )
