"""``convert``: raw k-space (``.npy``, Siemens twix, ISMRMRD HDF5, BART ``.cfl``/``.ra``) -> a fastMRI file.

Every format is read into a ``RawScan`` (io/), optionally prewhitened with a noise scan
(mri/prewhiten.py), and written as fastMRI writes its training files: ``kspace`` in
``(slices, coils, readout, phase)`` order, an ISMRMRD header with the real encoding, recon size
and FOV, and the RSS (or single-coil magnitude) target of the fully sampled k-space cropped to the
recon size, the way ``sample-data`` computes it. An input is never an output.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from mrirecon.io.cfl import bart_to_fastmri, read_cfl, read_ra
from mrirecon.io.errors import InputError
from mrirecon.io.fastmri_h5 import TARGET_KEYS, check_writable, write_volume
from mrirecon.io.formats import detect_format, input_files
from mrirecon.io.image_geometry import ImageGeometry
from mrirecon.io.ismrmrd_h5 import read_ismrmrd
from mrirecon.io.npy_import import load_npy_kspace
from mrirecon.io.raw_scan import RawScan, ismrmrd_header_xml
from mrirecon.io.twix import read_twix
from mrirecon.mri.prewhiten import apply_whitening, whitening_matrix
from mrirecon.mri.zero_filled import zero_filled
from mrirecon.pipelines.common import FileResult
from mrirecon.pipelines.sampling import calibration_width


@dataclass
class ConvertConfig:
    """How to read the input and what to declare in the header."""

    axes: str | None = None
    readout_oversampling: int | None = None
    recon_size: tuple[int, int] | None = None
    undersampled: bool = False
    acquisition: str = "UNKNOWN"
    overwrite: bool = False
    input_format: str = "auto"
    measurement: int = -1
    noise: Path | None = None
    prewhiten: bool = False


def sampled_column_range(kspace: np.ndarray) -> tuple[int, int]:
    """``(first, stop)`` of the phase-encode columns that hold any signal (the rest is zero padding)."""
    energy = np.abs(kspace).reshape(-1, kspace.shape[-1]).max(axis=0)
    nonzero = np.flatnonzero(energy > 0)
    if nonzero.size == 0:
        return 0, kspace.shape[-1]
    return int(nonzero[0]), int(nonzero[-1]) + 1


def sampling_pattern(kspace: np.ndarray) -> np.ndarray:
    """The sampled positions of undersampled k-space: ``(W,)`` if whole columns, else ``(H, W)``."""
    sampled = (np.abs(kspace) > 0).reshape(-1, *kspace.shape[-2:]).any(axis=0)
    if (sampled == sampled[:1]).all():
        return sampled[0]
    return sampled


def read_scan(path: Path, fmt: str, config: ConvertConfig) -> RawScan:
    """Read ``path`` in format ``fmt`` as a ``RawScan``."""
    if fmt == "twix":
        return read_twix(path, config.measurement)
    if fmt == "ismrmrd":
        return read_ismrmrd(path)
    if fmt in ("cfl", "ra"):
        array = read_cfl(path) if fmt == "cfl" else read_ra(path)
        return RawScan(bart_to_fastmri(path, array), source_format=fmt)
    return RawScan(load_npy_kspace(path, config.axes), source_format="npy")


def check_output(in_path: Path, fmt: str, out_path: Path, overwrite: bool) -> None:
    """Refuse an output that is a folder or that resolves to one of the input's files."""
    if out_path.is_dir():
        raise InputError(out_path, "is a folder; give the output file name, e.g. -o out/scan.h5")
    target = out_path.resolve()
    for source in input_files(in_path, fmt):
        if source.exists() and (source.resolve() == target or (out_path.exists() and out_path.samefile(source))):
            raise InputError(out_path, f"is the input {source}; convert never overwrites its input")
    check_writable(out_path, overwrite)


def load_noise(path: Path, num_coils: int) -> np.ndarray:
    """A noise scan from ``.npy``: ``(coils, samples)`` complex (samples may span more axes)."""
    try:
        noise = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as exc:
        raise InputError(path, "is not a readable .npy noise array") from exc
    if noise.dtype.kind != "c" or noise.ndim < 2 or noise.shape[0] != num_coils:
        raise InputError(
            path, f"is {noise.dtype} {noise.shape}; a noise scan must be complex (coils={num_coils}, samples...)"
        )
    noise = noise.reshape(num_coils, -1).astype(np.complex64)
    if not np.isfinite(noise.view(np.float32)).all():
        raise InputError(path, "has NaN or Inf values")
    return noise


