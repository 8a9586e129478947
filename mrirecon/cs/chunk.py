"""One chunk of slices, from masked k-space to images: sensitivities, the formulation, lambda, the solve.

Formulations (``FORMULATIONS``):

- ``sense``: one ESPIRiT map set (or ACS/file maps), TV by the closed-form ADMM fast path;
- ``sense2``: two ESPIRiT map sets (soft-SENSE, for a field of view smaller than the object);
- ``coil``: no maps, joint-sparsity TV over the coil images, RSS output (for calibration regions
  too small for trustworthy maps, and wherever the maps cannot explain the data).

``maps="1"``/``"2"`` force ``sense``/``sense2``. ``"auto"`` chooses per slice from the data alone,
by consistency: every candidate (``sense``, ``coil`` and, where the second ESPIRiT eigenvalue
shows fold-over, ``sense2``) is solved on all the data, and the first map-based one whose relative
data residual ``||M (F S x) - y||^2 / ||M y||^2`` is at most ``RESIDUAL_RATIO`` times the map-free
one's wins (the map-free model fits almost any data, so a map model far above it is wrong);
otherwise ``coil``. The target is never seen. Single-coil data has one formulation.
Measured limits of that rule (``scripts/bench_cs.py``): it leaves one-set SENSE where SENSE fails
(aliased fields of view, the GE phantom: +0.1 to +0.26 SSIM), but also on some sample scans where
SENSE was better (residual ratios overlap, ~100-300, between the two groups), which is why
``maps="1"`` stays the pipeline's default.

``lam=None`` (``--lam auto``): lambda per slice by hold-out validation: a seeded
``HOLDOUT_FRACTION`` of the sampled columns outside the calibration region (samples, for 2D
masks) is held out, the chosen formulation is solved for ``selection_iters`` iterations on the rest
at ``LAM_FACTORS`` times the default, and the lambda that predicts the held-out k-space best wins;
the winner is then solved on all the data. (Measured in ``scripts/bench_cs.py``: on the sample
scans it often picks a worse lambda than the default, so it is not the default.)
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from mrirecon.cs.formulations import REGULARISERS, coil_tv_recon, sense_sets_tv_recon, sense_wavelet_recon
from mrirecon.cs.recon import tv_recon
from mrirecon.mri.crop import center_crop
from mrirecon.mri.espirit import espirit
from mrirecon.mri.fft import fft2c
from mrirecon.mri.readout import crop_readout, crop_rows
from mrirecon.mri.sensitivity import estimate_maps, low_res_images

FORMULATIONS = ("sense", "sense2", "coil")
MAP_CHOICES = ("1", "2", "auto")
#: Share of the sampled non-calibration columns (or samples) held out to choose from.
HOLDOUT_FRACTION = 0.2
#: Lambda candidates for ``--lam auto``, as multiples of the per-acceleration default.
LAM_FACTORS = (1.0 / 3.0, 1.0, 3.0)
#: ``sense2`` is a candidate for a slice when this share of its object pixels has a second
#: ESPIRiT eigenvalue above the second set's crop (a fold-over).
FOLD_SHARE = 0.02
#: The smallest calibration region (rows and columns) sensitivities are estimated from; below it,
#: ``maps="auto"`` uses the map-free formulation only.
MIN_CALIBRATION = 4
#: A map-based formulation is kept when its data residual is at most this multiple of the
#: map-free one's (which fits the data almost exactly): beyond it the maps cannot explain the data.
RESIDUAL_RATIO = 4.0
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
    weak_lam_factor: float = 1.0
    seed: int = 0
    track_objective: bool = False

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


def holdout_masks(mask: torch.Tensor, calib: tuple[int, int], seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Split a boolean column ``(W,)`` or 2D ``(H, W)`` mask into (kept, held out): ``HOLDOUT_FRACTION``
    of the sampled entries outside the centred calibration region, drawn with ``seed``."""
    mask = mask.bool().cpu()
    free = mask.clone()
    if mask.ndim == 1:
        w = mask.shape[0]
        left = (w - calib[1]) // 2
        free[left : left + calib[1]] = False
    else:
        h, w = mask.shape
        top, left = (h - calib[0]) // 2, (w - calib[1]) // 2
        free[top : top + calib[0], left : left + calib[1]] = False
    idx = free.flatten().nonzero().flatten()
    gen = torch.Generator().manual_seed(seed)
    n = max(1, round(HOLDOUT_FRACTION * idx.numel())) if idx.numel() >= 2 else 0
    chosen = idx[torch.randperm(idx.numel(), generator=gen)[:n]]
    held = torch.zeros(mask.numel(), dtype=torch.bool)
    held[chosen] = True
    held = held.reshape(mask.shape)
    return mask & ~held, held


