"""Fault-injection suite: shared fixtures and the "fault cases: N tried, N held" summary line.

Every test here is one fault case (each parametrisation one case, each hypothesis example one
case); a case "held" when the tool behaved as specified. Bad files are generated in fixtures,
never committed.
"""

from __future__ import annotations

import contextlib
import subprocess
import uuid
from pathlib import Path
from typing import Iterator

import pytest

FAULTS_DIR = Path(__file__).resolve().parent

_counts = {"tried": 0, "held": 0}
#: Extra cases a single test ran (hypothesis examples): nodeid -> count.
_extra: dict[str, int] = {}


def record_cases(nodeid: str, count: int) -> None:
    """A test that ran ``count`` cases inside itself (a fuzzer) reports them here."""
    _extra[nodeid] = _extra.get(nodeid, 0) + count


@pytest.fixture
def fault_cases(request: pytest.FixtureRequest):
    """Call ``fault_cases(n)`` from a test that tried ``n`` cases inside itself."""
    return lambda n: record_cases(request.node.nodeid, n)


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if not Path(str(report.fspath)).resolve().is_relative_to(FAULTS_DIR):
        return
    if report.when == "call" or (report.when == "setup" and report.failed):
        n = max(1, _extra.pop(report.nodeid, 0))
        _counts["tried"] += n
        if report.passed:
            _counts["held"] += n


def pytest_terminal_summary(terminalreporter) -> None:
    if _counts["tried"]:
        terminalreporter.write_line(f"fault cases: {_counts['tried']} tried, {_counts['held']} held")


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[callable]:
    """``tmpfs(size, options="")`` mounts a small tmpfs under ``tmp_path`` and returns it; skipped
    (saying why) where mounting is refused. Unmounted at the end."""
    mounted: list[Path] = []

    def mount(size: str = "256k", options: str = "") -> Path:
        point = tmp_path / f"tmpfs-{uuid.uuid4().hex[:6]}"
        point.mkdir()
        opts = f"size={size}" + (f",{options}" if options else "")
        result = subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(point)], capture_output=True, text=True)
        if result.returncode != 0:
            pytest.skip(f"mounting a tmpfs was refused ({result.stderr.strip() or result.returncode}); "
                        "the injected-ENOSPC tests cover the same path")
        mounted.append(point)
        return point

    yield mount
    for point in reversed(mounted):
        with contextlib.suppress(Exception):
            subprocess.run(["umount", "-l", str(point)], capture_output=True)
