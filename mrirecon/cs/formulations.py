"""CS formulations beyond one-set SENSE, each a few lines of operator composition plus one solver.

All take masked k-space ``(S, C, H, W)`` (centred), a column or 2D mask, a per-slice ``lam``
``(S,)`` at the dimensionless reference scale of ``mrirecon.cs.recon``, and return complex images
at the input's scale (``CoilResult.image`` is the combined magnitude for the map-free case).
Everything is solved in ifftshifted order with plain FFTs (periodic operators commute with the
shift), as ``tv_recon`` does.

- ``coil_tv_recon``: no sensitivity maps. Every coil image is its own unknown; the regulariser is
  the joint-sparsity TV ``sum_r sqrt(sum_c sum_d |D_d x_c(r)|^2)`` (edges shared across coils),
  and the output is the RSS of the coil images. Solved by generic ADMM whose x-update is closed
  form (``fourier_update``: ``M`` and ``D^H D`` are both diagonal in Fourier space). For
  calibration regions too small for trustworthy maps.
- ``sense_sets_tv_recon``: soft-SENSE with two (or more) ESPIRiT map sets, one image per set,
  isotropic TV on each, solved by PDHG; the output is ``sqrt(sum_m |x_m|^2)``. For a field of view
  smaller than the object.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from mrirecon.cs.recon import reference_scale
from mrirecon.cs.solvers import admm, pdhg
from mrirecon.ops import L1, FFT2, FiniteDifference, L2Squared, Sampling, Sensitivity, SeparableSum, VStack, Zero
from mrirecon.ops.finite_diff import laplacian_spectrum
from mrirecon.ops.vector import per_slice
from mrirecon.mri.sense import broadcast_mask

DIMS = (-2, -1)


@dataclass
class Shifted:
    """Masked k-space in ifftshifted order at the reference scale, with the mask and the scales."""

    kspace: torch.Tensor  # (S, C, H, W)
    mask: torch.Tensor  # (1, 1, H, W) float
    scale: torch.Tensor  # (S,)


def shifted(kspace: torch.Tensor, mask: torch.Tensor, reference: torch.Tensor, full_rows: int | None = None) -> Shifted:
    """``kspace`` masked, ifftshifted and divided by the per-slice reference level of ``reference``
    (a complex or magnitude image ``(S, H, W)`` whose top percentile is scaled to 1; ``full_rows``
    as in ``reference_scale``)."""
    mask4 = torch.fft.ifftshift(broadcast_mask(mask, kspace.device).expand(1, 1, *kspace.shape[-2:]), dim=DIMS)
    scale = reference_scale(reference, full_rows)
    data = torch.fft.ifftshift(kspace, dim=DIMS) * mask4 / scale.reshape(-1, 1, 1, 1)
    return Shifted(data, mask4, scale)


def admm_rho(lam: torch.Tensor) -> torch.Tensor:
    """The map-free ADMM's penalty per slice: ``10 lam`` within ``[0.02, 1]``."""
    return torch.clamp(10.0 * lam, 0.02, 1.0)


#: Over-relaxation of the map-free ADMM (``mrirecon.cs.solvers.admm``): at 1.8 its default 20
#: (4x) / 30 (8x) iterations reach what 150 plain ones do (real GE phantom at 4x: 0.923 plain,
#: 0.931 relaxed, 0.931 at 150; its lower start did not help here, unlike the SENSE fast path's).
COIL_RELAXATION = 1.8


