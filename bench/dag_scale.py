"""How long Snakemake takes to build the DAG (`snakemake -n`) for large sweeps.

A sweep of cnn over kernel x lr x dropout x filters with several seeds expands into
N training jobs (and N evaluate + N importance jobs). Peer: the same command on the
test config (15 jobs), timed in the same run.
Usage: .venv/bin/python bench/dag_scale.py [--jobs 1000]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]


def sweep_config(n_train_jobs: int) -> dict:
    cfg = yaml.safe_load((REPO / "config" / "test.yaml").read_text())
    exp = cfg["experiments"]["enso"]
    exp["models"] = {"cnn": exp["models"]["cnn"]}
    seeds = 10
    variants = n_train_jobs // seeds  # e.g. 100 = 5 kernels x 5 lrs x 4 dropouts
    kernels, lrs = [1, 3, 5, 7, 9], [1e-2, 3e-3, 1e-3, 3e-4, 1e-4]
    dropouts = [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7][: max(1, variants // 25)]
    exp["sweep"] = {"cnn": {"kernel": kernels, "lr": lrs, "dropout": dropouts}}
    exp["seeds"] = list(range(seeds))
    return cfg


def dry_run(workdir: Path, config: Path) -> tuple[float, str]:
    snakemake = str(Path(sys.executable).with_name("snakemake"))
    start = time.perf_counter()
    result = subprocess.run(
        [
            snakemake,
            "-s",
            str(REPO / "Snakefile"),
            "-d",
            str(workdir),
            "-n",
            "--quiet",
            "rules",
            "--cores",
            "1",
            "--configfile",
            str(config),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    return time.perf_counter() - start, result.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=1000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        big = tmp / "sweep.yaml"
        big.write_text(yaml.safe_dump(sweep_config(args.jobs)))
        t_small, _ = dry_run(tmp / "small", REPO / "config" / "test.yaml")
        t_big, summary = dry_run(tmp / "big", big)
    train = next(line for line in summary.splitlines() if line.strip().startswith("train"))
    print(summary)
    print("| config | train jobs | snakemake -n (s) |\n|---|---|---|")
    print(f"| config/test.yaml | 5 | {t_small:.1f} |")
    print(f"| sweep | {train.split()[-1]} | {t_big:.1f} |")


if __name__ == "__main__":
    main()
