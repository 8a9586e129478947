"""``status``: the merged state of a batch from its shards' manifests."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from mrirecon.io.errors import InputError
from mrirecon.pipelines.inputs import expand_inputs
from mrirecon.pipelines.manifest import STATE_DIR, BatchStatus, batch_status, manifest_dirs


def batch_report(out_dir: str | Path, inputs: Sequence[str | Path] | None = None) -> BatchStatus:
    """The status of the batch writing into ``out_dir``; ``inputs`` (files or folders) add the pending files."""
    out_dir = Path(out_dir)
    if not out_dir.is_dir():
        raise InputError(out_dir, "output folder does not exist" if not out_dir.exists() else "is not a folder")
    if not any(p for folder in manifest_dirs(out_dir) for p in folder.glob("manifest-*.jsonl")):
        raise InputError(out_dir, f"has no batch manifest ({STATE_DIR}/manifest-*.jsonl); no batch has written here yet")
    files = None if not inputs else expand_inputs(inputs)
    return batch_status(out_dir, files)


def status_text(status: BatchStatus) -> str:
    """A few lines for a terminal."""
    d = status.to_dict()
    pending = "" if d["pending"] is None else f", {d['pending']} pending"
    lines = [f"{d['done']} done, {d['failed']} failed{pending} ({len(d['shards'])} shard(s), {d['records']} manifest lines)"]
    if d["files_per_hour"] is not None:
        lines.append(f"throughput: {d['files_per_hour']:.1f} files/hour")
    if d["slowest"]:
        lines.append("slowest: " + ", ".join(f"{Path(r['input']).name} {r['seconds']:.1f}s" for r in d["slowest"]))
    lines += [f"{r['status']}: {r['error']}" for r in d["failures"]]
    return "\n".join(lines)
