"""The one recon runner: everything around a reconstruction method, written once.

``zf-recon``, ``cs-recon`` and ``unet-recon`` (and any later method) are a ``Method`` object plus
``run_recon``. The runner owns, per batch: input expansion, the shard, resume, progress, the
manifest and the summary (``mrirecon.pipelines.common``); per file: opening and validating the
volume, the sampling (the file's own mask, or one drawn on the fly exactly as ``subsample`` draws
it), reading slice chunks into reused buffers, the next while the current one is reconstructed
(``mrirecon.pipelines.chunk_reader``), uploading them to the device, checking them for NaN/Inf
and masking them there (once, for every method), halving the chunk and retrying when the device
runs out of memory, the crop, the output attributes (with the options hash ``--skip-existing``
checks) and the atomic write.

The method interface
--------------------
A method reconstructs one chunk of slices of one volume on a device; it never opens or writes a
file. Subclass ``Method`` and give:

``name``
    The ``method`` attribute of its outputs, e.g. ``"cs-tv"``.
``needs_mask``
    True if a fully sampled input without ``--mask`` is an error (False: use all of the k-space).
``options() -> dict``
    The JSON-able options that change the output (not the device or the chunk size). Together
    with ``name`` and the mask options they make the options hash stored in every output.
``chunk_slices(volume, device) -> int``
    Slices per chunk when ``--batch-slices`` is not given.
``begin(volume, sampling, device) -> VolumeJob``
    Per-volume set-up (check the volume, pick parameters, load maps); raise ``InputError`` to
    refuse the file with one sentence.

A ``VolumeJob`` then gets ``reconstruct(kspace, start, stop)`` once per chunk: ``kspace`` is
complex64 ``(stop - start, [coils,] H, W)`` on the device, already masked; ``job.mask`` is the
sampling mask on the device (or ``None`` when all of the k-space is used). It returns real images
``(stop - start, h, w)`` on the device, cropped or not (the runner applies fastMRI's crop; a
crop to the final size is a no-op). It may raise an out-of-memory error at any point: the runner
drops the chunk and calls ``reconstruct`` again with fewer slices, so a job keeps no state from a
chunk that did not finish. ``attrs()`` (extra output attributes), ``info()`` (the file's entry in
the summary) and ``notes`` (warnings, each a sentence naming the file) are read once all chunks
are done. The runner runs methods under ``torch.no_grad()``.

Example: ``run_recon("zf-recon", ZeroFilled(), ["data/val"], "recon/zf", RunOptions(device="cpu"))``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from mrirecon.io.fastmri_h5 import Volume, open_volume, write_reconstruction
from mrirecon.mri.crop import center_crop, recon_crop_size
from mrirecon.mri.masks import MaskSpec
from mrirecon.pipelines.batch import (
    REDO, SKIP, BatchOptions, dataset_problem, h5_output_problem, output_action, run_file_batch, skipped,
)
from mrirecon.pipelines.chunk_reader import ChunkReader
from mrirecon.pipelines.common import BatchSummary, FileResult
from mrirecon.pipelines.devices import resolve_device
from mrirecon.pipelines.oom import drop_failed_chunk, is_out_of_memory, release_memory
from mrirecon.pipelines.sampling import SamplingMask, sampling_for


class VolumeJob(ABC):
    """One volume being reconstructed by a method (see the module docstring)."""

    def __init__(self, volume: Volume, sampling: SamplingMask | None, device: torch.device):
        self.volume = volume
        self.sampling = sampling
        self.device = device
        self.mask = None if sampling is None else torch.from_numpy(sampling.mask).to(device)
        self.notes: list[str] = []

    @abstractmethod
    def reconstruct(self, kspace: torch.Tensor, start: int, stop: int) -> torch.Tensor:
        """Real images ``(stop - start, h, w)`` of the masked k-space chunk ``kspace`` on the device."""

    def attrs(self) -> dict[str, Any]:
        """Attributes the output file carries besides the runner's own."""
        return {}

    def info(self) -> dict[str, Any]:
        """This file's details in the summary."""
        return {}


class Method(ABC):
    """A reconstruction method (see the module docstring)."""

    name: str = ""
    needs_mask: bool = True

    @abstractmethod
    def options(self) -> dict[str, Any]:
        """The options that change the output (hashed into the output's ``options_hash``)."""

    def chunk_slices(self, volume: Volume, device: torch.device) -> int:
        """Slices per chunk when ``--batch-slices`` is not given."""
        return 8

    @abstractmethod
    def begin(self, volume: Volume, sampling: SamplingMask | None, device: torch.device) -> VolumeJob:
        """Set up the reconstruction of ``volume`` (raise ``InputError`` to refuse it)."""


@dataclass
class RunOptions(BatchOptions):
    """The options every recon command shares (one option group on the command line): the batch's
    (shard, resume, dry run, stop) plus the mask, the device and the chunk size."""

    mask: MaskSpec | None = None
    device: str = "auto"
    batch_slices: int | None = None  # None: the method's choice
    read_ahead: bool = True  # read the next chunk while this one is reconstructed

    @classmethod
    def of(cls, batch: BatchOptions | None, **fields: Any) -> "RunOptions":
        """``batch``'s options (shard, resume, stop; ``quiet``/``debug`` or-ed) plus the recon ``fields``."""
        merged = {} if batch is None else {f.name: getattr(batch, f.name) for f in dataclasses.fields(BatchOptions)}
        for key in ("quiet", "debug", "overwrite"):
            fields[key] = bool(fields.get(key)) or bool(merged.pop(key, False))
        return cls(**{**merged, **fields})

    def validate(self) -> None:
        """Raise ``ValueError`` with one sentence if an option is unusable."""
        super().validate()
        if self.batch_slices is not None and self.batch_slices < 1:
            raise ValueError(f"--batch-slices must be at least 1, got {self.batch_slices}")
        if self.mask is not None:
            self.mask.validate()


