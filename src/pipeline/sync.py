"""Re-log runs from their files under results/ into a tracking store.

For when the tracking server was unreachable during a job (its ``mlflow_run_id`` says
``offline``), or to copy runs into another store (e.g. a team's server). Everything a
run logged is in its folder: resolved_config.yaml (params), history.csv and
provenance.json (per-epoch metrics, tags, timings), metrics.json (evaluation) and the
artifacts.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import pandas as pd
import yaml

from pipeline.io import write_text
from pipeline.tracking import (
    RunLogger,
    evaluation_metrics,
    flatten,
    importance_metrics,
    setup_experiments,
)

log = logging.getLogger(__name__)

ARTIFACTS = (
    "history.csv",
    "resolved_config.yaml",
    "metrics.json",
    "predictions.nc",
    "importance.csv",
)


def sync_run(run_dir: str | Path, tracking_uri: str, artifact_root: str | Path) -> str:
    """Log one run folder as a new run; write its id into ``mlflow_run_id``."""
    run_dir = Path(run_dir)
    spec = yaml.safe_load((run_dir / "resolved_config.yaml").read_text())
    provenance = json.loads((run_dir / "provenance.json").read_text())
    experiment = spec["experiment"]
    ids = setup_experiments(tracking_uri, [experiment], artifact_root)
    tracker = RunLogger(tracking_uri, ids[experiment], system_metrics=False)
    tags = {**provenance["tags"], "pipeline.synced_from": str(run_dir.resolve())}
    tracker.start(run_name=f"{spec['variant']}-seed{spec['seed']}", tags=tags)
    tracker.params(
        {
            **flatten({"model": spec["model"], "training": spec["training"]}),
            "seed": spec["seed"],
            "variant": spec["variant"],
        }
    )
    history = pd.read_csv(run_dir / "history.csv")
    for row, seconds in zip(history.itertuples(), provenance["epoch_seconds"], strict=False):
        tracker.metrics(
            {
                "train_loss": row.train_loss,
                "val_loss": row.val_loss,
                "lr": row.lr,
                "epoch_seconds": seconds,
            },
            step=int(row.epoch),
        )
    tracker.metrics(provenance["summary"])
    if (run_dir / "metrics.json").exists():
        tracker.metrics(evaluation_metrics(json.loads((run_dir / "metrics.json").read_text())))
    if (run_dir / "importance.csv").exists():
        tracker.metrics(importance_metrics(pd.read_csv(run_dir / "importance.csv")))
    for name in ARTIFACTS:
        if (run_dir / name).exists():
            tracker.artifact(run_dir / name)
    for plot in sorted((run_dir / "plots").glob("*.png")):
        tracker.artifact(plot, "plots")
    tracker.end()
    if not tracker.enabled or tracker.run_id is None:
        raise RuntimeError(f"could not log {run_dir} to {tracking_uri} (see the warning above)")
    id_file = run_dir / "mlflow_run_id"
    times = (id_file.stat().st_atime, id_file.stat().st_mtime) if id_file.exists() else None
    write_text(tracker.run_id + "\n", id_file)
    if times:  # keep the old mtime, so Snakemake does not rerun evaluate and importance
        os.utime(id_file, times)
    log.info("synced %s -> run %s", run_dir, tracker.run_id)
    return tracker.run_id


def find_run_dirs(paths: list[str | Path]) -> list[Path]:
    """Run folders at or below ``paths`` (those holding a resolved_config.yaml)."""
    found = []
    for path in map(Path, paths):
        found += sorted(p.parent for p in path.rglob("resolved_config.yaml"))
    return found