def relative_residual(pred: torch.Tensor, kspace: torch.Tensor, mask4: torch.Tensor) -> torch.Tensor:
    """``||M (pred - y)||^2 / ||M y||^2`` per slice ``(S,)``."""
    data = kspace * mask4
    diff = torch.view_as_real(pred * mask4 - data).square().flatten(1).sum(1)
    return diff / torch.view_as_real(data).square().flatten(1).sum(1).clamp(min=1e-30)


def choose_formulation(forms: list[str], residuals: dict[str, torch.Tensor]) -> torch.Tensor:
    """Per slice, the index in ``forms`` of the first map-based formulation (``sense``, then
    ``sense2``) whose data residual is at most ``RESIDUAL_RATIO`` times the map-free one's, else ``coil``."""
    coil = residuals["coil"]
    chosen = torch.full_like(coil, forms.index("coil"), dtype=torch.long)
    for f in reversed([f for f in ("sense", "sense2") if f in forms]):
        chosen = torch.where(residuals[f] <= RESIDUAL_RATIO * coil, forms.index(f), chosen)
    return chosen


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

    def solve(self, form: str, idx: torch.Tensor, mask: torch.Tensor, lam: torch.Tensor, iters: int):
        """``(magnitude (n, H, W), predicted k-space (n, C, H, W), iterations, history)`` for slices ``idx``."""
        cfg = self.config
        k = self.kspace[idx] * _mask4(mask, self.kspace)
        wavelet = cfg.reg != "tv"  # every formulation has its wavelet version (one function, by the maps' shape)
        if form == "coil":
            if wavelet:
                x = sense_wavelet_recon(k, mask, None, lam * COIL_LAM_FACTOR, iters, cfg.reg, self.full_rows, cfg.seed)
            else:
                x = coil_tv_recon(k, mask, lam * COIL_LAM_FACTOR, iters, self.full_rows, coil_images=True)
            return torch.linalg.vector_norm(x, dim=1), fft2c(x), iters, []
        if form == "sense2":
            maps2 = self.maps2[idx]
            its = iters if wavelet else iters * PDHG_ITERATION_FACTOR
            if wavelet:
                x = sense_wavelet_recon(k, mask, maps2, lam, iters, cfg.reg, self.full_rows, cfg.seed)
            else:
                x = sense_sets_tv_recon(k, mask, maps2, lam, its, self.full_rows)
            pred = fft2c((maps2 * x.unsqueeze(2)).sum(dim=1))
            return torch.linalg.vector_norm(x, dim=1), pred, its, []
        maps = None if self.maps is None else self.maps[idx]
        if wavelet:
            x = sense_wavelet_recon(k, mask, maps, lam, iters, cfg.reg, self.full_rows, cfg.seed)
            coil = x.unsqueeze(1) if maps is None else maps * x.unsqueeze(1)
            return x.abs(), fft2c(coil), iters, []
        result = tv_recon(
            k, mask, maps, lam, solver=cfg.solver, max_iter=iters, tol=cfg.tol, kind=cfg.kind,
            track_objective=cfg.track_objective, full_rows=self.full_rows,
        )
        coil = result.image.unsqueeze(1) if maps is None else maps * result.image.unsqueeze(1)
        return result.image.abs(), fft2c(coil), result.iterations, result.history


def _fold_over(maps2_eig: torch.Tensor, low_res_power: torch.Tensor) -> torch.Tensor:
    """Per slice: True when the second eigenvalue exceeds the second set's crop on ``FOLD_SHARE`` of the object."""
    from mrirecon.mri.espirit import SECOND_SET_CROP

    obj = low_res_power > 0.2 * low_res_power.amax(dim=(-2, -1), keepdim=True)
    second = (maps2_eig[:, 1] > SECOND_SET_CROP) & obj
    return second.sum(dim=(-2, -1)) > FOLD_SHARE * obj.sum(dim=(-2, -1)).clamp(min=1)


