"""The noise floor of a fully sampled RSS image, restored to a reconstruction that lacks it.

A fully sampled magnitude image (fastMRI's RSS target, a scanner's magnitude image) is never
black where there is no signal: every k-space sample carries noise, and the RSS of the coil
images adds its energy in quadrature, ``E[rss^2] = sum_c |s_c|^2 + N`` per pixel, where ``N`` is the
noise energy of one k-space sample summed over the coils and over the fraction of the grid the
scanner recorded (orthonormal FFTs keep white noise's variance). A reconstruction with hard data
consistency keeps the noise of the measured samples only; the samples it predicts carry none.
Its squared magnitude therefore lacks, on average,

    missing = N_reference * present - N_output * measured

per pixel (``present``: the share of the k-space grid the scanner recorded, less its zero padding;
``measured``: the share the undersampled data keeps; ``N_output``: the noise energy of the coils
the solve worked on, fewer than the reference's after coil compression). ``with_noise_floor``
returns ``sqrt(magnitude^2 + missing)``: the same image where the signal dominates, and the
reference's expected level, not black, where it does not. The noise is read from the data
where it cannot be mistaken for fine detail of the image (``background_noise``), and nothing is
added where it cannot be; no random numbers are added.

Why: SSIM, fastMRI's main metric, scores the background as well, and a noisy reference's
background is its noise floor. Without the floor, CS of noisier scans fell below zero filling,
whose aliasing partly fills the background (``scripts/bench_cs_choice.py --floor --add-noise 3``).
Measured with ``scripts/bench_cs_choice.py --floor`` (see README: Noise floor).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from mrirecon.cs.lambda_choice import NOISE_REFERENCE, NoiseEstimate, noise_to_signal, noise_variance, recorded_columns
from mrirecon.mri.fft import ifft_readout

#: ``background_noise``: the share of readout rows (quietest first) its quiet-row estimate starts from.
QUIET_ROWS = 0.02
#: ``background_noise`` averages the rows up to this multiple of the quietest rows' energy.
QUIET_BAND = 1.5
#: ``background_noise`` trusts the quiet rows where their energy is at most this multiple of the
#: Haar estimate (which signal can only inflate): above it the quietest rows still hold signal.
QUIET_TOLERANCE = 1.5
#: How ``background_noise`` read a slice's noise (``None``: not read, no floor).
QUIET_ROWS_METHOD = "quiet readout rows"
HAAR_METHOD = "haar-readout (noisy slice)"


@dataclass
class ReadoutNoise:
    """The two raw noise readings per slice ``(S,)`` (energy per k-space sample summed over coils):
    the Haar estimate and the quiet readout rows' (``None`` under a 2D mask)."""

    haar: torch.Tensor
    quiet: torch.Tensor | None


@dataclass
class BackgroundNoise:
    """Per slice ``(S,)`` noise energy per k-space sample summed over coils (NaN: not read) and how."""

    variance: torch.Tensor
    methods: list[str | None]


def readout_noise(kspace: torch.Tensor, mask: torch.Tensor, estimate: NoiseEstimate | None = None) -> ReadoutNoise:
    """The raw readings of masked k-space ``(S, C, H, W)`` (``estimate``: its ``noise_variance`` if known)."""
    mask = torch.as_tensor(mask).bool().to(kspace.device)
    haar = (noise_variance(kspace, mask) if estimate is None else estimate).variance
    return ReadoutNoise(haar, _quiet_rows(kspace, mask))


def background_noise(
    kspace: torch.Tensor, mask: torch.Tensor, *, readout: ReadoutNoise | None = None, ratio: torch.Tensor | None = None
) -> BackgroundNoise:
    """The noise of masked k-space ``(S, C, H, W)`` (``mask`` a column ``(W,)`` or 2D ``(H, W)``
    mask) per slice, read where it is not mistaken for fine detail of the image (``readout``: its
    ``readout_noise`` if known, or another coil set's of the same scan; ``ratio``: its
    ``noise_to_signal`` if known):

    - ``QUIET_ROWS_METHOD``: with a column mask the readout is fully sampled, so each readout row
      of the image can be formed (hybrid space: rows x sampled columns). Where the object does not
      span the readout (fastMRI's 2x oversampled brain readout) its quietest rows hold noise
      only: the rows up to ``QUIET_BAND`` times the quietest ``QUIET_ROWS``' energy are averaged
      (the quietest alone read low: the least of many noisy means). Where their energy is more
      than ``QUIET_TOLERANCE`` times the Haar estimate they hold signal (a knee's leg runs
      through the readout) and are not used.
    - ``HAAR_METHOD``: otherwise, multi-coil, the Haar estimate (``noise_variance``) less what fine
      detail of a clean scan may add to it: the noise-to-signal ratio ``r`` it gives
      (``noise_to_signal``) reaches ``NOISE_REFERENCE`` on clean scans (the detail of the sample
      scans read up to 10x their noise), so the estimate is scaled by ``1 - (NOISE_REFERENCE / r)^2``
      where ``r`` is above it. Single coil: not used (its ratio reads fine detail as noise on
      sample scans the multi-coil rule leaves alone).
    - otherwise NaN (method ``None``): also every slice under a 2D mask, which leaves no readout
      fully sampled (its k-space Haar estimate read a smooth test image's signal as noise)."""
    mask = torch.as_tensor(mask).bool().to(kspace.device)
    readout = readout_noise(kspace, mask) if readout is None else readout
    haar = readout.haar
    if ratio is None:
        ratio = noise_to_signal(kspace, NoiseEstimate(haar, "haar"))
    ratio = ratio.to(haar)
    noisy = (ratio > NOISE_REFERENCE) & (kspace.shape[1] > 1) & (mask.ndim == 1)
    variance = torch.where(noisy, haar * (1 - (NOISE_REFERENCE / ratio.clamp(min=1e-30)) ** 2), torch.full_like(haar, float("nan")))
    quiet = readout.quiet
    from_rows = torch.zeros_like(noisy) if quiet is None else quiet.to(haar) <= QUIET_TOLERANCE * haar
    if quiet is not None:
        variance = torch.where(from_rows, quiet.to(haar), variance)
    methods = [QUIET_ROWS_METHOD if r else HAAR_METHOD if n else None for r, n in zip(from_rows.tolist(), noisy.tolist())]
    return BackgroundNoise(variance, methods)


