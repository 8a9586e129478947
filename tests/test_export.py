"""export: NIfTI, DICOM, .cfl, PNG, checked by real clients (dcm2niix, BART, pydicom, nibabel)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import h5py
import numpy as np
import pytest

from cli_helpers import run_cli
from conftest import REAL_DATA, apt_tool
from mrirecon.io import write_reconstruction
from mrirecon.io.cfl import read_cfl

TWIX = REAL_DATA.parent / "raw" / "siemens_twix"


@pytest.fixture(scope="module")
def dcm2niix() -> str:
    return apt_tool("dcm2niix", "dcm2niix")


@pytest.fixture(scope="module")
def bart() -> str:
    return apt_tool("bart", "bart")


def converted_with_recon(folder: Path, source: Path, name: str, attrs: dict) -> dict:
    """``convert`` ``source`` to ``folder/data/NAME.h5`` and write its target as a reconstruction
    file ``folder/recon/NAME.h5`` the way the recon commands write one (no geometry)."""
    kspace_file = folder / "data" / f"{name}.h5"
    assert run_cli("convert", source, "-o", kspace_file).exit_code == 0
    with h5py.File(kspace_file) as handle:
        target = handle["reconstruction_rss"][()]
    recon = folder / "recon" / f"{name}.h5"
    recon.parent.mkdir()
    write_reconstruction(recon, target, attrs=attrs)
    return {"kspace": kspace_file, "recon": recon, "image": target}


@pytest.fixture(scope="module")
def scanner_recon(tmp_path_factory) -> dict[str, Path]:
    """The real 2-coil twix scan converted (geometry from its protocol), and a recon of it
    written like cs-recon writes one (no geometry, method and acceleration attributes)."""
    folder = tmp_path_factory.mktemp("scanner")
    return converted_with_recon(folder, TWIX / "twixtools_gre_2coil.dat", "gre", {"method": "cs-tv", "acceleration": 4.0, "patient_id": "gre"})


@pytest.fixture(scope="module")
def multislice_recon(tmp_path_factory) -> dict[str, Path]:
    """A 7-slice recon whose geometry comes from an ISMRMRD file (5 mm slices, axial)."""
    from ismrmrd_files import write_ismrmrd

    folder = tmp_path_factory.mktemp("multi")
    write_ismrmrd(folder / "gre7.mrd.h5", np.load(REAL_DATA / "phantom_gre_8coil_7slices.npy"), recon_fov_mm=(220.0, 200.0, 5.0))
    return converted_with_recon(folder, folder / "gre7.mrd.h5", "gre7", {"method": "zero-filled", "acceleration": 8.0})


def test_nifti_from_recon_with_geometry_from_its_kspace_file(tmp_path: Path, multislice_recon) -> None:
    import nibabel as nib

    out = tmp_path / "nii"
    result = run_cli("export", multislice_recon["recon"], "--format", "nifti", "-o", out, "--geometry-from", multislice_recon["kspace"].parent)
    assert result.exit_code == 0, result.stderr
    image = nib.load(out / "gre7.nii.gz")
    assert image.get_data_dtype() == np.float32
    np.testing.assert_array_equal(np.asarray(image.dataobj), np.transpose(multislice_recon["image"], (1, 2, 0)))
    np.testing.assert_allclose(image.header.get_zooms(), (220 / 128, 200 / 128, 5.0), rtol=1e-6)
    assert image.header["sform_code"] == 1


def test_nifti_without_geometry_is_identity_with_a_warning(tmp_path: Path, multislice_recon) -> None:
    import nibabel as nib

    result = run_cli("export", multislice_recon["recon"], "--format", "nifti", "-o", tmp_path)
    assert result.exit_code == 0, result.stderr
    assert "warning" in result.stderr and "identity" in result.stderr
    image = nib.load(tmp_path / "gre7.nii.gz")
    np.testing.assert_array_equal(image.header.get_sform(), np.eye(4))  # stored, marked "unknown"
    assert image.header["sform_code"] == 0 and image.header["qform_code"] == 0


def test_dicom_series_read_by_pydicom_and_dcm2niix_matches_our_nifti(tmp_path: Path, multislice_recon, dcm2niix: str) -> None:
    import nibabel as nib
    import pydicom

    recon, source = multislice_recon["recon"], multislice_recon["kspace"].parent
    assert run_cli("export", recon, "--format", "dicom", "-o", tmp_path / "dcm", "--geometry-from", source).exit_code == 0
    assert run_cli("export", recon, "--format", "nifti", "-o", tmp_path / "nii", "--geometry-from", source).exit_code == 0
    files = sorted((tmp_path / "dcm" / "gre7").iterdir())
    assert len(files) == 7
    datasets = [pydicom.dcmread(f) for f in files]
    assert len({d.SeriesInstanceUID for d in datasets}) == 1 and len({d.SOPInstanceUID for d in datasets}) == 7
    assert {d.SOPClassUID for d in datasets} == {"1.2.840.10008.5.1.4.1.1.4"}
    assert {float(d.RescaleSlope) for d in datasets} == {float(datasets[0].RescaleSlope)}  # one scale per volume
    assert datasets[0].SeriesDescription == "mrirecon zero-filled 8x"
    image = multislice_recon["image"]
    slope = float(datasets[0].RescaleSlope)
    for d, expected in zip(datasets, image):
        np.testing.assert_allclose(d.pixel_array * slope, expected, atol=slope / 2 + 1e-12)
    converted = tmp_path / "dcm2niix"
    converted.mkdir()
    run = subprocess.run([dcm2niix, "-z", "n", "-f", "%s", "-o", str(converted), str(tmp_path / "dcm" / "gre7")], capture_output=True, text=True)
    assert run.returncode == 0, run.stdout + run.stderr
    theirs = nib.as_closest_canonical(nib.load(next(converted.glob("*.nii"))))
    ours = nib.as_closest_canonical(nib.load(tmp_path / "nii" / "gre7.nii.gz"))
    assert theirs.shape == ours.shape
    np.testing.assert_allclose(theirs.header.get_zooms()[:3], ours.header.get_zooms()[:3], rtol=1e-4)
    np.testing.assert_allclose(theirs.affine, ours.affine, atol=1e-2)
    np.testing.assert_allclose(theirs.get_fdata(), ours.get_fdata(), atol=slope / 2 + 1e-9 * image.max())


def test_dicom_without_geometry_claims_none(tmp_path: Path, scanner_recon) -> None:
    import pydicom

    result = run_cli("export", scanner_recon["recon"], "--format", "dicom", "-o", tmp_path)
    assert result.exit_code == 0 and "warning" in result.stderr
    ds = pydicom.dcmread(next((tmp_path / "gre").iterdir()))
    assert "PixelSpacing" not in ds and "ImagePositionPatient" not in ds and "ImageOrientationPatient" not in ds
    assert ds.SeriesDescription == "mrirecon cs-tv 4x"


def test_twix_geometry_reaches_the_dicom(tmp_path: Path, scanner_recon) -> None:
    import pydicom

    result = run_cli("export", scanner_recon["recon"], "--format", "dicom", "-o", tmp_path, "--geometry-from", scanner_recon["kspace"])
    assert result.exit_code == 0, result.stderr
    ds = pydicom.dcmread(next((tmp_path / "gre").iterdir()))
    assert [float(v) for v in ds.PixelSpacing] == [200 / 160, 200 / 160] and float(ds.SliceThickness) == 4.0
    assert len(ds.ImageOrientationPatient) == 6 and len(ds.ImagePositionPatient) == 3


def test_cfl_read_by_bart(tmp_path: Path, scanner_recon, bart: str) -> None:
    result = run_cli("export", scanner_recon["kspace"], "--format", "cfl", "--kspace", "-o", tmp_path)
    assert result.exit_code == 0, result.stderr
    shown = subprocess.run([bart, "show", "-m", str(tmp_path / "gre")], capture_output=True, text=True, check=True).stdout
    assert "Dimensions: 16" in shown or "320 160 1 2" in shown.replace("\t", " ")
    dims = subprocess.run([bart, "show", "-d", "3", str(tmp_path / "gre")], capture_output=True, text=True, check=True)
    assert dims.stdout.strip() == "2"  # coils in BART's COIL dimension
    # BART's inverse centred FFT of our k-space, then forward again: back where it started
    subprocess.run([bart, "fft", "-u", "-i", "3", str(tmp_path / "gre"), str(tmp_path / "img")], check=True)
    subprocess.run([bart, "fft", "-u", "3", str(tmp_path / "img"), str(tmp_path / "back")], check=True)
    original = read_cfl(tmp_path / "gre.cfl")
    np.testing.assert_allclose(read_cfl(tmp_path / "back.cfl"), original, atol=1e-5 * np.abs(original).max())
    # ... and BART's image RSS, cropped like fastMRI, is our target
    subprocess.run([bart, "rss", "8", str(tmp_path / "img"), str(tmp_path / "rss")], check=True)
    rss = np.abs(read_cfl(tmp_path / "rss.cfl")).reshape(320, 160)[80:240]
    np.testing.assert_allclose(rss, scanner_recon["image"][0], rtol=1e-3, atol=1e-4 * rss.max())


def test_png_montage(tmp_path: Path, multislice_recon) -> None:
    from matplotlib import image as mpimg

    assert run_cli("export", multislice_recon["recon"], "--format", "png", "-o", tmp_path).exit_code == 0
    montage = mpimg.imread(tmp_path / "gre7.png")
    assert montage.shape[:2] == (3 * 128, 3 * 128)  # 7 slices on a 3x3 grid
    assert montage[:128, :128, 0].max() > 0.5 and montage[-128:, -128:, 0].max() == 0  # the last tile is empty


def test_export_bad_inputs_write_nothing(tmp_path: Path, multislice_recon) -> None:
    bad = tmp_path / "bad.h5"
    with h5py.File(bad, "w") as handle:
        handle["something"] = np.zeros(3)
    out = tmp_path / "out"
    result = run_cli("export", bad, "--format", "nifti", "-o", out)
    assert result.exit_code == 1 and "bad.h5" in result.stderr and "Traceback" not in result.stderr
    assert not out.exists() or not any(out.iterdir())
    # geometry from a file with other slice positions: refused, nothing written
    other = tmp_path / "one.h5"
    assert run_cli("convert", TWIX / "twixtools_gre_2coil.dat", "-o", other).exit_code == 0
    result = run_cli("export", multislice_recon["recon"], "--format", "dicom", "-o", out, "--geometry-from", other)
    assert result.exit_code == 1 and "1 slice positions" in result.stderr
    assert not out.exists() or not any(out.iterdir())
    # an existing output is kept without --overwrite
    assert run_cli("export", multislice_recon["recon"], "--format", "png", "-o", out).exit_code == 0
    before = (out / "gre7.png").read_bytes()
    result = run_cli("export", multislice_recon["recon"], "--format", "png", "-o", out)
    assert result.exit_code == 1 and "exists" in result.stderr and (out / "gre7.png").read_bytes() == before


def test_geometry_attribute_carried_into_a_recon_file_is_used(tmp_path: Path, scanner_recon) -> None:
    import nibabel as nib

    with h5py.File(scanner_recon["kspace"]) as handle:
        geometry = handle.attrs["geometry"]
    recon = tmp_path / "carried.h5"
    write_reconstruction(recon, scanner_recon["image"], attrs={"method": "cs-tv", "geometry": geometry})
    result = run_cli("export", recon, "--format", "nifti", "-o", tmp_path / "out")
    assert result.exit_code == 0 and "warning" not in result.stderr
    np.testing.assert_allclose(nib.load(tmp_path / "out" / "carried.nii.gz").header.get_zooms(), (1.25, 1.25, 4.0))


def test_recon_images_as_cfl(tmp_path: Path, multislice_recon) -> None:
    assert run_cli("export", multislice_recon["recon"], "--format", "cfl", "-o", tmp_path).exit_code == 0
    images = read_cfl(tmp_path / "gre7.cfl")
    assert images.shape[0:2] == (128, 128) and images.shape[13] == 7  # READ, PHS1, ..., SLICE
    np.testing.assert_array_equal(np.moveaxis(images.reshape(128, 128, 7), 2, 0).real, multislice_recon["image"])


def test_ra_both_ways_with_bart(tmp_path: Path, scanner_recon, bart: str) -> None:
    from mrirecon.io import open_volume

    # BART writes .ra from our .cfl; convert reads it back exactly
    assert run_cli("export", scanner_recon["kspace"], "--format", "cfl", "--kspace", "-o", tmp_path).exit_code == 0
    subprocess.run([bart, "copy", str(tmp_path / "gre"), str(tmp_path / "bart.ra")], check=True)
    result = run_cli("convert", tmp_path / "bart.ra", "-o", tmp_path / "fastmri" / "bart.h5")
    assert result.exit_code == 0, result.stderr
    with open_volume(scanner_recon["kspace"]) as a, open_volume(tmp_path / "fastmri" / "bart.h5") as b:
        np.testing.assert_array_equal(a.read_kspace(), b.read_kspace())
    # our .ra is what BART reads: bart copy to .cfl gives our .cfl's bytes
    assert run_cli("export", scanner_recon["kspace"], "--format", "ra", "--kspace", "-o", tmp_path / "ra").exit_code == 0
    subprocess.run([bart, "copy", str(tmp_path / "ra" / "gre.ra"), str(tmp_path / "from_ra")], check=True)
    assert (tmp_path / "from_ra.cfl").read_bytes() == (tmp_path / "gre.cfl").read_bytes()
    truncated = tmp_path / "short.ra"
    truncated.write_bytes((tmp_path / "bart.ra").read_bytes()[:-8])
    out = tmp_path / "short.h5"
    result = run_cli("convert", truncated, "-o", out)
    assert result.exit_code == 2 and "short.ra" in result.stderr and not out.exists()


def test_export_clashing_names_and_missing_inputs_are_refused_up_front(tmp_path: Path, multislice_recon) -> None:
    other = tmp_path / "other" / "gre7.h5"
    other.parent.mkdir()
    other.write_bytes(multislice_recon["recon"].read_bytes())
    out = tmp_path / "out"
    result = run_cli("export", multislice_recon["recon"], other, "--format", "png", "-o", out)
    assert result.exit_code == 2 and "written twice" in result.stderr and not out.exists()
    result = run_cli("export", tmp_path / "missing", "--format", "png", "-o", out)
    assert result.exit_code == 2 and "missing" in result.stderr and "Traceback" not in result.stderr
