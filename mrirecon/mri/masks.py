"""Undersampling masks.

The 1D column masks are fastMRI's own (``fastmri.data.subsample``), called exactly as
fastMRI's ``apply_mask`` calls them, so a mask here equals fastMRI's for the same seed.
Columns that the header marks as zero padding are never sampled (as in ``apply_mask``).
The 2D variable-density Poisson-disc mask is ours (``poisson_disc_mask``).
"""

from __future__ import annotations

import functools
import importlib.util
import math
import sys
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Sequence, Union

import numpy as np

COLUMN_MASK_TYPES = ("random", "equispaced", "equispaced_fraction", "magic", "magic_fraction")
MASK_TYPES = COLUMN_MASK_TYPES + ("poisson",)

Seed = Union[int, tuple[int, ...], None]

#: fastMRI's pairing of acceleration and centre fraction (8% at 4x, 4% at 8x).
DEFAULT_CENTER_FRACTIONS = {4: 0.08, 8: 0.04}


@dataclass(frozen=True)
class MaskSpec:
    """What mask to draw: type, acceleration, centre fraction and seed offset."""

    mask_type: str = "random"
    acceleration: int = 4
    center_fraction: float | None = None
    seed: int | None = None

    def resolved_center_fraction(self) -> float:
        """The centre fraction, defaulting as fastMRI does (8% at 4x, 4% at 8x, else 32%/accel)."""
        if self.center_fraction is not None:
            return float(self.center_fraction)
        return DEFAULT_CENTER_FRACTIONS.get(int(self.acceleration), 0.32 / float(self.acceleration))

    def validate(self) -> None:
        """Raise ``ValueError`` with one sentence if the spec is unusable."""
        if self.mask_type not in MASK_TYPES:
            raise ValueError(f"unknown mask type {self.mask_type!r}; choose one of {', '.join(MASK_TYPES)}")
        accel = self.acceleration
        if isinstance(accel, bool) or not isinstance(accel, (int, float)) or not math.isfinite(accel) or accel <= 1:
            raise ValueError(f"acceleration must be a finite number above 1, got {accel}")
        cf = self.resolved_center_fraction()
        if not (math.isfinite(cf) and 0.0 < cf < 1.0):
            raise ValueError(f"centre fraction must be in (0, 1), got {cf}")
        if cf > 1.0 / accel + 1e-9:
            raise ValueError(
                f"centre fraction {cf:g} keeps more columns than acceleration {accel:g} allows (at most 1/{accel:g} = {1 / accel:.4g})"
            )
        if self.seed is not None and not 0 <= self.seed < 2**32:
            raise ValueError(f"seed must be in [0, 2**32), got {self.seed}")


def volume_seed(fname: str, seed: int | None = None) -> tuple[int, ...]:
    """The per-volume mask seed: fastMRI's ``tuple(map(ord, fname))``, prefixed by ``seed`` if given."""
    base = tuple(map(ord, fname))
    return base if seed is None else (int(seed),) + base


def fastmri_subsample() -> ModuleType:
    """fastMRI's mask module, ``fastmri/data/subsample.py`` (it imports only numpy and torch).

    Imported as ``fastmri.data.subsample`` when something already did; otherwise loaded from its
    file alone, because importing it by name first runs ``fastmri.data``'s package imports (its
    datasets, pandas): about 0.25 s of CPU in every ``cs-recon``/``zf-recon`` process. Same code,
    same masks (``tests/test_masks.py``)."""
    return sys.modules.get("fastmri.data.subsample") or _standalone_subsample()


@functools.lru_cache(maxsize=1)
def _standalone_subsample() -> ModuleType:
    spec = importlib.util.find_spec("fastmri")  # finds the package without importing it
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("the fastmri package is not installed")
    path = Path(list(spec.submodule_search_locations)[0]) / "data" / "subsample.py"
    file_spec = importlib.util.spec_from_file_location("mrirecon._fastmri_subsample", path)
    assert file_spec is not None and file_spec.loader is not None
    module = importlib.util.module_from_spec(file_spec)
    file_spec.loader.exec_module(module)
    return module


