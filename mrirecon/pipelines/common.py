"""What every file-walking pipeline shares: progress, failure isolation, manifest, stop signals, summaries.

(Input expansion is ``mrirecon.pipelines.inputs``; ``expand_inputs`` and ``output_path`` are
re-exported here for the pipelines that import them from this module.)
"""

from __future__ import annotations

import json
import signal
import time
import traceback
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from mrirecon.console import stderr_console
from mrirecon.io.errors import InputError
from mrirecon.pipelines.inputs import check_readable, expand_inputs, output_path
from mrirecon.pipelines.manifest import Manifest
from mrirecon.pipelines.signals import DEFAULT_GRACE, BatchInterrupted, StopSignals, requeue_job



@dataclass
class FileResult:
    """The outcome of one file."""

    input: str
    output: str | None = None
    ok: bool = True
    error: str | None = None
    status: str = "done"  # done, skipped (valid output kept), redone, failed, interrupted
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

    def with_status(self, status: str) -> list[FileResult]:
        return [r for r in self.results if r.status == status]

    def to_dict(self) -> dict[str, Any]:
        return {
            "command": self.command,
            "succeeded": len(self.succeeded),
            "failed": len(self.failed),
            "skipped": len(self.with_status("skipped")),
            "redone": len(self.with_status("redone")),
            "results": [asdict(r) for r in self.results],
            **self.extra,
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, default=str)


def run_batch(
    command: str,
    inputs: Sequence[Path],
    process: Callable[[Path], FileResult],
    *,
    quiet: bool = False,
    debug: bool = False,
    description: str | None = None,
    manifest: Manifest | None = None,
    grace: float = DEFAULT_GRACE,
    requeue: bool = False,
) -> BatchSummary:
    """Run ``process`` on each input under a progress bar; a failing file is recorded, not fatal.

    ``InputError`` and ``ValueError`` become a one-line error for that file; other exceptions
    too, prefixed "unexpected error". With ``debug`` every such error shows its traceback too. Each finished
    file is appended to ``manifest`` (if given). SIGTERM, SIGINT and SIGUSR1 stop the batch
    (``mrirecon.pipelines.signals``): the summary so far is printed, the job is requeued with
    ``requeue`` when the signal was SIGUSR1 (SLURM's ``--signal`` warning; SIGTERM is ``scancel``), and ``BatchInterrupted`` (a ``SystemExit`` with code 128 + signal) is raised,
    carrying the summary as ``.summary``.
    """
    summary = BatchSummary(command)
    stops = StopSignals(grace)
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[current]}"),
    )
    with stops.installed(), Progress(*columns, console=stderr_console, disable=quiet, transient=False) as progress:
        task = progress.add_task(description or command, total=len(inputs), current="")
        try:
            for path in inputs:
                progress.update(task, current=path.name)
                result = _process_one(path, process, stops, debug)
                summary.results.append(result)
                if manifest is not None:
                    manifest.record(input=result.input, output=result.output, status=result.status,
                                    error=result.error, seconds=result.seconds)
                if result.status == "interrupted":
                    raise BatchInterrupted(stops.stop_requested or signal.SIGTERM)
                if not result.ok and not quiet:
                    progress.console.print(f"[red]error[/red] {result.error}", highlight=False)
                for warning in result.info.get("warnings", []):
                    if not quiet:
                        progress.console.print(f"[yellow]warning[/yellow] {warning}", highlight=False)
                progress.advance(task)
                if stops.stop_requested is not None:
                    raise BatchInterrupted(stops.stop_requested)
            if stops.stop_requested is not None:  # a signal after the last file is still never an exit 0
                raise BatchInterrupted(stops.stop_requested)
        except BatchInterrupted as stop:
            stop.summary = summary  # type: ignore[attr-defined]
            progress.stop()
            _report_interruption(summary, stop, len(inputs), requeue)
            raise
    return summary


def _process_one(path: Path, process: Callable[[Path], FileResult], stops: StopSignals, debug: bool) -> FileResult:
    start = time.perf_counter()
    try:
        with stops.in_file():
            check_readable(path)
            result = process(path)
    except BatchInterrupted as stop:
        result = FileResult(str(path), ok=False, status="interrupted",
                            error=f"{path}: abandoned on {stop.signal_name}; nothing was written")
    except Exception as exc:  # isolate the file; the batch goes on
        if debug:
            stderr_console.print(traceback.format_exc(), highlight=False, markup=False, end="")
        if isinstance(exc, InputError):
            result = FileResult(str(path), ok=False, status="failed", error=str(exc))
        elif isinstance(exc, (ValueError, OSError)):
            result = FileResult(str(path), ok=False, status="failed", error=f"{path}: {exc}")
        else:
            result = FileResult(str(path), ok=False, status="failed",
                                error=f"{path}: unexpected error: {type(exc).__name__}: {exc}")
    result.seconds = time.perf_counter() - start
    return result


def _report_interruption(summary: BatchSummary, stop: BatchInterrupted, total: int, requeue: bool) -> None:
    summary.extra["interrupted"] = stop.signal_name
    finished = [r for r in summary.results if r.status != "interrupted"]
    ok = sum(r.ok for r in finished)
    line = (
        f"{summary.command}: stopped by {stop.signal_name} after {len(finished)} of {total} file(s): "
        f"{ok} done, {len(finished) - ok} failed, {total - len(finished)} not done; "
        f"rerun with --skip-existing to resume (exit {stop.code})"
    )
    stderr_console.print(f"[yellow]{line}[/yellow]", highlight=False)
    if requeue and stop.signum == signal.SIGUSR1:  # the time-limit warning; SIGTERM is scancel or the limit itself
        stderr_console.print(requeue_job(), highlight=False)


__all__ = [
    "BatchSummary", "FileResult", "run_batch", "stderr_console", "expand_inputs", "output_path", "BatchInterrupted",
]
