"""The summary: a group-by of the runs' metrics.csv, seed ensembles scored as forecasts of
their own, and the best forecast per group counting baselines and ensembles, never a
skill ceiling (the oracle)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from matplotlib.figure import Figure

from pipeline import plots
from pipeline.io import write_netcdf
from pipeline.prepare import open_prepared
from pipeline.samples import split_indices
from pipeline.scores import ALL, SCORE_COLUMNS, score_rows, scores_table, write_scores
from pipeline.summarize import (
    best_per_group,
    collect_scores,
    ensemble_scores,
    summary_table,
    verdicts,
)
from pipeline.tasks.forecast import TASK, ForecastTask

# Test-period ACC per lead (1, 6) and seed: a baseline wins at lead 1, a network at lead 6,
# and the oracle (a ceiling) is above everything at both.
ACC = {
    "unet": {0: (0.890, 0.750), 1: (0.902, 0.750)},
    "resnet": {0: (0.850, 0.700), 1: (0.850, 0.700)},
}
REFERENCES = {
    "persistence": ("baseline", (0.944, 0.400)),
    "climatology": ("baseline", (np.nan, np.nan)),
    "linear": ("baseline", (0.920, 0.600)),
    "oracle": ("ceiling", (0.990, 0.800)),
}
LEADS = (1, 6)
SUMMARY_COLUMNS = ["forecast", "role", "dim", "group", "metric", "mean", "std", "n_seeds"]


def forecast_rows(name: str, role: str, acc: tuple[float, float]) -> list[dict]:
    """One forecast's ACC and RMSE (1 - ACC) per lead, and their means (group ``all``)."""
    rows = []
    for lead, value in zip(LEADS, acc, strict=True):
        rows += score_rows(name, role, "lead", lead, {"acc": value, "rmse": 1.0 - value})
    mean = float(np.mean(acc))
    return rows + score_rows(name, role, "lead", ALL, {"acc": mean, "rmse": 1.0 - mean})


def write_run(root: Path, variant: str, seed: int) -> Path:
    """A run folder with the metrics.csv that evaluate writes (ACC and RMSE only)."""
    run = root / "enso" / "runs" / variant / f"seed{seed}"
    rows = forecast_rows(variant, "model", ACC[variant][seed])
    for name, (role, acc) in REFERENCES.items():
        rows += forecast_rows(name, role, acc)
    write_scores(scores_table(rows), run / "metrics.csv")
    return run


@pytest.fixture
def runs(tmp_path: Path) -> list[Path]:
    return [write_run(tmp_path, v, s) for v in ACC for s in ACC[v]]


@pytest.fixture
def table(runs: list[Path]) -> pd.DataFrame:
    return summary_table(collect_scores(runs))


def cell(table: pd.DataFrame, forecast: str, group: str, metric: str = "acc") -> pd.Series:
    rows = table[
        (table["forecast"] == forecast) & (table["group"] == group) & (table["metric"] == metric)
    ]
    assert len(rows) == 1, rows
    return rows.iloc[0]


def test_collect_scores_names_each_run(runs: list[Path]) -> None:
    scores = collect_scores(runs)
    assert set(zip(scores["variant"], scores["seed"], strict=True)) == {
        (v, s) for v in ACC for s in ACC[v]
    }
    assert scores["group"].tolist()[:3] == ["1", "1", "6"]  # groups stay text


