"""Shared by the training scripts: a train/val pair of sample-scan folders."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def sample_sets(
    root: Path, challenge: str, train_volumes: int, val_volumes: int, slices: int, coils: int = 4,
    preset: str = "small", device: str = "cpu",
) -> tuple[Path, Path]:
    """Generate (once) ``root/train`` and ``root/val`` with ``mrirecon sample-data`` (different seeds;
    ``preset`` knee: fastMRI's 640x368 k-space and 320x320 targets; ``device`` cuda: generated there)."""
    folders = []
    for name, volumes, seed in (("train", train_volumes, 0), ("val", val_volumes, 1000)):
        folder = root / name
        if not any(folder.glob("*.h5")):
            cmd = [sys.executable, "-m", "mrirecon", "sample-data", str(folder), "--challenge", challenge,
                   "--volumes", str(volumes), "--slices", str(slices), "--seed", str(seed), "--quiet",
                   "--preset", preset, "--device", device]
            if challenge == "multicoil":
                cmd += ["--coils", str(coils)]
            subprocess.run(cmd, check=True)
        folders.append(folder)
    return folders[0], folders[1]
