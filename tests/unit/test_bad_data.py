"""Bad data gets a clear message naming the file and the variable, on the real code path.

Every case writes a small NetCDF file with one defect and runs what the workflow runs on
the test config: the pre-flight check (pipeline.datacheck.check_local_datasets), the
download of a local source, the regrid job and the prepare stage, called directly.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import xarray as xr
import yaml

from pipeline.config import ConfigError, resolve_config
from pipeline.datacheck import check_local_datasets
from pipeline.io import DiskFullError, write_netcdf
from pipeline.prepare import prepare
from pipeline.regrid import regrid_dataset
from pipeline.sources import fetch
from pipeline.variables import DataError

REPO = Path(__file__).resolve().parents[2]
MONTHS = pd.date_range("1971-01-01", "2010-12-01", freq="MS")  # config/test.yaml's years


def good(times: pd.DatetimeIndex = MONTHS) -> xr.Dataset:
    """What the pipeline needs: monthly maps of sst and heat_content on a 10-degree grid."""
    rng = np.random.default_rng(0)
    lat, lon = np.arange(-85.0, 90.0, 10.0), np.arange(5.0, 360.0, 10.0)
    season = 2 * np.cos(2 * np.pi * np.asarray(times.month) / 12)[:, None, None]
    shape = (len(times), len(lat), len(lon))
    ds = xr.Dataset(
        {
            "sst": (("time", "lat", "lon"), 25 + season + rng.standard_normal(shape)),
            "heat_content": (("time", "lat", "lon"), 15 + season + rng.standard_normal(shape)),
        },
        coords={"time": times, "lat": lat, "lon": lon},
    ).astype("float32")
    ds["sst"].attrs["units"] = ds["heat_content"].attrs["units"] = "degC"
    ds["lat"].attrs["units"], ds["lon"].attrs["units"] = "degrees_north", "degrees_east"
    return ds


def saved(ds: xr.Dataset) -> Callable[[Path], Path]:
    def write(folder: Path) -> Path:
        ds.to_netcdf(folder / "obs.nc")
        return folder / "obs.nc"

    return write


def with_sst(values: Callable[[np.ndarray], None]) -> xr.Dataset:
    ds = good()
    sst = ds["sst"].values.copy()
    values(sst)
    return ds.assign(sst=(ds["sst"].dims, sst, ds["sst"].attrs))


def inf(sst: np.ndarray) -> None:
    sst[100, 5, 7], sst[200, 9, 3] = np.inf, -np.inf


def curvilinear(index_dims: tuple[str, str], lat_name: str, lon_name: str) -> xr.Dataset:
    """The good maps on a grid whose latitude/longitude are 2-D (a rotated/ocean grid)."""
    ds = good()
    lat2d, lon2d = np.meshgrid(ds["lat"].values, ds["lon"].values, indexing="ij")
    dims = ("time", *index_dims)
    out = xr.Dataset({n: (dims, ds[n].values, ds[n].attrs) for n in ds.data_vars})
    return out.assign_coords(
        time=ds["time"],
        **{lat_name: (index_dims, lat2d), lon_name: (index_dims, lon2d)},
    )


def series() -> xr.Dataset:
    return good().mean(("lat", "lon"))


def disk_full_zarr(monkeypatch: pytest.MonkeyPatch, grid_dir: Path) -> None:
    """Zarr's file writes (the last Python call before the OS) fail with ENOSPC."""
    import zarr.storage._local as local

    def no_space(*args: Any, **kwargs: Any) -> int:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(local, "_put", no_space)