def options_hash(method: Method, mask: MaskSpec | None) -> str:
    """A short hash of everything that changes a method's output: its name, options and the mask options."""
    blob = json.dumps(
        {"method": method.name, "options": method.options(), "mask": None if mask is None else asdict(mask)},
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def recon_attrs(volume_attrs: dict, acceleration: float | None, method: str) -> dict:
    """Attributes a reconstruction file carries: the ones ``eval`` filters on, and the method."""
    attrs: dict[str, Any] = {"method": method}
    for key in ("acquisition", "patient_id", "geometry"):
        if key in volume_attrs:
            attrs[key] = volume_attrs[key]
    if acceleration is not None:
        attrs["acceleration"] = acceleration
    return attrs


def upload(chunk: np.ndarray, device: torch.device) -> torch.Tensor:
    """A k-space chunk read from disk, on ``device`` (pinned and asynchronous on CUDA)."""
    tensor = torch.from_numpy(chunk)
    if device.type == "cuda":
        return tensor.pin_memory().to(device, non_blocking=True)
    return tensor


def _reconstruct_chunks(job: VolumeJob, batch: int, path: Path, read_ahead: bool = True) -> torch.Tensor:
    """All slices of ``job.volume``, ``batch`` at a time, halving ``batch`` on out-of-memory
    (``read_ahead``: the next chunk is read while this one is reconstructed, ``ChunkReader``)."""
    volume, device = job.volume, job.device
    with ChunkReader(volume, device, read_ahead) as reader:
        return _chunks_from(reader, job, batch, path)


def _chunks_from(reader: ChunkReader, job: VolumeJob, batch: int, path: Path) -> torch.Tensor:
    volume, device = job.volume, job.device
    drawn_mask = None
    if job.sampling is not None and job.sampling.drawn:
        drawn_mask = job.sampling.as_tensor(len(volume.kspace_shape), device).to(torch.float32)
    parts: list[torch.Tensor] = []
    start = 0
    while start < volume.num_slices:
        stop = min(start + batch, volume.num_slices)
        failure: BaseException | None = None
        try:
            kspace = reader.read(start, stop)
            if drawn_mask is not None:
                kspace.mul_(drawn_mask)  # on the device, in the chunk's own memory
            with torch.no_grad():
                image = job.reconstruct(kspace, start, stop)
                crop = recon_crop_size(tuple(image.shape[-2:]), volume.recon_crop)
                parts.append(center_crop(image, crop).float().cpu())
            del kspace, image
        except Exception as exc:
            if not is_out_of_memory(exc) or batch == 1:
                raise
            failure = exc
        if failure is not None:
            drop_failed_chunk(failure)
            kspace = image = failure = None
            release_memory(device)
            batch = max(1, batch // 2)
            job.notes.append(f"{path}: {device.type.upper()} out of memory; retrying with {batch} slice(s) per batch")
            continue
        start = stop
    return torch.cat(parts)


def recon_file(method: Method, path: Path, out_path: Path, options: RunOptions, digest: str | None = None) -> FileResult:
    """Reconstruct one volume with ``method`` and write it atomically to ``out_path``.

    An existing output is refused, kept (``skip_existing`` and valid) or redone (see
    ``mrirecon.pipelines.batch.output_action``).
    """
    digest = digest or options_hash(method, options.mask)
    device = resolve_device(options.device)
    with open_volume(path) as volume:
        crop = recon_crop_size(tuple(volume.kspace_shape[-2:]), volume.recon_crop)
        action, reason = output_action(out_path, options, lambda out: h5_output_problem(
            out, digest, lambda h: dataset_problem(h, "reconstruction", (volume.num_slices, *crop), "float32")
        ))
        if action == SKIP:
            return skipped(path, out_path)
        sampling = sampling_for(volume, options.mask, required=method.needs_mask)
        job = method.begin(volume, sampling, device)
        job.notes[:0] = volume.warnings
        if action == REDO and reason != "--overwrite":
            job.notes.append(f"{out_path}: redone, because {reason}")
        batch = options.batch_slices or method.chunk_slices(volume, device)
        recon = _reconstruct_chunks(job, batch, path, options.read_ahead).numpy().astype(np.float32)
        attrs = recon_attrs(volume.attrs, None if sampling is None else sampling.acceleration, method.name)
        attrs.update(job.attrs())
        attrs["options_hash"] = digest
        write_reconstruction(out_path, recon, attrs=attrs, overwrite=action == REDO)
        info = {"shape": list(recon.shape), **job.info(), "warnings": job.notes}
        status = "redone" if action == REDO and reason != "--overwrite" else "done"
        return FileResult(str(path), output=str(out_path), info=info, status=status)


def run_recon(
    command: str,
    method: Method,
    inputs: Sequence[str | Path],
    out_dir: str | Path,
    options: RunOptions,
) -> BatchSummary:
    """Reconstruct this shard's inputs with ``method`` into ``out_dir`` (same file names)."""
    options.validate()
    device = resolve_device(options.device)
    digest = options_hash(method, options.mask)
    return run_file_batch(
        command, inputs, out_dir, options, lambda p, out: recon_file(method, p, out, options, digest),
        options_hash=digest, device=str(device),
    )
