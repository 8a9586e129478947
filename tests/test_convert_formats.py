"""convert from scanner formats: Siemens twix (real files), ISMRMRD (written by the ismrmrd package
from the real scans), BART .cfl; and the bad inputs of each."""

from __future__ import annotations

import contextlib
import io
import xml.etree.ElementTree as etree
from pathlib import Path

import h5py
import numpy as np
import pytest
from fastmri.data import SliceDataset

from cli_helpers import run_cli
from conftest import REAL_DATA
from ismrmrd_files import write_ismrmrd
from mrirecon.io import open_volume
from mrirecon.io.cfl import cfl_bytes, fastmri_to_bart, read_cfl

TWIX = REAL_DATA.parent / "raw" / "siemens_twix"
#: twix file -> the real .npy it must reproduce exactly (shared/data/real/README.md)
TWIX_TO_NPY = {
    "twixtools_gre_2coil.dat": "phantom_gre_2coil_os2.npy",
    "pulseq_16coil.dat": "phantom_16coil.npy",
    "pulseq_gre_1coil.dat": "phantom_gre_1coil.npy",
}
NS = {"m": "http://www.ismrm.org/ISMRMRD"}


def header_value(path: Path, *elements: str) -> float:
    with h5py.File(path) as handle:
        root = etree.fromstring(handle["ismrmrd_header"][()])
    node = root.find("./" + "/".join(f"m:{e}" for e in elements), NS)
    assert node is not None, elements
    return float(node.text)


def assert_refused(result, name: str, *outputs: Path) -> None:
    assert result.exit_code == 2, result.stdout + result.stderr
    assert name in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    for out in outputs:
        assert not out.exists()
        if out.parent.exists():
            assert not any(p.name.startswith(f".{out.name}") for p in out.parent.iterdir())


# --- Siemens twix ------------------------------------------------------------------------------


@pytest.mark.parametrize("twix,npy", sorted(TWIX_TO_NPY.items()))
def test_twix_kspace_equals_the_real_npy(tmp_path: Path, twix: str, npy: str) -> None:
    out = tmp_path / ("multicoil" if "1coil" not in twix else "singlecoil") / "scan.h5"
    result = run_cli("convert", TWIX / twix, "-o", out)
    assert result.exit_code == 0, result.stderr
    with open_volume(out) as volume:
        np.testing.assert_array_equal(volume.read_kspace(), np.load(REAL_DATA / npy))
        assert volume.attrs["source_format"] == "twix"
    challenge = out.parent.name
    _, _, target, attrs, _, _ = SliceDataset(out.parent, challenge)[0]
    assert target.shape == attrs["recon_size"][:2]


def test_twix_oversampling_fov_and_geometry_from_the_header(tmp_path: Path) -> None:
    out = tmp_path / "gre.h5"
    assert run_cli("convert", TWIX / "twixtools_gre_2coil.dat", "-o", out).exit_code == 0
    # 320 readout samples, 2x oversampled (the protocol says flReadoutOSFactor 2): recon 160x160, FOV 200 mm
    assert header_value(out, "encoding", "encodedSpace", "matrixSize", "x") == 320
    assert header_value(out, "encoding", "reconSpace", "matrixSize", "x") == 160
    assert header_value(out, "encoding", "encodedSpace", "fieldOfView_mm", "x") == 400
    assert header_value(out, "encoding", "reconSpace", "fieldOfView_mm", "y") == 200
    assert header_value(out, "encoding", "reconSpace", "fieldOfView_mm", "z") == 4
    assert header_value(out, "acquisitionSystemInformation", "systemFieldStrength_T") == pytest.approx(2.89362)
    assert header_value(out, "sequenceParameters", "TR") == 10.0 and header_value(out, "sequenceParameters", "TE") == 3.0
    with h5py.File(out) as handle:
        assert handle["reconstruction_rss"].shape == (1, 160, 160)
        assert '"slice_dir"' in handle.attrs["geometry"]