def test_summary_table_is_mean_and_spread_over_seeds(table: pd.DataFrame) -> None:
    assert list(table.columns) == SUMMARY_COLUMNS
    unet = cell(table, "unet", "1")
    assert unet["mean"] == pytest.approx(0.896)
    assert unet["std"] == pytest.approx(np.std([0.890, 0.902], ddof=1))
    assert (unet["role"], unet["dim"], unet["n_seeds"]) == ("model", "lead", 2)
    # references: one value each, however many runs reported them
    linear = cell(table, "linear", "6")
    assert (linear["mean"], linear["n_seeds"], linear["role"]) == (0.6, 1, "baseline")
    assert np.isnan(linear["std"])
    assert cell(table, "oracle", ALL)["role"] == "ceiling"
    assert np.isnan(cell(table, "climatology", "1")["mean"])  # a constant forecast's ACC
    # networks first, then baselines, then ceilings; groups in lead order, ``all`` last
    assert table["role"].drop_duplicates().tolist() == ["model", "baseline", "ceiling"]
    unet_acc = table[(table["forecast"] == "unet") & (table["metric"] == "acc")]
    assert unet_acc["group"].tolist() == ["1", "6", ALL]


def test_best_forecast_counts_baselines_and_never_the_oracle(table: pd.DataFrame) -> None:
    best = best_per_group(table, TASK)
    assert list(best.columns) == [
        "lead",
        "best_forecast",
        "best_acc",
        "best_network",
        "network_acc",
        "best_baseline",
        "baseline_acc",
        "network_minus_baseline",
        "oracle_acc",
    ]
    assert best["lead"].tolist() == ["1", "6", ALL]
    best = best.set_index("lead")
    # lead 1: persistence beats the best network
    assert best.loc["1", "best_forecast"] == "persistence"
    assert best.loc["1", "best_acc"] == pytest.approx(0.944)
    assert best.loc["1", "best_network"] == "unet"
    assert best.loc["1", "network_acc"] == pytest.approx(0.896)
    assert best.loc["1", "best_baseline"] == "persistence"
    assert best.loc["1", "network_minus_baseline"] == pytest.approx(0.896 - 0.944)
    # lead 6: the network wins, by 0.15 over the linear baseline
    assert best.loc["6", "best_forecast"] == "unet"
    assert best.loc["6", "best_baseline"] == "linear"
    assert best.loc["6", "network_minus_baseline"] == pytest.approx(0.15)
    assert "oracle" not in set(best["best_forecast"]) | set(best["best_baseline"])
    assert best["oracle_acc"].tolist() == pytest.approx([0.99, 0.8, 0.895])


class RmseRanked(ForecastTask):
    """The forecast task ranked by RMSE: a headline where lower is better."""

    headline = "rmse"


def test_lower_is_better_for_errors(table: pd.DataFrame) -> None:
    best = best_per_group(table, RmseRanked()).set_index("lead")
    assert best.loc["1", "best_forecast"] == "persistence"
    assert best.loc["1", "best_rmse"] == pytest.approx(1 - 0.944)
    assert best.loc["6", "network_minus_baseline"] == pytest.approx(0.15)  # positive: better
    assert best.loc["1", "network_minus_baseline"] == pytest.approx(0.896 - 0.944)


def test_a_seed_ensemble_competes_as_a_network(runs: list[Path]) -> None:
    rows = forecast_rows("unet-ensemble", "ensemble", (0.91, 0.78))
    ensemble = scores_table(rows).assign(variant="unet", seed=-1, n_members=2)
    table = summary_table(pd.concat([collect_scores(runs), ensemble], ignore_index=True))
    row = cell(table, "unet-ensemble", "6")
    assert (row["role"], row["n_seeds"], row["mean"]) == ("ensemble", 2, 0.78)
    assert np.isnan(row["std"])
    assert table["role"].drop_duplicates().tolist() == ["model", "ensemble", "baseline", "ceiling"]
    best = best_per_group(table, TASK).set_index("lead")
    assert best.loc["6", "best_forecast"] == "unet-ensemble"
    assert best.loc["6", "best_network"] == "unet-ensemble"
    assert best.loc["6", "network_minus_baseline"] == pytest.approx(0.18)
    assert best.loc["1", "best_forecast"] == "persistence"  # the baseline still wins at 1
    assert best.loc["1", "best_network"] == "unet-ensemble"


