"""Siemens raw data (twix ``.dat``, VB and VD/VE) -> ``RawScan``, through the ``twixtools`` package.

Scope: 2D Cartesian, one or more slices, one average, one echo, one repetition/set/phase, full
Fourier. Anything else is refused with a sentence naming the dimension: the counters of the data
decide (Pulseq files carry a placeholder protocol), the protocol is checked where it is explicit
(partial Fourier). The image lines are placed by their line counter, ``kspace[slice, coil,
sample, line]``, with no scaling or flips: fastMRI's layout is the scanner's.
"""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import numpy as np

from mrirecon.io.errors import InputError, require_finite
from mrirecon.io.raw_scan import Geometry, RawScan

#: Siemens protocol value for "partial Fourier off" (ucPhasePartialFourier, ucReadoutPartialFourier).
PARTIAL_FOURIER_OFF = 16
#: Counters that must stay at 0 for a scan this reader supports, and their names in messages.
UNSUPPORTED_COUNTERS = {
    "cPar": "3D partitions",
    "cAve": "multiple averages",
    "cEco": "multiple echoes",
    "cRep": "repetitions",
    "cSet": "sets",
    "cPhs": "cardiac phases",
}
#: The first four bytes of a VD/VE file are 0 and the next the measurement count (<= 64); a VB
#: file starts with its header length. This is twixtools' own test.
TWIX_MAX_MEASUREMENTS = 64


def looks_like_twix(path: Path) -> bool:
    """True if ``path`` starts like a Siemens raw-data file (VD/VE multi-raid header, or VB)."""
    with open(path, "rb") as handle:
        head = handle.read(32)
    if len(head) < 8:
        return False
    first, second = np.frombuffer(head[:8], dtype="<u4")
    if first < 10000 and 0 < second <= TWIX_MAX_MEASUREMENTS:
        return True
    return b"Config" in head or path.suffix.lower() == ".dat"


def read_twix(path: str | Path, measurement: int = -1) -> RawScan:
    """Read measurement ``measurement`` (default: the last) of a twix file as a ``RawScan``."""
    import twixtools

    path = Path(path)
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # twixtools prints warnings
            measurements = twixtools.read_twix(
                str(path), verbose=False, parse_pmu=False, keep_syncdata=False, keep_acqend=True
            )
    except Exception as exc:  # twixtools raises bare ValueErrors, IndexErrors, numpy errors
        raise InputError(path, f"is not a readable Siemens twix file ({type(exc).__name__}: {exc})") from exc
    if not measurements:
        raise InputError(path, "holds no measurement")
    try:
        index = range(len(measurements))[measurement]
    except IndexError:
        raise InputError(
            path, f"has {len(measurements)} measurement(s); --measurement {measurement} is out of range"
        ) from None
    try:
        scan = _scan_from_measurement(path, measurements[index], index, len(measurements))
        if scan.noise is None:  # VD/VE files keep the noise adjust scan in an earlier measurement
            _noise_from_other_measurements(scan, measurements, index)
        return scan
    except InputError:
        raise
    except (ValueError, KeyError, TypeError, OSError) as exc:
        raise InputError(path, f"is a damaged twix file ({type(exc).__name__}: {exc})") from exc
    finally:
        _close(measurements)


def _close(measurements: list[dict]) -> None:
    """twixtools keeps the file open in every readout (memory-mapped reading); close it."""
    for meas in measurements:
        for mdb in meas.get("mdb", [])[:1]:
            handle = getattr(mdb, "fid", None)
            if handle is not None and not handle.closed:
                handle.close()


def _noise_readouts(meas: dict) -> np.ndarray | None:
    """The ``(coils, samples)`` noise adjust readouts of a measurement, or ``None``."""
    noise = [m for m in meas["mdb"] if not m.is_flag_set("ACQEND") and m.is_flag_set("NOISEADJSCAN")]
    if not noise:
        return None
    return np.concatenate([np.asarray(m.data) for m in noise], axis=1).astype(np.complex64)


