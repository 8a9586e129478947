"""Running the CLI in-process, with stdout and stderr apart."""

from __future__ import annotations

from typer.testing import CliRunner

from mrirecon.cli import app


def run_cli(*args: object):
    """Invoke ``mrirecon ARGS``; returns click's Result (``exit_code``, ``stdout``, ``stderr``)."""
    return CliRunner().invoke(app, [str(a) for a in args], catch_exceptions=False)
