"""The whole chain through the CLI: scans -> subsample -> zf-recon -> eval / compare."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cli_helpers import run_cli
from conftest import REAL_DATA


def _eval(target: Path, pred: Path, tmp_path: Path, *extra: object) -> dict:
    out = tmp_path / f"scores_{pred.name}.json"
    result = run_cli("eval", "--target", target, "--pred", pred, "--json", out, "--quiet", *extra)
    assert result.exit_code == 0, result.stderr
    return json.loads(out.read_text())


@pytest.mark.parametrize("challenge", ["multicoil", "singlecoil"])
def test_sample_data_subsample_zf_eval(tmp_path: Path, challenge: str) -> None:
    val = tmp_path / "val"
    assert run_cli("sample-data", val, "--challenge", challenge, "--volumes", 2, "--slices", 3, "--quiet").exit_code == 0
    scores = {}
    for accel in (4, 8):
        sub = tmp_path / f"val_{accel}x"
        assert run_cli("subsample", val, "-o", sub, "--accel", accel, "--quiet").exit_code == 0
        zf = tmp_path / f"zf_{accel}x"
        assert run_cli("zf-recon", sub, "-o", zf, "--quiet").exit_code == 0
        scores[accel] = _eval(val, zf, tmp_path)["mean"]
    assert 0.2 < scores[8]["ssim"] < scores[4]["ssim"] < 0.95
    assert scores[4]["psnr"] > scores[8]["psnr"] > 10
    # fully sampled k-space reconstructs to the target itself
    full = tmp_path / "zf_full"
    assert run_cli("zf-recon", val, "-o", full, "--quiet").exit_code == 0
    perfect = _eval(val, full, tmp_path)["mean"]
    assert perfect["nmse"] < 1e-10 and perfect["ssim"] > 0.99999
    # a regression threshold the 8x zero-filled cannot meet fails the run
    gate = run_cli("eval", "--target", val, "--pred", tmp_path / "zf_8x", "--min-ssim", 0.99, "--quiet")
    assert gate.exit_code == 1 and "--min-ssim" in gate.stderr


def test_real_brain_convert_subsample_zf_eval(tmp_path: Path) -> None:
    full = tmp_path / "full"
    assert run_cli("convert", REAL_DATA / "brain_t2_4coil.npy", "-o", full / "brain.h5", "--quiet").exit_code == 0
    ssims = {}
    for accel in (4, 8):
        sub = tmp_path / f"sub{accel}"
        assert run_cli("subsample", full, "-o", sub, "--accel", accel, "--quiet").exit_code == 0
        zf = tmp_path / f"zf{accel}"
        assert run_cli("zf-recon", sub, "-o", zf, "--quiet").exit_code == 0
        mean = _eval(full, zf, tmp_path)["mean"]
        assert 0.3 < mean["ssim"] < 0.95 and 15 < mean["psnr"] < 40 and 0.001 < mean["nmse"] < 0.3
        ssims[accel] = mean["ssim"]
    assert ssims[4] > ssims[8]


def test_compare_table_and_figure(tmp_path: Path) -> None:
    val = tmp_path / "val"
    assert run_cli("sample-data", val, "--volumes", 1, "--slices", 2, "--coils", 4, "--quiet").exit_code == 0
    assert run_cli("zf-recon", val, "-o", tmp_path / "zf4", "--accel", 4, "--quiet").exit_code == 0
    assert run_cli("zf-recon", val, "-o", tmp_path / "zf8", "--accel", 8, "--quiet").exit_code == 0
    png, out = tmp_path / "fig.png", tmp_path / "cmp.json"
    result = run_cli(
        "compare", "--target", val, "--pred", f"four={tmp_path / 'zf4'}", "--pred", f"eight={tmp_path / 'zf8'}",
        "--png", png, "--json", out,
    )
    assert result.exit_code == 0, result.stderr
    assert "four" in result.stdout and "eight" in result.stdout
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    methods = json.loads(out.read_text())["methods"]
    assert methods["four"]["mean"]["ssim"] > methods["eight"]["mean"]["ssim"]
    bad = run_cli("compare", "--target", val, "--pred", "=nothing")
    assert bad.exit_code == 2 and "NAME=PATH" in bad.stderr
