"""Training: the CLI's files, checkpoints as plain data, resume equivalence, interruption."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest
import torch
import yaml

from cli_helpers import run_cli
from conftest import write_test_volume
from mrirecon.pipelines.train import run_training
from mrirecon.train.config import TrainConfig, resolve_config
from mrirecon.train.loop import train


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("unetdata")
    for i in range(2):
        write_test_volume(root / "train" / f"t{i}.h5", slices=3, coils=None, shape=(32, 24), recon=(16, 16), seed=i)
    write_test_volume(root / "val" / "v0.h5", slices=2, coils=None, shape=(32, 24), recon=(16, 16), seed=9)
    return root


def _config(data: Path, run_dir: Path, **kw) -> TrainConfig:
    values = dict(train_dir=str(data / "train"), val_dir=str(data / "val"), run_dir=str(run_dir), chans=4, pools=2,
                  groups=2, epochs=2, batch_size=2, lr=3e-3, schedule="cosine", norm="batch")
    values.update(kw)
    return resolve_config(None, values)


def _weights(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, weights_only=True)["model"]


def test_interrupted_and_resumed_run_ends_with_the_same_weights(data: Path, tmp_path: Path) -> None:
    # 6 training slices, batch 2: 3 steps per epoch, 6 in all; SIGTERM lands mid-epoch 2 (after step 4)
    full = train(_config(data, tmp_path / "full"), quiet=True)
    assert full.steps == 6 and not full.interrupted

    def terminate_after_4(step: int) -> None:
        if step == 4:
            os.kill(os.getpid(), signal.SIGTERM)

    part = train(_config(data, tmp_path / "part"), quiet=True, on_step=terminate_after_4)
    assert part.interrupted and part.steps == 4 and part.stop_signal == signal.SIGTERM  # the CLI exits 143
    stopped = torch.load(tmp_path / "part" / "last.pt", weights_only=True)
    assert (stopped["step"], stopped["epoch"], stopped["epoch_step"]) == (4, 1, 1)
    assert set(stopped["rng"]) >= {"python", "numpy", "torch"}

    resumed = run_training(None, {"run_dir": str(tmp_path / "part")}, resume=True, quiet=True)
    assert resumed.steps == 6
    ours, theirs = _weights(tmp_path / "part" / "last.pt"), _weights(tmp_path / "full" / "last.pt")
    assert ours.keys() == theirs.keys()
    for key in ours:
        assert torch.equal(ours[key], theirs[key]), key  # bitwise, batch-norm running statistics included
    assert [h["val_ssim"] for h in resumed.history] == [h["val_ssim"] for h in full.history]


def test_max_steps_stops_and_resume_continues_to_the_same_weights(data: Path, tmp_path: Path) -> None:
    full = train(_config(data, tmp_path / "full", norm="group", optimizer="sgd", schedule="step"), quiet=True)
    train(_config(data, tmp_path / "part", norm="group", optimizer="sgd", schedule="step", max_steps=2), quiet=True)
    assert torch.load(tmp_path / "part" / "last.pt", weights_only=True)["step"] == 2
    run_training(None, {"run_dir": str(tmp_path / "part"), "max_steps": 100}, resume=True, quiet=True)
    ours, theirs = _weights(tmp_path / "part" / "last.pt"), _weights(tmp_path / "full" / "last.pt")
    assert all(torch.equal(ours[k], theirs[k]) for k in ours)
    assert full.steps == 6


def test_cli_train_writes_config_metrics_curves_and_checkpoints(data: Path, tmp_path: Path) -> None:
    preset = tmp_path / "preset.yaml"
    preset.write_text(yaml.safe_dump({"chans": 8, "pools": 2, "epochs": 5, "optimizer": "rmsprop", "groups": 4}))
    run_dir = tmp_path / "run"
    result = run_cli("train", "--train", data / "train", "--val", data / "val", "-o", run_dir, "--config", preset,
                     "--epochs", 2, "--chans", 4, "--batch-size", 3, "--quiet", "--json", tmp_path / "s.json")
    assert result.exit_code == 0, result.stderr
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert (config["chans"], config["epochs"], config["pools"], config["optimizer"]) == (4, 2, 2, "rmsprop")
    lines = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [x["epoch"] for x in lines] == [1, 2]
    assert all(0 < x["val_ssim"] <= 1 and x["train_loss"] > 0 for x in lines)
    assert (run_dir / "curves.png").read_bytes()[:4] == b"\x89PNG"
    best = torch.load(run_dir / "best.pt", weights_only=True)
    assert best["config"]["chans"] == 4 and best["history"][-1]["val_ssim"] == max(x["val_ssim"] for x in lines)
    summary = json.loads((tmp_path / "s.json").read_text())
    assert summary["steps"] == 4 and summary["best_val_ssim"] == best["best_ssim"]

    again = run_cli("train", "--train", data / "train", "--val", data / "val", "-o", run_dir, "--quiet")
    assert again.exit_code == 2 and "--resume" in again.stderr


@pytest.mark.parametrize(
    "args, message",
    [
        (["--norm", "weight"], "norm must be one of"),
        (["--optimizer", "lbfgs"], "optimizer must be one of"),
        (["--epochs", "0"], "epochs must be at least 1"),
        (["--config", "missing.yaml"], "config file does not exist"),
    ],
)
def test_cli_train_bad_options_give_one_line(data: Path, tmp_path: Path, args, message) -> None:
    result = run_cli("train", "--train", data / "train", "--val", data / "val", "-o", tmp_path / "r", *args)
    assert result.exit_code == 2
    assert message in result.stderr and "Traceback" not in result.stderr


def test_unknown_config_keys_are_refused(tmp_path: Path) -> None:
    preset = tmp_path / "p.yaml"
    preset.write_text("chans: 8\nlearning_rate: 0.1\n")
    with pytest.raises(ValueError, match="unknown setting.*learning_rate"):
        resolve_config(preset, {})


def test_presets_load(tmp_path: Path) -> None:
    root = Path(__file__).resolve().parents[1] / "configs"
    for name in ("unet_singlecoil.yaml", "unet_multicoil.yaml"):
        config = resolve_config(root / name, {})
        assert config.norm == "group" and config.optimizer == "adam"
