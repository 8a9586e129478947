"""What every file-walking pipeline shares: input expansion, progress, failure isolation, summaries."""

from __future__ import annotations

import json
import time
import traceback
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from mrirecon.io.errors import InputError

#: Progress, warnings and errors go to stderr so stdout stays clean for ``--json -``.
stderr_console = Console(stderr=True, soft_wrap=True)


@dataclass
class FileResult:
    """The outcome of one file."""

    input: str
    output: str | None = None
    ok: bool = True
    error: str | None = None
    seconds: float = 0.0
    info: dict[str, Any] = field(default_factory=dict)


@dataclass
class BatchSummary:
    """What a pipeline did: one ``FileResult`` per input file."""

    command: str
    results: list[FileResult] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def failed(self) -> list[FileResult]:
        return [r for r in self.results if not r.ok]

    @property
    def succeeded(self) -> list[FileResult]:
        return [r for r in self.results if r.ok]

    @property
    def ok(self) -> bool:
        return not self.failed

    def to_dict(self) -> dict[str, Any]:
        return {
            "command": self.command,
            "succeeded": len(self.succeeded),
            "failed": len(self.failed),
            "results": [asdict(r) for r in self.results],
            **self.extra,
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, default=str)


def expand_inputs(paths: Iterable[str | Path], pattern: str = "*.h5") -> list[Path]:
    """Files named directly, plus the ``pattern`` files of named folders (sorted).

    A named path that does not exist is bad input for the whole command (``InputError``, exit 2):
    nothing is processed."""
    found: list[Path] = []
    missing = [Path(raw) for raw in paths if not Path(raw).exists()]
    if missing:
        raise InputError(missing[0], "input file or folder does not exist"
                         + (f" (nor do {len(missing) - 1} more)" if len(missing) > 1 else ""))
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found.extend(sorted(p for p in path.glob(pattern) if p.is_file() and not p.name.startswith(".")))
        else:
            found.append(path)
    return found


def output_path(out_dir: Path, input_path: Path) -> Path:
    """The output file for ``input_path``: the same name in ``out_dir`` (fastMRI's convention)."""
    return Path(out_dir) / input_path.name


def run_batch(
    command: str,
    inputs: Sequence[Path],
    process: Callable[[Path], FileResult],
    *,
    quiet: bool = False,
    debug: bool = False,
    description: str | None = None,
) -> BatchSummary:
    """Run ``process`` on each input under a progress bar; a failing file is recorded, not fatal.

    ``InputError`` and ``ValueError`` become a one-line error for that file; other exceptions
    too, prefixed "unexpected error". With ``debug`` every such error shows its traceback too.
    """
    summary = BatchSummary(command)
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[current]}"),
    )
    with Progress(*columns, console=stderr_console, disable=quiet, transient=False) as progress:
        task = progress.add_task(description or command, total=len(inputs), current="")
        for path in inputs:
            progress.update(task, current=path.name)
            start = time.perf_counter()
            try:
                result = process(path)
            except KeyboardInterrupt:
                raise
            except Exception as exc:  # isolate the file; the batch goes on
                if debug:
                    progress.console.print(traceback.format_exc(), highlight=False, markup=False, end="")
                if isinstance(exc, InputError):
                    result = FileResult(str(path), ok=False, error=str(exc))
                elif isinstance(exc, (ValueError, OSError)):
                    result = FileResult(str(path), ok=False, error=f"{path}: {exc}")
                else:
                    result = FileResult(str(path), ok=False, error=f"{path}: unexpected error: {type(exc).__name__}: {exc}")
            result.seconds = time.perf_counter() - start
            summary.results.append(result)
            if not result.ok and not quiet:
                progress.console.print(f"[red]error[/red] {result.error}", highlight=False)
            for warning in result.info.pop("warnings", []):
                if not quiet:
                    progress.console.print(f"[yellow]warning[/yellow] {warning}", highlight=False)
            progress.advance(task)
    return summary