def _dwell_ns(meas: dict) -> float | None:
    dwell = meas.get("hdr", {}).get("MeasYaps", {}).get("sRXSPEC", {}).get("alDwellTime")
    return float(dwell[0]) if dwell and dwell[0] else None


def _noise_from_other_measurements(scan: RawScan, measurements: list[dict], index: int) -> None:
    """Take the nearest earlier measurement's noise adjust readouts (same coil count), with the
    dwell-time ratio from the two protocols when both state it."""
    for other in range(index - 1, -1, -1):
        noise = _noise_readouts(measurements[other])
        if noise is not None and noise.shape[0] == scan.num_coils:
            scan.noise = noise
            noise_dwell, image_dwell = _dwell_ns(measurements[other]), _dwell_ns(measurements[index])
            if noise_dwell and image_dwell:
                scan.noise_dwell_ratio = noise_dwell / image_dwell
            scan.attrs["twix_noise_measurement"] = other
            return


def _scan_from_measurement(path: Path, meas: dict, index: int, count: int) -> RawScan:
    mdbs = meas["mdb"]
    if not mdbs or not mdbs[-1].is_flag_set("ACQEND"):
        raise InputError(path, f"is truncated: measurement {index} stops before its end-of-acquisition marker")
    mdbs = mdbs[:-1]
    images = [m for m in mdbs if m.is_image_scan()]
    if not images:
        raise InputError(path, "has no image readouts in the chosen measurement")
    if any(m.is_flag_set("REFLECT") for m in images):
        raise InputError(path, "has reflected (EPI) readouts; only Cartesian line-by-line scans are supported")
    for counter, name in UNSUPPORTED_COUNTERS.items():
        values = {int(getattr(m, counter)) for m in images}
        if len(values) > 1:
            raise InputError(path, f"has {name} ({counter[1:]} counter {min(values)}..{max(values)}); not supported")
    protocol = meas.get("hdr", {}).get("MeasYaps", {})
    kspace_prot = protocol.get("sKSpace", {})
    for key, what in (("ucPhasePartialFourier", "phase"), ("ucReadoutPartialFourier", "readout")):
        value = kspace_prot.get(key, PARTIAL_FOURIER_OFF)
        if int(value) != PARTIAL_FOURIER_OFF:
            raise InputError(path, f"uses {what} partial Fourier (protocol {key}={int(value)}); not supported")
    samples = {int(m.mdh.SamplesInScan) for m in images}
    channels = {int(m.mdh.UsedChannels) for m in images}
    if len(samples) != 1 or len(channels) != 1:
        raise InputError(path, f"has readouts of different lengths {sorted(samples)} or coil counts {sorted(channels)}")
    (height,), (coils,) = samples, channels
    centre_col = int(images[0].mdh.CenterCol)
    if centre_col and abs(2 * centre_col - height) > 1:
        raise InputError(path, f"has an asymmetric echo (centre sample {centre_col} of {height}); not supported")
    lines = np.array([int(m.cLin) for m in images])
    slices = np.array([int(m.cSlc) for m in images])
    width = int(lines.max()) + 1
    num_slices = int(slices.max()) + 1
    centre_line = int(images[0].mdh.CenterLin)
    if centre_line and abs((centre_line - lines.min()) - (lines.max() - centre_line)) > 1:
        raise InputError(
            path,
            f"covers lines {lines.min()}..{lines.max()} around centre line {centre_line} (partial Fourier); not supported",
        )
    if len(images) != num_slices * width:  # checked before allocating what the counters declare
        raise InputError(
            path,
            f"has {len(images)} image readouts for {num_slices} slice(s) x {width} lines: "
            "undersampled (iPAT), repeated or truncated scans are not supported",
        )
    kspace = np.zeros((num_slices, coils, height, width), dtype=np.complex64)
    filled = np.zeros((num_slices, width), dtype=np.int32)
    for mdb, line, slc in zip(images, lines, slices):
        data = mdb.data
        if data.shape != (coils, height):
            raise InputError(path, f"is truncated: readout {int(mdb.mdh.ScanCounter)} holds {data.shape} samples")
        kspace[slc, :, :, line] = data
        filled[slc, line] += 1
    if (filled > 1).any():
        raise InputError(path, "has lines measured more than once (averages or repeats without a counter); not supported")
    missing = np.argwhere(filled == 0)
    if missing.size:
        s, line = missing[0]
        raise InputError(
            path,
            f"misses {len(missing)} of {filled.size} lines (first: slice {s}, line {line}): "
            "undersampled (iPAT) or truncated scans are not supported",
        )
    require_finite(path, kspace, "has NaN or Inf samples")
    hdr = meas.get("hdr", {})
    dicom = hdr.get("Dicom", {})
    oversampling = float(dicom.get("flReadoutOSFactor") or 1.0)
    if oversampling < 1 or abs(oversampling - round(oversampling)) > 1e-6 or height % round(oversampling):
        raise InputError(path, f"declares readout oversampling {oversampling}, which does not divide {height} samples")
    oversampling = int(round(oversampling))
    slice_prot = protocol.get("sSliceArray", {}).get("asSlice", [{}])[0]
    fov = None
    if all(k in slice_prot for k in ("dReadoutFOV", "dPhaseFOV", "dThickness")):
        fov = (float(slice_prot["dReadoutFOV"]), float(slice_prot["dPhaseFOV"]), float(slice_prot["dThickness"]))
    system: dict[str, str | float] = {}
    for key, name in (("Manufacturer", "vendor"), ("ManufacturersModelName", "model")):
        if dicom.get(key):
            system[name] = str(dicom[key])
    if dicom.get("flMagneticFieldStrength"):
        system["field_strength_t"] = float(dicom["flMagneticFieldStrength"])
    if dicom.get("lFrequency"):
        system["frequency_hz"] = float(dicom["lFrequency"])
    sequence: dict[str, float] = {}
    if protocol.get("alTR"):
        sequence["TR"] = float(protocol["alTR"][0]) / 1000  # us -> ms
    if protocol.get("alTE"):
        sequence["TE"] = float(protocol["alTE"][0]) / 1000
    if dicom.get("adFlipAngleDegree"):
        sequence["flip_angle"] = float(dicom["adFlipAngleDegree"][0])
    return RawScan(
        kspace=kspace if coils > 1 else kspace[:, 0],
        source_format="twix",
        readout_oversampling=oversampling,
        sampled_cols=(0, width),
        recon_size=(height // oversampling, width),
        recon_fov_mm=fov,
        geometry=_geometry(meas, images, slices, num_slices),
        noise=_noise_readouts({"mdb": mdbs}),
        system=system,
        sequence=sequence,
        attrs={"twix_measurement": index, "twix_measurements": count},
    )


def _geometry(meas: dict, images: list, slices: np.ndarray, num_slices: int) -> Geometry | None:
    """Slice centres from the readouts' slice data, directions from twixtools' geometry.

    Not validated against a scanner's own DICOMs: siemens_to_ismrmrd's reading of the same
    quaternion gives read and phase directions of opposite sign (a 180 degree in-plane turn)."""
    geoms = meas.get("geometry") or []
    if not geoms:
        return None
    try:
        rot = np.asarray(geoms[0].prs_to_pcs(), dtype=float)  # columns: phase, read, slice (PRS -> PCS)
    except Exception:  # twixtools' geometry needs protocol fields Pulseq files may lack
        return None
    positions: list[tuple[float, float, float] | None] = [None] * num_slices
    for mdb, slc in zip(images, slices):
        if positions[slc] is None:
            pos = mdb.mdh.SliceData.SlicePos
            positions[slc] = (float(pos.Sag), float(pos.Cor), float(pos.Tra))
    if any(p is None for p in positions):
        return None
    return Geometry(
        positions=tuple(positions),  # type: ignore[arg-type]
        read_dir=tuple(float(v) for v in rot[:, 1]),  # type: ignore[arg-type]
        phase_dir=tuple(float(v) for v in rot[:, 0]),  # type: ignore[arg-type]
        slice_dir=tuple(float(v) for v in rot[:, 2]),  # type: ignore[arg-type]
    )
