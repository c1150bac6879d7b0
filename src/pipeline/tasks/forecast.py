"""The forecast task: a climate index at several leads from windows of anomaly maps
(ENSO after Ham et al. 2019).

Prepare fits the monthly climatology and the normalisation on the train years only and
keeps a sample only if its input window and every target month lie in one split. Maps
in, the index (Niño3.4, an area-weighted box mean of the target variable's anomalies) out
per lead; a map-predicting network (U-Net) forecasts the anomaly map per lead and the
index is read from it by the same box operator. Baselines: persistence, climatology and
ridge on PCs (pipeline.baselines); the synthetic oracle is the skill ceiling. ENSO
events (La Niña < -0.5 degC < neutral < +0.5 degC < El Niño) give the confusion matrix
and ROC curves a physical meaning.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import xarray as xr

from pipeline import metrics as m
from pipeline import plots
from pipeline.baselines import baseline_forecasts
from pipeline.geo import INDEX_BOXES, box_weights, index_series
from pipeline.losses import masked_mse
from pipeline.models.layers import IndexReadout
from pipeline.models.registry import build_model, data_shapes
from pipeline.models.specs import MAP_ARCHS
from pipeline.prepare import normalisation_stats, split_labels
from pipeline.samples import input_batches
from pipeline.scores import ALL, score_rows, scores_table
from pipeline.tasks.base import ImportanceTarget, Loss, Task
from pipeline.variables import DataError

EVENT_THRESHOLD = 0.5  # degC, NOAA's ONI convention
EVENT_CLASSES = ["La Niña", "neutral", "El Niño"]
REFERENCES = ("persistence", "climatology", "linear")  # MSESS is reported against each


# ----------------------------------------------------------------------------- samples


def monthly_climatology(ds: xr.Dataset, train: np.ndarray) -> xr.Dataset:
    """Mean annual cycle from the train time steps only."""
    clim = ds.isel(time=np.flatnonzero(train)).groupby("time.month").mean("time")
    if clim.sizes["month"] != 12:
        raise DataError("the train years do not cover all 12 calendar months")
    return clim


def anomalies(ds: xr.Dataset, clim: xr.Dataset) -> xr.Dataset:
    return (ds.groupby("time.month") - clim).drop_vars("month")


def sample_indices(labels: np.ndarray, history: int, leads: Sequence[int]) -> np.ndarray:
    """Init indices t whose window [t-history+1, t+max(lead)] lies inside a single split."""
    max_lead = max(leads)
    keep = []
    for t in range(history - 1, len(labels) - max_lead):
        window = labels[t - history + 1 : t + max_lead + 1]
        if window[0] and (window == window[0]).all():
            keep.append(t)
    return np.asarray(keep, dtype=int)


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
        "leads": leads,
        "splits": {k: list(v) for k, v in splits.items()},
        "stats": stats,
        "land_fill": 0.0,
    }
    return out


def _clim_array(clim: xr.Dataset, names: Sequence[str]) -> np.ndarray:
    return np.stack([clim[n].transpose("month", "lat", "lon").values for n in names], axis=1)


# ------------------------------------------------------------------------------- model


class MapForecaster(torch.nn.Module):
    """A map-predicting network (anomaly map per lead) with the index read-out attached:
    trained against the maps, scored on the index the read-out takes from them."""

    def __init__(self, net: torch.nn.Module, index_weights: torch.Tensor):
        super().__init__()
        self.unet = net  # the attribute name keeps saved state dicts loadable
        self.readout = IndexReadout(index_weights)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.unet(x)


def predict_index(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """(batch, leads) index forecasts from any forecasting network."""
    out = model(x)
    return model.readout(out) if isinstance(model, MapForecaster) else out


# ---------------------------------------------------------------------------- scoring


def forecast_scores(
    pred: np.ndarray,
    obs: np.ndarray,
    references: Mapping[str, np.ndarray],
    oracle_acc: float | None,
) -> dict[str, float]:
    scores = {
        "acc": m.acc(pred, obs),
        "rmse": m.rmse(pred, obs),
        "mae": m.mae(pred, obs),
        "bias": m.bias(pred, obs),
        "mse": m.mse(pred, obs),
    }
    for name, ref in references.items():
        scores[f"msess_{name}"] = m.msess(pred, obs, ref)
    if oracle_acc is not None:
        scores["frac_oracle_acc"] = m.fraction_of_oracle(scores["acc"], oracle_acc)
    return scores


def event_classes(values: np.ndarray) -> np.ndarray:
    return np.digitize(values, [-EVENT_THRESHOLD, EVENT_THRESHOLD])


def event_class_scores(pred: np.ndarray) -> np.ndarray:
    """(samples, 3) scores, higher meaning more of that class: -x, -|x| and x."""
    return np.stack([-pred, -np.abs(pred), pred], axis=1)


def event_roc_curves(pred: np.ndarray, obs: np.ndarray) -> dict[str, tuple]:
    """{class: (fpr, tpr, auc)} of the one-vs-rest ROC curves of the ENSO event classes."""
    labels, scores = event_classes(obs), event_class_scores(pred)
    curves = {}
    for k, name in enumerate(EVENT_CLASSES):
        fpr, tpr = m.roc_curve(labels == k, scores[:, k])
        curves[name] = (fpr, tpr, m.roc_auc(labels == k, scores[:, k]))
    return curves


def event_confusion(pred: np.ndarray, obs: np.ndarray) -> np.ndarray:
    return m.confusion_matrix(event_classes(obs), event_classes(pred), len(EVENT_CLASSES))


def event_scores(pred: np.ndarray, obs: np.ndarray) -> dict[str, float]:
    """Three-class ENSO event skill (macro scores; ROC scores are the anomaly itself)."""
    scores = m.classification_scores(event_confusion(pred, obs))
    auc = m.one_vs_rest_auc(event_classes(obs), event_class_scores(pred))
    return {
        "event_accuracy": scores["accuracy"],
        "event_macro_f1": scores["macro_f1"],
        "event_roc_auc": float(np.mean(auc["roc_auc"])),
    }


def lead_scores(
    forecasts: Mapping[str, np.ndarray],
    roles: Mapping[str, str],
    references: Mapping[str, np.ndarray],
    obs: np.ndarray,
    leads: Sequence[int],
) -> pd.DataFrame:
    """Every forecast's scores per lead and averaged over leads (group ``all``); MSESS
    against each reference other than the forecast itself; the fraction of the oracle's
    ACC when the oracle is known; event scores for the networks."""
    refs = {name: references[name] for name in REFERENCES if name in references}
    oracle = references.get("oracle")
    rows = []
    for name, forecast in forecasts.items():
        per_lead = []
        for i, lead in enumerate(leads):
            oracle_acc = None if oracle is None else m.acc(oracle[:, i], obs[:, i])
            others = {k: v[:, i] for k, v in refs.items() if k != name}
            scores = forecast_scores(forecast[:, i], obs[:, i], others, oracle_acc)
            if roles[name] in ("model", "ensemble"):
                scores |= event_scores(forecast[:, i], obs[:, i])
            per_lead.append(scores)
            rows += score_rows(name, roles[name], "lead", lead, scores)
        mean = {k: float(np.mean([s[k] for s in per_lead])) for k in per_lead[0]}
        rows += score_rows(name, roles[name], "lead", ALL, mean)
    return scores_table(rows)


# ---------------------------------------------------------------------------- the task


def example_map_data(prepared: xr.Dataset, run_dirs: Sequence[Path]) -> dict:
    """The input anomaly maps at the strongest test-period event and, from the first run
    that predicts maps, its forecast near lead 6 beside the observed anomaly (for
    ``plots.map_panels``)."""
    test = np.flatnonzero(prepared["split"].values == "test")
    event = int(test[np.argmax(np.abs(prepared["index_init"].values[test]))])
    sample = prepared.isel(sample=event)
    inputs = {
        str(c): sample["x"].isel(history=-1).sel(channel=c).where(sample["mask"].sel(channel=c))
        for c in prepared["channel"].values
    }
    time = sample["time"].values
    data: dict = {"time": str(np.datetime_as_string(time, unit="M")), "inputs": inputs}
    for run_dir in run_dirs:
        predictions = run_dir / "predictions.nc"
        if not predictions.exists():
            continue
        with xr.open_dataset(predictions) as ds:
            if "prediction_map" not in ds:
                continue
            lead = int(min(ds["lead"].values, key=lambda lead: abs(int(lead) - 6)))
            at = ds.sel(time=time, lead=lead).load()
            units = ds.attrs.get("units", "degC")
        data["forecast"] = {
            "model": f"{run_dir.parent.name} seed {run_dir.name.removeprefix('seed')}",
            "lead": lead,
            "predicted": at["prediction_map"].where(at["observed_map"].notnull()),  # no land
            "observed": at["observed_map"],
            "units": f"anomaly ({units})",
        }
        break
    return data


def event_lead(leads: Sequence[int]) -> int:
    """The lead the event figures show: the one nearest 6 months, where skill differs."""
    return min(leads, key=lambda lead: abs(lead - 6))


class LeadOutput(torch.nn.Module):
    """A forecasting network restricted to one lead's index: what importance explains."""

    def __init__(self, model: torch.nn.Module, lead_index: int):
        super().__init__()
        self.model, self.lead_index = model, lead_index

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return predict_index(self.model, x)[:, self.lead_index : self.lead_index + 1]


