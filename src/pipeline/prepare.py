"""The prepare stage: regridded fields (or series) -> model-ready samples, no leakage.

The task (pipeline.tasks) builds the samples; this module checks the fields, gives the
task the split of every time step and the train-only statistics it fits, and writes the
store with its provenance (the task, the config hash and the input files' checksum).
Everything fitted uses the train years only, and the data must cover every split's years.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from pipeline.datacheck import check_fields
from pipeline.io import write_zarr
from pipeline.series_files import as_series, open_series
from pipeline.tasks import get_task, gridded, time_step
from pipeline.variables import DataError, derive_variables

SPLITS = ("train", "val", "test")
SAMPLE_CHUNK = 256
#: ... and at most this many bytes of ``x``: the unit lazy training reads and shuffles by
#: (a ClimateNet map at full resolution is 57 MB: one per chunk).
CHUNK_BYTES = 16 * 2**20


def split_labels(time: xr.DataArray, splits: Mapping[str, Sequence[int]]) -> np.ndarray:
    """Per time step: 'train'/'val'/'test', or '' outside every split."""
    years = time.dt.year.values
    labels = np.full(len(years), "", dtype="<U5")
    for name in SPLITS:
        start, end = splits[name]
        labels[(years >= start) & (years <= end)] = name
    return labels


def normalisation_stats(anom: xr.Dataset, train: np.ndarray, names: Sequence[str]) -> dict:
    """Mean and std of each input's anomalies over the train time steps and space."""
    train_anom = anom.isel(time=np.flatnonzero(train))
    stats = {}
    for name in names:
        values = train_anom[name].values
        stats[name] = {"mean": float(np.nanmean(values)), "std": float(np.nanstd(values))}
        if not stats[name]["std"] > 0:
            raise DataError(f"variable '{name}' has zero variance over the train years")
    return stats


def data_sha256(manifests: Sequence[Mapping[str, Any]]) -> str:
    """One checksum over every input file (for MLflow provenance)."""
    digest = hashlib.sha256()
    for manifest in sorted(manifests, key=lambda m: m["dataset"]):
        for entry in manifest["files"]:
            digest.update(entry["sha256"].encode())
    return digest.hexdigest()


def data_files(manifest: Mapping[str, Any]) -> list[str]:
    return [f["path"] for f in manifest["files"] if f.get("role", "data") == "data"]


def load_truth(manifests: Sequence[Mapping[str, Any]]) -> xr.Dataset | None:
    paths = [f["path"] for m in manifests for f in m["files"] if f.get("role") == "truth"]
    return as_series(xr.open_dataset(paths[0]).load()) if paths else None


def prepare(
    grid_paths: Sequence[str | Path],
    manifests: Sequence[Mapping[str, Any]],
    experiment: Mapping[str, Any],
    config_hash: str,
    out: str | Path,
    variables: Mapping[str, Mapping[str, Any] | None] | None = None,
) -> xr.Dataset:
    """Run the prepare stage for one experiment and write ``prepared.zarr`` at ``out``.

    ``grid_paths[i]`` is the regridded store of ``manifests[i]``'s dataset. Each is checked
    (pipeline.datacheck.check_fields) before anything is fitted: a split year the data
    do not cover, or a variable with no valid value, is a DataError naming its files.
    Series skip the regrid stage, so their datasets' ``variables`` (renames, units; by
    dataset name) are applied here.
    """
    splits = experiment["splits"]
    span = [min(v[0] for v in splits.values()), max(v[1] for v in splits.values())]
    period = slice(f"{span[0]}-01-01", f"{span[1]}-12-31")
    if gridded(experiment):
        stores = [xr.open_zarr(p).sel(time=period) for p in grid_paths]
        for store, manifest in zip(stores, manifests, strict=True):
            check_fields(store, data_files(manifest), splits, time_step(experiment))
    else:
        stores = [
            derive_variables(
                open_series(data_files(m)),
                (variables or {}).get(m["dataset"]),
                source_name=m["dataset"],
            ).sel(time=slice(None, period.stop))  # earlier years: the first windows' history
            for m in manifests
        ]
    fields = xr.merge(stores, compat="override")
    kind = experiment["task"]["kind"]
    ds = get_task(kind).build_samples(fields, experiment, load_truth(manifests))
    json_attrs = [k for k, v in ds.attrs.items() if isinstance(v, list | dict)]
    ds.attrs.update({k: json.dumps(ds.attrs[k]) for k in json_attrs})
    ds.attrs.update(
        {
            "task": kind,
            "json_attrs": " ".join(json_attrs),
            "config_hash": config_hash,
            "data_sha256": data_sha256(manifests),
        }
    )
    write_zarr(ds.chunk({"sample": sample_chunk(ds)} if "sample" in ds.dims else {}), out)
    return ds


def is_per_sample_map(da: xr.DataArray) -> bool:
    """A variable with a map (two or more dimensions) per sample: left in the store."""
    return "sample" in da.dims and da.ndim >= 3


def sample_chunk(ds: xr.Dataset) -> int:
    """Samples per Zarr chunk: SAMPLE_CHUNK, fewer where ``x`` would pass CHUNK_BYTES."""
    if "x" not in ds:
        return SAMPLE_CHUNK
    sample_bytes = ds["x"].nbytes // max(1, ds.sizes["sample"])
    return int(np.clip(CHUNK_BYTES // max(1, sample_bytes), 1, SAMPLE_CHUNK))


def open_prepared(path: str | Path) -> xr.Dataset:
    """Open a prepared store, decoding the attrs prepare wrote as JSON.

    Everything but the per-sample maps (``x``, and map targets such as ``y_map`` or
    segmentation labels) is loaded. The maps are nearly all of the store, and stay in it
    until a split or batch of them is read (pipeline.samples), so a store larger than
    memory can be trained on, evaluated and explained.
    """
    ds = xr.open_zarr(path)
    maps = [v for v in ds.data_vars if is_per_sample_map(ds[v])]
    ds = ds.drop_vars(maps).load().merge(ds[maps])
    ds.encoding["source"] = str(path)
    for key in ds.attrs["json_attrs"].split():
        ds.attrs[key] = json.loads(ds.attrs[key])
    return ds
