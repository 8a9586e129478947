"""Assemble one sample volume: anatomy, coils and scan settings drawn from (seed, index),
k-space and target from ``acquisition``, the ISMRMRD header and fastMRI's attributes."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import torch

from mrirecon.io.fastmri_h5 import TARGET_KEYS
from mrirecon.io.header import make_header_xml
from mrirecon.sampledata.acquisition import acquire, draw_scan, noise_std
from mrirecon.sampledata.anatomy import draw_anatomy
from mrirecon.sampledata.coils import draw_coil_array, noise_cholesky
from mrirecon.sampledata.contrast import ACQUISITIONS
from mrirecon.sampledata.phantom import background_phase, render_magnitude
from mrirecon.sampledata.shapes import make_grid


@dataclass(frozen=True)
class Preset:
    """Matrix sizes of a sample set: k-space (2x oversampled readout, padded phase encode;
    even sizes), target crop, and default slice and coil counts."""

    name: str
    kspace_hw: tuple[int, int]
    recon_hw: tuple[int, int]
    slices: int
    coils: int


PRESETS = {
    "small": Preset("small", (256, 144), (128, 128), slices=8, coils=8),
    "knee": Preset("knee", (640, 368), (320, 320), slices=35, coils=15),
}


@dataclass
class SampleVolume:
    """Everything a fastMRI train/val file holds, and a note of what was drawn."""

    kspace: np.ndarray  # complex64 (S, H, W) or (S, C, H, W)
    target: np.ndarray  # float32 (S, h, w)
    target_key: str
    header_xml: bytes
    attrs: dict
    info: dict  # for summaries; not written to the file


def volume_streams(seed: int, index: int) -> dict[str, np.random.SeedSequence]:
    """Independent random streams of volume ``index`` of a set, each a function of (seed, index)
    only: changing the coil count does not change the anatomy, and so on."""
    names = ("anatomy", "scan", "phase", "coils", "texture", "noise")
    return dict(zip(names, np.random.SeedSequence([seed, index]).spawn(len(names)), strict=True))


def torch_generator(stream: np.random.SeedSequence) -> torch.Generator:
    """A CPU torch generator seeded from ``stream``."""
    return torch.Generator().manual_seed(int(stream.generate_state(1, np.uint64)[0] >> np.uint64(1)))


def patient_id(seed: int, index: int) -> str:
    """A deterministic 64-hex-digit id, shaped like fastMRI's (the same for both challenges)."""
    return hashlib.sha256(f"mrirecon-sample-data:{seed}:{index}".encode()).hexdigest()


def make_volume(
    challenge: str,
    preset: Preset,
    slices: int,
    coils: int,
    seed: int,
    index: int,
    device: torch.device | str = "cpu",
) -> SampleVolume:
    """Volume ``index`` of the sample set ``seed``: fully sampled k-space, target, header, attributes.

    The same arguments give the same bytes on the CPU. The anatomy depends on (seed, index)
    only, so the single- and multi-coil volumes of a seed show the same "patient".
    """
    multicoil = challenge == "multicoil"
    streams = volume_streams(seed, index)
    acquisition = ACQUISITIONS[(seed + index) % 2]
    anatomy = draw_anatomy(np.random.default_rng(streams["anatomy"]), acquisition)
    scan_rng = np.random.default_rng(streams["scan"])
    scan = draw_scan(scan_rng, acquisition, preset.kspace_hw[1], multicoil)
    centre = anatomy.body.centre_z + scan_rng.uniform(-0.05, 0.05)
    offsets = torch.linspace(-0.5 * scan.span, 0.5 * scan.span, slices) if slices > 1 else torch.zeros(1)

    grid = make_grid(preset.kspace_hw, preset.recon_hw, centre + offsets, device)
    magnitude = render_magnitude(anatomy, grid, torch_generator(streams["texture"]))
    image = torch.polar(magnitude * scan.scale, background_phase(np.random.default_rng(streams["phase"]), grid))
    del magnitude

    coil_rng = np.random.default_rng(streams["coils"])
    body = anatomy.body
    array = draw_coil_array(coil_rng, coils, body.centre_v, body.centre_z, max(body.half_width * 1.1, body.depth))
    mixing = torch.as_tensor(noise_cholesky(array, coil_rng), dtype=torch.complex64, device=device)
    kspace, target = acquire(
        image,
        grid,
        array,
        scan,
        preset.recon_hw,
        multicoil,
        noise_std(scan, anatomy.levels["muscle"], coils, multicoil),
        mixing if multicoil else None,
        torch_generator(streams["noise"]),
    )

    header = make_header_xml(
        preset.kspace_hw,
        preset.recon_hw,
        scan.sampled,
        field_strength_t=scan.field_strength,
        system_model="mrirecon sample-data",
    )
    attrs = {
        "acquisition": acquisition,
        "max": float(target.max()),
        "norm": float(np.linalg.norm(target)),
        "patient_id": patient_id(seed, index),
        "mrirecon_sample_seed": int(seed),
        "mrirecon_sample_index": int(index),
        "mrirecon_sample_preset": preset.name,
    }
    info = {
        "acquisition": acquisition,
        "kspace_shape": list(kspace.shape),
        "target_shape": list(target.shape),
        "sampled_columns": list(scan.sampled),
        "field_strength_t": scan.field_strength,
        "snr": round(scan.snr, 2),
    }
    return SampleVolume(kspace, target, TARGET_KEYS[challenge], header, attrs, info)
