"""Shared test helpers: tiny fastMRI-style volumes and the path to the real scans."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch

from mrirecon.io import make_header_xml, write_volume
from mrirecon.io.fastmri_h5 import TARGET_KEYS
from mrirecon.mri.zero_filled import zero_filled

import demo_training

#: Real scans live beside the checkout (never copied in): ../shared/data/real
REAL_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "real"


@pytest.fixture(scope="session")
def bench():
    """``scripts/bench_cs.py`` as a module: the CS suite's cases, masks and scores."""
    script = Path(__file__).resolve().parents[1] / "scripts" / "bench_cs.py"
    spec = importlib.util.spec_from_file_location("bench_cs", script)
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_cs"] = module
    spec.loader.exec_module(module)
    return module


def apt_tool(tool: str, package: str) -> str:
    """The path of a Debian tool, installed with apt when missing (tests run as root)."""
    if shutil.which(tool) is None:
        subprocess.run(["apt-get", "update"], check=False, capture_output=True)
        subprocess.run(["apt-get", "install", "-y", package], check=True, capture_output=True)
    found = shutil.which(tool)
    assert found, f"{tool} is not installed and apt-get could not install {package}"
    return found


def smooth_image(height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    """A smooth random complex image with an elliptical support (a stand-in for anatomy)."""
    y, x = np.meshgrid(np.linspace(-1, 1, height), np.linspace(-1, 1, width), indexing="ij")
    image = np.zeros((height, width), dtype=np.complex64)
    for _ in range(6):
        cy, cx = rng.uniform(-0.4, 0.4, 2)
        ry, rx = rng.uniform(0.1, 0.5, 2)
        image += rng.uniform(0.3, 1.0) * (((y - cy) / ry) ** 2 + ((x - cx) / rx) ** 2 < 1)
    phase = np.exp(1j * (x + 0.5 * y))
    return (image * phase).astype(np.complex64)


def write_test_volume(
    path: Path,
    *,
    slices: int = 3,
    coils: int | None = 4,
    shape: tuple[int, int] = (64, 48),
    recon: tuple[int, int] = (32, 32),
    padding: int = 0,
    seed: int = 0,
    attrs: dict | None = None,
) -> np.ndarray:
    """Write a fully sampled volume (2x readout oversampled when ``recon`` is half of ``shape``)
    with a target computed by the tool; returns the k-space."""
    from mrirecon.mri.fft import fft2c

    rng = np.random.default_rng(seed)
    height, width = shape
    images = np.stack([smooth_image(height, width, rng) for _ in range(slices)])
    if coils:
        y = np.linspace(-1, 1, height)[:, None]
        x = np.linspace(-1, 1, width)[None, :]
        maps = np.stack(
            [np.exp(-((y - np.cos(a)) ** 2 + (x - np.sin(a)) ** 2)) for a in np.linspace(0, 2 * np.pi, coils, endpoint=False)]
        ).astype(np.complex64)
        images = images[:, None] * maps[None]
    kspace = fft2c(torch.from_numpy(images)).numpy().astype(np.complex64)
    kspace += (0.001 * (rng.standard_normal(kspace.shape) + 1j * rng.standard_normal(kspace.shape))).astype(np.complex64)
    if padding:
        kspace[..., :padding] = 0
        kspace[..., width - padding :] = 0
    target = zero_filled(torch.from_numpy(kspace), recon).numpy()
    key = TARGET_KEYS["multicoil" if coils else "singlecoil"]
    header = make_header_xml(shape, recon, sampled_cols=(padding, width - padding))
    all_attrs = {"acquisition": "CORPD_FBK", "patient_id": path.stem, "max": float(target.max()), "norm": float(np.linalg.norm(target))}
    all_attrs.update(attrs or {})
    write_volume(path, kspace, header_xml=header, attrs=all_attrs, targets={key: target})
    return kspace


@pytest.fixture
def volume_factory(tmp_path: Path):
    """``volume_factory(name, **kw)`` writes a test volume under ``tmp_path/full`` and returns its path."""

    def make(name: str = "vol.h5", folder: str = "full", **kwargs) -> Path:
        path = tmp_path / folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        write_test_volume(path, **kwargs)
        return path

    return make


@pytest.fixture(scope="module")
def one_torch_thread():
    """Small tensors: torch's intra-op threads cost more than they give on a shared 2-core box."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


#: The demo VarNet's training job (``tests/demo_training.py``), started when the session's tests
#: are collected if its quality test is among them.
_DEMO_TRAINING: dict[str, "demo_training.TrainingJob"] = {}


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(session, config, items) -> None:
    """The demo VarNet's quality test runs last: it waits for the training started beside the rest."""
    items.sort(key=lambda item: item.name == demo_training.TEST_NAME)


def pytest_collection_finish(session) -> None:
    if any(item.name == demo_training.TEST_NAME for item in session.items) and not session.config.option.collectonly:
        folder = Path(tempfile.mkdtemp(prefix="mrirecon-demo-training-"))
        alone = len(session.items) == 1
        _DEMO_TRAINING["job"] = demo_training.start(folder, threads=None if alone else 1)


def pytest_sessionfinish(session, exitstatus) -> None:
    job = _DEMO_TRAINING.pop("job", None)
    if job is not None:
        job.stop()
        shutil.rmtree(job.folder, ignore_errors=True)


@pytest.fixture(scope="session")
def demo_training_job() -> "demo_training.TrainingJob":
    """The demo VarNet's training job of this session (see ``tests/demo_training.py``)."""
    if "job" not in _DEMO_TRAINING:  # e.g. the test called by name from a plugin that skipped collection
        folder = Path(tempfile.mkdtemp(prefix="mrirecon-demo-training-"))
        _DEMO_TRAINING["job"] = demo_training.start(folder, threads=None)
    return _DEMO_TRAINING["job"]
