"""Benchmark ``mrirecon cs-recon`` against BART (``ecalib -m1`` + ``pics -R T``, and ``pics -l1``)
and SigPy (``EspiritCalib`` + ``TotalVariationRecon``) on the same undersampled slices.

Per case: zero-filled; mrirecon's default (TV) and its best over a lambda sweep, ``--reg wavelet``
and ``--maps auto`` at their defaults; BART's best TV and best ``-l1`` over a sweep.

Cases: generated sample scans (multi- and single-coil), the real 4-coil brain, the same brain with
its field of view halved (every other phase-encode column dropped: it folds over itself), the
real 7-slice 8-coil GE phantom and the real single-coil GRE phantom, at 4x and 8x
(fastMRI random column masks, drawn exactly as ``mrirecon subsample`` draws them), plus a
knee-sized timing case (``sample-data --preset knee``, 15 coils, 640x368, a few slices). Each
tool gets a small lambda sweep (BART also ``-u 0.05``) and its best setting by SSIM is reported;
all tools run with the same thread count. Prints one table: wall time per volume, SSIM and PSNR
(fastMRI's metrics after fastMRI's crop) per tool, and mrirecon's time over BART's.

Installs BART (``apt-get install -y bart``) and SigPy (``pip install sigpy``) when missing;
neither is a runtime dependency of mrirecon.

The knee case also reports CPU time (user + system of the whole child processes) beside wall
time: on a shared machine wall time measures the other users' load as much as the tool. Both
tools run under the same OpenMP wait policy (``--wait-policy``; ``passive``, mrirecon's own
default, see ``mrirecon.openmp``; ``spin``: GNU OpenMP's default spinning for both).

Usage: .venv/bin/python scripts/bench_cs.py [--threads 2] [--knee-slices 3] [--work /tmp/bench_cs]
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
REAL = REPO.parent / "shared" / "data" / "real"


# --- tools -----------------------------------------------------------------------------------
def ensure_tools() -> None:
    """Install BART and SigPy when they are missing."""
    if shutil.which("bart") is None:
        subprocess.run(["apt-get", "update"], check=False, capture_output=True)
        subprocess.run(["apt-get", "install", "-y", "bart"], check=True, capture_output=True)
    try:
        import sigpy  # noqa: F401
    except ImportError:
        subprocess.run([sys.executable, "-m", "pip", "install", "sigpy"], check=True)


def write_cfl(stem: Path, array: np.ndarray) -> None:
    """BART's format: ``stem.hdr`` (text dims) + ``stem.cfl`` (complex64, Fortran order)."""
    dims = list(array.shape) + [1] * (16 - array.ndim)
    stem.with_suffix(".hdr").write_text("# Dimensions\n" + " ".join(map(str, dims)) + "\n")
    np.asarray(array, dtype=np.complex64).ravel(order="F").tofile(stem.with_suffix(".cfl"))


def read_cfl(stem: Path) -> np.ndarray:
    lines = stem.with_suffix(".hdr").read_text().splitlines()
    dims = [int(d) for d in lines[1].split()]
    while len(dims) > 1 and dims[-1] == 1:
        dims.pop()
    return np.fromfile(stem.with_suffix(".cfl"), dtype=np.complex64).reshape(dims, order="F")


# --- data ------------------------------------------------------------------------------------
def prepare(work: Path, knee_slices: int) -> list[tuple[str, Path]]:
    """Fully sampled fastMRI files for every case."""
    from mrirecon.pipelines.convert import ConvertConfig, convert_npy
    from mrirecon.pipelines.sample_data import SampleDataConfig, generate_sample_data

    files = []
    for challenge, coils in (("multicoil", 8), ("singlecoil", None)):
        out = work / "data" / challenge
        if not out.exists():
            generate_sample_data(out, SampleDataConfig(challenge=challenge, volumes=1, slices=2, coils=coils), quiet=True)
        files.append((f"sample {challenge}", next(out.glob("*.h5"))))
    for label, name, alias in (("real brain 4-coil", "brain_t2_4coil", False), ("real brain aliased FOV", "brain_t2_4coil", True),
                               ("real GE phantom 8-coil 7 sl", "phantom_gre_8coil_7slices", False),
                               ("real GRE phantom 1-coil", "phantom_gre_1coil", False)):
        out = work / "data" / f"{name}{'_aliased' if alias else ''}.h5"
        if not out.exists():
            source = REAL / f"{name}.npy"
            if alias:  # every other phase-encode column of the fully sampled data: half the field of view
                source = work / "data" / f"{name}_aliased.npy"
                np.save(source, np.ascontiguousarray(np.load(REAL / f"{name}.npy")[..., ::2]))
            convert_npy(source, out, ConvertConfig())
        files.append((label, out))
    if knee_slices:
        out = work / "data" / "knee"
        if not out.exists():
            generate_sample_data(out, SampleDataConfig(preset="knee", volumes=1, slices=knee_slices), quiet=True)
        files.append((f"knee 15-coil ({knee_slices} sl)", next(out.glob("*.h5"))))
    return files


def undersample(path: Path, accel: int):
    """Masked k-space (S, C, H, W), mask, calibration width, target, crop: as ``subsample`` draws them."""
    from mrirecon.io import open_volume
    from mrirecon.mri.masks import MaskSpec
    from mrirecon.pipelines.sampling import read_sampled_kspace, sampling_for

    with open_volume(path) as volume:
        sampling = sampling_for(volume, MaskSpec("random", accel), required=True)
        kspace = read_sampled_kspace(volume, sampling, 0, volume.num_slices).numpy()
        if kspace.ndim == 3:
            kspace = kspace[:, None]
        return kspace, sampling.mask, sampling.num_low_frequency, volume.read_target(), volume.recon_crop


def crop_like_zf(images: np.ndarray, crop: tuple[int, int]) -> np.ndarray:
    from mrirecon.mri.crop import center_crop, recon_crop_size

    return center_crop(images, recon_crop_size(images.shape[-2:], crop))


def score(target: np.ndarray, recon: np.ndarray) -> tuple[float, float]:
    from mrirecon.metrics import volume_metrics

    m = volume_metrics(target, recon.astype(np.float32))
    return m["ssim"], m["psnr"]


