"""The demo's E2E-VarNet training (``scripts/demo.sh``), run as a background job of the test session.

Training the demo's recipe (``configs/varnet_demo.yaml``) is most of the suite's time (about 10
minutes on two cores). ``tests/conftest.py`` starts it in its own process when the session's
tests are collected, if its quality test (``tests/test_train_quality.py``) is selected; the
other tests run beside it, and the quality test, which runs last, waits for it and scores the
result. With other tests beside it the job trains on one thread (2-thread training is only ~1.4x
faster than 1 thread, so the two halves of the machine do more together); alone, on all cores.

Run as a script (``python tests/demo_training.py FOLDER``): the demo's three disjoint sample sets
(train, validation, test), then ``python -m mrirecon train`` in place of this process (``exec``:
the PID stays the job's, so the session can stop it).
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "configs" / "varnet_demo.yaml"
#: The demo's sets (scripts/demo.sh): name, volumes, seed.
SETS = (("train", 6, 1), ("val", 1, 2), ("test", 2, 3))
TEST_NAME = "test_demo_varnet_beats_cs_which_beats_zero_filled_on_held_out_volumes"


@dataclass
class TrainingJob:
    """A started job: its folder (``train``, ``val``, ``test``, ``run``), process and log."""

    folder: Path
    process: subprocess.Popen
    log: Path

    @property
    def run(self) -> Path:
        return self.folder / "run"

    def wait(self, timeout: float) -> int:
        """The job's exit status once it ends (``subprocess.TimeoutExpired`` after ``timeout`` s)."""
        return self.process.wait(timeout=timeout)

    def stop(self) -> None:
        """Kill the job if it still runs (an interrupted session)."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def start(folder: Path, threads: int | None) -> TrainingJob:
    """Start the job writing into ``folder``; ``threads`` torch threads (``None``: torch's default)."""
    from mrirecon import openmp

    folder.mkdir(parents=True, exist_ok=True)
    # train chooses its own OpenMP wait policy at process start, as in the demo
    env = {k: v for k, v in os.environ.items() if k not in openmp.SET_HERE}
    if threads is not None:
        env["OMP_NUM_THREADS"] = str(threads)
    log = folder / "job.log"
    with open(log, "wb") as out:
        process = subprocess.Popen([sys.executable, __file__, str(folder)], env=env, stdout=out,
                                   stderr=subprocess.STDOUT)
    return TrainingJob(folder, process, log)


def main(folder: Path) -> None:
    env = dict(os.environ)  # before mrirecon loads (its OpenMP setting is for this process only)
    sys.path.insert(0, str(ROOT))
    from mrirecon.pipelines.sample_data import SampleDataConfig, generate_sample_data

    for name, volumes, seed in SETS:
        generate_sample_data(folder / name, SampleDataConfig(challenge="multicoil", volumes=volumes, seed=seed),
                             quiet=True)
    command = [sys.executable, "-m", "mrirecon", "train", "--train", str(folder / "train"), "--val",
               str(folder / "val"), "-o", str(folder / "run"), "--config", str(CONFIG), "--device", "cpu", "--quiet"]
    sys.stdout.flush()
    os.chdir(ROOT)
    os.execve(sys.executable, command, env)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
