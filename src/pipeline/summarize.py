"""The summarize stage: one table across variants, seeds, seed ensembles, baselines and
groups (leads, classes), the best forecast per group, the task's figures, and a summary
MLflow run that links every run of the experiment. A group-by of the runs' long-form
score tables (pipeline.scores): nothing here knows the task."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from pipeline.io import write_text
from pipeline.runs import OFFLINE_RUN_ID
from pipeline.scores import ALL, NETWORK_ROLES, ROLES, SCORE_COLUMNS, group_order, read_scores
from pipeline.tasks import prepared_task
from pipeline.tasks.base import Task
from pipeline.tracking import (
    SUMMARY_TAG,
    TAG_PREFIX,
    RunLogger,
    git_state,
    group_suffix,
    log_reference_runs,
)

log = logging.getLogger(__name__)


def run_identity(run_dir: Path) -> tuple[str, int]:
    """(variant, seed) from ``.../runs/{variant}/seed{seed}``."""
    return run_dir.parent.name, int(run_dir.name.removeprefix("seed"))


def collect_scores(run_dirs: Sequence[Path]) -> pd.DataFrame:
    """Every run's metrics.csv stacked, with its ``variant`` and ``seed``."""
    tables = []
    for run_dir in run_dirs:
        variant, seed = run_identity(run_dir)
        tables.append(read_scores(run_dir / "metrics.csv").assign(variant=variant, seed=seed))
    return pd.concat(tables, ignore_index=True)


def ensemble_scores(
    task: Task, prepared: xr.Dataset, run_dirs: Sequence[Path], references: dict
) -> pd.DataFrame:
    """Each variant with several seeds: the mean of its seeds' forecasts (probabilities,
    for classes) scored as a forecast of its own, ``{variant}-ensemble`` (Kratzert et al.
    2019; Ham et al. 2019 average 40 members)."""
    members: dict[str, list[np.ndarray]] = {}
    for run_dir in run_dirs:
        with xr.open_dataset(run_dir / "predictions.nc") as ds:
            members.setdefault(run_identity(run_dir)[0], []).append(task.forecast_from(ds))
    forecasts = {
        f"{variant}-ensemble": np.mean(arrays, axis=0)
        for variant, arrays in members.items()
        if len(arrays) > 1
    }
    if not forecasts:
        return pd.DataFrame(columns=SCORE_COLUMNS)
    roles = dict.fromkeys(forecasts, "ensemble")
    table = task.score(forecasts, roles, references, prepared)
    sizes = {f"{v}-ensemble": len(a) for v, a in members.items()}
    return table.assign(variant=table["forecast"].str.removesuffix("-ensemble"), seed=-1).assign(
        n_members=table["forecast"].map(sizes)
    )


def summary_table(scores: pd.DataFrame) -> pd.DataFrame:
    """Per (forecast, group, metric): mean and standard deviation over seeds for the
    networks; the ensembles' and references' one value (n_seeds: the seeds behind it)."""
    models = scores[scores["role"] == "model"]
    references = scores[~scores["role"].isin(NETWORK_ROLES)].drop_duplicates(
        ["forecast", "group", "metric"]
    )
    keys = ["forecast", "role", "dim", "group", "metric"]
    spread = (
        models.groupby(keys, sort=False)["value"]
        .agg(
            mean="mean",
            std=lambda v: float(np.std(v, ddof=1)) if len(v) > 1 else 0.0,
            n_seeds="count",
        )
        .reset_index()
    )
    single = pd.concat([references, scores[scores["role"] == "ensemble"]])
    single = single.assign(mean=single["value"], std=np.nan)
    single["n_seeds"] = single.get("n_members", pd.Series(1, index=single.index)).fillna(1)
    table = pd.concat([spread, single[[*keys, "mean", "std", "n_seeds"]]], ignore_index=True)
    table["n_seeds"] = table["n_seeds"].astype(int)
    order = table["role"].map({r: i for i, r in enumerate(ROLES)})
    table = table.assign(_role=order, _group=table["group"].map(group_order))
    return table.sort_values(["_role", "forecast", "metric", "_group"], ignore_index=True).drop(
        columns=["_role", "_group"]
    )


