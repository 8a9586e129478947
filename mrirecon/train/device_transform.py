"""The U-Net's input transform on the training device instead of in the DataLoader workers.

With ``device_transform`` the workers only read: each item is a slice's k-space, its drawn
mask and its stored target. After the upload (pinned, ``non_blocking``) the batch is masked,
inverse-FFTed, RSS-combined, cropped and normalised on the device, batched over slices:
the same arithmetic as ``transforms.unet_inputs`` per slice on the CPU, which on a GPU frees
the workers of the 15-coil inverse FFTs that bound the data rate.

A batch may hold slices of different k-space sizes (fastMRI's knee widths vary): the collate
function groups them by shape, and each group is transformed on its own. The targets must
share one size, as they must for the CPU transform's batches.
"""

from __future__ import annotations

from typing import Any, Sequence

import torch

from mrirecon.train.dataset import SliceDataset
from mrirecon.train.transforms import UnetInputs, unet_inputs


class KspaceSliceDataset(SliceDataset):
    """``SliceDataset`` for the U-Net that leaves the transform to ``device_batch``: an item is
    the slice's ``kspace`` ``([C,] H, W)`` complex (not yet masked), its ``mask`` (bool, ``(W,)``
    or ``(H, W)``, the same draw as ``SliceDataset``'s), the ``target`` ``(h, w)`` as stored
    (computed from the k-space here, on the CPU, when the file has none) and the ``crop``."""

    def __getitem__(self, key: int | tuple[int, int]) -> dict[str, torch.Tensor]:
        if self.kind != "unet":
            raise ValueError("the device transform is the U-Net's; the VarNet already takes k-space")
        kspace, mask, _, crop, target, _ = self.read_slice(key)
        return {"kspace": kspace[0], "mask": torch.from_numpy(mask), "target": target[0], "crop": torch.tensor(crop)}


def collate_kspace(items: Sequence[dict[str, torch.Tensor]]) -> dict[str, Any]:
    """Stack ``KspaceSliceDataset`` items into groups of equal k-space and mask shape:
    ``kspace`` and ``mask`` are lists (one stacked tensor per group), ``target`` is stacked in
    the groups' order (the order of first appearance; ``order`` lists the items' positions in
    it), ``crop`` is the batch's one crop."""
    groups: dict[tuple[tuple[int, ...], tuple[int, ...]], list[int]] = {}
    for i, item in enumerate(items):
        groups.setdefault((tuple(item["kspace"].shape), tuple(item["mask"].shape)), []).append(i)
    crops = {tuple(int(c) for c in item["crop"]) for item in items}
    targets = {tuple(item["target"].shape) for item in items}
    if len(crops) > 1 or len(targets) > 1:
        raise ValueError(f"a batch mixes target sizes {sorted(targets)}; use --batch-size 1 for this data")
    order = [i for members in groups.values() for i in members]
    return {
        "kspace": [torch.stack([items[i]["kspace"] for i in members]) for members in groups.values()],
        "mask": [torch.stack([items[i]["mask"] for i in members]) for members in groups.values()],
        "target": torch.stack([items[order_i]["target"] for order_i in order]),
        "crop": items[0]["crop"],
        "order": torch.tensor(order),
    }


def device_batch(batch: dict[str, Any], device: torch.device) -> dict[str, torch.Tensor]:
    """The U-Net batch (``image``, ``target`` ``(B, h, w)`` normalised, ``mean``, ``std``) of a
    ``collate_kspace`` batch, computed on ``device`` after a non-blocking upload."""
    crop = (int(batch["crop"][0]), int(batch["crop"][1]))
    parts: list[UnetInputs] = []
    for kspace, mask in zip(batch["kspace"], batch["mask"]):
        kspace = kspace.to(device, non_blocking=True)
        mask = mask.to(device, non_blocking=True)
        # (S, W) or (S, H, W) masks broadcast over the coil axis (and the rows for column masks)
        shape = (mask.shape[0],) + (1,) * (kspace.ndim - mask.ndim) + tuple(mask.shape[1:])
        parts.append(unet_inputs(kspace * mask.view(shape).to(torch.float32) + 0.0, crop))
    inputs = UnetInputs(torch.cat([p.image for p in parts]), torch.cat([p.mean for p in parts]),
                        torch.cat([p.std for p in parts]), parts[0].crop)
    target = inputs.normalise_target(batch["target"].to(device, non_blocking=True))
    return {"image": inputs.image, "target": target, "mean": inputs.mean, "std": inputs.std}
