"""Stale Snakemake locks after a crash.

Snakemake locks its working directory while it runs and removes the lock when it ends.
A kill -9, an out-of-memory kill or a power cut leaves the lock behind, and every later
run stops with a LockException until someone runs ``snakemake --unlock``. ``make run``
calls this module first: when no Snakemake process is working in the folder, the lock
is stale and is released, so "just rerun" works after a crash. Only this machine's
processes can be seen: where several hosts share the folder, unlock by hand.

Usage: ``python -m pipeline.locks CONFIG``.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import psutil

log = logging.getLogger(__name__)


def lock_files(workdir: Path) -> list[Path]:
    """Snakemake's lock files in ``workdir`` (none while no run holds the folder)."""
    locks = workdir / ".snakemake" / "locks"
    return sorted(locks.glob("*")) if locks.is_dir() else []


def _is_snakemake(cmdline: list[str]) -> bool:
    """``snakemake …`` or ``python -m snakemake …``, not a job script under .snakemake/."""
    program = [Path(arg).name for arg in cmdline[:2]]  # [python,] snakemake
    return "snakemake" in program or cmdline[1:3] == ["-m", "snakemake"]


def snakemake_processes(workdir: Path) -> list[int]:
    """Pids of the Snakemake processes (other than this one) working in ``workdir``."""
    here = workdir.resolve()
    found = []
    for proc in psutil.process_iter(["pid", "cmdline"]):
        if proc.pid == os.getpid() or not _is_snakemake(proc.info["cmdline"] or []):
            continue
        try:
            if Path(proc.cwd()).resolve() == here:
                found.append(proc.pid)
        except psutil.AccessDenied:  # another user's Snakemake: it may be working here
            found.append(proc.pid)
        except (psutil.NoSuchProcess, psutil.ZombieProcess):
            continue
    return found


def release_stale_lock(workdir: Path, config: str) -> bool:
    """Unlock ``workdir`` if it is locked by no running Snakemake; True when it did."""
    if not lock_files(workdir):
        return False
    running = snakemake_processes(workdir)
    if running:
        log.info("Snakemake is running here (pid %s): leaving its lock alone", running)
        return False
    log.warning("a crashed run left Snakemake's lock behind: unlocking %s", workdir)
    snakemake = str(Path(sys.executable).with_name("snakemake"))
    subprocess.run(
        [snakemake, "--unlock", "--configfile", config], cwd=workdir, check=True, text=True
    )
    return True


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        sys.exit("usage: python -m pipeline.locks CONFIG")
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    release_stale_lock(Path.cwd(), args[0])


if __name__ == "__main__":
    main()
