"""Zero filling against ``cs-recon``'s defaults with ``--maps 1`` and ``--maps auto`` (the
default), per case of ``scripts/bench_cs.py``'s suite (no knee), at 4x and 8x: SSIM, wall time, and per slice the formulation ``--maps auto``
chose with its calibration test value (``map_misfit``) and ESPIRiT's weak flag.

``--lam``: instead, the fixed per-acceleration lambda (``--lam`` with that number) against a rule of
``mrirecon.cs.lambda_choice`` (``--rule auto``, the default: noise-scaled; ``--rule discrepancy``),
both with ``--maps auto``: SSIM, wall time and the rule's time over the fixed lambda's, and the
lambdas it chose per slice (``--reg wavelet`` for the wavelet defaults). ``--add-noise K``: on
noisier copies of the multi-coil scans (complex white noise of K times the scan's own per-coil
k-space noise level, estimated as ``cs-recon`` estimates it, seeded; the target recomputed from
the noisy data as fastMRI's RSS), scans noisier than any the defaults were tuned on.

``--floor``: instead, zero filling, ``cs-recon --no-noise-floor`` and the default (which restores the
reference's noise floor where the data show noise-only readout rows, ``mrirecon.cs.noise_floor``)
per case, with the floor per slice (``-``: none measured, so none added); ``--reg`` and
``--add-noise`` as with ``--lam``.

Runs in-process (``mrirecon.pipelines.cs_recon.cs_file``), same masks as ``subsample``.
Usage: .venv/bin/python scripts/bench_cs_choice.py [--threads 2] [--cases brain,alias] [--work DIR] [--lam [--rule discrepancy] | --floor] [--reg wavelet] [--add-noise 3]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_cs  # noqa: E402  (its suite's files, masks and scoring)

def run(path: Path, accel: int, work: Path, maps: str, lam: str | None = None, reg: str = "tv", noise_floor: bool = True):
    from mrirecon.io import read_reconstruction
    from mrirecon.mri.masks import MaskSpec
    from mrirecon.pipelines.cs_recon import CSConfig, cs_file

    out = work / "choice" / f"{path.stem}_{accel}_{maps}_{lam}_{reg}_{noise_floor}.h5"
    out.parent.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    result = cs_file(path, out, CSConfig(mask=MaskSpec("random", accel), device="cpu", overwrite=True, maps=maps, lam=lam, reg=reg,
                                          noise_floor=noise_floor))
    if not result.ok:
        raise RuntimeError(result.error)
    return time.perf_counter() - start, read_reconstruction(out), result.info


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "bench_cs")
    parser.add_argument("--seeds", type=int, nargs="+", default=None,
                        help="Sample-scan seeds (default: the suite's 21 22 23; others check the defaults on scans they were not tuned on).")
    parser.add_argument("--cases", default="", help="Comma-separated texts: only cases whose label contains one (as bench_cs.py --cases).")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--lam", action="store_true", help="The fixed per-acceleration lambda against a rule (--rule; see the module docstring).")
    mode.add_argument("--floor", action="store_true", help="--no-noise-floor against the default (see the module docstring).")
    parser.add_argument("--reg", default="tv", help="With --lam or --floor: the regulariser (tv, wavelet or tv+wavelet).")
    parser.add_argument("--add-noise", type=float, default=0.0, metavar="K",
                        help="With --lam or --floor: multi-coil scans only, with K times their own k-space noise added (see the module docstring).")
    parser.add_argument("--rule", default="auto", choices=("auto", "discrepancy"), help="With --lam: the rule against the fixed lambda.")
    args = parser.parse_args()
    import torch

    from mrirecon.mri.zero_filled import zero_filled

    torch.set_num_threads(args.threads)
    if args.lam:
        return compare_lambda(args)
    if args.floor:
        return compare_floor(args)
    print("| case | zero-filled | --maps 1 (s) | --maps auto (s) | auto - zf | auto's choice per slice (misfit, weak) |")
    print("|---|---|---|---|---|---|")
    for case in bench_cs.select(bench_cs.suite(knee_slices=0, **({} if args.seeds is None else {"seeds": args.seeds})), args.cases):
        label, path = case.label, case.make(args.work)
        for accel in (4, 8):
            kspace, _, _, target, crop = bench_cs.undersample(path, accel)
            multicoil = kspace.shape[1] > 1
            zf = zero_filled(torch.from_numpy(kspace if multicoil else kspace[:, 0]), crop).numpy()
            zf_ssim = bench_cs.score(target, zf)[0]
            cells, auto_ssim, choice = [], None, "single coil"
            for maps in ("1", "auto") if multicoil else ("1",):
                sec, rec, info = run(path, accel, args.work, maps)
                ssim = bench_cs.score(target, np.asarray(rec))[0]
                cells.append(f"{ssim:.4f} ({sec:.1f})")
                if maps == "auto" or not multicoil:
                    auto_ssim = ssim
                if maps == "auto":
                    choice = ", ".join(f"{s['formulation']} ({s.get('map_misfit', '-')}, {s.get('weak_maps', '-')})"
                                       for s in info["slices"])
            if not multicoil:
                cells.append(cells[0])
            print(f"| {label} {accel}x | {zf_ssim:.4f} | {cells[0]} | {cells[1]} | {auto_ssim - zf_ssim:+.4f} | {choice} |", flush=True)


def noisy_copy(path: Path, factor: float, work: Path) -> Path:
    """A copy of the fully sampled multi-coil ``path`` with ``factor`` times its own per-coil k-space
    noise added (seed 7) and its RSS target recomputed from the noisy k-space."""
    import math
    import shutil

    import h5py
    import torch

    from mrirecon.cs.lambda_choice import noise_variance
    from mrirecon.io.fastmri_h5 import TARGET_KEYS
    from mrirecon.mri.zero_filled import zero_filled

    out = work / "noisy" / f"{path.stem}_noise{factor:g}.h5"
    out.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(path, out)
    with h5py.File(out, "r+") as h5:
        kspace = h5["kspace"][()]
        everything = torch.ones(kspace.shape[-1])
        sigma = math.sqrt(float(noise_variance(torch.from_numpy(kspace), everything).variance.mean()) / kspace.shape[1])
        rng = np.random.default_rng(7)
        noise = (rng.standard_normal(kspace.shape) + 1j * rng.standard_normal(kspace.shape)) * (factor * sigma / math.sqrt(2))
        kspace = (kspace + noise).astype(kspace.dtype)
        h5["kspace"][...] = kspace
        target = h5[TARGET_KEYS["multicoil"]]
        target[...] = zero_filled(torch.from_numpy(kspace), tuple(target.shape[-2:])).numpy()
    return out


def scans(args):
    """The selected suite cases' files (noisier multi-coil copies with ``--add-noise``), with their labels."""
    import h5py

    for case in bench_cs.select(bench_cs.suite(knee_slices=0, **({} if args.seeds is None else {"seeds": args.seeds})), args.cases):
        path = case.make(args.work)
        if args.add_noise:
            with h5py.File(path, "r") as h5:
                shape = h5["kspace"].shape
            if len(shape) != 4 or shape[1] < 2:
                continue  # multi-coil only
            path = noisy_copy(path, args.add_noise, args.work)
        yield case.label + (f", noise x{args.add_noise:g}" if args.add_noise else ""), path


