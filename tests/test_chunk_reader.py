"""The recon runner's input path: slice chunks into reused buffers, read ahead, checked on the device."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from mrirecon.io import read_reconstruction
from mrirecon.io.errors import InputError
from mrirecon.io.fastmri_h5 import open_volume
from mrirecon.mri.masks import MaskSpec
from mrirecon.pipelines.chunk_reader import ChunkReader
from mrirecon.pipelines.cs_recon import CSConfig, TVCompressedSensing
from mrirecon.pipelines.runner import RunOptions, recon_file

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_chunks_equal_the_file_in_any_order_of_requests(volume_factory) -> None:
    """Every request returns exactly the file's slices, whether it is the chunk read ahead, a
    smaller one after a halving (the read ahead is dropped), or the end of the volume."""
    path = volume_factory(slices=7, coils=3, shape=(16, 12), recon=(8, 8))
    with open_volume(path) as volume:
        full = volume.read_kspace()
        with ChunkReader(volume, torch.device("cpu")) as reader:
            for start, stop in [(0, 3), (3, 6), (3, 4), (4, 5), (5, 7), (0, 7), (6, 7)]:
                got = reader.read(start, stop)
                assert got.dtype == torch.complex64
                np.testing.assert_array_equal(got.numpy(), full[start:stop])
                got.zero_()  # the caller may write into its chunk (the runner masks in place)


def test_buffers_are_reused(volume_factory) -> None:
    path = volume_factory(slices=6, coils=2, shape=(16, 12), recon=(8, 8))
    with open_volume(path) as volume, ChunkReader(volume, torch.device("cpu")) as reader:
        addresses = {reader.read(start, start + 2).data_ptr() for start in (0, 2, 4, 0, 2, 4)}
    assert len(addresses) == 2, "two host buffers, alternating: no allocation per chunk"


@pytest.mark.parametrize("batch", [2, 3])
def test_cs_output_is_identical_with_and_without_read_ahead(volume_factory, tmp_path: Path, batch: int) -> None:
    path = volume_factory(slices=5, coils=4)
    config = CSConfig(mask=MaskSpec("random", 4), iters=3, device="cpu")
    outputs = []
    for ahead in (True, False):
        out = tmp_path / f"ahead{ahead}" / path.name
        options = RunOptions(mask=config.mask, device="cpu", batch_slices=batch, read_ahead=ahead, quiet=True)
        recon_file(TVCompressedSensing(config), path, out, options)
        outputs.append(read_reconstruction(out))
    np.testing.assert_array_equal(outputs[0], outputs[1])


@pytest.mark.parametrize("ahead", [True, False])
def test_a_nan_slice_gives_the_same_clear_error(volume_factory, tmp_path: Path, ahead: bool) -> None:
    """NaN in slice 3 of 5, read two slices at a time: the chunk 2..3 is refused with the sentence
    ``Volume.read_kspace`` gives, and nothing is written."""
    path = volume_factory(slices=5, coils=2)
    with h5py.File(path, "r+") as handle:
        kspace = handle["kspace"][...]
        kspace[3, 1, 5, 7] = np.nan
        handle["kspace"][...] = kspace
    with open_volume(path) as volume, pytest.raises(InputError) as host_error:
        volume.read_kspace(2, 4)
    out = tmp_path / "out" / path.name
    options = RunOptions(mask=MaskSpec("random", 4), device="cpu", batch_slices=2, read_ahead=ahead, quiet=True)
    with pytest.raises(InputError) as runner_error:
        recon_file(TVCompressedSensing(CSConfig(mask=options.mask, iters=2, device="cpu")), path, out, options)
    assert str(runner_error.value) == str(host_error.value)
    assert "NaN or Inf values in slices 2..3" in str(runner_error.value)
    assert not out.exists()


@pytest.mark.parametrize(
    "bad, raises",
    [(float("nan"), True), (float("inf"), True), (complex(float("inf"), float("-inf")), True), (3e38, False)],
)
def test_finite_check_catches_nan_and_inf_but_not_a_sum_that_overflows(volume_factory, bad, raises: bool) -> None:
    """The check's fast path is one sum; finite values whose sum overflows (3e38 twice) must pass."""
    from mrirecon.pipelines.chunk_reader import require_finite_tensor

    path = volume_factory(slices=2, coils=2, shape=(8, 6), recon=(4, 4))
    kspace = torch.zeros(2, 2, 8, 6, dtype=torch.complex64)
    kspace[1, 0, 3, 2] = bad
    kspace[1, 1, 3, 2] = bad
    with open_volume(path) as volume:
        if raises:
            with pytest.raises(InputError, match="NaN or Inf values in slices 4..5"):
                require_finite_tensor(volume, kspace, 4, 6)
        else:
            require_finite_tensor(volume, kspace, 4, 6)
