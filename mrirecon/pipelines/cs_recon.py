"""``cs-recon``: total-variation compressed sensing, batched over the slices of each volume.

Per file: the sampling mask (the file's own, or drawn on the fly exactly as ``subsample``
draws it), the calibration region (``num_low_frequency`` or the detected fully sampled centre),
coil sensitivities (ESPIRiT, low-resolution ACS maps, or a map file; none for single coil),
then ``mrirecon.cs.recon.tv_recon`` on chunks of ``batch_slices`` slices on the device; the
magnitude is cropped exactly as ``zf-recon`` crops. ``TVCompressedSensing`` is the method object
the recon runner (``mrirecon.pipelines.runner``) calls per chunk; the runner owns the files, the
mask, the chunks (halved on out-of-memory) and the crop.

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
The noise floor (``--noise-floor``, default; ``mrirecon.cs.noise_floor``) is measured on the
scan's own coils before the compression, whose dropped coils' noise the output lacks too.

Formulation per slice (``--maps``, default ``auto``; ``mrirecon.cs.chunk``): one-set ESPIRiT SENSE
where the maps pass a calibration consistency test, otherwise map-free joint-sparsity TV over the
coil images; ``--json`` reports the choice, the test value and lambda per slice.

Default lambda and iterations (``DEFAULTS``), chosen by acceleration (nearest of 4x and 8x),
tuned on the sample scans and the real scans: see ``scripts/bench_cs.py``. ``--lam auto`` (the
default) starts from that lambda and raises it per slice in proportion to the zero-filled
image's noise-to-signal ratio where that is above the tuned scans' (multi-coil; ``mrirecon.cs.
lambda_choice``), so a noisier scan than those gets more regularisation; ``--lam discrepancy``
chooses it by a discrepancy principle instead (two probe solves); a number fixes it
(``scripts/bench_cs_choice.py --lam``).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from mrirecon.cs.chunk import (
    DATA_CONSISTENCY,
    LAMBDA_RULES,
    MAP_CHOICES,
    MIN_CALIBRATION,
    ChunkConfig,
    reconstruct_chunk,
)
from mrirecon.cs.formulations import REGULARISERS
from mrirecon.cs.noise_floor import readout_noise
from mrirecon.cs.recon import SOLVERS
from mrirecon.cs.tv import TV_KINDS
from mrirecon.io.errors import InputError
from mrirecon.io.fastmri_h5 import Volume, open_volume
from mrirecon.mri.coil_compression import compress, compression_matrix
from mrirecon.mri.crop import recon_crop_size
from mrirecon.mri.masks import MaskSpec
from mrirecon.mri.readout import readout_window
from mrirecon.mri.sensitivity import SENS_METHODS, calibration_region, load_maps, normalise_maps
from mrirecon.pipelines.batch import BatchOptions
from mrirecon.pipelines.common import BatchSummary, FileResult, expand_inputs, stderr_console
from mrirecon.pipelines.runner import Method, RunOptions, VolumeJob, recon_file, run_recon
from mrirecon.pipelines.sampling import SamplingMask

#: (lambda, iterations) per acceleration, at the reference scale of ``mrirecon.cs.recon``.
#: 4x runs 30 over-relaxed ADMM iterations (``mrirecon.cs.admm.RELAXATION``), 20 before: on the
#: suite's multi-coil 4x rows +0.001 to +0.009 SSIM (sample seed 22: 0.805 -> 0.814, BART's best
#: 0.815) except the noisy 2-coil GRE phantom (0.641 -> 0.611; zero filling 0.487, BART 0.585),
#: which ``--lam auto`` (the default) now gives more lambda for its noise: 0.642.
DEFAULTS: dict[int, tuple[float, int]] = {4: (0.002, 30), 8: (0.01, 30)}
#: Slices per batch on a CPU when --batch-slices is not given (bounds memory; a GPU takes the whole volume).
CPU_BATCH_SLICES = 8
#: Rows kept beyond the output rows on each side of the readout window (TV's periodic wrap-around
#: and the window edge stay this far from the output).
READOUT_MARGIN = 20


#: ``torch.compile`` mode of ADMM's multi-coil iteration under ``--compile``, by device type: CUDA
#: graphs on a GPU (one replay per iteration instead of dozens of kernel launches). None on a CPU:
#: inductor generates no code for complex operations (it falls back to the eager kernels), so
#: there is nothing to gain, and compiling a 2-slice test volume took minutes on this machine.
COMPILE_MODES = {"cuda": "reduce-overhead"}


#: Single-coil overrides of ``DEFAULTS``. With hard data consistency (the default: the measured
#: samples are kept, so lambda only shapes the unmeasured ones) single-coil TV wants 10x more than
#: before: on sample seeds 21-23 mean SSIM 0.617 at the old 0.002 / 0.006, 0.633 at 0.02, 0.635 at
#: 0.03, 0.632 at 0.05 (multi-coil TV's optimum did not move).
SINGLECOIL_DEFAULTS: dict[int, tuple[float, int]] = {4: (0.02, 20), 8: (0.02, 30)}


#: Defaults of the L1-wavelet regulariser (``--reg wavelet``): multi-coil lambda per acceleration
#: (nearest tuned one), single-coil lambda, FISTA iterations. Tuned with ``formulations.WAVELET``
#: (Haar) on sample seeds 21-23 and the real brain, checked on seeds 31-33 (``scripts/bench_cs.py``):
#: 4x wants little regularisation (0.001-0.002 on the samples and the brain), 8x more (0.005 on
#: the samples' map-free solves); the noisy real phantoms want 0.005-0.01 at both. 50 iterations
#: instead of TV's 20 raised the 4-coil brain at 4x from 0.80 to 0.84 SSIM. Retuned for hard data
#: consistency on sample seeds 21-23: multi-coil 8x 0.005 -> 0.01 (mean 0.556 -> 0.571), single-coil
#: 0.005 -> 0.01 (mean 0.616 -> 0.626). Multi-coil 4x 0.002 -> 0.005: the sample scans prefer 0.002
#: (mean 0.843 against 0.834 at 0.005 on seeds 21-23, 0.813 against 0.801 on held-out 31-33), but the
#: real multi-coil scans want 0.005-0.01 (mean of six 0.720 at 0.002, 0.761 at 0.005, 0.771 at 0.01),
#: and at 0.002 the noisy 2-coil GRE phantom was below zero filling (0.453 against 0.487; 0.616 at 0.005).
WAVELET_LAMS: dict[int, float] = {4: 0.005, 8: 0.01}
#: Single-coil per acceleration: 8x wants 0.02 (sample seeds 21-23 at 8x: 0.546 / 0.504 / 0.610 at
#: 0.01, 0.550 / 0.508 / 0.613 at 0.02; held-out seeds 31-33 0.489 / 0.492 / 0.538 and 0.482 /
#: 0.499 / 0.545), 4x stays at 0.01 (seed 22 and the virtual-coil brain lose 0.017 and 0.011 at 0.02).
WAVELET_SINGLECOIL_LAMS: dict[int, float] = {4: 0.01, 8: 0.02}
WAVELET_ITERS = 50
#: ``--reg tv+wavelet``: the TV term's lambda (multi-coil per acceleration, single-coil) and the
#: iteration counts (PDHG runs three times as many; TV's counts before TV's 4x moved to 30). Tuned
#: like the wavelet's (sample seeds 21-23, brain).
#: Single-coil retuned for hard data consistency (sample seeds 21-23: mean 0.594 at 0.002, 0.629 at 0.01).
TV_WAVELET_LAMS: dict[int, float] = {4: 0.001, 8: 0.002}
TV_WAVELET_ITERS: dict[int, int] = {4: 20, 8: 30}
TV_WAVELET_SINGLECOIL_LAM = 0.01


def default_parameters(acceleration: float, multicoil: bool = True, reg: str = "tv") -> tuple[float, int]:
    """Default ``(lam, iters)`` for the nearest tuned acceleration."""
    key = min(DEFAULTS, key=lambda a: abs(a - acceleration))
    if reg == "wavelet":
        return (WAVELET_LAMS[key] if multicoil else WAVELET_SINGLECOIL_LAMS[key]), WAVELET_ITERS
    if reg == "tv+wavelet":
        return (TV_WAVELET_LAMS[key] if multicoil else TV_WAVELET_SINGLECOIL_LAM), TV_WAVELET_ITERS[key]
    if not multicoil and key in SINGLECOIL_DEFAULTS:
        return SINGLECOIL_DEFAULTS[key]
    return DEFAULTS[key]


@dataclass
class CSConfig:
    """Everything ``cs-recon`` needs besides the paths. ``lam``/``iters`` ``None`` = per-acceleration defaults."""

    lam: float | str | None = None  # a number, a rule of LAMBDA_RULES (chosen per slice) or None (= "auto")
    iters: int | None = None
    maps: str = "auto"
    reg: str = "tv"
    tol: float = 1e-4
    solver: str = "admm"
    tv: str = "isotropic"
    device: str = "auto"
    batch_slices: int | None = None  # None: the whole volume on CUDA, CPU_BATCH_SLICES on a CPU
    sens: str = "espirit"
    coil_energy: float = 0.99
    full_readout: bool = False
    compile: bool = False  # ADMM's iteration through torch.compile (COMPILE_MODES by device); eager by default
    data_consistency: str = "hard"  # see mrirecon.cs.chunk
    noise_floor: bool = True  # with hard data consistency: the reference's noise floor (mrirecon.cs.noise_floor)
    mask: MaskSpec | None = None
    overwrite: bool = False
    verbose: bool = False
    sens_maps: Path | None = field(default=None, init=False)

    def validate(self) -> None:
        """Raise ``ValueError``/``InputError`` with one sentence if an option is unusable."""
        if isinstance(self.lam, str) and self.lam not in LAMBDA_RULES:
            try:
                self.lam = float(self.lam)
            except ValueError:
                raise ValueError(f"--lam must be a non-negative number, auto or discrepancy, got {self.lam!r}") from None
        if isinstance(self.lam, (int, float)) and not self.lam >= 0:
            raise ValueError(f"--lam must be non-negative, got {self.lam}")
        if self.maps not in MAP_CHOICES:
            raise ValueError(f"unknown --maps {self.maps!r}; use 1, 2 or auto")
        if self.reg not in REGULARISERS:
            raise ValueError(f"unknown --reg {self.reg!r}; use {', '.join(REGULARISERS)}")
        if self.data_consistency not in DATA_CONSISTENCY:
            raise ValueError(f"unknown --data-consistency {self.data_consistency!r}; use hard or soft")
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


class _CSJob(VolumeJob):
    """One volume: sampling-derived parameters, calibration region, readout window, per-chunk maps."""

    def __init__(self, method: "TVCompressedSensing", volume: Volume, sampling: SamplingMask, device: torch.device):
        super().__init__(volume, sampling, device)
        config = method.config
        path = volume.path
        self.config = config
        default_lam, default_iters = default_parameters(sampling.acceleration, volume.multicoil, config.reg)
        self.default_lam = default_lam
        self.lam = "auto" if config.lam is None else config.lam
        self.iters = default_iters if config.iters is None else config.iters
        self.hw = tuple(volume.kspace_shape[-2:])
        self.calib = calibration_region(sampling.mask, self.hw, sampling.num_low_frequency)
        self.window = None if config.full_readout else solve_window(sampling.mask, self.hw, volume.recon_crop)
        self.file_maps = None
        if volume.multicoil and config.sens_maps is not None:
            self.file_maps = load_maps(config.sens_maps, volume.kspace_shape)
        elif volume.multicoil and min(self.calib) < (MIN_CALIBRATION if config.maps != "auto" else 1):
            raise InputError(
                path,
                f"has a {self.calib[0]}x{self.calib[1]} fully sampled centre, too small to estimate coil sensitivities "
                f"from (at least {MIN_CALIBRATION}x{MIN_CALIBRATION}); pass --sens FILE, --maps auto or a larger --center-fraction",
            )
        elif not volume.multicoil and config.sens != "espirit":
            self.notes.append(f"{path}: single-coil data needs no sensitivity maps; --sens is ignored")
        if config.compile and device.type not in COMPILE_MODES:
            self.notes.append(f"{path}: --compile applies on CUDA only (a CPU gains nothing from torch.compile here); ran eagerly")
        self.methods: set[str] = set()
        self.virtual_coils = volume.num_coils
        self.iterations: list[int] = []
        self.slices: list[dict] = []
        self.history: list[float] = []

    def reconstruct(self, kspace: torch.Tensor, start: int, stop: int) -> torch.Tensor:
        config, volume = self.config, self.volume
        maps = None
        reference_noise = None
        if volume.multicoil:
            basis = None
            if config.coil_energy < 1:
                basis = compression_matrix(kspace, self.calib, config.coil_energy)
                if config.noise_floor and config.data_consistency == "hard":
                    reference_noise = readout_noise(kspace, self.mask)  # the output's reference has every coil
                kspace = compress(kspace, basis)
            if self.file_maps is not None:
                maps = self.file_maps[start:stop].to(self.device)
                maps = maps if basis is None else normalise_maps(compress(maps, basis))
        else:
            kspace = kspace.unsqueeze(1)
        chunk_config = ChunkConfig(
            lam=None if self.lam in LAMBDA_RULES else float(self.lam), default_lam=self.default_lam, iters=self.iters,
            lam_rule=self.lam if self.lam in LAMBDA_RULES else "auto",
            maps=config.maps, reg=config.reg, solver=config.solver, kind=config.tv, tol=config.tol,
            sens=config.sens if config.sens in SENS_METHODS else "espirit",
            track_objective=config.verbose,
            compile_mode=COMPILE_MODES.get(self.device.type) if config.compile else None,
            data_consistency=config.data_consistency, noise_floor=config.noise_floor,
        )
        result = reconstruct_chunk(
            kspace, self.mask, self.calib, chunk_config, window=self.window, maps=maps, multicoil=volume.multicoil,
            reference_noise=reference_noise,
        )
        methods = result.sensitivities
        sens_notes = [f"{volume.path}: slices {start}..{stop - 1}: {n}" for n in result.notes]
        # the chunk is done: only now does it leave a trace (an out-of-memory retry repeats it)
        self.virtual_coils = kspace.shape[1] if volume.multicoil else 1
        self.methods |= methods
        self.notes.extend(sens_notes)
        self.iterations.append(result.iterations)
        self.slices.extend(result.slices)
        if result.history:
            self.history = result.history
            if config.verbose:
                for i, value in enumerate(result.history, 1):
                    stderr_console.print(f"{volume.path.name} slices {start}..{stop - 1} iteration {i}: objective {value:.6g}")
        return result.magnitude

    def attrs(self) -> dict[str, Any]:
        return {"lambda": self.lam, "iterations": self.iters, "solver": self.config.solver, "tv": self.config.tv,
                "maps": self.config.maps, "reg": self.config.reg,
                "data_consistency": self.config.data_consistency, "noise_floor": self.config.noise_floor}

    def info(self) -> dict[str, Any]:
        info: dict[str, Any] = {
            "lambda": self.lam,
            "default_lambda": self.default_lam,
            "max_iterations": self.iters,
            "iterations_run": self.iterations,
            "slices": self.slices,
            "sensitivities": sorted(self.methods) if self.methods else None,
            "calibration": list(self.calib),
            "virtual_coils": self.virtual_coils,
            "solved_rows": self.hw[0] if self.window is None else self.window[1],
            "device": str(self.device),
        }
        if self.history:
            info["objective_last_chunk"] = self.history
        return info


class TVCompressedSensing(Method):
    """Total-variation CS (``mrirecon.cs.recon.tv_recon``) with the options of ``CSConfig``."""

    name = "cs-tv"
    needs_mask = True

    def __init__(self, config: CSConfig):
        self.config = config

    def options(self) -> dict[str, Any]:
        c = self.config
        sens: str = c.sens
        if c.sens_maps is not None:  # the maps' content, not only their name, decides the output
            sens = f"file:{hashlib.sha256(c.sens_maps.read_bytes()).hexdigest()[:16]}"
        return {
            "lam": c.lam, "iters": c.iters, "tol": c.tol, "solver": c.solver, "tv": c.tv, "sens": sens, "maps": c.maps, "reg": c.reg,
            "coil_energy": c.coil_energy, "full_readout": c.full_readout, "data_consistency": c.data_consistency,
            "noise_floor": c.noise_floor,
        }

    def chunk_slices(self, volume: Volume, device: torch.device) -> int:
        return volume.num_slices if device.type == "cuda" else CPU_BATCH_SLICES

    def begin(self, volume: Volume, sampling: SamplingMask | None, device: torch.device) -> VolumeJob:
        assert sampling is not None  # needs_mask
        return _CSJob(self, volume, sampling, device)


def run_options(config: CSConfig, quiet: bool = False, debug: bool = False, batch: BatchOptions | None = None) -> RunOptions:
    """The runner's share of ``config``, with the batch options."""
    return RunOptions.of(batch, mask=config.mask, device=config.device, batch_slices=config.batch_slices,
                         overwrite=config.overwrite, quiet=quiet, debug=debug)


def cs_file(path: Path, out_path: Path, config: CSConfig) -> FileResult:
    """Reconstruct one volume by TV compressed sensing and write it to ``out_path``."""
    config.validate()
    return recon_file(TVCompressedSensing(config), Path(path), Path(out_path), run_options(config))


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
    batch: BatchOptions | None = None,
) -> BatchSummary:
    """TV compressed-sensing reconstruction of this shard's input files into ``out_dir``."""
    config.validate()
    if config.sens_maps is not None:
        _check_map_shapes(expand_inputs(inputs), config.sens_maps)
    return run_recon("cs-recon", TVCompressedSensing(config), inputs, out_dir, run_options(config, quiet, debug, batch))
