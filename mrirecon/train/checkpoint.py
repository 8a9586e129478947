"""Checkpoints as plain data (tensors, numbers, strings, lists, dicts), so that
``torch.load(..., weights_only=True)`` reads them and nothing in them can run code."""

from __future__ import annotations

import pickle
import random
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mrirecon.io import InputError
from mrirecon.io.atomic import torch_save_atomic
from mrirecon.models import Unet, VarNet
from mrirecon.train.config import TrainConfig, config_from_mapping

FORMAT = "mrirecon.unet-checkpoint"
VERSION = 1


class CheckpointError(InputError):
    """A checkpoint that cannot be used (missing, truncated, foreign, unsafe, mismatched)."""


def rng_state() -> dict[str, Any]:
    """The Python, NumPy, torch (and CUDA, if any) random states as tensors and numbers."""
    py_version, py_state, py_gauss = random.getstate()
    np_name, np_keys, np_pos, np_has_gauss, np_gauss = np.random.get_state()
    state: dict[str, Any] = {
        "python": {"version": py_version, "state": torch.tensor(py_state, dtype=torch.int64), "gauss": py_gauss},
        "numpy": {
            "name": np_name,
            "keys": torch.from_numpy(np_keys.astype(np.int64)),
            "pos": int(np_pos),
            "has_gauss": int(np_has_gauss),
            "gauss": float(np_gauss),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what ``rng_state`` captured."""
    py = state["python"]
    random.setstate((py["version"], tuple(int(v) for v in py["state"].tolist()), py["gauss"]))
    npy = state["numpy"]
    np.random.set_state(
        (npy["name"], npy["keys"].numpy().astype(np.uint32), npy["pos"], npy["has_gauss"], npy["gauss"])
    )
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(path: str | Path, payload: dict[str, Any]) -> Path:
    """Write ``payload`` (plus the format tag) through the atomic writer (replacing ``path``);
    a full disk is ``OutputError``, one sentence naming the file."""
    return torch_save_atomic({"format": FORMAT, "version": VERSION, **payload}, path, overwrite=True)


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a checkpoint safely; raises ``CheckpointError`` (one sentence naming the file)."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(path, "checkpoint does not exist")
    if path.is_dir():
        raise CheckpointError(path, "is a directory, not a checkpoint file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. "pickle protocol 4" notes from the safe unpickler
            data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch.load fails in many ways on foreign bytes; all mean "unusable"
        text = str(exc).lower()
        if isinstance(exc, pickle.UnpicklingError) and any(
            word in text for word in ("unsupported global", "unsupported operand", "unsupported class", "is blocked")
        ):
            raise CheckpointError(
                path, "refused: it holds Python objects that could run code, and only weights-only checkpoints are loaded"
            ) from exc
        if _starts_like_zip(path):
            raise CheckpointError(path, "is truncated or corrupt") from exc
        raise CheckpointError(path, "is not a torch checkpoint") from exc
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise CheckpointError(path, "is not an mrirecon U-Net checkpoint (written by 'mrirecon train')")
    for key in ("model", "config"):
        if not isinstance(data.get(key), dict):
            raise CheckpointError(path, f"is an mrirecon checkpoint without its '{key}' entry")
    return data


def _starts_like_zip(path: Path) -> bool:
    with open(path, "rb") as handle:
        return handle.read(4) == b"PK\x03\x04"


def checkpoint_config(data: dict[str, Any], path: str | Path) -> TrainConfig:
    """The training configuration stored in a checkpoint: known keys, right types, ranges, and a
    model small enough to build (checked before it is built)."""
    try:
        config = config_from_mapping(data["config"], "config")
        config.validate()
    except (TypeError, ValueError) as exc:
        raise CheckpointError(path, f"has an unusable config ({str(exc).removeprefix('config: ')})") from exc
    return config


def build_model(config: TrainConfig) -> Unet | VarNet:
    """The model that ``config`` describes (``config.model``: ``unet`` or ``varnet``)."""
    if config.model == "varnet":
        return VarNet(cascades=config.cascades, chans=config.chans, pools=config.pools, sens_chans=config.sens_chans,
                      sens_pools=config.sens_pools, norm=config.norm, groups=config.groups,
                      readout_crop=config.readout_crop, virtual_coils=config.virtual_coils,
                      warm_start=config.warm_start, hard_dc=config.hard_dc)
    return Unet(1, 1, chans=config.chans, num_pool_layers=config.pools, norm=config.norm, groups=config.groups,
                drop_prob=config.drop_prob, residual=config.residual)


def load_model_weights(model: torch.nn.Module, state: dict[str, Any], path: str | Path, config: TrainConfig) -> None:
    """Load ``state`` into ``model`` strictly; a mismatch becomes one sentence."""
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        detail = next((ln.strip() for ln in str(exc).splitlines()[1:] if ln.strip()), str(exc))
        raise CheckpointError(
            path,
            f"its weights do not fit a {_describe(config)} ({detail.rstrip('.')})",
        ) from exc


def _describe(config: TrainConfig) -> str:
    text = f"chans={config.chans}, pools={config.pools}, norm={config.norm}"
    if config.model == "varnet":
        return f"VarNet with cascades={config.cascades}, sens_chans={config.sens_chans}, {text}"
    return f"U-Net with {text}"


def model_from_checkpoint(path: str | Path) -> tuple[Unet | VarNet, TrainConfig]:
    """Rebuild the trained model (U-Net or VarNet, as the checkpoint records) on the CPU, in eval mode."""
    data = load_checkpoint(path)
    config = checkpoint_config(data, path)
    try:
        model = build_model(config)
    except ValueError as exc:
        raise CheckpointError(path, f"describes an impossible model ({exc})") from exc
    load_model_weights(model, data["model"], path, config)
    return model.eval(), config
