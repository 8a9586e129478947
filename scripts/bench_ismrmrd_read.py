"""Reading an ISMRMRD file: mrirecon's bulk read vs the ismrmrd package's acquisition-by-acquisition API.

Writes the real 7-slice, 8-coil GE phantom (with the real noise scan) as ISMRMRD through the
``ismrmrd`` package, then times both ways of getting the k-space out of it and checks they agree.

    python scripts/bench_ismrmrd_read.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # the test helper that writes ISMRMRD with the ismrmrd package
REAL = ROOT.parent / "shared" / "data" / "real"


def per_acquisition(path: Path) -> np.ndarray:
    """The ismrmrd package's documented loop: one read_acquisition call per line."""
    import ismrmrd

    dataset = ismrmrd.Dataset(str(path), "dataset", create_if_needed=False)
    header = ismrmrd.xsd.CreateFromDocument(dataset.read_xml_header())
    enc = header.encoding[0]
    n = dataset.number_of_acquisitions()
    first = dataset.read_acquisition(n - 1)
    coils, samples = first.active_channels, first.number_of_samples
    slices = enc.encodingLimits.slice.maximum + 1
    kspace = np.zeros((slices, coils, samples, enc.encodedSpace.matrixSize.y), np.complex64)
    offset = enc.encodedSpace.matrixSize.y // 2 - enc.encodingLimits.kspace_encoding_step_1.center
    for i in range(n):
        acq = dataset.read_acquisition(i)
        if acq.is_flag_set(ismrmrd.ACQ_IS_NOISE_MEASUREMENT):
            continue
        kspace[acq.idx.slice, :, :, acq.idx.kspace_encode_step_1 + offset] = acq.data
    dataset.close()
    return kspace


def main() -> None:
    from ismrmrd_files import write_ismrmrd

    from mrirecon.io.ismrmrd_h5 import read_ismrmrd

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "gre7.h5"
        write_ismrmrd(path, np.load(REAL / "phantom_gre_8coil_7slices.npy"), noise=np.load(REAL / "noise_16coil_96.npy")[:8], pad=8)
        times = {}
        results = {}
        for name, read in (("mrirecon bulk", lambda: read_ismrmrd(path).kspace), ("ismrmrd per acquisition", lambda: per_acquisition(path))):
            best = float("inf")
            for _ in range(args.repeats):
                start = time.perf_counter()
                results[name] = read()
                best = min(best, time.perf_counter() - start)
            times[name] = best
        assert np.array_equal(results["mrirecon bulk"], results["ismrmrd per acquisition"]), "the two reads disagree"
    base = times["mrirecon bulk"]
    print(f"{'reader':<26}{'seconds (best of ' + str(args.repeats) + ')':>26}{'x bulk':>10}")
    for name, seconds in times.items():
        print(f"{name:<26}{seconds:>26.3f}{seconds / base:>10.1f}")


if __name__ == "__main__":
    main()