def _quiet_rows(kspace: torch.Tensor, mask: torch.Tensor) -> torch.Tensor | None:
    """Per slice, the mean energy per sample of the quiet readout rows (see ``background_noise``);
    ``None`` for a 2D mask (no fully sampled rows) or no sampled data."""
    if mask.ndim != 1:
        return None
    positions = recorded_columns(kspace, mask)
    if positions.numel() == 0:
        return None
    hybrid = ifft_readout(kspace[..., positions])
    energy = (hybrid.real.square() + hybrid.imag.square()).sum(1).mean(-1)  # (S, H)
    lowest = torch.quantile(energy.float(), QUIET_ROWS, dim=1, keepdim=True)
    quiet_rows = energy <= QUIET_BAND * lowest
    return (energy * quiet_rows).sum(1) / quiet_rows.sum(1).clamp(min=1)


def sampled_shares(kspace: torch.Tensor, mask: torch.Tensor) -> tuple[float, float]:
    """``(present, measured)``: the shares of the k-space grid the scanner recorded (the sampled
    positions' rate of holding data, i.e. not zero-padded, stands for the whole grid's) and that
    ``kspace`` (masked, ``(S, C, H, W)``; ``mask`` a column ``(W,)`` or 2D ``(H, W)`` mask) keeps with data."""
    mask = torch.as_tensor(mask).bool().to(kspace.device)
    sampled = int(mask.sum())
    if sampled == 0:
        return 1.0, 0.0
    if mask.ndim == 1:
        recorded = recorded_columns(kspace, mask).numel()
    else:
        recorded = int((kspace[..., mask].abs().flatten(0, -2).amax(0) > 0).sum())
    return recorded / sampled, recorded / mask.numel()


def missing_noise_energy(
    reference_noise: torch.Tensor, output_noise: torch.Tensor, present: float, measured: float
) -> torch.Tensor:
    """Per slice ``(S,)``: the noise energy per pixel of the fully sampled reference (``reference_noise``:
    per k-space sample, summed over its coils, times ``present``) less that the output keeps
    (``output_noise`` over the solved coils, times ``measured``), never below zero; zero where
    either is NaN (not measured)."""
    missing = (reference_noise * present - output_noise.to(reference_noise) * measured).clamp(min=0.0)
    return missing.nan_to_num(nan=0.0)


def with_noise_floor(magnitude: torch.Tensor, missing: torch.Tensor) -> torch.Tensor:
    """``sqrt(magnitude^2 + missing)`` per slice (``magnitude`` ``(S, H, W)``, ``missing`` ``(S,)``)."""
    return (magnitude.square() + missing.to(magnitude).reshape(-1, *([1] * (magnitude.ndim - 1)))).sqrt()


def restore_noise_floor(
    magnitude: torch.Tensor, kspace: torch.Tensor, mask: torch.Tensor, *, reference: ReadoutNoise | None = None,
    estimate: NoiseEstimate | None = None, ratio: torch.Tensor | None = None,
) -> tuple[torch.Tensor, list[dict]]:
    """``magnitude`` ``(S, ...)``, a hard-data-consistent RSS of masked ``kspace`` ``(S, C, H, W)``'s coils,
    with the noise floor restored, and per slice the JSON fields ``noise_floor`` (``None`` where the
    noise was not read: nothing added) and ``noise_floor_method``. ``reference``: the scan's own
    coils' ``readout_noise`` where ``kspace`` holds fewer (coil compression; the noise-to-signal ratio
    is the same for both); by default ``kspace``'s. ``estimate``, ``ratio``: ``kspace``'s
    ``noise_variance`` and ``noise_to_signal`` where already known (the lambda rule reads them)."""
    mask = torch.as_tensor(mask).bool().to(kspace.device)
    own = readout_noise(kspace, mask, estimate)
    if ratio is None:
        ratio = noise_to_signal(kspace, NoiseEstimate(own.haar, "haar"))
    noise = background_noise(kspace, mask, readout=own, ratio=ratio)
    ref = noise if reference is None else background_noise(kspace, mask, readout=reference, ratio=ratio)
    missing = missing_noise_energy(ref.variance.to(noise.variance), noise.variance, *sampled_shares(kspace, mask))
    found = (ref.variance.isfinite() & noise.variance.to(ref.variance).isfinite()).tolist()
    report = [{"noise_floor": float(f"{f:.4g}") if ok else None, "noise_floor_method": method if ok else None}
              for f, ok, method in zip(missing.sqrt().tolist(), found, ref.methods)]
    return with_noise_floor(magnitude, missing.to(magnitude.device)), report
