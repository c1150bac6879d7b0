"""A series dataset's downloaded files, read as (entity, time) series and (entity,) attributes.

Series come in the layouts their users already have: a basins folder (neuralhydrology's
GenericDataset, Caravan, CAMELS-US; pipeline.sources.basin_layouts), NetCDF files of
series over (time) or (entity, time), or a station's CSV table (dates, then a column per
variable). Either way the result follows the pipeline's
names: ``time`` and ``entity`` (a basin, a station). Series skip the regrid stage, so a
map given to a series study is refused here, naming the file and the variable.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import pandas as pd
import xarray as xr

from pipeline.sources.basin_layouts import basin_layout, read_basins
from pipeline.variables import DataError

#: Names archives give the time and entity axes, and the pipeline's.
RENAMES = {"date": "time", "basin": "entity", "gauge_id": "entity", "station": "entity"}
MAP_DIMS = {"lat", "lon", "latitude", "longitude", "x", "y"}


def as_series(ds: xr.Dataset) -> xr.Dataset:
    """``ds`` with its time and entity axes under the pipeline's names."""
    return ds.rename({k: v for k, v in RENAMES.items() if k in ds.dims or k in ds.coords})


def _read_csv(path: str) -> xr.Dataset:
    """A station's table: the first column holds ISO 8601 dates (2000-01-31, or with a
    time), every other column a variable."""
    table = pd.read_csv(path, index_col=0)
    try:
        table.index = pd.to_datetime(table.index, format="ISO8601")
    except (ValueError, TypeError) as err:
        raise DataError(
            f"{path}: the first column ('{table.index.name}') must hold dates ({err})"
        ) from err
    return xr.Dataset.from_dataframe(table.rename_axis("time"))


def _open_file(path: str) -> xr.Dataset:
    raw = _read_csv(path) if Path(path).suffix.lower() == ".csv" else xr.open_dataset(path)
    ds = as_series(raw)
    if "time" not in ds.dims:
        raise DataError(f"{path}: no time dimension (dims {dict(ds.sizes)}); a series needs one")
    for name, var in ds.data_vars.items():
        if MAP_DIMS & set(var.dims):
            raise DataError(
                f"{path}: variable '{name}' is a map (dims {var.dims}); a series study takes "
                "series over (time) or (entity, time): use task.kind forecast or segmentation "
                "for maps"
            )
    return ds


def _basins_folder(paths: Sequence[str]) -> Path | None:
    """The basins folder the paths make up (a folder given as the path, or the common
    folder of its files), if any."""
    root = Path(os.path.commonpath(paths)) if paths else Path()
    return root if root.is_dir() and basin_layout(root) else None


def check_series_paths(paths: Sequence[str]) -> None:
    """From headers only, before any job: the paths are a basins folder, or NetCDF files
    of series (a time dimension, no map). DataError naming the file and the variable."""
    if _basins_folder(paths) is not None:
        return
    for path in paths:
        if Path(path).is_dir():
            raise DataError(
                f"{path}: a folder, but neither a GenericDataset/Caravan folder "
                "(time_series/*.nc) nor CAMELS-US (basin_mean_forcing/, usgs_streamflow/)"
            )
        _open_file(path).close()


def open_series(paths: Sequence[str]) -> xr.Dataset:
    """The series of a dataset's files: a basins folder's, or the NetCDF files', merged.
    Values are read now."""
    folder = _basins_folder(paths)
    if folder is not None:
        return read_basins(folder).load()
    parts = {path: _open_file(path).load() for path in paths}
    try:
        return xr.merge(list(parts.values()), compat="no_conflicts", join="outer")
    except xr.MergeError:
        raise _conflict(parts) from None


def _conflict(parts: Mapping[str, xr.Dataset]) -> DataError:
    """The first file and variable whose values contradict the files before it."""
    merged = xr.Dataset()
    for path, part in parts.items():
        for name in part.data_vars:
            try:
                xr.merge([merged, part[[name]]], compat="no_conflicts", join="outer")
            except xr.MergeError:
                return DataError(
                    f"{path}: variable '{name}' contradicts the same dates in the files "
                    "before it; give each date (and entity) once"
                )
        merged = xr.merge([merged, part], compat="override", join="outer")
    return DataError(f"{', '.join(parts)}: the files cannot be combined")
