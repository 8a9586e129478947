"""The one atomic writer: every output file (HDF5, JSON, text, PNG, checkpoint) goes through here.

A file is written under a hidden temporary name in its own folder (``.NAME.XXXXXXXX.tmp``)
and renamed into place only when complete, so a reader sees the old file or the new one,
never half of one. On any failure, ``KeyboardInterrupt`` or other exception the temporary file
is removed. Rules the writer enforces:

- an existing target is kept unless ``overwrite``; without it the rename is a hard link
  (``os.link``), which fails if the target appeared meanwhile (two writers, one name: one
  wins, the other gets ``OutputExistsError``, neither file is half-written);
- the final mode follows the umask like ``open()`` does (0644 under umask 022), not
  ``mkstemp``'s 0600, so group members of a cluster project can read the results;
- disk errors (``ENOSPC``, ``EDQUOT``, ``EROFS``, ``EACCES``, ...) become ``OutputError``:
  one sentence naming the output, from the ``OSError``, h5py's error text or torch's.

API (small on purpose)::

    with atomic_path(path, overwrite) as tmp: ...      # write tmp any way you like
    with atomic_h5(path, overwrite) as handle: ...      # an open h5py.File
    write_text_atomic(path, text, overwrite=...)
    write_bytes_atomic(path, data, overwrite=...)
    torch_save_atomic(obj, path, overwrite=...)         # torch.save, serialised in memory first

A signal handler that ends the process without unwinding the stack can call
``remove_temporaries()`` to delete the temporary files of writes still in progress; one that
unwinds calls ``note_interrupt(signum)`` first, so that a write whose exception Python swallowed
(h5py's cleanup callbacks) is still removed, not published.
"""

from __future__ import annotations

import contextlib
import errno
import io
import os
import re
import tempfile
import threading
from pathlib import Path
from typing import Any, Iterator

from mrirecon.io.errors import OutputError, OutputExistsError

#: errno -> what to tell the user; any of these while writing becomes ``OutputError``.
DISK_ERRORS = {
    errno.ENOSPC: "no space left on the device",
    errno.EDQUOT: "disk quota exceeded",
    errno.EROFS: "the file system is read-only",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
    errno.EFBIG: "file too large for the file system",
    errno.EIO: "input/output error on the device",
    errno.ENOTDIR: "a part of the path is not a folder",
    errno.EISDIR: "is a folder, not a file",
    errno.ENAMETOOLONG: "the file name is too long",
}
#: The errors only a write can cause: the ones translated when raised by the caller's own code in
#: the ``with`` body (which may also be reading inputs, whose EACCES/ENOENT are not output errors).
WRITE_ONLY_ERRORS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS}
_ERRNO_IN_TEXT = re.compile(r"errno\s*=\s*(\d+)")
_TEXT_ERRORS = (("No space left", errno.ENOSPC), ("Disk quota", errno.EDQUOT), ("Read-only file system", errno.EROFS))

_live: set[Path] = set()
_live_lock = threading.Lock()
#: A stop signal the process received (set by the CLI's handler): no file is published after it.
_interrupt: int | None = None


def note_interrupt(signum: int) -> None:
    """Record that a stop signal arrived. Python may swallow the exception a signal handler raises
    (inside a ``__del__`` or weakref callback); a write that survived it is then not published."""
    global _interrupt
    _interrupt = signum


def disk_errno(exc: BaseException) -> int | None:
    """The errno behind a write failure, from ``OSError.errno`` or the text h5py/torch put it in."""
    code = getattr(exc, "errno", None)
    if isinstance(code, int) and code in DISK_ERRORS:
        return code
    text = str(exc)
    match = _ERRNO_IN_TEXT.search(text)
    if match and int(match.group(1)) in DISK_ERRORS:
        return int(match.group(1))
    for needle, code in _TEXT_ERRORS:
        if needle in text:
            return code
    return None


def output_error(path: str | os.PathLike, exc: BaseException, only: set[int] | None = None) -> OutputError | None:
    """``OutputError`` for a disk-level write failure of ``path`` (of an errno in ``only``, if
    given), or ``None`` if it is not one."""
    code = disk_errno(exc)
    if code is None or (only is not None and code not in only):
        return None
    return OutputError(path, f"cannot be written: {DISK_ERRORS[code]}")


