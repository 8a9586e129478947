"""The console progress, warnings and errors go to: stderr, so stdout stays clean for ``--json -``."""

from rich.console import Console

stderr_console = Console(stderr=True, soft_wrap=True)
