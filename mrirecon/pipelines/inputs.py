"""Which files a batch reads and writes: input expansion and the input -> output plan.

Inputs are files named directly (taken whatever their suffix) and the ``*.h5``/``*.hdf5`` files of
named folders; the list is sorted and deduplicated by resolved path, so every shard of a job sees
the same list in the same order. A named path that does not exist is an error before any work
(exit 2) unless it names an HDF5 file, which is then reported as that file's failure. A dangling
symbolic link is kept in the list and fails with a sentence saying so.

Outputs are ``OUT/<input name>`` (fastMRI's convention). A plan is refused before any work when an
output would be an input file, or when two inputs share a name (one output would be written twice).
"""

from __future__ import annotations

import os
from collections import defaultdict
from pathlib import Path
from typing import Iterable, Sequence

from mrirecon.io.errors import InputError

#: The suffixes a folder's HDF5 files have.
H5_SUFFIXES = (".h5", ".hdf5")


def _folder_files(folder: Path) -> list[Path]:
    return [
        p
        for p in folder.iterdir()
        if p.suffix.lower() in H5_SUFFIXES and not p.name.startswith(".") and (p.is_file() or p.is_symlink())
    ]


def expand_inputs(paths: Iterable[str | Path], *, require_files: bool = True) -> list[Path]:
    """Files named directly plus the HDF5 files of named folders, sorted, without duplicates.

    Raises ``InputError`` for a named path that does not exist (unless it names an ``.h5``/``.hdf5``
    file: that file then fails in the batch), a folder without HDF5 files, and, when
    ``require_files``, an empty result.
    """
    found: dict[str, Path] = {}
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            files = _folder_files(path)
            if not files:
                raise InputError(path, "is a folder with no *.h5 or *.hdf5 files")
        elif path.exists() or path.is_symlink() or path.suffix.lower() in H5_SUFFIXES:
            files = [path]
        else:
            what = "input folder" if str(raw).endswith(os.sep) or not path.suffix else "input path"
            raise InputError(path, f"{what} does not exist")
        for file in files:
            key = os.path.realpath(file)
            found.setdefault(key, file)
    result = sorted(found.values(), key=lambda p: (str(p.parent), p.name))
    if require_files and not result:
        raise InputError(None, "no input files found")
    return result


def check_readable(path: Path) -> None:
    """Raise ``InputError`` for a dangling symbolic link (the reader would only say "does not exist")."""
    if path.is_symlink() and not path.exists():
        raise InputError(path, f"is a symbolic link to {os.readlink(path)}, which does not exist")


def output_path(out_dir: Path, input_path: Path) -> Path:
    """The output file for ``input_path``: the same name in ``out_dir`` (fastMRI's convention)."""
    return Path(out_dir) / input_path.name


def plan_outputs(files: Sequence[Path], out_dir: str | Path) -> list[tuple[Path, Path]]:
    """``(input, output)`` pairs, refused (``InputError``) if an output is an input or is written twice."""
    out_dir = Path(out_dir)
    inputs = {os.path.realpath(f) for f in files}
    by_output: dict[str, list[Path]] = defaultdict(list)
    pairs = []
    for file in files:
        out = output_path(out_dir, file)
        if os.path.realpath(out) in inputs:
            raise InputError(
                out, "would be both an input and an output; write the outputs to another folder with --out"
            )
        by_output[os.path.realpath(out)].append(file)
        pairs.append((file, out))
    for out, sources in by_output.items():
        if len(sources) > 1:
            names = " and ".join(str(s) for s in sources[:3]) + (" ..." if len(sources) > 3 else "")
            raise InputError(
                Path(out),
                f"would be written {len(sources)} times (by {names}, which share a file name); run one command "
                "per input folder, each with its own --out (e.g. -o OUT/site1 for site1/)",
            )
    return pairs
