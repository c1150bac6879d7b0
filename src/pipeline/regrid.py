"""The regrid stage: raw archive -> the experiment's common lat-lon grid, out of core.

xarray-regrid does linear interpolation; conservative remapping uses exact spherical
overlaps (pipeline.conservative). Dask chunks only over time, so each task holds a
few full maps and peak memory is bounded by the chunk size, not by the record length.
This module adds what archives need around it: coordinate conventions (lat ascending,
0..360 or -180..180 longitudes, the seam), NaN (land) masks, and regional domains: a source
that does not cover all 360 degrees of longitude is never wrapped, so target cells outside
it are NaN (as with CDO), never filled across the gap.

Class labels (pipeline.variables.is_categorical) are never averaged: each target cell
takes the class that covers most of it (CDO's ``remaplaf``), which is the area-weighted
majority when coarsening and the class of the source cell holding the target cell when
refining. They stay integers, with -1 where no class covers the cell.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import dask.array
import numpy as np
import xarray as xr
import xarray_regrid  # noqa: F401  (registers the .regrid accessor)
from dask.diagnostics import ProgressBar

from pipeline.conservative import (
    apply_separable,
    latitude_weights,
    longitude_weights,
    regrid_conservative,
    regrid_linear,
)
from pipeline.datacheck import TimeStep, check_files, guard_finite, open_files, wanted_variables
from pipeline.io import write_zarr
from pipeline.variables import MISSING_LABEL, DataError, derive_variables, is_categorical

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


def regrid_quantities(
    source: xr.Dataset, target: xr.Dataset, grid: Mapping[str, Any]
) -> xr.Dataset:
    """Continuous variables of ``source`` (normalise_coords applied) by ``grid["method"]``."""
    if grid["method"] == "linear" and is_global_longitude(source["lon"].values):
        lat, lat_out = source["lat"].values, target["lat"].values
        if lat[0] <= lat_out[0] and lat_out[-1] <= lat[-1]:
            return regrid_linear(source, target)  # separable and sparse: the fast path
        return source.regrid.linear(target)  # targets beyond the source's latitudes
    if grid["method"] == "linear":
        return linear_regional(source, target)
    return regrid_conservative(source, target, nan_threshold=grid["nan_threshold"])


def label_classes(da: xr.DataArray) -> np.ndarray:
    """The classes (non-negative integers) of a categorical variable: its CF
    ``flag_values`` (other values count as unlabelled), else the values it holds (which
    reads it once more)."""
    if "flag_values" in da.attrs:
        values = np.atleast_1d(np.asarray(da.attrs["flag_values"]))
    elif isinstance(da.data, dask.array.Array):
        values = dask.array.unique(da.data).compute()
    else:
        values = np.unique(da.values)
    values = values[np.isfinite(values) & (values >= 0)]
    return values.astype(np.int64)


def as_labels(da: xr.DataArray, classes: np.ndarray) -> xr.DataArray:
    """``da`` in the smallest signed integer type holding its classes and -1 (missing),
    NaN (a decoded _FillValue) becoming -1."""
    dtype = np.min_scalar_type(-int(classes.max(initial=0)) - 1)
    return (da.fillna(MISSING_LABEL) if da.dtype.kind == "f" else da).astype(dtype)


def regrid_labels(da: xr.DataArray, target: xr.Dataset, nan_threshold: float) -> xr.DataArray:
    """Largest area fraction (CDO's ``remaplaf``): in each target cell, the class covering
    most of it, by the exact spherical overlaps of pipeline.conservative. Coarsening, it
    is the area-weighted majority; refining, the class of the source cell holding the
    target cell (of the source cells it straddles, the class covering most of it). -1
    where more than ``nan_threshold`` of the covered area is unlabelled (as for NaN in
    conservative regridding) or nothing covers the cell. Exact ties go to the smaller
    class. ``da``: normalise_coords applied."""
    classes = np.union1d(label_classes(da), [0])  # never none: all-unlabelled gives all -1
    labels = as_labels(da, classes)
    w_lat = latitude_weights(da["lat"].values, target["lat"].values).astype(np.float32)
    w_lon = longitude_weights(da["lon"].values, target["lon"].values).astype(np.float32)
    areas = xr.concat(
        [apply_separable((labels == c).astype(np.float32), w_lat, w_lon) for c in classes],
        dim=xr.DataArray(classes, dims="class", name="class"),
    )
    labelled = areas.sum("class")
    covered = xr.DataArray(np.outer(w_lat.sum(1), w_lon.sum(1)), dims=("lat_out", "lon_out"))
    keep = (labelled > 0) & (labelled >= (1 - nan_threshold) * covered)
    out = areas.idxmax("class").where(keep, MISSING_LABEL).astype(labels.dtype)
    out = out.rename({"lat_out": "lat", "lon_out": "lon"})
    return out.assign_coords(lat=target["lat"], lon=target["lon"]).rename(da.name)


def regrid(ds: xr.Dataset, grid: Mapping[str, Any]) -> xr.Dataset:
    """Regrid ``ds`` (lazy or eager) onto ``grid``; returns a lazy result for dask input.

    Continuous variables follow ``grid["method"]``; categorical ones regrid_labels.
    """
    target = target_grid(grid)
    source = normalise_coords(ds, lon_west=float(grid["lon"][0]))
    labels = [name for name, da in source.data_vars.items() if is_categorical(da)]
    parts = [regrid_labels(source[name], target, grid["nan_threshold"]) for name in labels]
    if len(labels) < len(source.data_vars):
        parts.insert(0, regrid_quantities(source.drop_vars(labels), target, grid))
    out = xr.merge(parts, join="exact", combine_attrs="override")[list(ds.data_vars)]
    out = out.transpose("time", ..., "lat", "lon", missing_dims="ignore")
    for name in ds.data_vars:
        out[name].attrs = ds[name].attrs
    out["lat"].attrs = target["lat"].attrs
    out["lon"].attrs = target["lon"].attrs
    out.attrs = {**ds.attrs, "regrid_method": grid["method"], "grid_resolution": grid["resolution"]}
    return out


def open_raw(
    manifest: Mapping[str, Any],
    time_chunk: int,
    variables: Mapping[str, Any] | None = None,
    time_step: TimeStep = "monthly",
) -> xr.Dataset:
    """Open the data files of a download manifest lazily, chunked over time only
    (``time_chunk`` steps, fewer for large maps: steps_per_chunk).

    Every file is checked first (pipeline.datacheck, the same checks and messages as
    before the workflow starts, for a task needing ``time_step``), and its ``variables``
    are guarded against infinities while the regrid streams them. ClimateNet's archive
    layout is read one time step per date (pipeline.sources.climatenet).
    """
    paths = [f["path"] for f in manifest["files"] if f.get("role", "data") == "data"]
    if not paths:
        raise DataError(f"dataset '{manifest['dataset']}' has no data files in its manifest")
    with warnings.catch_warnings():  # archives' on-disk chunks rarely align with ours
        warnings.filterwarnings("ignore", "The specified chunks separate", UserWarning)
        files = open_files(paths, {"time": time_chunk}, variables)
        steps = min(steps_per_chunk(ds, time_chunk) for ds in files.values())
        if steps < time_chunk:  # large maps: reopen, so that reads come in small chunks
            files = open_files(paths, {"time": steps}, variables)
    check_files(files, variables, manifest["dataset"], time_step)
    parts = [guard_finite(ds, path, wanted_variables(ds, variables)) for path, ds in files.items()]
    try:
        return xr.combine_by_coords(parts) if len(parts) > 1 else parts[0]
    except ValueError as err:
        name = manifest["dataset"]
        raise DataError(f"cannot combine {paths} for dataset '{name}': {err}") from err


#: Source bytes per dask chunk, at most: a 0.25-degree map is 4 MB a variable, and each
#: chunk is copied a few times on its way through the regrid (fill, mask, products).
CHUNK_BYTES = 8 * 2**20


def steps_per_chunk(ds: xr.Dataset, time_chunk: int) -> int:
    """Time steps per source chunk: ``time_chunk``, fewer where a chunk of the dataset's
    maps would pass CHUNK_BYTES."""
    if "time" not in ds.dims or ds.sizes["time"] == 0:
        return time_chunk
    step_bytes = sum(da.nbytes for da in ds.data_vars.values() if "time" in da.dims)
    step_bytes //= ds.sizes["time"]
    return int(np.clip(CHUNK_BYTES // max(1, step_bytes), 1, time_chunk))


def regrid_dataset(
    manifest: Mapping[str, Any],
    dataset_cfg: Mapping[str, Any],
    grid: Mapping[str, Any],
    out: str | Path,
    threads: int = 1,
    time_step: TimeStep = "monthly",
) -> xr.Dataset:
    """Open, harmonise and regrid one downloaded dataset, writing Zarr at ``out``.

    The dask graph runs on ``threads`` threads with a progress bar; each task holds one
    time chunk (``grid.time_chunk`` steps, fewer for large maps: steps_per_chunk), so
    memory stays bounded by the chunk, not the record. Continuous variables are
    stored as float32, labels as integers (-1 missing). ``time_step`` is what the
    dataset's experiments need (pipeline.datacheck.check_time).
    """
    raw = open_raw(manifest, grid["time_chunk"], dataset_cfg.get("variables"), time_step)
    ds = derive_variables(raw, dataset_cfg.get("variables"), source_name=manifest["dataset"])
    out_ds = regrid(ds, grid)
    out_ds = out_ds.assign(
        {n: da.astype("float32") for n, da in out_ds.data_vars.items() if not is_categorical(da)}
    )
    out_ds = out_ds.chunk({"time": grid["time_chunk"], "lat": -1, "lon": -1})
    for var in out_ds.variables.values():
        var.encoding.clear()
    log.info("regridding %s (%s) to %s", manifest["dataset"], grid["method"], out)
    # dt: the bar's thread is joined at the end, after up to dt seconds of sleep
    with dask.config.set(scheduler="threads", num_workers=threads), ProgressBar(dt=0.2):
        write_zarr(out_ds, out)
    return out_ds
