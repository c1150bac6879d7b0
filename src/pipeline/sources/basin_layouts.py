"""Basin collections as users have them on disk, read into the pipeline's series form.

Two layouts:

- neuralhydrology's GenericDataset (Kratzert et al. 2022, JOSS 7, 4050):
  ``time_series/<basin>.nc`` (or ``.nc4``) with one coordinate ``date``, and
  ``attributes/*.csv`` with the basin id in the first column, split by feature groups or
  by basin groups. Caravan (Kratzert et al. 2023, Sci. Data 10, 61) ships the same files
  one level deeper, per source data set: ``timeseries/netcdf/<source>/<basin>.nc`` and
  ``attributes/<source>/*.csv`` (first column ``gauge_id``); both are read here.
- CAMELS-US as published (Newman et al. 2015, HESS 19, 209; basin_dataset_public_v1p2):
  ``basin_mean_forcing/<forcing>/<huc2>/<gauge>_lump_*_forcing_leap.txt`` (three header
  lines: latitude, elevation in m, area in m2; then a whitespace table ``Year Mnth Day Hr``
  and ``name(unit)`` columns), ``usgs_streamflow/<huc2>/<gauge>_streamflow_qc.txt``
  (gauge, year, month, day, discharge in ft3/s, QC flag; -999 missing) and, when present,
  the attribute tables ``camels_*.txt`` (Addor et al. 2017, HESS 21, 5293;
  semicolon-separated, ``gauge_id``). Discharge becomes mm/day with the header's area,
  as neuralhydrology's CAMELS-US loader does.

Either reads into one xarray.Dataset: dynamic variables over ("entity", "time"), each
with its ``units``, on the union of the basins' dates (NaN outside a basin's record);
numeric attributes over ("entity",); text attributes (gauge names, classes) as
coordinates along ``entity``. Basin ids stay strings (CAMELS gauges keep their leading
zeros). A basin file that cannot be read is named in a warning and skipped, as each
basin is a sample of its own; a file without a variable asked for is a DataError naming
both. The root may also be the folder that holds the layout as its only subfolder (an
archive's top folder, e.g. ``basin_dataset_public_v1p2/``).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Collection, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from pipeline.variables import DataError

log = logging.getLogger(__name__)

ENTITY, TIME = "entity", "time"
GENERIC_SERIES = "time_series"
CARAVAN_SERIES = ("timeseries", "netcdf")
ATTRIBUTES = "attributes"
SERIES_SUFFIXES = (".nc", ".nc4")

FORCING_DIR, FLOW_DIR = "basin_mean_forcing", "usgs_streamflow"
FORCING_FILE = re.compile(r"(\d{8})_lump_\w+_forcing_leap\.txt")
FLOW_FILE = re.compile(r"(\d{8})_streamflow_qc\.txt")
#: ``name(unit)`` headers of the forcing tables, and their units in the pipeline's spelling.
FORCING_COLUMN = re.compile(r"(\w+)\((.+)\)")
CAMELS_UNITS = {"C": "degC", "W/m2": "W m-2"}
DATE_COLUMNS = {"Year": "year", "Mnth": "month", "Day": "day"}
#: One cubic foot in m3 (0.3048 m per foot): USGS discharge is in ft3/s.
CUBIC_FOOT = 0.3048**3
FLOW = "streamflow"
#: What a forcing file's header gives, as static attributes.
HEADER = {
    "forcing_latitude": "degrees_north",
    "forcing_elevation": "m",
    "forcing_area": "km2",
}


# --- shared ---------------------------------------------------------------------------


def _find_root(path: str | Path, fits: Callable[[Path], bool], depth: int = 2) -> Path | None:
    """``path`` if the layout is there, else the only folder up to ``depth`` levels below
    that holds it (an archive's top folder, inside the folder it was unpacked into)."""
    path = Path(path)
    if not path.is_dir():
        return None
    if fits(path):
        return path
    if depth == 0:
        return None
    found = {
        root
        for child in sorted(path.iterdir())
        if child.is_dir() and (root := _find_root(child, fits, depth - 1)) is not None
    }
    return found.pop() if len(found) == 1 else None


def _require_root(path: str | Path, fits: Callable[[Path], bool], layout: str) -> Path:
    root = _find_root(path, fits)
    if root is None:
        raise DataError(f"{path}: not a {layout} folder (see pipeline.sources.basin_layouts)")
    return root


def _select_basins(found: Sequence[str], basins: Collection[str] | None, where: Path) -> list[str]:
    """The basins asked for (all found when None), in the order asked; DataError names
    those missing."""
    if basins is None:
        return list(found)
    known = set(found)
    missing = [b for b in basins if b not in known]
    if missing:
        raise DataError(f"{where}: no data for basin(s) {', '.join(missing[:10])}")
    return list(basins)


def merge_attribute_tables(tables: Iterable[tuple[Path, pd.DataFrame]]) -> pd.DataFrame:
    """One table from tables split by attribute groups, basin groups or both: the union
    of their cells. A cell two files give differently is a DataError naming the later
    file, the attribute and the basin."""
    merged: pd.DataFrame | None = None
    for path, table in tables:
        if table.index.has_duplicates:
            dup = table.index[table.index.duplicated()][0]
            raise DataError(f"{path}: basin '{dup}' appears twice")
        if merged is None:
            merged = table
            continue
        rows = merged.index.intersection(table.index)
        cols = merged.columns.intersection(table.columns)
        old, new = merged.loc[rows, cols], table.loc[rows, cols]
        differ = old.notna() & new.notna() & (old != new)
        if differ.to_numpy().any():
            basin, column = differ.stack()[lambda s: s].index[0]
            raise DataError(
                f"{path}: attribute '{column}' of basin '{basin}' differs from the value "
                "an earlier attribute file gives"
            )
        columns = list(dict.fromkeys([*merged.columns, *table.columns]))
        merged = merged.combine_first(table).reindex(columns=columns)
    return merged if merged is not None else pd.DataFrame()


def _static(table: pd.DataFrame, entities: Sequence[str], where: Path) -> xr.Dataset:
    """Attributes of ``entities``: numbers as variables, text as coordinates."""
    missing = [e for e in entities if e not in table.index]
    if missing and len(table.columns):
        raise DataError(f"{where}: no attributes for basin(s) {', '.join(missing[:10])}")
    table = table.reindex(list(entities))
    numeric = {c for c in table.columns if pd.api.types.is_numeric_dtype(table[c])}
    return xr.Dataset(
        {str(c): (ENTITY, table[c].to_numpy()) for c in table.columns if c in numeric},
        coords={ENTITY: list(entities)}
        | {
            str(c): (ENTITY, table[c].astype(str).to_numpy())
            for c in table.columns
            if c not in numeric
        },
    )


def _require(ds: xr.Dataset, names: Collection[str] | None, path: Path) -> xr.Dataset:
    """``ds`` with only ``names`` (all if None); DataError names the first one missing."""
    if names is None:
        return ds
    missing = [v for v in names if v not in ds.data_vars]
    if missing:
        raise DataError(
            f"{path}: has no variable '{missing[0]}' (it has {', '.join(map(str, ds.data_vars))})"
        )
    return ds[list(names)]


def _assemble(
    series: dict[str, xr.Dataset],
    static: xr.Dataset,
    variables: Collection[str] | None,
    layout: str,
    root: Path,
) -> xr.Dataset:
    """The basins' series (each over ``time``) stacked along ``entity`` on the union of
    their dates, with the attributes beside them; only ``variables`` when given."""
    if not series:
        raise DataError(f"{root}: none of its basin files can be read; see the warnings above")
    stacked = xr.concat(
        [ds.expand_dims({ENTITY: [basin]}) for basin, ds in series.items()],
        dim=ENTITY,
        join="outer",
        combine_attrs="drop_conflicts",
    )
    if clash := sorted(set(stacked.data_vars) & (set(static.variables) - {ENTITY})):
        raise DataError(f"{root}: '{clash[0]}' is both a time series and an attribute")
    ds = xr.merge([stacked, static], combine_attrs="drop_conflicts")
    if variables is not None:
        ds = ds.drop_vars([v for v in ds.data_vars if v not in variables])
    return ds.assign_attrs(layout=layout, source=str(root))


# --- GenericDataset / Caravan -----------------------------------------------------------


def _series_folders(root: Path) -> list[Path]:
    generic, caravan = root / GENERIC_SERIES, root.joinpath(*CARAVAN_SERIES)
    if generic.is_dir():
        return [generic]
    return sorted(p for p in caravan.iterdir() if p.is_dir()) if caravan.is_dir() else []


def _fits_generic(path: Path) -> bool:
    return any(f.suffix in SERIES_SUFFIXES for d in _series_folders(path) for f in d.iterdir())


def is_generic_dataset(path: str | Path) -> bool:
    """Whether ``path`` holds a GenericDataset or Caravan layout (see the module docs)."""
    return _find_root(path, _fits_generic) is not None


def generic_files(root: Path) -> dict[str, Path]:
    """Basin id (file stem) -> its time-series file."""
    files: dict[str, Path] = {}
    for folder in _series_folders(root):
        for path in sorted(folder.iterdir()):
            if path.suffix not in SERIES_SUFFIXES:
                continue
            if path.stem in files:
                raise DataError(f"{path}: basin '{path.stem}' also has {files[path.stem]}")
            files[path.stem] = path
    return files


def _read_csv_table(path: Path, **options: Any) -> pd.DataFrame:
    """A table indexed by its first column, read as text (ids keep leading zeros)."""
    try:
        header = pd.read_csv(path, nrows=0, **options).columns
        table = pd.read_csv(path, dtype={header[0]: str}, **options)
    except (OSError, ValueError, UnicodeDecodeError) as err:
        raise DataError(f"{path}: cannot read it as a table of attributes ({err})") from err
    return table.set_index(header[0]).rename(index=str.strip)


def generic_attributes(root: Path) -> pd.DataFrame:
    """``attributes/*.csv`` and ``attributes/<source>/*.csv``, merged."""
    folder = root / ATTRIBUTES
    files = sorted(folder.glob("*.csv")) + sorted(folder.glob("*/*.csv"))
    return merge_attribute_tables((path, _read_csv_table(path)) for path in files)


def _open_series(path: Path, variables: Collection[str] | None) -> xr.Dataset | None:
    """One basin's file, lazily, over ``time``: ``variables`` (all if None). None, with a
    warning naming it, when it cannot be read."""
    try:
        ds = xr.open_dataset(path, chunks={})
    except (OSError, ValueError) as err:
        log.warning("%s: cannot read it as NetCDF (%s); skipping this basin", path, err)
        return None
    if "date" not in ds.coords or ds["date"].dims != ("date",):
        raise DataError(f"{path}: has no 1-D coordinate 'date' (a GenericDataset file needs one)")
    if not np.issubdtype(ds["date"].dtype, np.datetime64):
        raise DataError(f"{path}: variable 'date' holds {ds['date'].dtype}, not dates")
    if not ds.indexes["date"].is_unique:
        raise DataError(f"{path}: variable 'date' repeats dates")
    ds = ds.drop_vars([c for c in ds.coords if c != "date"]).rename(date=TIME)
    return _require(ds, variables, path)


def read_generic_dataset(
    root: str | Path,
    variables: Collection[str] | None = None,
    basins: Collection[str] | None = None,
) -> xr.Dataset:
    """A GenericDataset or Caravan folder as (entity, time) series plus attributes; the
    series stay lazy (dask), one chunk per basin. ``variables`` names dynamic variables
    and attributes to keep (all if None); ``basins`` the basin ids (all if None). Without
    ``variables``, every basin must hold the first readable file's variables."""
    root = _require_root(root, _fits_generic, "GenericDataset/Caravan")
    files = generic_files(root)
    attributes = generic_attributes(root)
    dynamic = None if variables is None else [v for v in variables if v not in attributes.columns]
    series: dict[str, xr.Dataset] = {}
    for basin in _select_basins(list(files), basins, root):
        ds = _open_series(files[basin], dynamic)
        if ds is not None:
            dynamic = list(ds.data_vars) if dynamic is None else dynamic
            series[basin] = ds
    static = _static(attributes, list(series), root / ATTRIBUTES)
    return _assemble(series, static, variables, "generic_dataset", root)


# --- CAMELS-US --------------------------------------------------------------------------


def _fits_camels(path: Path) -> bool:
    return (path / FORCING_DIR).is_dir() and (path / FLOW_DIR).is_dir()


def is_camels_us(path: str | Path) -> bool:
    """Whether ``path`` holds CAMELS-US's forcing and streamflow folders."""
    return _find_root(path, _fits_camels) is not None


def _gauge(gauge_id: str) -> str:
    """An 8-digit USGS id, its leading zeros restored where a table lost them."""
    gauge_id = str(gauge_id).strip()
    return gauge_id.zfill(8) if gauge_id.isdigit() else gauge_id


def _gauge_files(folder: Path, pattern: re.Pattern[str]) -> dict[str, Path]:
    return {
        match[1]: path
        for path in sorted(folder.glob("*/*.txt"))
        if (match := pattern.fullmatch(path.name))
    }


def read_camels_forcing(path: Path) -> tuple[pd.DataFrame, dict[str, float]]:
    """A forcing file: its table by date (columns renamed ``prcp``, ``tmax``, ...; units
    in ``attrs["units"]``) and its header (latitude, elevation in m, area in km2)."""
    with open(path) as fh:
        latitude, elevation, area_m2 = (float(fh.readline()) for _ in range(3))
        table = pd.read_csv(fh, sep=r"\s+")
    if area_m2 <= 0:
        raise ValueError(f"basin area {area_m2} m2 in the header is not positive")
    dates = pd.to_datetime(table[list(DATE_COLUMNS)].rename(columns=DATE_COLUMNS))
    if not dates.is_unique:
        raise ValueError("it repeats dates")
    columns = {c: FORCING_COLUMN.fullmatch(c) for c in table.columns if c not in DATE_COLUMNS}
    columns = {c: m for c, m in columns.items() if m}  # drops Hr
    table = table[list(columns)].set_axis(pd.DatetimeIndex(dates, name=TIME))
    table.columns = [m[1].lower() for m in columns.values()]
    table.attrs["units"] = {m[1].lower(): CAMELS_UNITS.get(m[2], m[2]) for m in columns.values()}
    header = dict(zip(HEADER, (latitude, elevation, area_m2 / 1e6), strict=True))
    return table, header


def read_camels_streamflow(path: Path, area_km2: float) -> pd.Series:
    """A USGS discharge file as mm/day over the basin (negative values, -999, missing)."""
    table = pd.read_csv(
        path,
        sep=r"\s+",
        header=None,
        names=["gauge", "year", "month", "day", "discharge", "flag"],
        dtype={"gauge": str, "flag": str},
    )
    dates = pd.DatetimeIndex(pd.to_datetime(table[["year", "month", "day"]]), name=TIME)
    cfs = table["discharge"].astype(float).where(lambda q: q >= 0).to_numpy()
    return pd.Series(cfs * CUBIC_FOOT * 86400 / (area_km2 * 1e6) * 1e3, index=dates, name=FLOW)


def _camels_basin(forcing: Path, flow: Path) -> tuple[xr.Dataset, dict[str, float]] | None:
    """One basin's forcing and streamflow on the forcing's dates; None, with a warning
    naming the file, when one cannot be read."""
    path = forcing
    try:
        table, header = read_camels_forcing(forcing)
        path = flow
        table[FLOW] = read_camels_streamflow(flow, header["forcing_area"])
    except (OSError, ValueError, KeyError, UnicodeDecodeError) as err:
        log.warning("%s: cannot read it (%s); skipping this basin", path, err)
        return None
    ds = xr.Dataset.from_dataframe(table)
    for name, units in (table.attrs["units"] | {FLOW: "mm/day"}).items():
        ds[name].attrs["units"] = units
    return ds, header


def camels_attributes(folders: Iterable[Path]) -> pd.DataFrame:
    """The ``camels_*.txt`` tables in ``folders`` and up to two levels below, merged."""
    files = sorted(
        {p for d in folders for depth in ("", "*/", "*/*/") for p in d.glob(f"{depth}camels_*.txt")}
    )
    tables = (
        (p, _read_csv_table(p, sep=";", encoding_errors="replace").rename(index=_gauge))
        for p in files
    )
    return merge_attribute_tables(tables)


def read_camels_us(
    root: str | Path,
    forcing: str = "daymet",
    variables: Collection[str] | None = None,
    basins: Collection[str] | None = None,
) -> xr.Dataset:
    """CAMELS-US's text files as (entity, time) series plus attributes: the ``forcing``
    product's columns, ``streamflow`` in mm/day, the header's latitude, elevation and
    area, and the ``camels_*.txt`` attributes when found in ``root`` or the folder
    given. ``variables`` and ``basins`` select as in read_generic_dataset."""
    given = Path(root)
    root = _require_root(given, _fits_camels, "CAMELS-US")
    folder = root / FORCING_DIR / forcing
    if not folder.is_dir():
        products = sorted(p.name for p in (root / FORCING_DIR).iterdir() if p.is_dir())
        raise DataError(f"{folder}: no such forcing product; there are {', '.join(products)}")
    forcings = _gauge_files(folder, FORCING_FILE)
    flows = _gauge_files(root / FLOW_DIR, FLOW_FILE)
    wanted = None if basins is None else [_gauge(b) for b in basins]
    attributes = camels_attributes({given, root})
    static_names = {*HEADER, *attributes.columns}
    dynamic = None if variables is None else [v for v in variables if v not in static_names]
    series: dict[str, xr.Dataset] = {}
    headers: dict[str, dict[str, float]] = {}
    for gauge in _select_basins(list(forcings), wanted, folder):
        if gauge not in flows:
            log.warning("%s: no streamflow file for gauge %s; skipping it", forcings[gauge], gauge)
            continue
        if (read := _camels_basin(forcings[gauge], flows[gauge])) is None:
            continue
        ds, headers[gauge] = read
        dynamic = list(ds.data_vars) if dynamic is None else dynamic
        series[gauge] = _require(ds, dynamic, forcings[gauge])
    table = pd.DataFrame.from_dict(headers, orient="index")
    if len(attributes.columns):
        if unlisted := sorted(set(series) - set(attributes.index)):
            log.warning("camels_*.txt: no attributes for gauge(s) %s", ", ".join(unlisted[:10]))
        table = table.join(attributes, how="left")
    static = _static(table, list(series), root)
    for name, units in HEADER.items():
        if name in static:
            static[name].attrs["units"] = units
    return _assemble(series, static, variables, "camels_us", root)


# --- either -----------------------------------------------------------------------------

#: Layout name -> (detector, reader).
LAYOUTS: dict[str, tuple[Callable[[str | Path], bool], Callable[..., xr.Dataset]]] = {
    "generic_dataset": (is_generic_dataset, read_generic_dataset),
    "camels_us": (is_camels_us, read_camels_us),
}


def basin_layout(path: str | Path) -> str | None:
    """The name of the layout ``path`` holds (a key of LAYOUTS), or None."""
    return next((name for name, (fits, _) in LAYOUTS.items() if fits(path)), None)


def read_basins(path: str | Path, **options: Any) -> xr.Dataset:
    """Read ``path`` with the reader of its layout; ``options`` go to that reader."""
    layout = basin_layout(path)
    if layout is None:
        raise DataError(
            f"{path}: neither a GenericDataset/Caravan folder (time_series/*.nc) nor "
            "CAMELS-US (basin_mean_forcing/ and usgs_streamflow/)"
        )
    return LAYOUTS[layout][1](path, **options)
