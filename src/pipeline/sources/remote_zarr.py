"""Remote Zarr stores (e.g. WeatherBench2 on cloud storage): subset, then store locally."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import xarray as xr

from pipeline.io import write_zarr
from pipeline.sources.http import DownloadError, mirror_advice


def subset(ds: xr.Dataset, select: Mapping[str, Any]) -> xr.Dataset:
    """Apply a ``select`` spec: variables, a time range and pressure levels."""
    if "variables" in select:
        missing = [v for v in select["variables"] if v not in ds.data_vars]
        if missing:
            raise DownloadError(
                f"variables {missing} are not in the store (it has: {sorted(ds.data_vars)})"
            )
        ds = ds[list(select["variables"])]
    if "time" in select:
        ds = ds.sel(time=slice(*select["time"]))
    if "level" in select:
        ds = ds.sel(level=list(select["level"]))
    return ds


def fetch_zarr(url: str, target: str | Path, dataset: str, select: Mapping[str, Any]) -> Path:
    """Open ``url`` lazily, subset it, and write only the subset to ``target``."""
    try:
        remote = xr.open_zarr(url, chunks={})
    except Exception as err:
        raise DownloadError(
            f"could not open remote Zarr '{url}': {type(err).__name__}: {err}. "
            + mirror_advice(dataset)
        ) from err
    local = subset(remote, select)
    for var in local.variables.values():
        var.encoding.clear()
    write_zarr(local.chunk({"time": 120}) if "time" in local.dims else local, target)
    return Path(target)
