"""Summary tables and figures: the best forecast per lead counts the baselines, never the
oracle; the example maps come from real run folders."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from matplotlib.figure import Figure

from pipeline import plots, summarize
from pipeline.evaluate import predictions_dataset, write_metrics
from pipeline.io import write_netcdf
from pipeline.prepare import open_prepared
from pipeline.summarize import best_per_lead, collect_metrics, example_map_data, summary_table

# Test-period ACC per lead (1, 6) and seed: a baseline wins at lead 1, a network at lead 6,
# and the oracle (a ceiling) is above everything at both.
ACC = {
    "unet": {0: (0.890, 0.750), 1: (0.902, 0.750)},
    "resnet": {0: (0.850, 0.700), 1: (0.850, 0.700)},
}
REFERENCES = {
    "persistence": (0.944, 0.400),
    "climatology": (None, None),
    "linear": (0.920, 0.600),
    "oracle": (0.990, 0.800),
}
LEADS = (1, 6)


def write_run(root: Path, variant: str, seed: int) -> Path:
    """A run folder with the metrics.json that evaluate writes (ACC and RMSE only)."""
    run = root / "enso" / "runs" / variant / f"seed{seed}"
    per_lead = {}
    for i, lead in enumerate(LEADS):
        forecasts = {"model": ACC[variant][seed][i], **{k: v[i] for k, v in REFERENCES.items()}}
        per_lead[str(lead)] = {
            name: {"acc": acc, "rmse": 1.0 - (acc or 0.0)} for name, acc in forecasts.items()
        }
    write_metrics({"leads": list(LEADS), "per_lead": per_lead}, run / "metrics.json")
    return run


@pytest.fixture
def table(tmp_path: Path) -> pd.DataFrame:
    runs = [write_run(tmp_path, v, s) for v in ACC for s in ACC[v]]
    return summary_table(collect_metrics(runs))


def test_best_forecast_counts_baselines_and_never_the_oracle(table: pd.DataFrame) -> None:
    best = best_per_lead(table).set_index("lead")
    assert list(best.columns) == [
        "best_forecast",
        "best_acc",
        "best_network",
        "network_acc",
        "best_baseline",
        "baseline_acc",
        "network_minus_baseline",
        "oracle_acc",
    ]
    # lead 1: persistence beats the best network (HEAD called the U-Net "best")
    assert best.loc[1, "best_forecast"] == "persistence"
    assert best.loc[1, "best_acc"] == pytest.approx(0.944)
    assert best.loc[1, "best_network"] == "unet"
    assert best.loc[1, "network_acc"] == pytest.approx(0.896)
    assert best.loc[1, "best_baseline"] == "persistence"
    assert best.loc[1, "network_minus_baseline"] == pytest.approx(0.896 - 0.944)
    # lead 6: the network wins, by 0.15 over the linear baseline
    assert best.loc[6, "best_forecast"] == "unet"
    assert best.loc[6, "best_baseline"] == "linear"
    assert best.loc[6, "network_minus_baseline"] == pytest.approx(0.15)
    assert "oracle" not in set(best["best_forecast"]) | set(best["best_baseline"])
    assert best["oracle_acc"].tolist() == pytest.approx([0.99, 0.8])


def test_lower_is_better_for_errors(table: pd.DataFrame) -> None:
    best = best_per_lead(table, "rmse").set_index("lead")
    assert best.loc[1, "best_forecast"] == "persistence"
    assert best.loc[1, "best_rmse"] == pytest.approx(1 - 0.944)
    assert best.loc[6, "network_minus_baseline"] == pytest.approx(0.15)  # positive: better


def test_verdicts_say_plainly_which_forecast_is_best(table: pd.DataFrame) -> None:
    lead1, lead6 = summarize.verdicts(best_per_lead(table))
    assert "best forecast persistence (ACC 0.944)" in lead1
    assert "best network unet 0.896 is 0.048 worse than best baseline persistence" in lead1
    assert "best forecast unet (ACC 0.750)" in lead6
    assert "0.150 better than best baseline linear" in lead6
    assert "oracle ceiling 0.990" in lead1


def test_summary_figure_says_the_same(
    table: pd.DataFrame, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    saved: list[Figure] = []
    save = plots._save
    monkeypatch.setattr(plots, "_save", lambda fig, path: saved.append(fig) or save(fig, path))
    lines = summarize.verdicts(best_per_lead(table))
    plots.summary_skill(table, tmp_path / "skill_vs_lead.png", "enso", lines)
    fig = saved[0]
    assert "\n".join(lines) in [t.get_text() for t in fig.texts]
    ring = next(
        line for line in fig.axes[0].get_lines() if line.get_label() == "best forecast at the lead"
    )
    assert list(ring.get_ydata()) == pytest.approx([0.944, 0.75])  # persistence, then unet


def test_example_maps_pair_a_forecast_with_its_observation(
    tiny_prepared: Path, tmp_path: Path
) -> None:
    prepared = open_prepared(tiny_prepared).load()
    test = prepared.isel(sample=np.flatnonzero(prepared["split"].values == "test"))
    maps = test["y_map"].values * 0.3  # a damped forecast of the observed maps
    run = tmp_path / "enso" / "runs" / "unet" / "seed2"
    index = np.zeros((test.sizes["sample"], test.sizes["lead"]))
    write_netcdf(predictions_dataset(prepared, {"prediction": index}, maps), run / "predictions.nc")
    data = example_map_data(prepared, [tmp_path / "enso" / "runs" / "cnn" / "seed0", run])
    assert set(data["inputs"]) == {str(c) for c in prepared["channel"].values}
    forecast = data["forecast"]
    assert (forecast["model"], forecast["lead"]) == ("unet seed 2", 6)
    xr.testing.assert_allclose(
        forecast["predicted"], (forecast["observed"] * 0.3).astype("float32"), rtol=1e-5
    )
    path = plots.map_panels(data, tmp_path / "example_maps.png", "enso")
    assert path.exists() and path.with_suffix(".pdf").exists()
