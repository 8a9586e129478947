#!/usr/bin/env python
"""Benchmark ``mrirecon eval`` against ``fastmri.evaluate`` on knee-sized volumes.

Data (generated once, reused): ``.bench/eval/target`` holds 20 single-coil volumes of
``mrirecon sample-data --preset knee`` (35 slices, 640x368 k-space, 35x320x320 float32
``reconstruction_esc``) and ``.bench/eval/pred`` their 4x zero-filled reconstructions
(``mrirecon zf-recon --accel 4``). ``--source synthetic`` writes simple fastMRI-style target
and reconstruction files directly with h5py instead (seconds rather than minutes).

Timed, alternating, ``--repeat`` times (files are read once beforehand so the page cache is warm
for everyone):

- fastmri.evaluate in-process: its ``evaluate(args, recons_key)`` with an argparse Namespace;
- fastmri.evaluate as a subprocess (what ``python -m fastmri.evaluate`` runs; its own ``__main__``
  fails to print with numpy 2, so a two-line equivalent prints the means);
- ``mrirecon eval`` as a subprocess (end to end: interpreter, torch import, table, JSON);
- ``mrirecon.pipelines.evaluate.evaluate`` in-process, with its read-ahead (the next volume
  read in a background thread while one is scored) and without it (``prefetch=False``).

Prints one table: wall seconds (median of the repeats), seconds per volume, CPU seconds (user +
system, children included), each with its ratio to the fastMRI row of the same kind, and the
largest absolute per-volume difference of each metric from fastMRI's values; a last row gives
the differences from fastMRI's formulas applied to float64 copies of the data.

Example: .venv/bin/python scripts/bench_eval.py            (CPU)
         .venv/bin/python scripts/bench_eval.py --device cuda
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
KEY = "reconstruction_esc"
FASTMRI_SUBPROCESS = """
import pathlib, sys, argparse, numpy as np
from fastmri.evaluate import evaluate
args = argparse.Namespace(target_path=pathlib.Path(sys.argv[1]), predictions_path=pathlib.Path(sys.argv[2]),
                          acquisition=None, acceleration=None)
