"""Messages that name the right file and say what a number means."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np

from cli_helpers import run_cli
from faults.fault_helpers import write_small_volume


def _pred(path: Path, shape=(2, 8, 8), value: float = 0.5) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as handle:
        handle["reconstruction"] = np.full(shape, value, np.float32)
    return path


def test_eval_prediction_of_the_wrong_size_names_the_prediction(tmp_path: Path) -> None:
    write_small_volume(tmp_path / "target" / "vol.h5")
    pred = _pred(tmp_path / "pred" / "vol.h5", shape=(2, 4, 4))
    result = run_cli("eval", "--target", tmp_path / "target", "--pred", tmp_path / "pred", "--quiet", "--device", "cpu")
    assert result.exit_code == 1 and "Traceback" not in result.stderr
    assert f"{pred}: is 4x4, smaller than the 8x8 crop of its target vol.h5" in result.stderr


def test_compare_says_when_methods_cover_different_volumes(tmp_path: Path) -> None:
    for i in range(3):
        write_small_volume(tmp_path / "target" / f"v{i}.h5", seed=i)
        _pred(tmp_path / "a" / f"v{i}.h5")
    _pred(tmp_path / "b" / "v0.h5")
    out = tmp_path / "s.json"
    result = run_cli("compare", "--target", tmp_path / "target", "--pred", f"a={tmp_path / 'a'}",
                     "--pred", f"b={tmp_path / 'b'}", "--device", "cpu", "--json", out)
    assert "different volumes (a: 3, b: 1 volume(s))" in result.stderr
    assert "DIFFERENT volume sets" in result.stdout
    summary = json.loads(out.read_text())
    assert summary["same_volumes"] is False and "not directly comparable" in summary["warning"]


def test_compare_over_the_same_volumes_has_no_warning(tmp_path: Path) -> None:
    for i in range(2):
        write_small_volume(tmp_path / "target" / f"v{i}.h5", seed=i)
        _pred(tmp_path / "a" / f"v{i}.h5")
        _pred(tmp_path / "b" / f"v{i}.h5", value=0.3)
    result = run_cli("compare", "--target", tmp_path / "target", "--pred", f"a={tmp_path / 'a'}",
                     "--pred", f"b={tmp_path / 'b'}", "--device", "cpu")
    assert result.exit_code == 0 and "warning" not in result.stderr
    assert "2 volume(s), fastMRI metrics" in result.stdout