@pytest.fixture(scope="module")
def twix_variants(tmp_path_factory) -> dict[str, Path]:
    """Real twix data rewritten by twixtools: two measurements (the first scaled by 2), and one
    with an averages counter."""
    import twixtools

    folder = tmp_path_factory.mktemp("twix")

    def load() -> list[dict]:
        with contextlib.redirect_stdout(io.StringIO()):
            meas = twixtools.read_twix(str(TWIX / "twixtools_gre_2coil.dat"), verbose=False, parse_pmu=False, keep_acqend=True)
        for m in meas:
            m["mdb"] = [x.convert_to_local() for x in m["mdb"]]
        return meas

    scaled, plain = load()[0], load()[0]
    for mdb in scaled["mdb"]:
        if mdb.is_image_scan():
            mdb.data = mdb.data * 2
    paths = {"two": folder / "two.dat"}
    twixtools.write_twix([scaled, plain], str(paths["two"]))
    for name, counter in (("averages", "Ave"), ("partitions", "Par"), ("echoes", "Eco")):
        meas = load()[0]
        for mdb in meas["mdb"]:
            if mdb.is_image_scan() and mdb.cLin % 2:
                setattr(mdb.mdh.Counter, counter, 1)
        paths[name] = folder / f"{name}.dat"
        twixtools.write_twix([meas], str(paths[name]))
    noise_meas = load()[0]  # a noise adjust measurement before the image one, as VD/VE files have
    real_noise = np.load(REAL_DATA / "noise_16coil_96.npy")[:2]
    readouts = [m for m in noise_meas["mdb"] if m.is_image_scan()][: real_noise.shape[1] // 320]
    for number, mdb in enumerate(readouts):
        mdb.data = np.ascontiguousarray(real_noise[:, number * 320 : (number + 1) * 320])
        mdb.set_flag("NOISEADJSCAN", True)
    noise_meas["mdb"] = readouts + [noise_meas["mdb"][-1]]
    paths["noise"] = folder / "noise.dat"
    twixtools.write_twix([noise_meas, load()[0]], str(paths["noise"]))
    two_slices = load()[0]  # the same slice again as slice 1, 4 mm further along Tra, data x3
    images = [m for m in two_slices["mdb"] if m.is_image_scan()]
    second = [m for m in load()[0]["mdb"] if m.is_image_scan()]
    for mdb in second:
        mdb.mdh.Counter.Sli = 1
        mdb.mdh.SliceData.SlicePos.Tra += 4.0
        mdb.data = mdb.data * 3
    two_slices["mdb"] = images + second + [two_slices["mdb"][-1]]
    paths["slices"] = folder / "slices.dat"
    twixtools.write_twix([two_slices], str(paths["slices"]))
    partial = load()[0]  # 6/8 partial Fourier: the first quarter of the lines never measured
    partial["mdb"] = [m for m in partial["mdb"] if not (m.is_image_scan() and m.cLin < 40)]
    paths["partial"] = folder / "partial.dat"
    twixtools.write_twix([partial], str(paths["partial"]))
    data = (TWIX / "twixtools_gre_2coil.dat").read_bytes()
    paths["truncated"] = folder / "truncated.dat"
    paths["truncated"].write_bytes(data[: len(data) * 2 // 3])
    return paths


def test_twix_last_measurement_by_default_and_measurement_option(tmp_path: Path, twix_variants) -> None:
    reference = np.load(REAL_DATA / "phantom_gre_2coil_os2.npy")
    last, first = tmp_path / "last.h5", tmp_path / "first.h5"
    assert run_cli("convert", twix_variants["two"], "-o", last).exit_code == 0
    assert run_cli("convert", twix_variants["two"], "-o", first, "--measurement", "0").exit_code == 0
    with open_volume(last) as a, open_volume(first) as b:
        np.testing.assert_array_equal(a.read_kspace(), reference)
        np.testing.assert_array_equal(b.read_kspace(), 2 * reference)
        assert (a.attrs["twix_measurement"], a.attrs["twix_measurements"]) == (1, 2)
    out = tmp_path / "none.h5"
    assert_refused(run_cli("convert", twix_variants["two"], "-o", out, "--measurement", "2"), "out of range", out)


def test_twix_multislice(tmp_path: Path, twix_variants) -> None:
    import json

    out = tmp_path / "multicoil" / "slices.h5"
    assert run_cli("convert", twix_variants["slices"], "-o", out).exit_code == 0
    reference = np.load(REAL_DATA / "phantom_gre_2coil_os2.npy")[0]
    with open_volume(out) as volume:
        np.testing.assert_array_equal(volume.read_kspace(), np.stack([reference, 3 * reference]))
        positions = np.array(json.loads(volume.attrs["geometry"])["positions"])
    np.testing.assert_allclose(positions[1] - positions[0], [0, 0, 4.0], atol=1e-5)
    assert len(SliceDataset(out.parent, "multicoil")) == 2


def test_twix_noise_measurement_prewhitens(tmp_path: Path, twix_variants) -> None:
    import torch

    from mrirecon.mri.prewhiten import whitening_matrix

    out = tmp_path / "white.h5"
    result = run_cli("convert", twix_variants["noise"], "-o", out, "--prewhiten")
    assert result.exit_code == 0, result.stderr
    noise = np.load(REAL_DATA / "noise_16coil_96.npy")[:2, : 57 * 320]
    with h5py.File(out) as handle:
        assert handle.attrs["twix_noise_measurement"] == 0 and handle.attrs["noise_samples"] == 57 * 320
        assert handle.attrs["noise_dwell_ratio"] == 1.0  # both protocols state the same dwell time
        expected = whitening_matrix(torch.from_numpy(noise)).numpy()
        np.testing.assert_allclose(handle.attrs["whitening_matrix"], expected, rtol=1e-5)


@pytest.mark.parametrize(
    "variant,words",
    [
        ("averages", "multiple averages"),
        ("partitions", "3D partitions"),
        ("echoes", "multiple echoes"),
        ("partial", "partial Fourier"),
        ("truncated", "truncated"),
    ],
)
def test_twix_unsupported_or_truncated_is_one_sentence(tmp_path: Path, twix_variants, variant: str, words: str) -> None:
    out = tmp_path / "out" / "x.h5"
    result = run_cli("convert", twix_variants[variant], "-o", out)
    assert_refused(result, f"{variant}.dat", out)
    assert words in result.stderr


# --- ISMRMRD ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ismrmrd_7slices(tmp_path_factory) -> Path:
    """The 7-slice, 8-coil GE phantom as ISMRMRD, 8 columns of zero padding each side, with noise
    acquisitions (the first 8 coils of the real noise scan)."""
    path = tmp_path_factory.mktemp("mrd") / "gre7.h5"
    noise = np.load(REAL_DATA / "noise_16coil_96.npy")[:8]
    write_ismrmrd(path, np.load(REAL_DATA / "phantom_gre_8coil_7slices.npy"), noise=noise, pad=8)
    return path


def test_ismrmrd_multislice_with_padding_and_noise(tmp_path: Path, ismrmrd_7slices: Path) -> None:
    out = tmp_path / "multicoil" / "gre7.h5"
    result = run_cli("convert", ismrmrd_7slices, "-o", out)
    assert result.exit_code == 0, result.stderr
    kspace = np.load(REAL_DATA / "phantom_gre_8coil_7slices.npy")
    with open_volume(out) as volume:
        stored = volume.read_kspace()
        assert stored.shape == (7, 8, 128, 144) and volume.padding == (8, 136)
        np.testing.assert_array_equal(stored[..., 8:136], kspace)
        assert not stored[..., :8].any() and not stored[..., 136:].any()
        assert volume.recon_crop == (128, 128)
    with h5py.File(out) as converted, h5py.File(ismrmrd_7slices) as source:
        assert converted["ismrmrd_header"][()] == source["dataset/xml"][0]  # the source's header, verbatim
    dataset = SliceDataset(out.parent, "multicoil")
    assert len(dataset) == 7
    _, _, target, attrs, _, index = dataset[6]
    assert target.shape == (128, 128) and (attrs["padding_left"], attrs["padding_right"]) == (8, 136)


def test_ismrmrd_noise_prewhitening_recorded(tmp_path: Path, ismrmrd_7slices: Path) -> None:
    out = tmp_path / "white.h5"
    result = run_cli("convert", ismrmrd_7slices, "-o", out, "--prewhiten")
    assert result.exit_code == 0, result.stderr
    with h5py.File(out) as handle:
        assert handle.attrs["prewhitened"] and handle.attrs["noise_samples"] == 18432
        assert handle.attrs["whitening_matrix"].shape == (8, 8)
        assert handle.attrs["noise_source"] == "noise acquisitions in the input"
        assert handle.attrs["noise_dwell_ratio"] == 1.0
        matrix = handle.attrs["whitening_matrix"]
    # a noise scan sampled with twice the image's dwell time has half its noise variance
    slow = tmp_path / "slow_noise.h5"
    kspace = np.load(REAL_DATA / "phantom_gre_8coil_7slices.npy")[:1]
    write_ismrmrd(slow, kspace, noise=np.load(REAL_DATA / "noise_16coil_96.npy")[:8], noise_dwell_us=10.0)
    assert run_cli("convert", slow, "-o", tmp_path / "slow.h5", "--prewhiten").exit_code == 0
    with h5py.File(tmp_path / "slow.h5") as handle:
        assert handle.attrs["noise_dwell_ratio"] == 2.0
        np.testing.assert_allclose(handle.attrs["whitening_matrix"], matrix / np.sqrt(2), rtol=1e-5, atol=1e-3 * np.abs(matrix).max())


def test_ismrmrd_without_image_acquisitions_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "noise_only.h5"
    write_ismrmrd(path, np.zeros((1, 2, 16, 0), np.complex64), noise=np.load(REAL_DATA / "noise_16coil_96.npy")[:2])
    out = tmp_path / "o.h5"
    result = run_cli("convert", path, "-o", out)
    assert_refused(result, "noise_only.h5", out)
    assert "no image acquisitions" in result.stderr


# --- BART .cfl ---------------------------------------------------------------------------------


def write_cfl(base: Path, array: np.ndarray) -> None:
    header, data = cfl_bytes(array)
    base.with_suffix(".hdr").write_bytes(header)
    base.with_suffix(".cfl").write_bytes(data)


def test_cfl_to_fastmri_to_cfl_is_exact(tmp_path: Path) -> None:
    kspace = np.load(REAL_DATA / "phantom_gre_8coil_7slices.npy")[:3]
    write_cfl(tmp_path / "ks", fastmri_to_bart(kspace))
    out = tmp_path / "fastmri" / "ks.h5"
    result = run_cli("convert", tmp_path / "ks.cfl", "-o", out)
    assert result.exit_code == 0, result.stderr
    with open_volume(out) as volume:
        np.testing.assert_array_equal(volume.read_kspace(), kspace)
    assert len(SliceDataset(out.parent, "multicoil")) == 3
    back = run_cli("export", out, "--format", "cfl", "--kspace", "-o", tmp_path / "back")
    assert back.exit_code == 0, back.stderr
    np.testing.assert_array_equal(read_cfl(tmp_path / "back" / "ks.cfl"), fastmri_to_bart(kspace))


@pytest.mark.parametrize(
    "make,words",
    [
        (lambda b: b.with_suffix(".hdr").write_text("# Dimensions\n4 4 1 2 1\n"), "needs its .cfl"),
        (lambda b: (b.with_suffix(".hdr").write_text("# Dimensions\n4 4 1 2 1\n"), b.with_suffix(".cfl").write_bytes(b"\0" * 100)), "need 256"),
        (lambda b: write_cfl(b, np.ones((4, 4, 3, 2, 1, 2), np.complex64)), "PHS2 (3D)"),
        (lambda b: write_cfl(b, np.ones((4, 4, 1, 2, 1, 2), np.complex64)), "TE"),
    ],
)
def test_cfl_bad_input(tmp_path: Path, make, words: str) -> None:
    base = tmp_path / "bad"
    make(base)
    out = tmp_path / "out.h5"
    result = run_cli("convert", base.with_suffix(".hdr"), "-o", out)
    assert_refused(result, "bad.", out)
    assert words in result.stderr


# --- convert's own safety -----------------------------------------------------------------------


def test_convert_never_overwrites_its_input(tmp_path: Path) -> None:
    src = tmp_path / "x.npy"
    np.save(src, np.load(REAL_DATA / "phantom_gre_1coil.npy"))
    before = src.read_bytes()
    result = run_cli("convert", src, "-o", src, "--overwrite")
    assert result.exit_code == 2 and "is the input" in result.stderr
    assert src.read_bytes() == before
    (tmp_path / "link.npy").symlink_to(src)
    assert run_cli("convert", tmp_path / "link.npy", "-o", src, "--overwrite").exit_code == 2
    assert src.read_bytes() == before


def test_convert_output_folder_and_empty_npy_are_one_sentence(tmp_path: Path) -> None:
    src = tmp_path / "x.npy"
    np.save(src, np.load(REAL_DATA / "phantom_gre_1coil.npy"))
    folder = tmp_path / "folder"
    folder.mkdir()
    result = run_cli("convert", src, "-o", folder, "--overwrite")
    assert_refused(result, "folder", folder / "x.h5")
    empty = tmp_path / "empty.npy"
    empty.write_bytes(b"")
    result = run_cli("convert", empty, "-o", tmp_path / "e.h5")
    assert_refused(result, "empty.npy", tmp_path / "e.h5")
    result = run_cli("convert", empty, "-o", tmp_path / "e.h5", "--format", "npy")
    assert_refused(result, "empty.npy", tmp_path / "e.h5")


def test_ismrmrd_data_in_another_file_is_refused(tmp_path: Path, ismrmrd_7slices: Path) -> None:
    linked = tmp_path / "linked.h5"
    with h5py.File(linked, "w") as handle:
        with h5py.File(ismrmrd_7slices) as source:
            handle["dataset/xml"] = source["dataset/xml"][()]
        handle["dataset/data"] = h5py.ExternalLink(str(ismrmrd_7slices), "/dataset/data")
    out = tmp_path / "o.h5"
    assert_refused(run_cli("convert", linked, "-o", out), "linked.h5", out)


def test_options_of_another_format_are_refused(tmp_path: Path) -> None:
    out = tmp_path / "o.h5"
    result = run_cli("convert", REAL_DATA / "phantom_gre_1coil.npy", "-o", out, "--measurement", "0")
    assert_refused(result, "--measurement applies to twix", out)
    result = run_cli("convert", TWIX / "pulseq_gre_1coil.dat", "-o", out, "--axes", "SHW")
    assert_refused(result, "--axes applies to .npy", out)


@pytest.fixture(scope="module")
def every_format(tmp_path_factory, ismrmrd_7slices: Path) -> dict[str, Path]:
    """One valid file of each input format (two slices of the real 7-slice phantom, the real twix)."""
    from mrirecon.io.cfl import ra_bytes

    folder = tmp_path_factory.mktemp("formats")
    kspace = np.load(REAL_DATA / "phantom_gre_8coil_7slices.npy")[:2]
    np.save(folder / "scan.npy", kspace)
    write_cfl(folder / "scan", fastmri_to_bart(kspace))
    (folder / "scan.ra").write_bytes(ra_bytes(fastmri_to_bart(kspace)))
    return {
        "twix": TWIX / "twixtools_gre_2coil.dat",
        "ismrmrd": ismrmrd_7slices,
        "npy": folder / "scan.npy",
        "cfl": folder / "scan.cfl",
        "ra": folder / "scan.ra",
    }


@pytest.mark.parametrize("fmt", ["twix", "ismrmrd", "npy", "cfl", "ra"])
def test_truncated_input_of_every_format_is_one_sentence(tmp_path: Path, every_format, fmt: str) -> None:
    source = every_format[fmt]
    data = source.read_bytes()
    for fraction in (0.02, 0.5, 0.98):
        bad = tmp_path / f"cut{source.suffix}"
        bad.write_bytes(data[: int(len(data) * fraction)])
        if fmt == "cfl":
            bad.with_suffix(".hdr").write_bytes(source.with_suffix(".hdr").read_bytes())
        out = tmp_path / "out" / "cut.h5"
        result = run_cli("convert", bad, "-o", out)
        assert_refused(result, "cut.", out)
        assert "unexpected" not in result.stderr, (fraction, result.stderr)
