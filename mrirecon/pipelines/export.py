"""``export``: reconstruction (or fastMRI) files -> NIfTI, DICOM, BART ``.cfl``/``.ra`` or a PNG montage.

One input gives: ``OUT/NAME.nii.gz``, the DICOM series folder ``OUT/NAME/`` (one file per slice),
``OUT/NAME.cfl`` + ``.hdr``, ``OUT/NAME.ra``, or ``OUT/NAME.png``. The image is the file's ``reconstruction``
(what the recon commands write), else its fully sampled target; ``kspace=True`` exports the
k-space itself (``.cfl``/``.ra`` only). Geometry comes from the file, else from ``geometry_from`` (the
fastMRI file it was reconstructed from, or a folder of them): reconstruction files carry none.
Every output is complete or absent: files go through the atomic writer, a DICOM series is
written in a hidden folder renamed into place.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mrirecon.io.atomic import current_umask, write_bytes_atomic
from mrirecon.io.h5_input import get_dataset, open_h5
from mrirecon.io.cfl import cfl_bytes, fastmri_to_bart, ra_bytes
from mrirecon.io.dicom import SeriesInfo, dicom_series
from mrirecon.io.errors import InputError, OutputExistsError
from mrirecon.io.fastmri_h5 import TARGET_KEYS
from mrirecon.io.image_geometry import ImageGeometry, geometry_from_file
from mrirecon.io.nifti import nifti_bytes
from mrirecon.io.png_montage import png_bytes
from mrirecon.pipelines.common import FileResult

EXPORT_FORMATS = ("nifti", "dicom", "cfl", "ra", "png")


@dataclass
class ExportConfig:
    """What to write and where."""

    fmt: str
    out_dir: Path
    geometry_from: Path | None = None
    kspace: bool = False
    overwrite: bool = False


def outputs_for(path: Path, config: ExportConfig) -> list[Path]:
    """The paths ``export`` writes for input ``path``."""
    stem = config.out_dir / path.stem
    return {
        "nifti": [stem.with_name(stem.name + ".nii.gz")],
        "dicom": [stem],
        "cfl": [stem.with_name(stem.name + ".cfl"), stem.with_name(stem.name + ".hdr")],
        "ra": [stem.with_name(stem.name + ".ra")],
        "png": [stem.with_name(stem.name + ".png")],
    }[config.fmt]


def check_plan(files: list[Path], config: ExportConfig) -> None:
    """Refuse, before any work, outputs that two inputs would share or that are inputs."""
    inputs = {os.path.realpath(f) for f in files}
    owner: dict[str, Path] = {}
    for file in files:
        for out in outputs_for(file, config):
            key = os.path.realpath(out)
            if key in inputs:
                raise InputError(out, "would be both an input and an output; export to another folder with -o")
            if key in owner and owner[key] != file:
                raise InputError(
                    out, f"would be written twice (by {owner[key]} and {file}, which share a name); export each folder with its own -o"
                )
            owner[key] = file


def read_image(path: Path, kspace: bool) -> tuple[np.ndarray, dict]:
    """The array to export (``(S, H, W)`` float image, or complex k-space) and the file's attributes."""
    with open_h5(path) as handle:
        attrs = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in handle.attrs.items()}
        keys = ["kspace"] if kspace else ["reconstruction", *TARGET_KEYS.values()]
        key = next((k for k in keys if handle.get(k, getlink=True) is not None), None)
        if key is None:
            raise InputError(path, f"has no {' or '.join(repr(k) for k in keys)} dataset")
        dataset = get_dataset(handle, key, path)  # refuses external storage/links, virtual data, implausible sizes
        data = dataset[()]
    if kspace:
        if data.dtype.kind != "c" or data.ndim not in (3, 4):
            raise InputError(path, f"'kspace' is {data.dtype} {data.shape}; expected complex (S, [C,] H, W)")
    elif data.ndim != 3 or data.dtype.kind not in "fc":
        raise InputError(path, f"'{key}' is {data.dtype} {data.shape}; expected (slices, H, W) images")
    if data.size == 0:
        raise InputError(path, f"'{key}' is empty {data.shape}")
    if not np.isfinite(data.view(np.float32) if data.dtype.kind == "c" else data).all():
        raise InputError(path, f"'{key}' has NaN or Inf values")
    return data, attrs


