"""OpenMP's wait policy for the command line, set before torch loads its thread pool.

torch's CPU ops (and MKL's FFT and LAPACK) run on GNU OpenMP, whose idle threads spin for a
while after every parallel region before they sleep. On a CPU shared with other processes the
spinning threads take cores from the working ones: ``cs-recon`` on a knee volume with 2 threads
used twice the CPU time of 1 thread and ran ~2x longer in wall time on this project's loaded
2-core machine, and with ``OMP_WAIT_POLICY=PASSIVE`` (idle threads sleep at once) the same as 1
thread (``scripts/bench_cs.py --knee-only --threads 2``). Outputs are unchanged (the policy
decides only how threads wait). A policy the user set is kept, and so is GNU OpenMP's own
``GOMP_SPINCOUNT`` (which then decides); the variables are read once, when the OpenMP runtime
loads, so this module must be imported before torch (``mrirecon.cli`` does).
"""

from __future__ import annotations

import os

#: The policy used when ``OMP_WAIT_POLICY`` is not set.
DEFAULT_WAIT_POLICY = "PASSIVE"


def prefer_passive_wait() -> str | None:
    """Set ``OMP_WAIT_POLICY`` to ``DEFAULT_WAIT_POLICY`` unless it or ``GOMP_SPINCOUNT`` is set;
    return the policy in force (``None``: OpenMP's own default)."""
    if "GOMP_SPINCOUNT" not in os.environ:
        os.environ.setdefault("OMP_WAIT_POLICY", DEFAULT_WAIT_POLICY)
    return os.environ.get("OMP_WAIT_POLICY")


prefer_passive_wait()
