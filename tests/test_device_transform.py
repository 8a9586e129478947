"""The U-Net transform on the training device equals the CPU transform; DDP steps do not sync."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist

from conftest import write_test_volume
from mrirecon.mri.masks import MaskSpec
from mrirecon.train import loop
from mrirecon.train.config import resolve_config
from mrirecon.train.dataset import SliceDataset
from mrirecon.train.device_transform import KspaceSliceDataset, collate_kspace, device_batch
from mrirecon.train.distributed import DistInfo


def _volumes(root: Path, coils: int | None) -> list[Path]:
    """Two volumes of different k-space widths (as fastMRI's knees) with one target size."""
    paths = [root / "a.h5", root / "b.h5"]
    write_test_volume(paths[0], slices=3, coils=coils, shape=(32, 24), recon=(16, 16), seed=1)
    write_test_volume(paths[1], slices=2, coils=coils, shape=(32, 26), recon=(16, 16), seed=2)
    return paths


@pytest.mark.parametrize("coils,mask", [(3, "random"), (None, "equispaced"), (3, "poisson")])
def test_device_batch_equals_the_cpu_transform(tmp_path, coils, mask):
    files = _volumes(tmp_path, coils)
    spec = MaskSpec(mask, 4, None, None)
    cpu = SliceDataset(files, spec, train=True, seed=3)
    raw = KspaceSliceDataset(files, spec, train=True, seed=3)
    keys = [(1, i) for i in (4, 0, 3, 1, 2)]  # shapes interleaved: the batch is regrouped
    batch = collate_kspace([raw[k] for k in keys])
    assert len(batch["kspace"]) == 2
    ours = device_batch(batch, torch.device("cpu"))
    order = batch["order"].tolist()
    ref = [cpu[keys[i]] for i in order]
    for name in ("image", "target", "mean", "std"):
        expected = torch.stack([item[name] for item in ref])
        assert ours[name].shape == expected.shape
        torch.testing.assert_close(ours[name], expected, rtol=1e-5, atol=1e-5)


def test_mixed_target_sizes_are_refused(tmp_path):
    write_test_volume(tmp_path / "a.h5", slices=1, coils=None, shape=(32, 24), recon=(16, 16), seed=1)
    write_test_volume(tmp_path / "b.h5", slices=1, coils=None, shape=(32, 24), recon=(12, 12), seed=2)
    raw = KspaceSliceDataset([tmp_path / "a.h5", tmp_path / "b.h5"], MaskSpec("random", 4, None, None), train=True)
    with pytest.raises(ValueError, match="target sizes"):
        collate_kspace([raw[0], raw[1]])


def test_ddp_steps_do_not_sync_with_the_host(tmp_path, monkeypatch):
    """Under DDP (a one-process gloo group standing in for two ranks) the step loop reads
    nothing back per step: one stop check and one loss read per ``STOP_CHECK_STEPS``.

    Counted: every ``all_reduce``, and host reads of tensors (``item``, ``tolist``, ``bool``,
    ``float``) made by the loop and the transforms. Reads elsewhere are of CPU tensors even on
    CUDA (the optimiser's step counters, the DataLoader workers' masks), so not syncs."""
    for i in range(2):
        write_test_volume(tmp_path / "train" / f"t{i}.h5", slices=8, coils=2, shape=(32, 24), recon=(16, 16), seed=i)
    write_test_volume(tmp_path / "val" / "v.h5", slices=1, coils=2, shape=(32, 24), recon=(16, 16), seed=5)
    config = resolve_config(None, dict(train_dir=str(tmp_path / "train"), val_dir=str(tmp_path / "val"),
                                       run_dir=str(tmp_path / "run"), chans=2, pools=1, groups=1, epochs=1,
                                       batch_size=1, device="cpu", device_transform=True))
    monkeypatch.setattr(loop, "STOP_CHECK_STEPS", 4)
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    monkeypatch.setattr(loop, "init_distributed", lambda name: (DistInfo(rank=0, world=2), torch.device("cpu")))
    monkeypatch.setattr(loop, "shutdown", lambda info: None)
    syncs = {"n": 0}

    step_code = {Path(loop.__file__).name, "device_transform.py", "transforms.py"}

    def counting(method, everywhere=False):
        def wrapped(*args, **kwargs):
            caller = sys._getframe(1).f_code.co_filename
            if everywhere or (Path(caller).name in step_code and "mrirecon" in caller):
                syncs["n"] += 1
            return method(*args, **kwargs)
        return wrapped

    for name in ("item", "tolist", "__bool__", "__float__"):
        monkeypatch.setattr(torch.Tensor, name, counting(getattr(torch.Tensor, name)))
    monkeypatch.setattr(dist, "all_reduce", counting(dist.all_reduce, everywhere=True))
    per_step: list[int] = []
    try:
        loop.train(config, quiet=False, on_step=lambda step: per_step.append(syncs["n"]))
    finally:
        dist.destroy_process_group()
    steps = len(per_step)
    assert steps == 8  # 16 slices over "2 ranks"
    between = per_step[-1] - per_step[0]  # steps 1..7's ends and steps 2..8's bodies
    # the stop check of step 4 (an all_reduce and its read); step 8's comes after the last
    # on_step, and the progress bar reads the loss every 20 steps: nothing else
    assert between == 2, f"{between} host syncs in {steps - 1} steps"


def test_training_with_the_device_transform_takes_the_same_steps(tmp_path):
    for i in range(2):
        write_test_volume(tmp_path / "train" / f"t{i}.h5", slices=2, coils=2, shape=(32, 24), recon=(16, 16), seed=i)
    write_test_volume(tmp_path / "val" / "v.h5", slices=1, coils=2, shape=(32, 24), recon=(16, 16), seed=5)
    weights = []
    for on_device in (False, True):
        config = resolve_config(None, dict(train_dir=str(tmp_path / "train"), val_dir=str(tmp_path / "val"),
                                           run_dir=str(tmp_path / f"run{on_device}"), chans=2, pools=1, groups=1,
                                           batch_size=2, max_steps=2, device="cpu", device_transform=on_device))
        result = loop.train(config, quiet=True)
        assert result.steps == 2
        weights.append({k: v.detach().clone() for k, v in result.model.state_dict().items()})
    for key in weights[0]:
        torch.testing.assert_close(weights[1][key], weights[0][key], rtol=1e-5, atol=1e-6)
