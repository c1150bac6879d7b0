"""The jobs of one (experiment, model, seed) run: train, evaluate, importance.

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

import numpy as np
import pandas as pd
import torch
import yaml
from tqdm.auto import tqdm

from pipeline import plots
from pipeline.baselines import baseline_forecasts
from pipeline.importance import COLUMNS
from pipeline.io import write_netcdf, write_text
from pipeline.models.registry import predict_index
from pipeline.prepare import open_prepared
from pipeline.tracking import (
    RunLogger,
    evaluation_metrics,
    flatten,
    importance_metrics,
    run_tags,
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
    """Train, save the run folder and log the MLflow run; return the run id."""
    out_dir = Path(out_dir)
    prepared = open_prepared(prepared_path).load()
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
        tracker.torch_model(result.model, prepared["x"].values[:2].astype("float32"))
        run_id = tracker.run_id or OFFLINE_RUN_ID
        write_text(run_id + "\n", out_dir / "mlflow_run_id")
    (out_dir / CHECKPOINT).unlink(missing_ok=True)
    return run_id


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


def _test_split(prepared) -> tuple[np.ndarray, np.ndarray]:
    """Inputs and index targets of the test split."""
    test = prepared["split"].values == "test"
    return prepared["x"].values[test], prepared["y"].values[test]


def evaluate_job(
    *,
    prepared_path: str | Path,
    variant_name: str,
    variant: Mapping[str, Any],
    model_path: str | Path,
    run_id_path: str | Path,
    tracking_uri: str,
    out_dir: str | Path,
) -> dict:
    """Forecast the test split, score against baselines and oracle, plot, log."""
    from pipeline import evaluate as ev

    out_dir = Path(out_dir)
    prepared = open_prepared(prepared_path).load()
    model = ev.load_model(prepared, variant, model_path)
    x_test, y_test = _test_split(prepared)
    forecast = ev.predict(model, x_test)
    baselines = baseline_forecasts(prepared, "test")
    leads = [int(v) for v in prepared["lead"].values]
    metrics = ev.lead_metrics(y_test, forecast["index"], baselines, leads)
    ev.write_metrics(metrics, out_dir / "metrics.json")
    predictions = ev.predictions_dataset(
        prepared, {"prediction": forecast["index"], **baselines}, forecast.get("maps")
    )
    write_netcdf(predictions, out_dir / "predictions.nc")

    plot_dir = out_dir / "plots"
    title = run_title(out_dir)
    target = str(prepared.attrs["target"])
    times = predictions["time"].values
    event_lead = min(leads, key=lambda lead: abs(lead - 6))  # a long lead, where skill differs
    show = sorted({leads[0], event_lead if event_lead != leads[0] else leads[-1]})
    events = metrics["per_lead"][str(event_lead)]["model_events"]
    i = leads.index(event_lead)
    roc = ev.event_roc_curves(forecast["index"][:, i], y_test[:, i])
    figures = [
        plots.skill_vs_lead(metrics, plot_dir / "skill_vs_lead.png", title, variant_name),
        plots.index_timeseries(
            times,
            y_test,
            {variant_name: forecast["index"], "persistence": baselines["persistence"]},
            leads,
            show,
            plot_dir / "timeseries.png",
            target,
            title,
        ),
        plots.scatter(
            y_test, forecast["index"], leads, plot_dir / "scatter.png", title, target, variant_name
        ),
        plots.confusion_matrix(
            np.array(events["confusion_matrix"]),
            ev.EVENT_CLASSES,
            plot_dir / "confusion_matrix.png",
            f"{title}\nENSO events, {plots.lead_label(event_lead)}",
        ),
        plots.roc_curves(
            roc, plot_dir / "roc.png", f"{title}\nENSO events, {plots.lead_label(event_lead)}"
        ),
    ]

    with _resume_tracker(tracking_uri, run_id_path, "evaluate") as tracker:
        tracker.metrics(evaluation_metrics(metrics))
        for path in (out_dir / "metrics.json", out_dir / "predictions.nc"):
            tracker.artifact(path)
        for fig in figures:
            tracker.artifact(fig, "plots")
    return metrics


class LeadOutput(torch.nn.Module):
    """A forecasting model restricted to one lead's index: what importance explains."""

    def __init__(self, model: torch.nn.Module, lead_index: int):
        super().__init__()
        self.model, self.lead_index = model, lead_index

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return predict_index(self.model, x)[:, self.lead_index : self.lead_index + 1]


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
    """Single- and multi-pass permutation importance per lead on the test split."""
    from pipeline.evaluate import load_model
    from pipeline.importance import channel_groups, permutation_importance, variable_lag_groups

    out_dir = Path(out_dir)
    prepared = open_prepared(prepared_path).load()
    model = load_model(prepared, variant, model_path)
    x_test, y_test = _test_split(prepared)
    names = [str(c) for c in prepared["channel"].values]
    if settings["groups"] == "variable_lag":
        groups = variable_lag_groups(names, list(prepared["history"].values), x_test.shape[1:])
    else:
        groups = channel_groups(names, x_test.shape[1:])
    leads = [int(v) for v in prepared["lead"].values]
    chosen = settings.get("leads") or leads
    tables = []
    for lead in tqdm(chosen, desc=f"importance {variant_name}", disable=None):
        i = leads.index(lead)
        table = permutation_importance(
            LeadOutput(model, i),
            x_test,
            y_test[:, i : i + 1],
            groups,
            methods=settings["method"],
            repeats=settings["repeats"],
            bootstrap=settings["bootstrap"],
            block_length=settings["block_length"],
            seed=seed,
            batch_size=settings["batch_size"],
        )
        tables.append(table.assign(lead=lead))
    result = pd.concat(tables, ignore_index=True)[["lead", *COLUMNS]]
    write_text(result.to_csv(index=False, float_format="%.10g"), out_dir / "importance.csv")
    figure = plots.importance_bars(result, out_dir / "plots" / "importance.png", run_title(out_dir))
    with _resume_tracker(tracking_uri, run_id_path, "importance") as tracker:
        tracker.metrics(importance_metrics(result, leads))
        tracker.artifact(out_dir / "importance.csv")
        tracker.artifact(figure, "plots")
    return result
