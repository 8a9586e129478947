"""Run as root *without* CAP_DAC_OVERRIDE/CAP_DAC_READ_SEARCH (so file modes apply): each case
runs the CLI in-process and the results are printed as JSON for test_permissions.py."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from typer.testing import CliRunner

from mrirecon.cli import app

CASES = {
    "unreadable input file": ["zf-recon", "{root}/locked/v0.h5", "-o", "{root}/out1", "--quiet"],
    "unreadable input folder": ["zf-recon", "{root}/lockeddir", "-o", "{root}/out2", "--quiet"],
    "output folder not writable": ["zf-recon", "{root}/in", "-o", "{root}/readonly", "--quiet"],
    "json folder not writable": ["zf-recon", "{root}/in", "-o", "{root}/out3", "--json", "{root}/readonly/s.json"],
    "unreadable checkpoint": ["unet-recon", "{root}/in", "--checkpoint", "{root}/locked/ckpt.pt", "-o", "{root}/out4"],
}


def main(root: str) -> None:
    results = {}
    for name, args in CASES.items():
        result = CliRunner().invoke(app, [a.format(root=root) for a in args])
        exc = result.exception if not isinstance(result.exception, SystemExit) else None
        results[name] = {"exit_code": result.exit_code, "stderr": result.stderr,
                         "exception": None if exc is None else repr(exc)}
    print(json.dumps(results))


if __name__ == "__main__":
    main(sys.argv[1])
