"""The memory a job may take: the host's, or less under a cgroup limit (SLURM, containers)."""

from __future__ import annotations

from pathlib import Path

import psutil

from pipeline.memory import available_memory, cgroup_headroom

GIB = 2**30


def _write(folder: Path, **files: str) -> None:
    """Files named like the keyword, its first underscore a dot: memory_max -> memory.max."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (folder / name.replace("_", ".", 1)).write_text(text)


def test_cgroup_v2_takes_the_tightest_limit_of_the_job_and_its_parents(tmp_path: Path) -> None:
    _write(tmp_path, memory_max="max", memory_current=str(GIB))
    _write(tmp_path / "slurm", memory_max=str(8 * GIB), memory_current=str(3 * GIB))
    _write(tmp_path / "slurm" / "job_7", memory_max=str(6 * GIB), memory_current=str(2 * GIB))
    assert cgroup_headroom("0::/slurm/job_7\n", tmp_path) == 4 * GIB
    _write(tmp_path / "slurm" / "job_7", memory_max=str(16 * GIB), memory_current=str(2 * GIB))
    assert cgroup_headroom("0::/slurm/job_7\n", tmp_path) == 5 * GIB  # the parent's


def test_cgroup_v1_reads_the_memory_controller_and_ignores_no_limit(tmp_path: Path) -> None:
    memory = tmp_path / "memory"
    _write(memory, memory_limit_in_bytes=str(2**63 - 4096), memory_usage_in_bytes="1")
    _write(memory / "job", memory_limit_in_bytes=str(2 * GIB), memory_usage_in_bytes=str(GIB))
    lines = "9:name=systemd:/\n4:memory:/job\n3:cpuset:/\n"
    assert cgroup_headroom(lines, tmp_path) == GIB
    _write(memory / "job", memory_limit_in_bytes=str(2**63 - 4096), memory_usage_in_bytes="1")
    assert cgroup_headroom(lines, tmp_path) is None


def test_available_memory_never_exceeds_the_host() -> None:
    assert 0 < available_memory() <= psutil.virtual_memory().total
