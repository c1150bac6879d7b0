"""The regrid stage: raw archive -> the experiment's common lat-lon grid, out of core.

xarray-regrid does linear interpolation; conservative remapping uses exact spherical
overlaps (pipeline.conservative). Dask chunks only over time, so each task holds a
few full maps and peak memory is bounded by the chunk size, not by the record length.
This module adds what archives need around it: coordinate conventions (lat ascending,
0..360 or -180..180 longitudes, the seam), NaN (land) masks, and regional domains: a source
that does not cover all 360 degrees of longitude is never wrapped, so target cells outside
it are NaN (as with CDO), never filled across the gap.
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
from pipeline.datacheck import check_files, guard_finite, open_file, wanted_variables
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
    """Express longitudes in [west, west + 360) and sort them (so the seam is explicit).

    A grid stored 0..360 inclusive repeats its first column at 360: the copy is dropped.
    """
    lon = ((ds["lon"] - west) % 360) + west
    ds = ds.assign_coords(lon=lon.assign_attrs(ds["lon"].attrs)).sortby("lon")
    return ds.isel(lon=np.unique(ds["lon"].values, return_index=True)[1])


def is_global_longitude(lon: np.ndarray) -> bool:
    """Whether longitudes tile the whole circle: n * spacing == 360, within half a cell."""
    lon = np.unique(np.asarray(lon, dtype=float) % 360)
    if lon.size < 2:
        return False
    step = float(np.median(np.diff(lon)))
    return abs(lon.size * step - 360) < 0.5 * step


def unwrap_longitude(ds: xr.Dataset, west: float) -> xr.Dataset:
    """A regional domain as one ascending run of longitudes starting in [west, west + 360).

    The run starts after the widest gap between longitudes, so a domain that crosses the
    target's seam (the Pacific, 120E-80W, on a -180..180 grid) stays in one piece and its
    outermost cells keep their own width: nothing is interpolated across the gap.
    """
    lon = ds["lon"].values % 360
    order = np.argsort(lon, kind="stable")
    gaps = np.diff(lon[order], append=lon[order[0]] + 360)
    order = np.roll(order, -((int(np.argmax(gaps)) + 1) % lon.size))
    first = ((lon[order[0]] - west) % 360) + west
    run = first + (lon[order] - lon[order[0]]) % 360
    return ds.isel(lon=order).assign_coords(lon=("lon", run, ds["lon"].attrs))


def normalise_coords(ds: xr.Dataset, lon_west: float = 0.0) -> xr.Dataset:
    """Latitude ascending; a global longitude axis wrapped into the requested convention,
    a regional one kept in one run (see unwrap_longitude)."""
    if "lat" not in ds.dims or "lon" not in ds.dims:
        raise DataError(f"expected lat/lon dimensions, found {tuple(ds.dims)}")
    ds = ds.sortby("lat")
    if is_global_longitude(ds["lon"].values):
        return wrap_longitude(ds, lon_west)
    return unwrap_longitude(ds, lon_west)


def linear_regional(source: xr.Dataset, target: xr.Dataset) -> xr.Dataset:
    """Bilinear interpolation from a regional domain (one ascending longitude run).

    xarray-regrid would shift the domain into the target's convention, splitting it at
    the seam and interpolating across the gap; instead the target longitudes are
    expressed in the domain's own run, so points beyond its ends come out NaN.
    """
    west = float(source["lon"][0])
    lon = west + (target["lon"].values - west) % 360
    out = source.interp(lat=target["lat"].values, lon=lon, method="linear")
    return out.assign_coords(lat=target["lat"], lon=target["lon"])


def regrid(ds: xr.Dataset, grid: Mapping[str, Any]) -> xr.Dataset:
    """Regrid ``ds`` (lazy or eager) onto ``grid``; returns a lazy result for dask input."""
    target = target_grid(grid)
    source = normalise_coords(ds, lon_west=float(grid["lon"][0]))
    if grid["method"] == "linear" and is_global_longitude(source["lon"].values):
        out = source.regrid.linear(target)
    elif grid["method"] == "linear":
        out = linear_regional(source, target)
    else:
        out = regrid_conservative(source, target, nan_threshold=grid["nan_threshold"])
    out = out.transpose(*(d for d in ("time", "lat", "lon") if d in out.dims), ...)
    for name in ds.data_vars:
        out[name].attrs = ds[name].attrs
    out["lat"].attrs = target["lat"].attrs
    out["lon"].attrs = target["lon"].attrs
    out.attrs = {**ds.attrs, "regrid_method": grid["method"], "grid_resolution": grid["resolution"]}
    return out


def open_raw(
    manifest: Mapping[str, Any], time_chunk: int, variables: Mapping[str, Any] | None = None
) -> xr.Dataset:
    """Open the data files of a download manifest lazily, chunked over time only.

    Every file is checked first (pipeline.datacheck, the same checks and messages as
    before the workflow starts), and its ``variables`` are guarded against infinities
    while the regrid streams them.
    """
    paths = [f["path"] for f in manifest["files"] if f.get("role", "data") == "data"]
    if not paths:
        raise DataError(f"dataset '{manifest['dataset']}' has no data files in its manifest")
    with warnings.catch_warnings():  # archives' on-disk chunks rarely align with ours
        warnings.filterwarnings("ignore", "The specified chunks separate", UserWarning)
        files = {p: open_file(p, {"time": time_chunk}) for p in paths}
    check_files(files, variables, manifest["dataset"])
    parts = [guard_finite(ds, path, wanted_variables(ds, variables)) for path, ds in files.items()]
    try:
        return xr.combine_by_coords(parts) if len(parts) > 1 else parts[0]
    except ValueError as err:
        name = manifest["dataset"]
        raise DataError(f"cannot combine {paths} for dataset '{name}': {err}") from err


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
    raw = open_raw(manifest, grid["time_chunk"], dataset_cfg.get("variables"))
    ds = derive_variables(raw, dataset_cfg.get("variables"), source_name=manifest["dataset"])
    out_ds = regrid(ds, grid).astype("float32")
    out_ds = out_ds.chunk({"time": grid["time_chunk"], "lat": -1, "lon": -1})
    for var in out_ds.variables.values():
        var.encoding.clear()
    log.info("regridding %s (%s) to %s", manifest["dataset"], grid["method"], out)
    with dask.config.set(scheduler="threads", num_workers=threads), ProgressBar(dt=1.0):
        write_zarr(out_ds, out)
    return out_ds
