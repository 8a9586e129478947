"""``sample-data``: generated fastMRI-format volumes (determinism, format, physics, anatomy, CLI)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from cli_helpers import run_cli
from conftest import REAL_DATA
from mrirecon.io import open_volume, parse_header
from mrirecon.mri.fft import fft2c
from mrirecon.mri.zero_filled import zero_filled
from mrirecon.pipelines.sample_data import SampleDataConfig, generate_sample_data
from mrirecon.sampledata.acquisition import centred_fft_factors
from mrirecon.sampledata.coils import draw_coil_array, sensitivity_maps
from mrirecon.sampledata.shapes import make_grid
from mrirecon.sampledata.spectrum import outer_energy_fraction
from mrirecon.sampledata.volume import PRESETS, make_volume

SMALL = {"preset": "small", "slices": 3, "coils": 3}


def _datasets(path: Path) -> dict[str, bytes]:
    with h5py.File(path, "r") as handle:
        data = {key: np.asarray(handle[key][()]).tobytes() for key in handle}
        data["attrs"] = json.dumps({k: str(v) for k, v in sorted(handle.attrs.items())}).encode()
    return data


@pytest.fixture(scope="module")
def sample_sets(tmp_path_factory) -> dict[str, Path]:
    """Two small sets, one per challenge (2 volumes, 3 slices each)."""
    root = tmp_path_factory.mktemp("sample")
    sets = {}
    for challenge in ("multicoil", "singlecoil"):
        config = SampleDataConfig(challenge=challenge, volumes=2, seed=7, **SMALL)
        summary = generate_sample_data(root / challenge, config, quiet=True)
        assert summary.ok and len(summary.succeeded) == 2
        sets[challenge] = root / challenge
    return sets


def test_same_seed_gives_identical_bytes(sample_sets, tmp_path):
    config = SampleDataConfig(challenge="multicoil", volumes=2, seed=7, **SMALL)
    generate_sample_data(tmp_path, config, quiet=True)
    for name in ("sample_multicoil_7_000.h5", "sample_multicoil_7_001.h5"):
        assert _datasets(tmp_path / name) == _datasets(sample_sets["multicoil"] / name)


def test_bytes_do_not_depend_on_the_number_of_threads():
    threads = torch.get_num_threads()
    try:
        volumes = []
        for count in (1, 3):
            torch.set_num_threads(count)
            volumes.append(make_volume("multicoil", PRESETS["small"], 2, 2, seed=5, index=1))
    finally:
        torch.set_num_threads(threads)
    assert volumes[0].kspace.tobytes() == volumes[1].kspace.tobytes()
    assert volumes[0].target.tobytes() == volumes[1].target.tobytes()


def test_other_seed_or_volume_gives_other_anatomy():
    preset = PRESETS["small"]
    base = make_volume("multicoil", preset, 3, 2, seed=1, index=0).target
    for other in (
        make_volume("multicoil", preset, 3, 2, seed=2, index=0).target,
        make_volume("multicoil", preset, 3, 2, seed=1, index=1).target,
    ):
        corr = np.corrcoef(base.ravel(), other.ravel())[0, 1]
        assert corr < 0.9, corr


def test_anatomy_does_not_depend_on_coil_count():
    preset = PRESETS["small"]
    a = make_volume("multicoil", preset, 2, 2, seed=3, index=0).target
    b = make_volume("multicoil", preset, 2, 6, seed=3, index=0).target
    assert np.corrcoef(a.ravel(), b.ravel())[0, 1] > 0.9


@pytest.mark.parametrize("challenge", ["multicoil", "singlecoil"])
def test_file_format_and_target_equal_to_zero_filled(sample_sets, challenge):
    for path in sorted(sample_sets[challenge].glob("*.h5")):
        with open_volume(path) as volume:
            assert volume.challenge == challenge and not volume.warnings
            kspace = volume.read_kspace()
            assert kspace.dtype == np.complex64
            expected_shape = (3, 3, 256, 144) if challenge == "multicoil" else (3, 256, 144)
            assert kspace.shape == expected_shape
            assert volume.target_key == ("reconstruction_rss" if challenge == "multicoil" else "reconstruction_esc")
            target = volume.read_target()
            assert target.dtype == np.float32 and target.shape == (3, 128, 128)
            computed = zero_filled(torch.from_numpy(kspace), volume.header.crop).numpy()
            assert np.abs(computed - target).max() <= 1e-6 * np.abs(target).max()
            attrs = volume.attrs
            assert attrs["max"] == pytest.approx(float(target.max()), rel=1e-6)
            assert attrs["norm"] == pytest.approx(float(np.linalg.norm(target)), rel=1e-5)
            assert attrs["acquisition"] in ("CORPD_FBK", "CORPDFS_FBK")
            assert re.fullmatch(r"[0-9a-f]{64}", attrs["patient_id"])


def test_acquisitions_alternate_and_ids_differ(sample_sets):
    attrs = []
    for path in sorted(sample_sets["multicoil"].glob("*.h5")):
        with open_volume(path) as volume:
            attrs.append(volume.attrs)
    assert {a["acquisition"] for a in attrs} == {"CORPD_FBK", "CORPDFS_FBK"}
    assert attrs[0]["patient_id"] != attrs[1]["patient_id"]


def test_header_padding_is_exactly_the_zero_columns(sample_sets):
    for challenge in ("multicoil", "singlecoil"):
        for path in sorted(sample_sets[challenge].glob("*.h5")):
            with open_volume(path) as volume:
                kspace = volume.read_kspace()
                left, right = volume.header.padding
                assert 0 < left and right < kspace.shape[-1]
                assert volume.header.encoded_size[:2] == kspace.shape[-2:]
                assert volume.header.crop == (128, 128)
                column_energy = np.abs(kspace).reshape(-1, kspace.shape[-1]).sum(axis=0)
                assert np.all(column_energy[:left] == 0) and np.all(column_energy[right:] == 0)
                assert np.all(column_energy[left:right] > 0)


def test_readout_is_oversampled_twice():
    volume = make_volume("singlecoil", PRESETS["small"], 1, 2, seed=0, index=0)
    image = np.abs(np.fft.fftshift(np.fft.ifft2(np.fft.ifftshift(volume.kspace[0]))))
    height = image.shape[0]
    assert height == 2 * volume.target.shape[-2]
    # the target is the central half of the readout; signal fades towards the FOV's ends
    centre = image[height // 4 : 3 * height // 4].mean()
    ends = np.concatenate([image[: height // 16], image[-height // 16 :]]).mean()
    assert ends < 0.6 * centre


def test_noise_is_present_at_a_realistic_level(sample_sets):
    with open_volume(sorted(sample_sets["multicoil"].glob("*.h5"))[0]) as volume:
        kspace = volume.read_kspace()
        left, right = volume.header.padding
    # the outermost sampled columns hold almost nothing but noise; their spread is its level
    edge = kspace[..., [left, right - 1]]
    centre = np.abs(kspace[..., kspace.shape[-2] // 2, kspace.shape[-1] // 2])
    noise = edge.std()
    assert noise > 0
    assert 1e2 < centre.mean() / noise < 1e5
    target = zero_filled(torch.from_numpy(kspace), (128, 128)).numpy()
    background = target[:, :4, :4].mean()  # a corner outside the limb
    tissue = np.median(target[:, 48:80, 48:80])
    assert 5 < tissue / background < 200


def test_slices_change_smoothly():
    volume = make_volume("multicoil", PRESETS["small"], 10, 2, seed=4, index=0)
    target = volume.target / volume.target.max()

    def corr(i, j):
        return np.corrcoef(target[i].ravel(), target[j].ravel())[0, 1]

    near = np.mean([corr(i, i + 1) for i in range(9)])
    far = np.mean([corr(i, i + 5) for i in range(5)])
    assert near > far + 0.05
    assert max(corr(i, i + 1) for i in range(9)) < 0.999  # not one image repeated


def test_structures_at_several_scales():
    target = make_volume("singlecoil", PRESETS["small"], 5, 2, seed=5, index=0).target
    spectrum = np.abs(np.fft.fftshift(np.fft.fft2(target - target.mean(axis=(1, 2), keepdims=True)))) ** 2
    spectrum = spectrum.mean(axis=0)
    n = spectrum.shape[-1]
    fy, fx = np.meshgrid(np.arange(n) - n // 2, np.arange(n) - n // 2, indexing="ij")
    radius = np.hypot(fy, fx)
    low = spectrum[(radius > 2) & (radius <= 8)].sum()
    mid = spectrum[(radius > 8) & (radius <= 24)].sum()
    high = spectrum[(radius > 24) & (radius <= 56)].sum()
    total = low + mid + high
    # coarse shapes dominate, but edges, lines and texture keep real energy at fine scales
    assert low > mid > high > 0.01 * total


def test_fine_detail_energy_is_like_real_scans():
    """Trabeculae, fibre streaks, fat septa and small vessels put real anatomy's share of the
    k-space energy in the outer half of the phase encodes (padding excluded): 1.2-3% over 10
    volumes, as the real brain scan holds (the cartoon shapes alone held 0.3-1.3%)."""
    brain = outer_energy_fraction(np.load(REAL_DATA / "brain_t2_4coil.npy"))
    assert 0.012 < brain < 0.03
    fractions = []
    for index in range(10):
        volume = make_volume("multicoil", PRESETS["small"], 2, 2, seed=0, index=index)
        padding = parse_header(volume.header_xml).padding
        fractions.append(outer_energy_fraction(volume.kspace, padding))
        # zero-padded columns change nothing: they hold no energy and are not in the range
        assert outer_energy_fraction(volume.kspace[..., padding[0] : padding[1]]) == pytest.approx(fractions[-1])
    assert 0.012 < float(np.mean(fractions)) < 0.03, fractions
    assert all(0.009 < f < 0.05 for f in fractions), fractions


def test_outer_energy_fraction_of_known_spectra():
    flat = np.ones((2, 4, 16), dtype=np.complex64)
    assert outer_energy_fraction(flat) == pytest.approx(0.5)
    centre_only = np.zeros((4, 16), dtype=np.complex64)
    centre_only[:, 6:10] = 1.0
    assert outer_energy_fraction(centre_only) == 0.0
    padded = np.zeros((4, 20), dtype=np.complex64)
    padded[:, 2:18] = 1.0  # 16 sampled columns between 2 and 2 zero-padded ones
    assert outer_energy_fraction(padded, (2, 18)) == pytest.approx(0.5)


def test_coil_maps_are_smooth_and_roughly_uniform_in_rss():
    array = draw_coil_array(np.random.default_rng(0), 8, 0.0, 0.0, 0.9)
    grid = make_grid((64, 40), (32, 32), torch.linspace(-0.6, 0.6, 3))
    maps = sensitivity_maps(array, grid)
    assert maps.shape == (3, 8, 64, 40) and maps.dtype == torch.complex64
    rss = maps.abs().square().sum(dim=1).sqrt()
    inside = rss[:, 16:48, 8:32]
    assert 0.3 < float(inside.min()) and float(inside.max()) < 3.0
    assert float(inside.std() / inside.mean()) > 0.02  # shading, not perfectly flat
    step = (maps[..., 1:] - maps[..., :-1]).abs().max() / maps.abs().max()
    assert float(step) < 0.2  # smooth from pixel to pixel


def test_centred_fft_factors_match_fft2c():
    x = torch.randn(2, 3, 16, 12, dtype=torch.complex64)
    signs = centred_fft_factors(16, 12)
    assert torch.allclose(signs * torch.fft.fft2(signs * x, norm="ortho"), fft2c(x), atol=1e-5)


def test_knee_preset_sizes():
    volume = make_volume("multicoil", PRESETS["knee"], 1, 2, seed=0, index=0)
    assert volume.kspace.shape == (1, 2, 640, 368)
    assert volume.target.shape == (1, 320, 320)
    header = parse_header(volume.header_xml)
    assert header.encoded_size[:2] == (640, 368) and header.crop == (320, 320)


@pytest.mark.parametrize("challenge", ["multicoil", "singlecoil"])
def test_loads_in_fastmri_slice_dataset(sample_sets, challenge, tmp_path):
    from fastmri.data import SliceDataset

    dataset = SliceDataset(sample_sets[challenge], challenge, dataset_cache_file=tmp_path / "cache.pkl")
    assert len(dataset) == 6
    for i in (0, 4):
        kspace, mask, target, attrs, fname, dataslice = dataset[i]
        with open_volume(sample_sets[challenge] / fname) as volume:
            assert (attrs["padding_left"], attrs["padding_right"]) == volume.header.padding
            np.testing.assert_array_equal(kspace, volume.read_slice(dataslice))
        assert mask is None
        assert target.shape == (128, 128)
        assert attrs["recon_size"] == (128, 128, 1)
        assert attrs["max"] > 0 and attrs["acquisition"] in ("CORPD_FBK", "CORPDFS_FBK")


# --- command line ---------------------------------------------------------------------


def _cli_args(out: Path) -> list[object]:
    return ["sample-data", out, "--volumes", 1, "--slices", 2, "--coils", 2, "--seed", 3, "--quiet"]


def test_cli_writes_files_and_json(tmp_path):
    result = run_cli(*_cli_args(tmp_path / "out"), "--challenge", "singlecoil", "--json", tmp_path / "s.json")
    assert result.exit_code == 0, result.stderr
    path = tmp_path / "out" / "sample_singlecoil_3_000.h5"
    assert path.exists()
    summary = json.loads((tmp_path / "s.json").read_text())
    assert summary["succeeded"] == 1 and summary["config"]["slices"] == 2
    assert summary["results"][0]["output"] == str(path)


def test_cli_refuses_to_overwrite(tmp_path):
    out = tmp_path / "out"
    assert run_cli(*_cli_args(out)).exit_code == 0
    path = out / "sample_multicoil_3_000.h5"
    before, stamp = path.read_bytes(), path.stat().st_mtime_ns
    result = run_cli(*_cli_args(out))
    assert result.exit_code == 2
    assert "exists" in result.stderr and "--overwrite" in result.stderr
    assert path.read_bytes() == before and path.stat().st_mtime_ns == stamp
    assert run_cli(*_cli_args(out), "--overwrite").exit_code == 0
    assert path.read_bytes() == before  # same seed, same bytes


@pytest.mark.parametrize(
    ("option", "value", "words"),
    [("--volumes", 0, "--volumes must be at least 1"), ("--coils", -3, "--coils must be at least 1"),
     ("--slices", 0, "--slices must be at least 1"), ("--seed", -1, "--seed")],
)
def test_cli_bad_numbers_give_one_line_and_exit_2(tmp_path, option, value, words):
    result = run_cli("sample-data", tmp_path / "out", option, value)
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and words in lines[0]
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "out").exists()


#: Shapes (slices, rows, half columns) on which torch 2.14.1's CPU ``irfftn``/``ifftn`` over leading
#: axes corrupted the heap (``sample-data --preset knee --slices 6`` aborted in ``bandlimited_noise``).
HEAP_CRASH_SHAPES = [(12, 640, 185), (2, 640, 185), (4, 640, 185), (12, 256, 73)]

_HEAP_PROBE = """
import ctypes, sys, torch
from mrirecon.sampledata.texture import irfft3, rfft3
libc = ctypes.CDLL("libc.so.6")
for d, h, half in {shapes}:
    width = 2 * (half - 1)
    for _ in range(2):
        # a random half spectrum: torch.fft.irfftn aborted on these in every run
        field = irfft3(torch.randn((d, h, half), dtype=torch.complex64), width)
        spectrum = rfft3(torch.randn(d, h, width))
        blocks = [torch.empty(1000 * i) for i in range(1, 300)]  # malloc's checks see a corrupted heap here
        del blocks, field, spectrum
        libc.malloc_trim(0)
