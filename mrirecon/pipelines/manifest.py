"""The batch manifest: one JSON line per finished file, one file per shard, merged by ``status``.

Shard ``I`` of ``N`` appends to ``OUT/.mrirecon/manifest-IofN.jsonl`` (``subsample``, whose output
folder is a dataset fastMRI's ``SliceDataset`` reads entry by entry: ``.OUT.mrirecon/`` beside it). Each line is written with
one ``write`` on a descriptor opened with ``O_APPEND`` and then ``fsync``-ed, so a kill leaves
either the whole line or none of it, or at worst a truncated last line (a full disk), which the
reader ignores. Fields: ``input``, ``output``, ``status`` (done, skipped, redone, failed,
interrupted), ``error``, ``seconds``, ``device``, ``host``, ``shard``, ``options_hash``, ``command``,
``finished`` (Unix time).
"""

from __future__ import annotations

import json
import os
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

#: The folder of an output folder that holds the manifests.
STATE_DIR = ".mrirecon"
#: Statuses that mean "this output is there and valid".
DONE_STATUSES = ("done", "skipped", "redone")


def manifest_dir(out_dir: str | Path) -> Path:
    """Where a batch writing into ``out_dir`` keeps its manifests: ``OUT/.mrirecon``."""
    return Path(out_dir) / STATE_DIR


def dataset_manifest_dir(out_dir: str | Path) -> Path:
    """The manifests of a batch whose output folder is a dataset (``subsample``): ``.OUT.mrirecon``
    beside it, because fastMRI's ``SliceDataset`` opens every entry of its folder as HDF5."""
    out_dir = Path(os.path.abspath(out_dir))
    return out_dir.parent / f".{out_dir.name}{STATE_DIR}"


def manifest_dirs(out_dir: str | Path) -> list[Path]:
    """Both places a batch writing into ``out_dir`` may keep its manifests."""
    return [manifest_dir(out_dir), dataset_manifest_dir(out_dir)]


@dataclass
class Manifest:
    """The manifest of one shard of a batch, in ``folder`` (``manifest_dir(OUT)`` or ``dataset_manifest_dir(OUT)``)."""

    folder: Path
    shard_label: str
    command: str
    options_hash: str | None = None
    device: str | None = None
    host: str = field(default_factory=socket.gethostname)

    @property
    def path(self) -> Path:
        return Path(self.folder) / f"manifest-{self.shard_label}.jsonl"

    def record(self, *, input: str, output: str | None, status: str, error: str | None, seconds: float) -> dict:
        """Append one line (one ``write``, then ``fsync``) and return it."""
        line = {
            "input": input, "output": output, "status": status, "error": error, "seconds": round(seconds, 4),
            "device": self.device, "host": self.host, "shard": self.shard_label, "options_hash": self.options_hash,
            "command": self.command, "finished": round(time.time(), 3),
        }
        append_line(self.path, json.dumps(line, default=str))
        return line


def append_line(path: Path, text: str) -> None:
    """Append ``text`` and a newline to ``path`` in a single ``O_APPEND`` write, then ``fsync``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    data = (text.replace("\n", " ") + "\n").encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
    try:
        written = os.write(fd, data)
        if written != len(data):  # a full disk: the reader drops the partial line
            raise OSError(f"{path}: short write to the manifest ({written} of {len(data)} bytes)")
        os.fsync(fd)
    finally:
        os.close(fd)


def read_manifests(out_dir: str | Path) -> list[dict[str, Any]]:
    """Every complete line of every shard's manifest in ``out_dir``, oldest first."""
    records: list[dict[str, Any]] = []
    paths = [p for folder in manifest_dirs(out_dir) if folder.is_dir() for p in sorted(folder.glob("manifest-*.jsonl"))]
    for path in paths:
        with open(path, "rb") as handle:
            for raw in handle:
                try:
                    record = json.loads(raw)
                except ValueError:  # a truncated last line of a killed writer
                    continue
                if isinstance(record, dict) and "input" in record and "status" in record:
                    records.append(record)
    records.sort(key=lambda r: r.get("finished") or 0)
    return records


@dataclass
class BatchStatus:
    """The merged state of a batch: the latest record per input, and what is still pending."""

    latest: dict[str, dict[str, Any]]
    pending: list[str] | None  # None: no inputs given
    records: int

    @property
    def done(self) -> list[dict[str, Any]]:
        return [r for r in self.latest.values() if r["status"] in DONE_STATUSES]

    @property
    def failed(self) -> list[dict[str, Any]]:
        return [r for r in self.latest.values() if r["status"] not in DONE_STATUSES]

    def throughput(self) -> float | None:
        """Files finished per hour over the span of the work recorded (all shards together)."""
        worked = [r for r in self.latest.values() if r["status"] in ("done", "redone")]
        if not worked:
            return None
        begin = min(r["finished"] - r["seconds"] for r in worked)
        end = max(r["finished"] for r in worked)
        return 3600.0 * len(worked) / max(end - begin, 1e-9)

    def slowest(self, n: int = 5) -> list[dict[str, Any]]:
        worked = [r for r in self.latest.values() if r["status"] in ("done", "redone")]
        return sorted(worked, key=lambda r: -r["seconds"])[:n]

    def to_dict(self) -> dict[str, Any]:
        return {
            "done": len(self.done),
            "failed": len(self.failed),
            "pending": None if self.pending is None else len(self.pending),
            "records": self.records,
            "files_per_hour": self.throughput(),
            "slowest": [{"input": r["input"], "seconds": r["seconds"], "host": r["host"]} for r in self.slowest()],
            "failures": [{"input": r["input"], "status": r["status"], "error": r["error"]} for r in self.failed],
            "pending_files": self.pending,
            "shards": sorted({r["shard"] for r in self.latest.values()}),
        }


def batch_status(out_dir: str | Path, inputs: Sequence[Path] | None = None) -> BatchStatus:
    """Merge all shards' manifests of ``out_dir``; ``pending`` = ``inputs`` without a done record."""
    records = read_manifests(out_dir)
    latest: dict[str, dict[str, Any]] = {}
    for record in records:
        latest[_key(record["input"])] = record
    pending: list[str] | None = None
    if inputs is not None:
        pending = []
        for path in inputs:
            record = latest.get(_key(path))
            if record is None or record["status"] not in DONE_STATUSES:
                pending.append(str(path))
    return BatchStatus(latest, pending, len(records))


def _key(path: str | Path) -> str:
    return os.path.realpath(path)


def clean_stale_temporaries(outputs: Iterable[Path]) -> list[Path]:
    """Remove the temporary files (``.NAME.*.tmp``) that killed runs left beside ``outputs``."""
    removed = []
    for out in outputs:
        for tmp in out.parent.glob(f".{out.name}.*.tmp") if out.parent.is_dir() else []:
            try:
                tmp.unlink()
                removed.append(tmp)
            except FileNotFoundError:
                pass
    return removed
