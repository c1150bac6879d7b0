"""The summarize stage: one table and a few figures across variants, seeds and leads,
plus a parent MLflow run that links every (model, seed) run of the experiment."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from pipeline import plots
from pipeline.io import write_text
from pipeline.runs import OFFLINE_RUN_ID
from pipeline.tracking import TAG_PREFIX, RunLogger, git_state

log = logging.getLogger(__name__)

BASELINE_NAMES = ("persistence", "climatology", "linear", "oracle")
SUMMARY_METRICS = (
    "acc",
    "rmse",
    "mae",
    "bias",
    "msess_persistence",
    "msess_climatology",
    "msess_linear",
    "frac_oracle_acc",
)


def run_identity(run_dir: Path) -> tuple[str, int]:
    """(variant, seed) from ``.../runs/{variant}/seed{seed}``."""
    return run_dir.parent.name, int(run_dir.name.removeprefix("seed"))


def collect_metrics(run_dirs: Sequence[Path]) -> pd.DataFrame:
    """Long table: forecast, variant, seed, lead, metric, value (models and baselines)."""
    rows = []
    for run_dir in run_dirs:
        variant, seed = run_identity(run_dir)
        metrics = json.loads((run_dir / "metrics.json").read_text())
        for lead, entry in metrics["per_lead"].items():
            for forecast in ("model", *BASELINE_NAMES):
                for metric, value in entry.get(forecast, {}).items():
                    if metric in SUMMARY_METRICS:
                        rows.append(
                            {
                                "forecast": variant if forecast == "model" else forecast,
                                "is_model": forecast == "model",
                                "variant": variant,
                                "seed": seed,
                                "lead": int(lead),
                                "metric": metric,
                                "value": np.nan if value is None else value,
                            }
                        )
    return pd.DataFrame(rows)


def summary_table(long: pd.DataFrame) -> pd.DataFrame:
    """Mean and standard deviation over seeds (baselines: over every run, all equal)."""
    models = long[long["is_model"]]
    baselines = long[~long["is_model"]].drop_duplicates(["forecast", "seed", "lead", "metric"])
    table = (
        pd.concat([models, baselines])
        .groupby(["forecast", "is_model", "lead", "metric"], sort=True)["value"]
        .agg(
            mean="mean",
            std=lambda v: float(np.std(v, ddof=1)) if len(v) > 1 else 0.0,
            n_seeds="count",
        )
        .reset_index()
    )
    return table.sort_values(
        ["is_model", "forecast", "metric", "lead"],
        ascending=[False, True, True, True],
        ignore_index=True,
    )


def best_per_lead(table: pd.DataFrame, metric: str = "acc") -> pd.DataFrame:
    """The best model per lead (by mean over seeds) beside the oracle."""
    acc = table[table["metric"] == metric]
    models = acc[acc["is_model"]]
    best = models.loc[models.groupby("lead")["mean"].idxmax(), ["lead", "forecast", "mean"]]
    oracle = acc[acc["forecast"] == "oracle"][["lead", "mean"]].rename(columns={"mean": "oracle"})
    return best.rename(columns={"forecast": "best_model", "mean": metric}).merge(oracle, how="left")


def collect_importance(run_dirs: Sequence[Path]) -> pd.DataFrame:
    tables = []
    for run_dir in run_dirs:
        variant, seed = run_identity(run_dir)
        tables.append(pd.read_csv(run_dir / "importance.csv").assign(variant=variant, seed=seed))
    return pd.concat(tables, ignore_index=True)


def example_map_data(prepared: xr.Dataset, run_dirs: Sequence[Path]) -> dict:
    """An input anomaly map at a strong test-period event, and a U-Net forecast of it."""
    test = np.flatnonzero(prepared["split"].values == "test")
    event = int(test[np.argmax(np.abs(prepared["index_init"].values[test]))])
    sample = prepared.isel(sample=event)
    panels = {
        f"input: {c} (normalised anomaly)": sample["x"]
        .isel(history=-1)
        .sel(channel=c)
        .where(sample["mask"].sel(channel=c))
        for c in prepared["channel"].values
    }
    time = sample["time"].values
    for run_dir in run_dirs:
        predictions = run_dir / "predictions.nc"
        if not predictions.exists():
            continue
        with xr.open_dataset(predictions) as ds:
            if "prediction_map" not in ds:
                continue
            lead = int(min(ds["lead"].values, key=lambda lead: abs(int(lead) - 6)))
            at = ds.sel(time=time, lead=lead).load()
        variant, _ = run_identity(run_dir)
        predicted = at["prediction_map"].where(at["observed_map"].notnull())  # no land
        panels[f"{variant}: predicted anomaly, lead {lead} (degC)"] = predicted
        panels[f"observed anomaly at lead {lead} (degC)"] = at["observed_map"]
        break
    return {"time": str(np.datetime_as_string(time, unit="M")), "panels": panels}


def summarize_job(
    *,
    experiment: str,
    run_dirs: Sequence[str | Path],
    prepared_path: str | Path,
    tracking_uri: str,
    experiment_ids: str | Path,
    out_dir: str | Path,
) -> pd.DataFrame:
    """Write summary.csv and the figures; log them to a parent run linking every run."""
    from pipeline.prepare import open_prepared
    from pipeline.runs import experiment_id

    out_dir = Path(out_dir)
    run_dirs = [Path(p) for p in run_dirs]
    long = collect_metrics(run_dirs)
    table = summary_table(long)
    write_text(table.to_csv(index=False, float_format="%.6g"), out_dir / "summary.csv")
    best = best_per_lead(table)
    write_text(best.to_csv(index=False, float_format="%.4f"), out_dir / "best_per_lead.csv")
    importance = collect_importance(run_dirs)
    prepared = open_prepared(prepared_path)
    figures = [
        plots.summary_skill(table, out_dir / "skill_vs_lead.png", experiment),
        plots.importance_heatmap(importance, out_dir / "importance_heatmap.png"),
        plots.map_panels(example_map_data(prepared, run_dirs), out_dir / "example_maps.png"),
    ]
    log.info("best model per lead:\n%s", best.to_string(index=False))

    tracker = RunLogger(
        tracking_uri, experiment_id(experiment_ids, experiment), system_metrics=False
    )
    git = git_state()
    tracker.start(
        run_name=f"{experiment}-summary",
        tags={
            f"{TAG_PREFIX}experiment": experiment,
            f"{TAG_PREFIX}role": "summary",
            "mlflow.source.git.commit": git["commit"],
            f"{TAG_PREFIX}git_dirty": git["dirty"],
        },
    )
    for path in (out_dir / "summary.csv", out_dir / "best_per_lead.csv", *figures):
        tracker.artifact(path)
    tracker.metrics({f"best_acc_lead{row.lead}": row.acc for row in best.itertuples()})
    children = [(d / "mlflow_run_id").read_text().strip() for d in run_dirs]
    tracker.link_children([c for c in children if c != OFFLINE_RUN_ID])
    tracker.end()
    write_text(f"{tracker.run_id or OFFLINE_RUN_ID}\n", out_dir / "mlflow_run_id")
    return table
