"""Zero filling, TV compressed sensing, U-Net and E2E-VarNet side by side, after fixed CPU
training budgets, at 4x and 8x.

Sample scans: the networks train on one set (seed 1), their checkpoint at the end of the budget
(``last.pt``: no validation choice) reconstructs a held-out test set (seed 3). Each trained model
is also scored on the real fully sampled multi-coil brain (``../shared/data/real/brain_t2_4coil.npy``,
converted with ``mrirecon convert``), which it never saw: how well a model trained on sample
scans carries over to real anatomy, reported as it comes out, including where CS wins.

Prints one markdown table: SSIM and PSNR (fastMRI's metrics, via ``mrirecon compare``) on the
sample test set and on the real brain, and reconstruction seconds per volume, per method,
budget and acceleration. Every command is the CLI a user runs.

Usage: .venv/bin/python scripts/compare_methods.py [--budgets 2 5 10] [--accels 4 8] [--threads 2]
       [--work /tmp/compare_methods]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
REAL_BRAIN = REPO.parent / "shared" / "data" / "real" / "brain_t2_4coil.npy"
PRESETS = {"unet": REPO / "configs" / "unet_tiny.yaml", "varnet": REPO / "configs" / "varnet_tiny.yaml"}


def mrirecon(*args: object) -> float:
    """Run one ``mrirecon`` command (quiet); returns its wall time in seconds."""
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "mrirecon", *map(str, args)], check=True, cwd=REPO)
    return time.perf_counter() - start


def scores(target: Path, recon: Path, work: Path) -> dict[str, float]:
    """Mean SSIM and PSNR of ``recon`` against ``target`` (``mrirecon compare``)."""
    out = work / f"scores_{abs(hash((str(target), str(recon))))}.json"
    mrirecon("compare", "--target", target, "--pred", f"m={recon}", "--json", out)
    mean = json.loads(out.read_text())["methods"]["m"]["mean"]
    return {"ssim": mean["ssim"], "psnr": mean["psnr"]}


def prepare(work: Path, accels: list[int]) -> dict[str, Path]:
    """Sample train/val/test sets, the real brain as a fastMRI file, and their undersampled copies."""
    paths = {"train": work / "train", "val": work / "val", "test": work / "test", "real": work / "real"}
    for name, volumes, seed in (("train", 6, 1), ("val", 1, 2), ("test", 2, 3)):
        if not any(paths[name].glob("*.h5")):
            mrirecon("sample-data", paths[name], "--volumes", volumes, "--seed", seed, "--quiet")
    if not any(paths["real"].glob("*.h5")):
        paths["real"].mkdir(parents=True, exist_ok=True)
        mrirecon("convert", REAL_BRAIN, "-o", paths["real"] / "brain_t2_4coil.h5")
    for accel in accels:
        for name in ("test", "real"):
            folder = work / f"{name}_{accel}x"
            if not any(folder.glob("*.h5")):
                mrirecon("subsample", paths[name], "-o", folder, "--mask", "random", "--accel", accel, "--quiet")
    return paths


def recon_and_score(command: list[object], data: Path, target: Path, out: Path, work: Path) -> dict[str, float]:
    """Reconstruct every volume of ``data`` with ``command``; scores and seconds per volume."""
    volumes = len(list(data.glob("*.h5")))
    seconds = mrirecon(*command, data, "-o", out, "--overwrite", "--quiet")
    return {**scores(target, out, work), "seconds": seconds / max(volumes, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budgets", type=float, nargs="+", default=[2, 5, 10], help="Training minutes per model.")
    parser.add_argument("--accels", type=int, nargs="+", default=[4, 8])
    parser.add_argument("--models", nargs="+", default=["unet", "varnet"], choices=sorted(PRESETS))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "compare_methods")
    args = parser.parse_args()
    os.environ["OMP_NUM_THREADS"] = str(args.threads)
    os.environ["MKL_NUM_THREADS"] = str(args.threads)
    work = args.work
    work.mkdir(parents=True, exist_ok=True)
    paths = prepare(work, args.accels)

    rows = []
    for accel in args.accels:
        test, real = work / f"test_{accel}x", work / f"real_{accel}x"
        for name, command in (("zero-filled", ["zf-recon", "--device", "cpu"]),
                              ("CS (TV)", ["cs-recon", "--device", "cpu"])):
            sample = recon_and_score(command, test, paths["test"], work / f"r_{name}_{accel}", work)
            brain = recon_and_score(command, real, paths["real"], work / f"rr_{name}_{accel}", work)
            rows.append((name, "-", accel, sample, brain))
        for model in args.models:
            for budget in args.budgets:
                run = work / f"run_{model}_{accel}x_{budget:g}min"
                if not (run / "last.pt").exists():
                    mrirecon("train", "--train", paths["train"], "--val", paths["val"], "-o", run, "--config",
                             PRESETS[model], "--accel", accel, "--epochs", 100000, "--max-minutes", budget,
                             "--device", "cpu", "--quiet")
                command = ["unet-recon", "--checkpoint", run / "last.pt", "--device", "cpu"]
                sample = recon_and_score(command, test, paths["test"], work / f"r_{model}_{accel}_{budget:g}", work)
                brain = recon_and_score(command, real, paths["real"], work / f"rr_{model}_{accel}_{budget:g}", work)
                rows.append((model, f"{budget:g} min", accel, sample, brain))

    print(f"\nheld-out sample scans (2 volumes) and the real 4-coil brain; {args.threads} CPU threads\n")
    print("| method | training | accel | sample SSIM | sample PSNR | s/volume | real brain SSIM | real brain PSNR |")
    print("|---|---|---|---|---|---|---|---|")
    for name, budget, accel, sample, brain in rows:
        print(f"| {name} | {budget} | {accel}x | {sample['ssim']:.4f} | {sample['psnr']:.2f} | {sample['seconds']:.2f} "
              f"| {brain['ssim']:.4f} | {brain['psnr']:.2f} |")


if __name__ == "__main__":
    main()
