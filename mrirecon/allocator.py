"""glibc malloc settings for the command line: large tensors reuse freed memory instead of new pages.

torch allocates CPU tensors with ``malloc``. glibc serves blocks above its mmap threshold (at most
32 MB, dynamically) with a fresh ``mmap`` and gives them back with ``munmap`` when freed, so
every coil-sized temporary of an iteration is new memory the kernel must fault in and zero page
by page. On a 35-slice knee volume (``cs-recon``, 1 thread) that was 8.9 million minor page faults
and 17 s of system time in a 60 s run. With the threshold raised and freed memory kept for
reuse (``keep_freed_memory``) it was 0.8 million faults and 2 s: 28% less wall time, for 34% more
peak resident memory (2.7 -> 3.6 GB). Outputs are unchanged (only where memory comes from changes).
Measured by ``scripts/bench_malloc.py``. The price is memory: freed blocks stay in the process,
and torch's 64-byte-aligned allocations leave holes the next block of the same size cannot
reuse, so a loop allocating one block size settles at several such blocks (a 64 MB block
repeated: about 450 MB more resident) before it stops faulting.

Skipped when the user tunes malloc (``GLIBC_TUNABLES``, ``MALLOC_*_`` variables), when
``MRIRECON_KEEP_FREED_MEMORY=0``, and off glibc.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os

#: mallopt parameters (glibc's malloc.h).
M_TRIM_THRESHOLD = -1
M_TOP_PAD = -2
M_MMAP_THRESHOLD = -3
#: Blocks up to this size come from the heap (mallopt takes an int: 2 GB - 1 is the most).
MMAP_THRESHOLD = 2**31 - 1
#: Free memory at the heap's top kept instead of returned to the system.
TRIM_THRESHOLD = 2**31 - 1
#: Extra memory requested with each heap growth (fewer, larger growths).
TOP_PAD = 1 << 28
#: Set to 0 to keep glibc's defaults.
ENV_SWITCH = "MRIRECON_KEEP_FREED_MEMORY"


def user_tunes_malloc(environ: dict[str, str] | os._Environ = os.environ) -> bool:
    """True when the environment already tunes glibc's malloc or switches this off."""
    if environ.get(ENV_SWITCH, "1").strip() in ("0", "false", "no", "off"):
        return True
    return "glibc.malloc" in environ.get("GLIBC_TUNABLES", "") or any(
        key.startswith("MALLOC_") and key.endswith("_") for key in environ
    )


def keep_freed_memory() -> bool:
    """Raise glibc's mmap threshold and trim threshold (see the module docstring); True if set."""
    if user_tunes_malloc():
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (musl, macOS, Windows)
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    return all(
        mallopt(param, value) == 1
        for param, value in ((M_MMAP_THRESHOLD, MMAP_THRESHOLD), (M_TRIM_THRESHOLD, TRIM_THRESHOLD), (M_TOP_PAD, TOP_PAD))
    )