def test_verdicts_say_plainly_which_forecast_is_best(table: pd.DataFrame) -> None:
    lead1, lead6, overall = verdicts(best_per_group(table, TASK), TASK)
    assert lead1.startswith("lead   1: ")
    assert "best forecast persistence (ACC 0.944)" in lead1
    assert "best network unet 0.896 is 0.048 worse than best baseline persistence" in lead1
    assert "best forecast unet (ACC 0.750)" in lead6
    assert "0.150 better than best baseline linear" in lead6
    assert "oracle ceiling 0.990" in lead1
    assert overall.startswith("lead all: ")


def test_summary_figure_says_the_same(
    table: pd.DataFrame, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    saved: list[Figure] = []
    save = plots.save
    monkeypatch.setattr(plots, "save", lambda fig, path: saved.append(fig) or save(fig, path))
    lines = verdicts(best_per_group(table, TASK), TASK)
    plots.summary_skill(table, tmp_path / "skill_vs_lead.png", "enso", lines)
    fig = saved[0]
    assert "\n".join(lines) in [t.get_text() for t in fig.texts]
    ring = next(
        line for line in fig.axes[0].get_lines() if line.get_label() == "best forecast at the lead"
    )
    assert list(ring.get_ydata()) == pytest.approx([0.944, 0.75])  # persistence, then unet


def write_predictions(root: Path, prepared: xr.Dataset, variant: str, seed: int, forecast) -> Path:
    """A run folder with the predictions.nc that evaluate writes."""
    run = root / "enso" / "runs" / variant / f"seed{seed}"
    write_netcdf(TASK.predictions(prepared, {"forecast": forecast}, {}), run / "predictions.nc")
    return run


def test_ensemble_scores_score_the_mean_of_the_seeds(tiny_prepared: Path, tmp_path: Path) -> None:
    prepared = open_prepared(tiny_prepared).load()
    obs = prepared["y"].values[split_indices(prepared)].astype(float)
    spread = np.random.default_rng(0).standard_normal(obs.shape)
    runs = [
        write_predictions(tmp_path, prepared, "unet", 0, obs + spread),
        write_predictions(tmp_path, prepared, "unet", 1, obs - spread),  # errors cancel
        write_predictions(tmp_path, prepared, "resnet", 0, obs + spread),  # one seed: none
    ]
    baselines = TASK.baselines(prepared)
    table = ensemble_scores(TASK, prepared, runs, baselines)
    assert set(table["forecast"]) == {"unet-ensemble"}
    assert set(table["role"]) == {"ensemble"} and set(table["variant"]) == {"unet"}
    assert set(table["seed"]) == {-1} and set(table["n_members"]) == {2}
    scores = table.set_index(["group", "metric"])["value"]
    for group in ("1", "6", ALL):
        assert scores[group, "rmse"] == pytest.approx(0.0, abs=1e-6)
        assert scores[group, "acc"] == pytest.approx(1.0)
    # the same numbers as scoring the mean forecast directly (MSESS against the baselines)
    members = []
    for run in runs[:2]:
        with xr.open_dataset(run / "predictions.nc") as ds:
            members.append(TASK.forecast_from(ds))
    mean = (members[0] + members[1]) / 2
    direct = TASK.score({"unet-ensemble": mean}, {"unet-ensemble": "ensemble"}, baselines, prepared)
    np.testing.assert_allclose(table["value"], direct["value"], rtol=1e-6, atol=1e-9)


def test_no_ensemble_without_several_seeds(tiny_prepared: Path, tmp_path: Path) -> None:
    prepared = open_prepared(tiny_prepared).load()
    obs = prepared["y"].values[split_indices(prepared)].astype(float)
    runs = [write_predictions(tmp_path, prepared, v, 0, obs) for v in ("unet", "resnet")]
    table = ensemble_scores(TASK, prepared, runs, TASK.baselines(prepared))
    assert table.empty and list(table.columns)[:6] == SCORE_COLUMNS
