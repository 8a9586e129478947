"""BART's ``.cfl``/``.hdr`` pair (raw complex64, column-major, plus a text header of dims) and its
single-file ``.ra`` "rawarray" (a 48-byte header, the dims, then the same data).

BART's dimensions (``misc/mri.h``): 0 READ, 1 PHS1, 2 PHS2, 3 COIL, 4 MAPS, ..., 13 SLICE.
fastMRI's ``(S, C, H, W)`` maps to READ = H, PHS1 = W, COIL = C, SLICE = S; a reconstruction
``(S, H, W)`` to READ, PHS1, SLICE. Anything else non-singleton is refused by name.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from mrirecon.io.errors import InputError

BART_DIMS = 16
READ_DIM, PHS1_DIM, PHS2_DIM, COIL_DIM, SLICE_DIM = 0, 1, 2, 3, 13
BART_DIM_NAMES = (
    "READ", "PHS1", "PHS2 (3D)", "COIL", "MAPS", "TE", "COEFF", "COEFF2",
    "ITER", "CSHIFT", "TIME", "TIME2", "LEVEL", "SLICE", "AVG", "BATCH",
)  # fmt: skip


def cfl_base(path: str | Path) -> Path:
    """The common stem of a ``.cfl``/``.hdr`` pair, given either file or the stem itself."""
    path = Path(path)
    return path.with_suffix("") if path.suffix.lower() in (".cfl", ".hdr") else path


def looks_like_cfl(path: Path) -> bool:
    """True if ``path`` is one file of a BART pair (by suffix, or a ``# Dimensions`` header beside it)."""
    base = cfl_base(path)
    hdr = base.with_suffix(".hdr")
    if not hdr.is_file():
        return path.suffix.lower() in (".cfl", ".hdr")
    with open(hdr, "rb") as handle:
        return handle.read(12).startswith(b"# Dimensions")


def read_cfl_dims(path: str | Path) -> tuple[int, ...]:
    """The dimensions a ``.hdr`` declares (trailing ones kept), checked against the ``.cfl`` size."""
    base = cfl_base(path)
    hdr, cfl = base.with_suffix(".hdr"), base.with_suffix(".cfl")
    if not hdr.is_file():
        raise InputError(hdr, "does not exist (a BART .cfl needs its .hdr)")
    if not cfl.is_file():
        raise InputError(cfl, "does not exist (a BART .hdr needs its .cfl)")
    lines = hdr.read_text(errors="replace").splitlines()
    try:
        start = lines.index("# Dimensions")
        dims = tuple(int(v) for v in lines[start + 1].split())
    except (ValueError, IndexError):
        raise InputError(hdr, "is not a BART header (no '# Dimensions' line followed by integers)") from None
    if not dims or any(d < 1 for d in dims) or len(dims) > BART_DIMS:
        raise InputError(hdr, f"declares dimensions {list(dims)}; each must be >= 1, at most {BART_DIMS} of them")
    expected = int(np.prod(dims, dtype=np.int64)) * 8
    actual = os.path.getsize(cfl)
    if actual != expected:
        raise InputError(cfl, f"holds {actual} bytes but its .hdr dimensions {list(dims)} need {expected}")
    return dims


def read_cfl(path: str | Path) -> np.ndarray:
    """The array of a BART pair, shaped as its header says (column-major, complex64)."""
    dims = read_cfl_dims(path)
    data = np.fromfile(cfl_base(path).with_suffix(".cfl"), dtype=np.complex64)
    return data.reshape(dims, order="F")


def cfl_bytes(array: np.ndarray) -> tuple[bytes, bytes]:
    """``(header, data)`` bytes of ``array`` as a BART pair (dims padded to at least 5, as BART writes)."""
    array = np.asarray(array, dtype=np.complex64)
    dims = list(array.shape) + [1] * max(0, 5 - array.ndim)
    header = "# Dimensions\n" + " ".join(str(d) for d in dims) + "\n"
    return header.encode(), np.asfortranarray(array).tobytes(order="F")


def fastmri_to_bart(array: np.ndarray) -> np.ndarray:
    """fastMRI ``(S, C, H, W)`` k-space or ``(S, H, W)`` images -> BART's 16-dim layout."""
    out_dims = [1] * BART_DIMS
    if array.ndim == 4:
        s, c, h, w = array.shape
        out_dims[READ_DIM], out_dims[PHS1_DIM], out_dims[COIL_DIM], out_dims[SLICE_DIM] = h, w, c, s
        moved = np.transpose(array, (2, 3, 1, 0))  # H, W, C, S
    elif array.ndim == 3:
        s, h, w = array.shape
        out_dims[READ_DIM], out_dims[PHS1_DIM], out_dims[SLICE_DIM] = h, w, s
        moved = np.transpose(array, (1, 2, 0))  # H, W, S
    else:
        raise ValueError(f"expected (S, C, H, W) or (S, H, W), got {array.shape}")
    # the moved axes are in increasing BART order, so inserting singleton axes moves no element
    return np.reshape(moved, out_dims)


def bart_to_fastmri(path: Path, array: np.ndarray) -> np.ndarray:
    """A BART k-space array -> fastMRI ``(S, C, H, W)``, or ``(S, H, W)`` when it has one coil."""
    dims = list(array.shape) + [1] * (BART_DIMS - array.ndim)
    allowed = {READ_DIM, PHS1_DIM, COIL_DIM, SLICE_DIM}
    for axis, size in enumerate(dims):
        if size > 1 and axis not in allowed:
            raise InputError(
                path, f"has {size} entries along BART dimension {axis} ({BART_DIM_NAMES[axis]}); not supported"
            )
    h, w, c, s = dims[READ_DIM], dims[PHS1_DIM], dims[COIL_DIM], dims[SLICE_DIM]
    squeezed = np.reshape(array, (h, w, c, s))  # dropping singleton axes moves no element
    kspace = np.ascontiguousarray(np.transpose(squeezed, (3, 2, 0, 1)))  # S, C, H, W
    return kspace if c > 1 else kspace[:, 0]


RA_MAGIC = b"rawarray"
RA_COMPLEX_FLOAT = 4  # BART's eltype for complex float (the only type it writes)
_RA_FIELDS = ("flags", "eltype", "elbyte", "size", "ndims")


def looks_like_ra(path: Path) -> bool:
    """True if ``path`` starts with the rawarray magic."""
    with open(path, "rb") as handle:
        return handle.read(8) == RA_MAGIC


def read_ra(path: str | Path) -> np.ndarray:
    """The complex64 array of a BART ``.ra`` file, checked against its size before reading it."""
    path = Path(path)
    total = os.path.getsize(path)
    with open(path, "rb") as handle:
        head = handle.read(8 + 8 * len(_RA_FIELDS))
        if len(head) < 48 or head[:8] != RA_MAGIC:
            raise InputError(path, "is not a BART .ra file (no 'rawarray' header)")
        fields = dict(zip(_RA_FIELDS, np.frombuffer(head[8:], dtype="<u8").tolist()))
        if fields["flags"] != 0 or fields["eltype"] != RA_COMPLEX_FLOAT or fields["elbyte"] != 8:
            raise InputError(path, f"holds {fields}; only little-endian uncompressed complex float is supported")
        if not 1 <= fields["ndims"] <= BART_DIMS:
            raise InputError(path, f"declares {fields['ndims']} dimensions; expected 1 to {BART_DIMS}")
        dims = tuple(np.frombuffer(handle.read(8 * fields["ndims"]), dtype="<u8").tolist())
        expected = int(np.prod(dims, dtype=np.int64)) * 8 if dims and min(dims) > 0 else -1
        if len(dims) != fields["ndims"] or expected != fields["size"] or total < 48 + 8 * len(dims) + expected:
            raise InputError(path, f"declares dimensions {list(dims)} ({fields['size']} bytes) that its {total} bytes do not hold")
        data = np.frombuffer(handle.read(expected), dtype="<c8")
    return data.reshape(dims, order="F")


def ra_bytes(array: np.ndarray) -> bytes:
    """``array`` as a BART ``.ra`` file."""
    array = np.asarray(array, dtype=np.complex64)
    dims = list(array.shape)
    head = np.array([0, RA_COMPLEX_FLOAT, 8, array.size * 8, len(dims), *dims], dtype="<u8").tobytes()
    return RA_MAGIC + head + np.asfortranarray(array).tobytes(order="F")
