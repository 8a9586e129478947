"""Stopping a batch cleanly on SIGTERM, SIGINT (Ctrl-C) and SIGUSR1.

SLURM sends SIGTERM (``scancel``, preemption) or the signal of ``--signal=B:USR1@120`` before a
time limit. On the first signal the file in progress may finish within ``grace`` seconds; after
that (or at once on a second signal) it is abandoned: ``BatchInterrupted`` is raised inside the
work, the atomic writer removes its temporary file, and nothing half-written is left. The batch
then records the file as ``interrupted`` in the manifest, prints its summary so far and exits
with ``128 + signal number`` (130 for SIGINT, 143 for SIGTERM, 138 for SIGUSR1 on Linux).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
from typing import Iterator

#: The signals a batch stops on.
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGUSR1)
#: Seconds the file in progress may still take after a stop signal.
DEFAULT_GRACE = 30.0


class BatchInterrupted(SystemExit):
    """A stop signal ended the batch; ``code`` is ``128 + signum`` (the process's exit status)."""

    def __init__(self, signum: int):
        super().__init__(128 + signum)
        self.signum = signum

    @property
    def signal_name(self) -> str:
        return signal.Signals(self.signum).name


class StopSignals:
    """Signal handlers for the duration of a batch (see the module docstring).

    ``stop_requested`` is the signal received, if any; between files the batch checks it. While a
    file runs, ``in_file()`` arms the grace timer: when it expires the work is interrupted.
    """

    def __init__(self, grace: float = DEFAULT_GRACE):
        self.grace = grace
        self.stop_requested: int | None = None
        self._working = False
        self._timer_armed = False
        self._previous: dict[int, object] = {}

    def _on_signal(self, signum: int, frame: object) -> None:
        if self.stop_requested is not None and self._working:
            raise BatchInterrupted(self.stop_requested)  # a second signal: abandon the file now
        self.stop_requested = signum
        if self._working:
            if self.grace <= 0:
                raise BatchInterrupted(signum)
            signal.setitimer(signal.ITIMER_REAL, self.grace)
            self._timer_armed = True

    def _on_alarm(self, signum: int, frame: object) -> None:
        self._timer_armed = False
        if self._working and self.stop_requested is not None:
            raise BatchInterrupted(self.stop_requested)

    @contextlib.contextmanager
    def installed(self) -> Iterator["StopSignals"]:
        """Install the handlers (main thread only; elsewhere this is a no-op)."""
        if threading.current_thread() is not threading.main_thread():
            yield self
            return
        for sig in (*STOP_SIGNALS, signal.SIGALRM):
            handler = self._on_alarm if sig == signal.SIGALRM else self._on_signal
            self._previous[sig] = signal.signal(sig, handler)
        try:
            yield self
        finally:
            self._disarm()
            for sig, previous in self._previous.items():
                signal.signal(sig, previous)  # type: ignore[arg-type]
            self._previous.clear()

    @contextlib.contextmanager
    def in_file(self) -> Iterator[None]:
        """Mark a file as in progress: a stop signal now gives it ``grace`` seconds."""
        if self.stop_requested is not None:
            raise BatchInterrupted(self.stop_requested)
        self._working = True
        try:
            yield
        finally:
            self._working = False
            self._disarm()

    def _disarm(self) -> None:
        if self._timer_armed:
            signal.setitimer(signal.ITIMER_REAL, 0)
            self._timer_armed = False


def requeue_job() -> str:
    """``scontrol requeue`` this SLURM job (array task); returns what happened, in one sentence."""
    job = os.environ.get("SLURM_JOB_ID")
    if not job:
        return "--requeue: not in a SLURM job (no SLURM_JOB_ID); nothing requeued"
    try:
        done = subprocess.run(["scontrol", "requeue", job], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"--requeue: scontrol requeue {job} failed: {exc}"
    if done.returncode != 0:
        return f"--requeue: scontrol requeue {job} failed: {done.stderr.strip() or done.returncode}"
    return f"requeued SLURM job {job}"
