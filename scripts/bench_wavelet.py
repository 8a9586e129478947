"""Sweep the L1-wavelet settings of ``cs-recon`` on cases of ``bench_cs.py``'s suite: the wavelet
family and levels (``mrirecon.cs.formulations.WAVELET`` / ``WAVELET_LEVELS``), lambda, iterations,
and for ``--reg tv+wavelet`` the wavelet/TV lambda ratio and PDHG's step ratio
(``TV_WAVELET_RATIO``, ``PDHG_STEP_RATIO``). Every combination runs in this process (the module
constants set per run), on the suite's files and masks, scored as the suite scores.

Prints one row per case and setting with its SSIM, then per case and family the best lambda.
``--json FILE`` appends the rows (JSON lines). ``lam`` ``default`` is the pipeline's default.

Usage: .venv/bin/python scripts/bench_wavelet.py --cases "virtual" --waves db1,db2,db4
       --levels 4,5 --lams 0.002,0.005,0.01 [--accels 4,8] [--reg tv+wavelet --ratios 0.5,1
       --steps 10,30] [--seeds 31,32,33] [--threads 1]
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_cs  # noqa: E402


def _floats(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", required=True, help="Suite cases whose label contains any of these comma-separated texts.")
    parser.add_argument("--accels", default="4,8")
    parser.add_argument("--reg", default="wavelet", choices=("wavelet", "tv+wavelet"))
    parser.add_argument("--waves", default="db1")
    parser.add_argument("--levels", default="4")
    parser.add_argument("--lams", default="default")
    parser.add_argument("--iters", default="default")
    parser.add_argument("--ratios", default="0.5", help="tv+wavelet: wavelet lambda over TV lambda.")
    parser.add_argument("--steps", default="30", help="tv+wavelet: PDHG step ratio.")
    parser.add_argument("--seeds", default="21,22,23", help="Sample-data seeds of the suite's sample cases.")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "bench_wavelet")
    parser.add_argument("--json", type=Path, help="Append each row to this file (JSON lines).")
    args = parser.parse_args()

    import torch

    import mrirecon.cs.formulations as formulations

    torch.set_num_threads(args.threads)
    cases = bench_cs.select(bench_cs.suite(0, seeds=[int(s) for s in _floats(args.seeds)]), args.cases)
    grid = list(itertools.product(_floats(args.waves), _floats(args.levels), _floats(args.iters), _floats(args.lams),
                                  _floats(args.ratios), _floats(args.steps)))
    saved = (formulations.WAVELET, formulations.WAVELET_LEVELS, formulations.TV_WAVELET_RATIO, formulations.PDHG_STEP_RATIO)
    try:
        rows = _sweep(args, cases, grid)
    finally:
        formulations.WAVELET, formulations.WAVELET_LEVELS, formulations.TV_WAVELET_RATIO, formulations.PDHG_STEP_RATIO = saved
    print("\nbest lambda per case and setting (SSIM):")
    for line in best_lambdas(rows, args.reg == "tv+wavelet"):
        print(line)


def _sweep(args, cases, grid) -> list[dict]:
    """Every case x acceleration x setting of ``grid``: one row each (printed and appended to ``--json``)."""
    import mrirecon.cs.formulations as formulations
    from mrirecon.io import read_reconstruction
    from mrirecon.mri.masks import MaskSpec
    from mrirecon.pipelines.cs_recon import CSConfig, cs_file

    rows = []
    for case in cases:
        path = case.make(args.work)
        for accel in (int(a) for a in _floats(args.accels)):
            _, _, _, target, _ = bench_cs.undersample(path, accel)
            for wave, levels, iters, lam, ratio, step in grid:
                formulations.WAVELET, formulations.WAVELET_LEVELS = wave, int(levels)
                formulations.TV_WAVELET_RATIO, formulations.PDHG_STEP_RATIO = float(ratio), float(step)
                out = args.work / "out" / path.name
                config = CSConfig(lam=None if lam == "default" else float(lam), iters=None if iters == "default" else int(iters),
                                  reg=args.reg, device="cpu", mask=MaskSpec("random", accel), overwrite=True)
                start = time.perf_counter()
                cs_file(path, out, config)
                seconds = time.perf_counter() - start
                ssim, psnr = bench_cs.score(target, read_reconstruction(out))
                row = dict(case=f"{case.label} {accel}x", reg=args.reg, wave=wave, levels=int(levels), iters=iters, lam=lam,
                           ratio=float(ratio), step=float(step), ssim=ssim, psnr=psnr, seconds=seconds)
                rows.append(row)
                print(json.dumps(row), flush=True)
                if args.json:
                    with args.json.open("a") as f:
                        f.write(json.dumps(row) + "\n")
    return rows


def best_lambdas(rows: list[dict], tv_wavelet: bool = False) -> list[str]:
    """Per case and setting (all but lambda), the best lambda and its SSIM."""
    best: dict = {}
    for r in rows:
        key = (r["case"], r["wave"], r["levels"], r["iters"], r["ratio"], r["step"])
        if key not in best or r["ssim"] > best[key]["ssim"]:
            best[key] = r
    lines = []
    for (case, wave, levels, iters, ratio, step), r in best.items():
        extra = f" ratio {ratio} step {step}" if tv_wavelet else ""
        lines.append(f"{case}: {wave} {levels} levels, iters {iters}{extra}: lambda {r['lam']} SSIM {r['ssim']:.4f}")
    return lines


if __name__ == "__main__":
    main()
