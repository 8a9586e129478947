"""Reading HDF5 inputs without leaving the file, and without trusting declared sizes.

HDF5 can make a file read other files: a dataset's raw data may live in an external file
(``external=[("/etc/passwd", 0, n)]``), a name may be an external link to another HDF5 file,
and a virtual dataset maps regions of other files. A shared input must not make the tool read
(and copy into its outputs) any file the user can read, so every dataset read through
``get_dataset`` is checked: reached by hard links or soft links inside the file only, raw data
inside the file, not virtual. Its declared shape must also be plausible for what the file
stores, checked before any array is allocated: a few-kB file declaring 200,000 slices is refused
instead of being read until memory runs out.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import h5py
import numpy as np

from mrirecon.io.errors import InputError

#: Sane upper bounds for fastMRI-like arrays (far above any scanner's), per axis.
MAX_SLICES = 10_000
MAX_COILS = 1_024
MAX_MATRIX = 16_384
#: A compressed dataset may not claim to expand more than this many times its stored bytes.
MAX_COMPRESSION_RATIO = 1_000
_MAX_LINK_HOPS = 8


def open_h5(path: str | os.PathLike) -> h5py.File:
    """Open an HDF5 input read-only; ``InputError`` (one sentence) if it is missing, a folder,
    not HDF5 or unreadable. Falls back to ``locking=False`` where the file system refuses
    HDF5's file locks (NFS, Lustre, read-only mounts)."""
    path = Path(path)
    if not path.exists():
        raise InputError(path, "file does not exist" if not path.is_symlink() else "is a dangling symbolic link")
    if path.is_dir():
        raise InputError(path, "is a directory, not a file")
    try:
        is_h5 = h5py.is_hdf5(path)
    except OSError as exc:
        raise InputError(path, f"cannot be read ({(exc.strerror or str(exc)).lower()})") from exc
    if not is_h5:
        raise InputError(path, "is not an HDF5 file")
    try:
        return h5py.File(path, "r")
    except OSError as exc:
        if "lock" not in str(exc).lower():
            raise InputError(path, f"cannot be opened as HDF5 ({_first_line(exc)})") from exc
    try:
        return h5py.File(path, "r", locking=False)
    except OSError as exc:
        raise InputError(path, f"cannot be opened as HDF5 ({_first_line(exc)})") from exc


def _first_line(exc: BaseException) -> str:
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def _resolve_link(handle: h5py.File, name: str, path: Path) -> str | None:
    """The in-file path ``name`` leads to, following soft links; ``None`` if absent.
    External links, and soft links that dangle or loop, are refused."""
    current = name
    for _ in range(_MAX_LINK_HOPS):
        try:
            link = handle.get(current, getlink=True)
        except (KeyError, ValueError, RuntimeError, OSError):
            link = None
        if link is None:
            if current == name:
                return None
            raise InputError(path, f"'{name}' is a soft link to '{current}', which does not exist")
        if isinstance(link, h5py.ExternalLink):
            raise InputError(
                path, f"'{name}' is an external link to {link.filename}:{link.path}; only data inside the file is read"
            )
        if isinstance(link, h5py.SoftLink):
            current = link.path
            continue
        return current
    raise InputError(path, f"'{name}' is a chain of more than {_MAX_LINK_HOPS} soft links")


def get_dataset(handle: h5py.File, name: str, path: str | os.PathLike) -> h5py.Dataset | None:
    """The dataset ``name`` of an open input, checked to read nothing outside the file and to
    declare no more data than the file holds; ``None`` if there is no such name."""
    path = Path(path)
    target = _resolve_link(handle, name, path)
    if target is None:
        return None
    # parent groups of a nested name could be external links too
    parts = target.strip("/").split("/")
    for depth in range(1, len(parts)):
        _resolve_link(handle, "/" + "/".join(parts[:depth]), path)
    obj = handle[target]
    if not isinstance(obj, h5py.Dataset):
        raise InputError(path, f"'{name}' is a group, not a dataset")
    if obj.is_virtual:
        raise InputError(path, f"'{name}' is a virtual dataset that maps other files; only data inside the file is read")
    if obj.external:
        files = ", ".join(sorted({str(entry[0]) for entry in obj.external}))
        raise InputError(path, f"'{name}' keeps its data in external file(s) ({files}); only data inside the file is read")
    check_plausible(obj, name, path)
    return obj


def check_plausible(dataset: h5py.Dataset, name: str, path: Path) -> None:
    """Refuse a declared shape that the file's stored bytes cannot hold (before any allocation)."""
    shape = tuple(dataset.shape)
    if dataset.dtype.itemsize == 0 or any(n < 0 for n in shape):
        raise InputError(path, f"'{name}' has an unusable type or shape {shape}")
    declared = math.prod(shape) * dataset.dtype.itemsize
    if declared == 0:
        return
    dsid = dataset.id
    plist = dsid.get_create_plist()
    layout = plist.get_layout()
    file_size = path.stat().st_size
    described = f"'{name}' declares {_shape_text(shape)} {dataset.dtype} ({_bytes(declared)})"
    if layout == h5py.h5d.CONTIGUOUS:
        offset = dsid.get_offset()
        if offset is None:
            raise InputError(path, f"{described} but stores none of it")
        if offset + declared > file_size:
            raise InputError(path, f"{described} but the file holds only {_bytes(file_size)}")
    elif layout == h5py.h5d.CHUNKED:
        chunks = dataset.chunks or shape
        expected = math.prod(math.ceil(n / c) for n, c in zip(shape, chunks))
        stored = dsid.get_num_chunks()
        if stored < expected:
            raise InputError(path, f"{described} but stores only {stored} of its {expected} chunks")
        storage = dsid.get_storage_size()
        if storage > file_size or declared > MAX_COMPRESSION_RATIO * max(storage, 1):
            raise InputError(path, f"{described} but stores only {_bytes(storage)} of it")


def check_bounds(shape: tuple[int, ...], name: str, path: Path, axes: str) -> None:
    """Refuse sizes beyond any scanner's (``axes``: one letter per axis, S slices, C coils, H/W)."""
    limits = {"S": ("slices", MAX_SLICES), "C": ("coils", MAX_COILS), "H": ("rows", MAX_MATRIX), "W": ("columns", MAX_MATRIX)}
    for n, axis in zip(shape, axes):
        label, limit = limits[axis]
        if n > limit:
            raise InputError(path, f"'{name}' declares {n} {label}, more than the {limit} this tool accepts")


def read_dataset(handle: h5py.File, name: str, path: str | os.PathLike) -> np.ndarray | None:
    """``get_dataset(...)`` read whole, or ``None`` if absent."""
    dataset = get_dataset(handle, name, path)
    return None if dataset is None else dataset[()]


def _shape_text(shape: tuple[int, ...]) -> str:
    return "(" + ", ".join(str(n) for n in shape) + ")"


def _bytes(n: int) -> str:
    for unit in ("bytes", "kB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n} bytes"
