"""The README runs: every fenced shell block of README.md, in order, in a fresh copy of the tree.

A block is a ```bash (or sh/shell) fence. Blocks run one after another in one copy of the
checkout, each under ``bash -euo pipefail``, with ``mrirecon`` and ``python`` meaning this
checkout and its interpreter, so a block may use what an earlier block wrote and nothing else.
The only blocks not run are those right after the comment ``<!-- readme-test: make -n -->``
(``make test`` would run this very test): each of their ``make TARGET`` lines is checked with
``make -n TARGET`` instead. The static checks keep the blocks pasteable: no literal ``...``,
and no output folder or file written by two commands unless the second says ``--overwrite`` or
``--resume``.
"""

from __future__ import annotations

import os
import re
import resource
import shlex
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from conftest import apt_tool

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DRY_RUN_MARK = "<!-- readme-test: make -n -->"
FENCE = re.compile(r"^```(bash|sh|shell)[ \t]*\n(.*?)^```[ \t]*$", re.M | re.S)
#: Debian packages of the tools the README calls (installed with apt when missing, as CI runs as root).
DEBIAN_TOOLS = {"dcm2niix": "dcm2niix", "bart": "bart"}
#: Options that name what a command writes.
OUTPUT_OPTIONS = ("-o", "--out", "--json", "--png")


@dataclass
class Block:
    """One fenced shell block: its first line in README.md, its text, and whether it is only dry-run."""

    line: int
    text: str
    dry_run: bool

    def commands(self) -> list[str]:
        """The block's commands, continuation lines joined, comments and blank lines dropped."""
        joined = re.sub(r"\\\n\s*", " ", self.text)
        out = []
        for raw in joined.splitlines():
            line = raw.strip()
            if line and not line.startswith("#"):
                out.append(line)
        return out


def readme_blocks(text: str) -> list[Block]:
    """Every fenced shell block of ``text``, in order."""
    blocks = []
    for match in FENCE.finditer(text):
        before = text[: match.start()].rstrip().splitlines()
        dry_run = bool(before) and before[-1].strip() == DRY_RUN_MARK
        blocks.append(Block(text.count("\n", 0, match.start()) + 1, match.group(2), dry_run))
    return blocks


def written_paths(command: str) -> list[str]:
    """What ``command`` writes: the values of its output options and ``sample-data``'s folder."""
    try:
        words = shlex.split(command, comments=True)
    except ValueError:
        return []
    out = [words[i + 1] for i, w in enumerate(words[:-1]) if w in OUTPUT_OPTIONS and words[i + 1] != "-"]
    if "sample-data" in words:
        index = words.index("sample-data")
        if index + 1 < len(words) and not words[index + 1].startswith("-"):
            out.append(words[index + 1])
    return [os.path.normpath(p) for p in out]


BLOCKS = readme_blocks(README.read_text())


def test_readme_has_runnable_blocks() -> None:
    assert len([b for b in BLOCKS if not b.dry_run]) >= 4
    assert all("make" in c.split()[0] for b in BLOCKS if b.dry_run for c in b.commands())


def test_blocks_paste_as_written() -> None:
    for block in BLOCKS:
        for command in block.commands():
            code = command.split(" #")[0]
            assert "..." not in code and "…" not in code, f"README.md:{block.line}: {command}"


def test_no_output_is_written_twice() -> None:
    seen: dict[str, int] = {}
    for block in BLOCKS:
        for command in block.commands():
            for path in written_paths(command):
                again = "--overwrite" in command or "--resume" in command
                assert path not in seen or again, (
                    f"README.md:{block.line}: {path} was already written by the block at line {seen.get(path)}")
                seen.setdefault(path, block.line)


def test_written_paths_reads_output_options() -> None:
    assert written_paths("mrirecon zf-recon data/x -o recon/zf/ --json - # note") == ["recon/zf"]
    assert written_paths("mrirecon sample-data data/train --volumes 2") == ["data/train"]
    assert written_paths("mrirecon compare --target a --pred z=b --png fig.png --json m.json") == ["fig.png", "m.json"]


def _workspace(tmp_path: Path) -> Path:
    """A copy of the checkout's files (tracked, or new and not ignored), as a fresh clone has them,
    beside a link to the shared real scans the README may read (``../shared``)."""
    work = tmp_path / "checkout"
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                            capture_output=True, check=True).stdout.decode().split("\0")
    for name in filter(None, listed):
        source = ROOT / name
        if source.is_file():
            (work / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, work / name)
    shared = ROOT.parent / "shared"
    if shared.exists():
        (tmp_path / "shared").symlink_to(shared)
    return work


def _environment(tmp_path: Path, work: Path) -> dict[str, str]:
    """``mrirecon`` and ``python`` are this interpreter with the copy first on its path."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "mrirecon").write_text(f'#!/bin/sh\nexec "{sys.executable}" -m mrirecon "$@"\n')
    (bin_dir / "python").write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
    for shim in bin_dir.iterdir():
        shim.chmod(0o755)
    path = os.pathsep.join([str(bin_dir), str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    return {**os.environ, "PATH": path, "PYTHONPATH": str(work), "OMP_NUM_THREADS": "2",
            "MPLBACKEND": "Agg", "COLUMNS": "120"}


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_readme_blocks_run_in_order(tmp_path: Path) -> None:
    work = _workspace(tmp_path)
    env = _environment(tmp_path, work)
    for tool in {c.split()[0] for b in BLOCKS for c in b.commands()} & set(DEBIAN_TOOLS):
        apt_tool(tool, DEBIAN_TOOLS[tool])
    timings = []
    for block in BLOCKS:
        if block.dry_run:
            for command in block.commands():
                target = shlex.split(command, comments=True)[1:]
                dry = subprocess.run(["make", "-n", *target], cwd=work, env=env, capture_output=True, text=True)
                assert dry.returncode == 0, f"README.md:{block.line}: make -n {' '.join(target)}\n{dry.stderr}"
            continue
        start, cpu = time.perf_counter(), _children_cpu()
        proc = subprocess.run(["bash", "-euo", "pipefail", "-c", block.text], cwd=work, env=env,
                              capture_output=True, text=True, timeout=600)
        timings.append((block.line, time.perf_counter() - start, _children_cpu() - cpu))
        assert proc.returncode == 0, (
            f"README.md:{block.line}: the block exits {proc.returncode}\n{block.text}\n"
            f"--- stdout\n{proc.stdout[-3000:]}\n--- stderr\n{proc.stderr[-3000:]}")
    print("README blocks (line: wall s / CPU s):", ", ".join(f"{line}: {w:.0f}/{c:.0f}" for line, w, c in timings))


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime
