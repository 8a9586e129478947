"""Benchmark ``mrirecon cs-recon`` against BART (``ecalib -m1`` + ``pics -R T``, and ``pics -l1``)
and SigPy (``EspiritCalib`` + ``TotalVariationRecon``) on the same undersampled slices.

Per case and acceleration (4x and 8x, fastMRI random column masks drawn exactly as ``mrirecon
subsample`` draws them; 8x keeps a 4% centre): the zero-filled SSIM; ``cs-recon`` at its defaults
with ``--reg tv`` and ``--reg wavelet`` (and ``--reg tv+wavelet`` with ``--tv-wavelet``); BART's
best TV (lambda sweep, ``-u 0.05`` and its default penalty at the best lambda) and best ``pics -l1``
(lambda sweep); optionally mrirecon's best TV over a lambda sweep (``--sweep-ours``), ``--maps
auto`` (``--maps-auto``), the wavelet default with BART's ``ecalib -m1`` maps in place of ours
(``--bart-maps``: how much of a gap the maps make), BART's outputs after ``cs-recon``'s default
hard data consistency step (``--bart-dc``: the measured samples put back and the coil images
combined by RSS, best over the same sweeps; the same output convention as ``cs-recon``) and SigPy
(``--sigpy``).
Wall time per volume of each (mrirecon: the whole process), SSIM and PSNR (fastMRI's metrics
after fastMRI's crop), and mrirecon's default TV time over BART's.

The suite (``--list`` prints it): generated sample scans, three seeds per challenge (multi- and
single-coil); every real scan in ``../shared/data/real/`` with ground truth: the 4-coil brain, the
same brain as one virtual coil (its first SVD coil: a real single-coil brain), the brain with its
field of view halved (every other phase-encode column of the fully sampled data dropped: it folds
over itself), the 7-slice 8-coil GE phantom, the single-coil GRE phantom, the 16-coil phantoms
(128 and 96) and the 2-coil GRE phantom with 2x readout oversampling; and a knee-sized timing case
(``sample-data --preset knee``, 15 coils, 640x368, a whole knee volume of 35 slices by default;
``--knee-slices 3`` for a quick run, whose whole-process times are then mostly the ~2.8 s Python and
torch start of each ``cs-recon``; 4x only). ``--cases`` runs the
cases whose label contains any of its comma-separated texts; ``--json`` appends each finished row
to a file and ``--table FILE...`` prints the table of such files, so the suite can run in pieces;
``--only tv,wavelet,bart`` runs only those columns (a column rerun after a default changed; in
``--table`` a later file's columns replace an earlier one's for the same case).
All tools run with the same thread count.

Installs BART (``apt-get install -y bart``) and SigPy (``pip install sigpy``) when missing;
neither is a runtime dependency of mrirecon.

The knee case also reports CPU time (user + system of the whole child processes) beside wall
time: on a shared machine wall time measures the other users' load as much as the tool. Both
tools run under the same OpenMP wait policy (``--wait-policy``; ``passive``, mrirecon's own
default, see ``mrirecon.openmp``; ``spin``: GNU OpenMP's default spinning for both).

Usage: .venv/bin/python scripts/bench_cs.py [--threads 2] [--knee-slices 35] [--cases brain,GE]
       [--no-knee] [--json rows.jsonl] [--work /tmp/bench_cs]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

REPO = Path(__file__).resolve().parents[1]
REAL = REPO.parent / "shared" / "data" / "real"


# --- tools -----------------------------------------------------------------------------------
def ensure_tools(sigpy: bool = True) -> None:
    """Install BART (and SigPy) when they are missing."""
    if shutil.which("bart") is None:
        subprocess.run(["apt-get", "update"], check=False, capture_output=True)
        subprocess.run(["apt-get", "install", "-y", "bart"], check=True, capture_output=True)
    if not sigpy:
        return
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
#: Sample-data seeds per challenge (the issue's examples: ``--seed 21`` multi-coil, ``--seed 22`` single-coil).
SAMPLE_SEEDS = (21, 22, 23)
#: Real scans with ground truth: (label, file stem, variant). ``aliased``: every other phase-encode
#: column dropped (half the field of view); ``virtual1``: the first SVD virtual coil (single-coil).
REAL_CASES = (
    ("real brain 4-coil", "brain_t2_4coil", None),
    ("real brain 1-coil (virtual coil)", "brain_t2_4coil", "virtual1"),
    ("real brain aliased FOV", "brain_t2_4coil", "aliased"),
    ("real GE phantom 8-coil 7 sl", "phantom_gre_8coil_7slices", None),
    ("real GRE phantom 1-coil", "phantom_gre_1coil", None),
    ("real phantom 16-coil", "phantom_16coil", None),
    ("real phantom 16-coil 96", "phantom_16coil_96_with_noise", None),
    ("real GRE phantom 2-coil os2", "phantom_gre_2coil_os2", None),
)


@dataclass
class Case:
    """One scan of the suite: ``make(work)`` writes its fully sampled fastMRI file (once) and returns the path."""

    label: str
    make: Callable[[Path], Path]
    accels: tuple[int, ...] = (4, 8)
    knee: bool = False


def _sample(challenge: str, seed: int, preset: str = "small", slices: int = 2) -> Callable[[Path], Path]:
    def make(work: Path) -> Path:
        from mrirecon.pipelines.sample_data import SampleDataConfig, generate_sample_data

        out = work / "data" / f"{preset}_{challenge}_{seed}_{slices}"
        if not out.exists():
            coils = 8 if challenge == "multicoil" and preset == "small" else None
            config = SampleDataConfig(challenge=challenge, preset=preset, volumes=1, slices=slices, coils=coils, seed=seed)
            generate_sample_data(out, config, quiet=True)
        return next(out.glob("*.h5"))

    return make


def real_variant(kspace: np.ndarray, variant: str | None) -> np.ndarray:
    """A real scan's k-space as the suite uses it (see ``REAL_CASES``)."""
    if variant == "aliased":
        return np.ascontiguousarray(kspace[..., ::2])
    if variant == "virtual1":  # the dominant coil combination of all slices: a linear, real single-coil acquisition
        coils = np.moveaxis(kspace, 1, 0).reshape(kspace.shape[1], -1)
        _, vectors = np.linalg.eigh(coils @ coils.conj().T)
        return np.einsum("c,sc...->s...", vectors[:, -1].conj(), kspace).astype(np.complex64)
    return kspace


