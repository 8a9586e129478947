"""Zero filling, TV compressed sensing, U-Net and E2E-VarNet side by side, after fixed CPU
training budgets, at 4x and 8x, on held-out sample scans and on real multi-coil scans.

Data: sample scans in three disjoint sets (train seed 1, validation seed 2, test seed 3), and
the fully sampled real multi-coil scans of ``../shared/data/real/`` (converted with ``mrirecon
convert``), which no model ever sees: how well a model trained on sample scans carries over to
real anatomy, reported as it comes out, including where CS wins.

Training budgets are CPU minutes: one "minute" is 60 s of CPU time of the training process
(``train --max-cpu-minutes``, ``time.process_time``) with torch at one thread, so a budget does
not depend on how loaded the machine is (wall time does). It counts the training steps and the
per-epoch validation, not start-up. Each (model, accel) trains once, at a constant learning rate
(``--schedule none``; the preset's lr), and its checkpoint is copied when the CPU time reaches
each budget: the run stops at the budget and is resumed (bit-exact) for the next, so the 2- and
5-minute checkpoints are exactly what 2- and 5-minute runs give. No checkpoint is chosen on
validation: the scored one is the state at the budget. A cosine schedule would do better at
each budget, but over 10 minutes it is not a 2-minute run, so it is not used here.

Scores are fastMRI's (``mrirecon compare``: SSIM and PSNR per volume, averaged over volumes);
reconstruction seconds per volume are CPU seconds of the recon command, run in this process
with torch at ``--threads`` (no Python start-up; checkpoint loading included), on the sample
test set: like the budgets, they do not depend on the machine's load (``--json`` also holds
the wall-clock seconds).

Prints markdown tables: per method, budget and acceleration, the sample test set, the real
brain, and the mean over the real phantoms; then SSIM per real scan. ``--json`` writes every
number, per volume.

Usage: .venv/bin/python scripts/compare_methods.py [--budgets 2 5 10] [--accels 4 8] [--jobs 2]
       [--work /tmp/compare_methods] [--json results.json]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable

REPO = Path(__file__).resolve().parents[1]
REAL_DIR = REPO.parent / "shared" / "data" / "real"
PRESETS = {"unet": REPO / "configs" / "unet_tiny.yaml", "varnet": REPO / "configs" / "varnet_tiny.yaml"}
#: The fully sampled multi-coil real scans, with what ``convert`` needs to know about each.
REAL_SCANS = {
    "brain_t2_4coil": [],
    "phantom_gre_8coil_7slices": [],
    "phantom_16coil": [],
    "phantom_16coil_96_with_noise": [],
    "phantom_gre_2coil_os2": ["--readout-oversampling", "2"],
}
#: fastMRI's centre fractions; the networks train with the masks they are scored with.
CENTER_FRACTIONS = {4: 0.08, 8: 0.04}
ZF, CS = "zero-filled", "CS (TV)"


def cli(*args: object) -> None:
    """Run one ``mrirecon`` command in this process (no start-up per command); raise if it fails."""
    from mrirecon.cli import app

    argv = [str(a) for a in args]
    code = app(argv, prog_name="mrirecon", standalone_mode=False)
    if code:
        raise RuntimeError(f"mrirecon {' '.join(argv)} exited {code}")


def prepare(work: Path, args: argparse.Namespace) -> dict[str, Path]:
    """Sample train/val/test sets and the real scans as fastMRI files (each made once)."""
    sets = {"train": (args.train_volumes, 1), "val": (1, 2), "test": (args.test_volumes, 3)}
    folders = {name: work / name for name in (*sets, "real")}
    for name, (volumes, seed) in sets.items():
        if not any(folders[name].glob("*.h5")):
            slices = [] if args.slices is None else ["--slices", args.slices]
            cli("sample-data", folders[name], "--volumes", volumes, "--seed", seed, *slices, "--quiet")
    folders["real"].mkdir(parents=True, exist_ok=True)
    for scan in args.real:
        out = folders["real"] / f"{scan}.h5"
        if not out.exists():
            cli("convert", args.real_dir / f"{scan}.npy", "-o", out, *REAL_SCANS[scan], "--quiet")
    return folders


def undersample(work: Path, folders: dict[str, Path], accel: int, sets: list[str]) -> dict[str, Path]:
    """``subsample`` each set at ``accel`` (fastMRI random mask, its centre fraction)."""
    out = {}
    for name in sets:
        out[name] = work / f"{name}_{accel}x"
        if not any(out[name].glob("*.h5")):
            cli("subsample", folders[name], "-o", out[name], "--mask", "random", "--accel", accel,
                "--center-fraction", CENTER_FRACTIONS[accel], "--quiet")
    return out


def train_to(model: str, accel: int, budget: float, previous: float | None, folders: dict[str, Path], work: Path,
             python: str) -> Path:
    """The checkpoint of ``model`` at ``accel`` after ``budget`` CPU minutes of training.

    One run per model and accel: the first budget starts it, each later one resumes the
    ``previous`` budget's checkpoint (bit-exact) with ``--max-cpu-minutes`` set to the difference,
    so snapshot ``b`` is the state after ``b`` CPU minutes. Snapshots on disk are kept (the script
    can be rerun, or stopped after any budget)."""
    recipe = hashlib.sha256(PRESETS[model].read_bytes()).hexdigest()[:8]  # a changed preset trains again
    run = work / f"run_{model}_{accel}x_{recipe}"
    snapshot = work / f"ckpt_{model}_{accel}x_{recipe}_{budget:g}min.pt"
    if snapshot.exists():
        return snapshot
    base = [python, "-m", "mrirecon", "train", "-o", run, "--device", "cpu", "--quiet"]
    if previous is None:
        command = [*base, "--overwrite", "--train", folders["train"], "--val", folders["val"],
                   "--config", PRESETS[model], "--accel", accel, "--center-fraction", CENTER_FRACTIONS[accel],
                   "--epochs", 1_000_000, "--schedule", "none", "--max-cpu-minutes", f"{budget:g}"]
    else:
        shutil.copyfile(work / f"ckpt_{model}_{accel}x_{recipe}_{previous:g}min.pt", run / "last.pt")
        command = [*base, "--resume", "--max-cpu-minutes", f"{budget - previous:g}"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    subprocess.run([str(c) for c in command], check=True, cwd=REPO, env=env)
    partial = snapshot.with_suffix(".partial")
    shutil.copyfile(run / "last.pt", partial)
    partial.replace(snapshot)
    return snapshot


def _after(before: Future | None, function: Callable[..., Path], *args: Any) -> Path:
    """``function(*args)`` once ``before`` (the same run's previous budget) has finished."""
    if before is not None:
        before.result()
    return function(*args)


def steps_done(checkpoint: Path) -> int:
    """The optimiser steps a checkpoint has taken."""
    from mrirecon.train.checkpoint import load_checkpoint

    return int(load_checkpoint(checkpoint)["step"])


def reconstruct(command: list[object], data: Path, out: Path) -> tuple[float, float]:
    """Reconstruct every file of ``data`` into ``out``; CPU and wall seconds per volume.

    CPU seconds are this process's (``time.process_time``; the training runs are other
    processes) over the whole command, checkpoint loading included, so they do not depend on the
    machine's load; wall seconds are the recon's own per-file times from its ``--json``."""
    report = out.parent / f"{out.name}.json"
    start = time.process_time()
    cli(*command, data, "-o", out, "--overwrite", "--quiet", "--json", report)
    cpu = time.process_time() - start
    results = json.loads(report.read_text())["results"]
    return cpu / max(len(results), 1), mean([r["seconds"] for r in results])


def score(target: Path, recons: dict[str, Path], report: Path) -> dict[str, dict[str, dict[str, float]]]:
    """fastMRI's per-volume SSIM and PSNR of each method: ``{method: {volume: {ssim, psnr}}}``."""
    cli("compare", "--target", target, *[a for name, path in recons.items() for a in ("--pred", f"{name}={path}")],
        "--json", report, "--overwrite", "--quiet")
    methods = json.loads(report.read_text())["methods"]
    return {name: {vol: {"ssim": m["ssim"], "psnr": m["psnr"]} for vol, m in methods[name]["volumes"].items()}
            for name in recons}


def mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else float("nan")


def run(args: argparse.Namespace, progress: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
    """Everything: data, baselines, then budget by budget: training (``--jobs`` runs at once),
    reconstructions and scores. ``progress(results)`` is called after each budget."""
    import torch

    import mrirecon.pipelines.cs_recon  # noqa: F401  (imported before the recons are timed)
    import mrirecon.pipelines.unet_recon  # noqa: F401
    import mrirecon.pipelines.zf_recon  # noqa: F401

    torch.set_num_threads(args.threads)
    work = args.work
    work.mkdir(parents=True, exist_ok=True)
    folders = prepare(work, args)
    sets = ["test"] + (["real"] if args.real else [])
    data = {accel: undersample(work, folders, accel, sets) for accel in args.accels}
    results: dict[str, Any] = {
        "budget_unit": "CPU minutes of the training process, torch at 1 thread", "threads": args.threads,
        "test_volumes": args.test_volumes, "train_volumes": args.train_volumes, "real_scans": list(args.real),
        "rows": []}

    def add_row(key: str, method: str, budget: str, accel: int, command: list[object], steps: int | None) -> None:
        row: dict[str, Any] = {"method": method, "cpu_minutes": budget, "steps": steps, "accel": accel}
        for name in sets:
            out = work / "recon" / f"{name}_{accel}x" / key
            out.parent.mkdir(parents=True, exist_ok=True)
            cpu, wall = reconstruct(command, data[accel][name], out)
            if name == "test":
                row["cpu_seconds_per_volume"], row["wall_seconds_per_volume"] = cpu, wall
            row[f"{name}_volumes"] = score(folders[name], {key: out}, out.parent / f"scores_{key}.json")[key]
        results["rows"].append(row)

    jobs = [(model, accel) for accel in args.accels for model in args.models]
    budgets = sorted(args.budgets)
    pool = ThreadPoolExecutor(max_workers=args.jobs)
    try:  # training goes on to the next budget while this thread reconstructs and scores the last
        futures: dict[tuple[str, int, float], Future] = {}
        for i, budget in enumerate(budgets):
            previous = budgets[i - 1] if i else None
            for model, accel in jobs:
                after = futures.get((model, accel, previous)) if previous is not None else None
                futures[model, accel, budget] = pool.submit(_after, after, train_to, model, accel, budget, previous,
                                                            folders, work, args.python)
        for accel in args.accels:  # while the first budget trains
            add_row("zf", ZF, "-", accel, ["zf-recon", "--device", "cpu"], None)
            add_row("cs", CS, "-", accel, ["cs-recon", "--device", "cpu"], None)
        for budget in budgets:
            for model, accel in jobs:
                snapshot = futures[model, accel, budget].result()
                add_row(f"{model}_{budget:g}min", model, f"{budget:g}", accel,
                        ["unet-recon", "--checkpoint", snapshot, "--device", "cpu"], steps_done(snapshot))
            if progress is not None:
                progress(results)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    order = [ZF, CS, *args.models]
    results["rows"].sort(key=lambda r: (r["accel"], order.index(r["method"]),
                                        0.0 if r["cpu_minutes"] == "-" else float(r["cpu_minutes"])))
    return results


def summarise(row: dict[str, Any], name: str, volumes: list[str] | None = None) -> tuple[float, float]:
    """Mean SSIM and PSNR of ``row`` over the volumes of set ``name`` (or the named ones)."""
    per = row.get(f"{name}_volumes", {})
    chosen = [v for v in per if volumes is None or Path(v).stem in volumes]
    return mean([per[v]["ssim"] for v in chosen]), mean([per[v]["psnr"] for v in chosen])


def tables(results: dict[str, Any]) -> str:
    """The markdown tables: the overview, then SSIM per real scan."""
    real = results["real_scans"]
    brain = [s for s in real if s.startswith("brain")]
    phantoms = [s for s in real if not s.startswith("brain")]
    lines = [
        f"Sample scans: {results['test_volumes']} held-out test volumes; networks trained on "
        f"{results['train_volumes']} other volumes for the given CPU minutes (60 s of CPU time of the training "
        f"process, torch at 1 thread); recon CPU seconds per sample volume (8 coils, 8 slices), torch at {results['threads']} thread(s).",
        "",
        "| method | CPU min | steps | accel | sample SSIM | sample PSNR | recon CPU s/volume |"
        + (" real brain SSIM | real brain PSNR |" if brain else "")
        + (f" phantoms SSIM ({len(phantoms)} scans) | phantoms PSNR |" if phantoms else ""),
        "|---|---|---|---|---|---|---|" + "---|---|" * (bool(brain) + bool(phantoms)),
    ]
    for row in results["rows"]:
        ssim, psnr = summarise(row, "test")
        steps = "-" if row["steps"] is None else str(row["steps"])
        cells = [row["method"], row["cpu_minutes"], steps, f"{row['accel']}x", f"{ssim:.4f}", f"{psnr:.2f}",
                 f"{row['cpu_seconds_per_volume']:.2f}"]
        for group in (brain, phantoms):
            if group:
                ssim, psnr = summarise(row, "real", group)
                cells += [f"{ssim:.4f}", f"{psnr:.2f}"]
        lines.append("| " + " | ".join(cells) + " |")
    if real:
        lines += ["", "SSIM per real scan (every budget):", "",
                  "| method | CPU min | accel | " + " | ".join(real) + " |", "|---|---|---|" + "---|" * len(real)]
        for row in results["rows"]:
            cells = [row["method"], row["cpu_minutes"], f"{row['accel']}x"]
            cells += [f"{summarise(row, 'real', [scan])[0]:.4f}" for scan in real]
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budgets", type=float, nargs="+", default=[2, 5, 10],
                        help="Training budgets in CPU minutes (one run per model and accel, copied at each).")
    parser.add_argument("--accels", type=int, nargs="+", default=[4, 8], choices=sorted(CENTER_FRACTIONS))
    parser.add_argument("--models", nargs="+", default=["unet", "varnet"], choices=sorted(PRESETS))
    parser.add_argument("--jobs", type=int, default=2, help="Training runs at once (each one CPU thread).")
    parser.add_argument("--threads", type=int, default=1, help="Torch threads for the reconstructions.")
    parser.add_argument("--train-volumes", type=int, default=6)
    parser.add_argument("--test-volumes", type=int, default=4)
    parser.add_argument("--slices", type=int, default=None, help="Slices per sample volume (default: sample-data's).")
    parser.add_argument("--real", nargs="*", default=list(REAL_SCANS), choices=sorted(REAL_SCANS),
                        help="Real scans to score on (none: --real with no names).")
    parser.add_argument("--real-dir", type=Path, default=REAL_DIR)
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "compare_methods")
    parser.add_argument("--json", type=Path, default=None, help="Write every number (per volume) here.")
    parser.add_argument("--python", default=sys.executable, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if min(args.budgets) <= 0 or args.jobs < 1 or args.threads < 1:
        parser.error("budgets, --jobs and --threads must be positive")
    missing = [s for s in args.real if not (args.real_dir / f"{s}.npy").is_file()]
    if missing:
        parser.error(f"{args.real_dir}: no {', '.join(s + '.npy' for s in missing)}")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)

    def write(results: dict[str, Any]) -> None:  # after each budget: what is done so far
        if args.json is not None:
            args.json.write_text(json.dumps(results, indent=2))

    results = run(args, write)
    write(results)
    print(tables(results))


if __name__ == "__main__":
    main()
