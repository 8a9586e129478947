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
