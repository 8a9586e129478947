"""``convert``: a ``.npy`` k-space array -> a fastMRI file (fully sampled train/val-style, or
test-style when the array is already undersampled)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from mrirecon.io.errors import InputError
from mrirecon.io.fastmri_h5 import TARGET_KEYS, check_writable, write_volume
from mrirecon.io.header import make_header_xml
from mrirecon.io.npy_import import load_npy_kspace
from mrirecon.mri.zero_filled import zero_filled
from mrirecon.pipelines.common import FileResult
from mrirecon.pipelines.sampling import calibration_width


@dataclass
class ConvertConfig:
    """How to read the array and what to declare in the header."""

    axes: str | None = None
    readout_oversampling: int = 1
    recon_size: tuple[int, int] | None = None
    undersampled: bool = False
    acquisition: str = "UNKNOWN"
    overwrite: bool = False


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


def convert_npy(in_path: str | Path, out_path: str | Path, config: ConvertConfig) -> FileResult:
    """Write ``in_path`` (a .npy k-space array) as a fastMRI file at ``out_path``."""
    in_path, out_path = Path(in_path), Path(out_path)
    if config.readout_oversampling < 1:
        raise ValueError("--readout-oversampling must be at least 1")
    check_writable(out_path, config.overwrite)
    kspace = load_npy_kspace(in_path, config.axes)
    height, width = kspace.shape[-2:]
    if config.recon_size is not None:
        recon_h, recon_w = config.recon_size
    else:
        recon_h = height // config.readout_oversampling
        recon_w = min(recon_h, width)
    if not (0 < recon_h <= height and 0 < recon_w <= width):
        raise InputError(in_path, f"recon size {recon_h}x{recon_w} does not fit the {height}x{width} k-space")
    multicoil = kspace.ndim == 4
    attrs: dict = {
        "acquisition": config.acquisition,
        "patient_id": in_path.stem,
        "source": in_path.name,
    }
    targets: dict[str, np.ndarray] = {}
    mask = None
    if config.undersampled:
        mask = sampling_pattern(kspace)
        attrs["acceleration"] = float(mask.size / max(int(mask.sum()), 1))
        attrs["num_low_frequency"] = calibration_width(mask)
        first, stop = 0, width
    else:
        first, stop = sampled_column_range(kspace)
        target = zero_filled(torch.from_numpy(kspace), (recon_h, recon_w)).numpy()
        targets[TARGET_KEYS["multicoil" if multicoil else "singlecoil"]] = target
        attrs["max"] = float(target.max())
        attrs["norm"] = float(np.linalg.norm(target))
    header = make_header_xml((height, width), (recon_h, recon_w), sampled_cols=(first, stop))
    write_volume(out_path, kspace, header_xml=header, attrs=attrs, mask=mask, targets=targets, overwrite=config.overwrite)
    return FileResult(
        str(in_path),
        output=str(out_path),
        info={"shape": list(kspace.shape), "challenge": "multicoil" if multicoil else "singlecoil"},
    )
