"""The training configuration: one dataclass, read from YAML presets and overridden by the CLI."""

from __future__ import annotations

import dataclasses
import math
import re
import types
import typing
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
RESUMABLE_OVERRIDES = ("epochs", "max_steps", "max_minutes", "max_cpu_minutes", "device", "amp", "compile", "workers", "val_batch_size",
                       "device_transform")


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
    readout_crop: bool = False  # VarNet: run on the target's rows of the readout (exact; see models.varnet)
    virtual_coils: int = 0  # VarNet: compress the coils to this many virtual coils (0: keep all)
    warm_start: bool = False  # VarNet: start from RSS-normalised low-resolution maps and near-zero cascades
    hard_dc: bool = False  # VarNet: the output keeps the measured k-space samples exactly (see models.varnet)
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
    max_minutes: float | None = None
    max_cpu_minutes: float | None = None  # CPU time of the training process (benchmarks: independent of load)
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
    workers: int | None = None  # None: from the machine on CUDA (``workers.default_workers``), 0 on CPU
    device_transform: bool = False  # U-Net: inverse FFT, RSS, crop, normalisation on the device
    seed: int = 0
    val_batch_size: int = 8

    @property
    def mask_spec(self) -> MaskSpec:
        return MaskSpec(self.mask, int(self.accel), self.center_fraction, self.mask_seed)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def validate(self) -> None:
        """Raise ``ValueError`` (one sentence) for an unusable value: the choices, the ranges of
        ``RANGES``, the mask, and a model too large to build (see ``check_model_size``)."""
        checks = [
            (self.model in MODEL_KINDS, f"model must be one of {', '.join(MODEL_KINDS)}, got {self.model!r}"),
            (self.model != "varnet" or (self.pools <= 4 and self.sens_pools <= 4),
             "the VarNet's U-Nets take at most 4 pools (inputs are padded to a multiple of 16)"),
            (self.model != "varnet" or not self.residual, "residual applies to the U-Net only"),
            (self.model == "varnet" or not (self.readout_crop or self.virtual_coils or self.warm_start or self.hard_dc),
             "readout_crop, virtual_coils, warm_start and hard_dc apply to the VarNet only"),
            (self.norm in NORM_TYPES, f"norm must be one of {', '.join(NORM_TYPES)}, got {self.norm!r}"),
            (self.optimizer in OPTIMIZERS, f"optimizer must be one of {', '.join(OPTIMIZERS)}, got {self.optimizer!r}"),
            (self.schedule in SCHEDULES, f"schedule must be one of {', '.join(SCHEDULES)}, got {self.schedule!r}"),
            (self.loss in LOSSES, f"loss must be one of {', '.join(LOSSES)}, got {self.loss!r}"),
            (self.mask in MASK_TYPES, f"mask must be one of {', '.join(MASK_TYPES)}, got {self.mask!r}"),
            (len(self.betas) == 2, f"betas must be two numbers, got {self.betas}"),
            (all(0 <= b < 1 for b in self.betas), f"betas must be in [0, 1), got {self.betas}"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(message)
        for name, value in self.to_dict().items():
            check_range(name, value)
        self.mask_spec.validate()
        check_model_size(self)


#: Allowed ranges: name -> (low, high, low_open, high_open). Names a config does not have are
#: ignored, so model kinds that add settings (cascades, sens_chans) can list theirs here.
RANGES: dict[str, tuple[float, float, bool, bool]] = {
    "chans": (1, 4096, False, False),
    "pools": (1, 10, False, False),
    "groups": (1, 4096, False, False),
    "drop_prob": (0, 1, False, True),
    "accel": (1, 64, True, False),
    "center_fraction": (0, 1, True, True),
    "mask_seed": (0, 2**32 - 1, False, False),
    "epochs": (1, 10**6, False, False),
    "max_steps": (0, 10**9, False, False),
    "max_minutes": (0, 10**6, True, False),
    "max_cpu_minutes": (0, 10**6, True, False),
    "batch_size": (1, 4096, False, False),
    "val_batch_size": (1, 4096, False, False),
    "lr": (0, 10, True, False),
    "weight_decay": (0, 10, False, False),
    "momentum": (0, 1, False, True),
    "lr_step_epochs": (1, 10**6, False, False),
    "lr_gamma": (0, 1, True, False),
    "workers": (0, 256, False, False),
    "seed": (0, 2**32 - 1, False, False),
    "cascades": (1, 64, False, False),
    "sens_chans": (1, 1024, False, False),
    "sens_pools": (1, 10, False, False),
    "virtual_coils": (0, 1024, False, False),
}

#: Largest model a config may describe, and the activation memory of one 320x320 slice.
MAX_PARAMETERS = 2_000_000_000
MAX_ACTIVATION_BYTES = 64 * 2**30


def check_range(name: str, value: Any) -> None:
    """``ValueError`` if ``value`` (a number, or ``None``) lies outside ``RANGES[name]``."""
    if name not in RANGES or value is None or isinstance(value, (bool, str, list)):
        return
    low, high, low_open, high_open = RANGES[name]
    if not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value}")
    too_low = value <= low if low_open else value < low
    too_high = value >= high if high_open else value > high
    if too_low:
        raise ValueError(f"{name} must be {'above' if low_open else 'at least'} {_number(low)}, got {_number(value)}")
    if too_high:
        raise ValueError(f"{name} must be {'below' if high_open else 'at most'} {_number(high)}, got {_number(value)}")


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() and abs(value) < 1e12 else f"{value:g}"


def check_model_size(config: "TrainConfig") -> None:
    """Refuse a model too large to build, before building it: parameters counted on PyTorch's
    ``meta`` device (no memory), activations estimated for one 320x320 slice."""
    import torch

    from mrirecon.train.checkpoint import build_model

    try:
        with torch.device("meta"):
            model = build_model(config)
    except (ValueError, TypeError, RuntimeError) as exc:
        raise ValueError(f"the model cannot be built ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})") from exc
    parameters = sum(p.numel() for p in model.parameters())
    if parameters > MAX_PARAMETERS:
        raise ValueError(
            f"the model would have {parameters:.3g} parameters ({4 * parameters / 2**30:.3g} GiB), "
            f"more than the {MAX_PARAMETERS:.0e} allowed; check chans/pools"
        )
    chans = getattr(config, "chans", 0) or 0
    unets = getattr(config, "cascades", 1) if getattr(config, "model", "unet") == "varnet" else 1
    activations = 24 * chans * 320 * 320 * 4 * max(int(unets), 1)
    if activations > MAX_ACTIVATION_BYTES:
        raise ValueError(
            f"the model needs about {activations / 2**30:.3g} GiB of activations per 320x320 slice, "
            f"more than {MAX_ACTIVATION_BYTES / 2**30:.0f} GiB; check chans"
        )


def _type_name(kind: Any) -> str:
    return {bool: "true or false", int: "a whole number", float: "a number", str: "a string"}.get(kind, str(kind))


def _coerce(name: str, value: Any, hint: Any) -> Any:
    """``value`` as the field's declared type (``hint`` from the dataclass); ``ValueError`` if it
    is not one. Whole floats become ints, ints floats; nothing else is converted."""
    args = typing.get_args(hint)
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        options = [a for a in args if a is not type(None)]
        errors = []
        for option in options:
            try:
                return _coerce(name, value, option)
            except ValueError as exc:
                errors.append(exc)
        raise errors[0]
    if origin is list:
        if not isinstance(value, (list, tuple)):
            raise ValueError(f"{name} must be a list, got {value!r}")
        return [_coerce(f"{name}[{i}]", v, args[0] if args else Any) for i, v in enumerate(value)]
    if hint is Any:
        return value
    if hint is bool:
        if isinstance(value, bool):
            return value
    elif hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
    elif hint is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif hint is str:
        if isinstance(value, str):
            return value
    elif isinstance(value, hint):
        return value
    raise ValueError(f"{name} must be {_type_name(hint)}, got {value!r}")


def config_from_mapping(values: Mapping[str, Any], source: str = "config") -> TrainConfig:
    """A ``TrainConfig`` from a plain mapping, its keys and types checked against the dataclass's
    fields (so settings added to ``TrainConfig`` are covered automatically): unknown keys and
    wrong types are one ``ValueError`` naming ``source``. Ranges are ``TrainConfig.validate``'s."""
    if not isinstance(values, Mapping):
        raise ValueError(f"{source}: the configuration must be a mapping of settings")
    hints = typing.get_type_hints(TrainConfig)
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    unknown = sorted(str(k) for k in set(values) - known)
    if unknown:
        raise ValueError(f"{source}: unknown setting(s) {', '.join(unknown)}")
    coerced = {}
    for key, value in values.items():
        try:
            coerced[key] = _coerce(key, value, hints[key])
        except ValueError as exc:
            raise ValueError(f"{source}: {exc}") from None
    return TrainConfig(**coerced)


class ConfigLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that reads numbers as users write them: ``1e-3`` and ``5e4`` are floats
    (YAML 1.1, and so PyYAML, wants a dot: ``1.0e-3``). Still no tags, no code."""


ConfigLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


def load_config_file(path: str | Path) -> dict[str, Any]:
    """Read a YAML preset with ``yaml.safe_load``; it must hold a mapping."""
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "config file does not exist")
    try:
        values = yaml.load(path.read_text(), Loader=ConfigLoader)  # noqa: S506 (a SafeLoader)
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
    source = str(config_file or "options")
    config = config_from_mapping(values, source)
    try:
        config.validate()
    except ValueError as exc:
        raise ValueError(f"{source}: {exc}") from None
    return config
