"""The regrid stage: raw archive -> the experiment's common lat-lon grid, out of core.

xarray-regrid does linear interpolation; conservative remapping uses exact spherical
overlaps (pipeline.conservative). Dask chunks only over time, so each task holds a
few full maps and peak memory is bounded by the chunk size, not by the record length.
This module adds what archives need around it: coordinate conventions (lat ascending,
0..360 or -180..180 longitudes, the seam) and NaN (land) masks.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import dask
import numpy as np
import xarray as xr
import xarray_regrid  # noqa: F401  (registers the .regrid accessor)
from dask.diagnostics import ProgressBar

from pipeline.conservative import regrid_conservative
from pipeline.io import write_zarr
from pipeline.variables import DataError, derive_variables

log = logging.getLogger(__name__)


def cell_centres(lo: float, hi: float, resolution: float) -> np.ndarray:
    """Centres of cells of size ``resolution`` tiling [lo, hi]."""
    n = round((hi - lo) / resolution)
    if not np.isclose(n * resolution, hi - lo):
        raise ValueError(f"[{lo}, {hi}] is not a whole number of {resolution}-degree cells")
    return lo + resolution * (np.arange(n) + 0.5)


def target_grid(grid: Mapping[str, Any]) -> xr.Dataset:
    """The experiment grid: lat ascending, lon in the convention its range implies."""
    lat = cell_centres(*grid["lat"], grid["resolution"])
    lon = cell_centres(*grid["lon"], grid["resolution"])
    return xr.Dataset(
        coords={
            "lat": ("lat", lat, {"units": "degrees_north", "standard_name": "latitude"}),
            "lon": ("lon", lon, {"units": "degrees_east", "standard_name": "longitude"}),
        }
    )


def wrap_longitude(ds: xr.Dataset, west: float) -> xr.Dataset:
    """Express longitudes in [west, west + 360) and sort them (so the seam is explicit)."""
    lon = ((ds["lon"] - west) % 360) + west
    return ds.assign_coords(lon=lon.assign_attrs(ds["lon"].attrs)).sortby("lon")


def normalise_coords(ds: xr.Dataset, lon_west: float = 0.0) -> xr.Dataset:
    """Latitude ascending, longitude in the requested convention."""
    if "lat" not in ds.dims or "lon" not in ds.dims:
        raise DataError(f"expected lat/lon dimensions, found {tuple(ds.dims)}")
    return wrap_longitude(ds.sortby("lat"), lon_west)


def regrid(ds: xr.Dataset, grid: Mapping[str, Any]) -> xr.Dataset:
    """Regrid ``ds`` (lazy or eager) onto ``grid``; returns a lazy result for dask input."""
    target = target_grid(grid)
    source = normalise_coords(ds, lon_west=float(grid["lon"][0]))
    if grid["method"] == "linear":
        out = source.regrid.linear(target)
    else:
        out = regrid_conservative(source, target, nan_threshold=grid["nan_threshold"])
    out = out.transpose(*(d for d in ("time", "lat", "lon") if d in out.dims), ...)
    for name in ds.data_vars:
        out[name].attrs = ds[name].attrs
    out["lat"].attrs = target["lat"].attrs
    out["lon"].attrs = target["lon"].attrs
    out.attrs = {**ds.attrs, "regrid_method": grid["method"], "grid_resolution": grid["resolution"]}
    return out


def open_raw(manifest: Mapping[str, Any], time_chunk: int) -> xr.Dataset:
    """Open the data files of a download manifest lazily, chunked over time only."""
    paths = [f["path"] for f in manifest["files"] if f.get("role", "data") == "data"]
    if not paths:
        raise DataError(f"dataset '{manifest['dataset']}' has no data files in its manifest")
    chunks = {"time": time_chunk}
    try:
        if all(p.endswith(".zarr") for p in paths):
            datasets = [xr.open_zarr(p, chunks=chunks) for p in paths]
            return xr.merge(datasets) if len(datasets) > 1 else datasets[0]
        with warnings.catch_warnings():  # archives' on-disk chunks rarely align with ours
            warnings.filterwarnings("ignore", "The specified chunks separate", UserWarning)
            return xr.open_mfdataset(paths, chunks=chunks, combine="by_coords")
    except (OSError, ValueError) as err:
        raise DataError(f"cannot open {paths} for dataset '{manifest['dataset']}': {err}") from err


def regrid_dataset(
    manifest: Mapping[str, Any],
    dataset_cfg: Mapping[str, Any],
    grid: Mapping[str, Any],
    out: str | Path,
    threads: int = 1,
) -> xr.Dataset:
    """Open, harmonise and regrid one downloaded dataset, writing Zarr at ``out``.

    The dask graph runs on ``threads`` threads with a progress bar; each task holds one
    time chunk, so memory stays bounded by ``grid.time_chunk``.
    """
    raw = open_raw(manifest, grid["time_chunk"])
    ds = derive_variables(raw, dataset_cfg.get("variables"), source_name=manifest["dataset"])
    out_ds = regrid(ds, grid).astype("float32")
    out_ds = out_ds.chunk({"time": grid["time_chunk"], "lat": -1, "lon": -1})
    for var in out_ds.variables.values():
        var.encoding.clear()
    log.info("regridding %s (%s) to %s", manifest["dataset"], grid["method"], out)
    with dask.config.set(scheduler="threads", num_workers=threads), ProgressBar(dt=1.0):
        write_zarr(out_ds, out)
    return out_ds
