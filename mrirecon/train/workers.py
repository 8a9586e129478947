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
