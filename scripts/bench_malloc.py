"""glibc malloc settings of the command line (``mrirecon.allocator``) on against off, side by side.

Whole ``mrirecon cs-recon`` processes on (1) a knee-sized sample volume (15 coils, 640x368,
``--slices``, 4x) and (2) a long batch of small files of mixed sizes in one process (does peak
memory creep with kept memory?), each with ``MRIRECON_KEEP_FREED_MEMORY=1`` (the default) and
``=0`` (glibc's defaults), alternating, ``--repeat`` times. Per run: wall, user and system CPU
seconds, minor page faults and peak resident memory, from ``wait4`` of the child; the outputs of
the two settings must be identical.

Usage: .venv/bin/python scripts/bench_malloc.py [--slices 35] [--threads 1] [--repeat 1] [--files 40]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def run(args: list[str], keep: bool, threads: int) -> dict[str, float]:
    """One whole process; its wall, CPU, faults and peak memory."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads),
           "MRIRECON_KEEP_FREED_MEMORY": "1" if keep else "0"}
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "mrirecon", *args], env=env)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"mrirecon {' '.join(args)} failed ({proc.returncode})")
    return {"wall": wall, "user": usage.ru_utime, "sys": usage.ru_stime, "faults": usage.ru_minflt,
            "rss_gb": usage.ru_maxrss / 2**20}


def make_inputs(work: Path, slices: int, files: int) -> tuple[Path, Path]:
    knee = work / "knee"
    subprocess.run([sys.executable, "-m", "mrirecon", "sample-data", str(knee), "--preset", "knee",
                    "--volumes", "1", "--slices", str(slices), "--seed", "0", "-q"],
                   env={**os.environ, "PYTHONPATH": str(ROOT)}, check=True)
    small = work / "small"
    flat = work / "small_flat"
    flat.mkdir()
    for i in range(files):  # mixed sizes: 2-6 slices, 4-8 coils (the allocator sees many block sizes)
        subprocess.run([sys.executable, "-m", "mrirecon", "sample-data", str(small / str(i)), "--volumes", "1",
                        "--slices", str(2 + i % 5), "--coils", str(4 + i % 5), "--seed", str(100 + i), "-q"],
                       env={**os.environ, "PYTHONPATH": str(ROOT)}, check=True)
        for f in (small / str(i)).glob("*.h5"):
            shutil.move(str(f), flat / f"s{i:03d}.h5")
    return next(knee.glob("*.h5")), flat


def same_outputs(a: Path, b: Path) -> bool:
    for fa in sorted(a.rglob("*.h5")):
        with h5py.File(fa) as ha, h5py.File(b / fa.relative_to(a)) as hb:
            if not np.array_equal(ha["reconstruction"][()], hb["reconstruction"][()]):
                return False
    return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--slices", type=int, default=35)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--files", type=int, default=40, help="small files in the batch case")
    parser.add_argument("--work", type=Path, default=None)
    args = parser.parse_args()
    work = Path(args.work or tempfile.mkdtemp(prefix="bench_malloc_"))
    work.mkdir(parents=True, exist_ok=True)
    knee, small = make_inputs(work, args.slices, args.files)
    cases = {
        f"knee {args.slices} slices": lambda out: ["cs-recon", str(knee), "-o", str(out), "--mask", "random", "--accel", "4",
                                                   "--device", "cpu", "-q", "--overwrite"],
        f"batch of {args.files} small files": lambda out: ["cs-recon", str(small), "-o", str(out), "--accel", "4",
                                                          "--device", "cpu", "-q", "--overwrite"],
    }
    print(f"{os.cpu_count()} CPUs, {args.threads} thread(s), median of {args.repeat}")
    print("| case | setting | wall s | user s | sys s | minor faults | peak RSS GB |")
    print("|---|---|---|---|---|---|---|")
    ratios = []
    for name, argv in cases.items():
        runs: dict[bool, list[dict[str, float]]] = {True: [], False: []}
        for _ in range(args.repeat):
            for keep in (True, False):
                runs[keep].append(run(argv(work / f"out_{keep}_{name.split()[0]}"), keep, args.threads))
        med = {k: {m: statistics.median(r[m] for r in v) for m in v[0]} for k, v in runs.items()}
        for keep in (True, False):
            m = med[keep]
            label = "kept (default)" if keep else "glibc default"
            print(f"| {name} | {label} | {m['wall']:.1f} | {m['user']:.1f} | {m['sys']:.1f} | {m['faults']:.0f} | {m['rss_gb']:.2f} |")
        identical = same_outputs(work / f"out_True_{name.split()[0]}", work / f"out_False_{name.split()[0]}")
        ratios.append(f"{name}: wall {med[True]['wall'] / med[False]['wall']:.2f}x, CPU "
                      f"{(med[True]['user'] + med[True]['sys']) / (med[False]['user'] + med[False]['sys']):.2f}x, "
                      f"peak memory {med[True]['rss_gb'] / med[False]['rss_gb']:.2f}x; outputs identical: {identical}")
    print("\nkept / glibc default:")
    for line in ratios:
        print("- " + line)
    if args.work is None:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
