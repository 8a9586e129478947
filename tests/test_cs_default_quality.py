"""``cs-recon`` at its defaults (TV, ``--maps auto``, default lambda and iterations) against zero
filling on the cheap cases of ``scripts/bench_cs.py``'s suite: every real scan with ground truth
(and the suite's variants of the brain) at 4x and 8x, and one small sample scan per challenge.

The issue's target: at least zero-filled + 0.02 SSIM. The files, masks and scores are the suite's
own (``bench_cs.Case.make``, ``undersample``, ``score``), so a row of ``bench_cs.py --only tv`` and a
case here measure the same thing. Cases covered elsewhere with default options
(``test_cs_recon.REAL_DEFAULT_CASES``: 16-coil phantom 4x, 16-coil 96 phantom 8x, aliased brain 4x)
are not repeated.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from mrirecon.io import read_reconstruction
from mrirecon.mri.masks import MaskSpec
from mrirecon.mri.zero_filled import zero_filled
from mrirecon.pipelines.cs_recon import CSConfig, cs_file

pytestmark = pytest.mark.usefixtures("one_torch_thread")

#: The issue's margin over zero filling.
MARGIN = 0.02

#: (suite label, acceleration). Measured SSIM default / zero-filled (``bench_cs.py``, 2 threads).
CASES = [
    ("sample multicoil seed 21", 4),  # 0.796 / 0.684
    ("sample multicoil seed 21", 8),  # 0.674 / 0.552
    ("sample singlecoil seed 22", 4),  # 0.639 / 0.447
    ("sample singlecoil seed 22", 8),  # 0.492 / 0.342
    ("real brain 4-coil", 4),  # 0.782 / 0.692
    ("real brain 4-coil", 8),  # 0.661 / 0.603
    ("real brain 1-coil (virtual coil)", 4),  # 0.840 / 0.655
    ("real brain 1-coil (virtual coil)", 8),  # 0.637 / 0.559
    ("real brain aliased FOV", 8),  # 0.508 / 0.475
    ("real GE phantom 8-coil 7 sl", 4),  # 0.909 / 0.743
    ("real GE phantom 8-coil 7 sl", 8),  # 0.717 / 0.634
    ("real GRE phantom 1-coil", 4),  # 0.601 / 0.579
    pytest.param(
        "real GRE phantom 1-coil", 8,  # 0.498 / 0.504: below zero filling
        marks=pytest.mark.xfail(strict=True, reason="known miss: single-coil GRE phantom at 8x scores 0.498 against "
                                "zero-filled 0.504 (SNR ~16: TV smoothing costs SSIM against its noisy target)"),
    ),
    ("real phantom 16-coil", 8),  # 0.437 / 0.386
    ("real phantom 16-coil 96", 4),  # 0.853 / 0.698
    ("real GRE phantom 2-coil os2", 4),  # 0.587 / 0.487
    ("real GRE phantom 2-coil os2", 8),  # 0.460 / 0.361
]


@pytest.fixture(scope="module")
def suite_files(bench, tmp_path_factory):
    """The suite's fully sampled files, written once per label on first use."""
    work = tmp_path_factory.mktemp("suite")
    cases = {c.label: c for c in bench.suite(knee_slices=0)}
    made: dict[str, Path] = {}

    def path(label: str) -> Path:
        if label not in made:
            made[label] = cases[label].make(work)
        return made[label]

    return path


@pytest.mark.parametrize("label, accel", CASES)
def test_default_reconstruction_beats_zero_filling_on_the_suite(bench, suite_files, tmp_path, label, accel):
    path = suite_files(label)
    kspace, _, _, target, crop = bench.undersample(path, accel)
    zf = zero_filled(torch.from_numpy(kspace if kspace.shape[1] > 1 else kspace[:, 0]), crop).numpy()
    result = cs_file(path, tmp_path / path.name, CSConfig(mask=MaskSpec("random", accel), device="cpu"))
    assert result.ok
    s_cs, s_zf = bench.score(target, read_reconstruction(tmp_path / path.name))[0], bench.score(target, zf)[0]
    assert s_cs >= s_zf + MARGIN, f"{label} {accel}x: default {s_cs:.4f}, zero-filled {s_zf:.4f}"
