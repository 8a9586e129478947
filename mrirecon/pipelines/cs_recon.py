"""``cs-recon``: total-variation compressed sensing, batched over the slices of each volume.

Per file: the sampling mask (the file's own, or drawn on the fly exactly as ``subsample``
draws it), the calibration region (``num_low_frequency`` or the detected fully sampled centre),
coil sensitivities (ESPIRiT, low-resolution ACS maps, or a map file; none for single coil),
then ``mrirecon.cs.recon.tv_recon`` on chunks of ``batch_slices`` slices on the device (on CUDA
out-of-memory the chunk is halved and retried); the magnitude is cropped exactly as ``zf-recon``
crops.

Readout window (default; ``full_readout`` / ``--full-readout`` turns it off): with a column mask
the readout (rows) is fully sampled, so each image row is its own data-consistency problem and
only TV couples neighbours. The solve then keeps only the output rows plus ``READOUT_MARGIN``
rows each side (``mrirecon.mri.readout``: inverse FFT along the readout, drop rows, FFT back),
with the maps (estimated on the full grid) cropped to the same rows. On fastMRI's 2x oversampled
readout (640 rows, 320 output) that solves 360 rows instead of 640, with the same output up to
~1e-5 relative (the reference scale is kept consistent, see ``mrirecon.cs.recon``, so lambda
means the same). 2D masks undersample the readout too, and need the full grid.

Multi-coil outputs are ``|x|`` with unit-norm maps, on the scale of fastMRI's RSS targets
(see ``mrirecon.mri.sensitivity``). Multi-coil k-space is first compressed to the virtual coils
that keep ``coil_energy`` (default 99%) of the calibration region's energy
(``mrirecon.mri.coil_compression``): 15 knee coils become about 9, at a cost of ~0.002 SSIM.

Default lambda and iterations (``DEFAULTS``, used when ``--lam``/``--iters`` are not given),
chosen by acceleration (nearest of 4x and 8x), tuned on the sample scans and the real scans:
see ``scripts/bench_cs.py``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from mrirecon.cs.chunk import MAP_CHOICES, MIN_CALIBRATION, ChunkConfig, reconstruct_chunk
from mrirecon.cs.recon import SOLVERS
from mrirecon.cs.tv import TV_KINDS
from mrirecon.io.errors import InputError
from mrirecon.io.fastmri_h5 import check_writable, open_volume, write_reconstruction
from mrirecon.mri.coil_compression import compress, compression_matrix
from mrirecon.mri.crop import center_crop, recon_crop_size
from mrirecon.mri.masks import MaskSpec
from mrirecon.mri.readout import readout_window
from mrirecon.mri.sensitivity import SENS_METHODS, calibration_region, load_maps, normalise_maps
from mrirecon.pipelines.common import BatchSummary, FileResult, expand_inputs, output_path, run_batch, stderr_console
from mrirecon.pipelines.devices import resolve_device
from mrirecon.pipelines.sampling import read_sampled_kspace, sampling_for
from mrirecon.pipelines.zf_recon import recon_attrs

#: (lambda, iterations) per acceleration, at the reference scale of ``mrirecon.cs.recon``.
DEFAULTS: dict[int, tuple[float, int]] = {4: (0.002, 20), 8: (0.01, 30)}
#: With the default lambda, slices whose ESPIRiT maps were weak (ACS fallback) get this much
#: more regularisation: their SENSE model is less exact.
WEAK_MAPS_LAM_FACTOR = 3.0
#: Slices per batch on a CPU when --batch-slices is not given (bounds memory; a GPU takes the whole volume).
CPU_BATCH_SLICES = 8
#: Rows kept beyond the output rows on each side of the readout window (TV's periodic wrap-around
#: and the window edge stay this far from the output).
READOUT_MARGIN = 20


def default_parameters(acceleration: float) -> tuple[float, int]:
    """Default ``(lam, iters)`` for the nearest tuned acceleration."""
    key = min(DEFAULTS, key=lambda a: abs(a - acceleration))
    return DEFAULTS[key]


@dataclass
class CSConfig:
    """Everything ``cs-recon`` needs besides the paths. ``lam``/``iters`` ``None`` = per-acceleration defaults."""

    lam: float | str | None = None  # a number, "auto" (chosen per slice) or None (per-acceleration default)
    iters: int | None = None
    maps: str = "1"
    tol: float = 1e-4
    solver: str = "admm"
    tv: str = "isotropic"
    device: str = "auto"
    batch_slices: int | None = None  # None: the whole volume on CUDA, CPU_BATCH_SLICES on a CPU
    sens: str = "espirit"
    coil_energy: float = 0.99
    full_readout: bool = False
    mask: MaskSpec | None = None
    overwrite: bool = False
    verbose: bool = False
    sens_maps: Path | None = field(default=None, init=False)

    def validate(self) -> None:
        """Raise ``ValueError``/``InputError`` with one sentence if an option is unusable."""
        if isinstance(self.lam, str) and self.lam != "auto":
            try:
                self.lam = float(self.lam)
            except ValueError:
                raise ValueError(f"--lam must be a non-negative number or auto, got {self.lam!r}") from None
        if isinstance(self.lam, float) and not self.lam >= 0:
            raise ValueError(f"--lam must be non-negative, got {self.lam}")
        if self.maps not in MAP_CHOICES:
            raise ValueError(f"unknown --maps {self.maps!r}; use 1, 2 or auto")
        if self.iters is not None and self.iters < 1:
            raise ValueError(f"--iters must be at least 1, got {self.iters}")
        if not self.tol >= 0:
            raise ValueError(f"--tol must be non-negative, got {self.tol}")
        if self.solver not in SOLVERS:
            raise ValueError(f"unknown solver {self.solver!r}; use {' or '.join(SOLVERS)}")
        if self.tv not in TV_KINDS:
            raise ValueError(f"unknown TV kind {self.tv!r}; use isotropic or anisotropic")
        if not 0 < self.coil_energy <= 1:
            raise ValueError(f"--coil-energy must be in (0, 1], got {self.coil_energy}")
        if self.batch_slices is not None and self.batch_slices < 1:
            raise ValueError(f"--batch-slices must be at least 1, got {self.batch_slices}")
        if self.mask is not None:
            self.mask.validate()
        if self.sens not in SENS_METHODS:
            path = Path(self.sens)
            if not path.is_file():
                raise InputError(path, "is neither a sensitivity method (espirit, acs) nor an existing map file")
            self.sens_maps = path


def solve_window(sampling_mask: np.ndarray, image_hw: tuple[int, int], recon_hw: tuple[int, int]) -> tuple[int, int] | None:
    """The readout rows ``(top, n)`` to solve for (see the module docstring), or ``None`` for the full grid."""
    if sampling_mask.ndim != 1:
        return None
    out_rows = recon_crop_size(image_hw, recon_hw)[0]
    return readout_window(image_hw[0], out_rows, READOUT_MARGIN)


def cs_file(path: Path, out_path: Path, config: CSConfig) -> FileResult:
    """Reconstruct one volume by TV compressed sensing and write it to ``out_path``."""
    check_writable(out_path, config.overwrite)
    device = resolve_device(config.device)
    notes: list[str] = []
    with open_volume(path) as volume:
        notes.extend(volume.warnings)
        sampling = sampling_for(volume, config.mask, required=True)
        default_lam, default_iters = default_parameters(sampling.acceleration)
        lam = config.lam if isinstance(config.lam, float) else ("auto" if config.lam == "auto" else default_lam)
        iters = default_iters if config.iters is None else config.iters
        hw = tuple(volume.kspace_shape[-2:])
        calib = calibration_region(sampling.mask, hw, sampling.num_low_frequency)
        window = None if config.full_readout else solve_window(sampling.mask, hw, volume.recon_crop)
        file_maps = None
        if volume.multicoil and config.sens_maps is not None:
            file_maps = load_maps(config.sens_maps, volume.kspace_shape)
        elif volume.multicoil and min(calib) < MIN_CALIBRATION and config.maps != "auto":
            raise InputError(
                path,
                f"has a {calib[0]}x{calib[1]} fully sampled centre, too small to estimate coil sensitivities "
                f"from (at least {MIN_CALIBRATION}x{MIN_CALIBRATION}); pass --sens FILE, --maps auto or a larger --center-fraction",
            )
        elif not volume.multicoil and config.sens != "espirit":
            notes.append(f"{path}: single-coil data needs no sensitivity maps; --sens is ignored")
        mask = torch.from_numpy(sampling.mask).to(device)
        methods: set[str] = set()
        virtual_coils = volume.num_coils
        iterations: list[int] = []
        per_slice: list[dict] = []
        history: list[float] = []
        chunks: list[torch.Tensor] = []
        batch = config.batch_slices or (volume.num_slices if device.type == "cuda" else CPU_BATCH_SLICES)
        start = 0
        while start < volume.num_slices:
            stop = min(start + batch, volume.num_slices)
            try:
                kspace = read_sampled_kspace(volume, sampling, start, stop).to(device)
                chunk_maps = None
                if volume.multicoil:
                    basis = None
                    if config.coil_energy < 1:
                        basis = compression_matrix(kspace, calib, config.coil_energy)
                        kspace = compress(kspace, basis)
                    if file_maps is not None:
                        chunk_maps = file_maps[start:stop].to(device)
                        chunk_maps = chunk_maps if basis is None else normalise_maps(compress(chunk_maps, basis))
                else:
                    kspace = kspace.unsqueeze(1)
                virtual_coils = kspace.shape[1] if volume.multicoil else 1
                chunk_config = ChunkConfig(
                    lam=None if lam == "auto" else float(lam), default_lam=default_lam, iters=iters, maps=config.maps,
                    solver=config.solver, kind=config.tv, tol=config.tol,
                    sens=config.sens if config.sens in SENS_METHODS else "espirit",
                    weak_lam_factor=WEAK_MAPS_LAM_FACTOR if config.lam is None else 1.0, track_objective=config.verbose,
                )
                result = reconstruct_chunk(
                    kspace, mask, calib, chunk_config, window=window, maps=chunk_maps, multicoil=volume.multicoil
                )
                methods.update(result.sensitivities)
                notes.extend(f"{path}: slices {start}..{stop - 1}: {n}" for n in result.notes)
            except torch.cuda.OutOfMemoryError:
                if batch == 1:
                    raise
                batch = max(1, batch // 2)
                torch.cuda.empty_cache()
                notes.append(f"{path}: CUDA out of memory; retrying with {batch} slice(s) per batch")
                continue
            magnitude = result.magnitude
            crop = recon_crop_size(tuple(magnitude.shape[-2:]), volume.recon_crop)
            chunks.append(center_crop(magnitude, crop).cpu())
            iterations.append(result.iterations)
            per_slice.extend(result.slices)
            if result.history:
                history = result.history
                if config.verbose:
                    for i, value in enumerate(result.history, 1):
                        stderr_console.print(f"{path.name} slices {start}..{stop - 1} iteration {i}: objective {value:.6g}")
            start = stop
        recon = torch.cat(chunks).numpy().astype(np.float32)
        attrs = recon_attrs(volume.attrs, sampling.acceleration, "cs-tv")
        attrs.update({"lambda": str(lam), "iterations": iters, "solver": config.solver, "tv": config.tv, "maps": config.maps})
        write_reconstruction(out_path, recon, attrs=attrs, overwrite=config.overwrite)
        info = {
            "shape": list(recon.shape),
            "lambda": lam,
            "max_iterations": iters,
            "iterations_run": iterations,
            "slices": per_slice,
            "sensitivities": sorted(methods) if methods else None,
            "calibration": list(calib),
            "virtual_coils": virtual_coils,
            "solved_rows": hw[0] if window is None else window[1],
            "device": str(device),
            "warnings": notes,
        }
        if history:
            info["objective_last_chunk"] = history
        return FileResult(str(path), output=str(out_path), info=info)


def _check_map_shapes(files: Sequence[Path], maps_path: Path) -> None:
    """Refuse a map file whose shape fits none of the multi-coil inputs before any work starts."""
    for path in files:
        try:
            volume = open_volume(path)
        except InputError:
            continue  # reported per file by the batch
        with volume:
            if volume.multicoil:
                load_maps(maps_path, volume.kspace_shape)


def cs_recon(
    inputs: Sequence[str | Path],
    out_dir: str | Path,
    config: CSConfig,
    *,
    quiet: bool = False,
    debug: bool = False,
) -> BatchSummary:
    """TV compressed-sensing reconstruction of every input file into ``out_dir``."""
    config.validate()
    resolve_device(config.device)
    files = expand_inputs(inputs)
    if not files:
        raise InputError(None, "no input files found")
    if config.sens_maps is not None:
        _check_map_shapes(files, config.sens_maps)
    out_dir = Path(out_dir)
    return run_batch(
        "cs-recon", files, lambda p: cs_file(p, output_path(out_dir, p), config), quiet=quiet, debug=debug
    )
