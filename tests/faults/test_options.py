"""Options are checked at the option, before any file is touched, and every failure takes the
one error path: one sentence, exit 2 (bad input) or 1 (failed files, unexpected errors)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cli_helpers import run_cli
from faults.fault_helpers import tree_hashes, write_small_volume

BAD_OPTIONS = [
    (["cs-recon", "IN", "-o", "OUT", "--lam", "inf"], "--lam must be a finite number"),
    (["cs-recon", "IN", "-o", "OUT", "--lam", "-1"], "--lam must be at least 0"),
    (["cs-recon", "IN", "-o", "OUT", "--tol", "nan"], "--tol must be a finite number"),
    (["cs-recon", "IN", "-o", "OUT", "--iters", "0"], "--iters must be at least 1"),
    (["cs-recon", "IN", "-o", "OUT", "--coil-energy", "1.5"], "--coil-energy must be at most 1"),
    (["cs-recon", "IN", "-o", "OUT", "--batch-slices", "0"], "--batch-slices must be at least 1"),
    (["zf-recon", "IN", "-o", "OUT", "--seed", "-1"], "--seed must be at least 0"),
    (["zf-recon", "IN", "-o", "OUT", "--accel", "1", "--center-fraction", "1"], "--accel must be above 1"),
    (["zf-recon", "IN", "-o", "OUT", "--accel", "0"], "--accel must be above 1"),
    (["zf-recon", "IN", "-o", "OUT", "--center-fraction", "0"], "--center-fraction must be above 0"),
    (["zf-recon", "IN", "-o", "OUT", "--accel", "8", "--center-fraction", "0.5"], "keeps more columns"),
    (["subsample", "IN", "-o", "OUT", "--center-fraction", "nan"], "--center-fraction must be a finite number"),
    (["subsample", "IN", "-o", "OUT", "--seed", "4294967296"], "--seed must be at most"),
    (["unet-recon", "IN", "--checkpoint", "IN", "-o", "OUT", "--batch-slices", "-3"], "--batch-slices must be at least 1"),
    (["eval", "--target", "IN", "--pred", "OUT", "--min-ssim", "nan"], "--min-ssim must be a finite number"),
    (["eval", "--target", "IN", "--pred", "OUT", "--min-ssim", "2"], "--min-ssim must be at most 1"),
    (["eval", "--target", "IN", "--pred", "OUT", "--min-psnr", "-inf"], "--min-psnr must be a finite number"),
    (["eval", "--target", "IN", "--pred", "OUT", "--max-nmse", "-0.1"], "--max-nmse must be at least 0"),
    (["eval", "--target", "IN", "--pred", "OUT", "--acceleration", "nan"], "--acceleration must be a finite number"),
    (["sample-data", "OUT", "--volumes", "0"], "--volumes must be at least 1"),
    (["sample-data", "OUT", "--seed", "-5"], "--seed must be at least 0"),
    (["train", "--train", "IN", "--val", "IN", "-o", "OUT", "--lr", "nan"], "--lr must be a finite number"),
    (["train", "--train", "IN", "--val", "IN", "-o", "OUT", "--lr", "0"], "--lr must be above 0"),
    (["train", "--train", "IN", "--val", "IN", "-o", "OUT", "--chans", "0"], "--chans must be at least 1"),
    (["train", "--train", "IN", "--val", "IN", "-o", "OUT", "--seed", "-1"], "--seed must be at least 0"),
    (["train", "--train", "IN", "--val", "IN", "-o", "OUT", "--chans", "200000"], "chans must be at most 4096"),
    (["zf-recon", "IN", "-o", "OUT", "--json", "IN"], "is a folder, not a file"),
    (["compare", "--target", "IN", "--pred", "a=IN", "--png", "IN"], "is a folder, not a file"),
    (["zf-recon", "IN", "-o", "IN/vol.h5"], "is a file, not a folder"),
]


@pytest.mark.parametrize("args, message", BAD_OPTIONS, ids=[" ".join(a[3:] if len(a) > 3 else a) for a, _ in BAD_OPTIONS])
def test_bad_option_is_refused_before_any_file_is_touched(tmp_path: Path, args: list[str], message: str) -> None:
    data = tmp_path / "in"
    write_small_volume(data / "vol.h5")
    before = tree_hashes(tmp_path)
    argv = [a.replace("IN", str(data)).replace("OUT", str(tmp_path / "out")) for a in args]
    result = run_cli(*argv)
    assert result.exit_code == 2, (result.exit_code, result.stderr)
    assert message in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert tree_hashes(tmp_path) == before
    assert not (tmp_path / "out").exists()


def test_all_zero_sensitivity_maps_are_refused(tmp_path: Path) -> None:
    src = write_small_volume(tmp_path / "in" / "vol.h5", mask=True)
    maps = tmp_path / "maps.npy"
    np.save(maps, np.zeros((2, 16, 12), np.complex64))
    result = run_cli("cs-recon", src, "-o", tmp_path / "out", "--sens", maps, "--iters", "2", "--quiet", "--device", "cpu")
    assert result.exit_code == 2 and "all zero" in result.stderr and str(maps) in result.stderr
    assert not (tmp_path / "out" / "vol.h5").exists()


@pytest.fixture
def broken_pipeline(monkeypatch):
    """zf-recon's pipeline raising whatever the test says."""
    import mrirecon.pipelines.zf_recon as zf

    def install(exc: BaseException) -> None:
        def boom(*args, **kwargs):
            raise exc

        monkeypatch.setattr(zf, "zf_recon", boom)

    return install


def test_unexpected_error_is_one_line_pointing_to_debug(tmp_path: Path, broken_pipeline) -> None:
    broken_pipeline(RuntimeError("the solver exploded\nsecond line"))
    result = run_cli("zf-recon", tmp_path, "-o", tmp_path / "out")
    assert result.exit_code == 1
    assert result.stderr.strip() == (
        "error: unexpected error: RuntimeError: the solver exploded (run with --debug for the traceback)"
    )


def test_debug_shows_the_traceback(tmp_path: Path, broken_pipeline) -> None:
    broken_pipeline(RuntimeError("the solver exploded"))
    result = run_cli("zf-recon", tmp_path, "-o", tmp_path / "out", "--debug")
    assert result.exit_code == 1 and "Traceback" in result.stderr and "the solver exploded" in result.stderr


def test_ctrl_c_is_never_exit_0(tmp_path: Path, broken_pipeline) -> None:
    broken_pipeline(KeyboardInterrupt())
    result = run_cli("zf-recon", tmp_path, "-o", tmp_path / "out")
    assert result.exit_code == 130 and "interrupted" in result.stderr


@pytest.mark.parametrize("exc, code", [(PermissionError(13, "Permission denied", "/x/y.h5"), 2), (MemoryError(), 1),
                                       (EOFError("Ran out of input"), 1)])
def test_other_failures_take_the_one_path(tmp_path: Path, broken_pipeline, exc: BaseException, code: int) -> None:
    broken_pipeline(exc)
    result = run_cli("zf-recon", tmp_path, "-o", tmp_path / "out")
    assert result.exit_code == code and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and result.stderr.startswith("error: ")
