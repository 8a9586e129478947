"""The batch layer: inputs and clashes, shards, resume, manifest and status, OOM halving, stop signals."""

from __future__ import annotations

import gc
import json
import os
import random
import signal
import weakref
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from cli_helpers import run_cli
from mrirecon.io.errors import InputError
from mrirecon.io.fastmri_h5 import read_reconstruction
from mrirecon.mri.masks import MaskSpec
from mrirecon.pipelines import zf_recon as zf
from mrirecon.pipelines.inputs import expand_inputs, plan_outputs
from mrirecon.pipelines.manifest import append_line, batch_status, read_manifests
from mrirecon.pipelines.oom import is_out_of_memory
from mrirecon.pipelines.runner import RunOptions, run_recon
from mrirecon.pipelines.shard import Shard, assign, parse_shard, resolve_shard, shard_files
from mrirecon.pipelines.signals import BatchInterrupted


# --- shards ---------------------------------------------------------------------------------


def test_every_file_in_exactly_one_shard_and_shards_balanced() -> None:
    rng = random.Random(0)
    for total in range(21):
        sizes = [rng.randint(1, 1000) for _ in range(total)]
        files = [Path(f"f{i:02d}.h5") for i in range(total)]
        for count in range(1, 10):
            parts = [shard_files(files, Shard(i, count), sizes) for i in range(count)]
            flat = [f for part in parts for f in part]
            assert sorted(flat) == files, (total, count)  # none twice, none skipped
            assert all(part == sorted(part) for part in parts)  # input order kept
            loads = [sum(sizes[files.index(f)] for f in part) for part in parts]
            assert max(loads) - min(loads) <= max(sizes, default=0)  # greedy bound: shards finish together
            assert assign(sizes, count) == assign(list(sizes), count)  # deterministic


def test_shard_from_flag_slurm_array_and_torchrun() -> None:
    assert parse_shard("2/5") == Shard(2, 5)
    for bad in ("5/5", "1", "-1/2", "a/b", "1/0"):
        with pytest.raises(ValueError):
            parse_shard(bad)
    assert resolve_shard(None, {}) == Shard(0, 1)
    array = {"SLURM_ARRAY_TASK_ID": "12", "SLURM_ARRAY_TASK_MIN": "10", "SLURM_ARRAY_TASK_COUNT": "3"}
    assert resolve_shard(None, array) == Shard(2, 3)
    stepped = {"SLURM_ARRAY_TASK_ID": "4", "SLURM_ARRAY_TASK_MIN": "0", "SLURM_ARRAY_TASK_STEP": "2",
               "SLURM_ARRAY_TASK_COUNT": "3"}
    assert resolve_shard(None, stepped) == Shard(2, 3)
    ranks = {"RANK": "1", "WORLD_SIZE": "2", "LOCAL_RANK": "1"}
    assert resolve_shard(None, ranks) == Shard(1, 2)
    both = resolve_shard(None, {**array, **ranks})  # array task x rank
    assert both == Shard(2 * 2 + 1, 6)
    assert resolve_shard("1/4", {**array, **ranks}) == Shard(3, 8)  # --shard replaces the array part
    seen = {resolve_shard(None, {**array, "SLURM_ARRAY_TASK_ID": str(t), "RANK": str(r), "WORLD_SIZE": "2"})
            for t in (10, 11, 12) for r in (0, 1)}
    assert seen == {Shard(i, 6) for i in range(6)}


# --- inputs ---------------------------------------------------------------------------------


