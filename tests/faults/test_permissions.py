"""Permissions: unreadable inputs, folders that cannot be written. Tests run as root, which
ignores file modes, so the cases run in one subprocess whose capability bounding set lacks
CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH (``setpriv``): root then obeys modes like anyone."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from faults.fault_helpers import REPO, cli_env, leftovers, tree_hashes, write_small_volume
from faults.unprivileged_cases import CASES


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory) -> tuple[Path, dict, dict]:
    if shutil.which("setpriv") is None:
        pytest.skip("setpriv (util-linux) is not installed, so file modes cannot be enforced for root")
    root = tmp_path_factory.mktemp("perm")
    write_small_volume(root / "in" / "v0.h5", mask=True)
    write_small_volume(root / "locked" / "v0.h5")
    (root / "locked" / "ckpt.pt").write_bytes(b"PK\x03\x04 not really")
    write_small_volume(root / "lockeddir" / "v0.h5")
    (root / "readonly").mkdir()
    for path in (root / "locked" / "v0.h5", root / "locked" / "ckpt.pt"):
        path.chmod(0)
    (root / "lockeddir").chmod(0)
    (root / "readonly").chmod(0o555)
    before = tree_hashes(root / "in")
    try:
        proc = subprocess.run(
            ["setpriv", "--bounding-set=-dac_override,-dac_read_search", sys.executable,
             str(Path(__file__).with_name("unprivileged_cases.py")), str(root)],
            capture_output=True, text=True, env=cli_env(), cwd=REPO, timeout=300,
        )
    finally:
        (root / "lockeddir").chmod(0o755)
        (root / "readonly").chmod(0o755)
    if proc.returncode != 0 and "setpriv" in proc.stderr:
        pytest.skip(f"dropping capabilities was refused ({proc.stderr.strip()})")
    assert proc.returncode == 0, proc.stderr
    return root, json.loads(proc.stdout.strip().splitlines()[-1]), before


#: case -> (exit codes, any of these words, the path named). A path Typer's own check finds
#: unreadable is its usage error ("... is not readable"), exit 2, before any work.
EXPECTED = {
    "unreadable input file": ((1, 2), ("permission denied", "not readable"), "locked/v0.h5"),
    "unreadable input folder": ((1, 2), ("permission denied", "not readable"), "lockeddir"),
    "output folder not writable": ((1, 2), ("permission denied",), "readonly"),
    "json folder not writable": ((2,), ("is not writable",), "readonly"),
    "unreadable checkpoint": ((2,), ("permission denied", "not readable"), "ckpt.pt"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_permission_case_is_one_sentence(outcomes, case: str) -> None:
    root, results, before = outcomes
    result = results[case]
    codes, words, names = EXPECTED[case]
    assert result["exception"] is None, result
    assert result["exit_code"] in codes, result
    assert "Traceback" not in result["stderr"], result
    text = " ".join(result["stderr"].lower().split())  # usage boxes wrap long lines
    assert any(word in text for word in words) and names in result["stderr"].replace("\n", ""), result
    assert tree_hashes(root / "in") == before
    assert leftovers(root) == []
    assert not any((root / "readonly").iterdir())
