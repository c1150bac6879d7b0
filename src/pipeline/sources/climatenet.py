"""ClimateNet's archive layout, read as it is (Kashinath et al. 2021, GMD 14, 107-124).

The archive holds one NetCDF file per labelled time step, ``data-YYYY-MM-DD-HH-R_N.nc``:
the CAM5 channels (TMQ, U850, V850, PSL, ... over time(1) x lat x lon) and ``LABELS``
(lat x lon, int64: 0 background, 1 tropical cyclone, 2 atmospheric river). ``_N`` numbers
copies of one time step labelled by different experts: their inputs are identical, their
labels are not. A few archive files are truncated.

A list of files is in this layout when every file name matches. Reading it gives one
dataset per date: the inputs once (from the first readable copy) and each categorical
variable with an ``expert`` dimension holding every copy's labels (int8, -1 where a date
has fewer copies than the most-copied one). With no copies at all, labels keep the
usual (time, lat, lon). One date is one time step, so all its copies land in the same
split. An unreadable file is named in a warning and skipped: each file is a sample of its
own, and the others still serve. Files are opened lazily; no values are read here.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Collection, Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from pipeline.variables import MISSING_LABEL, DataError, is_categorical

log = logging.getLogger(__name__)

#: data-YYYY-MM-DD-HH-R_N.nc: the time step, a run number R, and the expert copy N.
FILE_NAME = re.compile(r"data-(\d{4})-(\d{2})-(\d{2})-(\d{2})-(\d+)_(\d+)\.nc")
#: ClimateNet's classes (its config.json ``labels``), declared on LABELS as CF flags.
CLASSES = {"background": 0, "tropical_cyclone": 1, "atmospheric_river": 2}
LABELS = "LABELS"
EXPERT = "expert"
LABEL_DTYPE = np.int8


def is_climatenet(paths: Sequence[str | Path]) -> bool:
    """Whether every file is named like a ClimateNet archive file."""
    return bool(paths) and all(FILE_NAME.fullmatch(Path(p).name) for p in paths)


def _parse(path: str | Path) -> re.Match[str]:
    match = FILE_NAME.fullmatch(Path(path).name)
    if match is None:
        raise DataError(f"{path}: not named like a ClimateNet file (data-YYYY-MM-DD-HH-R_N.nc)")
    return match


def group_copies(paths: Sequence[str | Path]) -> dict[str, list[str]]:
    """The files of each time step (by name, without ``_N``), copies ordered by N."""
    groups: dict[str, list[tuple[int, str]]] = {}
    for path in map(str, paths):
        copy = int(_parse(path)[6])
        groups.setdefault(Path(path).name.rsplit("_", 1)[0], []).append((copy, path))
    return {stem: [p for _, p in sorted(copies)] for stem, copies in sorted(groups.items())}


def name_time(path: str | Path, calendar: str = "standard") -> pd.Index:
    """The time step a file's name gives, in ``calendar`` (CAM5 writes "noleap")."""
    year, month, day, hour = _parse(path).groups()[:4]
    return xr.date_range(f"{year}-{month}-{day}T{hour}:00", periods=1, calendar=calendar)


def _time_index(ds: xr.Dataset) -> pd.Index | None:
    index = ds.indexes.get("time")
    return index if isinstance(index, pd.DatetimeIndex | xr.CFTimeIndex) else None


def _open(path: str, chunks: Mapping[str, int], drop: Collection[str]) -> xr.Dataset | None:
    """The file, lazily, without the variables ``drop``; None (with a warning naming it)
    when it cannot be read."""
    try:
        return xr.open_dataset(path, chunks=dict(chunks), drop_variables=list(drop))
    except (OSError, ValueError) as err:
        log.warning("%s: cannot read it as NetCDF (%s); skipping this file", path, err)
        return None


def _calendar(files: Iterable[xr.Dataset]) -> str:
    """The calendar of the first file with a decodable time ("standard" if none has one)."""
    index = next((i for i in map(_time_index, files) if i is not None), None)
    return getattr(index, "calendar", "standard")


def _with_time(ds: xr.Dataset, path: str, calendar: str) -> xr.Dataset:
    """Every variable over the file's time step: its time coordinate where decodable,
    else the one its name gives (in the archive's ``calendar``); variables without time
    (LABELS) are given it."""
    if _time_index(ds) is None:
        if ds.sizes.get("time", 1) != 1:
            raise DataError(
                f"{path}: holds {ds.sizes['time']} undecodable time steps; a ClimateNet "
                "file holds one"
            )
        ds = ds.drop_vars("time", errors="ignore")
        ds = ds.expand_dims("time") if "time" not in ds.dims else ds
        ds = ds.assign_coords(time=name_time(path, calendar))
    timeless = [name for name, da in ds.data_vars.items() if "time" not in da.dims]
    return ds.assign({name: ds[name].expand_dims(time=ds["time"]) for name in timeless})


