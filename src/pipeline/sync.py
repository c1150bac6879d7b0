"""Re-log runs from their files under results/ into a tracking store.

For when the tracking store failed during a job: a run it left partial (tagged
``pipeline.tracking=partial``) is completed in place, a folder never tracked (its
``mlflow_run_id`` says ``offline``) gets a new run; and to copy runs into another store
(e.g. a team's server). Everything a
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
from pipeline.scores import read_scores
from pipeline.tracking import (
    TRACKING_TAG,
    RunLogger,
    flatten,
    importance_metrics,
    read_state,
    score_metrics,
    setup_experiments,
    write_state,
)

log = logging.getLogger(__name__)

ARTIFACTS = (
    "history.csv",
    "resolved_config.yaml",
    "metrics.csv",
    "predictions.nc",
    "importance.csv",
)


def sync_run(run_dir: str | Path, tracking_uri: str, artifact_root: str | Path) -> str:
    """Complete the folder's run in the store, or log the folder as a new run.

    The run named by ``mlflow_run_id`` is completed in place when the store holds it
    (a run that a job left partial): what it lacks is logged, what it has is skipped,
    and the ``pipeline.tracking=partial`` tag is removed. A new run is created only for
    a folder that was never tracked (``offline``) or whose run lives in another store.
    Either way, syncing again logs nothing new. Returns the run id.
    """
    run_dir = Path(run_dir)
    spec = yaml.safe_load((run_dir / "resolved_config.yaml").read_text())
    provenance = json.loads((run_dir / "provenance.json").read_text())
    experiment = spec["experiment"]
    ids = setup_experiments(tracking_uri, [experiment], artifact_root)
    recorded = _recorded_run(run_dir, tracking_uri)
    tracker = RunLogger(tracking_uri, ids[experiment], job="sync", system_metrics=False)
    tags = {**provenance["tags"], "pipeline.synced_from": str(run_dir.resolve())}
    tracker.start(f"{spec['variant']}-seed{spec['seed']}", tags, run_id=recorded)
    if tracker.run_id is None:
        raise RuntimeError(f"could not log {run_dir} to {tracking_uri} (see the warning above)")
    if recorded is None:  # at once, so that an interrupted sync never logs the folder twice
        _record(run_dir, tracker.run_id, tracking_uri, spec["run_hash"])
    else:
        tracker.tags(tags)
    _log_folder(tracker, run_dir, spec, provenance)
    tracker.close()
    if tracker.missing:
        raise RuntimeError(f"could not log {run_dir} to {tracking_uri} (see the warning above)")
    _clear_partial(tracking_uri, tracker.run_id)
    _record(run_dir, tracker.run_id, tracking_uri, spec["run_hash"])
    log.info("synced %s -> run %s", run_dir, tracker.run_id)
    return tracker.run_id


def _recorded_run(run_dir: Path, tracking_uri: str) -> str | None:
    """The folder's run id if ``tracking_uri`` holds that run (not deleted), else None."""
    from mlflow.entities import LifecycleStage
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    id_file = run_dir / "mlflow_run_id"
    run_id = id_file.read_text().strip() if id_file.exists() else ""
    run_id = run_id if run_id and run_id != "offline" else read_state(run_dir).get("run_id")
    if not run_id:
        return None
    try:
        run = MlflowClient(tracking_uri).get_run(run_id)
    except MlflowException:
        return None
    return run_id if run.info.lifecycle_stage == LifecycleStage.ACTIVE else None


def _log_folder(tracker: RunLogger, run_dir: Path, spec: dict, provenance: dict) -> None:
    """Log everything the folder holds; the tracker skips what the run already has."""
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
    if (run_dir / "metrics.csv").exists():
        tracker.metrics(score_metrics(read_scores(run_dir / "metrics.csv"), spec["variant"]))
    if (run_dir / "importance.csv").exists():
        table = pd.read_csv(run_dir / "importance.csv")
        dim = table.columns[0]  # the output groups: lead, class, ...
        table[dim] = table[dim].astype(str)
        tracker.metrics(importance_metrics(table, dim, table[dim].unique()))
    have = _artifact_sizes(tracker)
    # the loss curve at the top level, as train_job logs it; the other figures in plots/
    files = [(run_dir / name, None) for name in (*ARTIFACTS, "plots/loss_curves.png")]
    plots = sorted((run_dir / "plots").glob("*.png"))
    files += [(path, "plots") for path in plots if path.name != "loss_curves.png"]
    for path, folder in files:
        name = f"{folder}/{path.name}" if folder else path.name
        if path.exists() and have.get(name) != path.stat().st_size:
            tracker.artifact(path, folder)


def _artifact_sizes(tracker: RunLogger) -> dict[str, int | None]:
    """{artifact path: size} of the run's files at the top level and under plots/."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracker.uri)
    found = {}
    for folder in (None, "plots"):
        for info in client.list_artifacts(tracker.run_id, folder):
            if not info.is_dir:
                found[info.path] = info.file_size
    return found


def _clear_partial(tracking_uri: str, run_id: str) -> None:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri)
    if TRACKING_TAG in client.get_run(run_id).data.tags:
        client.delete_tag(run_id, TRACKING_TAG)


def _record(run_dir: Path, run_id: str, tracking_uri: str, key: str) -> None:
    """Point the folder at its run: ``mlflow_run_id`` and the state (nothing missing)."""
    state = read_state(run_dir)
    if state.get("tracking_uri") != tracking_uri or state.get("run_id") != run_id:
        state = {"key": key}
    jobs = {
        job: "finished" if done == "partial" else done
        for job, done in state.get("jobs", {}).items()
    }
    write_state(
        run_dir,
        {**state, "run_id": run_id, "tracking_uri": tracking_uri, "jobs": jobs, "missing": {}},
    )
    id_file = run_dir / "mlflow_run_id"
    if id_file.exists() and id_file.read_text().strip() == run_id:
        return
    times = (id_file.stat().st_atime, id_file.stat().st_mtime) if id_file.exists() else None
    write_text(run_id + "\n", id_file)
    if times:  # keep the old mtime, so Snakemake does not rerun evaluate and importance
        os.utime(id_file, times)


def find_run_dirs(paths: list[str | Path]) -> list[Path]:
    """Run folders at or below ``paths`` (those holding a resolved_config.yaml)."""
    found = []
    for path in map(Path, paths):
        found += sorted(p.parent for p in path.rglob("resolved_config.yaml"))
    return found
