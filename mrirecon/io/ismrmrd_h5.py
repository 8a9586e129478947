"""ISMRMRD / MRD HDF5 (``/dataset/data`` acquisitions + ``/dataset/xml``) -> ``RawScan``.

The acquisition table is read in bulk, as one compound array in one HDF5 read, and sorted with
numpy: reading acquisition by acquisition through ``ismrmrd.Dataset.read_acquisition`` is about
20x slower. The header is parsed with the ``ismrmrd`` package's schema classes. Each image line
goes to column ``kspace_encode_step_1 + (encoded y / 2 - limits centre)``, so the centre and the
zero padding come from ``encodingLimits``; noise acquisitions are collected separately.
"""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np

from mrirecon.io.errors import InputError, require_finite
from mrirecon.io.h5_input import read_dataset
from mrirecon.io.raw_scan import Geometry, RawScan

# ISMRMRD acquisition flags (bit = flag - 1), from ismrmrd.constants.
ACQ_IS_NOISE_MEASUREMENT = 19
ACQ_IS_PARALLEL_CALIBRATION = 20
ACQ_IS_PARALLEL_CALIBRATION_AND_IMAGING = 21
ACQ_IS_REVERSE = 22
#: Flags of acquisitions that are not image lines (navigators, phase correction, feedback, ...).
NOT_IMAGE_FLAGS = (23, 24, 26, 27, 28, 29, 30, 31)
#: Encoding counters that must be 0 for the scans this reader supports, and their names.
UNSUPPORTED_COUNTERS = {
    "kspace_encode_step_2": "3D encoding (kspace_encode_step_2)",
    "average": "multiple averages",
    "contrast": "multiple contrasts (echoes)",
    "phase": "multiple phases",
    "repetition": "repetitions",
    "set": "sets",
}


def _flag(flags: np.ndarray, flag: int) -> np.ndarray:
    return (flags & np.uint64(1 << (flag - 1))) != 0


def is_ismrmrd(handle: h5py.File) -> bool:
    """True if an open HDF5 file has ISMRMRD's ``/dataset/data`` or ``/dataset/xml``."""
    return "dataset" in handle and isinstance(handle["dataset"], h5py.Group) and (
        "data" in handle["dataset"] or "xml" in handle["dataset"]
    )


def read_ismrmrd(path: str | Path) -> RawScan:
    """Read a 2D Cartesian ISMRMRD file as a ``RawScan`` (with its noise acquisitions, if any)."""
    path = Path(path)
    try:
        with h5py.File(path, "r") as handle:
            if not is_ismrmrd(handle):
                raise InputError(path, "has no ISMRMRD /dataset group")
            group = handle["dataset"]
            if "xml" not in group:
                raise InputError(path, "has no /dataset/xml header")
            if "data" not in group:
                raise InputError(path, "has no /dataset/data acquisitions")
            xml = read_dataset(handle, "dataset/xml", path)[0]
            table = read_dataset(handle, "dataset/data", path)  # inside the file only, plausible size
    except OSError as exc:
        raise InputError(path, f"cannot be read as HDF5 ({exc})") from exc
    header = _parse_xml(path, xml)
    scan = _scan_from_table(path, header, table)
    scan.header_xml = xml if isinstance(xml, bytes) else str(xml).encode()
    return scan


def _parse_xml(path: Path, xml: bytes | str):
    from ismrmrd import xsd

    try:
        header = xsd.CreateFromDocument(xml if isinstance(xml, (bytes, str)) else bytes(xml))
    except Exception as exc:  # xsdata raises its own parser errors
        raise InputError(path, f"has an invalid ISMRMRD XML header ({type(exc).__name__})") from exc
    if not header.encoding:
        raise InputError(path, "has an ISMRMRD header without an encoding")
    if len(header.encoding) > 1:
        raise InputError(path, f"has {len(header.encoding)} encoding spaces; only one is supported")
    trajectory = header.encoding[0].trajectory
    if getattr(trajectory, "value", trajectory) != "cartesian":
        raise InputError(path, f"has a {getattr(trajectory, 'value', trajectory)} trajectory; only Cartesian is supported")
    return header