def _real(name: str, variant: str | None, real_dir: Path) -> Callable[[Path], Path]:
    def make(work: Path) -> Path:
        from mrirecon.pipelines.convert import ConvertConfig, convert_npy

        stem = name if variant is None else f"{name}_{variant}"
        out = work / "data" / f"{stem}.h5"
        if not out.exists():
            source = real_dir / f"{name}.npy"
            if variant is not None:
                source = work / "data" / f"{stem}.npy"
                source.parent.mkdir(parents=True, exist_ok=True)
                np.save(source, real_variant(np.load(real_dir / f"{name}.npy"), variant))
            oversampling = 2 if name.endswith("_os2") else None
            convert_npy(source, out, ConvertConfig(readout_oversampling=oversampling))
        return out

    return make


def suite(knee_slices: int = 35, real_dir: Path = REAL, seeds: Sequence[int] = SAMPLE_SEEDS) -> list[Case]:
    """Every case of the suite, in table order (nothing is written until a case's ``make`` runs)."""
    cases = [Case(f"sample {challenge} seed {seed}", _sample(challenge, seed))
             for challenge in ("multicoil", "singlecoil") for seed in seeds]
    cases += [Case(label, _real(name, variant, real_dir)) for label, name, variant in REAL_CASES]
    if knee_slices:
        cases.append(Case(f"knee 15-coil ({knee_slices} sl)", _sample("multicoil", 0, "knee", knee_slices), (4,), knee=True))
    return cases


