"""fastMRI HDF5 volumes: lazy validated reading, atomic writing."""

from __future__ import annotations

import contextlib
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Mapping

import h5py
import numpy as np

from mrirecon.io.errors import InputError, OutputExistsError
from mrirecon.io.h5open import open_h5_read
from mrirecon.io.header import Header, HeaderError, parse_header

TARGET_KEYS = {"multicoil": "reconstruction_rss", "singlecoil": "reconstruction_esc"}
#: fastMRI's knee recon size, used when a header cannot be parsed and no target gives the size.
FALLBACK_RECON_SIZE = (320, 320)


@dataclass
class Volume:
    """An open fastMRI file. Datasets are read on demand, slice ranges at a time."""

    path: Path
    handle: h5py.File
    header: Header
    header_xml: bytes | None
    attrs: dict[str, Any]
    mask: np.ndarray | None
    warnings: list[str] = field(default_factory=list)

    # --- shape -------------------------------------------------------------------------
    @property
    def kspace_shape(self) -> tuple[int, ...]:
        return tuple(self.handle["kspace"].shape)

    @property
    def multicoil(self) -> bool:
        return len(self.kspace_shape) == 4

    @property
    def challenge(self) -> str:
        return "multicoil" if self.multicoil else "singlecoil"

    @property
    def num_slices(self) -> int:
        return self.kspace_shape[0]

    @property
    def num_coils(self) -> int:
        return self.kspace_shape[1] if self.multicoil else 1

    @property
    def num_cols(self) -> int:
        return self.kspace_shape[-1]

    @property
    def padding(self) -> tuple[int, int]:
        return self.header.padding

    @property
    def target_key(self) -> str | None:
        """The name of the fully sampled target dataset, if the file has one."""
        key = TARGET_KEYS[self.challenge]
        if key in self.handle:
            return key
        other = TARGET_KEYS["singlecoil" if self.multicoil else "multicoil"]
        return other if other in self.handle else None

    @property
    def is_undersampled(self) -> bool:
        """Test-style file: k-space already undersampled, with a ``mask``."""
        return self.mask is not None

    @property
    def recon_crop(self) -> tuple[int, int]:
        return self.header.crop

    # --- reading -----------------------------------------------------------------------
    def read_kspace(self, start: int = 0, stop: int | None = None) -> np.ndarray:
        """k-space slices ``[start:stop]`` as complex64, checked for NaN/Inf."""
        stop = self.num_slices if stop is None else stop
        data = self.handle["kspace"][start:stop]
        if data.dtype != np.complex64:
            data = data.astype(np.complex64)
        if not np.isfinite(data.view(np.float32)).all():
            raise InputError(self.path, f"kspace has NaN or Inf values in slices {start}..{stop - 1}")
        return data

    def read_slice(self, index: int) -> np.ndarray:
        """One k-space slice (reads only that slice from disk)."""
        if not 0 <= index < self.num_slices:
            raise IndexError(f"slice {index} out of range 0..{self.num_slices - 1}")
        return self.read_kspace(index, index + 1)[0]

    def read_target(self, start: int = 0, stop: int | None = None) -> np.ndarray | None:
        """The fully sampled target ``[start:stop]`` (float32) or ``None`` if the file has none."""
        key = self.target_key
        if key is None:
            return None
        return np.asarray(self.handle[key][start:stop], dtype=np.float32)

    def close(self) -> None:
        self.handle.close()

    def __enter__(self) -> "Volume":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _fallback_header(path: Path, handle: h5py.File, shape: tuple[int, ...], reason: str) -> tuple[Header, str]:
    width = shape[-1]
    recon = None
    for key in TARGET_KEYS.values():
        if key in handle and handle[key].ndim == 3:
            recon = tuple(handle[key].shape[-2:])
            break
    if recon is None:
        recon = (min(FALLBACK_RECON_SIZE[0], shape[-2]), min(FALLBACK_RECON_SIZE[1], width))
    header = Header(
        encoded_size=(shape[-2], width, 1),
        recon_size=(recon[0], recon[1], 1),
        enc_limits_center=width // 2,
        enc_limits_max=width,
    )
    msg = (
        f"{path}: {reason}; assuming no zero-padded columns and a {recon[0]}x{recon[1]} "
        "reconstruction size"
    )
    return header, msg


def open_volume(path: str | os.PathLike) -> Volume:
    """Open and validate a fastMRI file; raises ``InputError`` (one sentence naming it) if unusable.

    Checks: the file exists and is HDF5, ``kspace`` exists, is complex, of rank 3 or 4 and
    non-empty, and ``mask`` (if any) matches the number of columns. An unparsable header
    falls back to "no padding, target-sized crop" with a warning in ``Volume.warnings``.
    NaN/Inf values are caught slice range by slice range in ``Volume.read_kspace``.
    """
    path = Path(path)
    if not path.exists():
        raise InputError(path, "file does not exist")
    if path.is_dir():
        raise InputError(path, "is a directory, not a file")
    try:
        is_h5 = h5py.is_hdf5(path)
    except OSError as exc:
        raise InputError(path, f"cannot be read ({exc.strerror or exc})") from exc
    if not is_h5:
        raise InputError(path, "is not an HDF5 file")
    try:
        handle = open_h5_read(path)
    except OSError as exc:
        raise InputError(path, f"cannot be opened as HDF5 ({exc})") from exc
    try:
        return _validate(path, handle)
    except BaseException:
        handle.close()
        raise


