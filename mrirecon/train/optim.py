"""Optimisers and learning-rate schedules by name."""

from __future__ import annotations

import math
from typing import Iterable

import torch

from mrirecon.train.config import TrainConfig


def make_optimizer(params: Iterable[torch.nn.Parameter], config: TrainConfig) -> torch.optim.Optimizer:
    """``adam`` (with ``betas``), ``rmsprop`` or ``sgd`` with ``momentum``; all with weight decay."""
    if config.optimizer == "adam":
        return torch.optim.Adam(params, lr=config.lr, betas=tuple(config.betas), weight_decay=config.weight_decay)
    if config.optimizer == "rmsprop":
        return torch.optim.RMSprop(params, lr=config.lr, weight_decay=config.weight_decay)
    if config.optimizer == "sgd":
        return torch.optim.SGD(params, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay)
    raise ValueError(f"unknown optimizer {config.optimizer!r}")


def make_scheduler(
    optimizer: torch.optim.Optimizer, config: TrainConfig, steps_per_epoch: int
) -> torch.optim.lr_scheduler.LRScheduler:
    """A per-step schedule: ``step`` (times ``lr_gamma`` every ``lr_step_epochs`` epochs),
    ``cosine`` (to zero over all epochs) or ``none``."""
    if config.schedule == "step":
        step_size = max(1, config.lr_step_epochs * steps_per_epoch)
        return torch.optim.lr_scheduler.StepLR(optimizer, step_size=step_size, gamma=config.lr_gamma)
    if config.schedule == "cosine":
        total = max(1, config.epochs * steps_per_epoch)
        return torch.optim.lr_scheduler.LambdaLR(optimizer, _Cosine(total))
    return torch.optim.lr_scheduler.LambdaLR(optimizer, _Constant())


class _Cosine:
    def __init__(self, total: int):
        self.total = total

    def __call__(self, step: int) -> float:
        return 0.5 * (1.0 + math.cos(math.pi * min(step, self.total) / self.total))


class _Constant:
    def __call__(self, step: int) -> float:
        return 1.0
