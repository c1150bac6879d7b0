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
from pipeline.tracking import (
    SUMMARY_TAG,
    TAG_PREFIX,
    RunLogger,
    git_state,
    lead_suffix,
    log_baselines,
)

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


FORECAST_BASELINES = ("persistence", "climatology", "linear")  # the oracle is a ceiling
LOWER_IS_BETTER = {"rmse", "mae"}


def best_per_lead(table: pd.DataFrame, metric: str = "acc") -> pd.DataFrame:
    """Per lead, the best forecast overall (networks and baselines alike), the best network
    and the best baseline with the network's margin over it (positive: the network is
    better), and the oracle's score beside them: a skill ceiling, never "best".

    Columns: lead, best_forecast, best_{metric}, best_network, network_{metric},
    best_baseline, baseline_{metric}, network_minus_baseline, oracle_{metric}.
    """
    scores = table[(table["metric"] == metric) & table["mean"].notna()]
    sign = -1.0 if metric in LOWER_IS_BETTER else 1.0

    def best(part: pd.DataFrame, name: str, score: str) -> pd.DataFrame:
        rows = part.loc[(sign * part["mean"]).groupby(part["lead"]).idxmax()]
        return rows.set_index("lead")[["forecast", "mean"]].set_axis([name, score], axis=1)

    is_network = scores["is_model"]
    is_baseline = scores["forecast"].isin(FORECAST_BASELINES)
    overall = best(scores[is_network | is_baseline], "best_forecast", f"best_{metric}")
    networks = best(scores[is_network], "best_network", f"network_{metric}")
    baselines = best(scores[is_baseline], "best_baseline", f"baseline_{metric}")
    oracle = scores[scores["forecast"] == "oracle"].set_index("lead")["mean"]
    out = overall.join([networks, baselines], how="outer")
    out["network_minus_baseline"] = sign * (out[f"network_{metric}"] - out[f"baseline_{metric}"])
    out = out.join(oracle.rename(f"oracle_{metric}"), how="left")
    return out.reset_index()[
        [
            "lead",
            "best_forecast",
            f"best_{metric}",
            "best_network",
            f"network_{metric}",
            "best_baseline",
            f"baseline_{metric}",
            "network_minus_baseline",
            f"oracle_{metric}",
        ]
    ]


def verdicts(best: pd.DataFrame, metric: str = "acc") -> list[str]:
    """One plain sentence per lead from ``best_per_lead``: the summary log and figure say it."""
    name = metric.upper()
    lines = []
    for row in best.to_dict("records"):
        margin = row["network_minus_baseline"]
        if not np.isfinite(margin):
            comparison = "no network/baseline comparison"
        else:
            side = "better than" if margin > 0 else "worse than" if margin < 0 else "equal to"
            comparison = (
                f"best network {row['best_network']} {row[f'network_{metric}']:.3f} is "
                f"{abs(margin):.3f} {side} best baseline {row['best_baseline']} "
                f"{row[f'baseline_{metric}']:.3f}"
            )
        lines.append(
            f"lead {row['lead']:>2}: best forecast {row['best_forecast']} "
            f"({name} {row[f'best_{metric}']:.3f}); {comparison}; "
            f"oracle ceiling {row[f'oracle_{metric}']:.3f}"
        )
    return lines


def collect_importance(run_dirs: Sequence[Path]) -> pd.DataFrame:
    tables = []
    for run_dir in run_dirs:
        variant, seed = run_identity(run_dir)
        tables.append(pd.read_csv(run_dir / "importance.csv").assign(variant=variant, seed=seed))
    return pd.concat(tables, ignore_index=True)


def example_map_data(prepared: xr.Dataset, run_dirs: Sequence[Path]) -> dict:
    """The input anomaly maps at the strongest test-period event and, from the first run
    that predicts maps, its forecast near lead 6 beside the observed anomaly (for
    ``plots.map_panels``)."""
    test = np.flatnonzero(prepared["split"].values == "test")
    event = int(test[np.argmax(np.abs(prepared["index_init"].values[test]))])
    sample = prepared.isel(sample=event)
    inputs = {
        str(c): sample["x"].isel(history=-1).sel(channel=c).where(sample["mask"].sel(channel=c))
        for c in prepared["channel"].values
    }
    time = sample["time"].values
    data: dict = {"time": str(np.datetime_as_string(time, unit="M")), "inputs": inputs}
    for run_dir in run_dirs:
        predictions = run_dir / "predictions.nc"
        if not predictions.exists():
            continue
        with xr.open_dataset(predictions) as ds:
            if "prediction_map" not in ds:
                continue
            lead = int(min(ds["lead"].values, key=lambda lead: abs(int(lead) - 6)))
            at = ds.sel(time=time, lead=lead).load()
            units = ds.attrs.get("units", "degC")
        variant, seed = run_identity(run_dir)
        data["forecast"] = {
            "model": f"{variant} seed {seed}",
            "lead": lead,
            "predicted": at["prediction_map"].where(at["observed_map"].notnull()),  # no land
            "observed": at["observed_map"],
            "units": f"anomaly ({units})",
        }
        break
    return data


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
    lines = verdicts(best)
    importance = collect_importance(run_dirs)
    prepared = open_prepared(prepared_path)
    figures = [
        plots.summary_skill(table, out_dir / "skill_vs_lead.png", experiment, lines),
        plots.importance_heatmap(importance, out_dir / "importance_heatmap.png", experiment),
        plots.map_panels(
            example_map_data(prepared, run_dirs), out_dir / "example_maps.png", experiment
        ),
    ]
    log.info("best forecast per lead (the oracle is a skill ceiling):\n%s", "\n".join(lines))

    exp_id = experiment_id(experiment_ids, experiment)
    tracker = RunLogger(
        tracking_uri, exp_id, job="summarize", state_dir=out_dir, system_metrics=False
    )
    with tracker:  # a rerun after a kill resumes this summary run (see tracking.read_state)
        git = git_state()
        tracker.open(
            run_name=f"{experiment}-summary",
            tags={
                f"{TAG_PREFIX}experiment": experiment,
                f"{TAG_PREFIX}role": "summary",
                "mlflow.source.git.commit": git["commit"],
                f"{TAG_PREFIX}git_dirty": git["dirty"],
            },
            key=experiment,
        )
        for path in (out_dir / "summary.csv", out_dir / "best_per_lead.csv", *figures):
            tracker.artifact(path)
        tracker.metrics(  # the best network's ACC per lead (the baselines have their runs)
            {
                f"best_acc_{lead_suffix(r['lead'], best['lead'])}": r["network_acc"]
                for r in best.to_dict("records")
            }
        )
        write_text(f"{tracker.run_id or OFFLINE_RUN_ID}\n", out_dir / "mlflow_run_id")
    if tracker.run_id and tracker.enabled:  # after the summary run: one active run at a time
        runs = [(d / "mlflow_run_id").read_text().strip() for d in run_dirs]
        metrics = json.loads((run_dirs[0] / "metrics.json").read_text())
        runs += log_baselines(
            tracking_uri,
            exp_id,
            experiment,
            metrics,
            prepared.attrs["data_sha256"],
            prepared.attrs["config_hash"],
        )
        # a tag, not mlflow.parentRunId: the UI would fold every run under the summary
        tracker.tag_runs([r for r in runs if r != OFFLINE_RUN_ID], {SUMMARY_TAG: tracker.run_id})
    return table
