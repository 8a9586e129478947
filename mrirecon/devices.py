"""Device choice shared by the pipelines and training (below both: neither imports the other for it)."""

from __future__ import annotations

import os

import torch


def resolve_device(name: str, local_rank: int | None = None) -> torch.device:
    """``auto`` -> CUDA when present, else CPU; ``cuda`` without a GPU is a clear error.

    A bare ``cuda`` (or ``auto`` on a GPU machine) under torchrun becomes ``cuda:LOCAL_RANK``
    (``local_rank`` given, else the ``LOCAL_RANK`` environment variable), modulo the GPU count.
    """
    name = name.lower()
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError("--device cuda was asked for but no CUDA GPU is available")
    if name not in ("cpu",) and not name.startswith("cuda"):
        raise ValueError(f"unknown device {name!r}; use auto, cpu or cuda")
    device = torch.device(name)
    if device.type == "cuda" and device.index is None:
        rank = local_rank if local_rank is not None else int(os.environ.get("LOCAL_RANK", "0") or 0)
        if rank:
            device = torch.device("cuda", rank % torch.cuda.device_count())
    return device
