"""Harmonise raw archives into the variables an experiment asks for.

Archives disagree on names (``latitude`` vs ``lat``), units (K vs degC) and on what they
store (GODAS gives 3-D potential temperature; ENSO models want the 0-300 m mean). Some
variables are class labels, not quantities (ClimateNet's ``LABELS``): ``is_categorical``
tells them apart, so that nothing downstream averages classes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import xarray as xr

COORD_ALIASES = {"latitude": "lat", "longitude": "lon", "y": "lat", "x": "lon"}
#: Aliases that are usually index dimensions (NEMO's y/x beside 2-D nav_lat/nav_lon):
#: renamed only when they are coordinate variables in degrees north/east.
INDEX_ALIASES = {"y": "north", "x": "east"}
DEPTH_NAMES = ("level", "depth", "lev", "z")
KELVIN = {"K", "kelvin", "Kelvin", "degK"}
#: The value of a missing class label (no label there, or no such expert copy).
MISSING_LABEL = -1


class DataError(ValueError):
    """Raw data does not hold what the config says; names the file and variable."""


def is_categorical(da: xr.DataArray) -> bool:
    """Class labels rather than a quantity: CF ``flag_values``/``flag_meanings``, or integers.

    Integers count whether decoded (int dtype) or stored (an integer on disk decoded to
    float for its ``_FillValue``); packed data (``scale_factor``/``add_offset``) are
    quantities. CF conventions, section 3.5 (flags).
    """
    if "flag_values" in da.attrs or "flag_meanings" in da.attrs or da.dtype.kind in "iub":
        return True
    stored = np.dtype(da.encoding.get("dtype", da.dtype))
    return stored.kind in "iu" and not {"scale_factor", "add_offset"} & set(da.encoding)


def _is_degree_axis(ds: xr.Dataset, name: str) -> bool:
    """``name`` is a 1-D coordinate variable in degrees (CF: degrees_north, degree_N, ...)."""
    if name not in ds.coords or ds[name].dims != (name,):
        return False
    units = str(ds[name].attrs.get("units", "")).lower().replace("_", "")
    direction = INDEX_ALIASES[name]
    return units in {"degree", "degrees"} or (
        units.startswith("degree") and units.endswith((direction, direction[0]))
    )


def standardise_coords(ds: xr.Dataset) -> xr.Dataset:
    """Rename coordinate aliases to ``lat``/``lon``.

    ``y``/``x`` are renamed only when they are 1-D coordinates in degrees; on a
    curvilinear grid they are index dimensions, and pipeline.datacheck refuses the file.
    """
    renames = {
        k: v
        for k, v in COORD_ALIASES.items()
        if k in ds.dims and v not in ds.dims and (k not in INDEX_ALIASES or _is_degree_axis(ds, k))
    }
    return ds.rename(renames)


def depth_mean(da: xr.DataArray, top: float, bottom: float) -> xr.DataArray:
    """Layer-thickness-weighted mean between depths ``top`` and ``bottom``.

    Layer bounds are the midpoints between levels (GODAS levels are irregular), clipped
    to [top, bottom], so each level is weighted by the thickness it represents there.
    """
    dim = next((d for d in DEPTH_NAMES if d in da.dims), None)
    if dim is None:
        raise DataError(f"variable '{da.name}' has no depth dimension (looked for {DEPTH_NAMES})")
    z = da[dim].values.astype(float)
    edges = np.concatenate([[z[0] - (z[1] - z[0]) / 2], (z[1:] + z[:-1]) / 2, [np.inf]])
    thickness = np.clip(np.minimum(edges[1:], bottom) - np.maximum(edges[:-1], top), 0, None)
    if thickness.sum() == 0:
        raise DataError(f"variable '{da.name}': no levels between {top} and {bottom}")
    weights = xr.DataArray(thickness, dims=dim, coords={dim: da[dim]})
    keep = weights > 0
    return da.sel({dim: keep}).weighted(weights.sel({dim: keep})).mean(dim, skipna=False)


def convert_units(da: xr.DataArray, units: str) -> xr.DataArray:
    current = da.attrs.get("units", "")
    if units == "degC" and current in KELVIN:
        out = da - 273.15
    elif units == "K" and current in {"degC", "degree_Celsius", "celsius"}:
        out = da + 273.15
    else:
        return da
    out.attrs = {**da.attrs, "units": units}
    return out


def derive_variables(
    ds: xr.Dataset, spec: Mapping[str, Any] | None, source_name: str = "<dataset>"
) -> xr.Dataset:
    """Build the output variables named in ``spec`` (all data variables if ``spec`` is empty)."""
    ds = standardise_coords(ds)
    if not spec:
        return ds
    out = {}
    for name, options in spec.items():
        options = options or {}
        raw = options.get("from", name)
        if raw not in ds.data_vars:
            raise DataError(
                f"{source_name}: variable '{raw}' (for '{name}') not found; "
                f"the file has {sorted(ds.data_vars)}"
            )
        da = ds[raw]
        if "depth_mean" in options:
            attrs = da.attrs
            da = depth_mean(da, *options["depth_mean"])
            da.attrs = attrs
        if "units" in options:
            da = convert_units(da, options["units"])
        out[name] = da.rename(name)
    return xr.Dataset(out, attrs=ds.attrs)