def _validate(path: Path, handle: h5py.File) -> Volume:
    if "kspace" not in handle or not isinstance(handle["kspace"], h5py.Dataset):
        raise InputError(path, "has no 'kspace' dataset")
    ks = handle["kspace"]
    if ks.dtype.kind != "c":
        raise InputError(path, f"'kspace' is {ks.dtype}, not complex")
    if ks.ndim not in (3, 4):
        raise InputError(
            path, f"'kspace' has rank {ks.ndim} {tuple(ks.shape)}; expected (slices, H, W) or (slices, coils, H, W)"
        )
    if ks.size == 0:
        raise InputError(path, f"'kspace' is empty {tuple(ks.shape)}")
    shape = tuple(ks.shape)
    warnings: list[str] = []
    header_xml: bytes | None = None
    if "ismrmrd_header" in handle:
        raw = handle["ismrmrd_header"][()]
        header_xml = raw if isinstance(raw, bytes) else str(raw).encode()
        try:
            header = parse_header(header_xml)
        except HeaderError as exc:
            header, msg = _fallback_header(path, handle, shape, f"unusable ismrmrd_header ({exc})")
            warnings.append(msg)
    else:
        header, msg = _fallback_header(path, handle, shape, "no ismrmrd_header")
        warnings.append(msg)
    left, right = header.padding
    if not (0 <= left < right <= shape[-1]):
        header, msg = _fallback_header(
            path, handle, shape, f"header's sampled columns [{left}, {right}) do not fit {shape[-1]} columns"
        )
        warnings.append(msg)
    mask = None
    if "mask" in handle:
        mask = np.asarray(handle["mask"][()])
        if mask.ndim == 1 and mask.shape[0] != shape[-1]:
            raise InputError(path, f"'mask' has {mask.shape[0]} entries but kspace has {shape[-1]} columns")
        if mask.ndim == 2 and mask.shape != shape[-2:]:
            raise InputError(path, f"'mask' has shape {mask.shape} but kspace slices are {shape[-2:]}")
        if mask.ndim not in (1, 2):
            raise InputError(path, f"'mask' has rank {mask.ndim}; expected 1 (columns) or 2")
        mask = mask.astype(bool)
    attrs = {k: _plain(v) for k, v in handle.attrs.items()}
    return Volume(path, handle, header, header_xml, attrs, mask, warnings)


def _plain(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode(errors="replace")
    if isinstance(value, np.generic):
        return value.item()
    return value


# --- writing ---------------------------------------------------------------------------


def check_writable(path: str | os.PathLike, overwrite: bool) -> Path:
    """Raise ``OutputExistsError`` if ``path`` exists and ``overwrite`` is false."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise OutputExistsError(path)
    return path


@contextlib.contextmanager
def atomic_h5(path: str | os.PathLike, overwrite: bool = False) -> Iterator[h5py.File]:
    """An HDF5 file written under a temporary name in the same folder, renamed on success.

    On any error the temporary file is removed and ``path`` is untouched.
    """
    path = check_writable(path, overwrite)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        with h5py.File(tmp, "w") as handle:
            yield handle
        if path.exists() and not overwrite:  # appeared meanwhile
            raise OutputExistsError(path)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_volume(
    path: str | os.PathLike,
    kspace: np.ndarray,
    *,
    header_xml: bytes | None,
    attrs: Mapping[str, Any],
    mask: np.ndarray | None = None,
    targets: Mapping[str, np.ndarray] | None = None,
    overwrite: bool = False,
) -> Path:
    """Write a fastMRI volume file atomically: ``kspace`` (complex64), header, attributes,
    optional ``mask`` and target datasets (float32)."""
    with atomic_h5(path, overwrite) as handle:
        handle.create_dataset("kspace", data=np.asarray(kspace, dtype=np.complex64))
        if header_xml is not None:
            handle.create_dataset("ismrmrd_header", data=header_xml)
        if mask is not None:
            handle.create_dataset("mask", data=np.asarray(mask, dtype=bool))
        for key, value in (targets or {}).items():
            handle.create_dataset(key, data=np.asarray(value, dtype=np.float32))
        for key, value in attrs.items():
            handle.attrs[key] = value
    return Path(path)


def write_reconstruction(
    path: str | os.PathLike,
    reconstruction: np.ndarray,
    *,
    attrs: Mapping[str, Any] | None = None,
    overwrite: bool = False,
) -> Path:
    """Write a reconstruction file as ``fastmri.save_reconstructions`` does (float32
    ``reconstruction`` of shape (slices, H, W)), atomically, plus optional attributes."""
    recon = np.asarray(reconstruction, dtype=np.float32)
    if recon.ndim != 3:
        raise ValueError(f"reconstruction must be (slices, H, W), got {recon.shape}")
    with atomic_h5(path, overwrite) as handle:
        handle.create_dataset("reconstruction", data=recon)
        for key, value in (attrs or {}).items():
            handle.attrs[key] = value
    return Path(path)


def read_reconstruction(path: str | os.PathLike) -> np.ndarray:
    """The ``reconstruction`` dataset of a reconstruction file, validated (float, rank 3, finite)."""
    path = Path(path)
    if not path.exists():
        raise InputError(path, "file does not exist")
    if not h5py.is_hdf5(path):
        raise InputError(path, "is not an HDF5 file")
    with open_h5_read(path) as handle:
        if "reconstruction" not in handle:
            raise InputError(path, "has no 'reconstruction' dataset")
        data = handle["reconstruction"][()]
    if data.ndim != 3 or data.dtype.kind != "f":
        raise InputError(path, f"'reconstruction' is {data.dtype} {data.shape}; expected float (slices, H, W)")
    if not np.isfinite(data).all():
        raise InputError(path, "'reconstruction' has NaN or Inf values")
    return data
