"""A one-node SLURM cluster from Debian's packages, for tests: munged, slurmctld, slurmd as root.

``SlurmCluster(folder).start()`` installs the packages if they are missing (apt-get), writes a
config and state folders under ``folder``, starts the daemons in the foreground (their PIDs are
ours; ``stop()`` ends them by PID) and waits until the node is idle. Its munged listens on its own
socket and key under ``folder``, and the ports are free ones, so it stays apart from any other
cluster on the machine. ``env`` is the environment for sbatch/squeue/scancel (``SLURM_CONF``).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

PACKAGES = ("slurmctld", "slurmd", "slurm-client", "munge")
DAEMONS = ("munged", "slurmctld", "slurmd", "sbatch")


def ensure_packages() -> None:
    """apt-get install the SLURM and munge packages when their programs are missing."""
    if all(shutil.which(p) or Path("/usr/sbin", p).exists() for p in DAEMONS):
        return
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "--no-install-recommends", *PACKAGES]
    if subprocess.run(install, env=env, capture_output=True).returncode != 0:
        subprocess.run(["apt-get", "update"], env=env, capture_output=True, check=True)
        subprocess.run(install, env=env, capture_output=True, check=True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _sbin(name: str) -> str:
    return shutil.which(name) or f"/usr/sbin/{name}"


class SlurmCluster:
    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self.host = socket.gethostname().split(".")[0]
        self.procs: list[subprocess.Popen] = []
        self.conf = self.folder / "slurm.conf"
        self.env = {**os.environ, "SLURM_CONF": str(self.conf)}

    def start(self, timeout: float = 60.0) -> "SlurmCluster":
        ensure_packages()
        f = self.folder
        for sub in ("state", "spool", "log", "munge"):
            (f / sub).mkdir(parents=True, exist_ok=True)
        Path("/run/munge").mkdir(parents=True, exist_ok=True)  # munged expects it even with its own socket
        key = f / "munge" / "munge.key"
        key.write_bytes(os.urandom(1024))
        key.chmod(0o600)
        (f / "munge").chmod(0o700)
        sock = f / "munge" / "munge.socket"
        self._spawn([_sbin("munged"), "--foreground", "--force", f"--socket={sock}", f"--key-file={key}",
                     f"--pid-file={f / 'munge' / 'munged.pid'}", f"--seed-file={f / 'munge' / 'seed'}",
                     f"--log-file={f / 'log' / 'munged.log'}"], "munged")
        self._wait(lambda: sock.exists(), timeout, "munged")
        self.conf.write_text(self._config(sock))
        self._spawn([_sbin("slurmctld"), "-D", "-i", "-f", str(self.conf)], "slurmctld")
        self._spawn([_sbin("slurmd"), "-D", "-f", str(self.conf), "-N", self.host], "slurmd")
        self._wait(self._idle, timeout, "the SLURM node to come up idle")
        return self

    def _config(self, munge_socket: Path) -> str:
        f = self.folder
        return "\n".join([
            "ClusterName=mrirecontest",
            f"SlurmctldHost={self.host}",
            f"SlurmctldPort={_free_port()}",
            f"SlurmdPort={_free_port()}",
            "AuthType=auth/munge",
            "CredType=cred/munge",
            f"AuthInfo=socket={munge_socket}",
            "SlurmUser=root",
            "SlurmdUser=root",
            "ProctrackType=proctrack/linuxproc",
            "TaskPlugin=task/none",
            "SelectType=select/cons_tres",
            "SelectTypeParameters=CR_CPU",
            "SchedulerType=sched/builtin",
            "MpiDefault=none",
            "ReturnToService=2",
            "KillWait=5",
            "MinJobAge=300",
            "JobCompType=jobcomp/none",
            "AccountingStorageType=accounting_storage/none",
            "JobAcctGatherType=jobacct_gather/none",
            f"StateSaveLocation={f / 'state'}",
            f"SlurmdSpoolDir={f / 'spool'}",
            f"SlurmctldPidFile={f / 'slurmctld.pid'}",
            f"SlurmdPidFile={f / 'slurmd.pid'}",
            f"SlurmctldLogFile={f / 'log' / 'slurmctld.log'}",
            f"SlurmdLogFile={f / 'log' / 'slurmd.log'}",
            f"NodeName={self.host} CPUs={os.cpu_count()} State=UNKNOWN",
            f"PartitionName=test Nodes={self.host} Default=YES MaxTime=INFINITE State=UP",
            "",
        ])

    def _spawn(self, argv: list[str], name: str) -> None:
        log = open(self.folder / "log" / f"{name}.stdout", "ab")
        self.procs.append(subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=self.env))

    def _wait(self, ready, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for proc in self.procs:
                if proc.poll() is not None:
                    raise RuntimeError(f"{proc.args[0]} exited ({proc.returncode}) while waiting for {what}; logs in {self.folder / 'log'}")
            if ready():
                return
            time.sleep(0.3)
        raise TimeoutError(f"timed out waiting for {what}; logs in {self.folder / 'log'}")

    def _idle(self) -> bool:
        out = self.run("sinfo", "-h", "-o", "%T", check=False).stdout.strip()
        return out.startswith("idle")

    def run(self, *argv: str, check: bool = True) -> subprocess.CompletedProcess:
        """A SLURM client command against this cluster."""
        return subprocess.run(list(argv), env=self.env, capture_output=True, text=True, check=check, timeout=60)

    def sbatch(self, *argv: str) -> str:
        """Submit; returns the job id."""
        return self.run("sbatch", "--parsable", *argv).stdout.strip().split(";")[0]

    def jobs(self, job: str) -> list[tuple[str, str]]:
        """``(job_id, state)`` of every task of ``job`` still known to slurmctld."""
        out = self.run("squeue", "-h", "-j", job, "-o", "%i %T", check=False).stdout
        return [tuple(line.split()) for line in out.splitlines() if line.strip()]  # type: ignore[misc]

    def wait_done(self, job: str, timeout: float = 120.0) -> None:
        """Wait until no task of ``job`` is pending or running."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.jobs(job):
                return
            time.sleep(0.5)
        raise TimeoutError(f"job {job} still running after {timeout} s: {self.jobs(job)}")

    def stop(self) -> None:
        for proc in reversed(self.procs):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in reversed(self.procs):
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.procs.clear()
