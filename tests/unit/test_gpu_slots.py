"""GPU slots: concurrent jobs never share a GPU (with fake device counts)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from pipeline.gpu_slots import gpu_count, gpu_slot

JOB = """
import json, os, sys, time
from pipeline.gpu_slots import gpu_slot
with gpu_slot(sys.argv[1], poll_seconds=0.05, count=int(sys.argv[2])) as gpus:
    start = time.time()
    time.sleep(0.6)
    print(json.dumps({"gpus": gpus, "visible": os.environ.get("CUDA_VISIBLE_DEVICES"),
                      "start": start, "end": time.time()}))
"""


def _jobs(lock_dir: Path, counts: list[int]) -> list[dict]:
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", JOB, str(lock_dir), str(n)], stdout=subprocess.PIPE, text=True
        )
        for n in counts
    ]
    return [json.loads(p.communicate(timeout=60)[0]) for p in procs]


def _never_share(jobs: list[dict]) -> None:
    """Two jobs holding a common GPU never overlap in time."""
    for a in jobs:
        for b in jobs:
            if a is not b and set(a["gpus"]) & set(b["gpus"]):
                assert a["end"] <= b["start"] or b["end"] <= a["start"]


def test_concurrent_jobs_get_distinct_gpus(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("PIPELINE_GPU_COUNT", "2")
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    jobs = _jobs(tmp_path / "locks", [1] * 5)
    assert {g for j in jobs for g in j["gpus"]} == {0, 1}
    assert all(j["visible"] == str(j["gpus"][0]) for j in jobs)
    _never_share(jobs)
    # at most 2 run at once: 5 jobs of 0.6 s need at least 3 rounds
    assert max(j["end"] for j in jobs) - min(j["start"] for j in jobs) >= 3 * 0.6 - 0.05


def test_a_ddp_job_holds_one_gpu_per_process(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("PIPELINE_GPU_COUNT", "3")
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    jobs = _jobs(tmp_path / "locks", [2, 2, 1])
    for job, count in zip(jobs, [2, 2, 1], strict=True):
        assert len(job["gpus"]) == count
        assert job["visible"] == ",".join(map(str, job["gpus"]))
    _never_share(jobs)
    a, b = jobs[0], jobs[1]  # two 2-GPU jobs on 3 GPUs take turns
    assert a["end"] <= b["start"] or b["end"] <= a["start"]


def test_no_gpu_or_scheduler_choice_leaves_things_alone(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("PIPELINE_GPU_COUNT", "0")
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    with gpu_slot(tmp_path) as index:
        assert index is None
    monkeypatch.setenv("PIPELINE_GPU_COUNT", "4")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3")  # e.g. set by SLURM
    with gpu_slot(tmp_path) as index:
        assert index is None
        import os

        assert os.environ["CUDA_VISIBLE_DEVICES"] == "3"
    assert gpu_count() == 4
