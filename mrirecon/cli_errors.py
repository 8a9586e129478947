"""The command line's one error path: every failure becomes one sentence and an exit code.

- expected failures: ``InputError`` (bad file or option), ``ValueError`` (bad value) and
  ``OSError`` print ``error: <sentence>`` and exit 2; ``OutputError`` (an output that could not
  be written) exits 1, like a failed file;
- anything else prints ``error: unexpected error: <type>: <message> (run with --debug for the
  traceback)`` and exits 1;
- ``--debug`` prints the traceback first; the sentence and the exit code stay the same;
- SIGINT (Ctrl-C) and SIGTERM print "interrupted" and exit 128 + signal (130, 143), never 0,
  even when Python swallowed the exception the signal raised.

``GuardedGroup`` applies this to every command of the Typer app, so a failure anywhere in a
command (pipeline, JSON summary, table) takes this path. ``option_*`` are Typer option
callbacks that validate a value at the option, before any file is touched.
"""

from __future__ import annotations

import contextlib
import math
import os
import signal
import sys
import traceback
from pathlib import Path
from typing import Any, Callable, NoReturn, Optional, TypeVar

import typer
from rich.markup import escape
from typer.core import TyperGroup

from mrirecon.io.errors import InputError, OutputError
from mrirecon.pipelines.common import stderr_console

T = TypeVar("T")

EXIT_BAD_INPUT = 2
EXIT_FAILED = 1
EXIT_INTERRUPTED = 128 + signal.SIGINT


def fail(message: str, code: int = EXIT_BAD_INPUT) -> NoReturn:
    """Print ``error: MESSAGE`` (one line) to stderr and exit with ``code``."""
    stderr_console.print(f"[red]error:[/red] {escape(message)}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def _first_line(text: str) -> str:
    return next((line.strip() for line in text.splitlines() if line.strip()), "").rstrip(".")


def describe_failure(exc: BaseException) -> tuple[str, int]:
    """The one sentence and exit code for ``exc``: expected failures name the file, the rest
    are "unexpected error" with a pointer to ``--debug``."""
    if isinstance(exc, OutputError):
        return str(exc), EXIT_FAILED
    if isinstance(exc, InputError):
        return str(exc), EXIT_BAD_INPUT
    if isinstance(exc, ValueError):
        return _first_line(str(exc)) or type(exc).__name__, EXIT_BAD_INPUT
    if isinstance(exc, OSError) and exc.strerror:
        where = f"{exc.filename}: " if exc.filename else ""
        return f"{where}{exc.strerror.lower()}", EXIT_BAD_INPUT
    detail = _first_line(str(exc))
    return (
        f"unexpected error: {type(exc).__name__}{': ' + detail if detail else ''} "
        "(run with --debug for the traceback)",
        EXIT_FAILED,
    )


def fail_with(exc: BaseException, debug: bool) -> NoReturn:
    """Exit for ``exc`` with its one sentence and code, after its traceback when ``debug``."""
    if debug:
        stderr_console.print("".join(traceback.format_exception(exc)), highlight=False, markup=False, end="")
    message, code = describe_failure(exc)
    fail(message, code)


def guarded(debug: bool, call: Callable[[], T]) -> T:
    """Run ``call``; a failure becomes one sentence and its exit code (the traceback with ``debug``)."""
    try:
        return call()
    except (typer.Exit, typer.Abort, typer.TyperException, KeyboardInterrupt):
        raise
    except Exception as exc:
        fail_with(exc, debug)


class Terminated(SystemExit):
    """Raised by the SIGTERM handler: unwinds like Ctrl-C (temporary files removed), exit 143."""

    def __init__(self) -> None:
        super().__init__(128 + signal.SIGTERM)


class _StopSignals:
    """SIGINT raises ``KeyboardInterrupt`` and SIGTERM ``Terminated`` (as Python's default SIGINT
    does), and both are remembered: an exception Python swallows (raised inside a ``__del__`` or
    weakref callback, as h5py's object cleanup can be) still ends the command with 128 + signal,
    and the atomic writer refuses to publish a file written across it. Commands that install
    their own handlers (batches, training) replace these while they run."""

    def __init__(self) -> None:
        self.received: int | None = None
        self.previous: dict[int, Any] = {}

    def _on_signal(self, signum: int, frame: object) -> None:
        from mrirecon.io import atomic

        self.received = self.received or signum
        atomic.note_interrupt(signum)
        raise KeyboardInterrupt if signum == signal.SIGINT else Terminated()

    def _unraisable(self, unraisable: Any) -> None:
        """Python's "Exception ignored in ..." report, minus the signals handled here (their
        exception was swallowed, but ``received`` remembers them)."""
        if not isinstance(unraisable.exc_value, (KeyboardInterrupt, Terminated)):
            self.previous_hook(unraisable)

    def __enter__(self) -> "_StopSignals":
        with contextlib.suppress(ValueError):  # not the main thread: leave the handlers alone
            for sig in (signal.SIGINT, signal.SIGTERM):
                self.previous[sig] = signal.signal(sig, self._on_signal)
        self.previous_hook = sys.unraisablehook
        sys.unraisablehook = self._unraisable
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)
        sys.unraisablehook = self.previous_hook


