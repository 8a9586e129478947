"""Splitting a batch over the processes of a cluster job: SLURM job arrays and torchrun ranks.

A shard is ``index`` of ``count`` (0-based). It comes from ``--shard I/N``, else from the SLURM
array (``SLURM_ARRAY_TASK_ID - SLURM_ARRAY_TASK_MIN``, divided by ``SLURM_ARRAY_TASK_STEP``, of
``SLURM_ARRAY_TASK_COUNT``); under torchrun each of those shards is split again over the ranks
(``RANK`` of ``WORLD_SIZE``), giving array task x rank shards in all.

Files are assigned by size, largest first, each to the shard with the least bytes so far (ties:
the lower shard, then the sorted input order), so shards finish together. The assignment depends
only on the sorted inputs and their sizes: every shard computes the same split, every file goes to
exactly one shard, whatever the count.
"""

from __future__ import annotations

import heapq
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence


@dataclass(frozen=True)
class Shard:
    """Shard ``index`` of ``count`` (0-based)."""

    index: int = 0
    count: int = 1

    def __post_init__(self) -> None:
        if self.count < 1 or not 0 <= self.index < self.count:
            raise ValueError(f"shard {self.index}/{self.count} is out of range: I/N needs 0 <= I < N")

    @property
    def label(self) -> str:
        """The shard's name in file names, e.g. ``2of8``."""
        return f"{self.index}of{self.count}"

    def split(self, inner: "Shard") -> "Shard":
        """Shard ``inner`` of this shard (e.g. a torchrun rank inside a SLURM array task)."""
        return Shard(self.index * inner.count + inner.index, self.count * inner.count)

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def parse_shard(text: str) -> Shard:
    """``"I/N"`` -> ``Shard(I, N)``; ``ValueError`` with the expected form otherwise."""
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text)
    if not match:
        raise ValueError(f"--shard must look like I/N with 0 <= I < N (e.g. 0/4), got {text!r}")
    return Shard(int(match.group(1)), int(match.group(2)))


def _env_int(env: Mapping[str, str], key: str, default: int) -> int:
    value = env.get(key, "")
    try:
        return int(value) if value.strip() else default
    except ValueError as exc:
        raise ValueError(f"environment variable {key}={value!r} is not an integer") from exc


def array_shard(env: Mapping[str, str]) -> Shard | None:
    """This SLURM array task's shard, or ``None`` outside a job array."""
    if not env.get("SLURM_ARRAY_TASK_ID", "").strip():
        return None
    task = _env_int(env, "SLURM_ARRAY_TASK_ID", 0)
    low = _env_int(env, "SLURM_ARRAY_TASK_MIN", 0)
    step = max(1, _env_int(env, "SLURM_ARRAY_TASK_STEP", 1))
    count = _env_int(env, "SLURM_ARRAY_TASK_COUNT", 0)
    if count < 1:
        high = _env_int(env, "SLURM_ARRAY_TASK_MAX", task)
        count = (high - low) // step + 1
    return Shard((task - low) // step, count)


def rank_shard(env: Mapping[str, str]) -> Shard | None:
    """This torchrun rank's shard, or ``None`` outside torchrun."""
    world = _env_int(env, "WORLD_SIZE", 1)
    if world <= 1:
        return None
    return Shard(_env_int(env, "RANK", 0), world)


def resolve_shard(explicit: Shard | str | None, env: Mapping[str, str] | None = None) -> Shard:
    """The shard of this process: ``explicit`` (``--shard``) or the SLURM array, split over torchrun ranks."""
    env = os.environ if env is None else env
    outer = parse_shard(explicit) if isinstance(explicit, str) else explicit
    if outer is None:
        outer = array_shard(env) or Shard()
    inner = rank_shard(env)
    return outer if inner is None else outer.split(inner)


def file_size(path: Path) -> int:
    """Bytes of ``path``; 0 if it cannot be read (it then fails in whichever shard gets it)."""
    try:
        return path.stat().st_size
    except OSError:
        return 0


def assign(sizes: Sequence[int], count: int) -> list[int]:
    """The shard of each item: largest first, to the shard with the fewest bytes so far."""
    owner = [0] * len(sizes)
    heap = [(0, shard) for shard in range(count)]
    for item in sorted(range(len(sizes)), key=lambda i: (-sizes[i], i)):
        load, shard = heapq.heappop(heap)
        owner[item] = shard
        heapq.heappush(heap, (load + sizes[item], shard))
    return owner


def shard_files(files: Sequence[Path], shard: Shard, sizes: Sequence[int] | None = None) -> list[Path]:
    """The files of ``shard``, in input order (``sizes`` defaults to the files' sizes on disk)."""
    if shard.count == 1:
        return list(files)
    sizes = [file_size(f) for f in files] if sizes is None else sizes
    owner = assign(sizes, shard.count)
    return [f for f, o in zip(files, owner) if o == shard.index]