@contextlib.contextmanager
def tiny_tmpfs(folder: Path, size: str = "64k") -> Iterator[Path]:
    """A real, tiny file system (root only): writes into it run out of space for real."""
    folder.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mount = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
        capture_output=True,
        text=True,
    )
    if mount.returncode:
        pytest.skip(f"cannot mount a tmpfs here: {mount.stderr.strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], check=True)


@dataclass(frozen=True)
class Case:
    id: str
    write: Callable[[Path], Path]  # writes the bad file(s) into a folder, returns the path
    match: str  # regex; {file} stands for the data file (or the output, for a full disk)
    error: type[Exception] = DataError
    splits: dict[str, list[int]] = field(default_factory=dict)  # overrides test.yaml's
    also: str | None = None  # a later stage that must say the same on its own
    disk: Callable[[pytest.MonkeyPatch, Path], None] | None = None


NOT_YET = r"\(series and other time steps are not supported yet\)"
CASES = [
    Case(
        "all-nan",
        saved(with_sst(lambda v: v.fill(np.nan))),
        r"{file}: variable 'sst' has no valid value .* all missing \(NaN\)",
    ),
    Case("inf", saved(with_sst(inf)), r"{file}: variable 'sst' holds infinite values"),
    Case(
        "variable-not-found",
        saved(good().rename(sst="tos")),
        r"{file}: variable 'sst' not found for dataset 'obs' \(the files have "
        r"\['heat_content', 'tos'\]\); set 'from:' under datasets\.obs\.variables",
        also="regrid",
    ),
    Case(
        "missing-month",
        saved(good().drop_sel(time="1980-03-01")),
        r"{file}: variable 'sst' misses 1 month\(s\) after 1980-02 \(the next step is 1980-04\)",
        also="regrid",
    ),
    Case(
        "duplicate-step",
        saved(xr.concat([good(), good().sel(time=["1990-06-01"])], "time").sortby("time")),
        r"{file}: variable 'sst' has two time steps in 1990-06 \(duplicate",
        also="regrid",
    ),
    Case(
        "non-monotonic",
        saved(good().isel(time=np.r_[0:100, 101, 100, 102:480])),
        r"{file}: variable 'sst' has time steps out of order \(1979-05 comes after 1979-06\)",
        also="regrid",
    ),
    Case(
        "curvilinear-2d-latlon",
        saved(curvilinear(("j", "i"), "lat", "lon")),
        r"{file}: variable 'sst' is on a curvilinear grid .*'lat'.*regular lat-lon grid first.*"
        r"cdo remapbil",
        also="regrid",
    ),
    Case(
        "nemo-y-x",
        saved(curvilinear(("y", "x"), "nav_lat", "nav_lon")),
        r"{file}: variable 'sst' is on a curvilinear grid .*'nav_lat'.*cdo remapbil",
        also="regrid",
    ),
    Case(
        "series",
        saved(series()),
        rf"{{file}}: variable 'sst' is a 1-D series .*{NOT_YET}",
        also="regrid",
    ),
    Case(
        "weekly",
        saved(good(pd.date_range("1971-01-01", "1980-12-31", freq="7D"))),
        rf"{{file}}: variable 'sst' has a weekly time step; gridded forecast .*{NOT_YET}",
        also="regrid",
    ),
    Case(
        "daily",
        saved(good(pd.date_range("1971-01-01", "1972-12-31", freq="D"))),
        rf"{{file}}: variable 'sst' has a daily time step; .*monthly.*{NOT_YET}",
        also="regrid",
    ),
    Case(
        "train-years-partly-covered",
        saved(good(pd.date_range("1950-01-01", "2010-12-01", freq="MS"))),
        r"{file}: variables? .*'sst'.*: the data cover 1950-01 to 2010-12, but "
        r"(experiments\.enso\.)?"
        r"splits\.train asks for 1900-1990 \(600 of its 1092 months are not in the data\)",
        splits={"train": [1900, 1990], "val": [1991, 2000], "test": [2001, 2010]},
        also="prepare",
    ),
    Case(
        "test-years-outside",
        saved(good(pd.date_range("1971-01-01", "2005-12-01", freq="MS"))),
        r"{file}: variables? .*'sst'.*: the data cover 1971-01 to 2005-12, but "
        r"(experiments\.enso\.)?"
        r"splits\.test asks for 2003-2010",
        also="prepare",
    ),
    Case(
        "disk-full-enospc",
        saved(good()),
        r"cannot write {file}: the disk is full \(no space left on device, errno ENOSPC\)",
        error=DiskFullError,
        disk=disk_full_zarr,
    ),
    Case(
        "disk-full-real-tmpfs",
        saved(good()),
        r"cannot write {file}: the disk is full \(no space left on device, errno ENOSPC\)",
        error=DiskFullError,
        disk=lambda monkeypatch, grid_dir: None,  # the grid folder is a 64 kB tmpfs
    ),
]


def config_for(data: Path, splits: dict[str, list[int]]) -> dict[str, Any]:
    """config/test.yaml with its dataset replaced by the local file ``data``."""
    raw = yaml.safe_load((REPO / "config" / "test.yaml").read_text())
    raw["datasets"] = {
        "obs": {
            "source": {"kind": "local", "path": str(data)},
            "variables": {"sst": {}, "heat_content": {}},
        }
    }
    raw["experiments"]["enso"].update(dataset="obs")
    raw["experiments"]["enso"]["splits"].update(splits)
    return resolve_config(raw)


def data_stage(config: dict[str, Any], work: Path, grid_dir: Path, check: bool = True) -> Path:
    """What the workflow runs up to prepared.zarr, for the one dataset of the config."""
    if check:
        check_local_datasets(config)
    exp = config["experiments"]["enso"]
    manifest = fetch("obs", config["datasets"]["obs"], work / "raw")
    store = grid_dir / "obs.zarr"
    if not store.exists():
        regrid_dataset(manifest, config["datasets"]["obs"], exp["grid"], store)
    prepared = work / "prepared.zarr"
    prepare([store], [manifest], {k: exp[k] for k in ("task", "splits")}, "test", prepared)
    return prepared


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_data_gets_a_clear_message(
    case: Case, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = case.write(tmp_path)
    config = config_for(data, case.splits)
    grid_dir = tmp_path / "grid"
    with contextlib.ExitStack() as stack:
        if case.disk is not None:
            if case.id.endswith("tmpfs"):
                stack.enter_context(tiny_tmpfs(grid_dir))
            case.disk(monkeypatch, grid_dir)
        named = grid_dir / "obs.zarr" if case.disk else data.resolve()
        pattern = case.match.format(file=re.escape(str(named)))
        with pytest.raises(case.error, match=pattern) as first:
            data_stage(config, tmp_path / "work", grid_dir)
        if case.disk is not None:  # nothing half-written: neither the store nor a temporary
            assert list(grid_dir.iterdir()) == []
    assert "Traceback" not in str(first.value)
    if case.also == "regrid":  # the regrid job says the same for any source kind (no pre-check)
        manifest = {"dataset": "obs", "files": [{"path": str(data.resolve()), "role": "data"}]}
        exp = config["experiments"]["enso"]
        with pytest.raises(DataError) as again:
            regrid_dataset(manifest, config["datasets"]["obs"], exp["grid"], tmp_path / "o.zarr")
        assert str(again.value) == str(first.value)
    if case.also == "prepare":  # prepare says so too, when it runs without the pre-check
        with pytest.raises(DataError, match=pattern):
            data_stage(config, tmp_path / "again", tmp_path / "grid-again", check=False)


def test_good_data_passes_the_same_path(tmp_path: Path) -> None:
    data = saved(good())(tmp_path)
    prepared = data_stage(config_for(data, {}), tmp_path / "work", tmp_path / "grid")
    assert xr.open_zarr(prepared).sizes["sample"] > 0


def test_pre_flight_check_reads_headers_only(tmp_path: Path) -> None:
    """Checking a 40-year file takes well under a second: metadata, not values."""
    config = config_for(saved(good())(tmp_path), {})
    start = time.perf_counter()
    check_local_datasets(config)
    assert time.perf_counter() - start < 1.0


def test_pre_flight_check_names_the_key_when_no_file_matches(tmp_path: Path) -> None:
    config = config_for(tmp_path / "nothing-*.nc", {})
    with pytest.raises(ConfigError, match=r"datasets\.obs\.source\.path.*no file matches"):
        check_local_datasets(config)


def test_full_disk_during_a_netcdf_write_is_named(tmp_path: Path) -> None:
    """HDF5 hides ENOSPC ("NetCDF: HDF error"); the write still says the disk is full."""
    with tiny_tmpfs(tmp_path / "small") as folder:
        target = folder / "big.nc"
        with pytest.raises(DiskFullError, match=rf"cannot write {re.escape(str(target))}: "):
            write_netcdf(good(), target)
        assert list(folder.iterdir()) == []