def current_umask() -> int:
    """The process umask, read without changing it where /proc allows (thread-safe)."""
    with contextlib.suppress(OSError, ValueError):
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def check_writable(path: str | os.PathLike, overwrite: bool) -> Path:
    """``path`` as a ``Path``; ``OutputExistsError`` if something is there and not ``overwrite``,
    ``OutputError`` if it is a folder (never replaced, whatever the flags)."""
    path = Path(path)
    if path.is_dir():
        raise OutputError(path, "is a folder, not a file")
    if os.path.lexists(path) and not overwrite:
        raise OutputExistsError(path)
    return path


def remove_temporaries() -> None:
    """Delete the temporary files of every write in progress (for signal handlers)."""
    with _live_lock:
        paths = list(_live)
    for tmp in paths:
        with contextlib.suppress(OSError):
            os.unlink(tmp)


def _publish(tmp: Path, path: Path, overwrite: bool) -> None:
    """Move the finished ``tmp`` onto ``path``: replace if ``overwrite``, else never clobber."""
    if overwrite:
        os.replace(tmp, path)
        return
    try:
        os.link(tmp, path)
    except FileExistsError:
        raise OutputExistsError(path) from None
    except OSError as exc:  # file systems without hard links: check, then rename
        if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK):
            raise
        if os.path.lexists(path):
            raise OutputExistsError(path) from None
        os.replace(tmp, path)
        return
    os.unlink(tmp)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary ``Path`` beside ``path``; on success it becomes ``path`` atomically.

    The folder is created if missing. Raises ``OutputExistsError`` (before anything is written,
    and again at the end if the file appeared meanwhile) unless ``overwrite``; ``OutputError``
    for disk-level failures. The temporary file is removed on every failure.
    """
    path = check_writable(path, overwrite)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise (output_error(path, exc) or exc) from exc
    os.close(fd)
    tmp = Path(name)
    with _live_lock:
        _live.add(tmp)
    in_body = True
    try:
        yield tmp
        in_body = False
        if _interrupt is not None:
            raise KeyboardInterrupt(f"signal {_interrupt} arrived during the write of {path}")
        os.chmod(tmp, 0o666 & ~current_umask())
        _sync(tmp)
        _publish(tmp, path, overwrite)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(exc, Exception) and not isinstance(exc, OutputError):
            error = output_error(path, exc, WRITE_ONLY_ERRORS if in_body else None)
            if error is not None:
                raise error from exc
        raise
    finally:
        with _live_lock:
            _live.discard(tmp)


def _sync(tmp: Path) -> None:
    """Flush the file's data to the device before the rename makes it visible."""
    fd = os.open(tmp, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_h5(path: str | os.PathLike, overwrite: bool = False) -> Iterator[Any]:
    """An ``h5py.File`` open for writing under a temporary name, renamed to ``path`` on success."""
    import h5py

    with atomic_path(path, overwrite) as tmp:
        with h5py.File(tmp, "w") as handle:
            yield handle


def write_bytes_atomic(path: str | os.PathLike, data: bytes, *, overwrite: bool = False) -> Path:
    """Write ``data`` to ``path`` atomically; returns ``path``."""
    with atomic_path(path, overwrite) as tmp:
        with open(tmp, "wb") as handle:
            handle.write(data)
    return Path(path)


def write_text_atomic(path: str | os.PathLike, text: str, *, overwrite: bool = False) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically; returns ``path``."""
    return write_bytes_atomic(path, text.encode("utf-8"), overwrite=overwrite)


def torch_save_atomic(obj: Any, path: str | os.PathLike, *, overwrite: bool = False) -> Path:
    """``torch.save(obj)`` to ``path`` atomically. The bytes are built in memory first, so a full
    disk is a plain ``OSError`` (then ``OutputError``), not torch's "enforce fail" RuntimeError."""
    import torch

    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return write_bytes_atomic(path, buffer.getvalue(), overwrite=overwrite)
