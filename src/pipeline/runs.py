"""The jobs of one (experiment, model, seed) run: train, evaluate, importance.

Each calls the prepared data's task (pipeline.tasks) for what differs between kinds of
study: the network's head and loss, the forecast, its baselines, scores and figures.

Each writes its files under ``results/{experiment}/runs/{model}/seed{seed}/`` (the file
contract in docs/reference.md) and logs to the run's single MLflow run: training opens
it, evaluate and importance re-open it by the id in ``mlflow_run_id``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd
import torch
import yaml
from tqdm.auto import tqdm

from pipeline import distributed, plots
from pipeline.importance import COLUMNS
from pipeline.io import write_netcdf, write_text
from pipeline.prepare import open_prepared
from pipeline.scores import write_scores
from pipeline.tasks import prepared_task
from pipeline.tracking import (
    RunLogger,
    flatten,
    importance_metrics,
    run_tags,
    score_metrics,
)
from pipeline.train import CHECKPOINT, save_outputs, train_model

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
    """Train, save the run folder and log the MLflow run; return the run id. Under DDP
    (pipeline.distributed) every process trains, and only rank 0 writes and logs."""
    out_dir = Path(out_dir)
    prepared = open_prepared(prepared_path)
    if not distributed.is_main():
        train_model(prepared, variant, seed, out_dir, run_hash)
        return ""
    tags = run_tags(experiment, variant_name, seed, run_hash, prepared.attrs["data_sha256"])
    tracker = RunLogger(
        tracking_uri, experiment_id(experiment_ids, experiment), job="train", state_dir=out_dir
    )
    with tracker:  # FINISHED, or FAILED if the job raises; a kill is resumed by the rerun
        tracker.open(run_name=f"{variant_name}-seed{seed}", tags=tags, key=run_hash)
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
            result.history, out_dir / "plots" / "loss_curves.png", run_title(out_dir)
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
        summary = {
            "best_epoch": result.best_epoch,
            "best_val_loss": float(result.history["val_loss"].min()),
            "samples_per_second": result.samples_per_second,
        }
        tracker.metrics(summary)
        # everything `sync` needs to re-log this run that history.csv does not hold
        provenance = {"tags": tags, "summary": summary, "epoch_seconds": result.epoch_seconds}
        write_text(json.dumps(provenance, indent=2), out_dir / "provenance.json")
        # the loss curve at the top of the run's artifacts, where a newcomer looks first
        for path in (curve, out_dir / "history.csv", config_path):
            tracker.artifact(path)
        task = prepared_task(prepared)
        train = task.samples(prepared, "train", task.target(variant["model"]))
        tracker.torch_model(result.model, train.batch(torch.arange(2))[0].numpy())
        run_id = tracker.run_id or OFFLINE_RUN_ID
        write_text(run_id + "\n", out_dir / "mlflow_run_id")
    (out_dir / CHECKPOINT).unlink(missing_ok=True)
    return run_id


def load_model(prepared, variant: Mapping[str, Any], model_path: str | Path) -> torch.nn.Module:
    """Rebuild a run's network with its task's head and load its weights (a state_dict)."""
    model = prepared_task(prepared).model(variant["model"], prepared)
    model.load_state_dict(torch.load(model_path, map_location="cpu", weights_only=True))
    return model.eval()


def _resume_tracker(tracking_uri: str, run_id_path: str | Path, job: str) -> RunLogger:
    """Re-open the run that training created (evaluate and importance append to it)."""
    run_id = Path(run_id_path).read_text().strip()
    tracker = RunLogger(
        tracking_uri,
        experiment_id="",
        job=job,
        state_dir=Path(run_id_path).parent,
        system_metrics=False,
    )
    if run_id == OFFLINE_RUN_ID:
        tracker.enabled = False
        log.warning("training ran without tracking; results go to files only (see `sync`)")
    else:
        tracker.reopen(run_id)
    return tracker


def run_title(run_dir: str | Path) -> str:
    """'experiment · model · seed N', the title of every figure of one run, from the run
    folder ``results/{experiment}/runs/{model}/seed{seed}``."""
    run_dir = Path(run_dir)
    seed = run_dir.name.removeprefix("seed")
    return f"{run_dir.parents[2].name} · {run_dir.parent.name} · seed {seed}"


def evaluate_job(
    *,
    prepared_path: str | Path,
    variant_name: str,
    variant: Mapping[str, Any],
    model_path: str | Path,
    run_id_path: str | Path,
    tracking_uri: str,
    out_dir: str | Path,
) -> pd.DataFrame:
    """Forecast the test split, score it beside the baselines (the task's), plot, log."""
    out_dir = Path(out_dir)
    prepared = open_prepared(prepared_path)
    task = prepared_task(prepared)
    model = load_model(prepared, variant, model_path)
    outputs = task.predict(model, prepared)
    baselines = task.baselines(prepared)
    roles = {variant_name: "model"}
    roles |= {n: "ceiling" if n in task.ceilings else "baseline" for n in baselines}
    forecasts = {variant_name: outputs["forecast"], **baselines}
    scores = task.score(forecasts, roles, baselines, prepared)
    write_scores(scores, out_dir / "metrics.csv")
    write_netcdf(task.predictions(prepared, outputs, baselines), out_dir / "predictions.nc")
    figures = task.run_figures(
        prepared, outputs, baselines, scores, variant_name, out_dir / "plots", run_title(out_dir)
    )
    with _resume_tracker(tracking_uri, run_id_path, "evaluate") as tracker:
        tracker.metrics(score_metrics(scores, variant_name))
        for path in (out_dir / "metrics.csv", out_dir / "predictions.nc"):
            tracker.artifact(path)
        for fig in figures:
            tracker.artifact(fig, "plots")
    return scores


def importance_job(
    *,
    prepared_path: str | Path,
    variant_name: str,
    variant: Mapping[str, Any],
    settings: Mapping[str, Any],
    seed: int,
    model_path: str | Path,
    run_id_path: str | Path,
    tracking_uri: str,
    out_dir: str | Path,
) -> pd.DataFrame:
    """Single- and multi-pass permutation importance on the test split, per output
    group the task names (a lead, a class), each with the task's per-sample loss."""
    from pipeline.importance import permutation_importance

    out_dir = Path(out_dir)
    prepared = open_prepared(prepared_path)
    task = prepared_task(prepared)
    model = load_model(prepared, variant, model_path)
    x_test, groups = task.importance_inputs(prepared, settings)
    targets = list(task.importance_targets(model, prepared, settings))
    tables = []
    for target in tqdm(targets, desc=f"importance {variant_name}", disable=None):
        table = permutation_importance(
            target.predict,
            x_test,
            target.y,
            groups,
            loss=target.loss,
            outputs=target.groups,
            methods=settings["method"],
            repeats=settings["repeats"],
            bootstrap=settings["bootstrap"],
            block_length=settings["block_length"],
            seed=seed,
            batch_size=settings["batch_size"],
        )
        tables.append(table.rename(columns={"output": task.dim}))
    result = pd.concat(tables, ignore_index=True)[[task.dim, *COLUMNS]]
    write_text(result.to_csv(index=False, float_format="%.10g"), out_dir / "importance.csv")
    figure = plots.importance_bars(
        result,
        out_dir / "plots" / "importance.png",
        run_title(out_dir),
        task.dim,
        task.group_label,
        task.importance_label,
    )
    groups_all = [g for t in targets for g in t.groups]
    with _resume_tracker(tracking_uri, run_id_path, "importance") as tracker:
        tracker.metrics(importance_metrics(result, task.dim, groups_all))
        tracker.artifact(out_dir / "importance.csv")
        tracker.artifact(figure, "plots")
    return result
