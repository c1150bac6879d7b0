"""Data-parallel training (PyTorch DDP): launching the processes, and what they share.

A train job with ``training.strategy: ddp`` runs ``training.processes`` copies of the
train job, one per GPU (or CPU processes with the gloo backend), launched by ``torchrun``
on a workstation and by ``srun`` inside a SLURM allocation. Each copy trains on its
shard of every global batch (pipeline.train.shard); DDP averages the gradients, so a
step is the step one process would take on the whole batch. Only rank 0 writes: the
checkpoint, the run folder and the MLflow run.

The launcher is the rule's own process: it waits for the copies, and their output goes
to the job's log, so a failure on any rank is in the log the user opens.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

log = logging.getLogger(__name__)


def world_size() -> int:
    return dist.get_world_size() if dist.is_initialized() else 1


def rank() -> int:
    return dist.get_rank() if dist.is_initialized() else 0


def is_main() -> bool:
    """Whether this process writes (rank 0, or the only process)."""
    return rank() == 0


def all_sum(*values: float) -> list[float]:
    """Each value summed over the processes (float64, in rank order: deterministic)."""
    if not dist.is_initialized():
        return list(values)
    tensor = torch.tensor(values, dtype=torch.float64)
    dist.all_reduce(tensor)
    return tensor.tolist()


def gather(obj: Any) -> list[Any]:
    """Every process's ``obj``, in rank order (one element without DDP)."""
    if not dist.is_initialized():
        return [obj]
    out: list[Any] = [None] * world_size()
    dist.all_gather_object(out, obj)
    return out


def barrier() -> None:
    if dist.is_initialized():
        dist.barrier()


# ----------------------------------------------------------------------------- launch


def die_with_parent(sig: int = signal.SIGKILL) -> None:
    """Ask Linux to send ``sig`` to this process when its parent dies (prctl
    PR_SET_PDEATHSIG), so no rank trains on as an orphan after its launcher is killed:
    torchrun starts its workers in sessions of their own, out of reach of a killed
    job's process group. A no-op where prctl is missing."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        libc.prctl(1, int(sig), 0, 0, 0)  # 1 = PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def under_slurm() -> bool:
    """Inside a SLURM allocation with srun at hand: launch with srun."""
    return "SLURM_JOB_ID" in os.environ and shutil.which("srun") is not None


def launch_command(
    processes: int, spec_path: Path, threads: int = 1
) -> tuple[list[str], dict[str, str]]:
    """The command (and environment) that starts ``processes`` copies of the job, each
    with ``threads`` threads and this checkout's code first on its path."""
    import pipeline

    entry = [sys.executable, "-m", "pipeline.distributed", str(spec_path)]
    src = str(Path(pipeline.__file__).resolve().parents[1])
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (src, env.get("PYTHONPATH")) if p)
    if under_slurm():  # the launcher runs on the allocation's first node, as does rank 0
        env["MASTER_ADDR"] = socket.gethostname()
        env["MASTER_PORT"] = str(20000 + int(os.environ["SLURM_JOB_ID"]) % 20000)
        return ["srun", f"--ntasks={processes}", "--kill-on-bad-exit=1", *entry], env
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    return [*torchrun, f"--nproc-per-node={processes}", *entry[1:]], env


def launch(job: Mapping[str, Any], processes: int, threads: int = 1) -> None:
    """Run ``pipeline.runs.train_job(**job)`` in ``processes`` DDP processes and wait.
    Their output is relayed to this process's log handlers (the job's log and stderr).
    Raises when any process fails."""
    out_dir = Path(job["out_dir"])
    out_dir.mkdir(parents=True, exist_ok=True)
    spec_path = out_dir / "ddp_job.json"
    spec_path.write_text(json.dumps(job, default=str))
    command, env = launch_command(processes, spec_path, threads)
    log.info("launching %d DDP processes: %s", processes, " ".join(command))
    streams = [h for h in logging.getLogger().handlers if isinstance(h, logging.StreamHandler)]
    with subprocess.Popen(
        command,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        preexec_fn=lambda: die_with_parent(signal.SIGTERM),  # torchrun stops its workers
    ) as proc:
        for line in proc.stdout:
            for handler in streams:
                handler.stream.write(line)
                handler.flush()
    spec_path.unlink(missing_ok=True)
    if proc.returncode != 0:
        raise RuntimeError(
            f"DDP training failed: {processes} processes, exit code {proc.returncode} "
            "(each rank's error is above)"
        )


def _init_from_environment() -> int:
    """Join the process group torchrun or srun describe; return the local rank."""
    if "RANK" not in os.environ and "SLURM_PROCID" in os.environ:  # srun
        os.environ["RANK"] = os.environ["SLURM_PROCID"]
        os.environ["WORLD_SIZE"] = os.environ["SLURM_NTASKS"]
        os.environ["LOCAL_RANK"] = os.environ.get("SLURM_LOCALID", "0")
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    cuda = torch.cuda.is_available()
    if cuda:
        torch.cuda.set_device(local_rank % torch.cuda.device_count())
    dist.init_process_group("nccl" if cuda else "gloo")
    return local_rank


def main(argv: Sequence[str]) -> None:
    from pipeline.logs import configure
    from pipeline.runs import train_job

    die_with_parent()
    job = json.loads(Path(argv[0]).read_text())
    _init_from_environment()
    # rank 0 tells the story; the others speak up only to warn or fail
    configure(None, logging.INFO if is_main() else logging.WARNING, prefix=f"rank {rank()} ")
    try:
        train_job(**job)
    finally:
        dist.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1:])
