"""One chunk of slices, from masked k-space to images: sensitivities, the formulation, lambda, the solve.

Formulations (``FORMULATIONS``):

- ``sense``: one ESPIRiT map set (or ACS/file maps), TV by the closed-form ADMM fast path;
- ``sense2``: two ESPIRiT map sets (soft-SENSE, for a field of view smaller than the object);
- ``coil``: no maps, joint-sparsity TV over the coil images, RSS output (for calibration regions
  too small for trustworthy maps, and wherever the maps cannot explain the data).

``maps="1"``/``"2"`` force ``sense``/``sense2``. ``"auto"`` (the pipeline's default) chooses per
slice from the data alone, by a calibration consistency test of the maps: the low-resolution
coil images of the fully sampled calibration region are projected onto the one-set maps, and
the share of their energy the maps cannot explain (``map_misfit``) is the test. ``sense`` is
kept where the ESPIRiT maps are not weak (``mrirecon.mri.sensitivity``) and that share is at
most ``MAX_MAP_MISFIT``; everywhere else (weak maps: too few calibration lines, fold-over in a
field of view smaller than the object, maps that do not fit the coils) the map-free ``coil``
formulation, which on every measured case scored at least zero filling + 0.02 SSIM. The target
is never seen; single-coil data has one formulation. ``sense2`` is not an automatic candidate:
where it won, the map-free formulation came within 0.015 SSIM of it, at half its cost.
(Tried and dropped: a data-residual ratio to the map-free solve, and held-out k-space
prediction per formulation: on two real phantoms one-set SENSE predicted the held-out lines
best and still scored 0.13 below the map-free image.)

``data_consistency="hard"`` (the default): the solved images' k-space keeps every measured sample
exactly and the solution's prediction only where nothing was measured, and the output is the RSS
of those coil images (``mrirecon.mri.coils.data_consistent_coils``; the constraint of
equality-constrained CS, and the convention of fastMRI's RSS targets and of the E2E-VarNet's
output). The solve's L2 data term smooths the measured samples along with the rest; against a
fully sampled reference, whose measured samples are those exact values, that smoothing is pure
error. ``"soft"``: the solve's magnitude as it is (one-set SENSE ``|x|``, map sets
``sqrt(sum_m |x_m|^2)``). ``noise_floor`` (hard only, the default): the RSS gets the noise energy
of the samples it predicts added in quadrature, where the data show it
(``mrirecon.cs.noise_floor``; reported per slice as ``noise_floor`` and ``noise_floor_method``).

``lam=None``: lambda per slice from the data (``mrirecon.cs.lambda_choice``), by ``lam_rule``:

- ``"auto"`` (``--lam auto``, the pipeline's default): multi-coil, the default times the
  zero-filled image's noise-to-signal ratio over ``NOISE_REFERENCE`` where that is above 1
  (``noise_scaled_lambda``; a noise estimate and a quantile, no extra solve). Single coil keeps
  the default. A slice whose ratio is at most the reference keeps the default exactly.
- ``"discrepancy"`` (``--lam discrepancy``): the chosen formulation is solved for
  ``selection_iters`` iterations at two probe lambdas around the default, and the lambda whose
  data residual reaches ``DISCREPANCY_TAU`` times the measured samples' noise energy (log-log
  secant, clamped to ``LAMBDA_RANGE`` around the default; the default where the lower probe's
  residual is already above that target: model error, not noise) is solved on all the data.
  Measured (``scripts/bench_cs_choice.py --lam --rule discrepancy``, TV): +0.0005 mean SSIM over
  the fixed defaults on the suite's 28 rows at 1.3-2.35x the time; it left lambda at the default
  on 18 of them. On noisy scans the best lambda for SSIM against the noisy fully sampled target
  is smaller than Morozov's ``tau = 1`` gives: it chose too large a lambda on every tuning scan.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from mrirecon.cs.formulations import REGULARISERS, coil_tv_recon, sense_sets_tv_recon, sense_wavelet_recon
from mrirecon.cs.lambda_choice import (
    NOISE_REFERENCE,
    PROBE_FACTORS,
    NoiseEstimate,
    discrepancy_lambda,
    noise_scaled_lambda,
    noise_to_signal,
    noise_variance,
)
from mrirecon.cs.noise_floor import ReadoutNoise, restore_noise_floor
from mrirecon.cs.recon import tv_recon
from mrirecon.mri.coils import data_consistent_coils, rss
from mrirecon.mri.crop import center_crop
from mrirecon.mri.espirit import espirit
from mrirecon.mri.fft import fft2c
from mrirecon.mri.readout import crop_readout, crop_rows
from mrirecon.mri.sensitivity import estimate_maps, low_res_images, map_misfit

FORMULATIONS = ("sense", "sense2", "coil")
MAP_CHOICES = ("1", "2", "auto")
DATA_CONSISTENCY = ("hard", "soft")
#: How ``lam=None`` chooses lambda per slice, named as ``--lam`` names them (see the module docstring).
LAMBDA_RULES = ("auto", "discrepancy")
#: ``--lam discrepancy``: the data residual's target is this multiple of the measured samples' expected
#: noise energy (see ``mrirecon.cs.lambda_choice``). Morozov's 1 over-regularises every scan of the
#: tuning set (at 3x the default lambda the residual is still below the noise energy on all of
#: them; mean -0.066 SSIM against the fixed default); 0.03 was the best of 0.01-3 there (-0.002).
DISCREPANCY_TAU = 0.03
#: The smallest calibration region (rows and columns) sensitivities are estimated from; below it,
#: ``maps="auto"`` uses the map-free formulation only.
MIN_CALIBRATION = 4
#: ``maps="auto"`` trusts one ESPIRiT set on a slice when the maps are not weak and explain all
#: but this share of the low-resolution calibration images' energy (``map_misfit``). Measured
#: (on the suite of ``scripts/bench_cs.py``): at most 0.0032 where SENSE beat the map-free formulation,
#: at least 0.011 where it fell below it (two real phantoms at 4x), object pixels only. (The
#: full readout grid reads up to ~0.0075 on a 6-coil sample where the readout window reads 0.002.)
MAX_MAP_MISFIT = 0.009
#: The map-free joint TV is solved at this multiple of lambda (its coil-joint norm weighs more).
COIL_LAM_FACTOR = 0.5
#: PDHG (two map sets) needs more, cheaper iterations than ADMM for the same accuracy.
PDHG_ITERATION_FACTOR = 3


@dataclass
class ChunkConfig:
    """How to reconstruct a chunk: ``lam`` ``None`` chooses it (``default_lam`` is the centre of the
    candidates), ``maps`` one of ``MAP_CHOICES``."""

    lam: float | None
    default_lam: float
    iters: int
    maps: str = "auto"
    reg: str = "tv"
    solver: str = "admm"
    kind: str = "isotropic"
    tol: float = 1e-4
    sens: str = "espirit"
    seed: int = 0
    track_objective: bool = False
    compile_mode: str | None = None  # ADMM's iteration through torch.compile in this mode; None: eager
    data_consistency: str = "hard"
    lam_rule: str = "auto"
    noise_floor: bool = True  # hard data consistency only: see mrirecon.cs.noise_floor

    @property
    def selection_iters(self) -> int:
        return max(6, self.iters // 2)


@dataclass
class ChunkResult:
    """Magnitude images ``(S, H', W)`` (the solved rows), per-slice choices, iterations, notes."""

    magnitude: torch.Tensor
    slices: list[dict]
    iterations: int
    notes: list[str] = field(default_factory=list)
    history: list[float] = field(default_factory=list)
    sensitivities: set[str] = field(default_factory=set)


def _mask4(mask: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    m = mask.to(like.device, torch.float32)
    return m.reshape(1, 1, 1, -1) if m.ndim == 1 else m.reshape(1, 1, *m.shape)


class _Problem:
    """The chunk's data, maps and window, and one solver call per formulation."""

    def __init__(self, kspace, maps, maps2, window, config: ChunkConfig):
        self.full_rows = None
        if window is not None:
            self.full_rows = kspace.shape[-2]
            kspace = crop_readout(kspace, window)
            # maps estimated on the window's rows already (``estimate_maps(window=...)``) stay as they are
            if maps is not None and maps.shape[-2] == self.full_rows:
                maps = crop_rows(maps, window).contiguous()
            if maps2 is not None and maps2.shape[-2] == self.full_rows:
                maps2 = crop_rows(maps2, window).contiguous()
        self.kspace, self.maps, self.maps2, self.config = kspace, maps, maps2, config

    def solve(self, form: str, idx: torch.Tensor, mask: torch.Tensor, lam: torch.Tensor, iters: int, predict: bool = True):
        """``(magnitude (n, H, W), predicted k-space (n, C, H, W), iterations, history)`` for slices ``idx``
        (the prediction ``None`` unless ``predict``: a coil-sized FFT the final solve does not need)."""
        cfg = self.config
        k = self.kspace[idx] * _mask4(mask, self.kspace)
        wavelet = cfg.reg != "tv"  # every formulation has its wavelet version (one function, by the maps' shape)
        if form == "coil":
            if wavelet:
                x = sense_wavelet_recon(k, mask, None, lam * COIL_LAM_FACTOR, iters, cfg.reg, self.full_rows, cfg.seed)
            else:
                x = coil_tv_recon(k, mask, lam * COIL_LAM_FACTOR, iters, self.full_rows, coil_images=True)
            return torch.linalg.vector_norm(x, dim=1), fft2c(x) if predict else None, iters, []
        if form == "sense2":
            maps2 = self.maps2[idx]
            its = iters if wavelet else iters * PDHG_ITERATION_FACTOR
            if wavelet:
                x = sense_wavelet_recon(k, mask, maps2, lam, iters, cfg.reg, self.full_rows, cfg.seed)
            else:
                x = sense_sets_tv_recon(k, mask, maps2, lam, its, self.full_rows)
            pred = fft2c((maps2 * x.unsqueeze(2)).sum(dim=1)) if predict else None
            return torch.linalg.vector_norm(x, dim=1), pred, its, []
        maps = None if self.maps is None else self.maps[idx]
        if wavelet:
            x = sense_wavelet_recon(k, mask, maps, lam, iters, cfg.reg, self.full_rows, cfg.seed)
            coil = x.unsqueeze(1) if maps is None else maps * x.unsqueeze(1)
            return x.abs(), fft2c(coil) if predict else None, iters, []
        result = tv_recon(
            k, mask, maps, lam, solver=cfg.solver, max_iter=iters, tol=cfg.tol, kind=cfg.kind,
            track_objective=cfg.track_objective, full_rows=self.full_rows, compile_mode=cfg.compile_mode,
        )
        pred = None
        if predict:
            pred = fft2c(result.image.unsqueeze(1) if maps is None else maps * result.image.unsqueeze(1))
        return result.image.abs(), pred, result.iterations, result.history


@dataclass
class NoiseScaledChoice:
    """The default rule's per-slice lambda ``(S,)``, the noise estimate and noise-to-signal ratio it
    came from, and whether it applied (multi-coil; single coil keeps the default)."""

    lam: torch.Tensor
    noise: NoiseEstimate
    ratio: torch.Tensor
    multicoil: bool

    def report(self) -> list[dict]:
        """Per slice, the JSON fields that say what chose lambda."""
        sigma, ratio = self.noise.variance.sqrt().tolist(), self.ratio.tolist()
        rules = []
        for r in ratio:
            if not self.multicoil:
                rules.append("default (single coil)")
            else:
                rules.append("noise-scaled" if r > NOISE_REFERENCE else "default (noise below the reference)")
        return [{"lambda_rule": rules[j], "noise_to_signal": round(ratio[j], 5), "noise_sigma": float(f"{sigma[j]:.4g}"),
                 "noise_method": self.noise.method} for j in range(len(sigma))]


def noise_scaled_choice(kspace: torch.Tensor, mask: torch.Tensor, base: torch.Tensor, multicoil: bool) -> NoiseScaledChoice:
    """Per slice, the noise-scaled lambda around ``base`` (``kspace``: the chunk's masked k-space)."""
    noise = noise_variance(kspace, mask)
    ratio = noise_to_signal(kspace, noise).to(base.device)
    lam = noise_scaled_lambda(base, ratio) if multicoil else base.clone()
    return NoiseScaledChoice(lam, noise, ratio, multicoil)


@dataclass
class LambdaChoice:
    """``--lam discrepancy``'s per-slice lambda ``(S,)`` (before ``COIL_LAM_FACTOR``), the noise estimate and the
    discrepancy target and probes it came from (absolute data-residual energies)."""

    lam: torch.Tensor
    noise: NoiseEstimate
    target: torch.Tensor
    probes: torch.Tensor  # (len(PROBE_FACTORS), S)
    applied: torch.Tensor  # (S,) bool: the principle chose lambda (else the default stayed)

    def report(self) -> list[dict]:
        """Per slice, the JSON fields that say what chose lambda."""
        sigma = self.noise.variance.sqrt().tolist()
        ratio = (self.probes / self.target.clamp(min=1e-30)).T.tolist()
        applied = self.applied.tolist()
        return [
            {"lambda_rule": "discrepancy" if applied[j] else "default (residual above the noise target)", "noise_sigma": float(f"{sigma[j]:.4g}"), "noise_method": self.noise.method,
             "probe_residual_ratio": [round(r, 4) for r in ratio[j]]}
            for j in range(len(sigma))
        ]


def choose_lambda(
    problem: "_Problem", kspace: torch.Tensor, forms: list[str], chosen: torch.Tensor, mask: torch.Tensor,
    base: torch.Tensor, config: ChunkConfig,
) -> LambdaChoice:
    """Per slice, the discrepancy-principle lambda around ``base`` (see ``mrirecon.cs.lambda_choice``):
    the data residual of each slice's formulation, ``DISCREPANCY_TAU`` times the noise energy of its
    measured samples (``kspace``: the chunk's full masked k-space, read for the noise)."""
    noise = noise_variance(kspace, mask)
    data = problem.kspace * _mask4(mask, problem.kspace)
    measured = (data.abs().sum(1) > 0).flatten(1).sum(1).to(noise.variance)  # zero-padded columns excluded
    target = DISCREPANCY_TAU * noise.variance.to(measured.device) * measured

    def residual(lam: torch.Tensor) -> torch.Tensor:
        out = torch.zeros_like(lam)
        for i, form in enumerate(forms):
            idx = (chosen == i).nonzero().flatten()
            if idx.numel():
                _, pred, _, _ = problem.solve(form, idx, mask, lam[idx], config.selection_iters)
                out[idx] = torch.view_as_real(pred * _mask4(mask, pred) - data[idx]).square().flatten(1).sum(1).to(out)
        return out

    lam, probes, applied = discrepancy_lambda(residual, target, base)
    return LambdaChoice(lam, noise, target, probes, applied)


def reconstruct_chunk(
    kspace: torch.Tensor,
    mask: torch.Tensor,
    calib: tuple[int, int],
    config: ChunkConfig,
    *,
    window: tuple[int, int] | None = None,
    maps: torch.Tensor | None = None,
    multicoil: bool = True,
    reference_noise: ReadoutNoise | None = None,
) -> ChunkResult:
    """Reconstruct masked k-space ``(S, C, H, W)`` (``C = 1`` single coil) sampled by ``mask``
    (column ``(W,)`` or 2D) with calibration region ``calib``; ``maps`` given (a file) or estimated.
    ``window``: solve only those readout rows (see ``mrirecon.mri.readout``). ``reference_noise``:
    the noise of the scan's own coils where ``kspace`` holds fewer (coil compression): the noise
    floor's reference (default: ``kspace``'s own)."""
    if config.maps not in MAP_CHOICES:
        raise ValueError(f"unknown --maps {config.maps!r}; use 1, 2 or auto")
    if config.reg not in REGULARISERS:
        raise ValueError(f"unknown --reg {config.reg!r}; use {', '.join(REGULARISERS)}")
    if config.lam_rule not in LAMBDA_RULES:
        raise ValueError(f"unknown lambda rule {config.lam_rule!r}; use {' or '.join(LAMBDA_RULES)}")
    if config.data_consistency not in DATA_CONSISTENCY:
        raise ValueError(f"unknown --data-consistency {config.data_consistency!r}; use hard or soft")
    s = kspace.shape[0]
    device = kspace.device
    notes: list[str] = []
    sens_used: set[str] = set()
    weak = torch.zeros(s, dtype=torch.bool, device=device)
    forms = ["sense"]
    maps2 = None
    misfit: torch.Tensor | None = None
    chosen = torch.zeros(s, dtype=torch.long, device=device)
    if multicoil and maps is None and config.maps == "auto" and min(calib) < MIN_CALIBRATION:
        forms = ["coil"]
        notes.append(f"the {calib[0]}x{calib[1]} calibration region is too small for sensitivities; map-free formulation")
    elif multicoil:
        if maps is None and config.maps != "2":
            est = estimate_maps(kspace, calib, method=config.sens, window=window)
            maps, sens_used = est.maps, {est.method}
            notes.extend(est.notes)
            weak = est.weak.to(device) if est.weak is not None else weak
            misfit = est.misfit
        elif maps is not None:
            sens_used = {"file"}
        if config.maps == "2":
            maps2 = espirit(center_crop(kspace, calib), tuple(kspace.shape[-2:]), sets=2).maps
            forms = ["sense2"]
            sens_used.add("espirit-2")
        elif config.maps == "auto":
            if misfit is None:  # maps from a file, or the ACS method: test them all the same
                windowed = window is not None and maps.shape[-2] != kspace.shape[-2]
                images = low_res_images(kspace, calib, window if windowed else None)
                misfit = map_misfit(images, maps)
            misfit = misfit.to(device)
            forms = ["sense", "coil"]
            trusted = ~weak & (misfit <= MAX_MAP_MISFIT)
            chosen = torch.where(trusted, 0, 1)
    problem = _Problem(kspace, maps, maps2, window, config)
    base = torch.full((s,), float(config.default_lam if config.lam is None else config.lam), device=device)
    mask_t = torch.as_tensor(mask).bool()
    lam = base.clone()
    choice: LambdaChoice | NoiseScaledChoice | None = None
    if config.lam is None and config.lam_rule == "discrepancy":
        choice = choose_lambda(problem, kspace, forms, chosen, mask_t, base, config)
        lam = choice.lam
    elif config.lam is None:
        choice = noise_scaled_choice(kspace, mask_t, base, multicoil)
        lam = choice.lam
    magnitude = None
    iterations = 0
    history: list[float] = []
    hard = config.data_consistency == "hard"
    for i, f in enumerate(forms):
        idx = (chosen == i).nonzero().flatten()
        if idx.numel() == 0:
            continue
        mag, pred, its, hist = problem.solve(f, idx, mask_t, lam[idx], config.iters, predict=hard)
        if hard:
            mag = rss(data_consistent_coils(pred, problem.kspace[idx], _mask4(mask_t, pred)), dim=1)
        if magnitude is None:
            magnitude = torch.zeros(s, *mag.shape[1:], device=device)
        magnitude[idx] = mag.float()
        iterations = max(iterations, its)
        history = hist or history
    floor_h = None
    if hard and config.noise_floor and magnitude is not None:
        known = {"estimate": choice.noise} if choice is not None else {}  # read by the lambda rule already
        if isinstance(choice, NoiseScaledChoice):
            known["ratio"] = choice.ratio
        magnitude, floor_h = restore_noise_floor(magnitude, kspace, mask_t, reference=reference_noise, **known)
    # the per-slice report: one host read per tensor, not one per slice and value
    chosen_h, lam_h = chosen.tolist(), lam.tolist()
    misfit_h = None if misfit is None else misfit.tolist()
    weak_h = weak.tolist()
    choice_h = None if choice is None else choice.report()
    slices = []
    for j in range(s):
        form = forms[chosen_h[j]]
        info = {
            "formulation": form if multicoil else "single-coil",
            "lambda": lam_h[j] * (COIL_LAM_FACTOR if form == "coil" else 1.0),
        }
        if misfit_h is not None:
            info["map_misfit"] = round(misfit_h[j], 6)
            info["weak_maps"] = weak_h[j]
        if choice_h is not None:
            info.update(choice_h[j])
        if floor_h is not None:
            info.update(floor_h[j])
        slices.append(info)
    return ChunkResult(magnitude, slices, iterations, notes, history, sens_used)
