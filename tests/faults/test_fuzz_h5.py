"""Property-based fuzzer (hypothesis) over HDF5 layouts, shapes, dtypes and attributes.

For every generated file and command: no traceback, an exit code of 0, 1 or 2, the input (and
a "secret" file an external dataset points at) unchanged, no temporary or partial output, and an
output only when the command succeeded, readable as a whole. Deterministic (``derandomize``) so
CI sees the same few dozen examples every run.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import h5py
import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cli_helpers import run_cli
from faults.fault_helpers import leftovers, tree_hashes
from mrirecon.io import make_header_xml

DTYPES = ["complex64", "complex128", "float32", "int16", "bool"]
LAYOUTS = ["contiguous", "chunked", "gzip", "external", "external_link", "virtual", "soft_link", "group", "late"]
VALUES = ["random", "zeros", "nan", "inf", "huge"]
ATTR_VALUES = st.sampled_from([None, 0, -4, 1, 2, 4, 8.0, float("nan"), float("inf"), "four", True, 10**6, -7, 2.5])


@st.composite
def h5_layouts(draw) -> dict:
    rank = draw(st.integers(min_value=1, max_value=5))
    shape = tuple(draw(st.lists(st.integers(min_value=0, max_value=6), min_size=rank, max_size=rank)))
    if rank >= 3 and draw(st.booleans()):  # mostly plausible slices x (coils) x H x W
        shape = shape[:-2] + (draw(st.sampled_from([4, 8])), draw(st.sampled_from([6, 8])))
    spec = {
        "shape": shape,
        "dtype": draw(st.sampled_from(DTYPES)),
        "layout": draw(st.sampled_from(LAYOUTS)),
        "values": draw(st.sampled_from(VALUES)),
        "header": draw(st.sampled_from(["none", "valid", "garbage", "wrong_size"])),
        "mask": draw(st.sampled_from(["none", "ok", "wrong_len", "2.5", "0.3", "zeros", "2d"])),
        "target": draw(st.sampled_from(["none", "ok", "wrong_slices", "int", "rank2"])),
        "acceleration": draw(ATTR_VALUES),
        "num_low_frequency": draw(ATTR_VALUES),
        "command": draw(st.sampled_from(["zf-recon", "subsample", "eval"])),
    }
    if not draw(st.booleans()):  # about half the examples: a usable file with plausible variations
        coils = draw(st.sampled_from([(), (1,), (3,)]))
        spec.update(
            shape=(draw(st.integers(1, 3)), *coils, 8, draw(st.sampled_from([6, 8]))),
            dtype=draw(st.sampled_from(["complex64", "complex128"])),
            layout=draw(st.sampled_from(["contiguous", "chunked", "gzip", "soft_link"])),
            values=draw(st.sampled_from(["random", "huge"])),
            header=draw(st.sampled_from(["none", "valid", "garbage"])),
            mask=draw(st.sampled_from(["none", "ok"])),
            target=draw(st.sampled_from(["none", "ok"])),
            acceleration=draw(st.sampled_from([None, 2, 4, 8.0])),
            num_low_frequency=draw(st.sampled_from([None, 1, 2])),
        )
    return spec


def _values(spec: dict, rng: np.random.Generator) -> np.ndarray:
    shape, dtype = spec["shape"], np.dtype(spec["dtype"])
    data = rng.standard_normal(shape) + (1j * rng.standard_normal(shape) if dtype.kind == "c" else 0)
    if spec["values"] == "zeros":
        data = np.zeros(shape)
    elif spec["values"] == "huge":
        data = data * 1e30
    data = data.astype(dtype) if dtype.kind != "b" else data.real > 0
    if spec["values"] in ("nan", "inf") and data.size and dtype.kind in "fc":
        data.flat[data.size // 2] = np.nan if spec["values"] == "nan" else np.inf
    return data


def _write(folder: Path, spec: dict) -> Path:
    rng = np.random.default_rng(0)
    path = folder / "in" / "vol.h5"
    path.parent.mkdir(parents=True)
    secret = folder / "secret.bin"
    secret.write_bytes(b"SECRET" * 2000)
    other = folder / "other.h5"
    data = _values(spec, rng)
    width = spec["shape"][-1]
    with h5py.File(path, "w") as handle:
        layout = spec["layout"]
        if layout == "contiguous":
            handle.create_dataset("kspace", data=data)
        elif layout in ("chunked", "gzip") and data.size:
            handle.create_dataset("kspace", data=data, chunks=True, compression="gzip" if layout == "gzip" else None)
        elif layout == "external" and data.size and data.dtype.kind != "b":
            nbytes = data.nbytes
            secret.write_bytes((b"SECRET" * (nbytes // 6 + 1))[:nbytes])
            handle.create_dataset("kspace", shape=data.shape, dtype=data.dtype, external=[(str(secret), 0, nbytes)])
        elif layout in ("external_link", "virtual"):
            with h5py.File(other, "w") as o:
                o["kspace"] = data
            if layout == "external_link":
                handle["kspace"] = h5py.ExternalLink(str(other), "kspace")
            else:
                vl = h5py.VirtualLayout(shape=data.shape, dtype=data.dtype)
                vl[...] = h5py.VirtualSource(str(other), "kspace", shape=data.shape)
                handle.create_virtual_dataset("kspace", vl)
        elif layout == "soft_link":
            handle["raw/kspace"] = data
            handle["kspace"] = h5py.SoftLink("/raw/kspace")
        elif layout == "group":
            handle.create_group("kspace")
        elif layout == "late":  # declared, never written: storage not allocated
            handle.create_dataset("kspace", shape=data.shape, dtype=data.dtype)
        else:
            handle.create_dataset("kspace", data=data)
        if spec["header"] == "valid" and len(spec["shape"]) >= 2:
            handle["ismrmrd_header"] = make_header_xml(spec["shape"][-2:], (4, 4))
        elif spec["header"] == "garbage":
            handle["ismrmrd_header"] = b"<ismrmrdHeader><broken"
        elif spec["header"] == "wrong_size":
            handle["ismrmrd_header"] = make_header_xml((64, 300), (32, 32), sampled_cols=(10, 290))
        mask = {"ok": lambda: np.arange(width) % 2 == 0, "wrong_len": lambda: np.ones(width + 3, bool),
                "2.5": lambda: np.full(width, 2.5), "0.3": lambda: np.full(width, 0.3),
                "zeros": lambda: np.zeros(width, bool), "2d": lambda: np.ones((3, width), bool)}.get(spec["mask"])
        if mask is not None:
            handle["mask"] = mask()
        slices = spec["shape"][0]
        target = {"ok": lambda: rng.random((slices, 4, 4)).astype(np.float32),
                  "wrong_slices": lambda: rng.random((slices + 1, 4, 4)).astype(np.float32),
                  "int": lambda: np.ones((slices, 4, 4), np.int32), "rank2": lambda: np.ones((4, 4), np.float32)}.get(spec["target"])
        if target is not None:
            handle["reconstruction_rss" if len(spec["shape"]) == 4 else "reconstruction_esc"] = target()
        for key in ("acceleration", "num_low_frequency"):
            if spec[key] is not None:
                handle.attrs[key] = spec[key]
    return path


@settings(max_examples=36, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(spec=h5_layouts())
def test_fuzzed_h5_inputs_never_crash_or_damage(spec: dict, fault_cases) -> None:
    fault_cases(1)
    folder = Path(tempfile.mkdtemp(prefix="mrirecon-fuzz-"))
    try:
        src = _write(folder, spec)
        before = tree_hashes(folder)
        out = folder / "out"
        if spec["command"] == "eval":
            out.mkdir()
            with h5py.File(out / "vol.h5", "w") as handle:
                handle["reconstruction"] = np.ones((max(spec["shape"][0], 1), 4, 4), np.float32)
            before = tree_hashes(folder)
            result = run_cli("eval", "--target", src.parent, "--pred", out, "--quiet", "--device", "cpu")
        else:
            mask_options = ["--accel", "2"] if spec["command"] == "subsample" else []
            result = run_cli(spec["command"], src, "-o", out, "--quiet", *mask_options)
        assert result.exit_code in (0, 1, 2), (spec, result.exit_code, result.stderr)
        assert "Traceback" not in result.stderr and "unexpected error" not in result.stderr, (spec, result.stderr)
        if result.exit_code != 0:
            assert result.stderr.strip().startswith("error:"), (spec, result.stderr)
        after = tree_hashes(folder)
        if spec["command"] != "eval":
            assert {k: v for k, v in after.items() if not k.startswith("out/")} == before, spec
            written = sorted(out.glob("*.h5")) if out.exists() else []
            assert bool(written) == (result.exit_code == 0), (spec, result.stderr)
            for path in written:
                with h5py.File(path, "r") as handle:
                    key = "kspace" if spec["command"] == "subsample" else "reconstruction"
                    assert np.isfinite(np.asarray(handle[key][()]).view(np.float32)).all()
                    assert b"SECRET" not in path.read_bytes()
        else:
            assert after == before, spec
        assert leftovers(folder) == []
    finally:
        shutil.rmtree(folder, ignore_errors=True)