def select(cases: list[Case], patterns: str) -> list[Case]:
    """The cases whose label contains any of the comma-separated ``patterns`` (all when empty)."""
    wanted = [p.strip() for p in patterns.split(",") if p.strip()]
    return [c for c in cases if not wanted or any(p in c.label for p in wanted)]


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


def hard_dc_rss(image: np.ndarray, maps: np.ndarray, kspace: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """``cs-recon --data-consistency hard`` applied to another tool's complex ``image`` (H, W) with its
    ``maps`` (C, H, W) and the masked ``kspace`` (C, H, W): the image's scale against the data fitted by
    least squares on the measured samples (BART's ``-S`` rescales its output), then mrirecon's own steps
    (``mri.coils.data_consistent_coils``: the measured samples put back; the RSS of the coil images;
    the noise floor of ``cs.noise_floor`` where the data show noise-only readout rows, as the default)."""
    import torch

    from mrirecon.cs.noise_floor import restore_noise_floor
    from mrirecon.mri.coils import data_consistent_coils, rss
    from mrirecon.mri.fft import fft2c

    measured = torch.from_numpy(np.broadcast_to(mask.astype(bool), kspace.shape[-2:]).copy())
    pred, data = fft2c(torch.from_numpy(maps * image[None])), torch.from_numpy(kspace)
    p, y = pred[:, measured].flatten(), data[:, measured].flatten()
    alpha = torch.vdot(p, y) / torch.vdot(p, p).real.clamp(min=1e-30)
    magnitude = rss(data_consistent_coils(alpha * pred, data, measured), dim=0)
    column = torch.from_numpy(np.asarray(mask).astype(bool).reshape(-1)) if np.asarray(mask).squeeze().ndim == 1 else measured
    return restore_noise_floor(magnitude[None], data[None], column)[0][0].numpy()  # BART keeps every coil


def run_bart(kspace, calib: int, lam: float, rho: float | None, threads: int, tmp: Path, iters: int = 50, l1: bool = False,
             mask: np.ndarray | None = None):
    """ecalib -m1 + pics -R T (``l1``: pics -l1, wavelets) per slice; returns (seconds, |image| (S, H, W)),
    and with ``mask`` also the images after ``hard_dc_rss`` (S, H, W)."""
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    images, dc_images, seconds = [], [], 0.0
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
        image = read_cfl(tmp / "x").reshape(ksp.shape[0], ksp.shape[1])
        images.append(np.abs(image))
        if mask is not None:
            maps = np.transpose(read_cfl(tmp / "m").reshape(ksp.shape[0], ksp.shape[1], -1), (2, 0, 1))
            dc_images.append(hard_dc_rss(image, maps, kspace[s], mask))
    if mask is not None:
        return seconds, np.stack(images), np.stack(dc_images)
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


def bart_maps(kspace: np.ndarray, calib: int, tmp: Path, threads: int) -> Path:
    """BART's ``ecalib -m1`` maps of every slice of masked ``kspace`` (S, C, H, W), saved as a
    ``cs-recon --sens`` file ``tmp/bart_maps.npy`` (S, C, H, W). All zero where its ESPIRiT failed."""
    maps = []
    for s in range(kspace.shape[0]):
        ksp = np.transpose(kspace[s], (1, 2, 0))[:, :, None, :]
        write_cfl(tmp / "k", ksp)
        subprocess.run(["bart", "ecalib", "-m1", "-r", str(max(calib, 2)), str(tmp / "k"), str(tmp / "m")], check=True,
                       env=dict(os.environ, OMP_NUM_THREADS=str(threads)), capture_output=True)
        maps.append(np.transpose(read_cfl(tmp / "m").reshape(ksp.shape[0], ksp.shape[1], -1), (2, 0, 1)))
    np.save(tmp / "bart_maps.npy", np.stack(maps).astype(np.complex64))
    return tmp / "bart_maps.npy"


def compare_maps(path: Path, accel: int, tmp: Path, threads: int) -> str:
    """Agreement of our ESPIRiT maps with BART's ``ecalib -m1`` on the first slice: mean and
    5th percentile of ``|<S_ours, S_bart>|`` per pixel where BART's maps are non-zero (1 = same up to phase)."""
    import torch

    from mrirecon.mri.crop import center_crop
    from mrirecon.mri.espirit import espirit
    from mrirecon.mri.sensitivity import calibration_region

    kspace, mask, calib, _, _ = undersample(path, accel)
    theirs = np.load(bart_maps(kspace[:1], calib, tmp, threads))[0]
    region = calibration_region(mask, kspace.shape[-2:], calib)
    ours = espirit(center_crop(torch.from_numpy(kspace[:1]), region), kspace.shape[-2:]).maps[0].numpy()
    support = np.linalg.norm(theirs, axis=0) > 0.5
    if not support.any():
        return f"{path.name} {accel}x: BART's maps are all zero (its ESPIRiT failed on the {calib}-column calibration)"
    inner = np.abs((ours * theirs.conj()).sum(0))[support] / np.linalg.norm(theirs, axis=0)[support]
    return f"{path.name} {accel}x: |<ours, BART>| mean {inner.mean():.4f}, 5th percentile {np.percentile(inner, 5):.4f} over {support.mean():.0%} of pixels"


@dataclass
class Options:
    """What to run per case besides the defaults."""

    threads: int = 2
    tv: bool = True
    wavelet: bool = True
    tv_wavelet: bool = False
    bart: bool = True
    sigpy: bool = False
    sweep_ours: bool = False
    maps_auto: bool = False
    bart_maps: bool = False  # our wavelet default with BART's ecalib maps (--sens): how much of a gap is the maps
    bart_dc: bool = False  # BART's outputs also after cs-recon's hard data consistency (hard_dc_rss), best over the same sweeps
    repeat: int = 1  # the knee case: mrirecon's time is the median of this many whole processes
    variants: tuple[str, ...] = ()  # extra cs-recon runs, each its own column "cs-recon ARGS" (e.g. "--iters 150")


LAMS_OURS = [0.001, 0.003, 0.01, 0.03]
LAMS_BART = [0.003, 0.01, 0.03]
LAMS_BART_L1 = [0.001, 0.002, 0.005, 0.01]
LAMS_SIGPY = [0.001, 0.003, 0.01, 0.03]


def merge_rows(rows: list[dict]) -> list[dict]:
    """Rows of the same case merged in order (a later row's columns replace an earlier one's)."""
    merged: dict[str, dict] = {}
    for row in rows:
        merged.setdefault(row["case"], {}).update(row)
    return list(merged.values())


def children_cpu() -> float:
    """CPU seconds (user + system) of all finished child processes so far."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _best(best, sec: float, s: tuple[float, float], setting):
    return (sec, s, setting) if best is None or s[0] > best[1][0] else best


def run_case(case: Case, path: Path, accel: int, work: Path, opts: Options) -> dict:
    """One table row: ``{"case", "zf": (ssim, psnr), tool: (seconds, (ssim, psnr), setting), ...}``."""
    import torch

    from mrirecon.mri.zero_filled import zero_filled

    tmp = work / "bart"
    tmp.mkdir(parents=True, exist_ok=True)
    kspace, mask, calib, target, crop = undersample(path, accel)
    zf = zero_filled(torch.from_numpy(kspace if kspace.shape[1] > 1 else kspace[:, 0]), crop).numpy()
    row: dict = {"case": f"{case.label} {accel}x", "zf": score(target, zf)}
    single = kspace.shape[1] == 1
    # mrirecon: the whole process, at its defaults
    if opts.tv:
        runs = []
        for _ in range(opts.repeat if case.knee else 1):
            cpu = children_cpu()
            sec, rec = run_mrirecon(path, accel, None, work, opts.threads)
            runs.append((sec, children_cpu() - cpu))
        sec, row["mrirecon cpu"] = (float(np.median([r[i] for r in runs])) for i in (0, 1))
        row["mrirecon"] = (sec, score(target, rec), "default")
    for variant in opts.variants:
        cpu = children_cpu()
        sec, rec = run_mrirecon(path, accel, None, work, opts.threads, *variant.split())
        row[f"{VARIANT_PREFIX}{variant} cpu"] = children_cpu() - cpu
        row[f"{VARIANT_PREFIX}{variant}"] = (sec, score(target, rec), variant)
    if not case.knee:
        if opts.wavelet:
            sec, rec = run_mrirecon(path, accel, None, work, opts.threads, "--reg", "wavelet")
            row["wavelet"] = (sec, score(target, rec), "default")
        if opts.tv_wavelet:
            sec, rec = run_mrirecon(path, accel, None, work, opts.threads, "--reg", "tv+wavelet")
            row["tv+wavelet"] = (sec, score(target, rec), "default")
        if opts.sweep_ours:
            best = row.get("mrirecon")
            for lam in LAMS_OURS:
                sec, rec = run_mrirecon(path, accel, lam, work, opts.threads)
                best = _best(best, sec, score(target, rec), lam)
            row["mrirecon best"] = best
        if opts.bart_maps and not single:
            try:
                maps = bart_maps(kspace, calib, tmp, opts.threads)
            except subprocess.CalledProcessError:  # ecalib aborts on a tiny calibration region
                maps = None
            if maps is None or not np.load(maps).reshape(kspace.shape[0], -1).any(axis=1).all():
                row["wavelet bart maps"] = None  # no maps, or all zero on a slice (its ESPIRiT failed)
            else:
                sec, rec = run_mrirecon(path, accel, None, work, opts.threads, "--reg", "wavelet", "--maps", "1", "--sens", str(maps))
                row["wavelet bart maps"] = (sec, score(target, rec), "default")
        if opts.maps_auto and not single:
            sec, rec = run_mrirecon(path, accel, None, work, opts.threads, "--maps", "auto")
            row["maps auto"] = (sec, score(target, rec), "default")
    if opts.bart:
        dc_mask = mask if opts.bart_dc and not case.knee else None
        best = best_dc = None

        def bart(lam, rho, setting, l1=False):
            nonlocal best, best_dc
            out = run_bart(kspace, calib, lam, rho, opts.threads, tmp, l1=l1, mask=dc_mask)
            sec, rec = out[:2]
            if dc_mask is not None:
                best_dc = _best(best_dc, sec, score(target, crop_like_zf(out[2], crop)), setting)
            new = _best(best, sec, score(target, crop_like_zf(rec, crop)), setting)
            changed = new is not best
            best = new
            return changed

        for lam, rho in ([(0.01, 0.05)] if case.knee else [(lam, 0.05) for lam in LAMS_BART]):
            try:
                cpu = children_cpu()
                changed = bart(lam, rho, f"{lam} -u {rho}")
                cpu = children_cpu() - cpu
            except subprocess.CalledProcessError:  # e.g. ecalib aborts on a 5-column calibration
                continue
            if changed:
                row["bart cpu"] = cpu
        if not case.knee and best is not None:  # BART's default ADMM penalty at its best lambda
            lam_best = float(str(best[2]).split()[0])
            bart(lam_best, None, f"{lam_best}")
        row["bart"] = best
        if dc_mask is not None:
            row["bart dc"] = best_dc
        if not case.knee:
            best = best_dc = None
            for lam in LAMS_BART_L1:
                try:
                    bart(lam, None, f"-l1 {lam}", l1=True)
                except subprocess.CalledProcessError:
                    continue
            row["bart -l1"] = best
            if dc_mask is not None:
                row["bart -l1 dc"] = best_dc
    if opts.sigpy and not case.knee:
        best = None
        for lam in LAMS_SIGPY:
            sec, rec = run_sigpy(kspace, mask, calib, lam)
            best = _best(best, sec, score(target, crop_like_zf(rec, crop)), lam)
        row["sigpy"] = best
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--knee-slices", type=int, default=35,
                        help="Slices of the knee timing case (35: a knee volume; BART then takes ~10 min per thread count).")
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "bench_cs")
    parser.add_argument("--sigpy", action="store_true", help="Add SigPy's best TV over a lambda sweep.")
    parser.add_argument("--no-sigpy", action="store_true", help=argparse.SUPPRESS)  # SigPy is off unless --sigpy
    parser.add_argument("--sweep-ours", action="store_true", help="Add mrirecon's best TV over a lambda sweep.")
    parser.add_argument("--maps-auto", action="store_true", help="Add mrirecon's --maps auto at its defaults.")
    parser.add_argument("--bart-maps", action="store_true", help="Add mrirecon's wavelet default with BART's ecalib -m1 maps (--sens).")
    parser.add_argument("--bart-dc", action="store_true", help="Add BART's best TV and -l1 after cs-recon's hard data "
                        "consistency step (the measured samples put back, RSS), over the same sweeps: the same output convention as cs-recon's default.")
    parser.add_argument("--variant", action="append", default=[], metavar="ARGS",
                        help="Add a column: cs-recon with these extra options (e.g. '--iters 150'), on every case, "
                        "the knee timing case too. Repeatable.")
    parser.add_argument("--seeds", type=int, nargs="+", default=list(SAMPLE_SEEDS),
                        help="Seeds of the sample cases (default: the tuning seeds 21 22 23; others check the defaults on scans they were not tuned on).")
    parser.add_argument("--knee-only", action="store_true", help="Only the knee-sized timing case.")
    parser.add_argument("--no-knee", action="store_true", help="Leave out the knee-sized timing case.")
    parser.add_argument("--cases", default="", help="Only cases whose label contains any of these comma-separated texts (e.g. 'brain,GE').")
    parser.add_argument("--list", action="store_true", help="Print the suite's case labels and exit.")
    parser.add_argument("--json", type=Path, help="Append each finished row to this file (JSON lines).")
    parser.add_argument("--table", type=Path, nargs="+", help="Print the table of rows saved by --json and exit "
                        "(rows of the same case merge: a later file's columns replace an earlier one's).")
    parser.add_argument("--tv-wavelet", action="store_true", help="Add mrirecon's --reg tv+wavelet at its defaults.")
    parser.add_argument("--only", default="", help="Only these comma-separated columns: tv, wavelet, tv+wavelet, bart (zero-filled always).")
    parser.add_argument("--compare-maps", action="store_true", help="Also compare our ESPIRiT maps with BART's ecalib.")
    parser.add_argument("--repeat", type=int, default=3, help="Knee case: mrirecon's time is the median of this many runs.")
    parser.add_argument("--wait-policy", choices=("passive", "spin"), default="passive",
                        help="OMP_WAIT_POLICY for every tool: passive (mrirecon's default) or spin (GNU OpenMP's default, GOMP_SPINCOUNT=300000).")
    args = parser.parse_args()
    os.environ.pop("OMP_WAIT_POLICY", None)
    if args.wait_policy == "passive":
        os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
    else:
        os.environ["GOMP_SPINCOUNT"] = "300000"  # GNU OpenMP's default; keeps mrirecon from choosing PASSIVE
    cases = select(suite(0 if args.no_knee else args.knee_slices, seeds=args.seeds), args.cases)
    if args.knee_only:
        cases = [c for c in cases if c.knee]
    if args.list:
        print("\n".join(f"{c.label}: {', '.join(f'{a}x' for a in c.accels)}" for c in cases))
        return
    if args.table:
        print_table(merge_rows([json.loads(line) for f in args.table for line in f.read_text().splitlines() if line.strip()]))
        return
    ensure_tools(sigpy=args.sigpy)
    import torch

    torch.set_num_threads(args.threads)
    args.work.mkdir(parents=True, exist_ok=True)
    only = {c.strip() for c in args.only.split(",") if c.strip()}
    opts = Options(threads=args.threads, tv_wavelet=args.tv_wavelet, sigpy=args.sigpy, sweep_ours=args.sweep_ours,
                   maps_auto=args.maps_auto, bart_maps=args.bart_maps, bart_dc=args.bart_dc, repeat=args.repeat,
                   variants=tuple(args.variant))
    if only:
        opts.tv, opts.wavelet, opts.tv_wavelet, opts.bart = ("tv" in only, "wavelet" in only, "tv+wavelet" in only, "bart" in only)
    rows = []
    for case in cases:
        path = case.make(args.work)
        for accel in case.accels:
            row = run_case(case, path, accel, args.work, opts)
            rows.append(row)
            print_row(row, flush=True)
            if args.json:
                with args.json.open("a") as f:
                    f.write(json.dumps(row) + "\n")
    print_table(rows)
    for row in rows:
        if row.get("bart cpu") is not None and row.get("mrirecon cpu") is not None and row["case"].startswith("knee"):
            print_timing(row, args.threads, args.wait_policy)
    if args.compare_maps:
        for case in cases:
            if "multicoil" in case.label or "brain 4-coil" in case.label or "aliased" in case.label:
                for accel in (4, 8):
                    try:
                        print("ESPIRiT maps vs BART ecalib -m1:", compare_maps(case.make(args.work), accel, args.work / "bart", args.threads))
                    except subprocess.CalledProcessError:
                        print(f"ESPIRiT maps vs BART ecalib -m1: {case.label} {accel}x: BART's ecalib failed")


#: Table columns: mrirecon's default TV, wavelet and TV+wavelet (optional), its best TV over a sweep and --maps auto (optional), BART's best TV and -l1, SigPy (optional).
TOOLS = ("mrirecon", "wavelet", "tv+wavelet", "wavelet bart maps", "mrirecon best", "maps auto", "bart", "bart -l1", "bart dc",
         "bart -l1 dc", "sigpy")
#: How the columns are headed.
HEADS = {"mrirecon": "cs-recon TV default", "wavelet": "cs-recon wavelet default", "tv+wavelet": "cs-recon TV+wavelet default",
         "wavelet bart maps": "cs-recon wavelet default, BART's maps", "mrirecon best": "cs-recon TV best",
         "maps auto": "cs-recon --maps auto", "bart": "BART TV best", "bart -l1": "BART -l1 best",
         "bart dc": "BART TV best, hard DC", "bart -l1 dc": "BART -l1 best, hard DC", "sigpy": "SigPy TV best"}
#: ``--variant ARGS`` columns are keyed ``VARIANT_PREFIX + ARGS`` (their CPU seconds ``... + " cpu"``).
VARIANT_PREFIX = "cs-recon "


def variant_columns(rows: list[dict]) -> list[str]:
    """The ``--variant`` columns some row has, in the order they first appear."""
    return list(dict.fromkeys(k for row in rows for k in row if k.startswith(VARIANT_PREFIX) and not k.endswith(" cpu")))


def columns(rows: list[dict]) -> list[str]:
    """The columns some row has, in table order: ``TOOLS``, then the ``--variant`` columns."""
    return [t for t in TOOLS if any(t in row for row in rows)] + variant_columns(rows)


def print_timing(row: dict, threads: int, policy: str) -> None:
    """Wall and CPU seconds of the whole processes, mrirecon against BART (the knee case)."""
    ours, bart = row["mrirecon"][0], row["bart"][0]
    cpu_ours, cpu_bart = row["mrirecon cpu"], row["bart cpu"]
    print(f"timing {row['case']}, {threads} thread(s), OMP wait policy {policy}: mrirecon (median) {ours:.1f} s wall, {cpu_ours:.1f} s CPU; "
          f"BART {bart:.1f} s wall, {cpu_bart:.1f} s CPU; mrirecon/BART {ours / bart:.3f} wall, {cpu_ours / cpu_bart:.3f} CPU; "
          f"SSIM {row['mrirecon'][1][0]:.4f} vs BART {row['bart'][1][0]:.4f}")
    for key in variant_columns([row]):
        sec, (ssim, _), _ = row[key]
        cpu = row[f"{key} cpu"]
        print(f"timing {row['case']}, {key}: {sec:.1f} s wall, {cpu:.1f} s CPU; /BART {sec / bart:.3f} wall, "
              f"{cpu / cpu_bart:.3f} CPU; SSIM {ssim:.4f}")


def print_row(row: dict, flush: bool = False) -> None:
    parts = [f"{row['case']}: zf SSIM {row['zf'][0]:.4f} PSNR {row['zf'][1]:.2f}"]
    for tool in columns([row]):
        if row.get(tool):
            sec, (ssim, psnr), setting = row[tool]
            parts.append(f"{tool} [{setting}] {sec:.1f}s SSIM {ssim:.4f} PSNR {psnr:.2f}")
    print(" | ".join(parts), flush=flush)


def print_table(rows: list[dict]) -> None:
    """The markdown table (columns that no row has are left out) and how many rows meet the issue's targets."""
    tools = columns(rows)
    ratio = "bart" in tools
    head = "| case | zero-filled SSIM/PSNR | " + " | ".join(f"{HEADS.get(t, t)}: s, SSIM/PSNR (lam)" for t in tools) + " |"
    head += " TV time / BART's |" if ratio else ""
    print("\n" + head + "\n" + "|---" * (len(tools) + 2 + ratio) + "|")
    for row in rows:
        cells = [row["case"], f"{row['zf'][0]:.4f} / {row['zf'][1]:.2f}"]
        for tool in tools:
            if row.get(tool):
                sec, (ssim, psnr), setting = row[tool]
                cells.append(f"{sec:.1f}, {ssim:.4f} / {psnr:.2f} ({setting})")
            else:
                cells.append("-" if tool not in row else "failed")
        if ratio:
            cells.append(f"{row['mrirecon'][0] / row['bart'][0]:.2f}" if row.get("bart") and row.get("mrirecon") else "-" if "bart" not in row else "BART failed")
        print("| " + " | ".join(cells) + " |")
    for line in targets(rows):
        print(line)


def targets(rows: list[dict]) -> list[str]:
    """The issue's targets, counted over ``rows``: TV and wavelet defaults >= zero-filled + 0.02, and
    >= BART's best (TV, resp. -l1) - 0.005; each with the cases that miss it."""

    def check(name: str, tool: str, reference, margin: float) -> str | None:
        scored = [r for r in rows if r.get(tool) and reference(r) is not None]
        if not scored:
            return None
        missed = [f"{r['case']} ({r[tool][1][0]:.3f} vs {reference(r):.3f})" for r in scored if r[tool][1][0] < reference(r) + margin]
        return f"{name}: {len(scored) - len(missed)}/{len(scored)}" + (f"; missed: {', '.join(missed)}" if missed else "")

    def best(tool: str):
        return lambda r: r[tool][1][0] if r.get(tool) else None

    lines = [
        check("TV default >= zero-filled + 0.02", "mrirecon", lambda r: r["zf"][0], 0.02),
        check("wavelet default >= zero-filled + 0.02", "wavelet", lambda r: r["zf"][0], 0.02),
        check("TV+wavelet default >= zero-filled + 0.02", "tv+wavelet", lambda r: r["zf"][0], 0.02),
        check("TV default >= BART best TV - 0.005", "mrirecon", best("bart"), -0.005),
        check("wavelet default >= BART best -l1 - 0.005", "wavelet", best("bart -l1"), -0.005),
        check("TV default >= BART best TV after hard DC - 0.005", "mrirecon", best("bart dc"), -0.005),
        check("wavelet default >= BART best -l1 after hard DC - 0.005", "wavelet", best("bart -l1 dc"), -0.005),
    ]
    return [line for line in lines if line]


if __name__ == "__main__":
    main()
