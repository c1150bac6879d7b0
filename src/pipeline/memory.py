"""How much memory a job may still take, as the kernel will enforce it.

A SLURM job, a container or a systemd scope runs under a cgroup memory limit that the
host's "available" memory knows nothing of: a job that trusted it would be killed by
the OOM killer. The headroom is the least of the host's available memory and, for the
process's memory cgroup and each of its ancestors, limit minus usage (cgroup v2's
``memory.max``/``memory.current``, or v1's ``memory.limit_in_bytes``/``usage_in_bytes``).
"""

from __future__ import annotations

from pathlib import Path

import psutil

CGROUP_ROOT = Path("/sys/fs/cgroup")
#: (limit, usage) file names, and the mount point under CGROUP_ROOT, per cgroup version
_FILES = {
    "v2": ("memory.max", "memory.current", ""),
    "v1": ("memory.limit_in_bytes", "memory.usage_in_bytes", "memory"),
}


def _cgroup_dirs(proc_cgroup: str, root: Path) -> list[Path]:
    """The memory cgroup of this process and its ancestors, innermost first."""
    dirs = []
    for line in proc_cgroup.splitlines():
        _, controllers, path = line.split(":", 2)
        version = (
            "v2" if controllers == "" else "v1" if "memory" in controllers.split(",") else None
        )
        if version is None:
            continue
        base = root / _FILES[version][2]
        node = base / path.lstrip("/")
        while True:
            dirs.append((version, node))
            if node == base:
                break
            node = node.parent
    return dirs


def cgroup_headroom(proc_cgroup: str | None = None, root: Path = CGROUP_ROOT) -> int | None:
    """Bytes left under the tightest cgroup memory limit, or None when none is set."""
    if proc_cgroup is None:
        try:
            proc_cgroup = Path("/proc/self/cgroup").read_text()
        except OSError:
            return None
    headroom = None
    for version, node in _cgroup_dirs(proc_cgroup, root):
        limit_file, usage_file, _ = _FILES[version]
        try:
            limit = (node / limit_file).read_text().strip()
            usage = int((node / usage_file).read_text())
        except (OSError, ValueError):
            continue
        if limit == "max" or int(limit) >= 2**60:  # v1 writes "no limit" as ~2**63
            continue
        left = max(0, int(limit) - usage)
        headroom = left if headroom is None else min(headroom, left)
    return headroom


def available_memory() -> int:
    """Bytes this process may still allocate: host available, or less under a cgroup."""
    host = psutil.virtual_memory().available
    cgroup = cgroup_headroom()
    return host if cgroup is None else min(host, cgroup)