def _scan_from_table(path: Path, header, table: np.ndarray) -> RawScan:
    if table.size == 0:
        raise InputError(path, "has no acquisitions")
    head = table["head"]
    flags = head["flags"]
    noise_rows = _flag(flags, ACQ_IS_NOISE_MEASUREMENT)
    skip = _flag(flags, ACQ_IS_PARALLEL_CALIBRATION) & ~_flag(flags, ACQ_IS_PARALLEL_CALIBRATION_AND_IMAGING)
    for flag in NOT_IMAGE_FLAGS:
        skip |= _flag(flags, flag)
    image_rows = ~noise_rows & ~skip
    if not image_rows.any():
        raise InputError(path, f"has no image acquisitions ({int(noise_rows.sum())} noise, {int(skip.sum())} other)")
    if _flag(flags[image_rows], ACQ_IS_REVERSE).any():
        raise InputError(path, "has reversed (EPI) readouts; only line-by-line Cartesian scans are supported")
    img = head[image_rows]
    for counter, name in UNSUPPORTED_COUNTERS.items():
        values = img["idx"][counter]
        if values.max() != values.min():
            raise InputError(path, f"has {name} ({counter} {values.min()}..{values.max()}); not supported")
    coils = np.unique(img["active_channels"])
    samples = np.unique(img["number_of_samples"])
    if coils.size != 1 or samples.size != 1:
        raise InputError(path, f"has image acquisitions of different coil counts {coils.tolist()} or lengths {samples.tolist()}")
    num_coils, height = int(coils[0]), int(samples[0])
    enc = header.encoding[0]
    ex, ey = int(enc.encodedSpace.matrixSize.x), int(enc.encodedSpace.matrixSize.y)
    if height != ex:
        raise InputError(path, f"has {height}-sample readouts but an encoded matrix x of {ex}; asymmetric echoes are not supported")
    limits = enc.encodingLimits.kspace_encoding_step_1
    centre = int(limits.center) if limits is not None else ey // 2
    offset = ey // 2 - centre
    lines = img["idx"]["kspace_encode_step_1"].astype(np.int64) + offset
    if lines.min() < 0 or lines.max() >= ey:
        raise InputError(
            path,
            f"places lines at columns {lines.min()}..{lines.max()} (encode step 1 + {offset} from encodingLimits), "
            f"outside the encoded {ey} columns",
        )
    slices = img["idx"]["slice"].astype(np.int64)
    num_slices = int(slices.max()) + 1
    acquired = int(image_rows.sum())
    if num_slices * ey > 4 * acquired:  # checked before allocating what the header declares
        raise InputError(
            path,
            f"declares {num_slices} slice(s) x {ey} columns but holds {acquired} image lines; "
            "more than 3/4 would be zero padding, which is implausible",
        )
    data = _stack(path, table["data"][image_rows], num_coils * height)
    kspace = np.zeros((num_slices, num_coils, height, ey), dtype=np.complex64)
    kspace[slices, :, :, lines] = data.reshape(-1, num_coils, height)
    counts = np.zeros((num_slices, ey), dtype=np.int64)
    np.add.at(counts, (slices, lines), 1)
    first = int(limits.minimum) + offset if limits is not None else 0
    stop = int(limits.maximum) + offset + 1 if limits is not None else ey
    if (counts > 1).any():
        raise InputError(path, "has lines acquired more than once without a counter telling them apart; not supported")
    inside = counts[:, first:stop]
    if (inside == 0).any():
        s, col = np.argwhere(inside == 0)[0]
        raise InputError(
            path,
            f"misses {int((inside == 0).sum())} lines inside encodingLimits (first: slice {s}, column {col + first}): "
            "undersampled scans are not supported",
        )
    require_finite(path, kspace, "has NaN or Inf samples")
    noise, dwell_ratio = None, None
    if noise_rows.any():
        noise_head = head[noise_rows]
        noise_coils = np.unique(noise_head["active_channels"])
        if noise_coils.size != 1 or int(noise_coils[0]) != num_coils:
            raise InputError(path, f"has noise acquisitions with {noise_coils.tolist()} coils but images with {num_coils}")
        n_samples = noise_head["number_of_samples"].astype(np.int64)
        chunks = [
            row.view(np.complex64).reshape(num_coils, int(n))
            for row, n in zip(table["data"][noise_rows], n_samples)
        ]
        noise = np.concatenate(chunks, axis=1)
        noise_dwell = float(noise_head["sample_time_us"][0])
        image_dwell = float(img["sample_time_us"][0])
        if noise_dwell > 0 and image_dwell > 0:
            dwell_ratio = noise_dwell / image_dwell
    recon = enc.reconSpace
    oversampling = max(1, round(ex / int(recon.matrixSize.x))) if recon.matrixSize.x else 1
    fov = recon.fieldOfView_mm
    recon_fov = (float(fov.x), float(fov.y), float(fov.z)) if fov is not None and fov.x and fov.y else None
    system: dict[str, str | float] = {}
    info = header.acquisitionSystemInformation
    if info is not None:
        if info.systemVendor:
            system["vendor"] = str(info.systemVendor)
        if info.systemModel:
            system["model"] = str(info.systemModel)
        if info.systemFieldStrength_T:
            system["field_strength_t"] = float(info.systemFieldStrength_T)
    return RawScan(
        kspace=kspace if num_coils > 1 else kspace[:, 0],
        source_format="ismrmrd",
        readout_oversampling=oversampling,
        sampled_cols=(first, stop),
        recon_size=(int(recon.matrixSize.x), int(recon.matrixSize.y)),
        recon_fov_mm=recon_fov,
        geometry=_geometry(img, slices, num_slices),
        noise=noise,
        noise_dwell_ratio=dwell_ratio,
        system=system,
    )


def _stack(path: Path, rows: np.ndarray, expected: int) -> np.ndarray:
    """The variable-length float32 rows of image acquisitions as one ``(N, expected)`` complex array."""
    lengths = np.fromiter((r.size for r in rows), dtype=np.int64, count=rows.size)
    if (lengths != 2 * expected).any():
        bad = int(np.flatnonzero(lengths != 2 * expected)[0])
        raise InputError(path, f"acquisition {bad} holds {lengths[bad] // 2} samples; its header says {expected}")
    return np.concatenate(rows).view(np.complex64).reshape(rows.size, expected)


def _geometry(img: np.ndarray, slices: np.ndarray, num_slices: int) -> Geometry | None:
    first_rows = [int(np.flatnonzero(slices == s)[0]) for s in range(num_slices) if (slices == s).any()]
    if len(first_rows) != num_slices:
        return None
    dirs = [tuple(float(v) for v in img[first_rows[0]][key]) for key in ("read_dir", "phase_dir", "slice_dir")]
    if any(np.linalg.norm(d) < 0.5 for d in dirs):  # writers that leave the directions zero
        return None
    positions = tuple(tuple(float(v) for v in img[r]["position"]) for r in first_rows)
    return Geometry(positions, dirs[0], dirs[1], dirs[2])  # type: ignore[arg-type]
