"""Normalisation layers by name: group (default), instance, batch, layer, none."""

from __future__ import annotations

from torch import nn

NORM_TYPES = ("group", "instance", "batch", "layer", "none")


def group_count(channels: int, groups: int) -> int:
    """The number of groups actually used: the largest divisor of ``channels`` not above ``groups``.

    With 32 groups: 16 channels -> 16 groups (one channel each), 64 -> 32, 48 -> 24.
    """
    if groups < 1:
        raise ValueError(f"groups must be at least 1, got {groups}")
    return max(d for d in range(1, min(groups, channels) + 1) if channels % d == 0)


def make_norm(kind: str, channels: int, groups: int = 32) -> nn.Module:
    """A normalisation layer for ``channels`` feature maps.

    ``batch`` uses running statistics in eval mode; ``group``, ``instance`` and ``layer``
    normalise each image by its own statistics and keep no running state.
    """
    if kind == "group":
        return nn.GroupNorm(group_count(channels, groups), channels)
    if kind == "instance":
        return nn.InstanceNorm2d(channels, affine=True)
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "layer":
        return nn.GroupNorm(1, channels)  # LayerNorm over (C, H, W), with per-channel affine
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"unknown normalisation {kind!r}; choose one of {', '.join(NORM_TYPES)}")
