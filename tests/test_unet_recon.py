"""unet-recon: reconstruction at the input's scale, and refusal of every unusable checkpoint."""

from __future__ import annotations

import pickle
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from cli_helpers import run_cli
from conftest import write_test_volume
from mrirecon.io import open_volume
from mrirecon.mri.masks import MaskSpec, make_mask, volume_seed
from mrirecon.train.checkpoint import build_model, save_checkpoint
from mrirecon.train.config import TrainConfig
from mrirecon.train.transforms import apply_mask, unet_inputs


def _checkpoint(path: Path, **kw) -> Path:
    config = TrainConfig(chans=4, pools=2, groups=2, **kw)
    torch.manual_seed(1)
    model = build_model(config)
    save_checkpoint(path, {"model": model.state_dict(), "config": config.to_dict(), "step": 0})
    return path


@pytest.fixture
def volumes(tmp_path: Path) -> Path:
    write_test_volume(tmp_path / "full" / "a.h5", slices=3, coils=4, shape=(40, 28), recon=(20, 20), seed=2)
    return tmp_path / "full"


def test_recon_of_fully_sampled_file_with_mask_equals_model_on_fastmri_inputs(volumes: Path, tmp_path: Path) -> None:
    ckpt = _checkpoint(tmp_path / "c.pt")
    out = tmp_path / "out"
    result = run_cli("unet-recon", volumes, "--checkpoint", ckpt, "-o", out, "--mask", "random", "--accel", 4,
                     "--batch-slices", 2, "--device", "cpu", "--quiet")
    assert result.exit_code == 0, result.stderr
    with h5py.File(out / "a.h5", "r") as f:
        recon = f["reconstruction"][()]
        assert f.attrs["method"] == "unet"
    # by hand, slice by slice: the model on fastMRI's normalised input, de-normalised
    model = build_model(TrainConfig(chans=4, pools=2, groups=2))
    model.load_state_dict(torch.load(ckpt, weights_only=True)["model"])
    model.eval()
    with open_volume(volumes / "a.h5") as vol:
        kspace = torch.from_numpy(vol.read_kspace())
        mask, _ = make_mask(MaskSpec("random", 4), kspace.shape, volume_seed("a.h5"), vol.padding)
        crop = vol.recon_crop
    assert recon.shape == (3, *crop)
    for s in range(3):
        inputs = unet_inputs(apply_mask(kspace[s : s + 1], torch.from_numpy(mask)), crop)
        with torch.no_grad():
            expected = model(inputs.image[:, None])[:, 0] * (inputs.std + 1e-11) + inputs.mean
        np.testing.assert_allclose(recon[s], expected[0].numpy(), rtol=1e-4, atol=1e-6 * float(np.abs(recon).max()))
    assert abs(float(recon.mean()) - float(inputs.mean)) < 10 * float(inputs.std)  # input scale, not normalised


def test_test_style_file_gives_the_same_recon_as_masking_on_the_fly(volumes: Path, tmp_path: Path) -> None:
    ckpt = _checkpoint(tmp_path / "c.pt")
    sub = run_cli("subsample", volumes, "-o", tmp_path / "sub", "--mask", "random", "--accel", 4, "--quiet")
    assert sub.exit_code == 0, sub.stderr
    a = run_cli("unet-recon", tmp_path / "sub", "--checkpoint", ckpt, "-o", tmp_path / "o1", "--quiet")
    b = run_cli("unet-recon", volumes, "--checkpoint", ckpt, "-o", tmp_path / "o2", "--mask", "random", "--quiet")
    assert a.exit_code == 0 and b.exit_code == 0, a.stderr + b.stderr
    with h5py.File(tmp_path / "o1" / "a.h5") as f1, h5py.File(tmp_path / "o2" / "a.h5") as f2:
        np.testing.assert_allclose(f1["reconstruction"][()], f2["reconstruction"][()], rtol=1e-5, atol=1e-9)
    again = run_cli("unet-recon", tmp_path / "sub", "--checkpoint", ckpt, "-o", tmp_path / "o1")
    assert again.exit_code == 1 and "--overwrite" in again.stderr
    assert run_cli("unet-recon", tmp_path / "sub", "--checkpoint", ckpt, "-o", tmp_path / "o1", "--quiet",
                   "--overwrite").exit_code == 0


def test_fully_sampled_input_without_mask_options_is_a_per_file_error(volumes: Path, tmp_path: Path) -> None:
    result = run_cli("unet-recon", volumes, "--checkpoint", _checkpoint(tmp_path / "c.pt"), "-o", tmp_path / "o")
    assert result.exit_code == 1 and "fully sampled" in result.stderr
    assert not (tmp_path / "o" / "a.h5").exists()


class _RunsCode:
    def __reduce__(self):
        import os

        return (os.system, (f"touch {self.marker}",))


def _bad_checkpoints(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    good = _checkpoint(tmp_path / "good.pt")
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    text = tmp_path / "notes.pt"
    text.write_text("these are not weights\n")
    foreign = tmp_path / "foreign.pt"
    torch.save({"weights": torch.zeros(3)}, foreign)
    shape = tmp_path / "shape.pt"
    state = torch.load(good, weights_only=True)
    state["config"]["chans"] = 8  # weights of a 4-channel U-Net, config of an 8-channel one
    torch.save(state, shape)
    evil = tmp_path / "evil.pt"
    payload = _RunsCode()
    payload.marker = str(tmp_path / "pwned")
    _RunsCode.marker = payload.marker
    evil.write_bytes(pickle.dumps({"format": "mrirecon.unet-checkpoint", "model": payload}))
    evil_zip = tmp_path / "evil_zip.pt"
    torch.save({"format": "mrirecon.unet-checkpoint", "model": payload, "config": {}}, evil_zip)
    return {
        "evil_zip": (evil_zip, "could run code"),
        "missing": (tmp_path / "nope.pt", "does not exist"),
        "truncated": (truncated, "truncated or corrupt"),
        "text": (text, "not a torch checkpoint"),
        "foreign": (foreign, "not an mrirecon U-Net checkpoint"),
        "shape": (shape, "do not fit a U-Net with chans=8"),
        "evil": (evil, "could run code"),
    }


@pytest.mark.parametrize("case", ["missing", "truncated", "text", "foreign", "shape", "evil", "evil_zip"])
def test_unusable_checkpoints_give_one_sentence_and_exit_2(volumes: Path, tmp_path: Path, case: str) -> None:
    path, message = _bad_checkpoints(tmp_path)[case]
    result = run_cli("unet-recon", volumes, "--checkpoint", path, "-o", tmp_path / "o", "--mask", "random")
    assert result.exit_code == 2
    assert message in result.stderr and str(path) in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
    assert not (tmp_path / "o").exists()
    assert not (tmp_path / "pwned").exists()