def best_per_group(table: pd.DataFrame, task: Task) -> pd.DataFrame:
    """Per group (lead, class, and ``all``), by the task's headline metric: the best
    forecast overall (networks, ensembles and baselines alike), the best network and the
    best baseline with the network's margin over it (positive: the network is better),
    and any skill ceiling (the oracle) beside them, never "best".

    Columns: {dim}, best_forecast, best_{metric}, best_network, network_{metric},
    best_baseline, baseline_{metric}, network_minus_baseline[, {ceiling}_{metric}].
    """
    metric = task.headline
    # the task's groups only: a series task's per-entity rows are detail, not verdicts
    scores = table[(table["metric"] == metric) & table["mean"].notna() & (table["dim"] == task.dim)]
    sign = -1.0 if metric in task.lower_is_better else 1.0

    def best(part: pd.DataFrame, name: str, score: str) -> pd.DataFrame:
        rows = part.loc[(sign * part["mean"]).groupby(part["group"]).idxmax()]
        return rows.set_index("group")[["forecast", "mean"]].set_axis([name, score], axis=1)

    is_network = scores["role"].isin(NETWORK_ROLES)
    is_baseline = scores["role"] == "baseline"
    overall = best(scores[is_network | is_baseline], "best_forecast", f"best_{metric}")
    networks = best(scores[is_network], "best_network", f"network_{metric}")
    baselines = best(scores[is_baseline], "best_baseline", f"baseline_{metric}")
    out = overall.join([networks, baselines], how="outer")
    out["network_minus_baseline"] = sign * (out[f"network_{metric}"] - out[f"baseline_{metric}"])
    ceilings = scores[scores["role"] == "ceiling"]
    for name, part in ceilings.groupby("forecast"):
        out = out.join(part.set_index("group")["mean"].rename(f"{name}_{metric}"), how="left")
    out = out.reset_index().rename(columns={"group": task.dim})
    order = sorted(range(len(out)), key=lambda i: group_order(out[task.dim].iloc[i]))
    return out.iloc[order].reset_index(drop=True)


def verdicts(best: pd.DataFrame, task: Task) -> list[str]:
    """One plain sentence per group from ``best_per_group``: the summary log and figure
    say it."""
    metric, name = task.headline, task.headline.upper()
    ceilings = [
        c
        for c in best.columns
        if c.endswith(f"_{metric}") and not c.startswith(("best_", "network_", "baseline_"))
    ]
    width = max(len(str(g)) for g in best[task.dim])
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
        line = (
            f"{task.dim} {row[task.dim]!s:>{width}}: best forecast {row['best_forecast']} "
            f"({name} {row[f'best_{metric}']:.3f}); {comparison}"
        )
        for column in ceilings:
            line += f"; {column.removesuffix(f'_{metric}')} ceiling {row[column]:.3f}"
        lines.append(line)
    return lines


def collect_importance(run_dirs: Sequence[Path]) -> pd.DataFrame:
    tables = []
    for run_dir in run_dirs:
        variant, seed = run_identity(run_dir)
        tables.append(pd.read_csv(run_dir / "importance.csv").assign(variant=variant, seed=seed))
    return pd.concat(tables, ignore_index=True)


def summarize_job(
    *,
    experiment: str,
    run_dirs: Sequence[str | Path],
    prepared_path: str | Path,
    tracking_uri: str,
    experiment_ids: str | Path,
    out_dir: str | Path,
) -> pd.DataFrame:
    """Write summary.csv, best_forecasts.csv and the task's figures; log them to a
    summary run that links every run of the experiment, and its seed ensembles and
    baselines to runs of their own."""
    from pipeline.prepare import open_prepared
    from pipeline.runs import experiment_id

    out_dir = Path(out_dir)
    run_dirs = [Path(p) for p in run_dirs]
    prepared = open_prepared(prepared_path)
    task = prepared_task(prepared)
    runs = collect_scores(run_dirs)
    ensembles = ensemble_scores(task, prepared, run_dirs, task.baselines(prepared))
    scores = pd.concat([runs, ensembles], ignore_index=True) if len(ensembles) else runs
    table = summary_table(scores)
    write_text(table.to_csv(index=False, float_format="%.6g"), out_dir / "summary.csv")
    best = best_per_group(table, task)
    write_text(best.to_csv(index=False, float_format="%.4f"), out_dir / "best_forecasts.csv")
    lines = verdicts(best, task)
    importance = collect_importance(run_dirs)
    figures = task.summary_figures(
        table, importance, lines, prepared, run_dirs, out_dir / "figures", experiment
    )
    log.info("best forecast per %s (a ceiling is never best):\n%s", task.dim, "\n".join(lines))

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
        for path in (out_dir / "summary.csv", out_dir / "best_forecasts.csv", *figures):
            tracker.artifact(path)
        groups = [str(g) for g in best[task.dim] if g != ALL]
        metric = task.headline
        tracker.metrics(  # the best network's score per group (the references have runs)
            {
                f"best_{metric}"
                + (
                    "" if r[task.dim] == ALL else f"_{group_suffix(task.dim, r[task.dim], groups)}"
                ): r[f"network_{metric}"]
                for r in best.to_dict("records")
            }
        )
        write_text(f"{tracker.run_id or OFFLINE_RUN_ID}\n", out_dir / "mlflow_run_id")
    if tracker.run_id and tracker.enabled:  # after the summary run: one active run at a time
        run_ids = [(d / "mlflow_run_id").read_text().strip() for d in run_dirs]
        references = scores[scores["role"] != "model"].drop_duplicates(
            ["forecast", "group", "metric"]
        )
        run_ids += log_reference_runs(
            tracking_uri,
            exp_id,
            experiment,
            references,
            prepared.attrs["data_sha256"],
            prepared.attrs["config_hash"],
        )
        # a tag, not mlflow.parentRunId: the UI would fold every run under the summary
        tracker.tag_runs([r for r in run_ids if r != OFFLINE_RUN_ID], {SUMMARY_TAG: tracker.run_id})
    return table
