"""The 2D variable-density Poisson-disc mask: sample count, centre, seeds, spacing, density."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial import cKDTree

from mrirecon.mri.masks import (
    MaskSpec,
    _calib_square,
    _poisson_disc_fill,
    make_mask,
    poisson_disc_mask,
    poisson_disc_radius,
    poisson_disc_sampling,
)


def sequential_dart_throwing(radius: np.ndarray, order: np.ndarray, calib: np.ndarray) -> np.ndarray:
    """The definition, one pixel at a time: keep p unless a kept q is closer than max(r(p), r(q))."""
    width = radius.shape[1]
    mask = calib.copy()
    kept = [tuple(q) for q in np.argwhere(calib)]
    for flat in order:
        y, x = divmod(int(flat), width)
        if mask[y, x]:
            continue
        if all(np.hypot(y - qy, x - qx) >= max(radius[y, x], radius[qy, qx]) for qy, qx in kept):
            kept.append((y, x))
            mask[y, x] = True
    return mask


def closer_than_radius(mask: np.ndarray, radius: np.ndarray, calib: np.ndarray) -> int:
    """How many samples have another sample closer than their own radius (calib pairs aside)."""
    points = np.argwhere(mask)
    tree = cKDTree(points)
    own = radius[mask]
    is_calib = calib[mask]
    bad = 0
    for i, neighbours in enumerate(tree.query_ball_point(points, own - 1e-9)):
        others = [j for j in neighbours if j != i and not (is_calib[i] and is_calib[j])]
        bad += len(others)
    return bad


@pytest.mark.parametrize(
    ("shape", "acceleration", "calib"),
    [((96, 80), 4, 8), ((96, 80), 8, 6), ((96, 80), 12, 4), ((128, 64), 4, 10), ((50, 120), 8, 6), ((64, 64), 2, 8)],
)
def test_sampling_fraction_within_tolerance(shape, acceleration, calib):
    for seed in (0, 1):
        mask = poisson_disc_mask(shape, acceleration, calib, seed=seed)
        assert mask.shape == shape and mask.dtype == bool
        achieved = mask.size / mask.sum()
        assert abs(achieved / acceleration - 1) < 0.05, (shape, acceleration, seed, achieved)


def test_calibration_square_fully_sampled_and_centred():
    for shape, calib in [((64, 48), 10), ((65, 47), 9), ((40, 40), 7)]:
        mask = poisson_disc_mask(shape, 6, calib, seed=3)
        top, left = (shape[0] - calib + 1) // 2, (shape[1] - calib + 1) // 2
        assert mask[top : top + calib, left : left + calib].all()
        # the centre pixel (H // 2, W // 2), where fftshifted k-space has DC, is inside it
        assert top <= shape[0] // 2 < top + calib and left <= shape[1] // 2 < left + calib


def test_deterministic_from_seed_and_seed_dependent():
    shape = (80, 72)
    a = poisson_disc_mask(shape, 5, 8, seed=(1, 2, 3))
    b = poisson_disc_mask(shape, 5, 8, seed=(1, 2, 3))
    c = poisson_disc_mask(shape, 5, 8, seed=(1, 2, 4))
    d = poisson_disc_mask(shape, 5, 8, seed=7)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)
    assert not np.array_equal(a, d)
    assert not np.array_equal(poisson_disc_mask(shape, 5, 8, seed=None), poisson_disc_mask(shape, 5, 8, seed=None))


@pytest.mark.parametrize(("acceleration", "seed"), [(4, 0), (8, 1), (12, 2), (2, 3)])
def test_no_sample_closer_than_its_radius(acceleration, seed):
    shape = (72, 60)
    mask, radius = poisson_disc_sampling(shape, acceleration, 6, seed=seed)
    calib = _calib_square(shape, 6)
    assert (radius >= 1).all()
    assert closer_than_radius(mask, radius, calib) == 0
    # maximal: every unsampled pixel is closer than max(r(p), r(q)) to some sample q
    points = np.argwhere(mask)
    for y, x in np.argwhere(~mask)[::7]:
        dist = np.hypot(points[:, 0] - y, points[:, 1] - x)
        assert (dist < np.maximum(radius[y, x], radius[mask])).any()


def test_radius_grows_from_centre():
    shape = (64, 48)
    radius = poisson_disc_radius(shape, 3.0)
    assert radius[32, 24] == 1.0
    assert radius[32, 24] < radius[32, 36] < radius[32, 47]
    assert radius[32, 24] < radius[48, 24] < radius[63, 24] < radius[63, 47]
    # below the core slope a fully sampled core appears, and spread 0 samples everything
    assert (poisson_disc_radius(shape, 0.0) == 1.0).all()
    core = poisson_disc_radius(shape, 0.1)
    assert core[32, 24] == 1.0 and core[28, 20] == 1.0 and core[0, 0] > 1.0


def test_density_falls_with_distance_from_centre():
    shape = (160, 128)
    ky, kx = np.meshgrid(
        (np.arange(shape[0]) - shape[0] // 2) / (shape[0] / 2),
        (np.arange(shape[1]) - shape[1] // 2) / (shape[1] / 2),
        indexing="ij",
    )
    rho = np.hypot(ky, kx)
    for acceleration in (4, 8, 12):
        mask = poisson_disc_mask(shape, acceleration, 8, seed=acceleration)
        outside_calib = ~_calib_square(shape, 8)
        inner = mask[(rho < 0.35) & outside_calib].mean()
        middle = mask[(rho >= 0.35) & (rho < 0.7)].mean()
        outer = mask[(rho >= 0.7) & (rho < 1.0)].mean()
        assert inner > middle > outer, (acceleration, inner, middle, outer)
        assert inner > 1.4 * outer


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_vectorised_fill_equals_sequential_dart_throwing(seed):
    rng = np.random.RandomState(seed)
    shape = (26, 21)
    calib = _calib_square(shape, 4)
    order = rng.permutation(shape[0] * shape[1])
    smooth = poisson_disc_radius(shape, 4.0, wobble=rng.random_sample(shape))
    arbitrary = rng.uniform(0.8, 4.5, shape)  # no smoothness for the neighbourhood bounds to lean on
    for radius in (smooth, arbitrary):
        expected = sequential_dart_throwing(radius, order, calib)
        for chunk in (1, 7, 10_000):  # many small chunks, some, one
            got = _poisson_disc_fill(radius, order, calib, chunk=chunk)
            assert np.array_equal(got, expected), (seed, chunk)


def test_make_mask_poisson_uses_it():
    spec = MaskSpec(mask_type="poisson", acceleration=8, center_fraction=0.08)
    mask, calib = make_mask(spec, (3, 96, 80), seed=(5,))
    assert mask.shape == (96, 80) and calib == round(80 * 0.08)
    assert np.array_equal(mask, poisson_disc_mask((96, 80), 8, calib, seed=(5,)))


def test_rejects_impossible_requests():
    with pytest.raises(ValueError, match="acceleration"):
        poisson_disc_mask((32, 32), 0.5, 4, seed=0)
    with pytest.raises(ValueError, match="calibration"):
        poisson_disc_mask((32, 32), 8, 20, seed=0)
    assert poisson_disc_mask((32, 32), 1, 4, seed=0).all()
