"""How many DataLoader workers a process gets: what the machine has, capped by the config."""

from __future__ import annotations

import os


def usable_cpus() -> int:
    """CPUs this process may run on (its affinity mask, e.g. a SLURM or container limit)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def loader_workers(requested: int, processes_per_node: int | None = None) -> tuple[int, str | None]:
    """``(workers, warning)``: ``requested`` workers, but no more than this process's share of the
    CPUs (the CPUs over ``processes_per_node``, torchrun's ``LOCAL_WORLD_SIZE`` by default);
    ``warning`` says so when the request was cut, else ``None``."""
    if processes_per_node is None:
        processes_per_node = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
    share = max(usable_cpus() // max(processes_per_node, 1), 1)
    if requested <= share:
        return requested, None
    per = "" if processes_per_node == 1 else f" per process ({processes_per_node} processes)"
    return share, (f"workers: {requested} requested but this machine has {share} CPU(s){per} for them; "
                   f"using {share} DataLoader workers")


#: Most DataLoader workers a default gives a CUDA process (reading HDF5 slices needs few).
MAX_DEFAULT_WORKERS = 8


def default_workers(device_type: str, processes_per_node: int | None = None) -> int:
    """Workers when the config names none: on CUDA this process's share of the CPUs (at most
    ``MAX_DEFAULT_WORKERS``), on a CPU 0 (the training competes with workers for the cores)."""
    if device_type != "cuda":
        return 0
    if processes_per_node is None:
        processes_per_node = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
    return max(1, min(MAX_DEFAULT_WORKERS, usable_cpus() // max(processes_per_node, 1)))
