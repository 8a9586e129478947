"""cs-recon on a knee-sized volume (15 coils, 640x368, 35 slices) on one device: seconds per volume.

The issue's GPU target: the whole volume in under 0.5 s in-process. The volume is generated on
the benchmark's device (``sample-data --device``), one volume only. Prints one table: the
in-process pipeline time (after one warm-up run, so CUDA start-up is not counted), the whole
``mrirecon cs-recon`` process, the ADMM solve alone eager and through ``torch.compile``
(``--compile-mode``; a failure is reported, not fatal), and the SSIM of zero-filled and CS
against the target. ``--json`` also writes the numbers for ``device_check.sh``'s final table.

    python scripts/bench_cs_gpu.py --device cuda           # on a GPU machine (scripts/device_check.sh)
    python scripts/bench_cs_gpu.py --device cpu --slices 2  # a quick look on a CPU
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import torch
from rich.console import Console
from rich.table import Table

from mrirecon.cs import recon as cs_recon_module
from mrirecon.cs.admm import ADMM
from mrirecon.mri.masks import MaskSpec
from mrirecon.pipelines.cs_recon import CSConfig, cs_recon
from mrirecon.pipelines.evaluate import EvalConfig, evaluate
from mrirecon.pipelines.sample_data import SampleDataConfig, generate_sample_data
from mrirecon.pipelines.subsample import SubsampleConfig, subsample
from mrirecon.pipelines.zf_recon import ZeroFilledConfig, zf_recon


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def timed_run(files: list[Path], out: Path, config: CSConfig) -> float:
    sync(config.device)
    start = time.perf_counter()
    summary = cs_recon(files, out, config, quiet=True)
    sync(config.device)
    if not summary.ok:
        sys.exit(f"cs-recon failed: {summary.failed[0].error}")
    return time.perf_counter() - start


def admm_only(files: list[Path], root: Path, config: CSConfig, compile_mode: str | None) -> tuple[float, str]:
    """Seconds of the ADMM solves alone in one (warm) pipeline run, with ``compile_mode``."""
    seconds = [0.0]
    make_solver = cs_recon_module.make_solver

    class Timed(ADMM):
        def run(self) -> torch.Tensor:
            sync(config.device)
            start = time.perf_counter()
            x = super().run()
            sync(config.device)
            seconds[0] += time.perf_counter() - start
            return x

    def solver(problem, name, max_iter, tol, track_objective):
        return Timed(problem, max_iter=max_iter, tol=tol, track_objective=track_objective, compile_mode=compile_mode)

    cs_recon_module.make_solver = solver
    try:
        timed_run(files, root / "admm_warmup", config)  # compilation, CUDA graph capture
        seconds[0] = 0.0
        timed_run(files, root / "admm", config)
        return seconds[0], "ok"
    except Exception as exc:  # noqa: BLE001  (a benchmark row, not a crash)
        return float("nan"), f"{type(exc).__name__}: {str(exc).splitlines()[0][:120] if str(exc) else ''}"
    finally:
        cs_recon_module.make_solver = make_solver


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--slices", type=int, default=35)
    parser.add_argument("--coils", type=int, default=15)
    parser.add_argument("--accel", type=int, default=4)
    parser.add_argument("--root", type=Path, default=Path(".bench/cs_gpu"))
    parser.add_argument("--compile-mode", default="reduce-overhead", help="torch.compile mode for the ADMM row ('' skips it)")
    parser.add_argument("--json", type=Path, help="Also write the numbers here.")
    args = parser.parse_args()

    full, sub = args.root / "full", args.root / f"sub{args.accel}x"
    if not any(full.glob("*.h5")):
        generate_sample_data(
            full,
            SampleDataConfig(preset="knee", volumes=1, slices=args.slices, coils=args.coils, seed=7, device=args.device),
            quiet=True,
        )
    if not any(sub.glob("*.h5")):
        subsample([full], sub, SubsampleConfig(mask=MaskSpec("random", args.accel)), quiet=True)
    files = sorted(sub.glob("*.h5"))
    config = CSConfig(device=args.device, batch_slices=args.slices, overwrite=True)
    timed_run(files, args.root / "warmup", config)  # CUDA context, kernels, caches
    in_process = timed_run(files, args.root / "cs", config)
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "mrirecon", "cs-recon", str(files[0]), "-o", str(args.root / "cs_proc"),
         "--device", args.device, "--batch-slices", str(args.slices), "--overwrite", "--quiet"],
        check=True,
    )
    whole_process = time.perf_counter() - start
    admm_eager, _ = admm_only(files, args.root, config, None)
    admm_compiled, compiled_note = (float("nan"), "skipped")
    if args.compile_mode:
        admm_compiled, compiled_note = admm_only(files, args.root, config, args.compile_mode)
    zf_recon(files, args.root / "zf", ZeroFilledConfig(overwrite=True), quiet=True)
    target = args.root / "target"
    target.mkdir(exist_ok=True)
    link = target / files[0].name
    if not link.exists():
        link.symlink_to((full / files[0].name).resolve())
    scores = {
        name: evaluate(target, args.root / name, EvalConfig(device=args.device), quiet=True).mean["ssim"]
        for name in ("zf", "cs")
    }
    table = Table(title=f"cs-recon, knee-sized volume ({args.slices} slices, {args.coils} coils, 640x368, {args.accel}x)")
    columns = ("device", "in-process s", "whole process s", "ADMM eager s", f"ADMM compiled ({args.compile_mode}) s",
               "SSIM zero-filled", "SSIM cs")
    for col in columns:
        table.add_column(col, justify="right")
    table.add_row(args.device, f"{in_process:.2f}", f"{whole_process:.2f}", f"{admm_eager:.3f}",
                  f"{admm_compiled:.3f}" + ("" if compiled_note == "ok" else f" ({compiled_note})"),
                  f"{scores['zf']:.4f}", f"{scores['cs']:.4f}")
    Console().print(table)
    if args.json:
        args.json.write_text(json.dumps({
            "in_process_s": in_process, "whole_process_s": whole_process, "admm_eager_s": admm_eager,
            "admm_compiled_s": admm_compiled, "compiled_note": compiled_note, "ssim_zf": scores["zf"],
            "ssim_cs": scores["cs"], "slices": args.slices,
        }))


if __name__ == "__main__":
    main()
