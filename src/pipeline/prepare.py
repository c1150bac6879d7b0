"""The prepare stage: regridded fields -> model-ready samples, with no leakage.

Everything fitted (monthly climatology, normalisation statistics) uses the train years
only, and the data must cover every month of every split's years. A sample is kept only
if every month it touches (its input window and all its target times) lies in one split,
so no target can fall in another split.
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
from pipeline.geo import index_series
from pipeline.io import write_zarr
from pipeline.variables import DataError

SPLITS = ("train", "val", "test")
SAMPLE_CHUNK = 256


def split_labels(time: xr.DataArray, splits: Mapping[str, Sequence[int]]) -> np.ndarray:
    """Per time step: 'train'/'val'/'test', or '' outside every split."""
    years = time.dt.year.values
    labels = np.full(len(years), "", dtype="<U5")
    for name in SPLITS:
        start, end = splits[name]
        labels[(years >= start) & (years <= end)] = name
    return labels


def monthly_climatology(ds: xr.Dataset, train: np.ndarray) -> xr.Dataset:
    """Mean annual cycle from the train time steps only."""
    clim = ds.isel(time=np.flatnonzero(train)).groupby("time.month").mean("time")
    if clim.sizes["month"] != 12:
        raise DataError("the train years do not cover all 12 calendar months")
    return clim


def anomalies(ds: xr.Dataset, clim: xr.Dataset) -> xr.Dataset:
    return (ds.groupby("time.month") - clim).drop_vars("month")


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


def sample_indices(labels: np.ndarray, history: int, leads: Sequence[int]) -> np.ndarray:
    """Init indices t whose window [t-history+1, t+max(lead)] lies inside a single split."""
    max_lead = max(leads)
    keep = []
    for t in range(history - 1, len(labels) - max_lead):
        window = labels[t - history + 1 : t + max_lead + 1]
        if window[0] and (window == window[0]).all():
            keep.append(t)
    return np.asarray(keep, dtype=int)


def data_sha256(manifests: Sequence[Mapping[str, Any]]) -> str:
    """One checksum over every input file (for MLflow provenance)."""
    digest = hashlib.sha256()
    for manifest in sorted(manifests, key=lambda m: m["dataset"]):
        for entry in manifest["files"]:
            digest.update(entry["sha256"].encode())
    return digest.hexdigest()


def load_truth(manifests: Sequence[Mapping[str, Any]]) -> xr.Dataset | None:
    paths = [f["path"] for m in manifests for f in m["files"] if f.get("role") == "truth"]
    return xr.open_dataset(paths[0]).load() if paths else None


def build_samples(
    fields: xr.Dataset,
    task: Mapping[str, Any],
    splits: Mapping[str, Sequence[int]],
    truth: xr.Dataset | None = None,
) -> xr.Dataset:
    """Turn regridded fields (time, lat, lon) into the prepared sample dataset."""
    inputs, target_var = list(task["inputs"]), task["target_variable"]
    history, leads = task["history"], list(task["leads"])
    names = list(dict.fromkeys([*inputs, target_var]))
    missing = [n for n in names if n not in fields.data_vars]
    if missing:
        raise DataError(f"regridded data lacks {missing} (has {sorted(fields.data_vars)})")
    fields = fields[names].load()
    labels = split_labels(fields["time"], splits)
    train = labels == "train"
    if not train.any():
        raise DataError(f"no time steps fall in the train years {splits['train']}")

    clim = monthly_climatology(fields, train)
    anom = anomalies(fields, clim)
    stats = normalisation_stats(anom, train, inputs)
    index = index_series(anom[target_var], task["target"])
    if index.isnull().any():
        raise DataError(f"the {task['target']} box has no valid ({target_var}) cells on this grid")

    stacked = xr.concat(
        [(anom[n] - stats[n]["mean"]) / stats[n]["std"] for n in inputs], dim="channel"
    ).transpose("time", "channel", "lat", "lon")
    mask = stacked.notnull().all("time")
    filled = stacked.fillna(0.0).values.astype(np.float32)

    init = sample_indices(labels, history, leads)
    if len(init) == 0:
        raise DataError("no sample fits inside any split: shorten history/leads or widen splits")
    offsets = np.arange(-history + 1, 1)
    target_idx = init[:, None] + np.asarray(leads)[None, :]
    target_map = anom[target_var].transpose("time", "lat", "lon").values.astype(np.float32)

    sample_vars: dict[str, Any] = {
        "x": (("sample", "history", "channel", "lat", "lon"), filled[init[:, None] + offsets]),
        "y": (("sample", "lead"), index.values[target_idx].astype(np.float32)),
        "y_map": (("sample", "lead", "lat", "lon"), target_map[target_idx]),
        "index_init": (("sample",), index.values[init].astype(np.float32)),
        "split": (("sample",), labels[init].astype("<U5")),
        "mask": (("channel", "lat", "lon"), mask.values),
        "index_series": (("month_time",), index.values.astype(np.float32)),
        "climatology": (("month", "channel_all", "lat", "lon"), _clim_array(clim, names)),
    }
    if truth is not None:
        oracle = truth["oracle"].sel(time=fields["time"].values[init], lead=leads)
        sample_vars["oracle"] = (("sample", "lead"), oracle.values.astype(np.float32))
    out = xr.Dataset(
        sample_vars,
        coords={
            "sample": np.arange(len(init)),
            "time": ("sample", fields["time"].values[init]),
            "lead": ("lead", np.asarray(leads), {"units": "months"}),
            "history": ("history", offsets, {"units": "months relative to init"}),
            "channel": ("channel", inputs),
            "channel_all": ("channel_all", names),
            "month": ("month", np.arange(1, 13)),
            "month_time": ("month_time", fields["time"].values),
            "lat": fields["lat"],
            "lon": fields["lon"],
        },
    )
    out["y"].attrs = {"long_name": f"{task['target']} anomaly at init + lead", "units": "degC"}
    out["x"].attrs = {"long_name": "normalised anomalies; land (mask False) filled with 0"}
    out.attrs = {
        "target": task["target"],
        "target_variable": target_var,
        "history": history,
        "leads": json.dumps(leads),
        "splits": json.dumps({k: list(v) for k, v in splits.items()}),
        "stats": json.dumps(stats),
        "land_fill": 0.0,
    }
    return out


def _clim_array(clim: xr.Dataset, names: Sequence[str]) -> np.ndarray:
    return np.stack([clim[n].transpose("month", "lat", "lon").values for n in names], axis=1)


def prepare(
    grid_paths: Sequence[str | Path],
    manifests: Sequence[Mapping[str, Any]],
    experiment: Mapping[str, Any],
    config_hash: str,
    out: str | Path,
) -> xr.Dataset:
    """Run the prepare stage for one experiment and write ``prepared.zarr`` at ``out``.

    ``grid_paths[i]`` is the regridded store of ``manifests[i]``'s dataset. Each is checked
    (pipeline.datacheck.check_fields) before anything is fitted: a split year the data
    do not cover, or a variable with no valid value, is a DataError naming its files.
    """
    splits = experiment["splits"]
    span = [min(v[0] for v in splits.values()), max(v[1] for v in splits.values())]
    period = slice(f"{span[0]}-01-01", f"{span[1]}-12-31")
    stores = [xr.open_zarr(p).sel(time=period) for p in grid_paths]
    for store, manifest in zip(stores, manifests, strict=True):
        files = [f["path"] for f in manifest["files"] if f.get("role", "data") == "data"]
        check_fields(store, files, splits)
    fields = xr.merge(stores, compat="override")
    ds = build_samples(fields, experiment["task"], splits, load_truth(manifests))
    ds.attrs.update({"config_hash": config_hash, "data_sha256": data_sha256(manifests)})
    chunks = {"sample": SAMPLE_CHUNK}
    write_zarr(ds.chunk({d: c for d, c in chunks.items() if d in ds.dims}), out)
    return ds


def open_prepared(path: str | Path) -> xr.Dataset:
    """Open a prepared store, decoding the JSON attrs."""
    ds = xr.open_zarr(path)
    for key in ("leads", "splits", "stats"):
        ds.attrs[key] = json.loads(ds.attrs[key])
    return ds
