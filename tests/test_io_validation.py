"""Bad input: one clear line naming the file, non-zero exit, no traceback, nothing written."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest

from cli_helpers import run_cli
from mrirecon.io import InputError, make_header_xml, open_volume


def _h5(path: Path, **datasets) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as f:
        for k, v in datasets.items():
            f.create_dataset(k, data=v)
    return path


def _complex(*shape) -> np.ndarray:
    return (np.ones(shape) + 1j * np.ones(shape)).astype(np.complex64)


HEADER = make_header_xml((8, 6), (4, 4))


def bad_files(tmp: Path) -> dict[str, tuple[Path, str]]:
    nan = _complex(2, 8, 6)
    nan[1, 3, 2] = np.nan
    inf = _complex(2, 2, 8, 6)
    inf[0, 0, 0, 0] = np.inf
    (tmp / "bad").mkdir(parents=True, exist_ok=True)
    (tmp / "bad" / "text.h5").write_text("not hdf5 at all\n")
    return {
        "missing": (tmp / "bad" / "missing.h5", "does not exist"),
        "not_hdf5": (tmp / "bad" / "text.h5", "not an HDF5 file"),
        "no_kspace": (_h5(tmp / "bad" / "nokspace.h5", other=np.zeros(3)), "no 'kspace'"),
        "real_kspace": (_h5(tmp / "bad" / "real.h5", kspace=np.zeros((2, 8, 6), np.float32)), "not complex"),
        "rank2": (_h5(tmp / "bad" / "rank2.h5", kspace=_complex(8, 6)), "rank 2"),
        "rank5": (_h5(tmp / "bad" / "rank5.h5", kspace=_complex(1, 1, 2, 8, 6)), "rank 5"),
        "empty": (_h5(tmp / "bad" / "empty.h5", kspace=_complex(0, 8, 6)), "empty"),
        "nan": (_h5(tmp / "bad" / "nan.h5", kspace=nan, ismrmrd_header=HEADER), "NaN or Inf"),
        "inf": (_h5(tmp / "bad" / "inf.h5", kspace=inf, ismrmrd_header=HEADER), "NaN or Inf"),
        "mask_len": (
            _h5(tmp / "bad" / "mask.h5", kspace=_complex(2, 8, 6), mask=np.ones(5, bool), ismrmrd_header=HEADER),
            "5 entries but kspace has 6 columns",
        ),
    }


@pytest.mark.parametrize(
    "case", ["missing", "not_hdf5", "no_kspace", "real_kspace", "rank2", "rank5", "empty", "nan", "inf", "mask_len"]
)
@pytest.mark.parametrize("command", ["zf-recon", "subsample"])
def test_bad_input_is_one_clear_line(tmp_path: Path, case: str, command: str) -> None:
    path, expected = bad_files(tmp_path)[case]
    out = tmp_path / "out"
    result = run_cli(command, path, "-o", out)
    assert result.exit_code != 0
    lines = [line for line in result.stderr.splitlines() if "error" in line]
    assert len(lines) == 1, result.stderr
    assert str(path.name) in lines[0] and expected in lines[0]
    assert "Traceback" not in result.stderr + result.stdout
    written = [p for p in out.iterdir() if p.name != ".mrirecon"] if out.exists() else []  # the batch manifest is kept
    assert not written, "nothing may be written for a bad input"


def test_batch_goes_on_after_a_bad_file(tmp_path: Path, volume_factory) -> None:
    good = volume_factory("good.h5")
    bad, _ = bad_files(tmp_path)["nan"]
    out = tmp_path / "zf"
    result = run_cli("zf-recon", bad, good, "-o", out)
    assert result.exit_code == 1
    assert (out / "good.h5").exists() and not (out / bad.name).exists()
    assert "1 failed" in result.stderr


def test_unparsable_header_falls_back_with_warning(tmp_path: Path) -> None:
    path = _h5(tmp_path / "hdr.h5", kspace=_complex(2, 8, 6), ismrmrd_header=b"<not-xml")
    with open_volume(path) as volume:
        assert volume.padding == (0, 6)
        assert volume.warnings and "unusable ismrmrd_header" in volume.warnings[0]
    result = run_cli("zf-recon", path, "-o", tmp_path / "out")
    assert result.exit_code == 0
    assert "warning" in result.stderr and "hdr.h5" in result.stderr
    assert (tmp_path / "out" / "hdr.h5").exists()


def test_header_padding_is_parsed(tmp_path: Path, volume_factory) -> None:
    path = volume_factory(padding=5, shape=(64, 48))
    with open_volume(path) as volume:
        assert volume.padding == (5, 43)
        assert volume.recon_crop == (32, 32)
        kspace = volume.read_kspace()
    assert not kspace[..., :5].any() and not kspace[..., 43:].any() and kspace[..., 5:43].any()


def test_lazy_slice_read_touches_one_slice(tmp_path: Path, monkeypatch) -> None:
    """A 15-coil volume: reading one slice reads about one slice's bytes, not the volume."""
    import mrirecon.io.fastmri_h5 as fh

    kspace = np.random.default_rng(0).standard_normal((8, 15, 160, 96)).astype(np.float32).view(np.complex64)
    kspace = kspace[..., :48]
    path = _h5(tmp_path / "big.h5", kspace=np.ascontiguousarray(kspace), ismrmrd_header=make_header_xml((160, 48), (80, 48)))
    read_bytes = []

    class CountingFile:
        def __init__(self, p):
            self.f = open(p, "rb")

        def read(self, n=-1):
            data = self.f.read(n)
            read_bytes.append(len(data))
            return data

        def readinto(self, b):
            n = self.f.readinto(b)
            read_bytes.append(n)
            return n

        def __getattr__(self, name):
            return getattr(self.f, name)

    real_file = h5py.File
    monkeypatch.setattr(fh.h5py, "File", lambda p, mode="r", **kw: real_file(CountingFile(p), mode))
    with fh.open_volume(path) as volume:
        read_bytes.clear()
        one = volume.read_slice(5)
    np.testing.assert_array_equal(one, kspace[5])
    slice_bytes = kspace[5].nbytes
    assert sum(read_bytes) < 1.5 * slice_bytes < kspace.nbytes / 4


def test_input_error_names_the_file() -> None:
    err = InputError("/x/y.h5", "is broken")
    assert str(err) == "/x/y.h5: is broken"
