"""Run the real Snakemake workflow in a temporary working directory."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import yaml

from pipeline.config import experiment_datasets
from tests.conftest import REPO

SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))
#: The test config's results folder (never the default study's ``results/``).
RESULTS = yaml.safe_load((REPO / "config" / "test.yaml").read_text())["results"]


def write_config(tmp: Path, only: Sequence[str] = (), **changes: object) -> Path:
    """The test config with top-level ``changes`` (e.g. experiments=...), written into tmp.
    With ``only``, just those experiments and the datasets they read: a test of one study
    then runs none of the others."""
    with open(REPO / "config" / "test.yaml") as fh:
        cfg = yaml.safe_load(fh)
    if only:
        cfg["experiments"] = {name: cfg["experiments"][name] for name in only}
        used = {d for exp in cfg["experiments"].values() for d in experiment_datasets(exp)}
        cfg["datasets"] = {name: cfg["datasets"][name] for name in sorted(used)}
    cfg.update(changes)
    path = tmp / "config.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def snakemake(
    workdir: Path,
    *args: str,
    config: Path | None = None,
    env: dict | None = None,
    timeout: int = 600,
) -> subprocess.CompletedProcess:
    # targets and options first: --configfile takes every value that follows it
    cmd = [
        SNAKEMAKE,
        "--snakefile",
        str(REPO / "Snakefile"),
        "--directory",
        str(workdir),
        *args,
        "--configfile",
        str(config or REPO / "config" / "test.yaml"),
    ]
    # Tests choose their tracking store explicitly; never inherit the developer's.
    run_env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    run_env.update(env or {})
    return subprocess.run(
        cmd, capture_output=True, text=True, timeout=timeout, env=run_env, cwd=workdir
    )


def copy_checkout(dest: Path) -> Path:
    """The tracked and untracked (not ignored) files of this checkout, copied to ``dest``."""
    listed = subprocess.run(
        ["git", "-C", str(REPO), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        capture_output=True,
        check=True,
    ).stdout.decode()
    for rel in filter(None, listed.split("\0")):
        source = REPO / rel
        if source.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / rel)
    return dest
