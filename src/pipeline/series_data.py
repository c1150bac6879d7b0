"""Series studies' prepared data: per-entity series and an index of sample windows.

A series dataset holds dynamic variables over (entity, time) (basins, stations; a single
series has one entity) and static attributes over (entity,). The prepared store keeps
the series themselves, normalised with train-period statistics, and only two integers
per sample (its entity and the last step of its input window), so windows are cut when
a batch is drawn (pipeline.samples.Windows), never materialised.

A sample's split is the split of its target dates: every lead's target lies in the
same split, so no training target is ever a validation or test date. Its input window
may reach back into the previous period (inputs observed before the forecast time are
known then). A window with a missing input is no sample; a missing target is kept and
masked in the loss and the scores, unless all of a sample's targets are missing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
import xarray as xr

from pipeline.prepare import SPLITS, split_labels
from pipeline.samples import Windows
from pipeline.timesteps import describe_days, infer_step, median_spacing
from pipeline.variables import DataError

ENTITY, TIME = "entity", "time"


def _require(fields: xr.Dataset, names: Sequence[str], dims: tuple[str, ...], what: str) -> None:
    for name in names:
        if name not in fields.data_vars:
            have = ", ".join(sorted(map(str, fields.data_vars)))
            raise DataError(f"variable '{name}' ({what}) is not in the data (it has: {have})")
        if fields[name].dims != dims:
            raise DataError(
                f"variable '{name}' ({what}) has dims {fields[name].dims}, expected {dims}"
            )


def _stats(values: np.ndarray, name: str) -> dict[str, float]:
    mean, std = float(np.nanmean(values)), float(np.nanstd(values))
    if not np.isfinite(std) or std == 0:
        raise DataError(f"variable '{name}' is constant (or all missing) over the train period")
    return {"mean": mean, "std": std}


def _require_statics(values: np.ndarray, names: Sequence[str], entities: np.ndarray) -> None:
    """Every entity has every attribute: a missing one would feed NaN into each window."""
    for i, name in enumerate(names):
        if (missing := np.flatnonzero(~np.isfinite(values[:, i]))).size:
            listed = ", ".join(str(e) for e in entities[missing][:5])
            raise DataError(
                f"static attribute '{name}' is missing for {missing.size} entities ({listed}); "
                "fill it in the attribute table, or drop it from task.statics"
            )


def sample_index(
    finite_inputs: np.ndarray,
    finite_target: np.ndarray,
    time_split: np.ndarray,
    history: int,
    leads: Sequence[int],
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(entity, end, split) of every valid sample (module docstring), in entity then time
    order. ``finite_inputs`` is (entity, time): every input of that step is known."""
    n_steps = finite_inputs.shape[1]
    leads = np.asarray(leads)
    end = np.arange(history - 1, n_steps - leads.max())
    missing = np.cumsum(~finite_inputs, axis=1)  # missing inputs up to each step
    before = np.where(end >= history, missing[:, np.maximum(end - history, 0)], 0)
    window_ok = missing[:, end] - before == 0
    target_steps = end[:, None] + leads[None, :]
    splits = time_split[target_steps]  # (end, lead)
    same = (splits == splits[:, :1]).all(axis=1) & (splits[:, 0] != "")
    any_target = finite_target[:, target_steps].any(axis=2)  # (entity, end)
    ok = window_ok & same[None, :] & any_target
    entity, which = np.nonzero(ok)
    return entity, end[which], splits[which, 0]


