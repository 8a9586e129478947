"""Configs and checkpoints are data: numbers as users write them, wrong keys/types/ranges one
sentence, and a model too large to build refused before anything is allocated."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from cli_helpers import run_cli
from faults.fault_helpers import write_small_volume
from mrirecon.train.checkpoint import FORMAT, VERSION, CheckpointError, model_from_checkpoint
from mrirecon.train.config import TrainConfig, config_from_mapping, resolve_config


def _yaml(tmp: Path, text: str) -> Path:
    path = tmp / "c.yaml"
    path.write_text(text)
    return path


@pytest.mark.parametrize("text, key, value", [("lr: 1e-3\n", "lr", 1e-3), ("weight_decay: 5E-5\n", "weight_decay", 5e-5),
                                              ("lr: 2.5e-4\n", "lr", 2.5e-4), ("epochs: 3\n", "epochs", 3)])
def test_yaml_numbers_as_users_write_them(tmp_path: Path, text: str, key: str, value) -> None:
    config = resolve_config(_yaml(tmp_path, text), {})
    assert getattr(config, key) == value and type(getattr(config, key)) is type(value)


@pytest.mark.parametrize(
    "text, message",
    [
        ("chans: many\n", "chans must be a whole number, got 'many'"),
        ("lr: fast\n", "lr must be a number, got 'fast'"),
        ("lr: .nan\n", "lr must be a finite number"),
        ("lr: -1e-3\n", "lr must be above 0"),
        ("epochs: 2.5\n", "epochs must be a whole number"),
        ("betas: [0.9, x]\n", "betas[1] must be a number"),
        ("betas: 0.9\n", "betas must be a list"),
        ("chanz: 8\n", "unknown setting(s) chanz"),
        ("chans: 200000\n", "chans must be at most 4096"),
        ("chans: 2048\npools: 6\n", "parameters"),
        ("accel: 1\n", "accel must be above 1"),
        ("seed: -1\n", "seed must be at least 0"),
        ("center_fraction: 1.5\n", "center_fraction must be below 1"),
        ("residual: maybe\n", "residual must be true or false"),
        ("- 1\n- 2\n", "must hold a mapping"),
        ("lr: !!python/object/apply:os.system ['true']\n", "not valid YAML"),
        ("a: [unclosed\n", "not valid YAML"),
    ],
)
def test_bad_yaml_config_is_one_sentence(tmp_path: Path, text: str, message: str) -> None:
    config = _yaml(tmp_path, text)
    result = run_cli("train", "--train", tmp_path, "--val", tmp_path, "-o", tmp_path / "run", "--config", config)
    assert result.exit_code == 2, result.stderr
    assert message in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert not (tmp_path / "run").exists()


def test_train_out_that_is_a_file_is_one_sentence(tmp_path: Path) -> None:
    target = tmp_path / "run.txt"
    target.write_text("keep")
    result = run_cli("train", "--train", tmp_path, "--val", tmp_path, "-o", target)
    assert result.exit_code == 2 and "is a file, not a folder" in result.stderr and "Traceback" not in result.stderr
    assert target.read_text() == "keep"


def _checkpoint(tmp: Path, config: dict, model: dict | None = None) -> Path:
    path = tmp / "ckpt.pt"
    torch.save({"format": FORMAT, "version": VERSION, "config": config, "model": model or {}}, path)
    return path


@pytest.mark.parametrize(
    "config, message",
    [
        ({"chans": 200000}, "chans must be at most 4096"),
        ({"chans": 4096, "pools": 4}, "parameters"),
        ({"chans": "32"}, "chans must be a whole number"),
        ({"norm": 3}, "norm must be a string"),
        ({"pools": None}, "pools must be a whole number"),
        ({"chans": 8, "extra_layer": True}, "unknown setting(s) extra_layer"),
        ({"groups": 0}, "groups must be at least 1"),
        ({"drop_prob": 1.5}, "drop_prob must be below 1"),
    ],
)
def test_bad_checkpoint_config_is_refused_before_building(tmp_path: Path, config: dict, message: str) -> None:
    ckpt = _checkpoint(tmp_path, config)
    with pytest.raises(CheckpointError, match=message.replace("(", r"\(").replace(")", r"\)")) as info:
        model_from_checkpoint(ckpt)
    assert str(ckpt) in str(info.value)
    src = write_small_volume(tmp_path / "in" / "vol.h5", mask=True)
    result = run_cli("unet-recon", src, "--checkpoint", ckpt, "-o", tmp_path / "out", "--device", "cpu")
    assert result.exit_code == 2 and message in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "out").exists()


def test_config_keys_and_types_follow_the_dataclass() -> None:
    """Every field of TrainConfig is type-checked: a wrong type for each is refused."""
    import dataclasses

    wrong = {bool: "yes", int: "many", float: "fast", str: 3}
    for field in dataclasses.fields(TrainConfig):
        for kind, value in wrong.items():
            if field.type in (kind.__name__, f"{kind.__name__} | None"):
                with pytest.raises(ValueError, match=field.name):
                    config_from_mapping({field.name: value})