def fourier_update(kspace: torch.Tensor, mask: torch.Tensor):
    """Closed-form ADMM x-update for ``1/2 ||M F x - y||^2 + rho/2 ||D x - v||^2`` per coil image
    (ifftshifted order): ``F x = (y + rho F D^H v) / (M + rho |D|^2)``."""
    lap = laplacian_spectrum(*kspace.shape[-2:], device=kspace.device)
    d = FiniteDifference()

    def update(v: torch.Tensor, rho: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        r = per_slice(rho, kspace)
        numerator = kspace + r * torch.fft.fft2(d.H(v), norm="ortho")
        return torch.fft.ifft2(numerator / torch.clamp(mask + r * lap, min=1e-12), norm="ortho")

    return update


def coil_tv_recon(
    kspace: torch.Tensor, mask: torch.Tensor, lam: torch.Tensor, iters: int, full_rows: int | None = None,
    coil_images: bool = False,
) -> torch.Tensor:
    """Map-free joint-sparsity TV (see the module docstring): the RSS magnitude ``(S, H, W)``, or
    with ``coil_images`` the complex coil images ``(S, C, H, W)`` (both centred, at the input's scale)."""
    zf = torch.fft.ifft2(torch.fft.ifftshift(kspace, dim=DIMS), norm="ortho")
    data = shifted(kspace, mask, torch.linalg.vector_norm(zf, dim=1), full_rows)
    x0 = torch.fft.ifft2(data.kspace, norm="ortho")
    joint_tv = L1(lam, group_dims=(1, 2))  # coils and difference directions share one magnitude
    x = admm(fourier_update(data.kspace, data.mask), FiniteDifference(), joint_tv, x0, admm_rho(lam), iters,
             relaxation=COIL_RELAXATION)
    if coil_images:
        return torch.fft.fftshift(x, dim=DIMS) * data.scale.reshape(-1, 1, 1, 1)
    return torch.fft.fftshift(torch.linalg.vector_norm(x, dim=1), dim=DIMS) * data.scale.reshape(-1, 1, 1)


def sense_sets_tv_recon(
    kspace: torch.Tensor, mask: torch.Tensor, maps: torch.Tensor, lam: torch.Tensor, iters: int,
    full_rows: int | None = None,
) -> torch.Tensor:
    """Soft-SENSE with map sets ``maps`` ``(S, M, C, H, W)`` (see the module docstring): complex
    images ``(S, M, H, W)`` at the input's scale."""
    maps = torch.fft.ifftshift(maps, dim=DIMS)
    sens = Sensitivity(maps)
    zf = sens.H(torch.fft.ifft2(torch.fft.ifftshift(kspace, dim=DIMS), norm="ortho"))
    data = shifted(kspace, mask, torch.linalg.vector_norm(zf, dim=1), full_rows)
    a = Sampling(data.mask) @ FFT2(centred=False) @ sens
    k = VStack([a, FiniteDifference()])
    f = SeparableSum([L2Squared(data.kspace), L1(lam, group_dims=(2,))])
    bound = float((maps.real.square() + maps.imag.square()).sum(dim=(1, 2)).max()) + 8.0
    step = 0.99 / bound**0.5
    x = pdhg(f, Zero(), k, a.H(data.kspace), step, step, iters)
    return torch.fft.fftshift(x, dim=DIMS) * data.scale.reshape(-1, 1, 1, 1)


REGULARISERS = ("tv", "wavelet", "tv+wavelet")
#: Wavelet levels (fewer where the image is small) and family. Haar beat db4 (and db2 where tried),
#: each at its best lambda, on 25 of the 28 rows of ``scripts/bench_cs.py``'s suite, e.g. sample
#: multi-coil seed 22 at 4x 0.805 against db4's 0.744, the virtual single-coil brain at 4x 0.832
#: against 0.802; it lost sample multi-coil seeds 21 and 23 at 4x (by 0.004, 0.011) and the 16-coil
#: phantom at 8x (0.016). 5 levels instead of 4 changed SSIM by less than 0.01.
WAVELET_LEVELS = 4
WAVELET = "db1"
#: ``reg="tv+wavelet"``: the wavelet term's lambda as a multiple of the TV term's, and PDHG's primal
#: step over its dual step (``PDHG_STEP_RATIO**2``; their product is fixed by ``||K||``). Equal steps
#: left PDHG far from converged at TV's iteration count (sample multi-coil seed 22 at 4x 0.55 SSIM,
#: wavelet alone 0.80); a primal step 30x the balanced one reached 0.76 in the same 60 iterations.
#: Tuned on sample seeds 21-23 and the real brain (``pipelines.cs_recon.TV_WAVELET_LAMS``).
TV_WAVELET_RATIO = 0.5
PDHG_STEP_RATIO = 30.0


def sense_wavelet_recon(
    kspace: torch.Tensor, mask: torch.Tensor, maps: torch.Tensor | None, lam: torch.Tensor, iters: int,
    reg: str = "wavelet", full_rows: int | None = None, seed: int = 0,
) -> torch.Tensor:
    """L1-wavelet (``reg="wavelet"``: FISTA with a new random wavelet shift every iteration, BART's
    cycle spinning) or TV plus L1-wavelet at the same ``lam`` (``"tv+wavelet"``: PDHG over
    ``[A; D; W]``) for every formulation of ``mrirecon.cs.chunk``, by the shape of ``maps``:

    - ``(S, C, H, W)``: one-set SENSE, images ``(S, H, W)``;
    - ``(S, M, C, H, W)``: soft-SENSE with ``M`` map sets, images ``(S, M, H, W)``;
    - ``None``: single coil (``C = 1``), images ``(S, H, W)``; or, with ``C > 1``, no maps: the coil
      images ``(S, C, H, W)`` with joint sparsity across coils (their wavelet coefficients and
      gradients share one magnitude per position).

    Complex images at the input's scale."""
    from mrirecon.cs.solvers import fista
    from mrirecon.ops import Wavelet
    from mrirecon.ops.sense import sense_op
    from mrirecon.ops.wavelet import WaveletDetails
    from mrirecon.ops.vector import add

    if reg not in REGULARISERS[1:]:
        raise ValueError(f"unknown regulariser {reg!r}; use {', '.join(REGULARISERS)}")
    zf = torch.fft.ifft2(torch.fft.ifftshift(kspace, dim=DIMS), norm="ortho")
    coil_free = maps is None and kspace.shape[1] > 1
    joint = (1,) if coil_free else ()  # the axis sharing one magnitude besides the TV directions
    maps_s = None if maps is None else torch.fft.ifftshift(maps, dim=DIMS)
    if coil_free:
        reference = torch.linalg.vector_norm(zf, dim=1)
    elif maps_s is None:
        reference = zf[:, 0]
    elif maps_s.ndim == 5:
        reference = torch.linalg.vector_norm(Sensitivity(maps_s).H(zf), dim=1)
    else:
        reference = torch.linalg.vecdot(maps_s, zf, dim=1)
    data = shifted(kspace, mask, reference, full_rows)
    if coil_free:
        a = Sampling(data.mask) @ FFT2(centred=False)
    elif maps_s is not None and maps_s.ndim == 5:
        a = Sampling(data.mask) @ FFT2(centred=False) @ Sensitivity(maps_s)
    else:
        a = sense_op(data.mask, maps_s, centred=False)
    # ||A||^2 <= the largest per-pixel energy of the maps (1 for normalised one-set maps, no maps)
    norm2 = 1.0 if maps_s is None else max(1.0, float(maps_s.real.square().add(maps_s.imag.square()).flatten(1, -3).sum(1).max()))
    x0 = a.H(data.kspace)
    wav = Wavelet(tuple(x0.shape[-2:]), WAVELET, WAVELET_LEVELS)
    details = WaveletDetails(wav)
    if reg == "wavelet":
        gen = torch.Generator().manual_seed(seed)
        wav.random_shift(gen)
        l1 = L1(lam, group_dims=joint)
        x = fista(lambda x: a.H(add(a(x), data.kspace, -1.0)), lambda x, t: details.prox_l1(x, l1, t), x0, 1.0 / norm2, iters,
                  callback=lambda i, x: wav.random_shift(gen))
    else:
        k = VStack([a, FiniteDifference(), details])
        f = SeparableSum([L2Squared(data.kspace), L1(lam, group_dims=joint + (-3,)), L1(lam * TV_WAVELET_RATIO, group_dims=joint)])
        step = 0.99 / (norm2 + 8.0 + 1.0) ** 0.5
        x = pdhg(f, Zero(), k, x0, step * PDHG_STEP_RATIO, step / PDHG_STEP_RATIO, iters * 3)
    scale = data.scale.reshape(-1, *[1] * (x.ndim - 1))
    return torch.fft.fftshift(x, dim=DIMS) * scale