def test_inputs_sorted_deduplicated_and_clashes_refused(tmp_path: Path, volume_factory) -> None:
    a = volume_factory("b.h5", slices=1)
    volume_factory("a.hdf5", slices=1)
    (tmp_path / "full" / "notes.txt").write_text("not an input")
    os.symlink(a, tmp_path / "link_to_b.h5")
    files = expand_inputs([tmp_path / "full", a, tmp_path / "full" / ".." / "full" / "b.h5", tmp_path / "link_to_b.h5"])
    assert [f.name for f in files] == ["a.hdf5", "b.h5"]
    with pytest.raises(InputError, match="input folder does not exist"):
        expand_inputs([tmp_path / "nowhere"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match=r"empty: is a folder with no \*.h5"):
        expand_inputs([tmp_path / "empty"])
    other = volume_factory("b.h5", folder="site2", slices=1)
    with pytest.raises(InputError, match="written 2 times") as clash:
        plan_outputs(expand_inputs([a, other]), tmp_path / "out")
    assert "site2" in str(clash.value) and "--out" in str(clash.value)
    with pytest.raises(InputError, match="both an input and an output"):
        plan_outputs([a], tmp_path / "full")
    os.symlink(tmp_path / "gone.h5", tmp_path / "full" / "dangling.h5")
    result = run_cli("zf-recon", tmp_path / "full", "-o", tmp_path / "zf", "--quiet")
    assert result.exit_code == 1 and "dangling.h5: is a symbolic link" in result.stderr
    assert (tmp_path / "zf" / "a.hdf5").exists() and (tmp_path / "zf" / "b.h5").exists()
    assert run_cli("zf-recon", tmp_path / "nowhere", "-o", tmp_path / "zf").exit_code == 2


# --- resume, manifest, status ---------------------------------------------------------------


def test_skip_existing_keeps_valid_outputs_and_redoes_the_rest(tmp_path: Path, volume_factory) -> None:
    for i in range(4):
        volume_factory(f"v{i}.h5", slices=2, seed=i)
    src, out = tmp_path / "full", tmp_path / "zf"
    assert run_cli("zf-recon", src, "-o", out, "--accel", "4", "-q").exit_code == 0
    reference = {p.name: read_reconstruction(p) for p in out.glob("*.h5")}
    refused = run_cli("zf-recon", src, "-o", out, "--accel", "4", "-q")
    assert refused.exit_code == 1 and "--skip-existing" in refused.stderr and "--overwrite" in refused.stderr
    (out / "v1.h5").write_bytes((out / "v1.h5").read_bytes()[:1000])  # a torn copy
    with h5py.File(out / "v2.h5", "a") as handle:
        handle.attrs["options_hash"] = "something else"
    (out / ".v3.h5.abcd1234.tmp").write_bytes(b"left by a killed run")
    again = run_cli("zf-recon", src, "-o", out, "--accel", "4", "--skip-existing", "--json", "-")
    assert again.exit_code == 0, again.stderr
    summary = json.loads(again.stdout)
    status = {Path(r["input"]).name: r["status"] for r in summary["results"]}
    assert status == {"v0.h5": "skipped", "v1.h5": "redone", "v2.h5": "redone", "v3.h5": "skipped"}
    assert summary["stale_temporaries_removed"] == 1 and not list(out.glob(".*.tmp"))
    assert "redone, because it cannot be read" in again.stderr and "other options" in again.stderr
    for name, data in reference.items():
        np.testing.assert_array_equal(read_reconstruction(out / name), data)
    other = run_cli("zf-recon", src, "-o", out, "--accel", "8", "--skip-existing", "-q", "--json", "-")
    assert {r["status"] for r in json.loads(other.stdout)["results"]} == {"redone"}
    report = run_cli("status", out, "--inputs", src, "--inputs", tmp_path / "full" / "v0.h5", "--json")
    assert report.exit_code == 0
    merged = json.loads(report.stdout)
    assert (merged["done"], merged["failed"], merged["pending"]) == (4, 0, 0)
    assert merged["records"] == 4 + 4 + 4 + 4 and len(merged["slowest"]) == 4


def test_manifest_survives_a_torn_last_line_and_status_counts_pending(tmp_path: Path, volume_factory) -> None:
    for i in range(3):
        volume_factory(f"v{i}.h5", slices=1, seed=i)
    src, out = tmp_path / "full", tmp_path / "zf"
    assert run_cli("zf-recon", src / "v0.h5", src / "v1.h5", "-o", out, "--shard", "0/2", "-q").exit_code == 0
    manifest = next((out / ".mrirecon").glob("manifest-0of2.jsonl"))
    lines = manifest.read_text().splitlines()
    assert len(lines) == 1 and json.loads(lines[0])["status"] == "done"
    assert {"input", "output", "status", "error", "seconds", "device", "host", "shard", "options_hash"} <= set(
        json.loads(lines[0])
    )
    with open(manifest, "a") as handle:
        handle.write('{"input": "torn')  # a writer killed mid-line (a full disk)
    append_line(out / ".mrirecon" / "manifest-1of2.jsonl", json.dumps(
        {"input": str(src / "v2.h5"), "output": None, "status": "failed", "error": "bad", "seconds": 1.0,
         "host": "h", "shard": "1of2", "finished": 1.0}))
    assert len(read_manifests(out)) == 2
    status = batch_status(out, expand_inputs([src]))
    assert len(status.done) == 1 and len(status.failed) == 1 and len(status.pending) == 2
    text = run_cli("status", out, "--inputs", src)
    assert text.exit_code == 0 and "1 done, 1 failed, 2 pending" in text.stdout
    assert run_cli("status", tmp_path / "nothing").exit_code == 2


def test_dry_run_lists_the_shard_and_writes_nothing(tmp_path: Path, volume_factory) -> None:
    for i in range(5):
        volume_factory(f"v{i}.h5", slices=1, seed=i)
    listed = []
    for i in range(2):
        result = run_cli("zf-recon", tmp_path / "full", "-o", tmp_path / "zf", "--shard", f"{i}/2", "--dry-run")
        assert result.exit_code == 0
        listed += [line.split("\t")[0] for line in result.stdout.splitlines()]
    assert sorted(Path(p).name for p in listed) == [f"v{i}.h5" for i in range(5)]
    assert not (tmp_path / "zf").exists()


# --- out of memory --------------------------------------------------------------------------

ALLOCATION_FAILURES = [
    torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"),
    RuntimeError("cuFFT error: CUFFT_ALLOC_FAILED"),
    RuntimeError("cusolver error: CUSOLVER_STATUS_ALLOC_FAILED, when calling `cusolverDnCreate(handle)`"),
    RuntimeError("CUDA error: CUBLAS_STATUS_ALLOC_FAILED when calling `cublasCreate(handle)`"),
    RuntimeError("CUDA error: out of memory\nCUDA kernel errors might be asynchronously reported"),
    RuntimeError("[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: can't allocate memory: you tried to allocate 1 bytes"),
    MemoryError(),
]


@pytest.mark.parametrize("error", ALLOCATION_FAILURES, ids=lambda e: type(e).__name__ + ":" + str(e)[:24])
def test_every_allocation_failure_halves_the_chunk_and_frees_it(
    tmp_path: Path, volume_factory, monkeypatch, error: BaseException
) -> None:
    src = volume_factory("v.h5", slices=5)
    options = RunOptions(device="cpu", batch_slices=5, quiet=True, mask=MaskSpec("random", 4))
    run_recon("zf-recon", zf.ZeroFilled(), [src], tmp_path / "a", options)
    real = zf._ZeroFilledJob.reconstruct
    sizes: list[int] = []
    failed: list[weakref.ref] = []

    def flaky(self, kspace, start, stop):
        sizes.append(kspace.shape[0])
        if failed:
            gc.collect()
            assert failed[-1]() is None, "the failed chunk's k-space is still alive during the retry"
        if kspace.shape[0] > 2:
            failed.append(weakref.ref(kspace))
            raise error
        return real(self, kspace, start, stop)

    monkeypatch.setattr(zf._ZeroFilledJob, "reconstruct", flaky)
    summary = run_recon("zf-recon", zf.ZeroFilled(), [src], tmp_path / "b", options)
    assert summary.ok, summary.results[0].error
    assert sizes[:3] == [5, 2, 2]
    assert any("out of memory" in w for w in summary.results[0].info.get("warnings", []))
    np.testing.assert_array_equal(read_reconstruction(tmp_path / "b" / "v.h5"), read_reconstruction(tmp_path / "a" / "v.h5"))


def test_other_errors_are_not_retried(tmp_path: Path, volume_factory, monkeypatch) -> None:
    assert not is_out_of_memory(RuntimeError("shape mismatch")) and not is_out_of_memory(ValueError("out of memory"))
    src = volume_factory("v.h5", slices=4)
    calls: list[int] = []

    def broken(self, kspace, start, stop):
        calls.append(kspace.shape[0])
        raise RuntimeError("expected a complex tensor")

    monkeypatch.setattr(zf._ZeroFilledJob, "reconstruct", broken)
    summary = run_recon("zf-recon", zf.ZeroFilled(), [src], tmp_path / "o", RunOptions(device="cpu", quiet=True))
    assert calls == [4] and not summary.ok and "expected a complex tensor" in summary.results[0].error


# --- stop signals ---------------------------------------------------------------------------


def _signalling_method(monkeypatch, at_file: str, signum: int) -> None:
    real = zf._ZeroFilledJob.reconstruct

    def reconstruct(self, kspace, start, stop):
        if self.volume.path.name == at_file and start == 0:
            os.kill(os.getpid(), signum)
        return real(self, kspace, start, stop)

    monkeypatch.setattr(zf._ZeroFilledJob, "reconstruct", reconstruct)


@pytest.mark.parametrize("grace", [0.0, 30.0])
def test_sigusr1_mid_batch_stops_cleanly_then_resume_finishes(tmp_path: Path, volume_factory, monkeypatch, grace) -> None:
    for i in range(5):
        volume_factory(f"v{i}.h5", slices=2, seed=i)
    src, out = tmp_path / "full", tmp_path / "zf"
    _signalling_method(monkeypatch, "v2.h5", signal.SIGUSR1)
    options = RunOptions(device="cpu", batch_slices=1, quiet=True, grace=grace, skip_existing=True)
    with pytest.raises(BatchInterrupted) as stopped:
        run_recon("zf-recon", zf.ZeroFilled(), [src], out, options)
    assert stopped.value.code == 128 + signal.SIGUSR1
    assert signal.getsignal(signal.SIGUSR1) is signal.SIG_DFL  # handlers restored
    written = sorted(p.name for p in out.glob("*.h5"))
    # grace 0: the file in progress is abandoned; a grace period it fits in: it is finished
    assert written == (["v0.h5", "v1.h5"] if grace == 0 else ["v0.h5", "v1.h5", "v2.h5"])
    assert not list(out.glob(".*.tmp"))
    records = read_manifests(out)
    assert [r["status"] for r in records] == (["done", "done", "interrupted"] if grace == 0 else ["done"] * 3)
    monkeypatch.undo()
    summary = run_recon("zf-recon", zf.ZeroFilled(), [src], out, options)
    statuses = [r.status for r in summary.results]
    assert statuses == ["skipped"] * len(written) + ["done"] * (5 - len(written))
    status = batch_status(out, expand_inputs([src]))
    assert len(status.done) == 5 and status.pending == [] and not status.failed


def test_ctrl_c_never_exits_zero(tmp_path: Path, volume_factory, monkeypatch) -> None:
    volume_factory("v0.h5", slices=2)
    volume_factory("v1.h5", slices=2)
    _signalling_method(monkeypatch, "v0.h5", signal.SIGINT)
    result = run_cli("zf-recon", tmp_path / "full", "-o", tmp_path / "zf", "--accel", "4", "--grace", "0")
    assert result.exit_code == 130
    assert "stopped by SIGINT" in result.stderr and "--skip-existing" in result.stderr
    assert not list((tmp_path / "zf").glob("*.h5"))


def test_lower_layers_never_import_pipelines_or_the_cli() -> None:
    import ast

    package = Path(__file__).resolve().parents[1] / "mrirecon"
    offenders = []
    for layer in ("io", "ops", "mri", "cs", "models", "train", "sampledata", "metrics.py", "devices.py", "console.py"):
        for path in [package / layer] if layer.endswith(".py") else sorted((package / layer).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text())):
                names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                    [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
                offenders += [f"{path.relative_to(package)}: {n}" for n in names
                              if n.startswith(("mrirecon.pipelines", "mrirecon.cli"))]
    assert offenders == []


@pytest.mark.parametrize("command", ["subsample", "eval", "sample-data"])
def test_every_file_walking_command_stops_on_sigterm(tmp_path: Path, volume_factory, monkeypatch, command) -> None:
    """The first file finishes within the grace period, then the command stops with 128 + SIGTERM."""
    import mrirecon.pipelines.evaluate as evaluate
    import mrirecon.pipelines.sample_data as sample_data
    import mrirecon.pipelines.subsample as subsample

    module, name = {"subsample": (subsample, "subsample_file"), "eval": (evaluate, "_score_loaded"),
                    "sample-data": (sample_data, "make_volume")}[command]
    real = getattr(module, name)

    def first_then_signal(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGTERM)
        return real(*args, **kwargs)

    for i in range(2):
        volume_factory(f"v{i}.h5", slices=1, seed=i)
    if command == "eval":
        assert run_cli("zf-recon", tmp_path / "full", "-o", tmp_path / "zf", "-q").exit_code == 0
    monkeypatch.setattr(module, name, first_then_signal)
    argv = {
        "subsample": ["subsample", tmp_path / "full", "-o", tmp_path / "sub"],
        "eval": ["eval", "--target", tmp_path / "full", "--pred", tmp_path / "zf"],
        "sample-data": ["sample-data", tmp_path / "gen", "--volumes", "2", "--slices", "1"],
    }[command]
    result = run_cli(*argv)
    assert result.exit_code == 128 + signal.SIGTERM, result.stderr
    assert "stopped by SIGTERM after 1 of 2 file(s)" in result.stderr


def test_stage_reads_a_local_copy_with_the_same_result(tmp_path: Path, volume_factory) -> None:
    volume_factory("v0.h5", slices=2)
    direct = run_cli("zf-recon", tmp_path / "full", "-o", tmp_path / "a", "--accel", "4", "-q")
    staged = run_cli("zf-recon", tmp_path / "full", "-o", tmp_path / "b", "--accel", "4", "-q",
                     "--stage", tmp_path / "scratch", "--json", "-")
    assert direct.exit_code == 0 and staged.exit_code == 0
    np.testing.assert_array_equal(read_reconstruction(tmp_path / "a" / "v0.h5"), read_reconstruction(tmp_path / "b" / "v0.h5"))
    assert json.loads(staged.stdout)["results"][0]["input"] == str(tmp_path / "full" / "v0.h5")
    assert list((tmp_path / "scratch").iterdir()) == []  # the copy is gone
