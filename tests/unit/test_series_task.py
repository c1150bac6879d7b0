"""The series task on synthetic basins: train on windows, forecast, score against the
baselines and the oracle, figures, and importance by input, static attribute and lag."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import xarray as xr

from pipeline.importance import permutation_importance
from pipeline.models.specs import complete_spec
from pipeline.sources.basin_layouts import read_generic_dataset
from pipeline.sources.basins import read_truth, write_basins
from pipeline.tasks.series import TASK, lag_blocks
from pipeline.train import train_model

INPUTS = ["total_precipitation_sum", "temperature_2m_mean", "potential_evaporation_sum"]
EXP = {
    "task": {
        "kind": "series",
        "inputs": INPUTS,
        "statics": ["aridity", "frac_snow"],
        "target": "streamflow",
        "history": 60,
        "leads": [0],
    },
    "splits": {"train": [2000, 2001], "val": [2002, 2002], "test": [2003, 2003]},
}
TRAINING = {
    "epochs": 2,
    "batch_size": 256,
    "lr": 3e-3,
    "weight_decay": 0.0,
    "optimizer": "adamw",
    "scheduler": "cosine",
    "grad_clip": 1.0,
    "patience": 5,
    "loss": "nse",
    "amp": "off",
    "device": "cpu",
    "deterministic": True,
    "gpu_resident": "auto",
    "num_workers": 0,
    "data": "auto",
    "shuffle_buffer_mb": 256,
    "strategy": "single",
    "processes": 2,
}


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> xr.Dataset:
    root = tmp_path_factory.mktemp("basins")
    paths = write_basins(root, n_basins=5, years=4, start_year=2000, seed=4)
    ds = TASK.build_samples(read_generic_dataset(root).load(), EXP, read_truth(paths[-1]))
    ds.attrs["task"] = "series"
    return ds


@pytest.fixture(scope="module")
def model(prepared: xr.Dataset, tmp_path_factory: pytest.TempPathFactory) -> torch.nn.Module:
    spec = complete_spec({"arch": "lstm", "hidden": 16, "forget_bias": 3}, "m")
    variant = {"base": "lstm", "model": spec, "training": TRAINING}
    out = tmp_path_factory.mktemp("run")
    return train_model(prepared, variant, 0, out, run_hash="h").model.eval()


def test_scores_stand_beside_every_baseline_and_the_oracle(prepared, model) -> None:
    forecast = TASK.predict(model, prepared)["forecast"]
    baselines = TASK.baselines(prepared)
    assert set(baselines) == {"climatology", "ridge", "oracle"}
    roles = {"lstm": "model", "climatology": "baseline", "ridge": "baseline", "oracle": "ceiling"}
    scores = TASK.score({"lstm": forecast, **baselines}, roles, baselines, prepared)
    lead = scores[(scores["dim"] == "lead") & (scores["group"] == "0")]
    nse = lead[lead["metric"] == "nse"].set_index("forecast")["value"]
    assert nse["oracle"] > 0.8 and nse["oracle"] > nse["ridge"] > nse["climatology"]
    per_basin = scores[(scores["dim"] == "entity") & (scores["metric"] == "nse")]
    assert len(per_basin) == 4 * 5  # every forecast, every basin
    median = per_basin[per_basin["forecast"] == "oracle"]["value"].median()
    assert nse["oracle"] == pytest.approx(median)
    counts = lead[lead["metric"] == "n_nse_le_0"].set_index("forecast")["value"]
    assert counts["oracle"] == 0
    predictions = TASK.predictions(prepared, {"forecast": forecast}, baselines)
    np.testing.assert_array_equal(TASK.forecast_from(predictions), forecast)


def test_figures_are_drawn(prepared, model, tmp_path: Path) -> None:
    forecast = TASK.predict(model, prepared)["forecast"]
    baselines = TASK.baselines(prepared)
    roles = {"lstm": "model", "climatology": "baseline", "ridge": "baseline", "oracle": "ceiling"}
    scores = TASK.score({"lstm": forecast, **baselines}, roles, baselines, prepared)
    paths = TASK.run_figures(
        prepared, {"forecast": forecast}, baselines, scores, "lstm", tmp_path, "t"
    )
    assert [p.name for p in paths] == ["nse_cdf.png", "hydrographs.png"]
    assert all(p.stat().st_size > 10_000 and p.with_suffix(".pdf").exists() for p in paths)


def test_importance_groups_inputs_statics_and_lag_blocks(prepared, model) -> None:
    x, groups = TASK.importance_inputs(prepared, {"groups": "variable"})
    assert list(groups) == [*INPUTS, "aridity", "frac_snow", "lags 0-6", "lags 7-29", "lags 30-59"]
    assert x.shape[1:] == (60, 5)
    (target,) = TASK.importance_targets(model, prepared, {})
    table = permutation_importance(
        target.predict,
        x,
        target.y,
        groups,
        loss=target.loss,
        outputs=target.groups,
        methods=["single"],
        repeats=1,
        bootstrap=0,
        seed=0,
    )
    scores = table.set_index("group")["score"]
    assert scores["total_precipitation_sum"] > 0  # the flow follows the rain


def test_lag_blocks_count_in_the_records_step() -> None:
    assert lag_blocks(365, 1.0) == [(0, 6), (7, 29), (30, 89), (90, 179), (180, 364)]
    assert lag_blocks(24, 30.4) == [(0, 0), (1, 2), (3, 5), (6, 11), (12, 23)]