def column_mask(
    mask_type: str,
    num_cols: int,
    acceleration: int,
    center_fraction: float,
    seed: Seed = None,
    padding: tuple[int, int] | None = None,
) -> tuple[np.ndarray, int]:
    """A 1D column mask of length ``num_cols`` and its number of low-frequency columns.

    Identical to ``fastmri.data.subsample.create_mask_for_mask_type(mask_type,
    [center_fraction], [acceleration])((1, num_cols, 1), seed=seed)`` followed by
    fastMRI's zeroing of the padded columns ``[:padding[0]]`` and ``[padding[1]:]``.
    """
    if mask_type not in COLUMN_MASK_TYPES:
        raise ValueError(f"{mask_type!r} is not a column mask type")
    func = fastmri_subsample().create_mask_for_mask_type(mask_type, [center_fraction], [acceleration])
    mask, num_low = func((1, num_cols, 1), seed=seed)
    mask_np = mask.numpy().reshape(num_cols).astype(bool)
    if padding is not None:
        left, right = padding
        mask_np[: max(left, 0)] = False
        if right < num_cols:
            mask_np[max(right, 0) :] = False
    return mask_np, int(num_low)


def make_mask(
    spec: MaskSpec,
    kspace_shape: Sequence[int],
    seed: Seed,
    padding: tuple[int, int] | None = None,
) -> tuple[np.ndarray, int]:
    """The mask for a k-space of ``kspace_shape`` (``(..., H, W)``).

    Returns a boolean mask of shape ``(W,)`` for column masks or ``(H, W)`` for ``poisson``,
    and the number of fully sampled low-frequency columns (the calibration width).
    """
    spec.validate()
    height, width = int(kspace_shape[-2]), int(kspace_shape[-1])
    cf = spec.resolved_center_fraction()
    if spec.mask_type == "poisson":
        calib = max(2, round(width * cf))
        mask = poisson_disc_mask((height, width), spec.acceleration, calib, seed=seed)
        if padding is not None:
            left, right = padding
            mask[:, : max(left, 0)] = False
            if right < width:
                mask[:, max(right, 0) :] = False
        return mask, calib
    return column_mask(spec.mask_type, width, spec.acceleration, cf, seed=seed, padding=padding)


def _rng_from_seed(seed: Seed) -> np.random.RandomState:
    rng = np.random.RandomState()
    if seed is not None:
        rng.seed(seed)  # accepts int or tuple of ints, like fastMRI's temp_seed
    return rng


#: Samples per pixel times the squared spacing when dart throwing has filled the plane (the
#: jamming density of random sequential packing of discs, 0.547 * 4 / pi); on the pixel grid
#: the spacing is the shortest grid distance not below the radius (measured: 0.68-0.71).
_PACKING_DENSITY = 0.7

#: The slope kept while a fully sampled core grows, for accelerations too low (below about 2.7)
#: for ``1 + slope * rho`` alone: radii just above 1 already halve the density on the grid.
_CORE_SLOPE = 0.25

#: Relative spread of the per-pixel random radius factor ``1 + _WOBBLE * (u - 0.5)``. On the
#: pixel grid every radius in (1, sqrt 2] gives the same pattern, (sqrt 2, 2] the next, and so
#: on; random radii blend these steps into a smoothly falling density instead of rings.
_WOBBLE = 0.6

#: Chunk size of the vectorised dart throwing, as a fraction of the expected sample count.
_CHUNK_FRACTION = 0.3


def poisson_disc_mask(
    shape: tuple[int, int],
    acceleration: float,
    calib: int,
    seed: Seed = None,
    max_iter: int = 12,
    tol: float = 0.02,
) -> np.ndarray:
    """A 2D variable-density Poisson-disc mask with a fully sampled ``calib`` x ``calib`` centre.

    Boolean ``(H, W)``, about ``H * W / acceleration`` samples (within ``tol``), the same for
    the same ``seed``. See :func:`poisson_disc_sampling` for the definition.
    """
    return poisson_disc_sampling(shape, acceleration, calib, seed=seed, max_iter=max_iter, tol=tol)[0]


