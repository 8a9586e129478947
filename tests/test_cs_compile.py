"""``cs-recon --compile``: CUDA graphs on a GPU (parity in tests/test_gpu_parity.py), eager on a CPU."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mrirecon.io import read_reconstruction
from mrirecon.mri.masks import MaskSpec
from mrirecon.pipelines.cs_recon import CSConfig, TVCompressedSensing
from mrirecon.pipelines.runner import RunOptions, recon_file

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_compile_on_a_cpu_runs_eagerly_and_says_so(volume_factory, tmp_path: Path) -> None:
    """``--compile`` is a CUDA option: on a CPU the output is the eager one, bit for bit, with a note."""
    path = volume_factory(slices=2, coils=4)
    outputs, infos = [], []
    for compiled in (False, True):
        out = tmp_path / f"compile{compiled}" / path.name
        config = CSConfig(mask=MaskSpec("random", 4), iters=4, device="cpu", compile=compiled, maps="1")
        result = recon_file(TVCompressedSensing(config), path, out, RunOptions(mask=config.mask, device="cpu", quiet=True))
        outputs.append(read_reconstruction(out))
        infos.append(result.info["warnings"])
    np.testing.assert_array_equal(outputs[0], outputs[1])
    assert not infos[0] and any("--compile applies on CUDA only" in w for w in infos[1])


def test_compile_reaches_the_solver_with_the_devices_mode(volume_factory, tmp_path: Path, monkeypatch) -> None:
    """The mode ``COMPILE_MODES`` gives the device goes down to ADMM (recorded, then run eagerly here:
    compiling for real is tested on CUDA in tests/test_admm_lean.py and timed by bench_cs_gpu.py)."""
    from mrirecon.cs import recon
    from mrirecon.cs.admm import ADMM
    from mrirecon.pipelines import cs_recon

    seen = []

    class Recording(ADMM):
        def __init__(self, *args, compile_mode=None, **kwargs):
            seen.append(compile_mode)
            super().__init__(*args, compile_mode=None, **kwargs)

    monkeypatch.setattr(recon, "ADMM", Recording)
    monkeypatch.setitem(cs_recon.COMPILE_MODES, "cpu", "reduce-overhead")
    path = volume_factory(slices=2, coils=4)
    for compiled in (False, True):
        config = CSConfig(mask=MaskSpec("random", 4), iters=2, device="cpu", compile=compiled, maps="1")  # ADMM SENSE
        result = recon_file(TVCompressedSensing(config), path, tmp_path / f"c{compiled}" / path.name,
                            RunOptions(mask=config.mask, device="cpu", quiet=True))
        assert not result.info["warnings"]
    assert seen == [None, "reduce-overhead"]
