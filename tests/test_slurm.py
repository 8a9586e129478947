"""Batches on a real one-node SLURM (Debian's slurmctld/slurmd/munge) and under torchrun.

The job script is the shipped template, scripts/slurm/recon_array.sbatch, with the resources this
machine has (no GPU, a CPU per task) given on the sbatch command line.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from conftest import write_test_volume
from mrirecon.io.fastmri_h5 import read_reconstruction
from mrirecon.pipelines.manifest import DONE_STATUSES, read_manifests
from slurm_cluster import SlurmCluster

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE = ROOT / "scripts" / "slurm" / "recon_array.sbatch"
FILES = 7
#: CS options: fast, and (for the cancel) a few seconds per file, so that the cancel lands mid-file.
FAST = ("--accel", "4", "--iters", "3", "--device", "cpu")
SLOW = ("--accel", "4", "--iters", "40", "--tol", "0", "--device", "cpu")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    slurm = SlurmCluster(tmp_path_factory.mktemp("slurm")).start()
    yield slurm
    slurm.stop()


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("inputs")
    for i in range(FILES):
        write_test_volume(folder / f"vol{i}.h5", slices=4, seed=i)
    return folder


def _submit(cluster: SlurmCluster, inputs: Path, out: Path, logs: Path, grace: str = "30", cs=FAST,
            array: str = "--array=0-2") -> str:
    env_args = [
        f"--export=ALL,MRIRECON={sys.executable} -m mrirecon,PYTHONPATH={ROOT},OMP_NUM_THREADS=1,GRACE={grace}",
    ]
    return cluster.sbatch(
        array, "--gres=none", "--mem=1M", "--cpus-per-task=1", "--time=10", f"--output={logs}/%A_%a.log",
        f"--chdir={out.parent}", *env_args, str(TEMPLATE), "cs-recon", str(inputs), str(out), *cs,
    )


def _assert_complete(out: Path, inputs: Path) -> list[dict]:
    """Every input has one valid output, no temporary file is left, the manifest ends in done for each."""
    names = sorted(p.name for p in inputs.glob("*.h5"))
    assert sorted(p.name for p in out.glob("*.h5")) == names
    for name in names:
        assert read_reconstruction(out / name).shape == (4, 32, 32)
    assert not list(out.glob(".*.tmp"))
    records = read_manifests(out)
    latest = {Path(r["input"]).name: r["status"] for r in records}
    assert sorted(latest) == names and set(latest.values()) <= set(DONE_STATUSES)
    return records


def test_job_array_does_every_file_exactly_once(cluster: SlurmCluster, inputs: Path, tmp_path: Path) -> None:
    out = tmp_path / "cs"
    job = _submit(cluster, inputs, out, tmp_path)
    cluster.wait_done(job)
    records = _assert_complete(out, inputs)
    assert Counter(Path(r["input"]).name for r in records) == {p.name: 1 for p in inputs.glob("*.h5")}
    assert {r["status"] for r in records} == {"done"}
    assert Counter(r["shard"] for r in records) == {"0of3": 3, "1of3": 2, "2of3": 2}  # balanced by size


def test_cancelled_task_resubmitted_completes_without_duplicates(cluster: SlurmCluster, inputs: Path, tmp_path: Path) -> None:
    out = tmp_path / "cs"
    job = _submit(cluster, inputs, out, tmp_path, grace="0", cs=SLOW)
    _wait_for_line(out / ".mrirecon" / "manifest-0of3.jsonl")  # task 0 is on its 2nd of 3 files
    cluster.run("scancel", f"{job}_0")
    cluster.wait_done(job)
    first = read_manifests(out)
    assert len([r for r in first if r["shard"] == "0of3" and r["status"] == "done"]) < 3, "the cancel came too late"
    assert not list(out.glob(".*.tmp")), "a cancelled task left a temporary file"
    log = (tmp_path / f"{job}_0.log").read_text()
    assert "stopped by SIGTERM" in log
    for record in first:  # every output the first run recorded is complete
        if record["status"] == "done":
            read_reconstruction(record["output"])

    again = _submit(cluster, inputs, out, tmp_path, cs=SLOW)
    cluster.wait_done(again)
    records = _assert_complete(out, inputs)
    worked = Counter(Path(r["input"]).name for r in records if r["status"] in ("done", "redone"))
    assert max(worked.values()) == 1, f"a file was reconstructed twice: {worked}"
    resumed = [r for r in records[len(first):]]
    assert {r["status"] for r in resumed} <= {"skipped", "done"}
    assert sum(r["status"] == "skipped" for r in resumed) == sum(r["status"] == "done" for r in first)


def _wait_for_line(manifest: Path, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not (manifest.exists() and manifest.read_text().count("\n") >= 1):
        assert time.monotonic() < deadline, f"{manifest} never got a line"
        time.sleep(0.1)


def test_time_limit_warning_requeues_the_job(cluster: SlurmCluster, inputs: Path, tmp_path: Path) -> None:
    """SIGUSR1 to the batch shell (what --signal=B:USR1@120 sends) stops the task and requeues it."""
    out = tmp_path / "cs"
    job = _submit(cluster, inputs, out, tmp_path, grace="0", cs=SLOW, array="--array=0")
    _wait_for_line(out / ".mrirecon" / "manifest-0of1.jsonl")
    cluster.run("scancel", "--signal=USR1", "--batch", job)
    deadline = time.monotonic() + 60
    while True:
        show = cluster.run("scontrol", "show", "job", job).stdout
        restarts = re.search(r"Restarts=(\d+)", show)
        if restarts and int(restarts.group(1)) >= 1 and "JobState=RUNNING" not in show:
            break
        assert time.monotonic() < deadline, show
        time.sleep(0.3)
    cluster.run("scancel", job)
    text = (tmp_path / f"{job}_0.log").read_text()
    assert "stopped by SIGUSR1" in text and re.search(r"requeued SLURM job \d+", text), text
    assert not list(out.glob(".*.tmp"))


def test_two_torchrun_ranks_split_the_inputs(inputs: Path, tmp_path: Path) -> None:
    out = tmp_path / "cs"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    for key in ("SLURM_ARRAY_TASK_ID", "SLURM_ARRAY_TASK_COUNT", "SLURM_ARRAY_TASK_MIN"):
        env.pop(key, None)
    argv = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "mrirecon",
            "cs-recon", str(inputs), "-o", str(out), "--skip-existing", "--quiet", *FAST]
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    records = _assert_complete(out, inputs)
    assert Counter(Path(r["input"]).name for r in records) == {p.name: 1 for p in inputs.glob("*.h5")}
    assert Counter(r["shard"] for r in records) == {"0of2": 4, "1of2": 3}
