"""Raw k-space from ``.npy`` arrays, reordered to fastMRI's axes."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mrirecon.io.errors import InputError, require_finite

#: Axis letters: S slices, C coils, H readout (rows), W phase-encode (columns, masks act here).
AXIS_LETTERS = "SCHW"


def load_npy_kspace(path: str | Path, axes: str | None = None) -> np.ndarray:
    """Load a complex k-space array and return it as ``(S, C, H, W)`` or ``(S, H, W)`` complex64.

    ``axes`` names the file's axis order with the letters S, C, H, W (H and W required), e.g.
    ``SCHW`` (fastMRI multi-coil, the default for 4D), ``SHW`` (single-coil, default for 3D),
    ``CHW`` or ``HWC`` (one slice). Without C the data is single-coil.
    """
    path = Path(path)
    if not path.exists():
        raise InputError(path, "file does not exist")
    if path.is_dir():
        raise InputError(path, "is a folder, not a .npy file")
    if path.stat().st_size == 0:
        raise InputError(path, "is empty (0 bytes)")
    try:
        data = np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise InputError(path, "is not a .npy array file") from exc
    if data.dtype.kind != "c":
        raise InputError(path, f"holds {data.dtype} data; k-space must be complex")
    if axes is None:
        axes = {2: "HW", 3: "SHW", 4: "SCHW"}.get(data.ndim)
        if axes is None:
            raise InputError(path, f"has rank {data.ndim}; expected 2 to 4 axes")
    axes = axes.upper()
    if len(axes) != data.ndim:
        raise InputError(path, f"has {data.ndim} axes but --axes {axes!r} names {len(axes)}")
    if set(axes) - set(AXIS_LETTERS) or len(set(axes)) != len(axes) or not {"H", "W"} <= set(axes):
        raise InputError(path, f"--axes {axes!r} must be distinct letters from S, C, H, W including H and W")
    if data.size == 0:
        raise InputError(path, f"is empty {data.shape}")
    order = [axes.index(a) for a in AXIS_LETTERS if a in axes]
    array = np.array(np.transpose(data, order), dtype=np.complex64, order="C")  # a writable copy
    if "S" not in axes:
        array = array[None]
    require_finite(path, array)
    return array