# --- runners ---------------------------------------------------------------------------------
def children_cpu() -> float:
    """CPU seconds (user + system) of all finished child processes so far."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_mrirecon(path: Path, accel: int, lam: float | None, work: Path, threads: int, *extra: str) -> tuple[float, np.ndarray]:
    from mrirecon.io import read_reconstruction

    out = work / "mrirecon"
    cmd = [sys.executable, "-m", "mrirecon", "cs-recon", str(path), "-o", str(out), "--mask", "random",
           "--accel", str(accel), "--overwrite", "-q", "--device", "cpu"]
    if lam is not None:
        cmd += ["--lam", str(lam)]
    cmd += list(extra)
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    start = time.perf_counter()
    subprocess.run(cmd, check=True, env=env)
    return time.perf_counter() - start, read_reconstruction(out / path.name)


def run_bart(kspace, calib: int, lam: float, rho: float | None, threads: int, tmp: Path, iters: int = 50, l1: bool = False):
    """ecalib -m1 + pics -R T (``l1``: pics -l1, wavelets) per slice; returns (seconds, |image| (S, H, W))."""
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    images, seconds = [], 0.0
    for s in range(kspace.shape[0]):
        ksp = np.transpose(kspace[s], (1, 2, 0))[:, :, None, :]  # (H, W, 1, C)
        write_cfl(tmp / "k", ksp)
        start = time.perf_counter()
        if kspace.shape[1] > 1:
            subprocess.run(["bart", "ecalib", "-m1", "-r", str(max(calib, 2)), str(tmp / "k"), str(tmp / "m")],
                           check=True, env=env, capture_output=True)
        else:
            subprocess.run(["bart", "ones", "4", str(ksp.shape[0]), str(ksp.shape[1]), "1", "1", str(tmp / "m")],
                           check=True, env=env, capture_output=True)
        cmd = ["bart", "pics", "-S", "-i", str(iters)] + (["-l1", "-r", str(lam)] if l1 else ["-R", f"T:3:0:{lam}"])
        if rho is not None:
            cmd += ["-u", str(rho)]
        subprocess.run(cmd + [str(tmp / "k"), str(tmp / "m"), str(tmp / "x")], check=True, env=env, capture_output=True)
        seconds += time.perf_counter() - start
        images.append(np.abs(read_cfl(tmp / "x")).reshape(ksp.shape[0], ksp.shape[1]))
    return seconds, np.stack(images)


def run_sigpy(kspace, mask, calib: int, lam: float, iters: int = 50):
    import sigpy.mri as mr
    import torch

    from mrirecon.cs.recon import reference_scale
    from mrirecon.mri.sense import sense_combine

    images, seconds = [], 0.0
    weights = np.broadcast_to(mask if mask.ndim == 2 else mask[None, :], kspace.shape[-2:]).astype(np.float32)
    for s in range(kspace.shape[0]):
        ksp = kspace[s]
        start = time.perf_counter()
        if ksp.shape[0] > 1:
            mps = mr.app.EspiritCalib(ksp, calib_width=max(calib, 4), show_pbar=False).run()
        else:
            mps = np.ones_like(ksp)
        ref = float(reference_scale(sense_combine(torch.from_numpy(ksp[None]), torch.from_numpy(mps[None]))))
        img = mr.app.TotalVariationRecon(ksp / ref, mps, lam, weights=weights, max_iter=iters, show_pbar=False).run()
        seconds += time.perf_counter() - start
        images.append(np.abs(img) * ref)
    return seconds, np.stack(images)


def compare_maps(path: Path, accel: int, tmp: Path, threads: int) -> str:
    """Agreement of our ESPIRiT maps with BART's ``ecalib -m1`` on the first slice: mean and
    5th percentile of ``|<S_ours, S_bart>|`` per pixel where BART's maps are non-zero (1 = same up to phase)."""
    import torch

    from mrirecon.mri.crop import center_crop
    from mrirecon.mri.espirit import espirit
    from mrirecon.mri.sensitivity import calibration_region

    kspace, mask, calib, _, _ = undersample(path, accel)
    ksp = np.transpose(kspace[0], (1, 2, 0))[:, :, None, :]
    write_cfl(tmp / "k", ksp)
    subprocess.run(["bart", "ecalib", "-m1", "-r", str(calib), str(tmp / "k"), str(tmp / "m")], check=True,
                   env=dict(os.environ, OMP_NUM_THREADS=str(threads)), capture_output=True)
    bart_maps = np.transpose(read_cfl(tmp / "m").reshape(ksp.shape[0], ksp.shape[1], -1), (2, 0, 1))
    region = calibration_region(mask, kspace.shape[-2:], calib)
    ours = espirit(center_crop(torch.from_numpy(kspace[:1]), region), kspace.shape[-2:]).maps[0].numpy()
    support = np.linalg.norm(bart_maps, axis=0) > 0.5
    if not support.any():
        return f"{path.name} {accel}x: BART's maps are all zero (its ESPIRiT failed on the {calib}-column calibration)"
    inner = np.abs((ours * bart_maps.conj()).sum(0))[support] / np.linalg.norm(bart_maps, axis=0)[support]
    return f"{path.name} {accel}x: |<ours, BART>| mean {inner.mean():.4f}, 5th percentile {np.percentile(inner, 5):.4f} over {support.mean():.0%} of pixels"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--knee-slices", type=int, default=3)
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "bench_cs")
    parser.add_argument("--no-sigpy", action="store_true")
    parser.add_argument("--knee-only", action="store_true", help="Only the knee-sized timing case.")
    parser.add_argument("--cases", default="", help="Only cases whose label contains this text (e.g. 'aliased').")
    parser.add_argument("--repeat", type=int, default=3, help="Knee case: mrirecon's time is the median of this many runs.")
    parser.add_argument("--wait-policy", choices=("passive", "spin"), default="passive",
                        help="OMP_WAIT_POLICY for every tool: passive (mrirecon's default) or spin (GNU OpenMP's default, GOMP_SPINCOUNT=300000).")
    args = parser.parse_args()
    os.environ.pop("OMP_WAIT_POLICY", None)
    if args.wait_policy == "passive":
        os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
    else:
        os.environ["GOMP_SPINCOUNT"] = "300000"  # GNU OpenMP's default; keeps mrirecon from choosing PASSIVE
    ensure_tools()
    import torch

    torch.set_num_threads(args.threads)
    args.work.mkdir(parents=True, exist_ok=True)
    tmp = args.work / "bart"
    tmp.mkdir(exist_ok=True)
    lams_ours = [None, 0.001, 0.003, 0.01, 0.03]
    lams_bart = [0.003, 0.01, 0.03]
    lams_bart_l1 = [0.001, 0.003, 0.01]
    lams_sigpy = [0.001, 0.003, 0.01, 0.03]
    rows = []
    for label, path in prepare(args.work, args.knee_slices):
        knee = label.startswith("knee")
        if (args.knee_only and not knee) or (args.cases and args.cases not in label):
            continue
        for accel in ([4] if knee else [4, 8]):
            kspace, mask, calib, target, crop = undersample(path, accel)
            from mrirecon.mri.zero_filled import zero_filled

            zf = zero_filled(torch.from_numpy(kspace if kspace.shape[1] > 1 else kspace[:, 0]), crop).numpy()
            row = {"case": f"{label} {accel}x", "zf": score(target, zf)}
            # mrirecon: the whole process, per lambda
            best = None
            for lam in ([None] if knee else lams_ours):
                runs = []  # the knee case: the median of --repeat whole processes, wall and CPU
                for _ in range(args.repeat if knee else 1):
                    cpu = children_cpu()
                    sec, rec = run_mrirecon(path, accel, lam, args.work, args.threads)
                    runs.append((sec, children_cpu() - cpu))
                sec, cpu = (float(np.median([r[i] for r in runs])) for i in (0, 1))
                s = score(target, rec)
                if best is None or s[0] > best[1][0]:
                    best = (sec, s, "default" if lam is None else lam)
                    row["mrirecon cpu"] = cpu
            row["mrirecon"] = best
            if not knee:
                for tool, extra in (("wavelet", ("--reg", "wavelet")), ("maps auto", ("--maps", "auto"))):
                    if tool == "maps auto" and ("1-coil" in label or "singlecoil" in label):
                        continue
                    sec, rec = run_mrirecon(path, accel, None, args.work, args.threads, *extra)
                    row[tool] = (sec, score(target, rec), "default")
            best = None
            for lam, rho in ([(0.01, 0.05)] if knee else [(lam, 0.05) for lam in lams_bart]):
                try:
                    cpu = children_cpu()
                    sec, rec = run_bart(kspace, calib, lam, rho, args.threads, tmp)
                    cpu = children_cpu() - cpu
                except subprocess.CalledProcessError:  # e.g. ecalib aborts on a 5-column calibration
                    continue
                s = score(target, crop_like_zf(rec, crop))
                if best is None or s[0] > best[1][0]:
                    best = (sec, s, f"{lam} -u {rho}")
                    row["bart cpu"] = cpu
            if not knee and best is not None:  # BART's default ADMM penalty at its best lambda
                lam_best = float(str(best[2]).split()[0])
                sec, rec = run_bart(kspace, calib, lam_best, None, args.threads, tmp)
                s = score(target, crop_like_zf(rec, crop))
                if s[0] > best[1][0]:
                    best = (sec, s, f"{lam_best}")
            row["bart"] = best
            if not knee:
                best = None
                for lam in lams_bart_l1:
                    try:
                        sec, rec = run_bart(kspace, calib, lam, None, args.threads, tmp, l1=True)
                    except subprocess.CalledProcessError:
                        continue
                    s = score(target, crop_like_zf(rec, crop))
                    if best is None or s[0] > best[1][0]:
                        best = (sec, s, f"-l1 {lam}")
                row["bart -l1"] = best
            if not args.no_sigpy and not knee:
                best = None
                for lam in lams_sigpy:
                    sec, rec = run_sigpy(kspace, mask, calib, lam)
                    s = score(target, crop_like_zf(rec, crop))
                    if best is None or s[0] > best[1][0]:
                        best = (sec, s, lam)
                row["sigpy"] = best
            rows.append(row)
            print_row(row, flush=True)
    print_table(rows)
    for row in rows:
        if row.get("bart cpu") is not None and row.get("mrirecon cpu") is not None:
            print_timing(row, args.threads, args.wait_policy)
    for label, path in [] if args.knee_only else prepare(args.work, 0):
        if ("multicoil" in label or "brain" in label) and (not args.cases or args.cases in label):
            for accel in (4, 8):
                try:
                    print("ESPIRiT maps vs BART ecalib -m1:", compare_maps(path, accel, tmp, args.threads))
                except subprocess.CalledProcessError:
                    print(f"ESPIRiT maps vs BART ecalib -m1: {label} {accel}x: BART's ecalib failed")


