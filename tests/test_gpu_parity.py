"""cs-recon on CUDA against the same command on the CPU (the GPU path must work the first time it
meets a GPU): the same reconstruction to 1e-4 relative. Marked gpu; skipped without CUDA."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mrirecon.io import read_reconstruction
from mrirecon.mri.masks import MaskSpec
from mrirecon.pipelines.cs_recon import CSConfig, cs_recon

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")]


@pytest.mark.parametrize("readout", ["window", "full"])
def test_cs_recon_cuda_equals_cpu(volume_factory, tmp_path, readout):
    path = volume_factory("vol.h5", slices=3, coils=6, shape=(96, 64), recon=(48, 48))
    outputs = {}
    for device in ("cpu", "cuda"):
        config = CSConfig(device=device, mask=MaskSpec("random", 4), iters=20, full_readout=readout == "full")
        summary = cs_recon([path], tmp_path / device, config, quiet=True)
        assert summary.ok, summary.failed
        outputs[device] = read_reconstruction(tmp_path / device / "vol.h5")
    cpu, gpu = outputs["cpu"], outputs["cuda"]
    assert np.linalg.norm(gpu - cpu) / np.linalg.norm(cpu) < 1e-4
