"""fastMRI HDF5 volumes: lazy validated reading, atomic writing."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import h5py
import numpy as np

from mrirecon.io.atomic import atomic_h5, check_writable  # noqa: F401  (re-exported: old import path)
from mrirecon.io.errors import InputError, require_finite
from mrirecon.io.h5_input import check_bounds, get_dataset, open_h5, read_dataset
from mrirecon.io.header import Header, HeaderError, parse_header

TARGET_KEYS = {"multicoil": "reconstruction_rss", "singlecoil": "reconstruction_esc"}
#: fastMRI's knee recon size, used when a header cannot be parsed and no target gives the size.
FALLBACK_RECON_SIZE = (320, 320)


def nonfinite_kspace(start: int, stop: int) -> str:
    """The problem reported for k-space slices ``[start:stop]`` holding a NaN or an Inf."""
    return f"kspace has NaN or Inf values in slices {start}..{stop - 1}"


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
        require_finite(self.path, data, nonfinite_kspace(start, stop))
        return data

    def read_kspace_into(self, out: np.ndarray, start: int, stop: int) -> np.ndarray:
        """k-space slices ``[start:stop]`` written into the first ``stop - start`` slices of the
        complex64 buffer ``out`` (reused across reads: no fresh allocation); returns that view.
        Not checked for NaN/Inf: the caller checks (on its device; message ``nonfinite_kspace``)."""
        dataset = self.handle["kspace"]
        view = out[: stop - start]
        if dataset.dtype == np.complex64 and view.flags.c_contiguous and stop > start:
            dataset.read_direct(view, np.s_[start:stop])
        else:
            view[...] = dataset[start:stop]
        return view

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
        target = get_dataset(handle, key, path)
        if target is not None and target.ndim == 3:
            recon = tuple(target.shape[-2:])
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

    Checks: the file exists and is HDF5; every dataset read is inside the file (no external
    storage, external links or virtual datasets) and declares no more data than the file holds;
    ``kspace`` exists, is complex, of rank 3 or 4, non-empty, within sane sizes and not all zero;
    ``mask`` (if any) is binary 0/1, not all zero and matches the columns; ``acceleration`` (if
    any) is a finite number > 1 and ``num_low_frequency`` (if any) an integer in [1, W]; targets
    are float (slices, H, W) with the k-space's slices. Nothing is repaired. An unparsable header
    falls back to "no padding, target-sized crop" with a warning in ``Volume.warnings``.
    NaN/Inf values are caught slice range by slice range in ``Volume.read_kspace``.
    """
    path = Path(path)
    handle = open_h5(path)
    try:
        return _validate(path, handle)
    except BaseException:
        handle.close()
        raise


def _validate(path: Path, handle: h5py.File) -> Volume:
    ks = get_dataset(handle, "kspace", path)
    if ks is None:
        raise InputError(path, "has no 'kspace' dataset")
    if ks.dtype.kind != "c":
        raise InputError(path, f"'kspace' is {ks.dtype}, not complex")
    if ks.ndim not in (3, 4):
        raise InputError(
            path, f"'kspace' has rank {ks.ndim} {tuple(ks.shape)}; expected (slices, H, W) or (slices, coils, H, W)"
        )
    if ks.size == 0:
        raise InputError(path, f"'kspace' is empty {tuple(ks.shape)}")
    shape = tuple(ks.shape)
    check_bounds(shape, "kspace", path, "SCHW" if ks.ndim == 4 else "SHW")
    _check_signal(ks, path)
    for key in TARGET_KEYS.values():
        _check_target(handle, key, path, shape[0])
    warnings: list[str] = []
    header_xml: bytes | None = None
    raw = read_dataset(handle, "ismrmrd_header", path)
    if raw is not None:
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
    mask = _read_mask(handle, path, shape)
    attrs = {k: _plain(v) for k, v in handle.attrs.items()}
    check_sampling_attrs(attrs, path, shape[-1])
    return Volume(path, handle, header, header_xml, attrs, mask, warnings)


