"""Opening HDF5 files for reading on shared filesystems.

HDF5 (1.10+) locks a file it opens; on NFS, Lustre or GPFS mounts without lock support that fails
("unable to lock file"), and readers in a cluster job then fail on every file. A file opened for
reading is retried without locking (h5py's ``locking=False``, the same as
``HDF5_USE_FILE_LOCKING=FALSE``); writes are never unlocked.
"""

from __future__ import annotations

import os

import h5py


def _is_lock_failure(exc: OSError) -> bool:
    text = str(exc).lower()
    return "lock" in text


def open_h5_read(path: str | os.PathLike) -> h5py.File:
    """``h5py.File(path, "r")``, retried without file locking when the filesystem cannot lock."""
    try:
        return h5py.File(path, "r")
    except OSError as exc:
        if not _is_lock_failure(exc):
            raise
        return h5py.File(path, "r", locking=False)
