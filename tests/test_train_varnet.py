"""Training the VarNet: bit-exact resume on the CPU, checkpoints that record the model kind,
the CLI options, presets, and reconstruction with a VarNet checkpoint through ``unet-recon``."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest
import torch

from cli_helpers import run_cli
from conftest import write_test_volume
from mrirecon.io.fastmri_h5 import read_reconstruction
from mrirecon.models import VarNet
from mrirecon.pipelines.train import run_training
from mrirecon.train.checkpoint import model_from_checkpoint
from mrirecon.train.config import resolve_config
from mrirecon.train.loop import train

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("varnetdata")
    for i in range(2):
        write_test_volume(root / "train" / f"t{i}.h5", slices=2, coils=3, shape=(32, 24), recon=(16, 16), padding=1,
                          seed=i)
    write_test_volume(root / "val" / "v0.h5", slices=2, coils=3, shape=(32, 24), recon=(16, 16), padding=1, seed=9)
    return root


def _config(data: Path, run_dir: Path, **kw):
    values = dict(train_dir=str(data / "train"), val_dir=str(data / "val"), run_dir=str(run_dir), model="varnet",
                  cascades=2, chans=4, pools=2, sens_chans=2, sens_pools=2, groups=2, epochs=2, batch_size=2, lr=3e-3,
                  schedule="cosine", accel=2, center_fraction=0.25)
    values.update(kw)
    return resolve_config(None, values)


def test_interrupted_and_resumed_varnet_run_ends_with_the_same_weights(data: Path, tmp_path: Path) -> None:
    # 4 training slices, batch 2: 2 steps per epoch, 4 in all; SIGTERM after step 3 (mid-epoch 2)
    full = train(_config(data, tmp_path / "full"), quiet=True)
    assert full.steps == 4 and not full.interrupted and isinstance(full.model, VarNet)

    def terminate_after_3(step: int) -> None:
        if step == 3:
            os.kill(os.getpid(), signal.SIGTERM)

    part = train(_config(data, tmp_path / "part"), quiet=True, on_step=terminate_after_3)
    assert part.interrupted and part.steps == 3
    resumed = run_training(None, {"run_dir": str(tmp_path / "part")}, resume=True, quiet=True)
    assert resumed.steps == 4
    ours = torch.load(tmp_path / "part" / "last.pt", weights_only=True)
    theirs = torch.load(tmp_path / "full" / "last.pt", weights_only=True)
    assert ours["model_kind"] == theirs["model_kind"] == "varnet" and ours["config"]["model"] == "varnet"
    assert ours["model"].keys() == theirs["model"].keys()
    for key in ours["model"]:
        assert torch.equal(ours["model"][key], theirs["model"][key]), key
    assert [h["val_ssim"] for h in resumed.history] == [h["val_ssim"] for h in full.history]
    model, config = model_from_checkpoint(tmp_path / "full" / "best.pt")
    assert isinstance(model, VarNet) and config.cascades == 2


def test_cli_trains_a_varnet_and_unet_recon_reconstructs_with_it(data: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    result = run_cli("train", "--train", data / "train", "--val", data / "val", "-o", run, "--model", "varnet",
                     "--cascades", 2, "--chans", 4, "--pools", 2, "--sens-chans", 2, "--groups", 2, "--epochs", 1,
                     "--accel", 2, "--center-fraction", 0.25, "--device", "cpu", "--quiet", "--json", tmp_path / "s.json")
    assert result.exit_code == 0, result.stderr
    assert {"best.pt", "last.pt", "metrics.jsonl", "curves.png", "config.yaml"} <= {p.name for p in run.iterdir()}
    record = json.loads((run / "metrics.jsonl").read_text().splitlines()[0])
    assert 0 < record["val_ssim"] <= 1 and record["val_loss"] > 0
    recon = run_cli("unet-recon", data / "val", "--checkpoint", run / "best.pt", "-o", tmp_path / "recon", "--mask",
                    "random", "--accel", 2, "--device", "cpu", "--quiet")
    assert recon.exit_code == 0, recon.stderr
    image = read_reconstruction(tmp_path / "recon" / "v0.h5")
    assert image.shape == (2, 16, 16) and float(image.std()) > 0


def test_varnet_refuses_single_coil_training_data(tmp_path: Path) -> None:
    write_test_volume(tmp_path / "train" / "s.h5", slices=1, coils=None, shape=(32, 24), recon=(16, 16))
    result = run_cli("train", "--train", tmp_path / "train", "--val", tmp_path / "train", "-o", tmp_path / "run",
                     "--model", "varnet", "--device", "cpu", "--quiet")
    assert result.exit_code == 2
    assert "single-coil; the VarNet needs multi-coil data" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize("name", ["varnet_tiny.yaml", "varnet_multicoil.yaml", "varnet_demo.yaml"])
def test_varnet_presets_load(name: str) -> None:
    config = resolve_config(CONFIGS / name, {"train_dir": "t", "val_dir": "v", "run_dir": "r"})
    assert config.model == "varnet" and config.norm == "group"


def test_varnet_input_options_are_refused_for_the_unet() -> None:
    with pytest.raises(ValueError, match="apply to the VarNet only"):
        resolve_config(None, {"train_dir": "t", "val_dir": "v", "run_dir": "r", "model": "unet", "warm_start": True})
    with pytest.raises(ValueError, match="apply to the VarNet only"):
        resolve_config(None, {"train_dir": "t", "val_dir": "v", "run_dir": "r", "model": "unet", "hard_dc": True})
    config = resolve_config(CONFIGS / "varnet_demo.yaml", {"train_dir": "t", "val_dir": "v", "run_dir": "r"})
    assert config.readout_crop and config.virtual_coils == 4 and config.warm_start and config.hard_dc


def test_varnet_with_input_reductions_trains_and_reconstructs_through_unet_recon(data: Path, tmp_path: Path) -> None:
    config = tmp_path / "reduced.yaml"
    config.write_text("model: varnet\ncascades: 2\nchans: 4\npools: 2\nsens_chans: 2\nsens_pools: 2\ngroups: 2\n"
                      "readout_crop: true\nvirtual_coils: 2\nwarm_start: true\nhard_dc: true\nepochs: 1\naccel: 2\n"
                      "center_fraction: 0.25\nloss: ssim\n")
    run = tmp_path / "run"
    result = run_cli("train", "--train", data / "train", "--val", data / "val", "-o", run, "--config", config,
                     "--device", "cpu", "--quiet")
    assert result.exit_code == 0, result.stderr
    model, loaded = model_from_checkpoint(run / "best.pt")
    assert model.readout_crop and model.virtual_coils == 2 and loaded.warm_start and model.hard_dc
    recon = run_cli("unet-recon", data / "val", "--checkpoint", run / "best.pt", "-o", tmp_path / "recon", "--mask",
                    "random", "--accel", 2, "--device", "cpu", "--quiet")
    assert recon.exit_code == 0, recon.stderr
    image = read_reconstruction(tmp_path / "recon" / "v0.h5")
    assert image.shape == (2, 16, 16) and float(image.std()) > 0


def test_compiled_varnet_trains_like_the_eager_one_and_its_checkpoint_loads_uncompiled(data: Path, tmp_path: Path) -> None:
    # torch.compile of the whole VarNet fails in inductor's backward on its complex steps; only
    # its U-Nets are compiled, in place, so the weights' keys and values match eager training.
    eager = train(_config(data, tmp_path / "eager", epochs=1, schedule="none"), quiet=True)
    compiled = train(_config(data, tmp_path / "compiled", epochs=1, schedule="none", compile=True), quiet=True)
    assert compiled.steps == eager.steps == 2
    ours = torch.load(tmp_path / "compiled" / "last.pt", weights_only=True)["model"]
    theirs = torch.load(tmp_path / "eager" / "last.pt", weights_only=True)["model"]
    assert ours.keys() == theirs.keys()
    for key in ours:
        torch.testing.assert_close(ours[key], theirs[key], rtol=1e-3, atol=1e-5, msg=key)
    model, _ = model_from_checkpoint(tmp_path / "compiled" / "last.pt")
    assert isinstance(model, VarNet)


def test_unet_recon_restores_the_noise_floor_of_the_varnets_output(data: Path, tmp_path: Path) -> None:
    """The VarNet's output is a hard-data-consistent RSS, as ``cs-recon``'s: ``unet-recon`` restores its
    noise floor by default (``mrirecon.cs.noise_floor``). On the real 4-coil brain (noise-only readout
    rows) the output is ``sqrt(plain^2 + floor^2)``, the floor in ``--json``; ``--no-noise-floor`` is
    the plain output and the file records which."""
    import h5py
    import numpy as np

    from conftest import REAL_DATA
    from mrirecon.pipelines.convert import ConvertConfig, convert_npy

    full = train(_config(data, tmp_path / "run", epochs=1), quiet=True)
    assert not full.interrupted
    brain = tmp_path / "brain" / "brain.h5"
    brain.parent.mkdir()
    convert_npy(REAL_DATA / "brain_t2_4coil.npy", brain, ConvertConfig())
    images, floors = {}, {}
    for flag in ("--noise-floor", "--no-noise-floor"):
        out = tmp_path / flag.strip("-")
        result = run_cli("unet-recon", brain, "--checkpoint", tmp_path / "run" / "best.pt", "-o", out, "--mask", "random",
                         "--accel", 4, "--device", "cpu", "--quiet", "--json", tmp_path / f"{flag}.json", flag)
        assert result.exit_code == 0, result.stderr
        images[flag] = read_reconstruction(out / "brain.h5").astype(np.float64)
        floors[flag] = json.loads((tmp_path / f"{flag}.json").read_text())["results"][0]["info"].get("noise_floor")
        with h5py.File(out / "brain.h5") as h5:
            assert bool(h5.attrs["noise_floor"]) == (flag == "--noise-floor")
    (floor,) = floors["--noise-floor"]  # one slice
    assert floors["--no-noise-floor"] is None and floor > 0
    np.testing.assert_allclose(images["--noise-floor"], np.sqrt(images["--no-noise-floor"] ** 2 + floor**2), rtol=1e-3)
