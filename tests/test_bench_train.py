"""scripts/bench_train.py --model varnet at a tiny size on CPU: fastMRI's VarNet trains on our
batches, its trained weights are scored through ours, and the JSON that device_table.py reads
holds both models' slices/s."""

from __future__ import annotations

import json
import runpy
import sys
from pathlib import Path

import pytest

from mrirecon.pipelines.sample_data import SampleDataConfig, generate_sample_data

REPO = Path(__file__).resolve().parents[1]


def test_varnet_bench_times_ours_and_fastmris(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys,
                                              one_torch_thread) -> None:
    for name, seed in (("train", 5), ("val", 6)):
        generate_sample_data(tmp_path / "data" / name, SampleDataConfig(volumes=1, slices=2, coils=3, seed=seed),
                             quiet=True)
    out = tmp_path / "bench.json"
    monkeypatch.setattr(sys, "argv", [
        "bench_train.py", "--model", "varnet", "--device", "cpu", "--data", str(tmp_path / "data"), "--steps", "1",
        "--warmup", "1", "--batch-size", "2", "--cascades", "2", "--chans", "4", "--pools", "2", "--sens-chans", "2",
        "--sens-pools", "2", "--infer-batch", "2", "--infer-repeats", "1", "--json", str(out)])
    runpy.run_path(str(REPO / "scripts" / "bench_train.py"), run_name="__main__")
    printed = capsys.readouterr().out
    assert "ratio ours/fastmri: training" in printed and "fastmri.model" in printed
    result = json.loads(out.read_text())
    assert result["model"] == "varnet"
    for key in ("ours_train_slices_s", "fastmri_train_slices_s", "ours_infer_slices_s", "fastmri_infer_slices_s"):
        assert result[key] > 0
    assert result["train_ratio"] == pytest.approx(result["ours_train_slices_s"] / result["fastmri_train_slices_s"])