#: Table columns: mrirecon's best TV over the sweep (incl. its default), its wavelet and --maps auto defaults, BART's best TV and -l1, SigPy.
TOOLS = ("mrirecon", "wavelet", "maps auto", "bart", "bart -l1", "sigpy")


def print_row(row: dict, flush: bool = False) -> None:
    parts = [f"{row['case']}: zf SSIM {row['zf'][0]:.4f} PSNR {row['zf'][1]:.2f}"]
    for tool in TOOLS:
        if row.get(tool):
            sec, (ssim, psnr), setting = row[tool]
            parts.append(f"{tool} [{setting}] {sec:.1f}s SSIM {ssim:.4f} PSNR {psnr:.2f}")
    print(" | ".join(parts), flush=flush)


def print_timing(row: dict, threads: int, policy: str) -> None:
    """Wall and CPU seconds of the whole processes, mrirecon against BART (the knee case)."""
    ours, bart = row["mrirecon"][0], row["bart"][0]
    cpu_ours, cpu_bart = row["mrirecon cpu"], row["bart cpu"]
    print(f"timing {row['case']}, {threads} thread(s), OMP wait policy {policy}: mrirecon (median) {ours:.1f} s wall, {cpu_ours:.1f} s CPU; "
          f"BART {bart:.1f} s wall, {cpu_bart:.1f} s CPU; mrirecon/BART {ours / bart:.3f} wall, {cpu_ours / cpu_bart:.3f} CPU; "
          f"SSIM {row['mrirecon'][1][0]:.4f} vs BART {row['bart'][1][0]:.4f}")


def print_table(rows: list[dict]) -> None:
    head = "| case | zero-filled SSIM/PSNR | " + " | ".join(f"{t} s, SSIM/PSNR (lam)" for t in TOOLS) + " | mrirecon/BART time |"
    print("\n" + head + "\n" + "|---" * (len(TOOLS) + 3) + "|")
    for row in rows:
        cells = [row["case"], f"{row['zf'][0]:.4f} / {row['zf'][1]:.2f}"]
        for tool in TOOLS:
            if row.get(tool):
                sec, (ssim, psnr), setting = row[tool]
                cells.append(f"{sec:.1f}, {ssim:.4f} / {psnr:.2f} ({setting})")
            else:
                cells.append("-")
        cells.append(f"{row['mrirecon'][0] / row['bart'][0]:.2f}" if row.get("bart") else "BART failed")
        print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