def build_series_samples(fields: xr.Dataset, exp: Mapping[str, Any]) -> xr.Dataset:
    """Harmonised series -> the prepared store of a series study (module docstring)."""
    task, splits = exp["task"], exp["splits"]
    inputs, statics, target = list(task["inputs"]), list(task["statics"]), task["target"]
    history, leads = int(task["history"]), [int(lead) for lead in task["leads"]]
    if ENTITY not in fields.dims:  # a single series is one entity, named by its dataset
        name = exp["dataset"] if isinstance(exp.get("dataset"), str) else "series"
        fields = fields.expand_dims({ENTITY: [name]})
    _require(fields, [*inputs, target], (ENTITY, TIME), "a series")
    _require(fields, statics, (ENTITY,), "a static attribute")
    step = infer_step(fields[TIME])
    if step is None:
        raise DataError(
            f"the time axis has a {describe_days(median_spacing(fields[TIME]))} step, which "
            "is no calendar step (hourly, daily, weekly, monthly, annual); resample it first"
        )
    time_split = split_labels(fields[TIME], splits)
    train = time_split == "train"
    dynamic = np.stack([fields[n].values.astype(float) for n in inputs], axis=-1)
    stats = {n: _stats(dynamic[:, train, i], n) for i, n in enumerate(inputs)}
    flow = fields[target].values.astype(float)
    stats[target] = _stats(flow[:, train], target)
    static_values = (
        np.stack([fields[n].values.astype(float) for n in statics], axis=-1)
        if statics
        else np.zeros((fields.sizes[ENTITY], 0))
    )
    _require_statics(static_values, statics, fields[ENTITY].values)
    stats |= {n: _stats(static_values[:, i], n) for i, n in enumerate(statics)}
    scaled = (dynamic - [stats[n]["mean"] for n in inputs]) / [stats[n]["std"] for n in inputs]
    scaled_target = (flow - stats[target]["mean"]) / stats[target]["std"]
    entity_std = np.nanstd(np.where(train, scaled_target, np.nan), axis=1)
    lacking = np.flatnonzero(~(entity_std > 0))
    if lacking.size:
        names = ", ".join(str(e) for e in fields[ENTITY].values[lacking][:5])
        raise DataError(
            f"variable '{target}' has no varying train-period value for {lacking.size} "
            f"entities ({names}); drop them, or widen the train years"
        )
    entity, end, sample_split = sample_index(
        np.isfinite(dynamic).all(axis=-1), np.isfinite(flow), time_split, history, leads
    )
    for name in SPLITS:
        if not (sample_split == name).any():
            raise DataError(f"no {name} sample: the {name} years hold no complete window")
    static_scaled = (static_values - [stats[n]["mean"] for n in statics]) / [
        stats[n]["std"] for n in statics
    ]
    ds = xr.Dataset(
        {
            "inputs": ((ENTITY, TIME, "feature"), scaled.astype(np.float32)),
            "statics": ((ENTITY, "static"), static_scaled.astype(np.float32)),
            "target": ((ENTITY, TIME), scaled_target.astype(np.float32)),
            "target_std": (ENTITY, entity_std.astype(np.float32)),
            "time_split": (TIME, time_split),
            "sample_entity": ("sample", entity.astype(np.int64)),
            "sample_end": ("sample", end.astype(np.int64)),
            "split": ("sample", sample_split.astype("<U5")),
        },
        coords={
            ENTITY: fields[ENTITY].values.astype(str),
            TIME: fields[TIME].values,
            "feature": inputs,
            "static": statics,
            "lead": leads,
        },
    )
    ds.attrs.update(
        {
            "history": history,
            "step": step,
            "target_name": target,
            "stats": stats,
            "units": {n: fields[n].attrs.get("units", "") for n in [*inputs, target]},
        }
    )
    return ds


def windows(prepared: xr.Dataset, split: str) -> Windows:
    """The samples of ``split`` as windows over the store's series; each target row
    carries its entity's train-period target std last (the NSE* loss reads it)."""
    pick = np.flatnonzero(prepared["split"].values == split)
    if len(pick) == 0:
        raise ValueError(f"the prepared data has no '{split}' samples")

    def tensor(name: str, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        # a writable array: zarr-backed values are read-only, which torch warns about
        return torch.as_tensor(np.require(prepared[name].values, requirements="W"), dtype=dtype)

    return Windows(
        inputs=tensor("inputs"),
        statics=tensor("statics"),
        targets=tensor("target"),
        entity=tensor("sample_entity", torch.int64)[pick],
        end=tensor("sample_end", torch.int64)[pick],
        leads=tensor("lead", torch.int64),
        history=int(prepared.attrs["history"]),
        per_entity=tensor("target_std")[:, None],
    )
