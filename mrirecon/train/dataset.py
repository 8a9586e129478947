"""Slices of fastMRI files as U-Net training samples, with fastMRI's masking semantics.

Training draws a fresh random mask for every slice, seeded by ``(seed, epoch, index, rank)``
so that runs are reproducible and a resumed run sees exactly the masks it would have seen.
Validation uses one fixed mask per volume, seeded by the file name (fastMRI's
``tuple(map(ord, fname))``, prefixed by the mask seed if one is given).
HDF5 handles are opened lazily in whichever process reads (DataLoader workers included)
and are never pickled.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from mrirecon.io import InputError, Volume, open_volume
from mrirecon.mri.masks import MaskSpec, make_mask, volume_seed
from mrirecon.mri.zero_filled import zero_filled
from mrirecon.train.config import MODEL_KINDS
from mrirecon.train.transforms import apply_mask, unet_inputs, varnet_inputs


def volume_crop(volume: Volume) -> tuple[int, int]:
    """fastMRI's crop for a volume: the target's size if it has one, else the header's recon size."""
    key = volume.target_key
    if key is not None and volume.handle[key].ndim == 3:
        return tuple(volume.handle[key].shape[-2:])  # type: ignore[return-value]
    return volume.recon_crop


def list_volumes(folder: str | Path) -> list[Path]:
    """The ``*.h5`` files of ``folder`` (sorted); raises ``InputError`` if there are none."""
    folder = Path(folder)
    if not folder.exists():
        raise InputError(folder, "folder does not exist")
    if not folder.is_dir():
        raise InputError(folder, "is not a folder of fastMRI files")
    files = sorted(p for p in folder.glob("*.h5") if p.is_file() and not p.name.startswith("."))
    if not files:
        raise InputError(folder, "holds no .h5 files")
    return files


class SliceDataset(Dataset):
    """Every slice of ``files``; a U-Net item is a dict with the normalised ``image`` and
    ``target`` ``(h, w)``, and the ``mean``/``std`` used to normalise them; a VarNet item
    (``kind='varnet'``) holds the masked ``kspace`` ``(C, H, W)`` complex, its ``mask``
    ``(1, 1, W)`` (or ``(1, H, W)``), ``num_low`` (centre width), the ``target`` ``(h, w)`` as
    stored and the volume's ``max`` (fastMRI's ``VarNetDataTransform``).

    Items are addressed by ``index`` or by ``(epoch, index)`` (what ``EpochSampler`` yields);
    the epoch only enters the training mask seed.
    """

    def __init__(self, files: Sequence[str | Path], mask_spec: MaskSpec, *, train: bool, seed: int = 0, rank: int = 0,
                 kind: str = "unet"):
        mask_spec.validate()
        if kind not in MODEL_KINDS:
            raise ValueError(f"model must be one of {', '.join(MODEL_KINDS)}, got {kind!r}")
        self.kind = kind
        self.files = [Path(f) for f in files]
        self.mask_spec = mask_spec
        self.train = train
        self.seed = int(seed)
        self.rank = int(rank)
        self.slices: list[tuple[int, int]] = []
        self.crops: list[tuple[int, int]] = []
        self.paddings: list[tuple[int, int]] = []
        self.challenges: set[str] = set()
        self.maxima: list[float] = []
        for i, path in enumerate(self.files):
            with open_volume(path) as volume:
                if volume.is_undersampled:
                    raise InputError(path, "is already undersampled (has a 'mask'); training needs fully sampled k-space")
                if kind == "varnet" and not volume.multicoil:
                    raise InputError(path, "is single-coil; the VarNet needs multi-coil data, so use --model unet")
                self.maxima.append(_volume_max(volume) if kind == "varnet" else 0.0)
                self.slices.extend((i, s) for s in range(volume.num_slices))
                self.crops.append(volume_crop(volume))
                self.paddings.append(volume.padding)
                self.challenges.add(volume.challenge)
        self._volumes: dict[int, Volume] = {}

    def __len__(self) -> int:
        return len(self.slices)

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_volumes"] = {}
        return state

    def _volume(self, file_index: int) -> Volume:
        volume = self._volumes.get(file_index)
        if volume is None:
            volume = self._volumes[file_index] = open_volume(self.files[file_index])
        return volume

    def mask_seed(self, epoch: int, index: int) -> tuple[int, ...]:
        """The seed of the mask for item ``index`` in ``epoch``."""
        file_index, _ = self.slices[index]
        if self.train:
            return (self.seed, int(epoch), int(index), self.rank)
        return volume_seed(self.files[file_index].name, self.mask_spec.seed)

    def read_slice(self, key: int | tuple[int, int]) -> tuple[torch.Tensor, np.ndarray, int, tuple[int, int], torch.Tensor, int]:
        """``(kspace (1, [C,] H, W), mask, num_low, crop, target (1, h, w), file_index)`` of an
        item, before any transform; the target is computed from the k-space if the file has none."""
        epoch, index = key if isinstance(key, tuple) else (0, key)
        file_index, slice_index = self.slices[index]
        volume = self._volume(file_index)
        kspace = torch.from_numpy(volume.read_kspace(slice_index, slice_index + 1))
        mask, num_low = make_mask(self.mask_spec, kspace.shape, self.mask_seed(epoch, index), self.paddings[file_index])
        crop = self.crops[file_index]
        target = volume.read_target(slice_index, slice_index + 1)
        target_t = zero_filled(kspace, crop) if target is None else torch.from_numpy(target)
        return kspace, mask, num_low, crop, target_t, file_index

    def __getitem__(self, key: int | tuple[int, int]) -> dict[str, torch.Tensor]:
        kspace, mask, num_low, crop, target_t, file_index = self.read_slice(key)
        if self.kind == "varnet":
            sample = varnet_inputs(kspace, torch.from_numpy(mask), crop, self.paddings[file_index], num_low)
            return {
                "kspace": sample.kspace[0],
                "mask": sample.mask[0],
                "num_low": torch.tensor(sample.num_low_frequencies),
                "target": target_t[0],
                "max": torch.tensor(self.maxima[file_index], dtype=torch.float32),
            }
        inputs = unet_inputs(apply_mask(kspace, torch.from_numpy(mask)), crop)
        return {
            "image": inputs.image[0],
            "target": inputs.normalise_target(target_t)[0],
            "mean": inputs.mean[0],
            "std": inputs.std[0],
        }

    def close(self) -> None:
        for volume in self._volumes.values():
            volume.close()
        self._volumes.clear()


