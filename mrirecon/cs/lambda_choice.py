"""Lambda from the data: the k-space noise level, a noise-scaled lambda and Morozov's discrepancy principle.

``noise_variance``: per slice, the expected ``|n|^2`` of one k-space sample's noise summed over
the coils (white noise keeps its variance through orthonormal FFTs, so image, hybrid and k-space
samples share it). With a column mask the readout is fully sampled: an inverse FFT along the
readout gives hybrid rows ``h[r, k_y]`` at every sampled column, and the noise is read from their
finest Haar detail along the readout (Donoho's robust estimate: noise is white at every scale, an
image is sparse at the finest one) as ``median(|d|^2) / ln 2`` (the median of an exponential
variable), so edges move it little. 2D masks: the Haar detail of the sampled k-space itself along
the readout, where both neighbours are sampled. (Tried and dropped: the rows outside the readout
window of an oversampled readout; on the sample scans the object reaches into them and the
estimate read 1.5-9x the Haar one, and added noise came back 1.3-2.2x too large.)

``noise_scaled_lambda`` (``--lam auto``, the default): per slice, the default lambda times
``max(1, r / NOISE_REFERENCE)``, where ``r`` (``noise_to_signal``) is the noise level of one coil's
k-space sample (the coils' summed noise energy over their number: the noise of a coil-combined
image with unit-norm maps, unchanged by coil compression, which rotates white noise) over the 99th
percentile of the zero-filled RSS image. A denoising weight grows with the noise's standard
deviation; below the reference the default stays. Measured on the multi-coil scans of
``scripts/bench_cs.py`` (lambda sweeps, then ``scripts/bench_cs_choice.py --lam``): ``r`` reads
0.011-0.026 on the scans the defaults were tuned on, 0.033 on the aliased brain at 8x (whose best
lambda was 2x the default) and 0.057-0.061 on the 2-coil GRE phantom (best 4-8x the default); on
held-out sample scans with 3x and 6x their own noise added the rule gained +0.002 and +0.028 mean
SSIM over the default (``scripts/bench_cs_choice.py --lam --seeds 31 32 33 --cases sample
--add-noise 3``), though not enough to stay above zero filling on all of them. Linear in ``r`` and never below the default is the cautious choice. Single coil keeps
the default: there the noise-to-signal ratio did not predict the best lambda (sample seed 31 at
8x, the noisiest, wanted the default; seed 33, less noisy, wanted 8x it).

``discrepancy_lambda`` (``--lam discrepancy``): the lambda whose data residual ``||M A x - y||^2`` equals ``tau`` times
the expected noise energy of the measured samples, found on a log-log secant from two short
probe solves, clamped to ``[default / LAMBDA_RANGE, default * LAMBDA_RANGE]``. Where the lower
probe's residual already exceeds the target (one-set SENSE on most multi-coil scans: the maps
and the coil compression leave more than the noise unexplained) the principle has no answer and
the default stays.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch

from mrirecon.mri.coils import rss
from mrirecon.mri.fft import ifft2c, ifft_readout

#: The chosen lambda stays within this factor of the per-acceleration default.
LAMBDA_RANGE = 10.0
#: ``noise_scaled_lambda``: the noise-to-signal ratio above which lambda grows in proportion
#: (the tuned scans read at most 0.026, the aliased brain 0.033 at 8x, the 2-coil GRE phantom 0.057).
NOISE_REFERENCE = 0.03
#: The percentile of the zero-filled RSS image that stands for the signal (as ``mrirecon.cs.recon``'s scale).
SIGNAL_QUANTILE = 0.99
#: The two probe lambdas, as multiples of the default.
PROBE_FACTORS = (1.0 / 3.0, 3.0)


@dataclass
class NoiseEstimate:
    """Per-slice noise energy of one k-space sample summed over coils ``(S,)`` and how it was read."""

    variance: torch.Tensor
    method: str


def _median_energy(z: torch.Tensor) -> torch.Tensor:
    """Per slice and coil ``(S, C)``: ``median(|z|^2) / ln 2`` over the rest, zeros ignored (padding)."""
    energy = (z.real.square() + z.imag.square()).flatten(2)
    energy = torch.where(energy > 0, energy, torch.full_like(energy, float("nan")))
    return torch.nanmedian(energy, dim=2).values.nan_to_num(0.0) / math.log(2.0)


def _haar_detail(z: torch.Tensor, dim: int) -> torch.Tensor:
    """Finest Haar detail ``(z[2i] - z[2i+1]) / sqrt 2`` along ``dim`` (same noise variance as ``z``)."""
    n = z.shape[dim] // 2 * 2
    pairs = z.narrow(dim, 0, n).unflatten(dim, (n // 2, 2))
    pair_dim = dim + 1 if dim >= 0 else dim  # the new axis of length 2
    return (pairs.select(pair_dim, 0) - pairs.select(pair_dim, 1)) / math.sqrt(2.0)


def recorded_columns(kspace: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The columns a column ``mask`` ``(W,)`` samples that hold data in masked ``kspace`` ``(S, C, H, W)``
    (those the scanner zero-padded left out), as indices."""
    positions = torch.as_tensor(mask).bool().to(kspace.device).nonzero().flatten()
    return positions[kspace[..., positions].abs().flatten(0, -2).amax(0) > 0]