def find_geometry(path: Path, image_shape: tuple[int, ...], config: ExportConfig) -> ImageGeometry:
    """The geometry of ``path``: its own, else the ``geometry_from`` file (or same-named file in it)."""
    own = geometry_from_file(path)
    if own.known or config.geometry_from is None:
        return own
    source = config.geometry_from / path.name if config.geometry_from.is_dir() else config.geometry_from
    if not source.is_file():
        raise InputError(source, "does not exist (--geometry-from names the fastMRI file the recon came from)")
    geometry = geometry_from_file(source)
    if geometry.placement is not None and len(geometry.placement.positions) != image_shape[0]:
        raise InputError(
            source, f"has {len(geometry.placement.positions)} slice positions but {path.name} has {image_shape[0]} slices"
        )
    return geometry


def series_description(attrs: dict) -> str:
    """``mrirecon cs-tv 4x`` from the recon's attributes (method and acceleration when present)."""
    parts = ["mrirecon", str(attrs.get("method", "image"))]
    accel = attrs.get("acceleration")
    if accel is not None:
        parts.append(f"{float(accel):g}x")
    return " ".join(parts)


def write_series(folder: Path, files: list[bytes], overwrite: bool) -> None:
    """A DICOM series folder, all files or none: staged in a hidden folder, then renamed."""
    if folder.exists() and not overwrite:
        raise OutputExistsError(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", suffix=".tmp", dir=folder.parent))
    try:
        os.chmod(staging, 0o777 & ~current_umask())  # mkdtemp's 0700 would hide the series from the group
        for index, data in enumerate(files):
            write_bytes_atomic(staging / f"IM{index + 1:04d}.dcm", data, overwrite=False)
        if folder.exists():
            if not folder.is_dir():
                raise InputError(folder, "exists and is not a folder")
            shutil.rmtree(folder)
        os.rename(staging, folder)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def write_pair(paths: list[Path], blobs: list[bytes], overwrite: bool) -> None:
    """Files that belong together (BART's .cfl and .hdr): if a later one fails, the earlier go."""
    written: list[Path] = []
    try:
        for path, blob in zip(paths, blobs):
            write_bytes_atomic(path, blob, overwrite=overwrite)
            written.append(path)
    except BaseException:
        if not overwrite:
            for path in written:
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
        raise


def export_file(path: str | Path, config: ExportConfig) -> FileResult:
    """Export one file; returns its result (warnings in ``info['warnings']``)."""
    path = Path(path)
    outputs = outputs_for(path, config)
    for out in outputs:
        if out.resolve() == path.resolve():
            raise InputError(out, "is the input; export never overwrites its input")
        if out.exists() and not config.overwrite:
            raise OutputExistsError(out)
    if config.kspace and config.fmt not in ("cfl", "ra"):
        raise InputError(None, "--kspace exports k-space, which only the cfl and ra formats hold")
    data, attrs = read_image(path, config.kspace)
    warnings: list[str] = []
    info: dict = {"format": config.fmt, "shape": list(data.shape)}
    if config.fmt == "cfl":
        header, blob = cfl_bytes(fastmri_to_bart(data.astype(np.complex64)))
        write_pair([outputs[1], outputs[0]], [header, blob], config.overwrite)
        return FileResult(str(path), output=str(outputs[0]), info=info)
    if config.fmt == "ra":
        write_bytes_atomic(outputs[0], ra_bytes(fastmri_to_bart(data.astype(np.complex64))), overwrite=config.overwrite)
        return FileResult(str(path), output=str(outputs[0]), info=info)
    if config.fmt == "png":
        write_bytes_atomic(outputs[0], png_bytes(data), overwrite=config.overwrite)
        return FileResult(str(path), output=str(outputs[0]), info=info)
    image = np.abs(data).astype(np.float32)
    geometry = find_geometry(path, image.shape, config)
    info["geometry"] = "orientation and spacing" if geometry.placement else ("spacing" if geometry.known else "none")
    if config.fmt == "nifti":
        blob, known = nifti_bytes(image, geometry)
        if not known:
            warnings.append(
                f"{path}: no geometry in the file (give --geometry-from the fastMRI file it came from); "
                "the NIfTI affine is the identity"
            )
        write_bytes_atomic(outputs[0], blob, overwrite=config.overwrite)
    else:
        if not geometry.known:
            warnings.append(f"{path}: no geometry known; the DICOM series has no pixel spacing or positions")
        series = SeriesInfo(
            patient_id=str(attrs.get("patient_id", path.stem)),
            description=series_description(attrs),
            timestamp=_dt.datetime.now(),
        )
        write_series(outputs[0], dicom_series(image, geometry, series), config.overwrite)
    info["warnings"] = warnings
    return FileResult(str(path), output=str(outputs[0]), info=info)
