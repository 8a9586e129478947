"""Which raw format a file is, from its content (the suffix only breaks ties)."""

from __future__ import annotations

from pathlib import Path

import h5py

from mrirecon.io.cfl import RA_MAGIC, cfl_base, looks_like_cfl
from mrirecon.io.errors import InputError
from mrirecon.io.ismrmrd_h5 import is_ismrmrd
from mrirecon.io.twix import looks_like_twix

#: Formats ``convert`` reads.
INPUT_FORMATS = ("npy", "twix", "ismrmrd", "cfl", "ra")
NPY_MAGIC = b"\x93NUMPY"


def input_files(path: Path, fmt: str) -> list[Path]:
    """The files an input consists of (a BART pair is two)."""
    if fmt == "cfl":
        base = cfl_base(path)
        return [base.with_suffix(".cfl"), base.with_suffix(".hdr")]
    return [path]


def detect_format(path: Path) -> str:
    """``npy``, ``twix``, ``ismrmrd``, ``cfl`` or ``ra``; ``InputError`` naming the file if none fits."""
    if cfl_base(path) != path or not path.exists():
        if looks_like_cfl(path):
            return "cfl"
    if not path.exists():
        raise InputError(path, "file does not exist")
    if path.is_dir():
        raise InputError(path, "is a folder, not a file")
    if path.stat().st_size == 0:
        raise InputError(path, "is empty (0 bytes)")
    with open(path, "rb") as handle:
        head = handle.read(8)
    if head.startswith(RA_MAGIC):
        return "ra"
    if head.startswith(NPY_MAGIC) or path.suffix.lower() == ".npy":
        return "npy"  # a damaged .npy gets the .npy reader's sentence
    if head.startswith(b"\x89HDF"):
        try:
            with h5py.File(path, "r") as handle:
                if is_ismrmrd(handle):
                    return "ismrmrd"
                if "kspace" in handle:
                    raise InputError(path, "is already a fastMRI file")
        except OSError as exc:
            raise InputError(path, f"cannot be opened as HDF5 ({exc})") from exc
        raise InputError(path, "is an HDF5 file but neither ISMRMRD (/dataset) nor fastMRI")
    if looks_like_twix(path):
        return "twix"
    raise InputError(path, "is not a format convert reads (.npy, Siemens twix, ISMRMRD, BART .cfl or .ra); try --format")
