"""Geographic helpers shared by prepare, metrics and plots: cell-area weights, box means."""

from __future__ import annotations

import numpy as np
import xarray as xr

#: Climate index boxes: (lat_min, lat_max, lon_min, lon_max), longitudes in 0..360.
INDEX_BOXES = {
    "nino34": (-5.0, 5.0, 190.0, 240.0),
    "nino3": (-5.0, 5.0, 210.0, 270.0),
    "nino4": (-5.0, 5.0, 160.0, 210.0),
}


def area_weights(lat: xr.DataArray) -> xr.DataArray:
    """Cell-area weights sin(lat+d/2) - sin(lat-d/2), normalised to mean 1 (WeatherBench2)."""
    values = np.asarray(lat, dtype=float)
    half = np.abs(np.gradient(values)) / 2 if len(values) > 1 else np.array([90.0])
    w = np.sin(np.deg2rad(np.clip(values + half, -90, 90))) - np.sin(
        np.deg2rad(np.clip(values - half, -90, 90))
    )
    return xr.DataArray(w / w.mean(), dims=lat.dims, coords=lat.coords, name="area_weight")


def in_lon_range(lon: xr.DataArray, west: float, east: float) -> xr.DataArray:
    """Longitudes inside [west, east] (0..360 box), whatever convention ``lon`` uses."""
    lon360 = lon % 360
    return (lon360 >= west) & (lon360 <= east)


def box_weights(
    lat: xr.DataArray, lon: xr.DataArray, box: tuple[float, float, float, float]
) -> xr.DataArray:
    """Cell-area weights of the cells whose centres lie in ``box``, zero elsewhere, sum 1."""
    lat0, lat1, lon0, lon1 = box
    inside = (lat >= lat0) & (lat <= lat1) & in_lon_range(lon, lon0, lon1)
    w = (area_weights(lat) * inside).transpose(lat.dims[0], lon.dims[0])
    total = float(w.sum())
    if total == 0:
        raise ValueError(f"no grid cell centre lies inside the box {box}")
    return w / total


def box_mean(da: xr.DataArray, box: tuple[float, float, float, float]) -> xr.DataArray:
    """Area-weighted mean over a lat-lon box, ignoring NaN cells (the index operator)."""
    w = box_weights(da["lat"], da["lon"], box)
    valid_weight = w.where(da.notnull()).sum(("lat", "lon"))
    return (da * w).sum(("lat", "lon"), skipna=True) / valid_weight.where(valid_weight > 0)


def index_series(da: xr.DataArray, name: str) -> xr.DataArray:
    """A named climate index (e.g. nino34) of an anomaly field."""
    return box_mean(da, INDEX_BOXES[name]).rename(name)
