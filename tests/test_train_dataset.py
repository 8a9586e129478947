"""The slice dataset and transform against fastMRI's ``UnetDataTransform``; masks and sampling order."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from fastmri.data.subsample import create_mask_for_mask_type
from fastmri.data.transforms import UnetDataTransform

from conftest import write_test_volume
from mrirecon.mri.masks import MaskSpec
from mrirecon.train.dataset import EpochSampler, SliceDataset


@pytest.mark.parametrize(
    "coils, shape, recon",
    [(None, (64, 48), (32, 32)), (4, (64, 48), (32, 32)), (3, (40, 30), (32, 32))],  # last: narrower than the crop
)
def test_validation_items_equal_fastmri_unet_transform(tmp_path: Path, coils, shape, recon) -> None:
    path = tmp_path / "knee_a.h5"
    write_test_volume(path, slices=3, coils=coils, shape=shape, recon=recon, seed=1)
    spec = MaskSpec("random", 4, 0.08)
    dataset = SliceDataset([path], spec, train=False)
    challenge = "multicoil" if coils else "singlecoil"
    reference = UnetDataTransform(challenge, create_mask_for_mask_type("random", [0.08], [4]), use_seed=True)
    key = "reconstruction_rss" if coils else "reconstruction_esc"
    with h5py.File(path, "r") as f:
        for s in range(3):
            ref = reference(f["kspace"][s], None, f[key][s], dict(f.attrs), path.name, s)
            ours = dataset[s]
            assert ours["image"].shape == ref.image.shape
            torch.testing.assert_close(ours["image"], ref.image, rtol=1e-4, atol=1e-4)
            torch.testing.assert_close(ours["target"], ref.target, rtol=1e-4, atol=1e-4)
            torch.testing.assert_close(ours["mean"], ref.mean, rtol=1e-5, atol=1e-7)
            torch.testing.assert_close(ours["std"], ref.std, rtol=1e-5, atol=1e-7)
            assert ours["image"].abs().max() <= 6.0


def test_validation_mask_is_fixed_per_volume_and_training_masks_are_fresh(tmp_path: Path) -> None:
    for name in ("a.h5", "b.h5"):
        write_test_volume(tmp_path / name, slices=2, coils=None, seed=3)
    spec = MaskSpec("random", 4, 0.08)
    val = SliceDataset([tmp_path / "a.h5", tmp_path / "b.h5"], spec, train=False)
    assert val.mask_seed(0, 0) == val.mask_seed(5, 1) == tuple(map(ord, "a.h5"))
    assert val.mask_seed(0, 2) != val.mask_seed(0, 0)
    torch.testing.assert_close(val[(0, 1)]["image"], val[(7, 1)]["image"])

    train = SliceDataset([tmp_path / "a.h5"], spec, train=True, seed=0)
    first = train[(0, 0)]["image"]
    torch.testing.assert_close(train[(0, 0)]["image"], first)  # reproducible
    assert not torch.allclose(train[(1, 0)]["image"], first)  # a new epoch, a new mask
    other_rank = SliceDataset([tmp_path / "a.h5"], spec, train=True, seed=0, rank=1)
    assert not torch.allclose(other_rank[(0, 0)]["image"], first)
    assert len({train.mask_seed(e, i) for e in range(3) for i in range(2)}) == 6


def test_dataset_pickles_without_open_handles(tmp_path: Path) -> None:
    import pickle

    write_test_volume(tmp_path / "a.h5", slices=2, coils=None)
    dataset = SliceDataset([tmp_path / "a.h5"], MaskSpec(), train=True)
    dataset[(0, 1)]
    assert dataset._volumes  # opened lazily on first read
    clone = pickle.loads(pickle.dumps(dataset))
    assert clone._volumes == {}
    torch.testing.assert_close(clone[(0, 1)]["image"], dataset[(0, 1)]["image"])


def test_dataset_refuses_undersampled_files(tmp_path: Path) -> None:
    from mrirecon.io import InputError

    path = tmp_path / "a.h5"
    write_test_volume(path, slices=2, coils=None)
    with h5py.File(path, "a") as f:
        f.create_dataset("mask", data=np.ones(f["kspace"].shape[-1], dtype=bool))
    with pytest.raises(InputError, match="already undersampled"):
        SliceDataset([path], MaskSpec(), train=True)


def test_epoch_sampler_orders_per_epoch_splits_ranks_and_skips() -> None:
    sampler = EpochSampler(10, seed=4)
    order0 = [i for _, i in sampler]
    assert sorted(order0) == list(range(10))
    sampler.set_epoch(1)
    order1 = [i for _, i in sampler]
    assert order1 != order0 and sorted(order1) == list(range(10))
    assert {e for e, _ in sampler} == {1}
    sampler.set_epoch(1, skip=4)
    assert [i for _, i in sampler] == order1[4:] and len(sampler) == 6
    ranks = [EpochSampler(10, seed=4, rank=r, world=3) for r in range(3)]
    shares = [[i for _, i in s] for s in ranks]
    assert all(len(s) == 4 for s in shares)
    assert set().union(*map(set, shares)) == set(range(10))
