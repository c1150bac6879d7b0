"""Remote Zarr stores (e.g. WeatherBench2 on cloud storage): subset, then store locally."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import xarray as xr

from pipeline.io import write_zarr
from pipeline.sources.http import mirror_advice
from pipeline.sources.urls import DownloadError, check_scheme, redact_text, redact_url


def subset(ds: xr.Dataset, select: Mapping[str, Any]) -> xr.Dataset:
    """Apply a ``select`` spec: variables, a time range and pressure levels."""
    if "variables" in select:
        missing = [v for v in select["variables"] if v not in ds.data_vars]
        if missing:
            raise DownloadError(
                f"variables {missing} are not in the store (it has: {sorted(ds.data_vars)})"
            )
        ds = ds[list(select["variables"])]
    if "time" in select:
        ds = ds.sel(time=slice(*select["time"]))
    if "level" in select:
        ds = ds.sel(level=list(select["level"]))
    return ds


def fetch_zarr(
    url: str,
    target: str | Path,
    dataset: str,
    select: Mapping[str, Any],
    headers: dict[str, str] | None = None,
) -> Path:
    """Open ``url`` lazily, subset it, and write only the subset to ``target``.

    Only remote stores (http, https, s3, gs): a local store is a ``kind: local`` source.
    ``headers`` (credentials for an http store) go with every request; s3 and gs stores
    use their own credential chains (environment, ~/.aws, gcloud).
    """
    check_scheme("zarr", url, dataset)
    options = {"storage_options": {"headers": headers}} if headers else {}
    try:
        remote = xr.open_zarr(url, chunks={}, **options)
    except Exception as err:
        raise DownloadError(
            f"could not open remote Zarr '{redact_url(url)}': {type(err).__name__}: "
            f"{redact_text(str(err))}. " + mirror_advice(dataset)
        ) from None
    local = subset(remote, select)
    for var in local.variables.values():
        var.encoding.clear()
    write_zarr(local.chunk({"time": 120}) if "time" in local.dims else local, target)
    return Path(target)