def _interrupted(signum: int) -> NoReturn:
    stderr_console.print(f"[red]interrupted[/red] ({signal.Signals(signum).name})", highlight=False)
    raise typer.Exit(128 + signum)


class GuardedGroup(TyperGroup):
    """The app's command group: runs each command under the one error path."""

    def invoke(self, ctx: Any) -> Any:
        args = [*getattr(ctx, "_protected_args", []), *ctx.args]
        debug = "--debug" in args
        stops = _StopSignals()
        try:
            with stops:
                result = super().invoke(ctx)
        except (typer.Exit, typer.Abort, typer.TyperException):
            raise
        except Terminated:
            _interrupted(stops.received or signal.SIGTERM)
        except KeyboardInterrupt:
            if debug:
                raise
            _interrupted(stops.received or signal.SIGINT)
        except Exception as exc:
            if stops.received:  # e.g. a write failed because the signal cut it short
                _interrupted(stops.received)
            fail_with(exc, debug)
        if stops.received:  # the signal's exception was swallowed somewhere: never exit 0
            _interrupted(stops.received)
        return result


# --- option validation (Typer callbacks: run while parsing, before any file is touched) ------


def _option_name(param: Any) -> str:
    opts = getattr(param, "opts", None) or [getattr(param, "name", "option")]
    return max(opts, key=len)


def finite(minimum: float | None = None, maximum: float | None = None, *, above: bool = False,
           below: bool = False) -> Callable[[Any, Any, Optional[float]], Optional[float]]:
    """A callback accepting ``None`` or a finite number in ``[minimum, maximum]`` (open ends with
    ``above``/``below``); anything else is one sentence and exit 2."""

    def check(ctx: Any, param: Any, value: Optional[float]) -> Optional[float]:
        if value is None:
            return value
        name = _option_name(param)
        if not math.isfinite(value):
            fail(f"{name} must be a finite number, got {value}")
        if minimum is not None and (value <= minimum if above else value < minimum):
            fail(f"{name} must be {'above' if above else 'at least'} {minimum:g}, got {value:g}")
        if maximum is not None and (value >= maximum if below else value > maximum):
            fail(f"{name} must be {'below' if below else 'at most'} {maximum:g}, got {value:g}")
        return value

    return check


def output_file(ctx: Any, param: Any, value: Optional[Path]) -> Optional[Path]:
    """A file to write (``--json``, ``--png``): not a folder, its nearest existing folder writable;
    ``-`` means stdout."""
    if value is None or str(value) == "-":
        return value
    name = _option_name(param)
    if value.is_dir():
        fail(f"{name} {value}: is a folder, not a file")
    parent = value.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        fail(f"{name} {value}: {parent} is not a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        fail(f"{name} {value}: folder {parent} is not writable")
    return value


def output_folder(ctx: Any, param: Any, value: Optional[Path]) -> Optional[Path]:
    """A folder to write into (``--out``): not an existing file."""
    if value is not None and value.exists() and not value.is_dir():
        fail(f"{_option_name(param)} {value}: is a file, not a folder")
    return value
