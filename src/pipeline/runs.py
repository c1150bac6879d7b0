"""One (experiment, model, seed) run as a job: train it, write its files, log it to MLflow.

The file contract (architecture.md) of ``results/{experiment}/runs/{model}/seed{seed}/``:
model.pt, history.csv, mlflow_run_id, plots/loss_curves.png, resolved_config.yaml.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from pipeline import plots
from pipeline.io import write_text
from pipeline.prepare import open_prepared
from pipeline.tracking import RunLogger, flatten, run_tags
from pipeline.train import CHECKPOINT, checkpoint_run_id, save_outputs, train_model

log = logging.getLogger(__name__)

OFFLINE_RUN_ID = "offline"


def experiment_id(ids_path: str | Path, experiment: str) -> str:
    with open(ids_path) as fh:
        return json.load(fh)[experiment]


def train_job(
    *,
    prepared_path: str | Path,
    experiment: str,
    variant_name: str,
    variant: Mapping[str, Any],
    seed: int,
    run_hash: str,
    experiment_ids: str | Path,
    tracking_uri: str,
    out_dir: str | Path,
) -> str:
    """Train, save the run folder and log the MLflow run; return the run id."""
    out_dir = Path(out_dir)
    prepared = open_prepared(prepared_path).load()
    tracker = RunLogger(tracking_uri, experiment_id(experiment_ids, experiment))
    previous_run = checkpoint_run_id(out_dir)
    tags = run_tags(experiment, variant_name, seed, run_hash, prepared.attrs["data_sha256"])
    tracker.start(run_name=f"{variant_name}-seed{seed}", tags=tags, run_id=previous_run)
    if previous_run is None:
        tracker.params(
            {
                **flatten({"model": variant["model"], "training": variant["training"]}),
                "seed": seed,
                "variant": variant_name,
            }
        )

    result = train_model(prepared, variant, seed, out_dir, run_hash, tracker)
    save_outputs(result, out_dir / "model.pt", out_dir / "history.csv")
    curve = plots.loss_curves(
        result.history, out_dir / "plots" / "loss_curves.png", f"{variant_name}, seed {seed}"
    )
    config_path = out_dir / "resolved_config.yaml"
    write_text(
        yaml.safe_dump(
            {
                "experiment": experiment,
                "variant": variant_name,
                "seed": seed,
                "run_hash": run_hash,
                **dict(variant),
            },
            sort_keys=False,
        ),
        config_path,
    )
    tracker.metrics(
        {
            "best_epoch": result.best_epoch,
            "best_val_loss": result.history["val_loss"].min(),
            "samples_per_second": result.samples_per_second,
        }
    )
    for path, folder in ((out_dir / "history.csv", None), (config_path, None), (curve, "plots")):
        tracker.artifact(path, folder)
    tracker.torch_model(result.model, prepared["x"].values[:2].astype("float32"))
    tracker.end()
    run_id = tracker.run_id if tracker.enabled and tracker.run_id else OFFLINE_RUN_ID
    write_text(run_id + "\n", out_dir / "mlflow_run_id")
    (out_dir / CHECKPOINT).unlink(missing_ok=True)
    return run_id
