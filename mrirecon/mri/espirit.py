"""ESPIRiT coil sensitivities (one set of maps), batched over slices, in torch.

Uecker et al., MRM 2014. Steps, for every slice at once:

1. the calibration matrix: all ``k x k`` patches of the calibration (ACS) k-space, all coils;
2. its right singular vectors (eigenvectors of the Gram matrix); those with singular value
   above ``thresh * max`` span the patch space (the rest is the null space). Only the projector
   onto that space is needed: by ``eigh`` on a CPU, by batched matrix products on a GPU
   (``mrirecon.mri.eigen``);
3. the projection onto the patch space, collapsed to a ``(C, C, 2k-1, 2k-1)`` kernel, becomes
   per-pixel ``C x C`` matrices ``G(r)`` by an FFT. ``G`` is band-limited (``2k-1``
   coefficients per axis), so it is evaluated on a coarse grid only;
4. the top eigenvector of ``G(r)`` per pixel (batched ``eigh``) is the map, its eigenvalue
   (about 1 inside the object) the confidence; phases are aligned to a virtual reference coil,
   then the maps are interpolated linearly to the full grid and renormalised to unit norm;
5. optionally, pixels whose eigenvalue is below ``crop`` are zeroed (as BART's ``ecalib -c``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from mrirecon.mri.eigen import hermitian_eigh, spectral_projector
from mrirecon.ops.sense import normalise_maps

#: The second map set is kept where its eigenvalue exceeds this (BART's ``ecalib`` default crop).
SECOND_SET_CROP = 0.8
#: How the signal subspace (step 2) is found: ``eigh`` (LAPACK/cuSOLVER), ``matmul`` (batched
#: matrix products only, see ``mrirecon.mri.eigen.spectral_projector``), or ``auto`` (``eigh``
#: on a CPU, ``matmul`` on a GPU, where ``eigh`` of matrices above 32x32 is one call per matrix).
SUBSPACE_METHODS = ("auto", "eigh", "matmul")


@dataclass
class EspiritResult:
    """Maps ``(S, C, H, W)`` (unit norm unless cropped), the top two eigenvalues ``(S, 2, H, W)``
    and the rank of the kept patch space per slice."""

    maps: torch.Tensor
    eigenvalues: torch.Tensor
    rank: torch.Tensor


def calibration_patches(acs: torch.Tensor, kernel: tuple[int, int]) -> torch.Tensor:
    """All ``kernel``-sized patches of ``acs`` ``(S, C, h, w)`` as rows: ``(S, P, C*ky*kx)``."""
    ky, kx = kernel
    s, c = acs.shape[:2]
    patches = acs.unfold(2, ky, 1).unfold(3, kx, 1)  # (S, C, py, px, ky, kx)
    patches = patches.permute(0, 2, 3, 1, 4, 5)
    return patches.reshape(s, -1, c * ky * kx)


def _difference_index(ky: int, kx: int, device: torch.device) -> torch.Tensor:
    """Flat index of ``(p - p')`` in a ``(2ky-1, 2kx-1)`` grid, for all ``(py, px, py', px')``."""
    py = torch.arange(ky, device=device)
    px = torch.arange(kx, device=device)
    dy = py[:, None, None, None] - py[None, None, :, None] + ky - 1  # (py, 1, py', 1)
    dx = px[None, :, None, None] - px[None, None, None, :] + kx - 1  # (1, px, 1, px')
    return (dy * (2 * kx - 1) + dx).reshape(-1)


def _interp_matrix_1d(full: int, low: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Periodic linear interpolation from a centred ``low``-point grid to a centred ``full``-point grid."""
    u = torch.arange(full, device=device, dtype=torch.float64) - full // 2
    t = u * low / full + low // 2
    j0 = torch.floor(t)
    frac = (t - j0).to(torch.float32)
    j0 = j0.long() % low
    return j0, (j0 + 1) % low, frac


def upsample_periodic(x: torch.Tensor, size: tuple[int, int], rows: tuple[int, int] | None = None) -> torch.Tensor:
    """Linear interpolation of ``(..., h, w)`` (a coarse centred grid over the same FOV) to ``size``;
    only the rows ``rows = (top, n)`` of it when given."""
    h_full, w_full = size
    a0, a1, fa = _interp_matrix_1d(w_full, x.shape[-1], x.device)
    x = x.index_select(-1, a0) * (1 - fa) + x.index_select(-1, a1) * fa
    b0, b1, fb = _interp_matrix_1d(h_full, x.shape[-2], x.device)
    if rows is not None:
        top, n = rows
        b0, b1, fb = b0[top : top + n], b1[top : top + n], fb[top : top + n]
    fb = fb[:, None]
    return x.index_select(-2, b0) * (1 - fb) + x.index_select(-2, b1) * fb


def signal_projector(gram: torch.Tensor, thresh: float, subspace: str = "auto") -> tuple[torch.Tensor, torch.Tensor]:
    """The projector ``(S, N, N)`` onto the right singular vectors of the calibration matrix with
    singular value above ``thresh`` times the largest (eigenvalues of ``gram`` above ``thresh**2``
    times the largest), and its rank ``(S,)``."""
    if subspace == "matmul" or (subspace == "auto" and gram.device.type != "cpu"):
        return spectral_projector(gram, thresh**2)
    evals, evecs = hermitian_eigh(gram)
    evals = evals.clamp(min=0)
    keep = evals > (thresh**2) * evals[:, -1:]
    kept = evecs * keep.unsqueeze(1).to(evecs.dtype)
    return kept @ kept.conj().transpose(1, 2), keep.sum(dim=1)


def espirit(
    acs: torch.Tensor,
    image_shape: tuple[int, int],
    kernel: int = 6,
    thresh: float = 0.02,
    crop: float = 0.0,
    grid: int = 48,
    sets: int = 1,
    subspace: str = "auto",
    rows: tuple[int, int] | None = None,
) -> EspiritResult:
    """ESPIRiT maps from calibration k-space ``acs`` ``(S, C, h, w)`` for images of ``image_shape``.

    ``kernel`` is reduced along an axis when the calibration region is too small for it.
    ``grid`` caps the coarse grid (per axis) on which the eigen-decomposition runs.
    ``sets=2`` returns two map sets ``(S, 2, C, H, W)`` (see ``map_sets``).
    ``subspace`` picks how step 2 is computed (``SUBSPACE_METHODS``).
    ``rows = (top, n)``: maps and eigenvalues of those image rows only (a readout window).
    """
    if subspace not in SUBSPACE_METHODS:
        raise ValueError(f"unknown subspace method {subspace!r}; use {', '.join(SUBSPACE_METHODS)}")
    g, rank = pixel_operators(acs, image_shape, kernel, thresh, grid, subspace)
    return map_sets(g, rank, acs, image_shape, crop, sets, rows)


def pixel_operators(
    acs: torch.Tensor, image_shape: tuple[int, int], kernel: int, thresh: float, grid: int, subspace: str = "auto"
) -> tuple[torch.Tensor, torch.Tensor]:
    """Steps 1-3: the Hermitian per-pixel operators ``G(r)`` on the coarse grid ``(S, gh, gw, C, C)``
    and the rank of the kept patch space per slice."""
    s, c, h, w = acs.shape
    device = acs.device
    ky = max(1, min(kernel, h - 1 if h > 2 else h))
    kx = max(1, min(kernel, w - 1 if w > 2 else w))
    a = calibration_patches(acs, (ky, kx))
    gram = a.transpose(1, 2) @ a.conj()  # A^T conj(A): its eigenvectors span the patch space itself
    proj, rank = signal_projector(gram, thresh, subspace)  # (S, N, N), N = C*ky*kx
    proj = proj.reshape(s, c, ky * kx, c, ky * kx).permute(0, 1, 3, 2, 4).reshape(s, c, c, -1)
    ny, nx = 2 * ky - 1, 2 * kx - 1
    kern = torch.zeros(s, c, c, ny * nx, dtype=acs.dtype, device=device)
    kern.index_add_(3, _difference_index(ky, kx, device), proj)
    kern = kern.reshape(s, c, c, ny, nx)

    gh = min(image_shape[0], max(grid, ny))
    gw = min(image_shape[1], max(grid, nx))
    padded = torch.zeros(s, c, c, gh, gw, dtype=acs.dtype, device=device)
    top, left = gh // 2 - (ky - 1), gw // 2 - (kx - 1)
    padded[..., top : top + ny, left : left + nx] = kern
    g = torch.fft.ifftshift(padded, dim=(-2, -1))
    g = torch.fft.ifftn(g, dim=(-2, -1), norm="forward")
    g = torch.fft.fftshift(g, dim=(-2, -1)) / (ky * kx)  # sum_D g(D) e^{+2 pi i D r}, eigenvalues in [0, 1]
    g = g.permute(0, 3, 4, 1, 2)  # (S, gh, gw, C, C)
    g = 0.5 * (g + g.conj().transpose(-1, -2))
    return g, rank


def map_sets(
    g: torch.Tensor,
    rank: torch.Tensor,
    acs: torch.Tensor,
    image_shape: tuple[int, int],
    crop: float = 0.0,
    sets: int = 1,
    rows: tuple[int, int] | None = None,
) -> EspiritResult:
    """Steps 4-5: maps from the per-pixel operators ``g`` ``(S, gh, gw, C, C)``.

    ``sets=1``: the top eigenvector per pixel, ``(S, C, H, W)`` of unit norm. ``sets=2`` (soft-SENSE
    for a field of view smaller than the object, as BART's ``ecalib -m2``): ``(S, 2, C, H, W)``,
    the top two eigenvectors; the second set is zeroed where its eigenvalue is below
    ``SECOND_SET_CROP`` (only where the object folds over itself is there a second image), the
    first is cropped at ``crop`` as in one-set mode. Eigenvalues ``(S, 2, H, W)`` either way.
    ``rows = (top, n)``: only those image rows (``H`` becomes ``n``).
    """
    s, c = acs.shape[:2]
    lam, vec = hermitian_eigh(g)
    top2 = lam[..., -2:].flip(-1).clamp(min=0) if c > 1 else torch.cat([lam[..., -1:], torch.zeros_like(lam[..., -1:])], -1)
    eig = upsample_periodic(top2.permute(0, 3, 1, 2), image_shape, rows)
    # align phases to a virtual reference coil: the principal coil combination of the ACS data
    cov = acs.reshape(s, c, -1) @ acs.reshape(s, c, -1).conj().transpose(1, 2)
    ref = hermitian_eigh(cov)[1][..., -1]  # (S, C)
    # eigenvectors have an arbitrary phase (LAPACK and cuSOLVER differ): make the largest entry real
    lead = ref.gather(1, ref.abs().argmax(dim=1, keepdim=True))
    ref = ref * (lead.conj() / lead.abs().clamp(min=1e-30))
    out = []
    for k in range(min(sets, c)):
        v = vec[..., -1 - k]  # (S, gh, gw, C)
        inner = (v * ref.conj()[:, None, None, :]).sum(-1, keepdim=True)
        v = v * (inner / torch.clamp(inner.abs(), min=1e-12)).conj()
        maps = normalise_maps(upsample_periodic(v.permute(0, 3, 1, 2), image_shape, rows), floor=1e-6)
        limit = crop if k == 0 else max(crop, SECOND_SET_CROP)
        if limit > 0:
            maps = maps * (eig[:, k : k + 1] > limit)
        out.append(maps)
    maps = out[0] if sets == 1 else torch.stack(out + [torch.zeros_like(out[0])] * (sets - len(out)), dim=1)
    return EspiritResult(maps.to(acs.dtype), eig, rank)