def poisson_disc_radius(shape: tuple[int, int], spread: float, wobble: np.ndarray | None = None) -> np.ndarray:
    """The exclusion radius in pixels at each point of a ``shape`` k-space; larger ``spread``, sparser.

    ``rho`` is the elliptical distance from the centre pixel ``(H // 2, W // 2)``, 1 at the
    middle of each edge. For ``spread >= _CORE_SLOPE`` the radius is ``1 + spread * rho``;
    below it, ``1 + _CORE_SLOPE * max(rho - rho0, 0)`` with a fully sampled core ``rho0`` that
    grows linearly to the whole k-space as ``spread`` falls to 0 (radius 1 everywhere).
    ``wobble`` (``shape``, values in [0, 1)) scales each radius above 1 by
    ``1 + _WOBBLE * (wobble - 0.5)``, but not below 1.
    """
    return _radius_from_rho(_normalised_distance(shape), spread, wobble=wobble)


def _normalised_distance(shape: tuple[int, int]) -> np.ndarray:
    height, width = shape
    ky = (np.arange(height) - height // 2) / (height / 2.0)
    kx = (np.arange(width) - width // 2) / (width / 2.0)
    return np.sqrt(ky[:, None] ** 2 + kx[None, :] ** 2)


def _radius_from_rho(
    rho: np.ndarray,
    spread: float,
    rho_max: float | None = None,
    wobble: np.ndarray | None = None,
    floor: float = 1.0,
) -> np.ndarray:
    if spread >= _CORE_SLOPE:
        radius = 1.0 + spread * rho
    else:
        rho_max = float(rho.max()) if rho_max is None else rho_max
        core = rho_max * (1.0 - spread / _CORE_SLOPE)
        radius = 1.0 + _CORE_SLOPE * np.maximum(rho - core, 0.0)
    if wobble is None:
        return radius
    return np.where(radius > 1.0, np.maximum(radius * (1.0 + _WOBBLE * (wobble - 0.5)), floor), radius)


def _calib_square(shape: tuple[int, int], calib: int) -> np.ndarray:
    height, width = shape
    mask = np.zeros(shape, dtype=bool)
    ch, cw = min(calib, height), min(calib, width)
    top, left = (height - ch + 1) // 2, (width - cw + 1) // 2
    mask[top : top + ch, left : left + cw] = True
    return mask


def poisson_disc_sampling(
    shape: tuple[int, int],
    acceleration: float,
    calib: int,
    seed: Seed = None,
    max_iter: int = 12,
    tol: float = 0.02,
) -> tuple[np.ndarray, np.ndarray]:
    """A variable-density Poisson-disc mask and the radius map it obeys, as ``(mask, radius)``.

    Each pixel ``p`` has an exclusion radius ``r(p)`` that grows with the distance from the
    k-space centre (:func:`poisson_disc_radius`). Dart throwing visits the pixels in a random
    order drawn from ``seed`` (an int or tuple of ints, as ``numpy.random.RandomState``
    takes; ``None`` draws one) on top of the fully sampled ``calib`` x ``calib`` centre, and
    keeps a pixel ``p`` unless a kept pixel ``q`` lies closer than ``max(r(p), r(q))``. So no
    two samples (bar two calibration pixels) are closer than the larger of their radii, and
    every unsampled pixel is that close to a sample. The density parameter is tuned (same
    order throughout) until the mask holds ``H * W / acceleration`` samples within a relative
    ``tol``; if ``max_iter`` fills do not get there (tiny shapes), the closest one is returned.
    Raises ``ValueError`` if the calibration square alone exceeds the target.
    """
    height, width = int(shape[0]), int(shape[1])
    shape = (height, width)
    if not acceleration >= 1:
        raise ValueError(f"acceleration must be at least 1, got {acceleration}")
    if height < 1 or width < 1:
        raise ValueError(f"mask shape must be positive, got {shape}")
    total = height * width
    target = total / float(acceleration)
    calib_mask = _calib_square(shape, max(int(calib), 0))
    n_calib = int(calib_mask.sum())
    if n_calib > target * (1.0 + tol):
        raise ValueError(
            f"a {calib}x{calib} calibration square alone samples more than 1/{acceleration:g} "
            f"of a {height}x{width} k-space"
        )
    if target >= total * (1.0 - tol):
        return np.ones(shape, dtype=bool), np.ones(shape)
    rng = _rng_from_seed(seed)
    order = rng.permutation(total)
    wobble = rng.random_sample(shape)

    rho = _normalised_distance(shape)
    rho_max = float(rho.max())
    model = _DensityModel(rho[~calib_mask], rho_max, want=target - n_calib)
    packing = _PACKING_DENSITY
    spread = model.solve(packing)
    lo, hi = 0.0, np.inf  # spreads known to give too many / too few samples
    best: tuple[float, np.ndarray, np.ndarray] | None = None
    for _ in range(max_iter):
        # a radius beyond the diagonal blocks nothing more, and would only cost time
        radius = np.minimum(_radius_from_rho(rho, spread, rho_max, wobble), np.hypot(height, width))
        mask = _poisson_disc_fill(radius, order, calib_mask)
        count = int(mask.sum())
        error = abs(count - target) / target
        if best is None or error < best[0]:
            best = (error, mask, radius)
        if error <= tol:
            break
        if count > target:
            lo = max(lo, spread)
        else:
            hi = min(hi, spread)
        # refit the packing constant to this fill, then step to where the model hits the target
        core, sparse = model.parts(spread)
        if sparse > 0 and count - n_calib > core:
            packing = (count - n_calib - core) / sparse
        spread = model.solve(packing)
        if not lo < spread < hi:
            spread = 0.5 * (lo + hi) if np.isfinite(hi) else 2.0 * max(lo, _CORE_SLOPE)
    assert best is not None
    return best[1], best[2]


class _DensityModel:
    """Expected sample count for a spread: 1 per pixel where ``r <= 1``, else ``c / L(r)^2``.

    ``L(r)`` is the shortest grid distance ``>= r`` (samples closer than ``r`` are excluded,
    so it is the spacing that can actually occur); ``c`` is the packing constant. Pixels are
    binned by ``rho``, each bin spread over a few wobble quantiles.
    """

    def __init__(self, rho: np.ndarray, rho_max: float, want: float) -> None:
        counts, edges = np.histogram(rho, bins=256, range=(0.0, max(rho_max, 1e-9)))
        quantiles = (np.arange(8) + 0.5) / 8
        self.counts = np.repeat(counts.astype(float) / quantiles.size, quantiles.size)
        self.centres = np.repeat(0.5 * (edges[:-1] + edges[1:]), quantiles.size)
        self.wobble = np.tile(quantiles, counts.size)
        self.rho_max = rho_max
        self.want = want
        side = np.arange(65)
        self.grid_sq = np.unique((side[:, None] ** 2 + side[None, :] ** 2).ravel())

    def parts(self, spread: float) -> tuple[float, float]:
        """``(core, sparse)``: the count is ``core + c * sparse``."""
        # a wobbled radius clipped to 1 still has neighbours with larger radii: not a core pixel
        r = _radius_from_rho(self.centres, spread, self.rho_max, self.wobble, floor=1.0 + 1e-9)
        core = r <= 1.0
        r_sq = r[~core] ** 2
        idx = np.searchsorted(self.grid_sq, r_sq, side="left")
        spacing_sq = np.where(idx < self.grid_sq.size, self.grid_sq[np.minimum(idx, self.grid_sq.size - 1)], r_sq)
        return float(self.counts[core].sum()), float(np.sum(self.counts[~core] / spacing_sq))

    def solve(self, packing: float) -> float:
        """The spread at which the model gives ``want`` samples (bisection; it is decreasing)."""

        def count(spread: float) -> float:
            core, sparse = self.parts(spread)
            return core + packing * sparse

        lo, hi = 0.0, 1.0
        while count(hi) > self.want and hi < 1e6:
            lo, hi = hi, 2.0 * hi
        for _ in range(30):
            mid = 0.5 * (lo + hi)
            if count(mid) > self.want:
                lo = mid
            else:
                hi = mid
        return 0.5 * (lo + hi)


def _poisson_disc_fill(
    radius: np.ndarray, order: np.ndarray, calib_mask: np.ndarray, chunk: int | None = None
) -> np.ndarray:
    """Dart throwing over the pixels in ``order`` on top of ``calib_mask``, vectorised.

    Same result as visiting the pixels one by one in ``order`` and keeping ``p`` unless a kept
    pixel ``q`` (calibration pixels count as kept) lies closer than ``max(radius[p],
    radius[q])``. The order is cut into chunks; a chunk's pixels not yet blocked become
    candidates, their conflicts with earlier candidates of the chunk are listed, the
    sequential outcome is resolved in a few parallel rounds (:func:`_resolve_in_order`), and
    the kept pixels block their neighbourhoods. It stops once every pixel is blocked.
    ``chunk`` is about how many candidates a chunk takes (default: from the expected count).
    """
    height, width = radius.shape
    total = height * width
    rmax = float(radius.max())
    # a q with |p - q| < r(q) <= rmax lies in p's (2 rmax + 1)-square, so p's searches
    # need to reach no further than the largest radius in that square
    k = int(np.ceil(rmax))
    reach = _max_filter(_max_filter(radius, k, axis=0), k, axis=1)

    pad = int(np.ceil(rmax))
    padded_shape = (height + 2 * pad, width + 2 * pad)
    offsets, dists = _disc_offsets(rmax, padded_shape[1])

    def padded(a: np.ndarray, fill: float) -> np.ndarray:
        out = np.full(padded_shape, fill, dtype=a.dtype)
        out[pad : pad + height, pad : pad + width] = a
        return out.ravel()

    radius_p = padded(radius, 0.0)
    reach_p = padded(reach, 0.0)
    flat = np.arange(total)
    to_padded = (flat // width + pad) * padded_shape[1] + flat % width + pad
    order_p = to_padded[order]

    kept = np.zeros(radius_p.size, dtype=bool)
    blocked = np.zeros(radius_p.size, dtype=bool)
    interior = blocked.reshape(padded_shape)[pad : pad + height, pad : pad + width]
    calib_p = to_padded[np.flatnonzero(calib_mask.ravel())]
    kept[calib_p] = True
    _block_around(blocked, calib_p, radius_p, reach_p, offsets, dists)

    none = np.iinfo(np.int64).max
    cand_id = np.full(radius_p.size, none, dtype=np.int64)
    if chunk is None:
        expected = _PACKING_DENSITY * float(np.sum(1.0 / np.maximum(radius, 1.0) ** 2))
        chunk = max(256, int(_CHUNK_FRACTION * expected))
    start = 0
    while start < total:
        # every pixel before ``start`` is kept or blocked, so the unblocked ones lie ahead
        unblocked = total - int(interior.sum())
        if unblocked == 0:
            break
        size = int(min(total - start, chunk * (total - start) / unblocked))
        pixels = order_p[start : start + max(size, 1)]
        start += pixels.size
        cands = pixels[~blocked[pixels]]  # in order, so candidate id order is visiting order
        if cands.size == 0:
            continue
        n = cands.size
        cand_id[cands] = np.arange(n)
        later, earlier = _conflicts_with_earlier(cands, cand_id, radius_p, reach_p, offsets, dists)
        cand_id[cands] = none
        new = cands[_resolve_in_order(n, later, earlier)]
        kept[new] = True
        _block_around(blocked, new, radius_p, reach_p, offsets, dists)
    return kept.reshape(padded_shape)[pad : pad + height, pad : pad + width].copy()


def _max_filter(a: np.ndarray, k: int, axis: int) -> np.ndarray:
    """Maximum of the nonnegative ``a`` over windows ``[i - k, i + k]`` along ``axis``."""
    a = np.moveaxis(a, axis, 0)
    n, size = a.shape[0], 2 * k + 1
    edge = np.zeros((k,) + a.shape[1:], dtype=a.dtype)
    run, width = np.concatenate([edge, a, edge]), 1
    while 2 * width <= size:  # run[i] = max of the padded a over [i, i + 2 * width)
        run, width = np.maximum(run[:-width], run[width:]), 2 * width
    return np.moveaxis(np.maximum(run[:n], run[size - width : size - width + n]), 0, axis)


def _disc_offsets(rmax: float, row_stride: int) -> tuple[np.ndarray, np.ndarray]:
    """Flat offsets (for ``row_stride``) of the pixels closer than ``rmax``, nearest first."""
    k = int(np.ceil(rmax))
    dy, dx = np.mgrid[-k : k + 1, -k : k + 1]
    dist = np.hypot(dy, dx).ravel()
    inside = dist < rmax
    flat = (dy.ravel() * row_stride + dx.ravel())[inside]
    dist = dist[inside]
    nearest = np.argsort(dist, kind="stable")
    return flat[nearest], dist[nearest]


def _conflicts_with_earlier(
    cands: np.ndarray,
    cand_id: np.ndarray,
    radius_p: np.ndarray,
    reach_p: np.ndarray,
    offsets: np.ndarray,
    dists: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Pairs of candidate ids ``(p, q)``, ``q < p``, closer than ``max(r(p), r(q))``."""
    by_reach = np.argsort(-reach_p[cands], kind="stable")
    # for each offset, the candidates whose reach exceeds its length are a prefix of by_reach
    counts = np.searchsorted(-reach_p[cands][by_reach], -dists, side="left")
    later, earlier = [], []
    for off, dist, k in zip(offsets, dists, counts, strict=True):
        if k == 0:
            break
        if dist == 0.0:
            continue
        pid = by_reach[:k]
        nb = cands[pid] + off
        qid = cand_id[nb]
        hit = qid < pid
        if not hit.any():
            continue
        pid, nb, qid = pid[hit], nb[hit], qid[hit]
        close = (dist < radius_p[cands[pid]]) | (dist < radius_p[nb])
        later.append(pid[close])
        earlier.append(qid[close])
    if not later:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    return np.concatenate(later), np.concatenate(earlier)


def _resolve_in_order(n: int, later: np.ndarray, earlier: np.ndarray) -> np.ndarray:
    """Which of ``n`` candidates sequential dart throwing keeps, given conflicts ``later -> earlier``.

    A candidate is kept once all the earlier candidates it conflicts with are rejected, and
    rejected as soon as one of them is kept; each round settles at least the first open one.
    """
    kept = np.zeros(n, dtype=bool)
    open_ = np.ones(n, dtype=bool)
    while open_.any():
        live = open_[later]
        later, earlier = later[live], earlier[live]
        beaten = np.zeros(n, dtype=bool)
        beaten[later[kept[earlier]]] = True
        waiting = np.zeros(n, dtype=bool)
        waiting[later[open_[earlier]]] = True
        now_kept = open_ & ~beaten & ~waiting
        kept |= now_kept
        open_ &= ~(beaten | now_kept)
    return kept


def _block_around(
    blocked: np.ndarray,
    points: np.ndarray,
    radius_p: np.ndarray,
    reach_p: np.ndarray,
    offsets: np.ndarray,
    dists: np.ndarray,
) -> None:
    """Mark every pixel ``t`` with ``|t - p| < max(r(p), r(t))`` for a kept ``p`` in ``points``."""
    if points.size == 0:
        return
    points = points[np.argsort(-reach_p[points], kind="stable")]
    counts = np.searchsorted(-reach_p[points], -dists, side="left")
    own = radius_p[points]
    for off, dist, k in zip(offsets, dists, counts, strict=True):
        if k == 0:
            break
        t = points[:k] + off
        close = (dist < own[:k]) | (dist < radius_p[t])
        blocked[t[close]] = True
