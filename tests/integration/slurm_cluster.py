"""A single-node SLURM cluster on localhost for tests: munged, slurmctld, slurmd.

No accounting (job status comes from squeue), ``proctrack/linuxproc`` and ``task/none``
(no cgroups), ``select/cons_tres``; ``MinJobAge=300`` keeps finished jobs visible to
squeue long enough for Snakemake to see them. Every daemon is stopped by its pid.

The config goes to the default path, /etc/slurm/slurm.conf: the SLURM executor plugin
clears ``SLURM_*`` variables (``SLURM_CONF`` too) before ``srun`` runs inside a job. An
existing file there is never overwritten (the test is skipped instead) and ours is
removed afterwards.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

SYSTEM_CONF = Path("/etc/slurm/slurm.conf")
SLURM_CONF = """\
ClusterName=geodltest
SlurmctldHost={host}
SlurmctldPort={ctld_port}
SlurmdPort={d_port}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={root}/munge/munge.socket
StateSaveLocation={root}/state
SlurmdSpoolDir={root}/spool
SlurmctldPidFile={root}/slurmctld.pid
SlurmdPidFile={root}/slurmd.pid
SlurmctldLogFile={root}/log/slurmctld.log
SlurmdLogFile={root}/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
MinJobAge=300
ReturnToService=2
SchedulerType=sched/backfill
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
MpiDefault=none
NodeName={host} CPUs={cpus} RealMemory={memory_mb} State=UNKNOWN
PartitionName=test Nodes={host} Default=YES MaxTime=INFINITE State=UP
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for(path: Path, timeout: float = 30) -> None:
    deadline = time.time() + timeout
    while not path.exists():
        if time.time() > deadline:
            raise TimeoutError(f"{path} did not appear")
        time.sleep(0.1)


def _stop(pid_file: Path) -> None:
    with contextlib.suppress(FileNotFoundError, ProcessLookupError, ValueError):
        pid = int(pid_file.read_text().strip())
        os.kill(pid, signal.SIGTERM)
        for _ in range(100):
            os.kill(pid, 0)
            time.sleep(0.1)


@contextlib.contextmanager
def slurm_cluster(root: Path, cpus: int = 2, memory_mb: int = 8000) -> Iterator[dict[str, str]]:
    """Start the daemons under ``root``; yield the environment that points clients at them."""
    root = root.resolve()
    for sub in ("munge", "state", "spool", "log"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    (root / "munge").chmod(0o700)
    key = root / "munge" / "munge.key"
    key.write_bytes(os.urandom(1024))
    key.chmod(0o400)
    host = socket.gethostname().split(".")[0]
    conf = SYSTEM_CONF
    if conf.exists():
        raise FileExistsError(f"{conf} exists: refusing to replace a real SLURM configuration")
    conf.parent.mkdir(parents=True, exist_ok=True)
    conf.write_text(
        SLURM_CONF.format(
            host=host,
            root=root,
            cpus=cpus,
            memory_mb=memory_mb,
            ctld_port=_free_port(),
            d_port=_free_port(),
        )
    )
    env = {**os.environ, "SLURM_CONF": str(conf)}
    pid_files = [root / "slurmd.pid", root / "slurmctld.pid", root / "munge" / "munged.pid"]
    try:
        subprocess.run(
            [
                "munged",
                "--force",
                f"--key-file={key}",
                f"--socket={root}/munge/munge.socket",
                f"--pid-file={pid_files[2]}",
                f"--log-file={root}/munge/munged.log",
                f"--seed-file={root}/munge/seed",
            ],
            check=True,
        )
        subprocess.run(["slurmctld", "-f", str(conf)], check=True, env=env)
        subprocess.run(["slurmd", "-f", str(conf)], check=True, env=env)
        for pid_file in pid_files:
            _wait_for(pid_file)
        deadline = time.time() + 60
        while (
            "idle"
            not in subprocess.run(
                ["sinfo", "-h", "-o", "%t"], env=env, capture_output=True, text=True
            ).stdout
        ):
            if time.time() > deadline:
                raise TimeoutError(
                    "the SLURM node never became idle:\n"
                    + (root / "log" / "slurmctld.log").read_text()[-2000:]
                )
            time.sleep(0.5)
        yield {"SLURM_CONF": str(conf)}
    finally:
        for pid_file in pid_files:
            _stop(pid_file)
        conf.unlink(missing_ok=True)
