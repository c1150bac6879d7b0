"""A series dataset's files: basins folders, NetCDF series, and maps refused."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from pipeline.series_files import as_series, open_series
from pipeline.sources.basins import write_basins
from pipeline.variables import DataError


def test_a_basins_folder_reads_as_entity_by_time(tmp_path: Path) -> None:
    paths = write_basins(tmp_path, n_basins=2, years=3, start_year=2000, seed=0)
    ds = open_series(
        [str(p) for p in paths if p.suffix in {".nc", ".csv"} and p.name != "truth.nc"]
    )
    assert ds["streamflow"].dims == ("entity", "time") and ds["aridity"].dims == ("entity",)
    assert list(ds["entity"].values) == ["basin_000", "basin_001"]


def test_a_netcdf_station_series_is_read_and_a_map_refused(tmp_path: Path) -> None:
    time = pd.date_range("2000-01-01", periods=30, freq="D")
    series = xr.Dataset({"t2m": ("date", np.arange(30.0))}, coords={"date": time})
    series.to_netcdf(tmp_path / "station.nc")
    ds = open_series([str(tmp_path / "station.nc")])
    assert ds["t2m"].dims == ("time",) and as_series(series)["t2m"].dims == ("time",)
    maps = xr.Dataset(
        {"sst": (("time", "lat", "lon"), np.zeros((30, 2, 3)))},
        coords={"time": time, "lat": [0.0, 1.0], "lon": [0.0, 1.0, 2.0]},
    )
    maps.to_netcdf(tmp_path / "maps.nc")
    with pytest.raises(DataError, match=r"maps.nc: variable 'sst' is a map"):
        open_series([str(tmp_path / "maps.nc")])


def _runoff_config(path: Path) -> dict:
    import yaml

    from pipeline.config import resolve_config
    from tests.conftest import REPO

    raw = yaml.safe_load((REPO / "config" / "test.yaml").read_text())
    raw["experiments"] = {"runoff": raw["experiments"]["runoff"]}
    names = ["total_precipitation_sum", "temperature_2m_mean", "potential_evaporation_sum"]
    variables = {name: {} for name in [*names, "streamflow", "aridity", "frac_snow"]}
    raw["datasets"] = {
        "basins_synth": {"source": {"kind": "local", "path": str(path)}, "variables": variables}
    }
    return resolve_config(raw)


def test_the_pre_flight_check_reads_series_headers(tmp_path: Path) -> None:
    from pipeline.datacheck import check_local_datasets
    from pipeline.tasks import time_step

    write_basins(tmp_path / "basins", n_basins=2, years=3, start_year=2000, seed=0)
    check_local_datasets(_runoff_config(tmp_path / "basins"), step_of=time_step)
    time = pd.date_range("2000-01-01", periods=3, freq="D")
    maps = xr.Dataset(
        {"streamflow": (("time", "lat", "lon"), np.zeros((3, 2, 2)))},
        coords={"time": time, "lat": [0.0, 1.0], "lon": [0.0, 1.0]},
    )
    maps.to_netcdf(tmp_path / "maps.nc")
    with pytest.raises(DataError, match=r"maps.nc: variable 'streamflow' is a map"):
        check_local_datasets(_runoff_config(tmp_path / "maps.nc"), step_of=time_step)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="neither a GenericDataset"):
        check_local_datasets(_runoff_config(tmp_path / "empty"), step_of=time_step)


def test_a_station_table_reads_as_a_series(tmp_path: Path) -> None:
    path = tmp_path / "station.csv"
    path.write_text("date,t2m,precip\n2000-01-01,1.5,0\n2000-01-02,2.0,3.1\n2000-01-03,,0.2\n")
    ds = open_series([str(path)])
    assert ds["t2m"].dims == ("time",) and np.isnan(ds["t2m"].values[2])
    assert ds["time"].values[1] == np.datetime64("2000-01-02")
    (tmp_path / "bad.csv").write_text("site,t2m\nA,1.0\nB,2.0\n")
    with pytest.raises(DataError, match=r"bad.csv: the first column \('site'\) must hold dates"):
        open_series([str(tmp_path / "bad.csv")])


def test_files_split_by_years_or_stations_are_all_read(tmp_path: Path) -> None:
    """Several files of one dataset are combined, never one kept over the others."""
    for name, start in (("a.csv", "2000-01-01"), ("b.csv", "2000-02-01")):
        dates = pd.date_range(start, periods=31, freq="D")
        frame = pd.DataFrame({"date": dates.strftime("%Y-%m-%d"), "q": np.arange(31.0)})
        frame.to_csv(tmp_path / name, index=False)
    ds = open_series([str(tmp_path / "a.csv"), str(tmp_path / "b.csv")])
    assert ds.sizes["time"] == 62 and not np.isnan(ds["q"].values).any()
    np.testing.assert_array_equal(ds["q"].sel(time="2000-02-05").values, 4.0)
    (tmp_path / "c.csv").write_text("date,q\n2000-01-01,99\n")  # disagrees with a.csv
    with pytest.raises(DataError, match=r"c\.csv.*'q'"):
        open_series([str(tmp_path / "a.csv"), str(tmp_path / "c.csv")])
