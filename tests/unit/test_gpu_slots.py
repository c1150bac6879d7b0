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
with gpu_slot(sys.argv[1], poll_seconds=0.05) as index:
    start = time.time()
    time.sleep(0.6)
    print(json.dumps({"gpu": index, "visible": os.environ.get("CUDA_VISIBLE_DEVICES"),
                      "start": start, "end": time.time()}))
"""


def test_concurrent_jobs_get_distinct_gpus(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("PIPELINE_GPU_COUNT", "2")
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", JOB, str(tmp_path / "locks")], stdout=subprocess.PIPE, text=True
        )
        for _ in range(5)
    ]
    jobs = [json.loads(p.communicate(timeout=60)[0]) for p in procs]
    assert {j["gpu"] for j in jobs} == {0, 1}
    assert all(j["visible"] == str(j["gpu"]) for j in jobs)
    for a in jobs:  # two jobs on the same GPU never overlap in time
        for b in jobs:
            if a is not b and a["gpu"] == b["gpu"]:
                assert a["end"] <= b["start"] or b["end"] <= a["start"]
    # at most 2 run at once: 5 jobs of 0.6 s need at least 3 rounds
    assert max(j["end"] for j in jobs) - min(j["start"] for j in jobs) >= 3 * 0.6 - 0.05


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
