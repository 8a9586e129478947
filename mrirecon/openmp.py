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

Training is the exception: a small network's step is thousands of short parallel regions, and
with threads that sleep at once each region pays a wake-up. ``train`` on the demo's VarNet
(``configs/varnet_demo.yaml``, 2 threads, 2 epochs) took 60.7 s wall with ``PASSIVE``, 33.9 s
with 1 thread, 30.8 s with ``ACTIVE`` and 24.3 s with a short spin, ``GOMP_SPINCOUNT=100000``
(idle threads spin that many iterations, then sleep), which is what ``train`` gets
(``SPIN_COMMANDS``). ``cs-recon`` on a 10-slice knee volume was level under both (within the
machine's noise), but keeps ``PASSIVE``, measured on a loaded machine.
"""

from __future__ import annotations

import os
import sys
from typing import Sequence

#: The policy used when ``OMP_WAIT_POLICY`` is not set.
DEFAULT_WAIT_POLICY = "PASSIVE"
#: Commands that get a short spin (``SPIN_COUNT``) instead (see the module docstring).
SPIN_COMMANDS = ("train",)
SPIN_COUNT = "100000"
#: The variables this module set in this process (a child process of another command should not
#: inherit them: it chooses its own).
SET_HERE: set[str] = set()


def command_name(argv: Sequence[str]) -> str | None:
    """The subcommand of a ``mrirecon`` command line (its first argument that is not an option)."""
    return next((arg for arg in argv[1:] if not arg.startswith("-")), None)


def prefer_passive_wait(argv: Sequence[str] | None = None) -> str | None:
    """Unless ``OMP_WAIT_POLICY`` or ``GOMP_SPINCOUNT`` is set: ``GOMP_SPINCOUNT=SPIN_COUNT`` for
    ``SPIN_COMMANDS``, else ``OMP_WAIT_POLICY=DEFAULT_WAIT_POLICY``. Returns the policy in force
    (``None``: OpenMP's own default, or the spin count decides)."""
    if "GOMP_SPINCOUNT" not in os.environ and "OMP_WAIT_POLICY" not in os.environ:
        if command_name(sys.argv if argv is None else argv) in SPIN_COMMANDS:
            os.environ["GOMP_SPINCOUNT"] = SPIN_COUNT
            SET_HERE.add("GOMP_SPINCOUNT")
        else:
            os.environ["OMP_WAIT_POLICY"] = DEFAULT_WAIT_POLICY
            SET_HERE.add("OMP_WAIT_POLICY")
    return os.environ.get("OMP_WAIT_POLICY")


prefer_passive_wait()
