"""Batch-layer benchmark: runner overhead, 1 vs 2 shards, resident memory over a long batch.

    PYTHONPATH=. python scripts/bench_batch.py [--root /tmp/bench_batch] [--files 200] [--repeats 3]

1. Overhead: ``run_recon`` (inputs, plan, shard, options hash, output check, manifest, signal
   handlers, atomic write) against a plain loop that calls the same method on the same chunks and
   writes the result with the same writer, on one knee-sized volume (35 slices, 15 coils, 640x368,
   random k-space: the cost is in the data size, not its content). Zero-filled is the method: it is
   the cheapest, so the runner's share is largest there. Target: <= 5%.
2. Throughput: a batch of small CS reconstructions as one process with 1 and with 2 threads
   against two shard processes (``--shard 0/2`` and ``1/2``) with 1 thread each, whole-process
   wall time.
3. Memory: resident set size (RSS) while one process runs zero-filled over ``--files`` small files.

Prints one table; all numbers are from this run.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mrirecon.io.fastmri_h5 import open_volume, write_reconstruction, write_volume  # noqa: E402
from mrirecon.mri.crop import center_crop, recon_crop_size  # noqa: E402
from mrirecon.mri.masks import MaskSpec  # noqa: E402
from mrirecon.pipelines.runner import RunOptions, recon_attrs, run_recon  # noqa: E402
from mrirecon.pipelines.sampling import sampling_for  # noqa: E402
from mrirecon.pipelines.zf_recon import ZeroFilled  # noqa: E402

HEADER = (
    '<?xml version="1.0"?><ismrmrdHeader xmlns="http://www.ismrm.org/ISMRMRD"><encoding>'
    "<encodedSpace><matrixSize><x>{h}</x><y>{w}</y><z>1</z></matrixSize></encodedSpace>"
    "<reconSpace><matrixSize><x>{rh}</x><y>{rw}</y><z>1</z></matrixSize></reconSpace>"
    "<encodingLimits><kspace_encoding_step_1><minimum>0</minimum><maximum>{wm}</maximum><center>{wc}</center>"
    "</kspace_encoding_step_1></encodingLimits></encoding></ismrmrdHeader>"
)


def write_random_volume(path: Path, slices: int, coils: int, h: int, w: int, recon: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    kspace = (rng.standard_normal((slices, coils, h, w), dtype=np.float32)
              + 1j * rng.standard_normal((slices, coils, h, w), dtype=np.float32)).astype(np.complex64)
    header = HEADER.format(h=h, w=w, rh=recon, rw=recon, wm=w - 1, wc=w // 2).encode()
    write_volume(path, kspace, header_xml=header, attrs={"acquisition": "CORPD_FBK"}, overwrite=True)


def rss_mb() -> float:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def plain_loop(path: Path, out: Path, mask: MaskSpec, batch: int) -> None:
    """The same method on the same chunks, without the runner: what a hand-written script does."""
    method = ZeroFilled()
    device = torch.device("cpu")
    with open_volume(path) as volume:
        sampling = sampling_for(volume, mask, required=False)
        job = method.begin(volume, sampling, device)
        weights = sampling.as_tensor(4).to(torch.float32)
        parts = []
        with torch.no_grad():
            for start in range(0, volume.num_slices, batch):
                stop = min(start + batch, volume.num_slices)
                kspace = torch.from_numpy(volume.read_kspace(start, stop)) * weights
                image = job.reconstruct(kspace, start, stop)
                parts.append(center_crop(image, recon_crop_size(tuple(image.shape[-2:]), volume.recon_crop)))
        recon = torch.cat(parts).numpy().astype(np.float32)
        write_reconstruction(out, recon, attrs=recon_attrs(volume.attrs, sampling.acceleration, method.name),
                             overwrite=True)


def overhead(root: Path, repeats: int) -> tuple[float, float]:
    knee = root / "knee" / "knee.h5"
    knee.parent.mkdir(parents=True, exist_ok=True)
    if not knee.exists():
        write_random_volume(knee, 35, 15, 640, 368, 320, seed=0)
    mask = MaskSpec("random", 4)
    plain, runner = [], []
    for i in range(repeats + 1):  # the first round warms the page cache and torch
        t0 = time.perf_counter()
        plain_loop(knee, root / "plain.h5", mask, 16)
        t1 = time.perf_counter()
        shutil.rmtree(root / "runner", ignore_errors=True)
        run_recon("zf-recon", ZeroFilled(), [knee], root / "runner",
                  RunOptions(mask=mask, device="cpu", batch_slices=16, quiet=True))
        t2 = time.perf_counter()
        if i:
            plain.append(t1 - t0)
            runner.append(t2 - t1)
    same = np.array_equal(np.asarray(__import__("h5py").File(root / "plain.h5")["reconstruction"]),
                          np.asarray(__import__("h5py").File(root / "runner" / "knee.h5")["reconstruction"]))
    assert same, "the runner and the plain loop disagree"
    return min(plain), min(runner)  # the least disturbed run of each: this machine is shared


def throughput(root: Path, files: int) -> tuple[float, float, float]:
    small = root / "small_cs"
    small.mkdir(parents=True, exist_ok=True)
    for i in range(files):
        if not (small / f"s{i:03d}.h5").exists():
            write_random_volume(small / f"s{i:03d}.h5", 4, 4, 128, 96, 64, seed=i)
    cmd = [sys.executable, "-m", "mrirecon", "cs-recon", str(small), "--accel", "4", "--iters", "20", "--device", "cpu",
           "-q", "--overwrite"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    one = []
    for threads in ("1", "2"):
        t0 = time.perf_counter()
        subprocess.run([*cmd, "-o", str(root / f"one{threads}")], env={**env, "OMP_NUM_THREADS": threads}, check=True)
        one.append(time.perf_counter() - t0)
    t0 = time.perf_counter()
    procs = [subprocess.Popen([*cmd, "-o", str(root / "two"), "--shard", f"{i}/2"], env={**env, "OMP_NUM_THREADS": "1"})
             for i in range(2)]
    assert all(p.wait() == 0 for p in procs)
    two = time.perf_counter() - t0
    return files / one[0], files / one[1], files / two


class Sampled(ZeroFilled):
    """Zero-filled, recording the process's RSS at the start of every file."""

    def __init__(self) -> None:
        self.rss: list[float] = []

    def begin(self, volume, sampling, device):
        self.rss.append(rss_mb())
        return super().begin(volume, sampling, device)