def _check_classes(block: np.ndarray, path: str, variable: str, classes: np.ndarray) -> np.ndarray:
    bad = np.setdiff1d(np.unique(block), np.append(classes, MISSING_LABEL))
    if bad.size:
        raise DataError(
            f"{path}: variable '{variable}' holds class(es) {bad.tolist()} outside its classes "
            f"{np.array2string(classes, threshold=8, separator=', ')}; fix the file or its "
            "flag_values"
        )
    return block.astype(LABEL_DTYPE)


def _as_labels(da: xr.DataArray, path: str) -> xr.DataArray:
    """A categorical variable as int8 (-1 missing), its values checked lazily (chunk by
    chunk, while the regrid streams them) against its classes: its flag_values,
    ClimateNet's for LABELS, else int8's non-negative range."""
    attrs = dict(da.attrs)
    if da.name == LABELS and "flag_values" not in attrs:
        attrs |= {
            "flag_values": np.array(list(CLASSES.values()), dtype=LABEL_DTYPE),
            "flag_meanings": " ".join(CLASSES),
        }
    classes = np.atleast_1d(attrs.get("flag_values", np.arange(np.iinfo(LABEL_DTYPE).max + 1)))
    da = da.fillna(MISSING_LABEL) if da.dtype.kind == "f" else da
    checked = da.data.map_blocks(
        _check_classes, path=path, variable=str(da.name), classes=classes, dtype=LABEL_DTYPE
    )
    return da.copy(data=checked).assign_attrs(attrs)


def merge_copies(copies: Mapping[str, xr.Dataset], experts: int) -> xr.Dataset:
    """One time step from its copies (path -> dataset, in copy order): the first copy's
    inputs, and every copy's labels along ``expert``, padded to ``experts`` with -1
    (no ``expert`` dimension when ``experts`` is 1)."""
    ds = next(iter(copies.values()))
    labels = [str(n) for n, da in ds.data_vars.items() if is_categorical(da)]
    out = ds.drop_vars(labels)
    for name in labels:
        stacked = [
            _as_labels(copy[name], path).assign_coords(time=ds["time"])
            for path, copy in copies.items()
            if name in copy.data_vars
        ]
        try:
            da = xr.concat(stacked, dim=EXPERT, join="exact", combine_attrs="override")
        except ValueError as err:
            raise DataError(
                f"{', '.join(copies)}: copies of one time step disagree on the grid of "
                f"variable '{name}': {err}"
            ) from err
        if experts == 1:
            out[name] = da.squeeze(EXPERT, drop=True)
            continue
        pad = experts - da.sizes[EXPERT]
        out[name] = da.pad({EXPERT: (0, pad)}, constant_values=MISSING_LABEL, keep_attrs=True)
        out[name] = out[name].astype(LABEL_DTYPE).transpose("time", EXPERT, ...)
        out[name] = out[name].chunk({EXPERT: -1})
    out.set_close(lambda: [copy.close() for copy in copies.values()])
    return out


def open_climatenet(
    paths: Sequence[str | Path],
    chunks: Mapping[str, int] | None = None,
    keep: Collection[str] | None = None,
) -> dict[str, xr.Dataset]:
    """The readable time steps of a ClimateNet archive, lazily: the first readable copy's
    path -> that step's dataset (see merge_copies), with the data variables ``keep`` (all
    if None). Unreadable files are skipped with a warning; DataError names them all when
    none is readable."""
    groups = group_copies(paths)
    opened: dict[str, dict[str, xr.Dataset]] = {}
    drop: set[str] = set()  # the unwanted variables, learnt from the first readable file
    for stem, files in groups.items():
        for path in files:
            if (ds := _open(path, chunks or {}, drop)) is not None:
                drop |= {str(n) for n in ds.data_vars} - set(keep or ds.data_vars)
                opened.setdefault(stem, {})[path] = ds.drop_vars(drop, errors="ignore")
    if not opened:
        raise DataError(
            f"{', '.join(map(str, paths))}: none of these ClimateNet files can be read as "
            "NetCDF (truncated or corrupt downloads?); download them again"
        )
    calendar = _calendar(ds for copies in opened.values() for ds in copies.values())
    experts = max(map(len, opened.values()))
    return {
        next(iter(copies)): merge_copies(
            {path: _with_time(ds, path, calendar) for path, ds in copies.items()}, experts
        )
        for copies in opened.values()
    }
