"""Batches that write one output per input: plan, shard, resume, manifest (``zf/cs/unet-recon``, ``subsample``).

``run_file_batch`` expands the inputs, refuses clashing outputs, takes this process's shard
(``mrirecon.pipelines.shard``), removes the temporary files of killed runs, and runs the
per-file function under ``run_batch`` with the shard's manifest. ``output_action`` is the policy
for an output that already exists: refused without a flag, kept with ``--skip-existing`` when it is
valid (the caller's check), redone otherwise or with ``--overwrite``.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import h5py
import numpy as np

from mrirecon.io.h5_input import open_h5
from mrirecon.io.errors import InputError
from mrirecon.pipelines.common import BatchSummary, FileResult, run_batch
from mrirecon.pipelines.inputs import expand_inputs, plan_outputs
from mrirecon.pipelines.manifest import Manifest, clean_stale_temporaries, manifest_dir
from mrirecon.pipelines.shard import Shard, resolve_shard, shard_files
from mrirecon.pipelines.signals import DEFAULT_GRACE


@dataclass
class BatchOptions:
    """How a batch walks its files: shard, resume policy, dry run, stop behaviour, output."""

    shard: Shard | str | None = None  # None: from SLURM_ARRAY_* / torchrun's RANK, WORLD_SIZE
    skip_existing: bool = False
    overwrite: bool = False
    dry_run: bool = False
    requeue: bool = False
    grace: float = DEFAULT_GRACE
    stage: Path | None = None  # copy each input here (local scratch) before reading it
    quiet: bool = False
    debug: bool = False

    def validate(self) -> None:
        if self.skip_existing and self.overwrite:
            raise ValueError("--skip-existing and --overwrite exclude each other; pass one of them")
        if not self.grace >= 0:
            raise ValueError(f"--grace must be non-negative seconds, got {self.grace}")
        resolve_shard(self.shard)


#: What to do about one output: write it (new), keep it (valid, --skip-existing), or redo it.
WRITE, SKIP, REDO = "write", "skip", "redo"


def output_action(out_path: Path, options: BatchOptions, invalid_reason: Callable[[Path], str | None]) -> tuple[str, str | None]:
    """``(action, reason)`` for ``out_path``; raises ``InputError`` when it exists and no flag says what to do.

    ``invalid_reason(out_path)`` is ``None`` for a complete, valid output of the same options, else
    why it must be redone.
    """
    if not out_path.exists():
        return WRITE, None
    if options.skip_existing:
        reason = invalid_reason(out_path)
        return (SKIP, None) if reason is None else (REDO, reason)
    if options.overwrite:
        return REDO, "--overwrite"
    raise InputError(out_path, "output exists; pass --skip-existing to keep it (if valid) or --overwrite to replace it")


def h5_output_problem(out_path: Path, digest: str, check: Callable[[h5py.File], str | None]) -> str | None:
    """Why the existing HDF5 ``out_path`` must be redone: unreadable, ``check(handle)`` (its datasets)
    failed, or another ``options_hash``; ``None`` when it is a complete output of these options."""
    try:
        with open_h5(out_path) as handle:
            problem = check(handle)
            if problem is not None:
                return problem
            stored = handle.attrs.get("options_hash")
            stored = stored.decode() if isinstance(stored, bytes) else stored
            if stored != digest:
                return f"it was written with other options (hash {stored}, now {digest})"
    except InputError as exc:
        return f"it cannot be read ({exc.problem})"
    except (OSError, KeyError, ValueError) as exc:
        return f"it cannot be read ({exc})"
    return None


def dataset_problem(handle: h5py.File, name: str, shape: tuple[int, ...], dtype: str | None = None) -> str | None:
    """Why ``handle[name]`` is not a complete ``shape`` (and ``dtype``) dataset, readable to its last slice."""
    data = handle.get(name)
    if not isinstance(data, h5py.Dataset):
        return f"it has no {name!r} dataset"
    if tuple(data.shape) != tuple(shape) or (dtype is not None and data.dtype != np.dtype(dtype)):
        return f"its {name!r} is {data.dtype} {tuple(data.shape)}, not {dtype or data.dtype} {tuple(shape)}"
    data[-1]  # readable to the end
    return None


def skipped(path: Path, out_path: Path) -> FileResult:
    """The result of a file whose valid output was kept."""
    return FileResult(str(path), output=str(out_path), status="skipped")


def staged(process: Callable[[Path, Path], FileResult], stage: Path) -> Callable[[Path, Path], FileResult]:
    """``process`` reading a copy of each input in ``stage`` (a node's local scratch): one sequential
    read of the shared file system instead of HDF5's scattered ones; the copy is removed after."""

    def run(path: Path, out_path: Path) -> FileResult:
        stage.mkdir(parents=True, exist_ok=True)
        folder = Path(tempfile.mkdtemp(prefix=".mrirecon-stage.", dir=stage))
        copy = folder / path.name  # the same name: masks drawn on the fly are seeded by it
        try:
            shutil.copyfile(path, copy)
            result = process(copy, out_path)
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        result.input = str(path)
        if result.error:
            result.error = result.error.replace(str(copy), str(path))
        return result

    return run


def run_file_batch(
    command: str,
    inputs: Sequence[str | Path],
    out_dir: str | Path,
    options: BatchOptions,
    process: Callable[[Path, Path], FileResult],
    *,
    options_hash: str | None = None,
    device: str | None = None,
    manifest_folder: Path | None = None,
) -> BatchSummary:
    """Run ``process(input, output)`` over this shard's files of ``inputs`` (see the module docstring).

    The shard's manifest goes to ``manifest_folder`` (default ``OUT/.mrirecon``).
    """
    options.validate()
    out_dir = Path(out_dir)
    files = expand_inputs(inputs)
    pairs = dict(plan_outputs(files, out_dir))
    shard = resolve_shard(options.shard)
    mine = shard_files(files, shard)
    summary_extra = {"shard": str(shard), "files_in_batch": len(files), "files_in_shard": len(mine)}
    if options.dry_run:
        for path in mine:
            sys.stdout.write(f"{path}\t{pairs[path]}\n")
        summary = BatchSummary(command)
        summary.extra.update(summary_extra, dry_run=[str(p) for p in mine])
        return summary
    removed = clean_stale_temporaries(pairs[p] for p in mine)
    if options.stage is not None:
        process = staged(process, Path(options.stage))
    folder = manifest_dir(out_dir) if manifest_folder is None else manifest_folder
    manifest = Manifest(folder, shard.label, command, options_hash, device)
    summary = run_batch(
        command, mine, lambda p: process(p, pairs[p]), quiet=options.quiet, debug=options.debug,
        manifest=manifest, grace=options.grace, requeue=options.requeue,
    )
    summary.extra.update(summary_extra, stale_temporaries_removed=len(removed))
    if options_hash is not None:
        summary.extra["options_hash"] = options_hash
    return summary
