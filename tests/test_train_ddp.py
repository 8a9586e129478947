"""Two gloo processes under torchrun train one model: both ranks end with identical weights.

Run by pytest, this file launches itself under ``torch.distributed.run``; as ``__main__`` it is
the per-rank worker: it trains through ``run_training`` (what ``mrirecon train`` calls) and
saves its own final weights so that the test can compare the ranks.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

HERE = Path(__file__).resolve()


VARNET = {"model": "varnet", "cascades": 2, "sens_chans": 2, "sens_pools": 2, "accel": 2, "center_fraction": 0.25}


@pytest.mark.parametrize("model", [{}, VARNET], ids=["unet", "varnet"])
def test_two_gloo_ranks_end_with_identical_weights(tmp_path: Path, model: dict) -> None:
    from conftest import write_test_volume

    for i in range(2):
        write_test_volume(tmp_path / "train" / f"t{i}.h5", slices=4, coils=2, shape=(32, 24), recon=(16, 16), seed=i)
    write_test_volume(tmp_path / "val" / "v0.h5", slices=2, coils=2, shape=(32, 24), recon=(16, 16), seed=7)
    write_test_volume(tmp_path / "val" / "v1.h5", slices=2, coils=2, shape=(32, 24), recon=(16, 16), seed=8)
    overrides = {"train_dir": str(tmp_path / "train"), "val_dir": str(tmp_path / "val"), "run_dir": str(tmp_path / "run"),
                 "chans": 4, "pools": 2, "groups": 2, "epochs": 2, "batch_size": 2, "device": "cpu", **model}
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(HERE.parents[1])}
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", str(HERE),
         json.dumps(overrides), str(tmp_path)],
        env=env, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    rank0 = torch.load(tmp_path / "rank0.pt", weights_only=True)
    rank1 = torch.load(tmp_path / "rank1.pt", weights_only=True)
    assert rank0.keys() == rank1.keys()
    for key in rank0:
        assert torch.equal(rank0[key], rank1[key]), key
    saved = torch.load(tmp_path / "run" / "last.pt", weights_only=True)
    assert all(torch.equal(saved["model"][k], rank0[k]) for k in rank0)
    # 8 slices over 2 ranks, batch 2: 2 steps per epoch and rank
    assert saved["step"] == 4
    lines = (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 2  # written once per epoch, by rank 0 only
    record = json.loads(lines[-1])
    assert 0 < record["val_ssim"] <= 1
    info = json.loads((tmp_path / "rank1.json").read_text())
    assert info["world"] == 2 and info["val_ssim"] == record["val_ssim"]  # metrics reduced across ranks


def _worker(overrides: str, out_dir: str) -> None:
    from mrirecon.pipelines.train import run_training

    rank = int(os.environ["RANK"])
    result = run_training(None, json.loads(overrides), quiet=True)
    torch.save(result.model.state_dict(), Path(out_dir) / f"rank{rank}.pt")
    info = {"world": int(os.environ["WORLD_SIZE"]), "val_ssim": result.history[-1]["val_ssim"]}
    (Path(out_dir) / f"rank{rank}.json").write_text(json.dumps(info))


if __name__ == "__main__":
    _worker(sys.argv[1], sys.argv[2])
