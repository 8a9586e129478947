"""Regression benchmark for ESPIRiT's eigen step on knee-sized calibration data, 1 and 2 threads.

The calibration Gram matrices of a knee scan (15 coils compressed to the virtual coils holding
99% of the energy, 6x6 kernel: about 324x324) are decomposed four ways, each with 1 and then 2
torch threads, in one run:

- ``eigh threaded``: plain ``torch.linalg.eigh`` (MKL's threaded ``heevd``): what ESPIRiT did;
- ``eigh flush-denormal``: the same after ``torch.set_flush_denormal(True)`` (the first guess at
  the cause: if denormals were it, this would be fast);
- ``eigh unit-scaled``: the same on matrices divided by their trace (the other guess: scale);
- ``hermitian_eigh``: ``mrirecon.mri.eigen.hermitian_eigh`` (one thread inside; what ESPIRiT does now);
- ``matmul projector``: ``spectral_projector`` (batched products only; the GPU path).

Prints the median and worst of ``--repeat`` runs and the ratio to ``hermitian_eigh``, and the map
agreement of the two ESPIRiT subspace methods. Numbers on a shared machine vary with its load:
the point is the ratio measured in the same minute.

    python scripts/bench_eigh.py [--slices 4] [--repeat 5] [--work /tmp/bench_eigh]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch


def calibration_grams(work: Path, slices: int) -> tuple[torch.Tensor, torch.Tensor, tuple[int, int]]:
    """Compressed calibration k-space ``(S, C, h, w)``, its Gram matrices, and the image size."""
    from mrirecon.io import open_volume
    from mrirecon.mri.coil_compression import compress, compression_matrix
    from mrirecon.mri.crop import center_crop
    from mrirecon.mri.espirit import calibration_patches
    from mrirecon.mri.masks import MaskSpec
    from mrirecon.mri.sensitivity import calibration_region
    from mrirecon.pipelines.sample_data import SampleDataConfig, generate_sample_data
    from mrirecon.pipelines.sampling import read_sampled_kspace, sampling_for

    folder = work / f"knee{slices}"
    if not any(folder.glob("*.h5")):
        generate_sample_data(folder, SampleDataConfig(preset="knee", volumes=1, slices=slices), quiet=True)
    with open_volume(next(folder.glob("*.h5"))) as volume:
        sampling = sampling_for(volume, MaskSpec("random", 4), required=True)
        kspace = read_sampled_kspace(volume, sampling, 0, volume.num_slices)
        hw = tuple(kspace.shape[-2:])
        calib = calibration_region(sampling.mask, hw, sampling.num_low_frequency)
    kspace = compress(kspace, compression_matrix(kspace, calib, 0.99))
    acs = center_crop(kspace, calib)
    patches = calibration_patches(acs, (6, 6))
    return acs, patches.transpose(1, 2) @ patches.conj(), hw


def timed(fn, repeat: int) -> tuple[float, float]:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), max(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--slices", type=int, default=4)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "bench_eigh")
    args = parser.parse_args()
    from mrirecon.mri.eigen import hermitian_eigh, spectral_projector
    from mrirecon.mri.espirit import espirit

    acs, gram, hw = calibration_grams(args.work, args.slices)
    unit = gram / gram.diagonal(dim1=1, dim2=2).real.sum(-1)[:, None, None]

    def flushed():
        torch.set_flush_denormal(True)
        try:
            torch.linalg.eigh(gram)
        finally:
            torch.set_flush_denormal(False)

    cases = {
        "eigh threaded": lambda: torch.linalg.eigh(gram),
        "eigh flush-denormal": flushed,
        "eigh unit-scaled": lambda: torch.linalg.eigh(unit),
        "hermitian_eigh": lambda: hermitian_eigh(gram),
        "matmul projector": lambda: spectral_projector(gram, 0.02**2),
    }
    print(f"{gram.shape[0]} Gram matrices {tuple(gram.shape[1:])}, {args.repeat} runs each")
    rows = {}
    for threads in (1, 2):
        torch.set_num_threads(threads)
        for name, fn in cases.items():
            fn()  # warm-up
            rows[(name, threads)] = timed(fn, args.repeat)
    print("\n| method | 1 thread median / worst (s) | 2 threads median / worst (s) | 2 threads / hermitian_eigh (median) |")
    print("|---|---|---|---|")
    base = rows[("hermitian_eigh", 2)][0]
    for name in cases:
        one, two = rows[(name, 1)], rows[(name, 2)]
        print(f"| {name} | {one[0]:.3f} / {one[1]:.3f} | {two[0]:.3f} / {two[1]:.3f} | {two[0] / base:.1f} |")
    by_eigh = espirit(acs, hw, subspace="eigh")
    by_products = espirit(acs, hw, subspace="matmul")
    inner = (by_eigh.maps.conj() * by_products.maps).sum(dim=1).abs()
    print(f"\nESPIRiT maps, matmul vs eigh subspace: mean |<.,.>| {float(inner.mean()):.6f}, min {float(inner.min()):.6f}; "
          f"ranks {by_eigh.rank.tolist()} vs {by_products.rank.tolist()}")


if __name__ == "__main__":
    main()
