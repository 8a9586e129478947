"""The README runs: every fenced shell block of README.md, in order, in a fresh copy of the tree.

A block is a ```bash (or sh/shell) fence. Blocks run one after another in one copy of the
checkout, each under ``bash -euo pipefail``, with ``mrirecon`` and ``python`` meaning this
checkout and its interpreter, so a block may use what an earlier block wrote and nothing else.
The only blocks not run follow a marker comment, and are checked instead:

- ``<!-- readme-test: make -n -->`` (``make test`` would run this very test): each
  ``make TARGET`` line with ``make -n TARGET``;
- ``<!-- readme-test: slurm -->`` (cluster templates; ``tests/test_slurm.py`` runs them on a
  real SLURM): each ``sbatch`` script exists and ``bash -n`` parses it, and every ``--option``
  of a ``mrirecon`` command (also under ``torchrun -m mrirecon``) is in that command's ``--help``.

The static checks keep the blocks pasteable: no literal ``...``, and no output folder or file
written by two commands unless the second says ``--overwrite``, ``--resume`` or ``--skip-existing``.
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
MARKS = {"<!-- readme-test: make -n -->": "make", "<!-- readme-test: slurm -->": "slurm"}
FENCE = re.compile(r"^```(bash|sh|shell)[ \t]*\n(.*?)^```[ \t]*$", re.M | re.S)
#: Debian packages of the tools the README calls (installed with apt when missing, as CI runs as root).
DEBIAN_TOOLS = {"dcm2niix": "dcm2niix", "bart": "bart"}
#: Options that name what a command writes.
OUTPUT_OPTIONS = ("-o", "--out", "--json", "--png")


@dataclass
class Block:
    """One fenced shell block: its first line in README.md, its text, and its marker (``make``,
    ``slurm``: checked, not run) or ``None`` (run)."""

    line: int
    text: str
    mark: str | None

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
        mark = MARKS.get(before[-1].strip()) if before else None
        blocks.append(Block(text.count("\n", 0, match.start()) + 1, match.group(2), mark))
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
    assert len([b for b in BLOCKS if b.mark is None]) >= 4
    assert all(c.split()[0] == "make" for b in BLOCKS if b.mark == "make" for c in b.commands())
    assert all(c.split()[0] in ("sbatch", "mrirecon", "torchrun") for b in BLOCKS if b.mark == "slurm"
               for c in b.commands())


def test_slurm_blocks_name_real_scripts_and_options() -> None:
    from cli_helpers import run_cli

    for block in [b for b in BLOCKS if b.mark == "slurm"]:
        for command in block.commands():
            words = shlex.split(command, comments=True)
            if words[0] == "sbatch":
                script = next(ROOT / w for w in words if w.endswith(".sbatch"))
                assert script.is_file(), f"README.md:{block.line}: {script} does not exist"
                subprocess.run(["bash", "-n", str(script)], check=True)
                continue
            args = words[words.index("mrirecon") + 1:]
            help_text = run_cli(args[0], "--help").stdout
            for option in (w.split("=")[0] for w in args if w.startswith("--")):
                assert option in help_text, f"README.md:{block.line}: mrirecon {args[0]} has no {option}"


def test_blocks_paste_as_written() -> None:
    for block in BLOCKS:
        for command in block.commands():
            code = command.split(" #")[0]
            assert "..." not in code and "…" not in code, f"README.md:{block.line}: {command}"


def test_no_output_is_written_twice() -> None:
    seen: dict[str, int] = {}
    for block in [b for b in BLOCKS if b.mark is None]:
        for command in block.commands():
            for path in written_paths(command):
                again = any(flag in command for flag in ("--overwrite", "--resume", "--skip-existing"))
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
    # every word, not only a command's first: ``mkdir -p nifti && dcm2niix ...`` needs dcm2niix too
    for tool in {w for b in BLOCKS for c in b.commands() for w in re.split(r"[\s;&|()]+", c)} & set(DEBIAN_TOOLS):
        apt_tool(tool, DEBIAN_TOOLS[tool])
    timings = []
    for block in BLOCKS:
        if block.mark == "slurm":  # test_slurm_blocks_name_real_scripts_and_options
            continue
        if block.mark == "make":
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