class ForecastTask(Task):
    name = "forecast"
    dim = "lead"
    headline = "acc"
    lower_is_better = frozenset({"rmse", "mae", "mse"})
    ceilings = frozenset({"oracle"})
    importance_label = plots.DMSE_LABEL

    def group_label(self, group: str) -> str:
        return plots.lead_label(int(group))

    def build_samples(
        self, fields: xr.Dataset, exp: Mapping[str, Any], truth: xr.Dataset | None
    ) -> xr.Dataset:
        return build_samples(fields, exp["task"], exp["splits"], truth)

    def model(self, spec: Mapping[str, Any], prepared: xr.Dataset) -> torch.nn.Module:
        net = build_model(spec, data_shapes(prepared, prepared.sizes["lead"]))
        if spec["arch"] not in MAP_ARCHS:
            return net
        box = INDEX_BOXES[prepared.attrs["target"]]
        weights = box_weights(prepared["lat"], prepared["lon"], box)
        return MapForecaster(net, torch.as_tensor(weights.values, dtype=torch.float32))

    def target(self, spec: Mapping[str, Any]) -> str:
        return "y_map" if spec["arch"] in MAP_ARCHS else "y"

    def loss(self, name: str, prepared: xr.Dataset) -> Loss:
        """MSE over the finite targets (``auto`` or ``mse``; the checks refuse others)."""
        return masked_mse

    def predict(self, model: torch.nn.Module, prepared: xr.Dataset) -> dict[str, np.ndarray]:
        """Index forecasts (samples, leads), and the maps too for map-predicting networks."""
        index, maps = [], []
        with torch.no_grad():
            for x in input_batches(prepared, 256):
                out = model(x)
                if isinstance(model, MapForecaster):
                    maps.append(out.numpy())
                    index.append(model.readout(out).numpy())
                else:
                    index.append(out.numpy())
        result = {"forecast": np.concatenate(index).astype(float)}
        if maps:
            result["maps"] = np.concatenate(maps)
        return result

    def baselines(self, prepared: xr.Dataset) -> dict[str, np.ndarray]:
        return baseline_forecasts(prepared, "test")

    def score(
        self,
        forecasts: Mapping[str, np.ndarray],
        roles: Mapping[str, str],
        references: Mapping[str, np.ndarray],
        prepared: xr.Dataset,
    ) -> pd.DataFrame:
        test = prepared["split"].values == "test"
        leads = [int(v) for v in prepared["lead"].values]
        return lead_scores(forecasts, roles, references, prepared["y"].values[test], leads)

    def predictions(
        self,
        prepared: xr.Dataset,
        outputs: Mapping[str, np.ndarray],
        baselines: Mapping[str, np.ndarray],
    ) -> xr.Dataset:
        """Test-set forecasts with real coordinates: init time and lead (and valid time)."""
        test = prepared.isel(sample=np.flatnonzero(prepared["split"].values == "test"))
        init = test["time"].values
        leads = test["lead"].values
        valid = np.array([[np.datetime64(t, "M") + int(lead) for lead in leads] for t in init])
        data = {"observed": (("time", "lead"), test["y"].values.astype("float32"))}
        for name, values in {"prediction": outputs["forecast"], **baselines}.items():
            data[name] = (("time", "lead"), values.astype("float32"))
        coords = {
            "time": ("time", init, {"long_name": "forecast initialisation (last input month)"}),
            "lead": ("lead", leads, {"units": "months"}),
            "valid_time": (("time", "lead"), valid.astype("datetime64[ns]")),
        }
        if "maps" in outputs:
            dims = ("time", "lead", "lat", "lon")
            data["prediction_map"] = (dims, outputs["maps"].astype("float32"))
            data["observed_map"] = (dims, test["y_map"].values.astype("float32"))
            coords.update(lat=test["lat"].values, lon=test["lon"].values)
        ds = xr.Dataset(data, coords=coords)
        ds.attrs = {
            "target": prepared.attrs["target"],
            "units": "degC",
            "description": "test-set forecasts of the model, baselines and oracle",
        }
        return ds

    def forecast_from(self, predictions: xr.Dataset) -> np.ndarray:
        return predictions["prediction"].values.astype(float)

    def run_figures(
        self,
        prepared: xr.Dataset,
        outputs: Mapping[str, np.ndarray],
        baselines: Mapping[str, np.ndarray],
        scores: pd.DataFrame,
        name: str,
        plot_dir: Path,
        title: str,
    ) -> list[Path]:
        test = prepared["split"].values == "test"
        obs, forecast = prepared["y"].values[test], outputs["forecast"]
        leads = [int(v) for v in prepared["lead"].values]
        target = str(prepared.attrs["target"])
        lead = event_lead(leads)
        show = sorted({leads[0], lead if lead != leads[0] else leads[-1]})
        i = leads.index(lead)
        at = f"{title}\nENSO events, {plots.lead_label(lead)}"
        return [
            plots.skill_vs_lead(scores, plot_dir / "skill_vs_lead.png", title, name),
            plots.index_timeseries(
                prepared["time"].values[test],
                obs,
                {name: forecast, "persistence": baselines["persistence"]},
                leads,
                show,
                plot_dir / "timeseries.png",
                target,
                title,
            ),
            plots.scatter(obs, forecast, leads, plot_dir / "scatter.png", title, target, name),
            plots.confusion_matrix(
                event_confusion(forecast[:, i], obs[:, i]),
                EVENT_CLASSES,
                plot_dir / "confusion_matrix.png",
                at,
            ),
            plots.roc_curves(event_roc_curves(forecast[:, i], obs[:, i]), plot_dir / "roc.png", at),
        ]

    def summary_figures(
        self,
        table: pd.DataFrame,
        importance: pd.DataFrame,
        verdicts: Sequence[str],
        prepared: xr.Dataset,
        run_dirs: Sequence[Path],
        out_dir: Path,
        title: str,
    ) -> list[Path]:
        return [
            plots.summary_skill(table, out_dir / "skill_vs_lead.png", title, verdicts),
            plots.importance_heatmap(
                importance, out_dir / "importance_heatmap.png", title, "lead", self.importance_label
            ),
            plots.map_panels(
                example_map_data(prepared, run_dirs), out_dir / "example_maps.png", title
            ),
        ]

    def importance_targets(
        self, model: torch.nn.Module, prepared: xr.Dataset, settings: Mapping[str, Any]
    ) -> Iterator[ImportanceTarget]:
        """Per lead (``importance.leads``, default all), the index at that lead; MSE."""
        test = prepared["split"].values == "test"
        y = prepared["y"].values[test]
        leads = [int(v) for v in prepared["lead"].values]
        for lead in settings.get("leads") or leads:
            i = leads.index(lead)
            yield ImportanceTarget([str(lead)], LeadOutput(model, i), y[:, i : i + 1])


TASK = ForecastTask()