def noise_variance(kspace: torch.Tensor, mask: torch.Tensor) -> NoiseEstimate:
    """Noise energy per k-space sample, summed over coils, of masked k-space ``(S, C, H, W)`` (centred)
    sampled by ``mask`` (column ``(W,)`` or 2D ``(H, W)``); see the module docstring."""
    mask = torch.as_tensor(mask).bool().to(kspace.device)
    if mask.ndim == 1:
        # the outer half of the sampled columns (least signal), less those zero-padded by the scanner
        positions = recorded_columns(kspace, mask)
        distance = (positions - kspace.shape[-1] // 2).abs()
        outer = positions[distance >= distance.float().median()]
        hybrid = ifft_readout(kspace[..., outer])
        return NoiseEstimate(_median_energy(_haar_detail(hybrid, -2)).sum(1), "haar-readout")
    half = kspace.shape[-2] // 2
    both = mask[0 : 2 * half : 2] & mask[1 : 2 * half : 2]
    detail = _haar_detail(kspace, -2)[..., both]
    return NoiseEstimate(_median_energy(detail).sum(1), "haar-kspace")


def noise_to_signal(kspace: torch.Tensor, noise: NoiseEstimate) -> torch.Tensor:
    """Per slice ``(S,)``: ``sqrt(noise.variance / C)`` (one coil's noise) over the ``SIGNAL_QUANTILE``
    of the RSS of the zero-filled coil images of masked k-space ``(S, C, H, W)`` (0 for an empty slice)."""
    signal = torch.quantile(rss(ifft2c(kspace), dim=1).flatten(1).float(), SIGNAL_QUANTILE, dim=1)
    sigma = (noise.variance.to(signal.device) / kspace.shape[1]).sqrt()
    return torch.where(signal > 0, sigma / signal.clamp(min=1e-30), torch.zeros_like(signal))


def noise_scaled_lambda(default: torch.Tensor, ratio: torch.Tensor) -> torch.Tensor:
    """Per slice, ``default * max(1, ratio / NOISE_REFERENCE)``, at most ``LAMBDA_RANGE`` times the default."""
    factor = (ratio.to(default) / NOISE_REFERENCE).clamp(min=1.0, max=LAMBDA_RANGE)
    return default * factor


def sampled_count(mask: torch.Tensor, height: int) -> int:
    """The number of measured k-space positions per coil (column masks sample every row)."""
    mask = torch.as_tensor(mask).bool()
    return int(mask.sum()) * (height if mask.ndim == 1 else 1)


def discrepancy_lambda(
    residual: Callable[[torch.Tensor], torch.Tensor], target: torch.Tensor, default: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per slice, the lambda whose residual (``residual(lam)``: ``(S,)``, increasing in lambda)
    reaches ``target`` ``(S,)``: two probes at ``PROBE_FACTORS`` times ``default``, a secant in
    log-log through them, clamped to ``LAMBDA_RANGE`` around ``default`` (``default`` where the lower
    probe's residual is above the target, or the residual does not rise). Returns (lambda,
    the probes' residuals ``(2, S)``, whether the principle chose lambda ``(S,)`` rather than the default)."""
    probes = [default * f for f in PROBE_FACTORS]
    res = torch.stack([residual(lam) for lam in probes])
    log_lam = torch.stack([p.log() for p in probes])
    log_res = res.clamp(min=1e-30).log()
    slope = (log_res[1] - log_res[0]) / (log_lam[1] - log_lam[0])
    # a flat (or falling) residual says nothing about the direction; a residual above the target
    # already at the lower probe is model error (maps, coil compression), not noise: keep the default
    ok = (slope > 1e-3) & (res[0] <= target)
    log_target = target.clamp(min=1e-30).log()
    chosen = log_lam[0] + (log_target - log_res[0]) / torch.where(ok, slope, torch.ones_like(slope))
    chosen = torch.where(ok, chosen, default.log())
    low, high = default / LAMBDA_RANGE, default * LAMBDA_RANGE
    return torch.minimum(torch.maximum(chosen.exp(), low), high), res, ok
