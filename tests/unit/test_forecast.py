"""The forecast task: train-only baselines, the per-lead score table, ENSO events,
predictions with coordinates, and the example maps of the summary."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from pipeline import plots
from pipeline.baselines import baseline_forecasts, climatology, fit_linear, persistence
from pipeline.io import write_netcdf
from pipeline.prepare import open_prepared
from pipeline.samples import split_indices
from pipeline.scores import ALL, SCORE_COLUMNS
from pipeline.tasks.forecast import (
    TASK,
    event_confusion,
    event_lead,
    event_scores,
    example_map_data,
    lead_scores,
)

REFERENCE_NAMES = ("persistence", "climatology", "linear")


@pytest.fixture(scope="module")
def prepared(tiny_prepared: Path) -> xr.Dataset:
    return open_prepared(tiny_prepared).load()


def test_persistence_and_climatology() -> None:
    np.testing.assert_array_equal(persistence(np.array([1.0, -2.0]), 3), [[1, 1, 1], [-2, -2, -2]])
    assert climatology(4, 2).shape == (4, 2) and not climatology(4, 2).any()


def test_linear_baseline_fits_on_train_only(prepared: xr.Dataset) -> None:
    a = TASK.baselines(prepared)
    poisoned = prepared.copy(deep=True)
    test = poisoned["split"] == "test"
    poisoned["y"] = poisoned["y"].where(~test, 99.0)  # test targets never reach the fit
    b = baseline_forecasts(poisoned)
    np.testing.assert_array_equal(a["linear"], b["linear"])
    assert set(a) == {"persistence", "climatology", "linear", "oracle"}
    assert a["linear"].shape == (int(test.sum()), prepared.sizes["lead"])
    assert set(a) >= TASK.ceilings  # the oracle comes with the synthetic data


def test_linear_baseline_recovers_a_linear_signal() -> None:
    rng = np.random.default_rng(0)
    factors = rng.standard_normal((400, 5))  # maps driven by a few modes, like ENSO
    patterns = rng.standard_normal((5, 2 * 3 * 4 * 5))
    x = (factors @ patterns + 0.1 * rng.standard_normal((400, 120))).reshape(400, 2, 3, 4, 5)
    y = factors[:, :1] * [1.0, 0.5]
    model = fit_linear(x, y, n_components=10)
    assert np.corrcoef(model.predict(x.reshape(400, -1))[:, 0], y[:, 0])[0, 1] > 0.95


def test_lead_scores_structure_and_values() -> None:
    rng = np.random.default_rng(1)
    obs = rng.standard_normal((120, 2))
    baselines = {
        "persistence": obs + rng.standard_normal((120, 2)),
        "climatology": np.zeros((120, 2)),
        "linear": 0.5 * obs,
        "oracle": obs + 0.1 * rng.standard_normal((120, 2)),
    }
    roles = {"cnn": "model", "oracle": "ceiling"} | dict.fromkeys(REFERENCE_NAMES, "baseline")
    table = lead_scores({"cnn": obs * 0.9, **baselines}, roles, baselines, obs, [1, 6])
    assert list(table.columns) == SCORE_COLUMNS
    assert set(table["dim"]) == {"lead"} and set(table["group"]) == {"1", "6", ALL}
    assert dict(table[["forecast", "role"]].drop_duplicates().values) == roles
    scores = table.set_index(["forecast", "group", "metric"])["value"]
    assert scores["cnn", "6", "acc"] == pytest.approx(1.0)
    assert scores["cnn", "6", "msess_climatology"] == pytest.approx(1 - 0.01)
    assert 0.9 < scores["cnn", "6", "frac_oracle_acc"] <= 1.01
    assert scores["climatology", "1", "rmse"] == pytest.approx(np.sqrt(np.mean(obs[:, 0] ** 2)))
    # ``all`` is the mean over leads; no forecast is scored against itself
    assert scores["linear", ALL, "rmse"] == pytest.approx(
        (scores["linear", "1", "rmse"] + scores["linear", "6", "rmse"]) / 2
    )
    metrics = table.groupby("forecast")["metric"].agg(set)
    assert "msess_linear" not in metrics["linear"] and "msess_linear" in metrics["cnn"]
    # ENSO event scores for the network only
    assert {"event_accuracy", "event_macro_f1", "event_roc_auc"} <= metrics["cnn"]
    assert not any(m.startswith("event_") for m in metrics["persistence"])


def test_event_scores_of_a_perfect_forecast() -> None:
    obs = np.array([-1.0, -0.8, 0.0, 0.2, 0.9, 1.5])
    assert event_confusion(obs, obs).tolist() == [[2, 0, 0], [0, 2, 0], [0, 0, 2]]
    assert event_scores(obs, obs) == {
        "event_accuracy": 1.0,
        "event_macro_f1": 1.0,
        "event_roc_auc": 1.0,
    }
    flipped = event_scores(-obs, obs)  # La Niña called El Niño and back: neutral only right
    assert flipped["event_accuracy"] == pytest.approx(2 / 6)


def test_event_figures_show_the_lead_nearest_six_months() -> None:
    assert event_lead([1, 3, 6, 9, 12]) == 6
    assert event_lead([1, 4, 9]) == 4


def test_predictions_have_real_coordinates(prepared: xr.Dataset) -> None:
    n_test = len(split_indices(prepared))
    forecast = np.arange(n_test * prepared.sizes["lead"], dtype=float).reshape(n_test, -1)
    baselines = TASK.baselines(prepared)
    ds = TASK.predictions(prepared, {"forecast": forecast}, baselines)
    assert ds["time"].dtype.kind == "M" and list(ds["lead"].values) == [1, 6]
    first = ds.isel(time=0)
    months = first["valid_time"].values.astype("datetime64[M]") - first["time"].values.astype(
        "datetime64[M]"
    )
    assert months.astype(int).tolist() == [1, 6]
    np.testing.assert_array_equal(ds["observed"], prepared["y"].values[split_indices(prepared)])
    assert set(baselines) <= set(ds.data_vars) and "prediction_map" not in ds
    np.testing.assert_array_equal(TASK.forecast_from(ds), forecast)  # what ensembles average


def test_example_maps_pair_a_forecast_with_its_observation(
    prepared: xr.Dataset, tmp_path: Path
) -> None:
    test = prepared.isel(sample=split_indices(prepared))
    outputs = {
        "forecast": np.zeros((test.sizes["sample"], test.sizes["lead"])),
        "maps": test["y_map"].values * 0.3,  # a damped forecast of the observed maps
    }
    run = tmp_path / "enso" / "runs" / "unet" / "seed2"
    write_netcdf(TASK.predictions(prepared, outputs, {}), run / "predictions.nc")
    data = example_map_data(prepared, [tmp_path / "enso" / "runs" / "cnn" / "seed0", run])
    assert set(data["inputs"]) == {str(c) for c in prepared["channel"].values}
    forecast = data["forecast"]
    assert (forecast["model"], forecast["lead"]) == ("unet seed 2", 6)
    xr.testing.assert_allclose(
        forecast["predicted"], (forecast["observed"] * 0.3).astype("float32"), rtol=1e-5
    )
    path = plots.map_panels(data, tmp_path / "example_maps.png", "enso")
    assert path.exists() and path.with_suffix(".pdf").exists()