def memory(root: Path, files: int) -> list[float]:
    from mrirecon import allocator

    allocator.keep_freed_memory()  # as the command line does (kept freed memory is part of its RSS)
    folder = root / "many"
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(files):
        if not (folder / f"m{i:03d}.h5").exists():
            write_random_volume(folder / f"m{i:03d}.h5", 4, 4, 128, 96, 64, seed=i)
    method = Sampled()
    shutil.rmtree(root / "many_out", ignore_errors=True)
    run_recon("zf-recon", method, [folder], root / "many_out", RunOptions(device="cpu", quiet=True))
    return method.rss


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=Path("/tmp/bench_batch"))
    parser.add_argument("--files", type=int, default=200, help="small files for the memory run")
    parser.add_argument("--shard-files", type=int, default=16, help="small CS files for the throughput run")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--keep", action="store_true", help="keep the generated files")
    args = parser.parse_args()
    args.root.mkdir(parents=True, exist_ok=True)
    try:
        plain, runner = overhead(args.root, args.repeats)
        one1, one2, two = throughput(args.root, args.shard_files)
        rss = memory(args.root, args.files)
    finally:
        if not args.keep:
            shutil.rmtree(args.root, ignore_errors=True)
    tenth = rss[min(9, len(rss) - 1)]
    print(f"torch {torch.__version__}, {os.cpu_count()} CPUs")
    print(f"| measure | value |\n|---|---|")
    print(f"| knee volume, zero-filled: plain loop (best of {args.repeats}) | {plain:.2f} s |")
    print(f"| same through the runner | {runner:.2f} s |")
    print(f"| runner overhead | {100 * (runner / plain - 1):+.1f}% |")
    print(f"| {args.shard_files} small CS files: 1 process x 1 thread | {one1:.2f} files/s |")
    print(f"| same, 1 process x 2 threads | {one2:.2f} files/s ({one2 / one1:.2f}x) |")
    print(f"| same, 2 shard processes x 1 thread | {two:.2f} files/s ({two / one1:.2f}x) |")
    print(f"| RSS over {len(rss)} files: at file 10 / {len(rss) // 2} / {len(rss)} | "
          f"{tenth:.0f} / {rss[len(rss) // 2 - 1]:.0f} / {rss[-1]:.0f} MB (growth after file 10: {rss[-1] - tenth:+.1f} MB) |")


if __name__ == "__main__":
    main()
