"""GPU slots on a workstation: each training job claims one GPU index with a file lock.

Snakemake's ``--resources gpu=N`` limits how many training jobs run at once; this
module makes sure that concurrent jobs get *different* GPUs by setting
``CUDA_VISIBLE_DEVICES`` before CUDA starts. Under SLURM (or whenever
``CUDA_VISIBLE_DEVICES`` is already set) the scheduler has chosen, and nothing is done.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

log = logging.getLogger(__name__)

COUNT_VARIABLE = "PIPELINE_GPU_COUNT"  # overrides detection (tests, or to reserve GPUs)


def gpu_count() -> int:
    """GPUs on this machine: PIPELINE_GPU_COUNT, else nvidia-smi, else 0."""
    if COUNT_VARIABLE in os.environ:
        return int(os.environ[COUNT_VARIABLE])
    if shutil.which("nvidia-smi") is None:
        return 0
    result = subprocess.run(["nvidia-smi", "--list-gpus"], capture_output=True, text=True)
    return len([line for line in result.stdout.splitlines() if line.startswith("GPU ")])


@contextlib.contextmanager
def gpu_slot(
    lock_dir: str | Path, poll_seconds: float = 1.0, count: int = 1
) -> Iterator[list[int] | None]:
    """Hold ``count`` free GPU indices (a DDP job takes one per process) for the duration
    of the block; None when there is no GPU to assign or the scheduler already chose."""
    if os.environ.get("CUDA_VISIBLE_DEVICES") not in (None, ""):
        yield None  # the scheduler (SLURM) or the user already chose
        return
    total = gpu_count()
    if total == 0:
        yield None
        return
    if count > total:
        raise RuntimeError(f"the job needs {count} GPUs; this machine has {total}")
    lock_dir = Path(lock_dir)
    lock_dir.mkdir(parents=True, exist_ok=True)
    while True:
        held = _claim(lock_dir, total, count)
        if held:
            indices = ",".join(str(i) for i in held)
            os.environ["CUDA_VISIBLE_DEVICES"] = indices
            log.info("using GPU %s (CUDA_VISIBLE_DEVICES=%s)", indices, indices)
            try:
                yield list(held)
            finally:
                os.environ.pop("CUDA_VISIBLE_DEVICES", None)
                for handle in held.values():
                    fcntl.flock(handle, fcntl.LOCK_UN)
                    handle.close()
            return
        time.sleep(poll_seconds)  # more jobs than GPUs: wait for slots to free up


def _claim(lock_dir: Path, total: int, count: int) -> dict:
    """Lock ``count`` free GPU indices at once, or none: {index: open lock file}."""
    held = {}
    for index in range(total):
        handle = open(lock_dir / f"gpu{index}.lock", "a+")  # noqa: SIM115 - held by caller
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            continue
        held[index] = handle
        if len(held) == count:
            return held
    for handle in held.values():  # too few free: let them go, so two jobs never deadlock
        fcntl.flock(handle, fcntl.LOCK_UN)
        handle.close()
    return {}
