"""Errors for bad input and failed output: one sentence, naming the file."""

from __future__ import annotations

from pathlib import Path

import numpy as np


class InputError(Exception):
    """A file (or option) that cannot be used; the message is one sentence naming the file."""

    def __init__(self, path: str | Path | None, problem: str):
        self.path = None if path is None else Path(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}" if self.path is not None else problem)


class OutputExistsError(InputError):
    """The output file exists and ``overwrite`` was not given."""

    def __init__(self, path: str | Path):
        super().__init__(path, "output exists; pass --overwrite to replace it")


class OutputError(InputError):
    """An output that could not be written (full disk, quota, read-only, permissions, a folder
    in the way); nothing was left behind. A failed file (exit 1), not bad input."""


def require_finite(path: str | Path, samples: np.ndarray, problem: str = "has NaN or Inf values") -> None:
    """Raise ``InputError(path, problem)`` if complex64 or float ``samples`` hold a NaN or an Inf."""
    values = samples.view(np.float32) if samples.dtype == np.complex64 else samples
    if not np.isfinite(values).all():
        raise InputError(path, problem)
