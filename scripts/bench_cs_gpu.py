"""cs-recon on a knee-sized volume (15 coils, 640x368, 35 slices) on one device: seconds per volume.

The issue's GPU target: the whole volume in under 2 seconds. Prints one table: the in-process
pipeline time (after one warm-up volume, so CUDA start-up is not counted), the whole
``mrirecon cs-recon`` process, and the SSIM of zero-filled and CS against the target.

    python scripts/bench_cs_gpu.py --device cuda           # on a GPU machine (scripts/device_check.sh)
    python scripts/bench_cs_gpu.py --device cpu --slices 2  # a quick look on a CPU
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from mrirecon.mri.masks import MaskSpec
from mrirecon.pipelines.cs_recon import CSConfig, cs_recon
from mrirecon.pipelines.evaluate import EvalConfig, evaluate
from mrirecon.pipelines.sample_data import SampleDataConfig, generate_sample_data
from mrirecon.pipelines.subsample import SubsampleConfig, subsample
from mrirecon.pipelines.zf_recon import ZeroFilledConfig, zf_recon


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--slices", type=int, default=35)
    parser.add_argument("--coils", type=int, default=15)
    parser.add_argument("--accel", type=int, default=4)
    parser.add_argument("--root", type=Path, default=Path(".bench/cs_gpu"))
    args = parser.parse_args()

    full, sub = args.root / "full", args.root / f"sub{args.accel}x"
    if not any(full.glob("*.h5")):
        generate_sample_data(
            full,
            SampleDataConfig(preset="knee", volumes=2, slices=args.slices, coils=args.coils, seed=7),
            quiet=True,
        )
    if not any(sub.glob("*.h5")):
        subsample([full], sub, SubsampleConfig(mask=MaskSpec("random", args.accel)), quiet=True)
    files = sorted(sub.glob("*.h5"))
    config = CSConfig(device=args.device, batch_slices=args.slices, overwrite=True)
    cs_recon([files[0]], args.root / "warmup", config, quiet=True)  # CUDA context, kernels, caches
    start = time.perf_counter()
    summary = cs_recon([files[1]], args.root / "cs", config, quiet=True)
    in_process = time.perf_counter() - start
    if not summary.ok:
        sys.exit(f"cs-recon failed: {summary.failed[0].error}")
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "mrirecon", "cs-recon", str(files[1]), "-o", str(args.root / "cs_proc"),
         "--device", args.device, "--batch-slices", str(args.slices), "--overwrite", "--quiet"],
        check=True,
    )
    whole_process = time.perf_counter() - start
    zf_recon([files[1]], args.root / "zf", ZeroFilledConfig(overwrite=True), quiet=True)
    target = args.root / "target"
    target.mkdir(exist_ok=True)
    link = target / files[1].name
    if not link.exists():
        link.symlink_to((full / files[1].name).resolve())
    scores = {
        name: evaluate(target, args.root / name, EvalConfig(device=args.device), quiet=True).mean["ssim"]
        for name in ("zf", "cs")
    }
    table = Table(title=f"cs-recon, knee-sized volume ({args.slices} slices, {args.coils} coils, 640x368, {args.accel}x)")
    for col in ("device", "in-process s", "whole process s", "SSIM zero-filled", "SSIM cs"):
        table.add_column(col, justify="right")
    table.add_row(args.device, f"{in_process:.2f}", f"{whole_process:.2f}", f"{scores['zf']:.4f}", f"{scores['cs']:.4f}")
    Console().print(table)


if __name__ == "__main__":
    main()
