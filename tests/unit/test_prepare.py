"""Prepare: train-only statistics, no leakage across splits, correct Niño3.4, and the
store's provenance (the forecast task builds the samples, tasks/forecast.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from pipeline.geo import area_weights, box_mean, index_series
from pipeline.prepare import open_prepared, split_labels
from pipeline.tasks import get_task, prepared_task
from pipeline.tasks.forecast import build_samples, sample_indices
from pipeline.variables import DataError

TASK = {
    "inputs": ["sst", "heat_content"],
    "target": "nino34",
    "target_variable": "sst",
    "history": 3,
    "leads": [1, 6],
}
SPLITS = {"train": [2000, 2009], "val": [2010, 2012], "test": [2013, 2015]}


def fields(seed: int = 0) -> xr.Dataset:
    rng = np.random.default_rng(seed)
    time = xr.date_range("2000-01-01", "2015-12-01", freq="MS")
    lat = np.arange(-25.0, 30.0, 10.0)
    lon = np.arange(5.0, 360.0, 10.0)
    shape = (len(time), len(lat), len(lon))
    season = 2 * np.cos(2 * np.pi * np.arange(len(time)) / 12)[:, None, None]
    sst = 25 + season + rng.standard_normal(shape)
    hc = 15 + 0.5 * season + rng.standard_normal(shape)
    sst[:, 0, :3] = np.nan  # some land
    hc[:, 0, :3] = np.nan
    return xr.Dataset(
        {
            "sst": (("time", "lat", "lon"), sst.astype("f4")),
            "heat_content": (("time", "lat", "lon"), hc.astype("f4")),
        },
        coords={"time": time, "lat": lat, "lon": lon},
    )


def test_samples_never_cross_splits() -> None:
    ds = build_samples(fields(), TASK, SPLITS)
    labels = split_labels(xr.DataArray(ds["month_time"].values, dims="t"), SPLITS)
    times = list(ds["month_time"].values)
    for s in range(ds.sizes["sample"]):
        t = times.index(ds["time"].values[s])
        touched = labels[t - 2 : t + 6 + 1]
        assert (touched == ds["split"].values[s]).all()
    counts = dict(zip(*np.unique(ds["split"].values, return_counts=True), strict=True))
    # 10 train years -> 120 months minus (history-1) + max lead boundary months
    assert counts["train"] == 120 - 2 - 6
    assert counts["val"] == 36 - 2 - 6


def test_sample_indices_drop_boundaries() -> None:
    labels = np.array(["train"] * 10 + ["val"] * 10)
    idx = sample_indices(labels, history=2, leads=[1, 3])
    assert idx.tolist() == [1, 2, 3, 4, 5, 6, 11, 12, 13, 14, 15, 16]


def test_changing_test_data_does_not_change_train_statistics() -> None:
    base = fields()
    poisoned = base.copy(deep=True)
    test_period = poisoned["time"].dt.year >= 2013
    poisoned["sst"] = poisoned["sst"].where(~test_period, poisoned["sst"] + 50.0)
    poisoned["heat_content"] = poisoned["heat_content"].where(~test_period, -99.0)
    a, b = build_samples(base, TASK, SPLITS), build_samples(poisoned, TASK, SPLITS)
    assert a.attrs["stats"] == b.attrs["stats"]
    xr.testing.assert_identical(a["climatology"], b["climatology"])
    train = a["split"] == "train"
    xr.testing.assert_identical(a["x"].where(train, drop=True), b["x"].where(train, drop=True))
    xr.testing.assert_identical(a["y"].where(train, drop=True), b["y"].where(train, drop=True))
    assert not np.allclose(a["x"].where(~train, drop=True), b["x"].where(~train, drop=True))


def test_normalisation_uses_train_only() -> None:
    ds = build_samples(fields(), TASK, SPLITS)
    stats = ds.attrs["stats"]
    train_x = ds["x"].where(ds["split"] == "train", drop=True).isel(history=-1)
    mask = ds["mask"]
    sst = train_x.sel(channel="sst").where(mask.sel(channel="sst"))
    assert abs(float(sst.mean())) < 0.05 and abs(float(sst.std()) - 1) < 0.05
    assert stats["sst"]["std"] > 0


def test_anomalies_remove_the_train_climatology() -> None:
    ds = build_samples(fields(), TASK, SPLITS)
    series = ds["index_series"].to_series()
    train = series[series.index.year <= 2009]
    monthly = train.groupby(train.index.month).mean()
    np.testing.assert_allclose(monthly.values, 0, atol=1e-5)


def test_land_is_masked_and_filled_explicitly() -> None:
    ds = build_samples(fields(), TASK, SPLITS)
    assert not bool(ds["mask"].isel(lat=0, lon=0).any())
    assert float(np.abs(ds["x"].isel(lat=0, lon=0)).max()) == 0.0
    assert ds.attrs["land_fill"] == 0.0
    assert bool(ds["y_map"].isel(lat=0, lon=0).isnull().all())  # targets keep NaN


def test_nino34_is_area_weighted_box_mean() -> None:
    lat = np.arange(-7.5, 10, 5.0)
    lon = np.arange(182.5, 250, 5.0)
    da = xr.DataArray(
        np.zeros((len(lat), len(lon))), coords={"lat": lat, "lon": lon}, dims=("lat", "lon")
    )
    da[:] = lat[:, None]  # the value is the latitude
    # inside the box: lat -2.5, 2.5 with equal weights, so the mean is 0
    assert abs(float(index_series(da, "nino34"))) < 1e-12
    da2 = da.copy()
    da2[:] = (lon[None, :] >= 190) * 1.0
    assert float(box_mean(da2, (-5, 5, 190, 240))) == pytest.approx(
        1.0, abs=1e-12
    )  # outside ignored
    # -180..180 longitudes select the same cells
    da3 = da2.assign_coords(lon=((da2["lon"] + 180) % 360) - 180)
    assert float(box_mean(da3, (-5, 5, 190, 240))) == pytest.approx(1.0, abs=1e-12)


def test_area_weights_mean_one() -> None:
    w = area_weights(xr.DataArray(np.arange(-87.5, 90, 5.0), dims="lat"))
    assert abs(float(w.mean()) - 1) < 1e-12 and float(w.max() / w.min()) > 10


def test_oracle_is_attached_from_truth() -> None:
    f = fields()
    truth = xr.Dataset(
        {"oracle": (("time", "lead"), np.arange(len(f.time) * 24, dtype="f4").reshape(-1, 24))},
        coords={"time": f.time.values, "lead": np.arange(1, 25)},
    )
    ds = build_samples(f, TASK, SPLITS, truth)
    t0 = list(f.time.values).index(ds["time"].values[0])
    assert ds["oracle"].values[0].tolist() == [t0 * 24 + 0, t0 * 24 + 5]


def test_missing_variable_is_a_clear_error() -> None:
    with pytest.raises(DataError, match="heat_content"):
        build_samples(fields().drop_vars("heat_content"), TASK, SPLITS)


def test_the_store_records_its_task_and_reads_back_its_attrs(tiny_prepared: Path) -> None:
    ds = open_prepared(tiny_prepared)
    assert ds.attrs["task"] == "forecast"
    assert prepared_task(ds) is get_task("forecast")
    assert set(ds.attrs["json_attrs"].split()) == {"leads", "splits", "stats"}
    assert ds.attrs["leads"] == [1, 6]  # lists and dicts come back decoded
    assert ds.attrs["splits"]["test"] == [2006, 2009]
    assert set(ds.attrs["stats"]) == {"sst", "heat_content"}
    assert ds.attrs["config_hash"] == "test"
    assert len(ds.attrs["data_sha256"]) == 64