def reconstruct_chunk(
    kspace: torch.Tensor,
    mask: torch.Tensor,
    calib: tuple[int, int],
    config: ChunkConfig,
    *,
    window: tuple[int, int] | None = None,
    maps: torch.Tensor | None = None,
    multicoil: bool = True,
) -> ChunkResult:
    """Reconstruct masked k-space ``(S, C, H, W)`` (``C = 1`` single coil) sampled by ``mask``
    (column ``(W,)`` or 2D) with calibration region ``calib``; ``maps`` given (a file) or estimated.
    ``window``: solve only those readout rows (see ``mrirecon.mri.readout``)."""
    if config.maps not in MAP_CHOICES:
        raise ValueError(f"unknown --maps {config.maps!r}; use 1, 2 or auto")
    if config.reg not in REGULARISERS:
        raise ValueError(f"unknown --reg {config.reg!r}; use {', '.join(REGULARISERS)}")
    s = kspace.shape[0]
    device = kspace.device
    notes: list[str] = []
    sens_used: set[str] = set()
    weak = torch.zeros(s, dtype=torch.bool, device=device)
    forms = ["sense"]
    maps2 = None
    if multicoil and maps is None and config.maps == "auto" and min(calib) < MIN_CALIBRATION:
        forms = ["coil"]
        notes.append(f"the {calib[0]}x{calib[1]} calibration region is too small for sensitivities; map-free formulation")
    elif multicoil:
        if maps is None and config.maps != "2":
            est = estimate_maps(kspace, calib, method=config.sens, window=window)
            maps, sens_used = est.maps, {est.method}
            notes.extend(est.notes)
            weak = est.weak.to(device) if est.weak is not None else weak
        elif maps is not None:
            sens_used = {"file"}
        if config.maps != "1":
            two = espirit(center_crop(kspace, calib), tuple(kspace.shape[-2:]), sets=2)
            maps2 = two.maps
            fold = _fold_over(two.eigenvalues, torch.linalg.vector_norm(low_res_images(kspace, calib), dim=1))
            if config.maps == "2":
                forms = ["sense2"]
            else:
                forms = ["sense", "coil"] + (["sense2"] if bool(fold.any()) else [])
            sens_used.add("espirit-2")
    problem = _Problem(kspace, maps, maps2, window, config)
    base = torch.full((s,), float(config.default_lam if config.lam is None else config.lam), device=device)
    if config.lam is None and config.weak_lam_factor != 1.0:
        base = torch.where(weak, base * config.weak_lam_factor, base)
    mask_t = torch.as_tensor(mask).bool()
    all_idx = torch.arange(s, device=device)
    chosen = torch.zeros(s, dtype=torch.long, device=device)
    lam = base.clone()
    residuals: dict[str, torch.Tensor] = {}
    lam_errors: dict[float, torch.Tensor] = {}
    solved: dict[str, tuple] = {}
    if len(forms) > 1:
        # every candidate on all the data; the most constrained one that explains it wins
        for f in forms:
            mag, pred, its, hist = problem.solve(f, all_idx, mask_t, base, config.iters)
            residuals[f] = relative_residual(pred, problem.kspace, _mask4(mask_t, problem.kspace))
            solved[f] = (mag, its, hist)
        chosen = choose_formulation(forms, residuals)
    if config.lam is None:
        kept, held = holdout_masks(mask_t, calib, config.seed)
        held4 = _mask4(held, problem.kspace)
        best = torch.full((s,), float("inf"), device=device)
        for factor in LAM_FACTORS:
            for i, f in enumerate(forms):
                idx = (chosen == i).nonzero().flatten()
                if idx.numel() == 0:
                    continue
                _, pred, _, _ = problem.solve(f, idx, kept, base[idx] * factor, config.selection_iters)
                e = relative_residual(pred, problem.kspace[idx], held4)
                lam_errors.setdefault(factor, torch.zeros(s, device=device))[idx] = e
                better = e < best[idx]
                best[idx] = torch.where(better, e, best[idx])
                lam[idx] = torch.where(better, base[idx] * factor, lam[idx])
    magnitude = None
    iterations = 0
    history: list[float] = []
    for i, f in enumerate(forms):
        idx = (chosen == i).nonzero().flatten()
        if idx.numel() == 0:
            continue
        if f in solved and config.lam is not None:
            mag, its, hist = solved[f]
            mag = mag[idx]
        else:
            mag, _, its, hist = problem.solve(f, idx, mask_t, lam[idx], config.iters)
        if magnitude is None:
            magnitude = torch.zeros(s, *mag.shape[1:], device=device)
        magnitude[idx] = mag.float()
        iterations = max(iterations, its)
        history = hist or history
    # the per-slice report: one host read per tensor, not one per slice and value
    chosen_h, lam_h, base_h = chosen.tolist(), lam.tolist(), base.tolist()
    residuals_h = {f: e.tolist() for f, e in residuals.items()}
    lam_errors_h = {k: e.tolist() for k, e in lam_errors.items()}
    slices = []
    for j in range(s):
        form = forms[chosen_h[j]]
        info = {
            "formulation": form if multicoil else "single-coil",
            "lambda": lam_h[j] * (COIL_LAM_FACTOR if form == "coil" else 1.0),
        }
        if residuals_h:
            info["residual"] = {f: round(e[j], 7) for f, e in residuals_h.items()}
        if lam_errors_h:
            info["holdout_error"] = {f"{base_h[j] * k:.6g}": round(e[j], 6) for k, e in lam_errors_h.items()}
        slices.append(info)
    return ChunkResult(magnitude, slices, iterations, notes, history, sens_used)
