"""The training configuration: one dataclass, read from YAML presets and overridden by the CLI."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import yaml

from mrirecon.io import InputError
from mrirecon.models import NORM_TYPES
from mrirecon.mri.masks import MASK_TYPES, MaskSpec

MODEL_KINDS = ("unet", "varnet")
OPTIMIZERS = ("adam", "rmsprop", "sgd")
SCHEDULES = ("step", "cosine", "none")
LOSSES = ("l1", "ssim")
#: Options that may change when a run is resumed; the rest come from the checkpoint.
RESUMABLE_OVERRIDES = ("epochs", "max_steps", "device", "amp", "compile", "workers", "val_batch_size")


@dataclass
class TrainConfig:
    """Everything a training run depends on (paths, model, masks, optimisation, runtime)."""

    train_dir: str = ""
    val_dir: str = ""
    run_dir: str = ""
    # model: "unet" or "varnet" (E2E-VarNet: cascades, sensitivity U-Net; chans/pools/norm are its cascades' U-Nets)
    model: str = "unet"
    cascades: int = 12
    sens_chans: int = 8
    sens_pools: int = 4
    chans: int = 32
    pools: int = 4
    norm: str = "group"
    groups: int = 32
    drop_prob: float = 0.0
    residual: bool = False
    # undersampling
    mask: str = "random"
    accel: int = 4
    center_fraction: float | None = None
    mask_seed: int | None = None
    # optimisation
    epochs: int = 10
    max_steps: int | None = None
    batch_size: int = 1
    loss: str = "l1"
    optimizer: str = "adam"
    lr: float = 1e-3
    weight_decay: float = 0.0
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    momentum: float = 0.9
    schedule: str = "step"
    lr_step_epochs: int = 40
    lr_gamma: float = 0.1
    # runtime
    device: str = "auto"
    amp: bool = False
    compile: bool = False
    channels_last: bool | None = None
    workers: int = 0
    seed: int = 0
    val_batch_size: int = 8

    @property
    def mask_spec(self) -> MaskSpec:
        return MaskSpec(self.mask, int(self.accel), self.center_fraction, self.mask_seed)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def validate(self) -> None:
        """Raise ``ValueError`` (one sentence) for an unusable value."""
        checks = [
            (self.model in MODEL_KINDS, f"model must be one of {', '.join(MODEL_KINDS)}, got {self.model!r}"),
            (self.cascades >= 1 and self.sens_chans >= 1 and self.sens_pools >= 1,
             "cascades, sens_chans and sens_pools must be positive"),
            (self.model != "varnet" or (self.pools <= 4 and self.sens_pools <= 4),
             "the VarNet's U-Nets take at most 4 pools (inputs are padded to a multiple of 16)"),
            (self.model != "varnet" or not self.residual, "residual applies to the U-Net only"),
            (self.norm in NORM_TYPES, f"norm must be one of {', '.join(NORM_TYPES)}, got {self.norm!r}"),
            (self.optimizer in OPTIMIZERS, f"optimizer must be one of {', '.join(OPTIMIZERS)}, got {self.optimizer!r}"),
            (self.schedule in SCHEDULES, f"schedule must be one of {', '.join(SCHEDULES)}, got {self.schedule!r}"),
            (self.loss in LOSSES, f"loss must be one of {', '.join(LOSSES)}, got {self.loss!r}"),
            (self.mask in MASK_TYPES, f"mask must be one of {', '.join(MASK_TYPES)}, got {self.mask!r}"),
            (self.chans >= 1 and self.pools >= 1 and self.groups >= 1, "chans, pools and groups must be positive"),
            (self.epochs >= 1, f"epochs must be at least 1, got {self.epochs}"),
            (self.max_steps is None or self.max_steps >= 0, "max_steps must not be negative"),
            (self.batch_size >= 1 and self.val_batch_size >= 1, "batch sizes must be at least 1"),
            (self.lr > 0, f"lr must be positive, got {self.lr}"),
            (len(self.betas) == 2, f"betas must be two numbers, got {self.betas}"),
            (self.workers >= 0, "workers must not be negative"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(message)
        self.mask_spec.validate()


def config_from_mapping(values: Mapping[str, Any], source: str = "config") -> TrainConfig:
    """A ``TrainConfig`` from a plain mapping; unknown keys are an error (typos must not pass)."""
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f"{source}: unknown setting(s) {', '.join(unknown)}")
    config = TrainConfig(**{k: v for k, v in values.items()})
    config.betas = [float(b) for b in config.betas]
    return config


def load_config_file(path: str | Path) -> dict[str, Any]:
    """Read a YAML preset with ``yaml.safe_load``; it must hold a mapping."""
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "config file does not exist")
    try:
        values = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise InputError(path, f"is not valid YAML ({str(exc).splitlines()[0]})") from exc
    if values is None:
        return {}
    if not isinstance(values, dict):
        raise InputError(path, "must hold a mapping of settings")
    return values


def resolve_config(config_file: str | Path | None, overrides: Mapping[str, Any]) -> TrainConfig:
    """Defaults, then the YAML preset, then every override that is not ``None``."""
    values: dict[str, Any] = {}
    if config_file is not None:
        values.update(load_config_file(config_file))
    values.update({k: v for k, v in overrides.items() if v is not None})
    config = config_from_mapping(values, str(config_file or "options"))
    config.validate()
    return config
