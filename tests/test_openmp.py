"""The command line sets OpenMP's wait policy before torch loads, and keeps a user's choice."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from mrirecon import openmp

ROOT = Path(__file__).resolve().parents[1]

#: Fails if torch starts loading before ``mrirecon.openmp`` ran, then prints the policy in force.
PROBE = """
import sys
class Spy:
    def find_spec(self, name, path=None, target=None):
        if name == "torch" and "mrirecon.openmp" not in sys.modules:
            raise SystemExit("torch was imported before mrirecon.openmp")
        return None
sys.meta_path.insert(0, Spy())
import mrirecon.cli, os, torch
print(os.environ.get("OMP_WAIT_POLICY"))
"""


def _probe(**env: str) -> str:
    clean = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    result = subprocess.run([sys.executable, "-c", PROBE], env={**clean, "PYTHONPATH": str(ROOT), **env},
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_cli_sets_passive_wait_before_torch_loads() -> None:
    assert _probe() == "PASSIVE"


def test_a_users_policy_or_spin_count_is_kept(monkeypatch) -> None:
    monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")
    assert openmp.prefer_passive_wait() == "ACTIVE"
    monkeypatch.delenv("OMP_WAIT_POLICY")
    monkeypatch.setenv("GOMP_SPINCOUNT", "300000")
    assert openmp.prefer_passive_wait() is None
    assert "OMP_WAIT_POLICY" not in os.environ
