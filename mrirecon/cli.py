"""The ``mrirecon`` command line: parse, validate, call a pipeline, print its summary."""

from __future__ import annotations

import sys
from enum import Enum
from pathlib import Path
from typing import Callable, List, Optional, TypeVar

import typer

from mrirecon.io.errors import InputError
from mrirecon.pipelines.common import BatchSummary, stderr_console

app = typer.Typer(
    name="mrirecon",
    help="Accelerated MRI reconstruction from fastMRI HDF5 files.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

T = TypeVar("T")


class Challenge(str, Enum):
    singlecoil = "singlecoil"
    multicoil = "multicoil"


class MaskType(str, Enum):
    random = "random"
    equispaced = "equispaced"
    equispaced_fraction = "equispaced_fraction"
    magic = "magic"
    magic_fraction = "magic_fraction"
    poisson = "poisson"


QuietOption = typer.Option(False, "--quiet", "-q", help="No progress bar or table.")
JsonOption = typer.Option(None, "--json", help="Write the summary as JSON to this file ('-' for stdout).")
DebugOption = typer.Option(False, "--debug", help="Show tracebacks.")
OverwriteOption = typer.Option(False, "--overwrite", help="Replace existing outputs.")


def fail(message: str, code: int = 2) -> None:
    """Print one line to stderr and exit non-zero."""
    stderr_console.print(f"[red]error:[/red] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def guarded(debug: bool, call: Callable[[], T]) -> T:
    """Run ``call``; bad input becomes one line and exit code 2 (a traceback only with --debug)."""
    try:
        return call()
    except (InputError, ValueError, FileNotFoundError) as exc:
        if debug:
            raise
        fail(str(exc))
    raise AssertionError("unreachable")


def write_json(text: str, target: Optional[Path]) -> None:
    if target is None:
        return
    if str(target) == "-":
        sys.stdout.write(text + "\n")
    else:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text + "\n")


def finish(summary: BatchSummary, quiet: bool, json_path: Optional[Path]) -> None:
    """Print the batch summary; exit 1 if any file failed."""
    write_json(summary.to_json(), json_path)
    if not quiet:
        n_ok, n_bad = len(summary.succeeded), len(summary.failed)
        colour = "green" if n_bad == 0 else "red"
        stderr_console.print(
            f"[{colour}]{summary.command}: {n_ok} file(s) done, {n_bad} failed[/{colour}]", highlight=False
        )
    if summary.failed:
        raise typer.Exit(1)


# --- commands --------------------------------------------------------------------------
# (each command: a few lines; the work is in mrirecon.pipelines)

# @@ commands of later issues are added below this line @@


def main() -> None:
    """Console-script entry point."""
    app()