metrics = evaluate(args, "reconstruction_esc")
m, s = metrics.means(), metrics.stddevs()
print(" ".join(f"{k} = {float(np.squeeze(m[k])):.4g} +/- {2 * float(np.squeeze(s[k])):.4g}" for k in sorted(m)))
"""


def cpu_seconds() -> float:
    """CPU time of this process and its finished children (user + system)."""
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def run(cmd: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def make_sample_data(root: Path, volumes: int) -> tuple[Path, Path]:
    target, pred = root / "target", root / "pred"
    if len(list(target.glob("*.h5"))) < volumes:
        print(f"generating {volumes} knee-sized single-coil volumes with mrirecon sample-data (minutes) ...")
        run([sys.executable, "-m", "mrirecon", "sample-data", str(target), "--challenge", "singlecoil", "--preset",
             "knee", "--volumes", str(volumes), "--coils", "4", "--seed", "0", "--quiet", "--overwrite"])
    if len(list(pred.glob("*.h5"))) < volumes:
        print("reconstructing them (zero-filled, 4x) ...")
        run([sys.executable, "-m", "mrirecon", "zf-recon", str(target), "-o", str(pred), "--accel", "4",
             "--quiet", "--overwrite"])
    return target, pred


def make_synthetic(root: Path, volumes: int) -> tuple[Path, Path]:
    """Ellipses with texture and noise as targets (35x320x320 float32), blurred noisy copies as
    reconstructions; written directly with h5py (no k-space)."""
    target, pred = root / "target", root / "pred"
    if len(list(target.glob("*.h5"))) >= volumes and len(list(pred.glob("*.h5"))) >= volumes:
        return target, pred
    target.mkdir(parents=True, exist_ok=True)
    pred.mkdir(parents=True, exist_ok=True)
    y, x = np.mgrid[-1:1:320j, -1:1:320j]
    for i in range(volumes):
        rng = np.random.default_rng(i)
        vol = np.empty((35, 320, 320), np.float32)
        for s in range(35):
            img = 0.6 * ((x / 0.75) ** 2 + (y / 0.9) ** 2 < 1) + 0.4 * (((x - 0.1) / 0.3) ** 2 + (y / 0.5) ** 2 < 1)
            img = img * (1 + 0.2 * np.sin(8 * x + s / 5 + i) * np.cos(6 * y))
            vol[s] = np.abs(img + 0.02 * rng.standard_normal(img.shape)) * 1e-4
        blurred = (vol + np.roll(vol, 1, -1) + np.roll(vol, 1, -2)) / 3
        recon = np.abs(blurred + 4e-6 * rng.standard_normal(vol.shape)).astype(np.float32)
        name = f"synthetic_{i:03d}.h5"
        with h5py.File(target / name, "w") as f:
            f.create_dataset(KEY, data=vol)
            f.attrs["acquisition"] = "CORPD_FBK"
            f.attrs["max"] = float(vol.max())
        with h5py.File(pred / name, "w") as f:
            f.create_dataset("reconstruction", data=recon)
    return target, pred


def fastmri_reference(target: Path, pred: Path, dtype: type = np.float32) -> dict[str, dict[str, float]]:
    """fastMRI's per-volume values (its evaluate() loop body), untimed; ``dtype=np.float64``
    applies its formulas to float64 copies (no float32 rounding)."""
    from fastmri.data import transforms
    from fastmri.evaluate import nmse, psnr, ssim

    out = {}
    for path in sorted(target.glob("*.h5")):
        with h5py.File(path, "r") as t, h5py.File(pred / path.name, "r") as r:
            gt, rec = t[KEY][()].astype(dtype), r["reconstruction"][()].astype(dtype)
        w = gt.shape[-1]
        gt, rec = transforms.center_crop(gt, (w, w)), transforms.center_crop(rec, (w, w))
        out[path.name] = {"nmse": nmse(gt, rec).item(), "psnr": float(psnr(gt, rec)), "ssim": ssim(gt, rec).item()}
    return out


def max_diffs(ours: dict[str, dict[str, float]], ref: dict[str, dict[str, float]]) -> dict[str, float]:
    assert set(ours) == set(ref), "the tools scored different volumes"
    return {m: max(abs(ours[n][m] - ref[n][m]) for n in ref) for m in ("nmse", "psnr", "ssim")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--volumes", type=int, default=20)
    parser.add_argument("--device", default="cpu", help="device for mrirecon eval: cpu, cuda or auto")
    parser.add_argument("--source", choices=["sample-data", "synthetic"], default="sample-data")
    parser.add_argument("--root", type=Path, default=ROOT / ".bench" / "eval")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", type=Path, help="Also write the in-process and subprocess ratios here.")
    args = parser.parse_args()

    root = args.root if args.source == "sample-data" else args.root / "synthetic"
    make = make_sample_data if args.source == "sample-data" else make_synthetic
    target, pred = make(root, args.volumes)
    names = sorted(p.name for p in target.glob("*.h5"))
    n = len(names)

    import argparse as ap

    import torch
    from fastmri.evaluate import evaluate as fastmri_evaluate

    from mrirecon.pipelines.evaluate import EvalConfig, evaluate

    ref = fastmri_reference(target, pred)  # also warms the page cache
    ref64 = fastmri_reference(target, pred, np.float64)
    json_out = Path(tempfile.mkdtemp()) / "eval.json"
    ours_cmd = [sys.executable, "-m", "mrirecon", "eval", "--target", str(target), "--pred", str(pred),
                "--device", args.device, "--quiet", "--json", str(json_out)]
    fastmri_cmd = [sys.executable, "-c", FASTMRI_SUBPROCESS, str(target), str(pred)]
    namespace = ap.Namespace(target_path=target, predictions_path=pred, acquisition=None, acceleration=None)
    config = EvalConfig(device=args.device)

    last: dict = {}

    def ours_inprocess() -> None:
        last["summary"] = evaluate(target, pred, config, quiet=True)

    def ours_serial() -> None:
        evaluate(target, pred, config, quiet=True, prefetch=False)

    def fastmri_inprocess() -> None:
        fastmri_evaluate(namespace, KEY)

    timers = {
        "fastmri.evaluate (in-process)": fastmri_inprocess,
        "mrirecon evaluate() (in-process)": ours_inprocess,
        "  same, no read-ahead (in-process)": ours_serial,
        "fastmri.evaluate (subprocess)": lambda: run(fastmri_cmd),
        "mrirecon eval (subprocess)": lambda: run(ours_cmd),
    }
    ours_inprocess()  # warm-up (CUDA context, allocator)
    times: dict[str, list[float]] = {k: [] for k in timers}
    cpu_times: dict[str, list[float]] = {k: [] for k in timers}
    for _ in range(args.repeat):
        for name, call in timers.items():
            cpu_start = cpu_seconds()
            start = time.perf_counter()
            call()
            times[name].append(time.perf_counter() - start)
            cpu_times[name].append(cpu_seconds() - cpu_start)

    in_process = {v.name: {m: getattr(v, m) for m in ("nmse", "psnr", "ssim")} for v in last["summary"].volumes}
    from_cli = json.loads(json_out.read_text())["volumes"]
    diffs = {"mrirecon evaluate() (in-process)": max_diffs(in_process, ref),
             "mrirecon eval (subprocess)": max_diffs(from_cli, ref)}
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import torch, mrirecon.pipelines.evaluate"], check=True)
    import_s = time.perf_counter() - start

    print()
    with h5py.File(target / names[0], "r") as f:
        shape = tuple(f[KEY].shape)
    print(f"{n} volumes {shape} ({args.source}), mrirecon device "
          f"{last['summary'].device}, torch {torch.__version__}, load average "
          f"{' '.join(f'{x:.1f}' for x in os.getloadavg())}, {args.repeat} repeats")
    header = (f"{'tool':34s} {'wall s':>7s} {'s/vol':>6s} {'ratio':>6s} {'cpu s':>7s} {'ratio':>6s}  "
              f"{'max |dNMSE|':>11s} {'max |dPSNR|':>11s} {'max |dSSIM|':>11s}")
    print(header)
    print("-" * len(header))
    for name in timers:
        wall, cpu = statistics.median(times[name]), statistics.median(cpu_times[name])
        base = "fastmri.evaluate (in-process)" if "in-process" in name else "fastmri.evaluate (subprocess)"
        ratio, cpu_ratio = statistics.median(times[base]) / wall, statistics.median(cpu_times[base]) / cpu
        d = diffs.get(name, {"nmse": 0.0, "psnr": 0.0, "ssim": 0.0})
        print(f"{name:34s} {wall:7.2f} {wall / n:6.3f} {ratio:5.2f}x {cpu:7.2f} {cpu_ratio:5.2f}x  "
              f"{d['nmse']:11.2e} {d['psnr']:11.2e} {d['ssim']:11.2e}")
    if args.json:
        med = {name: statistics.median(t) for name, t in times.items()}
        args.json.write_text(json.dumps({
            "in_process_ratio": med["fastmri.evaluate (in-process)"] / med["mrirecon evaluate() (in-process)"],
            "subprocess_ratio": med["fastmri.evaluate (subprocess)"] / med["mrirecon eval (subprocess)"],
            "max_abs_ssim_diff": diffs["mrirecon evaluate() (in-process)"]["ssim"], "volumes": n,
        }))
    exact = max_diffs(in_process, ref64)
    print(f"{'mrirecon vs fastMRI formulas in f64':34s} {'':7s} {'':6s} {'':6s} {'':7s} {'':6s}  "
          f"{exact['nmse']:11.2e} {exact['psnr']:11.2e} {exact['ssim']:11.2e}")
    print(f"(medians of {args.repeat} runs; ratio = fastMRI's median / this row's, >1 = faster; cpu = user+system "
          f"seconds, steadier than wall time when other jobs share the cores. "
          f"Interpreter + torch + mrirecon import in a fresh process: {import_s:.2f} s)")


if __name__ == "__main__":
    main()
