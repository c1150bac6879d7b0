"""Exact first-order conservative regridding between regular lat-lon grids.

Why not xarray-regrid's ``conservative``: it weights a partially overlapped source cell by
the *linear* fraction of its latitude span times the whole cell's area, which is off by
up to 2.5e-4 (relative) from CDO ``remapcon`` at 5 degrees, growing polewards. On a
regular lat-lon grid the exact weights are separable: the overlap of two cells is
(lon overlap) x (sin-lat overlap). This module computes those and applies them with
``xarray.dot`` (so dask chunks over time stream through it). Validated against CDO.
"""

from __future__ import annotations

import numpy as np
import xarray as xr


def edges(centres: np.ndarray, lo: float = -np.inf, hi: float = np.inf) -> np.ndarray:
    """Cell edges: midpoints between centres, ends extrapolated, clipped to [lo, hi]."""
    c = np.asarray(centres, dtype=float)
    mid = (c[1:] + c[:-1]) / 2
    out = np.concatenate([[2 * c[0] - mid[0]], mid, [2 * c[-1] - mid[-1]]])
    return np.clip(out, lo, hi)


def _overlap(src: np.ndarray, tgt: np.ndarray) -> np.ndarray:
    """Overlap lengths of target intervals (rows) with source intervals (columns)."""
    lo = np.maximum(tgt[:-1, None], src[None, :-1])
    hi = np.minimum(tgt[1:, None], src[None, 1:])
    return np.clip(hi - lo, 0, None)


def latitude_weights(src_lat: np.ndarray, tgt_lat: np.ndarray) -> np.ndarray:
    """Exact spherical-area overlaps (proportional to the sin-lat overlap), (n_tgt, n_src)."""
    mu = lambda e: np.sin(np.deg2rad(e))  # noqa: E731 - area is linear in sin(lat)
    return _overlap(mu(edges(src_lat, -90, 90)), mu(edges(tgt_lat, -90, 90)))


def longitude_weights(src_lon: np.ndarray, tgt_lon: np.ndarray) -> np.ndarray:
    """Longitude overlaps in degrees, (n_tgt, n_src).

    ``src_lon`` must ascend in one evenly spaced run (regrid.normalise_coords makes it so):
    a gap would turn the cells on either side into cells spanning it, inventing values
    there. Copies of the source shifted by +-360 join a global source across the seam
    and put a regional one in the target's convention; a regional source spans less
    than 360 degrees, so its copies are disjoint and nothing is counted twice or wrapped.
    """
    step = np.diff(np.asarray(src_lon, dtype=float))
    if step.size and (step.min() <= 0 or step.max() > 1.5 * step.min()):
        raise ValueError("source longitudes must ascend evenly, without gaps")
    src, tgt = edges(src_lon), edges(tgt_lon)
    return sum(_overlap(src + shift, tgt) for shift in (-360.0, 0.0, 360.0))


def regrid_conservative(ds: xr.Dataset, target: xr.Dataset, nan_threshold: float) -> xr.Dataset:
    """Area-weighted mean of the valid source cells in each target cell.

    A target cell is NaN when more than ``nan_threshold`` of its covered area is NaN
    (land), or when no source cell covers it (outside a regional domain).
    """
    w_lat = xr.DataArray(
        latitude_weights(ds["lat"].values, target["lat"].values), dims=("lat_out", "lat")
    )
    w_lon = xr.DataArray(
        longitude_weights(ds["lon"].values, target["lon"].values), dims=("lon_out", "lon")
    )
    covered = w_lat.sum("lat") * w_lon.sum("lon")  # target area that any source cell covers
    out = {}
    for name, da in ds.data_vars.items():
        if not {"lat", "lon"} <= set(da.dims):
            continue
        w_lat_t, w_lon_t = w_lat.astype(da.dtype), w_lon.astype(da.dtype)
        valid = xr.dot(da.notnull().astype(da.dtype), w_lat_t, w_lon_t, dim=["lat", "lon"])
        total = xr.dot(da.fillna(0), w_lat_t, w_lon_t, dim=["lat", "lon"])
        keep = (valid > 0) & (valid >= (1 - nan_threshold) * covered.astype(da.dtype))
        out[name] = (
            (total / valid.where(valid > 0))
            .where(keep)
            .rename({"lat_out": "lat", "lon_out": "lon"})
        )
    return xr.Dataset(out).assign_coords(lat=target["lat"], lon=target["lon"])
