"""Column masks equal fastMRI's for the same arguments and seed; padded columns are never sampled."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from fastmri.data.subsample import create_mask_for_mask_type
from fastmri.data.transforms import apply_mask

from mrirecon.mri.masks import COLUMN_MASK_TYPES, MaskSpec, column_mask, make_mask, volume_seed


@pytest.mark.parametrize("mask_type", COLUMN_MASK_TYPES)
@pytest.mark.parametrize("accel,cf", [(4, 0.08), (8, 0.04)])
@pytest.mark.parametrize("num_cols", [368, 372, 255])
def test_column_mask_equals_fastmri(mask_type: str, accel: int, cf: float, num_cols: int) -> None:
    seed = volume_seed("file1000031.h5")
    ours, num_low = column_mask(mask_type, num_cols, accel, cf, seed=seed)
    ref, ref_low = create_mask_for_mask_type(mask_type, [cf], [accel])((1, num_cols, 1), seed=seed)
    np.testing.assert_array_equal(ours, ref.numpy().reshape(-1).astype(bool))
    assert num_low == ref_low


@pytest.mark.parametrize("mask_type", COLUMN_MASK_TYPES)
def test_padding_matches_fastmri_apply_mask(mask_type: str) -> None:
    seed = volume_seed("file_pad.h5", 7)
    padding = (17, 351)
    ours, _ = make_mask(MaskSpec(mask_type, 4, 0.08), (640, 368), seed=seed, padding=padding)
    data = torch.ones(1, 640, 368, 2)
    func = create_mask_for_mask_type(mask_type, [0.08], [4])
    _, ref_mask, _ = apply_mask(data, func, seed=seed, padding=padding)
    np.testing.assert_array_equal(ours, ref_mask.numpy().reshape(-1).astype(bool))
    assert not ours[:17].any() and not ours[351:].any()


def test_default_seed_is_fastmris() -> None:
    assert volume_seed("ab.h5") == (97, 98, 46, 104, 53)
    assert volume_seed("ab.h5", 3) == (3, 97, 98, 46, 104, 53)


def test_seed_changes_random_mask() -> None:
    a, _ = make_mask(MaskSpec("random", 4), (64, 200), seed=volume_seed("a.h5"))
    b, _ = make_mask(MaskSpec("random", 4), (64, 200), seed=volume_seed("b.h5"))
    c, _ = make_mask(MaskSpec("random", 4), (64, 200), seed=volume_seed("a.h5"))
    assert (a != b).any() and (a == c).all()


def test_bad_spec_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown mask type"):
        MaskSpec("spiral", 4).validate()
    with pytest.raises(ValueError, match="acceleration"):
        MaskSpec("random", 0).validate()
    with pytest.raises(ValueError, match="centre fraction"):
        MaskSpec("random", 4, 1.5).validate()
