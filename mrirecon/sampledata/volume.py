"""Assemble one sample volume: anatomy -> coil images -> k-space with noise and padding,
the target the tool computes from it, the ISMRMRD header and fastMRI's attributes."""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass

import numpy as np
import torch

from mrirecon.io.fastmri_h5 import TARGET_KEYS
from mrirecon.io.header import make_header_xml
from mrirecon.mri.zero_filled import zero_filled
from mrirecon.sampledata.anatomy import draw_anatomy
from mrirecon.sampledata.coils import draw_coil_array, noise_cholesky, sensitivity_maps, single_coil_weights
from mrirecon.sampledata.contrast import ACQUISITIONS
from mrirecon.sampledata.phantom import background_phase, render_magnitude
from mrirecon.sampledata.shapes import make_grid

#: Complex values per k-space batch (slices x coils x H x W): bounds memory for knee volumes.
BATCH_ELEMENTS = 1 << 23


@dataclass(frozen=True)
class Preset:
    """Matrix sizes of a sample set: k-space (2x oversampled readout, padded phase encode),
    target crop, and default slice and coil counts."""

    name: str
    kspace_hw: tuple[int, int]
    recon_hw: tuple[int, int]
    slices: int
    coils: int

    def __post_init__(self) -> None:
        if any(n % 2 for n in self.kspace_hw):
            raise ValueError("sample k-space sizes must be even (see centred_fft_factors)")


def centred_fft_factors(height: int, width: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """A +-1 checkerboard ``c`` (H, W) with ``fft2c(x) == c * fft2(c * x)`` for even H and W.

    It replaces fft2c's two full-size shifts by sign flips, one of which is folded into
    the image (shared by all coils).
    """
    rows = torch.arange(height, device=device).view(-1, 1)
    cols = torch.arange(width, device=device).view(1, -1)
    board = 1 - 2 * ((rows + cols) % 2)
    board = board * (-1) ** ((height // 2 + width // 2) % 2)
    return board.to(torch.float32)


PRESETS = {
    "small": Preset("small", (256, 144), (128, 128), slices=8, coils=8),
    "knee": Preset("knee", (640, 368), (320, 320), slices=35, coils=15),
}


@dataclass
class SampleVolume:
    """Everything a fastMRI train/val file holds."""

    kspace: np.ndarray  # complex64 (S, H, W) or (S, C, H, W)
    target: np.ndarray  # float32 (S, h, w)
    target_key: str
    header_xml: bytes
    attrs: dict
    info: dict  # what was drawn (for summaries), not written to the file


def volume_streams(seed: int, index: int) -> dict[str, np.random.SeedSequence]:
    """Independent random streams of volume ``index`` of a set, each a function of (seed, index)
    only: changing the coil count does not change the anatomy, and so on."""
    names = ("anatomy", "scan", "phase", "coils", "texture", "noise")
    return dict(zip(names, np.random.SeedSequence([seed, index]).spawn(len(names)), strict=True))


def _torch_generator(stream: np.random.SeedSequence) -> torch.Generator:
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
    scan = np.random.default_rng(streams["scan"])
    acquisition = ACQUISITIONS[(seed + index) % 2]
    anatomy = draw_anatomy(np.random.default_rng(streams["anatomy"]), acquisition)
    field_strength = float(scan.choice([1.5, 3.0]))
    snr = scan.uniform(25.0, 40.0) * (1.0 if field_strength == 3.0 else 0.65) * (0.6 if "FS" in acquisition else 1.0)
    scale = (2.5e-4 if multicoil else 1.0e-4) * math.exp(scan.normal(0.0, 0.3))
    span = scan.uniform(1.25, 1.5)
    z_centre = anatomy.body.centre_z + scan.uniform(-0.05, 0.05)
    z = z_centre + (torch.linspace(-0.5 * span, 0.5 * span, slices) if slices > 1 else torch.zeros(1))
    height, width = preset.kspace_hw
    padded = int(round(width * scan.uniform(0.06, 0.11)))
    left = max(1, padded // 2 + int(scan.integers(-1, 2)))
    sampled = (left, width - (padded - left))

    grid = make_grid(preset.kspace_hw, preset.recon_hw, z, device)
    image = render_magnitude(anatomy, grid, _torch_generator(streams["texture"]))
    image = torch.polar(image * scale, background_phase(np.random.default_rng(streams["phase"]), grid))
    signs = centred_fft_factors(height, width, device)
    image *= signs

    coil_rng = np.random.default_rng(streams["coils"])
    body = anatomy.body
    array = draw_coil_array(coil_rng, coils, body.centre_v, body.centre_z, max(body.half_width * 1.1, body.depth))
    noise_level = scale * anatomy.levels["muscle"] / snr
    if multicoil:
        mixing = torch.as_tensor(noise_cholesky(array, coil_rng), dtype=torch.complex64, device=device)
        noise_level /= math.sqrt(coils)
    else:
        combine = single_coil_weights(array, device).view(1, -1, 1, 1)

    shape = (slices, coils, height, width) if multicoil else (slices, height, width)
    kspace = np.empty(shape, dtype=np.complex64)
    target = np.empty((slices, *preset.recon_hw), dtype=np.float32)
    noise_generator = _torch_generator(streams["noise"])
    batch = max(1, BATCH_ELEMENTS // (coils * height * width))
    for start in range(0, slices, batch):
        stop = min(start + batch, slices)
        maps = sensitivity_maps(array, grid.slices(start, stop))
        if not multicoil:
            maps = (maps * combine).sum(dim=1)
            coil_images = maps * image[start:stop]
        else:
            coil_images = maps * image[start:stop].unsqueeze(1)
        del maps
        data = torch.fft.fft2(coil_images, norm="ortho")  # times ``signs``: fft2c (see centred_fft_factors)
        del coil_images
        white = torch.randn((*data.shape, 2), generator=noise_generator, dtype=torch.float32)
        noise = torch.view_as_complex(white).to(device) * (noise_level / math.sqrt(2.0))
        if multicoil:
            noise = (mixing @ noise.flatten(-2)).view_as(data)
        data += noise  # white noise: flipping its signs with the data's changes nothing
        del noise, white
        data *= signs
        data[..., : sampled[0]] = 0
        data[..., sampled[1] :] = 0
        kspace[start:stop] = data.cpu().numpy()
        target[start:stop] = zero_filled(data, preset.recon_hw).cpu().numpy()
        del data

    header = make_header_xml(
        preset.kspace_hw, preset.recon_hw, sampled, field_strength_t=field_strength, system_model="mrirecon sample-data"
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
        "sampled_columns": list(sampled),
        "field_strength_t": field_strength,
        "snr": round(float(snr), 2),
    }
    return SampleVolume(kspace, target, TARGET_KEYS[challenge], header, attrs, info)
