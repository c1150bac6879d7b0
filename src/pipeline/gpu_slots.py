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
def gpu_slot(lock_dir: str | Path, poll_seconds: float = 1.0) -> Iterator[int | None]:
    """Hold one free GPU index for the duration of the block (None: no GPU to assign)."""
    if os.environ.get("CUDA_VISIBLE_DEVICES") not in (None, ""):
        yield None  # the scheduler (SLURM) or the user already chose
        return
    count = gpu_count()
    if count == 0:
        yield None
        return
    lock_dir = Path(lock_dir)
    lock_dir.mkdir(parents=True, exist_ok=True)
    while True:
        for index in range(count):
            handle = open(lock_dir / f"gpu{index}.lock", "a+")  # noqa: SIM115 - held below
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.close()
                continue
            os.environ["CUDA_VISIBLE_DEVICES"] = str(index)
            log.info("using GPU %d (CUDA_VISIBLE_DEVICES=%d)", index, index)
            try:
                yield index
            finally:
                os.environ.pop("CUDA_VISIBLE_DEVICES", None)
                fcntl.flock(handle, fcntl.LOCK_UN)
                handle.close()
            return
        time.sleep(poll_seconds)  # more jobs than GPUs: wait for a slot to free up
