"""Series studies' prepared data: train-only statistics, leakage-free windows, gaps."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import xarray as xr

from pipeline.series_data import build_series_samples, sample_index, windows
from pipeline.sources.basin_layouts import read_generic_dataset
from pipeline.sources.basins import STATIC, write_basins
from pipeline.variables import DataError

INPUTS = ["total_precipitation_sum", "temperature_2m_mean", "potential_evaporation_sum"]
EXP = {
    "task": {
        "kind": "series",
        "inputs": INPUTS,
        "statics": ["aridity", "frac_snow", "elev_mean"],
        "target": "streamflow",
        "history": 90,
        "leads": [0],
    },
    "splits": {"train": [2000, 2001], "val": [2002, 2002], "test": [2003, 2003]},
}


@pytest.fixture(scope="module")
def basins(tmp_path_factory: pytest.TempPathFactory) -> xr.Dataset:
    root = tmp_path_factory.mktemp("basins")
    write_basins(root, n_basins=4, years=4, start_year=2000, seed=3)
    return read_generic_dataset(root).load()


def test_the_store_keeps_series_and_two_integers_per_window(basins: xr.Dataset) -> None:
    ds = build_series_samples(basins, EXP)
    assert ds["inputs"].dims == ("entity", "time", "feature") and ds.attrs["step"] == "daily"
    assert set(ds["split"].values) == {"train", "val", "test"}
    assert ds.sizes["sample"] > 4 * (4 * 365 - 90 - 50)  # all windows but gaps' and the first
    train = ds["time_split"].values == "train"
    for name in INPUTS:  # normalised with the train period's statistics only
        values = ds["inputs"].sel(feature=name).values[:, train]
        assert abs(np.nanmean(values)) < 1e-4 and np.nanstd(values) == pytest.approx(1, abs=1e-4)
    stats = ds.attrs["stats"]["streamflow"]
    train_flow = basins["streamflow"].values[:, train]
    assert stats["mean"] == pytest.approx(np.nanmean(train_flow))


def test_a_sample_belongs_to_the_split_of_its_target_dates(basins: xr.Dataset) -> None:
    exp = {**EXP, "task": {**EXP["task"], "leads": [0, 30]}}
    ds = build_series_samples(basins, exp)
    ends = ds["sample_end"].values
    for lead in (0, 30):
        assert (ds["time_split"].values[ends + lead] == ds["split"].values).all()
    x, y = windows(ds, "test").batch(torch.arange(3))
    assert x.shape == (3, 90, 3 + 3) and y.shape == (3, 2 + 1)  # 2 leads, then the std


def test_windows_with_a_missing_input_are_no_samples() -> None:
    finite = np.ones((1, 20), bool)
    finite[0, 10] = False
    split = np.array(["train"] * 20)
    entity, end, _ = sample_index(finite, np.ones((1, 20), bool), split, 4, [0])
    assert end.tolist() == [3, 4, 5, 6, 7, 8, 9, 14, 15, 16, 17, 18, 19]  # none covers step 10
    assert (entity == 0).all()


def test_a_single_series_at_any_calendar_step_is_one_entity() -> None:
    time = pd.date_range("1950-01-01", periods=60 * 12, freq="MS")
    rng = np.random.default_rng(0)
    index = xr.DataArray(np.cumsum(rng.normal(size=len(time))) * 0.1, dims="time")
    fields = xr.Dataset({"nino12": index.assign_attrs(units="degC")}, coords={"time": time})
    exp = {
        "task": {
            "inputs": ["nino12"],
            "statics": [],
            "target": "nino12",
            "history": 12,
            "leads": [1, 3],
        },
        "splits": {"train": [1950, 1989], "val": [1990, 1999], "test": [2000, 2009]},
    }
    ds = build_series_samples(fields, exp)
    assert ds.attrs["step"] == "monthly" and ds.sizes["entity"] == 1 and ds.sizes["static"] == 0
    weekly = fields.assign_coords(time=pd.date_range("1950-01-01", periods=len(time), freq="W"))
    exp["splits"] = {"train": [1950, 1955], "val": [1956, 1957], "test": [1958, 1960]}
    assert build_series_samples(weekly, exp).attrs["step"] == "weekly"


def test_bad_series_name_the_variable(basins: xr.Dataset) -> None:
    with pytest.raises(DataError, match="'soil_moisture'"):
        build_series_samples(basins, {**EXP, "task": {**EXP["task"], "inputs": ["soil_moisture"]}})
    with pytest.raises(DataError, match=r"'aridity' .*dims"):
        bad = basins.assign(aridity=basins["streamflow"])
        build_series_samples(bad, EXP)
    odd = basins.isel(time=slice(None, None, 10))
    with pytest.raises(DataError, match="10-day step"):
        build_series_samples(odd, EXP)
    assert set(EXP["task"]["statics"]) <= set(STATIC)


def test_a_basin_without_train_flow_is_named(basins: xr.Dataset, tmp_path: Path) -> None:
    flow = basins["streamflow"].copy()
    flow[1, : 2 * 365] = np.nan
    with pytest.raises(DataError, match="basin_001"):
        build_series_samples(basins.assign(streamflow=flow), EXP)


def test_a_basin_without_a_static_attribute_is_named(basins: xr.Dataset) -> None:
    """A NaN attribute (CAMELS-US gauges missing from camels_*.txt) would feed NaN inputs."""
    aridity = basins["aridity"].copy()
    aridity[2] = np.nan
    with pytest.raises(DataError, match=r"'aridity' .*basin_002"):
        build_series_samples(basins.assign(aridity=aridity), EXP)


def test_data_before_the_first_split_feed_the_first_windows(tmp_path: Path) -> None:
    """Years before the train period are history, not dropped: the first training target
    is the train period's first day."""
    from pipeline.prepare import prepare
    from pipeline.sources import fetch

    source = {"kind": "synthetic", "generator": "basins", "n_basins": 2, "years": 4}
    manifest = fetch("basins", {"source": {**source, "start_year": 2000}}, tmp_path / "raw")
    splits = {"train": [2001, 2001], "val": [2002, 2002], "test": [2003, 2003]}
    ds = prepare([], [manifest], {**EXP, "splits": splits}, "hash", tmp_path / "p.zarr")
    train = ds["sample_end"].values[ds["split"].values == "train"]
    assert str(ds["time"].values[train.min()])[:10] == "2001-01-01"