def rows(args):
    """Per selected scan and acceleration: (label, path, acceleration, multi-coil, target, zero-filled SSIM)."""
    import torch

    from mrirecon.mri.zero_filled import zero_filled

    for label, path in scans(args):
        for accel in (4, 8):
            kspace, _, _, target, crop = bench_cs.undersample(path, accel)
            multicoil = kspace.shape[1] > 1
            zf = bench_cs.score(target, zero_filled(torch.from_numpy(kspace if multicoil else kspace[:, 0]), crop).numpy())[0]
            yield label, path, accel, multicoil, target, zf


def compare_floor(args) -> None:
    """Zero filling, ``--no-noise-floor`` and the default per case (``--floor``)."""
    print(f"| case ({args.reg}) | zero-filled | --no-noise-floor | default (floor) | floor - none | default - zf | floor per slice |")
    print("|---|---|---|---|---|---|---|")
    gains = []
    for label, path, accel, _, target, zf in rows(args):
        _, plain_rec, _ = run(path, accel, args.work, "auto", None, args.reg, noise_floor=False)
        _, rec, info = run(path, accel, args.work, "auto", None, args.reg)
        plain, floor = bench_cs.score(target, np.asarray(plain_rec))[0], bench_cs.score(target, np.asarray(rec))[0]
        gains.append(floor - plain)
        floors = ", ".join("-" if s["noise_floor"] is None else f"{s['noise_floor']:.3g}" for s in info["slices"])
        print(f"| {label} {accel}x | {zf:.4f} | {plain:.4f} | {floor:.4f} | {floor - plain:+.4f} | {floor - zf:+.4f} | {floors} |", flush=True)
    if gains:
        print(f"\nmean floor - none: {np.mean(gains):+.4f} over {len(gains)} rows, lowest {min(gains):+.4f}")


def compare_lambda(args) -> None:
    """Zero filling, the fixed per-acceleration lambda and ``--lam RULE`` per case (``--lam``)."""
    from mrirecon.pipelines.cs_recon import default_parameters

    print(f"| case ({args.reg}) | zero-filled | fixed lambda (s) | --lam {args.rule} (s) | rule - fixed | rule - zf | time ratio | the rule's lambda per slice |")
    print("|---|---|---|---|---|---|---|---|")
    gains = []
    for label, path, accel, multicoil, target, zf in rows(args):
        fixed_lam = default_parameters(accel, multicoil, args.reg)[0]
        sec_d, rec_d, _ = run(path, accel, args.work, "auto", str(fixed_lam), args.reg)
        sec_a, rec_a, info = run(path, accel, args.work, "auto", args.rule, args.reg)
        fixed, auto = bench_cs.score(target, np.asarray(rec_d))[0], bench_cs.score(target, np.asarray(rec_a))[0]
        gains.append(auto - fixed)
        lams = ", ".join(f"{s['lambda']:.4g}" for s in info["slices"])
        print(f"| {label} {accel}x | {zf:.4f} | {fixed:.4f} ({sec_d:.1f}) | {auto:.4f} ({sec_a:.1f}) | {auto - fixed:+.4f} "
              f"| {auto - zf:+.4f} | {sec_a / sec_d:.2f} | {lams} |", flush=True)
    if gains:
        print(f"\nmean {args.rule} - fixed: {np.mean(gains):+.4f} over {len(gains)} rows")


if __name__ == "__main__":
    main()