print("heap intact")
"""


def test_texture_transforms_leave_the_heap_intact_on_shapes_where_irfftn_corrupted_it(tmp_path):
    """Run where a heap corruption can only kill a child process: the one-axis transforms on the
    shapes on which ``torch.fft.irfftn`` made glibc abort ("free(): corrupted unsorted chunks")."""
    import os
    import subprocess
    import sys

    script = _HEAP_PROBE.format(shapes=HEAP_CRASH_SHAPES)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0 and "heap intact" in done.stdout, done.stderr[-500:]


@pytest.mark.parametrize("shape", [(5, 12, 10), (4, 9, 7), (1, 16, 6)])
def test_texture_transforms_equal_numpys_real_fft_over_three_axes(shape):
    from mrirecon.sampledata.texture import irfft3, rfft3

    field = torch.randn(shape, dtype=torch.float64)
    spectrum = rfft3(field)
    np.testing.assert_allclose(spectrum.numpy(), np.fft.rfftn(field.numpy(), norm="ortho"), atol=1e-12)
    back = irfft3(spectrum, shape[-1])
    np.testing.assert_allclose(back.numpy(), field.numpy(), atol=1e-12)
    np.testing.assert_allclose(back.numpy(), np.fft.irfftn(spectrum.numpy(), s=shape, axes=(0, 1, 2), norm="ortho"), atol=1e-12)