def _check_signal(ks: h5py.Dataset, path: Path) -> None:
    """Refuse k-space whose central readout rows are zero in every slice and coil: no signal."""
    height = ks.shape[-2]
    rows = slice(max(height // 2 - 1, 0), height // 2 + 2)
    centre = ks[..., rows, :]
    if not np.any(centre):
        raise InputError(path, "'kspace' is all zero at the k-space centre of every slice (no signal)")


def _check_target(handle: h5py.File, key: str, path: Path, slices: int) -> None:
    target = get_dataset(handle, key, path)
    if target is None:
        return
    if target.ndim != 3 or target.dtype.kind != "f":
        raise InputError(path, f"'{key}' is {target.dtype} {tuple(target.shape)}; expected float (slices, H, W)")
    check_bounds(tuple(target.shape), key, path, "SHW")
    if target.shape[0] != slices:
        raise InputError(path, f"'{key}' has {target.shape[0]} slices but 'kspace' has {slices}")


def _read_mask(handle: h5py.File, path: Path, shape: tuple[int, ...]) -> np.ndarray | None:
    """The ``mask`` dataset as booleans: binary 0/1, not all zero, one entry per column (or per
    k-space sample of a slice). ``None`` if the file has none."""
    dataset = get_dataset(handle, "mask", path)
    if dataset is None:
        return None
    if dataset.ndim not in (1, 2):
        raise InputError(path, f"'mask' has rank {dataset.ndim}; expected 1 (columns) or 2")
    if dataset.ndim == 1 and dataset.shape[0] != shape[-1]:
        raise InputError(path, f"'mask' has {dataset.shape[0]} entries but kspace has {shape[-1]} columns")
    if dataset.ndim == 2 and dataset.shape != shape[-2:]:
        raise InputError(path, f"'mask' has shape {dataset.shape} but kspace slices are {shape[-2:]}")
    if dataset.dtype.kind not in "biuf":
        raise InputError(path, f"'mask' is {dataset.dtype}; expected booleans or 0/1 numbers")
    mask = np.asarray(dataset[()])
    if mask.dtype.kind != "b":
        bad = mask[(mask != 0) & (mask != 1)]
        if bad.size:
            raise InputError(path, f"'mask' must hold only 0 and 1, but holds {bad.flat[0]!r}")
    mask = mask.astype(bool)
    if not mask.any():
        raise InputError(path, "'mask' is all zero: no k-space sample is marked as acquired")
    return mask


def check_sampling_attrs(attrs: Mapping[str, Any], path: str | os.PathLike, width: int) -> None:
    """``acceleration`` (finite, > 1) and ``num_low_frequency`` (integer in [1, width]), if present."""
    if "acceleration" in attrs:
        accel = attrs["acceleration"]
        if isinstance(accel, bool) or not isinstance(accel, (int, float)) or not np.isfinite(accel) or accel <= 1:
            raise InputError(path, f"attribute 'acceleration' must be a finite number above 1, got {accel!r}")
    if "num_low_frequency" in attrs:
        low = attrs["num_low_frequency"]
        if isinstance(low, bool) or not isinstance(low, (int, float)) or not float(low).is_integer() or not 1 <= low <= width:
            raise InputError(
                path, f"attribute 'num_low_frequency' must be a whole number in [1, {width}] (the columns), got {low!r}"
            )


def _plain(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode(errors="replace")
    if isinstance(value, np.generic):
        return value.item()
    return value


# --- writing ---------------------------------------------------------------------------


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
    ``reconstruction`` of shape (slices, H, W)), atomically, plus optional attributes.
    A reconstruction with NaN or Inf values is refused (``InputError``), not written."""
    recon = np.asarray(reconstruction, dtype=np.float32)
    if recon.ndim != 3:
        raise ValueError(f"reconstruction must be (slices, H, W), got {recon.shape}")
    if not np.isfinite(recon).all():  # never write garbage: e.g. k-space too large for float32
        raise InputError(path, "the reconstruction has NaN or Inf values (float32 overflow?); nothing was written")
    with atomic_h5(path, overwrite) as handle:
        handle.create_dataset("reconstruction", data=recon)
        for key, value in (attrs or {}).items():
            handle.attrs[key] = value
    return Path(path)


def read_reconstruction(path: str | os.PathLike) -> np.ndarray:
    """The ``reconstruction`` dataset of a reconstruction file, validated (float, rank 3, sane
    sizes, inside the file, finite)."""
    path = Path(path)
    with open_h5(path) as handle:
        dataset = get_dataset(handle, "reconstruction", path)
        if dataset is None:
            raise InputError(path, "has no 'reconstruction' dataset")
        if dataset.ndim != 3 or dataset.dtype.kind != "f":
            raise InputError(
                path, f"'reconstruction' is {dataset.dtype} {tuple(dataset.shape)}; expected float (slices, H, W)"
            )
        check_bounds(tuple(dataset.shape), "reconstruction", path, "SHW")
        data = dataset[()]
    if not np.isfinite(data).all():
        raise InputError(path, "'reconstruction' has NaN or Inf values")
    return data