def prewhiten_scan(scan: RawScan, in_path: Path, config: ConvertConfig) -> dict:
    """Whiten ``scan.kspace`` in place with its noise (``--noise`` wins); returns the attributes to record."""
    if not scan.multicoil:
        raise InputError(in_path, "is single-coil; prewhitening needs several coils")
    if config.noise is not None:
        noise, source, ratio = load_noise(config.noise, scan.num_coils), str(config.noise), None
    elif scan.noise is not None:
        noise, source, ratio = scan.noise, "noise acquisitions in the input", scan.noise_dwell_ratio
    else:
        raise InputError(in_path, "has no noise acquisitions; give a noise scan with --noise FILE")
    try:
        matrix = whitening_matrix(torch.from_numpy(noise), ratio)
    except ValueError as exc:
        raise InputError(config.noise or in_path, str(exc)) from exc
    scan.kspace = apply_whitening(torch.from_numpy(scan.kspace), matrix).numpy().astype(np.complex64)
    return {
        "prewhitened": True,
        "noise_source": source,
        "noise_samples": int(noise.shape[1]),
        "noise_dwell_ratio": ratio if ratio is not None else "unknown (no bandwidth scaling)",
        "whitening_matrix": matrix.numpy().astype(np.complex64),
    }


def convert_file(in_path: str | Path, out_path: str | Path, config: ConvertConfig) -> FileResult:
    """Convert one input (any supported format) into a fastMRI file at ``out_path``."""
    in_path, out_path = Path(in_path), Path(out_path)
    if config.readout_oversampling is not None and config.readout_oversampling < 1:
        raise InputError(None, "--readout-oversampling must be at least 1")
    fmt = detect_format(in_path) if config.input_format == "auto" else config.input_format
    if config.measurement != -1 and fmt != "twix":
        raise InputError(in_path, f"is {fmt}, not Siemens twix; --measurement applies to twix files only")
    if config.axes is not None and fmt != "npy":
        raise InputError(in_path, f"is {fmt}, not .npy; --axes applies to .npy arrays only (the format states its axes)")
    check_output(in_path, fmt, out_path, config.overwrite)
    scan = read_scan(in_path, fmt, config)
    if config.readout_oversampling is not None:
        scan.readout_oversampling = config.readout_oversampling
        scan.recon_size = None
    attrs: dict = {
        "acquisition": config.acquisition,
        "patient_id": in_path.stem,
        "source": in_path.name,
        "source_format": fmt,
        **scan.attrs,
    }
    if scan.system:
        attrs["system"] = json.dumps(scan.system)
    if config.prewhiten:
        attrs.update(prewhiten_scan(scan, in_path, config))
    elif config.noise is not None:
        raise InputError(config.noise, "is given without --prewhiten; add --prewhiten to use it")
    kspace = scan.kspace
    height, width = kspace.shape[-2:]
    if config.recon_size is not None:
        recon_h, recon_w = config.recon_size
    elif scan.recon_size is not None:
        recon_h, recon_w = scan.recon_size
    else:
        recon_h = height // scan.readout_oversampling
        recon_w = min(recon_h, width)
    if not (0 < recon_h <= height and 0 < recon_w <= width):
        raise InputError(in_path, f"recon size {recon_h}x{recon_w} does not fit the {height}x{width} k-space")
    targets: dict[str, np.ndarray] = {}
    mask = None
    if config.undersampled:
        mask = sampling_pattern(kspace)
        attrs["acceleration"] = float(mask.size / max(int(mask.sum()), 1))
        attrs["num_low_frequency"] = calibration_width(mask)
        first, stop = 0, width
    else:
        first, stop = scan.sampled_cols or sampled_column_range(kspace)
        target = zero_filled(torch.from_numpy(kspace), (recon_h, recon_w)).numpy()
        targets[TARGET_KEYS["multicoil" if scan.multicoil else "singlecoil"]] = target
        attrs["max"] = float(target.max())
        attrs["norm"] = float(np.linalg.norm(target))
    # the source states its FOV for its own recon matrix; a different --recon-size keeps the pixel size
    geometry = ImageGeometry.from_fov(scan.recon_fov_mm, scan.recon_size or (recon_h, recon_w), scan.geometry)
    if geometry.known:
        attrs["geometry"] = geometry.to_json()
    if scan.header_xml is not None and scan.recon_size == (recon_h, recon_w) and not config.undersampled:
        header = scan.header_xml  # the source's own header describes this k-space exactly
    else:
        header = ismrmrd_header_xml(
            (height, width),
            (recon_h, recon_w),
            (first, stop),
            kspace.shape[0],
            scan.recon_fov_mm,
            scan.readout_oversampling,
            scan.system,
            scan.sequence,
        )
    write_volume(out_path, kspace, header_xml=header, attrs=attrs, mask=mask, targets=targets, overwrite=config.overwrite)
    return FileResult(
        str(in_path),
        output=str(out_path),
        info={
            "format": fmt,
            "shape": list(kspace.shape),
            "challenge": "multicoil" if scan.multicoil else "singlecoil",
            "prewhitened": bool(config.prewhiten),
        },
    )


def convert_npy(in_path: str | Path, out_path: str | Path, config: ConvertConfig) -> FileResult:
    """Write ``in_path`` (a .npy k-space array) as a fastMRI file at ``out_path``."""
    config.input_format = "npy"
    return convert_file(in_path, out_path, config)
