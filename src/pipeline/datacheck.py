"""Can the data serve the task? Every data check, in one place, so every path says the same.

Gridded experiments need maps on a regular lat-lon grid; forecast experiments need them
monthly (``time_step="monthly"``), while snapshot tasks such as segmentation take any
time steps in order without duplicates (``time_step=None``). What the file headers can
tell (variables present, dimensions, grid type, time step, order, duplicates, gaps,
years covered) is checked from metadata only: by ``check_local_datasets`` before any job
runs (the Snakefile and ``python -m pipeline check``), and by the regrid job on the files
it opens, whatever the source kind (``check_files``, called by pipeline.regrid.open_raw).
What only the values tell is checked where the values stream anyway: infinities chunk by
chunk during the regrid (``guard_finite``), all-missing variables and the years covered
in prepare (``check_fields``). Each error is a DataError naming the file and the
variable, saying what is wrong and what to do. Files in ClimateNet's archive layout are
read one time step per date (pipeline.sources.climatenet), their unreadable files named
in a warning and skipped.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import dask.array
import numpy as np
import pandas as pd
import xarray as xr

from pipeline.config import ConfigError, experiment_datasets
from pipeline.series_files import check_series_paths
from pipeline.sources import NoMatchError, local_paths
from pipeline.sources.climatenet import is_climatenet, open_climatenet
from pipeline.tasks import gridded
from pipeline.timesteps import describe_days
from pipeline.variables import MISSING_LABEL, DataError, is_categorical, standardise_coords

SUPPORTED = (
    "gridded forecast experiments need monthly maps on a regular lat-lon grid "
    "(for series of any time step, a station or an index, set task.kind: series)"
)
LATLON_NAMES = {"lat", "lon", "latitude", "longitude", "nav_lat", "nav_lon"}
SPLITS = ("train", "val", "test")

#: A variable's time steps across its files, and the file of each step (for messages).
Timeline = tuple[pd.Index, list[str]]
#: What a task needs of the time axis: "monthly" steps, or None (any steps, in order).
TimeStep = str | None
#: The time step each experiment needs, from its config (its task's; see tasks.md).
StepOf = Callable[[Mapping[str, Any]], TimeStep]


def open_file(path: str, chunks: Mapping[str, int] | None = None) -> xr.Dataset:
    """Open one NetCDF file or Zarr store lazily (``chunks={}`` keeps the on-disk chunks)."""
    chunks = {} if chunks is None else dict(chunks)
    try:
        if path.rstrip("/").endswith(".zarr"):
            return xr.open_zarr(path, chunks=chunks)
        return xr.open_dataset(path, chunks=chunks)
    except (OSError, ValueError) as err:
        raise DataError(f"{path}: cannot open it as NetCDF or Zarr: {err}") from err


def open_files(
    paths: Sequence[str],
    chunks: Mapping[str, int] | None = None,
    variables: Mapping[str, Any] | None = None,
) -> dict[str, xr.Dataset]:
    """A dataset's files, lazily, by path: one dataset per file, or per time step for
    ClimateNet's archive layout (all file names ``data-YYYY-MM-DD-HH-R_N.nc``), which
    keeps only the raw ``variables`` the config asks for (its files hold 16 channels)."""
    if is_climatenet(paths):
        return open_climatenet(paths, chunks, wanted_variables(xr.Dataset(), variables) or None)
    return {path: open_file(path, chunks) for path in paths}


def _files(files: Sequence[str]) -> str:
    """Up to three file names, or the first and how many more (messages stay readable)."""
    return ", ".join(files) if len(files) <= 3 else f"{files[0]} (+{len(files) - 1} files)"


def _names(names: Sequence[str]) -> str:
    quoted = ", ".join(f"'{n}'" for n in names)
    return f"variable {quoted}" if len(names) == 1 else f"variables {quoted}"


def wanted_variables(ds: xr.Dataset, variables: Mapping[str, Any] | None) -> list[str]:
    """Raw variable names the config asks for (all data variables but bounds if none)."""
    if variables:
        return list(
            dict.fromkeys((opts or {}).get("from", name) for name, opts in variables.items())
        )
    bounds = {str(v.attrs["bounds"]) for v in ds.variables.values() if "bounds" in v.attrs}
    return [
        str(n)
        for n in ds.data_vars
        if n not in bounds and not str(n).endswith(("_bnds", "_bounds"))
    ]


def _is_latlon(name: str, var: xr.Variable) -> bool:
    """A latitude or longitude variable, by its name, standard_name or CF units."""
    units = str(var.attrs.get("units", "")).lower()
    return (
        name.lower() in LATLON_NAMES
        or var.attrs.get("standard_name") in {"latitude", "longitude"}
        or units in {"degrees_north", "degree_north", "degrees_east", "degree_east"}
    )


def check_grid(ds: xr.Dataset, name: str, path: str) -> None:
    """``name`` is a map on 1-D lat/lon axes over time (``ds`` after standardise_coords)."""
    dims = ds[name].dims
    if {"lat", "lon", "time"} <= set(dims):
        return
    where = f"{path}: variable '{name}'"
    if "time" not in dims:
        raise DataError(f"{where} has dims {dims}, without a time dimension; {SUPPORTED}")
    if dims == ("time",):
        raise DataError(f"{where} is a 1-D series (dims ('time',)), not maps; {SUPPORTED}")
    two_d = [str(n) for n, v in ds.variables.items() if v.ndim >= 2 and _is_latlon(str(n), v)]
    if two_d:
        index_dims = tuple(d for d in dims if d != "time")
        raise DataError(
            f"{where} is on a curvilinear grid (2-D latitude/longitude {two_d} over the "
            f"index dimensions {index_dims}); {SUPPORTED}: regrid it to a regular lat-lon "
            "grid first, e.g. `cdo remapbil,r360x180 in.nc out.nc`"
        )
    raise DataError(
        f"{where} has dims {dims} and no latitude/longitude dimensions (lat/lon, "
        f"latitude/longitude, or y/x coordinates in degrees); {SUPPORTED}"
    )


def _time_index(ds: xr.Dataset, names: Sequence[str], path: str) -> pd.Index:
    index = ds.indexes.get("time")
    if not isinstance(index, pd.DatetimeIndex | xr.CFTimeIndex):
        raise DataError(
            f"{path}: the time axis of {_names(names)} is not decodable as dates (CF units "
            "like 'days since 1800-01-01' are needed)"
        )
    if not len(index):
        raise DataError(f"{path}: {_names(names)} has no time steps")
    return index


def _concat(indexes: Sequence[pd.Index]) -> pd.Index:
    """Time indexes one after the other (pandas' append would drop a CFTimeIndex's type)."""
    if isinstance(indexes[0], xr.CFTimeIndex):
        return xr.CFTimeIndex(np.concatenate([np.asarray(i) for i in indexes]))
    return indexes[0].append(list(indexes[1:]))


def _month(index: pd.Index, i: int) -> str:
    return f"{index[i].year:04d}-{index[i].month:02d}"


def _when(index: pd.Index, i: int, time_step: TimeStep) -> str:
    return _month(index, i) if time_step == "monthly" else str(index[i])


def check_time(
    index: pd.Index, files: Sequence[str], names: Sequence[str], time_step: TimeStep = "monthly"
) -> None:
    """In order and no duplicate; with ``time_step="monthly"`` also one step a month and no
    missing month.

    ``index`` holds the time steps of ``names`` across their files, files in order of
    their first step; ``files[i]`` is the file of step ``i``, so errors name the file.
    """
    if len(index) < 2:
        return
    days = np.asarray((index - index[0]) / pd.Timedelta(days=1), dtype=float)
    slots = days
    if time_step == "monthly":
        step = float(np.median(np.diff(np.unique(days))))
        if not 27 <= step <= 32:
            raise DataError(
                f"{files[0]}: {_names(names)} has a {describe_days(step)} time step; {SUPPORTED}. "
                "Average it to monthly means first, e.g. `cdo monmean in.nc out.nc`"
            )
        slots = np.asarray(index.year, dtype=int) * 12 + np.asarray(index.month, dtype=int)
    back = np.flatnonzero(np.diff(days) < 0)
    if back.size:
        i = int(back[0]) + 1
        raise DataError(
            f"{files[i]}: {_names(names)} has time steps out of order "
            f"({_when(index, i, time_step)} comes after {_when(index, i - 1, time_step)}); "
            "sort it by time, e.g. `cdo sorttimestamp in.nc out.nc`"
        )
    same = np.flatnonzero(np.diff(slots) == 0)
    if same.size:
        i = int(same[0]) + 1
        both = files[i] if files[i] == files[i - 1] else f"{files[i - 1]} and {files[i]}"
        why = "would shift every target by a step" if time_step == "monthly" else "repeat a sample"
        where = "in" if time_step == "monthly" else "at"
        raise DataError(
            f"{both}: {_names(names)} has two time steps {where} {_when(index, i, time_step)} "
            f"(duplicate time steps {why}); remove the duplicates, or the file given twice"
        )
    if time_step != "monthly":
        return
    gaps = np.flatnonzero(np.diff(slots) > 1)
    if gaps.size:
        i = int(gaps[0])
        missing = int(slots[i + 1] - slots[i] - 1)
        both = files[i] if files[i] == files[i + 1] else f"{files[i]} and {files[i + 1]}"
        raise DataError(
            f"{both}: {_names(names)} misses {missing} month(s) after {_month(index, i)} "
            f"(the next step is {_month(index, i + 1)}); every month must be present: add "
            "the missing months (NaN maps are fine), or cut the files to the years without "
            "the gap, e.g. `cdo selyear,1980/2020 in.nc out.nc`"
        )


def check_files(
    files: Mapping[str, xr.Dataset],
    variables: Mapping[str, Any] | None,
    dataset: str,
    time_step: TimeStep = "monthly",
) -> dict[str, Timeline]:
    """Check the opened files of one dataset from metadata; return each variable's timeline.

    Raises DataError naming the file and the variable when the data cannot serve a task
    that needs ``time_step`` (see check_time).
    """
    found: dict[str, list[tuple[str, pd.Index]]] = {}
    for path, raw in files.items():
        ds = standardise_coords(raw)
        present = [n for n in wanted_variables(ds, variables) if n in ds.data_vars]
        for name in present:
            check_grid(ds, name, path)
            found.setdefault(name, []).append((path, _time_index(ds, [name], path)))
    missing = [n for n in wanted_variables(xr.Dataset(), variables) if n not in found]
    if missing or not found:
        has = sorted({str(v) for ds in files.values() for v in ds.data_vars})
        raise DataError(
            f"{', '.join(files)}: {_names(missing) + ' not' if missing else 'no data variable'} "
            f"found for dataset '{dataset}' (the files have {has}); set 'from:' under "
            f"datasets.{dataset}.variables to the name in the files"
        )
    timelines = {}
    for name, parts in found.items():
        parts.sort(key=lambda part: part[1][0])
        index = _concat([idx for _, idx in parts])
        paths = [path for path, idx in parts for _ in range(len(idx))]
        check_time(index, paths, [name], time_step)
        timelines[name] = (index, paths)
    return timelines


def check_coverage(
    index: pd.Index,
    files: Sequence[str],
    names: Sequence[str],
    splits: Mapping[str, Sequence[int]],
    key: str,
    time_step: TimeStep = "monthly",
) -> None:
    """Every split's years are in the time steps of ``names`` (in ``files``): every month
    of them for monthly steps, never training on a fraction of the years asked for; at
    least one time step otherwise (snapshots). ``key`` is the config path of the splits."""
    have = set(np.asarray(index.year, dtype=int) * 12 + np.asarray(index.month, dtype=int))
    for part in SPLITS:
        start, end = splits[part]
        asked = range(start * 12 + 1, end * 12 + 13)
        absent = sum(m not in have for m in asked)
        if absent == len(asked) or (absent and time_step == "monthly"):
            where = _files(list(dict.fromkeys(files)))
            span = f"{_month(index, 0)} to {_month(index, -1)}" if len(index) else "no month"
            raise DataError(
                f"{where}: {_names(names)}: the data cover {span}, but {key}.{part} asks for "
                f"{start}-{end} ({absent} of its {len(asked)} months are not in the data); "
                f"set {key}.{part} to years the data cover, or add the missing years"
            )


def _finite(block: np.ndarray, path: str, variable: str) -> np.ndarray:
    if np.isinf(block).any():
        raise DataError(
            f"{path}: variable '{variable}' holds infinite values; missing values must be NaN "
            "or the variable's _FillValue/missing_value (fix the file, e.g. "
            "`cdo setmissval,nan` after `cdo setrtomiss`)"
        )
    return block


def guard_finite(ds: xr.Dataset, path: str, names: Sequence[str]) -> xr.Dataset:
    """Lazily raise DataError for +-inf in ``names``: checked chunk by chunk while the
    regrid streams the data, so the values are read once."""
    guarded = {
        name: ds[name].copy(
            data=ds[name].data.map_blocks(_finite, path=path, variable=name, dtype=ds[name].dtype)
        )
        for name in names
        if name in ds.data_vars
        and ds[name].dtype.kind == "f"
        and isinstance(ds[name].data, dask.array.Array)
    }
    return ds.assign(guarded)


def check_fields(
    fields: xr.Dataset,
    files: Sequence[str],
    splits: Mapping[str, Sequence[int]],
    time_step: TimeStep = "monthly",
) -> None:
    """Regridded fields of one dataset (from ``files``): every split year present (see
    check_coverage), and every variable with valid values (labels: not -1) on the
    experiment grid."""
    where = _files(files)
    check_coverage(
        fields.indexes["time"],
        [where],
        list(map(str, fields.data_vars)),
        splits,
        "splits",
        time_step,
    )
    for name, da in fields.data_vars.items():
        valid = da != MISSING_LABEL if is_categorical(da) else da.notnull()
        if not bool(valid.any()):
            raise DataError(
                f"{where}: variable '{name}' has no valid value on the experiment grid in "
                f"the split years: the data are all missing (NaN) there, or their domain "
                "does not overlap the grid's lat/lon range"
            )


def _monthly(exp: Mapping[str, Any]) -> TimeStep:
    return "monthly"


def check_local_datasets(config: Mapping[str, Any], step_of: StepOf = _monthly) -> None:
    """Check, from file headers only, every local dataset an experiment uses.

    Call it right after pipeline.config.resolve_config, before any job runs. Globs under
    ``source.path`` resolve from the working directory (as the download stage does).
    ``step_of(experiment)`` is the time step the experiment's task needs (check_time);
    a dataset is checked for the strictest of its experiments' needs.
    """
    for name, dataset in config["datasets"].items():
        users = [
            (exp_name, exp)
            for exp_name, exp in config["experiments"].items()
            if name in experiment_datasets(exp)
        ]
        if dataset["source"]["kind"] != "local" or not users:
            continue
        try:
            paths = local_paths(name, dataset["source"])
        except NoMatchError as err:
            raise ConfigError(err.key, err.detail) from err
        if not all(gridded(exp) for _, exp in users):
            if any(gridded(exp) for _, exp in users):
                raise ConfigError(
                    f"datasets.{name}",
                    "is read as series by one experiment and as maps by another; give each "
                    "kind of study its own dataset entry",
                )
            check_series_paths(list(map(str, paths)))
            continue
        steps = {exp_name: step_of(exp) for exp_name, exp in users}
        step = "monthly" if "monthly" in steps.values() else None
        with contextlib.ExitStack() as stack:
            files = open_files(list(map(str, paths)), variables=dataset.get("variables"))
            for ds in files.values():
                stack.callback(ds.close)
            timelines = check_files(files, dataset.get("variables"), name, step)
        for exp_name, exp in users:
            for var, (index, var_files) in timelines.items():
                key = f"experiments.{exp_name}.splits"
                check_coverage(index, var_files, [var], exp["splits"], key, steps[exp_name])
