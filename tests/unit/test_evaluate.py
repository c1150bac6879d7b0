"""Baselines and evaluation: train-only fits, metric tables, predictions with coordinates."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from pipeline.baselines import baseline_forecasts, climatology, fit_linear, persistence
from pipeline.evaluate import event_scores, lead_metrics, predictions_dataset, write_metrics
from pipeline.prepare import open_prepared


@pytest.fixture(scope="module")
def prepared(tiny_prepared: Path) -> xr.Dataset:
    return open_prepared(tiny_prepared).load()


def test_persistence_and_climatology() -> None:
    np.testing.assert_array_equal(persistence(np.array([1.0, -2.0]), 3), [[1, 1, 1], [-2, -2, -2]])
    assert climatology(4, 2).shape == (4, 2) and not climatology(4, 2).any()


def test_linear_baseline_fits_on_train_only(prepared: xr.Dataset) -> None:
    a = baseline_forecasts(prepared)
    poisoned = prepared.copy(deep=True)
    test = poisoned["split"] == "test"
    poisoned["y"] = poisoned["y"].where(~test, 99.0)  # test targets never reach the fit
    b = baseline_forecasts(poisoned)
    np.testing.assert_array_equal(a["linear"], b["linear"])
    assert set(a) == {"persistence", "climatology", "linear", "oracle"}
    assert a["linear"].shape == (int(test.sum()), prepared.sizes["lead"])


def test_linear_baseline_recovers_a_linear_signal() -> None:
    rng = np.random.default_rng(0)
    factors = rng.standard_normal((400, 5))  # maps driven by a few modes, like ENSO
    patterns = rng.standard_normal((5, 2 * 3 * 4 * 5))
    x = (factors @ patterns + 0.1 * rng.standard_normal((400, 120))).reshape(400, 2, 3, 4, 5)
    y = factors[:, :1] * [1.0, 0.5]
    model = fit_linear(x, y, n_components=10)
    assert np.corrcoef(model.predict(x.reshape(400, -1))[:, 0], y[:, 0])[0, 1] > 0.95


def test_lead_metrics_structure_and_values() -> None:
    rng = np.random.default_rng(1)
    obs = rng.standard_normal((120, 2))
    baselines = {
        "persistence": obs + rng.standard_normal((120, 2)),
        "climatology": np.zeros((120, 2)),
        "linear": 0.5 * obs,
        "oracle": obs + 0.1 * rng.standard_normal((120, 2)),
    }
    metrics = lead_metrics(obs, obs * 0.9, baselines, [1, 6])
    model = metrics["per_lead"]["6"]["model"]
    assert model["acc"] == pytest.approx(1.0)
    assert model["msess_climatology"] == pytest.approx(1 - 0.01)
    assert 0.9 < model["frac_oracle_acc"] <= 1.01
    assert metrics["per_lead"]["1"]["climatology"]["rmse"] == pytest.approx(
        np.sqrt(np.mean(obs[:, 0] ** 2))
    )
    assert set(metrics["mean_over_leads"]) == {"model", *baselines}


def test_metrics_json_is_deterministic_and_valid(tmp_path: Path) -> None:
    metrics = {"a": float("nan"), "b": [np.float32(0.1), 1 / 3], "c": {"d": np.int64(3)}}
    write_metrics(metrics, tmp_path / "m1.json")
    write_metrics(metrics, tmp_path / "m2.json")
    assert (tmp_path / "m1.json").read_bytes() == (tmp_path / "m2.json").read_bytes()
    loaded = json.loads((tmp_path / "m1.json").read_text())
    assert loaded["a"] is None and loaded["c"]["d"] == 3


def test_event_scores() -> None:
    obs = np.array([-1.0, -0.8, 0.0, 0.2, 0.9, 1.5])
    scores = event_scores(obs, obs)
    assert scores["confusion_matrix"] == [[2, 0, 0], [0, 2, 0], [0, 0, 2]]
    assert scores["macro_f1"] == 1.0 and scores["roc_auc"][2] == 1.0


def test_predictions_have_real_coordinates(prepared: xr.Dataset) -> None:
    n_test = int((prepared["split"] == "test").sum())
    forecasts = {"prediction": np.zeros((n_test, prepared.sizes["lead"]))}
    ds = predictions_dataset(prepared, forecasts)
    assert ds["time"].dtype.kind == "M" and list(ds["lead"].values) == [1, 6]
    first = ds.isel(time=0)
    months = first["valid_time"].values.astype("datetime64[M]") - first["time"].values.astype(
        "datetime64[M]"
    )
    assert months.astype(int).tolist() == [1, 6]
    np.testing.assert_array_equal(
        ds["observed"], prepared["y"].values[prepared["split"].values == "test"]
    )
