"""Undersampling masks.

The 1D column masks are fastMRI's own (``fastmri.data.subsample``), called exactly as
fastMRI's ``apply_mask`` calls them, so a mask here equals fastMRI's for the same seed.
Columns that the header marks as zero padding are never sampled (as in ``apply_mask``).
The 2D variable-density Poisson-disc mask is ours (``poisson_disc_mask``).
"""

from __future__ import annotations

from dataclasses import dataclass
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
        if not self.acceleration >= 1:
            raise ValueError(f"acceleration must be at least 1, got {self.acceleration}")
        cf = self.resolved_center_fraction()
        if not 0.0 < cf <= 1.0:
            raise ValueError(f"centre fraction must be in (0, 1], got {cf}")


def volume_seed(fname: str, seed: int | None = None) -> tuple[int, ...]:
    """The per-volume mask seed: fastMRI's ``tuple(map(ord, fname))``, prefixed by ``seed`` if given."""
    base = tuple(map(ord, fname))
    return base if seed is None else (int(seed),) + base


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
    from fastmri.data.subsample import create_mask_for_mask_type

    if mask_type not in COLUMN_MASK_TYPES:
        raise ValueError(f"{mask_type!r} is not a column mask type")
    func = create_mask_for_mask_type(mask_type, [center_fraction], [acceleration])
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


def poisson_disc_mask(
    shape: tuple[int, int],
    acceleration: float,
    calib: int,
    seed: Seed = None,
    max_iter: int = 12,
    tol: float = 0.05,
) -> np.ndarray:
    """A 2D variable-density Poisson-disc mask with a fully sampled ``calib`` x ``calib`` centre.

    The minimum distance between samples grows linearly with the distance from the centre
    (density falls off towards the edges); its scale is found by bisection so that the
    whole mask keeps about ``1/acceleration`` of the samples (within ``tol``).
    """
    height, width = shape
    if acceleration < 1:
        raise ValueError("acceleration must be at least 1")
    target = height * width / float(acceleration)
    ky, kx = np.meshgrid(
        (np.arange(height) - height // 2) / (height / 2.0),
        (np.arange(width) - width // 2) / (width / 2.0),
        indexing="ij",
    )
    kr = np.sqrt(ky**2 + kx**2) / np.sqrt(2.0)  # 0 at centre, 1 in the corners
    order = _rng_from_seed(seed).permutation(height * width)

    calib_mask = np.zeros(shape, dtype=bool)
    ch, cw = min(calib, height), min(calib, width)
    top, left = (height - ch + 1) // 2, (width - cw + 1) // 2
    calib_mask[top : top + ch, left : left + cw] = True

    lo, hi = 0.0, float(max(height, width))
    best = calib_mask.copy()
    for _ in range(max_iter):
        scale = 0.5 * (lo + hi)
        radius = 1.0 + scale * kr  # pixels; 1 means every pixel may be sampled
        mask = _poisson_disc_fill(radius, order) | calib_mask
        count = mask.sum()
        best = mask
        if abs(count - target) <= tol * target:
            break
        if count > target:
            lo = scale
        else:
            hi = scale
    return best


def _poisson_disc_fill(radius: np.ndarray, order: np.ndarray) -> np.ndarray:
    """Dart throwing in the random ``order``: keep a point if no kept point lies within its radius."""
    height, width = radius.shape
    rmax = int(np.ceil(radius.max()))
    offsets = [
        (dy, dx)
        for dy in range(-rmax, rmax + 1)
        for dx in range(-rmax, rmax + 1)
        if (dy, dx) != (0, 0) and dy * dy + dx * dx < rmax * rmax
    ]
    dist = np.array([np.hypot(dy, dx) for dy, dx in offsets])
    dys = np.array([o[0] for o in offsets], dtype=np.int64)
    dxs = np.array([o[1] for o in offsets], dtype=np.int64)
    # A conflict-free set is found in rounds: each round proposes the not-yet-blocked
    # points, accepts those not blocked by an earlier proposal of the same round, and
    # blocks their neighbourhoods. Equivalent to sequential dart throwing in ``order``.
    rank = np.empty(height * width, dtype=np.int64)
    rank[order] = np.arange(order.size)
    rank = rank.reshape(height, width)
    flat_r = radius
    kept = np.zeros((height, width), dtype=bool)
    blocked = np.zeros((height, width), dtype=bool)
    padded_rank = np.full((height + 2 * rmax, width + 2 * rmax), np.iinfo(np.int64).max, dtype=np.int64)
    while True:
        free = ~blocked & ~kept
        if not free.any():
            break
        cand_rank = np.where(free, rank, np.iinfo(np.int64).max)
        padded_rank[rmax : rmax + height, rmax : rmax + width] = cand_rank
        # a free point wins if it has the smallest rank among free points within its radius
        winner = free.copy()
        for (dy, dx), d in zip(zip(dys, dxs), dist):
            neighbour = padded_rank[rmax + dy : rmax + dy + height, rmax + dx : rmax + dx + width]
            conflict = (d < flat_r) & (neighbour < cand_rank)
            winner &= ~conflict
        kept |= winner
        # block every point that lies within its own radius of a kept point
        padded_kept = np.zeros((height + 2 * rmax, width + 2 * rmax), dtype=bool)
        padded_kept[rmax : rmax + height, rmax : rmax + width] = kept
        newly = np.zeros_like(blocked)
        for (dy, dx), d in zip(zip(dys, dxs), dist):
            near = padded_kept[rmax + dy : rmax + dy + height, rmax + dx : rmax + dx + width]
            newly |= near & (d < flat_r)
        blocked |= newly & ~kept
    return kept
