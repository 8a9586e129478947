"""Helpers of the fault-injection suite: hashes, leftovers, running the CLI in a subprocess."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def file_hash(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def tree_hashes(root: Path) -> dict[str, str]:
    """Every file under ``root`` (following no links) -> its hash (or its link target)."""
    out: dict[str, str] = {}
    for path in sorted(root.rglob("*")):
        rel = str(path.relative_to(root))
        if any(part.endswith(".mrirecon") for part in path.relative_to(root).parts):
            continue  # a batch's manifest (it records the failures too), not an output
        if path.is_symlink():
            out[rel] = "-> " + os.readlink(path)
        elif path.is_file():
            out[rel] = file_hash(path)
    return out


def leftovers(root: Path) -> list[Path]:
    """Temporary files of the atomic writer (``.NAME.XXXX.tmp``) anywhere under ``root``."""
    return sorted(p for p in root.rglob(".*.tmp"))


def cli_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env.setdefault("OMP_NUM_THREADS", "1")
    env["COLUMNS"] = "200"
    return env


def run_mrirecon(*args: object, timeout: float = 120, **kwargs) -> subprocess.CompletedProcess:
    """``python -m mrirecon ARGS`` in a subprocess (a real process: real exit codes, real stderr)."""
    return subprocess.run(
        [sys.executable, "-m", "mrirecon", *map(str, args)],
        capture_output=True, text=True, timeout=timeout, env=cli_env(), cwd=REPO, **kwargs,
    )


def assert_one_sentence(stderr: str) -> None:
    """No traceback, and an error line."""
    assert "Traceback" not in stderr, stderr
    assert "error" in stderr.lower(), stderr


def write_small_volume(path: Path, *, slices: int = 2, coils: int | None = 2, shape: tuple[int, int] = (16, 12),
                       seed: int = 0, mask: bool = False, attrs: dict | None = None) -> Path:
    """A small valid fastMRI file (multi-coil unless ``coils`` is None), with header and target;
    test-style (``mask``, ``acceleration``, ``num_low_frequency``, undersampled) when ``mask``."""
    import h5py
    import numpy as np

    from mrirecon.io import make_header_xml

    rng = np.random.default_rng(seed)
    full = (slices, coils, *shape) if coils else (slices, *shape)
    kspace = (rng.standard_normal(full) + 1j * rng.standard_normal(full)).astype(np.complex64)
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as handle:
        if mask:
            cols = np.zeros(shape[1], bool)
            cols[shape[1] // 2 - 2 : shape[1] // 2 + 2] = True
            cols[::4] = True
            kspace = kspace * cols
            handle["mask"] = cols
            handle.attrs["acceleration"] = 2
            handle.attrs["num_low_frequency"] = 4
        handle["kspace"] = kspace
        handle["ismrmrd_header"] = make_header_xml(shape, (shape[0] // 2, shape[0] // 2))
        if not mask:
            key = "reconstruction_rss" if coils else "reconstruction_esc"
            handle[key] = rng.random((slices, shape[0] // 2, shape[0] // 2)).astype(np.float32)
        for key, value in (attrs or {}).items():
            handle.attrs[key] = value
    return path