def _volume_max(volume: Volume) -> float:
    """The volume's ``max`` attribute (fastMRI's data range), else its target's maximum."""
    value = volume.attrs.get("max")
    if value is not None:
        return float(value)
    target = volume.read_target()
    if target is None:
        target = zero_filled(torch.from_numpy(volume.read_kspace()), volume_crop(volume)).numpy()
    return float(target.max())


class EpochSampler(Sampler):
    """Yields ``(epoch, index)``: a permutation of the dataset seeded by ``seed + epoch``
    (as ``DistributedSampler``), padded to a multiple of ``world`` and split by ``rank``.

    ``set_epoch(epoch, skip)`` starts the epoch after its first ``skip`` items, which is how a
    resumed run continues mid-epoch with the same order.
    """

    def __init__(self, size: int, *, shuffle: bool = True, seed: int = 0, rank: int = 0, world: int = 1):
        self.size, self.shuffle, self.seed, self.rank, self.world = size, shuffle, seed, rank, world
        self.epoch, self.skip = 0, 0

    @property
    def per_rank(self) -> int:
        return math.ceil(self.size / self.world)

    def set_epoch(self, epoch: int, skip: int = 0) -> None:
        self.epoch, self.skip = epoch, skip

    def indices(self, epoch: int) -> list[int]:
        if self.shuffle:
            g = torch.Generator().manual_seed(self.seed + epoch)
            order = torch.randperm(self.size, generator=g).tolist()
        else:
            order = list(range(self.size))
        total = self.per_rank * self.world
        order = (order * math.ceil(total / max(len(order), 1)))[:total]
        return order[self.rank : total : self.world]

    def __iter__(self) -> Iterator[tuple[int, int]]:
        for index in self.indices(self.epoch)[self.skip :]:
            yield self.epoch, index

    def __len__(self) -> int:
        return self.per_rank - self.skip
