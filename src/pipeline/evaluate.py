"""The evaluate stage: test-set forecasts of a trained run against the baselines and the
oracle, per lead, written as predictions.nc, metrics.json and plots.

ENSO events are also scored as a three-class problem (La Niña < -0.5 degC < neutral <
+0.5 degC < El Niño), which gives the confusion matrix, precision/recall/F1 and ROC
curves of the course material a physical meaning.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
import xarray as xr

from pipeline import metrics as m
from pipeline.io import write_text
from pipeline.models.registry import build_model
from pipeline.train import data_shapes

EVENT_THRESHOLD = 0.5  # degC, NOAA's ONI convention
EVENT_CLASSES = ["La Niña", "neutral", "El Niño"]
BASELINES = ("persistence", "climatology", "linear")


def load_model(prepared: xr.Dataset, variant: Mapping[str, Any], model_path: str | Path):
    """Rebuild a run's model and load its weights (a plain state_dict)."""
    model = build_model(variant["model"], data_shapes(prepared, prepared.sizes["lead"]))
    model.load_state_dict(torch.load(model_path, map_location="cpu", weights_only=True))
    return model.eval()


def predict(model: torch.nn.Module, x: np.ndarray, batch_size: int = 256) -> dict[str, np.ndarray]:
    """Index forecasts (samples, leads), and the maps too for map-predicting models."""
    index, maps = [], []
    with torch.no_grad():
        for start in range(0, len(x), batch_size):
            xb = torch.as_tensor(x[start : start + batch_size])
            out = model(xb)
            if getattr(model, "output", "index") == "map":
                maps.append(out.numpy())
                index.append(model.readout(out).numpy())
            else:
                index.append(out.numpy())
    result = {"index": np.concatenate(index).astype(float)}
    if maps:
        result["maps"] = np.concatenate(maps)
    return result


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


def event_scores(pred: np.ndarray, obs: np.ndarray) -> dict[str, Any]:
    """Three-class ENSO event skill; ROC scores are the forecast anomaly itself."""
    labels, predicted = event_classes(obs), event_classes(pred)
    cm = m.confusion_matrix(labels, predicted, 3)
    scores = event_class_scores(pred)
    return {
        "classes": EVENT_CLASSES,
        "confusion_matrix": cm.tolist(),
        **m.classification_scores(cm),
        **m.one_vs_rest_auc(labels, scores),
    }


def lead_metrics(
    obs: np.ndarray, model: np.ndarray, baselines: Mapping[str, np.ndarray], leads: list[int]
) -> dict[str, Any]:
    """metrics.json content: per lead, every metric for the model and each baseline."""
    refs = {name: baselines[name] for name in BASELINES}
    per_lead: dict[str, Any] = {}
    for i, lead in enumerate(leads):
        oracle_acc = m.acc(baselines["oracle"][:, i], obs[:, i]) if "oracle" in baselines else None
        lead_refs = {k: v[:, i] for k, v in refs.items()}
        entry = {"model": forecast_scores(model[:, i], obs[:, i], lead_refs, oracle_acc)}
        for name, forecast in baselines.items():
            others = {k: v for k, v in lead_refs.items() if k != name}
            entry[name] = forecast_scores(forecast[:, i], obs[:, i], others, oracle_acc)
        entry["model_events"] = event_scores(model[:, i], obs[:, i])
        per_lead[str(lead)] = entry
    overall = {
        name: {
            k: float(np.mean([per_lead[str(lead)][name][k] for lead in leads]))
            for k in per_lead[str(leads[0])][name]
        }
        for name in ("model", *baselines)
    }
    return {"leads": leads, "n_test": len(obs), "per_lead": per_lead, "mean_over_leads": overall}


def _json_safe(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_json_safe(v) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return None  # JSON has no NaN: e.g. the ACC of a constant (climatology) forecast
    if isinstance(obj, np.floating | np.integer):
        return _json_safe(obj.item())
    return obj


def write_metrics(metrics: Mapping[str, Any], path: str | Path) -> None:
    """Deterministic JSON: sorted keys, values rounded to 12 significant digits."""

    def rounded(obj: Any) -> Any:
        if isinstance(obj, dict):
            return {k: rounded(v) for k, v in obj.items()}
        if isinstance(obj, list):
            return [rounded(v) for v in obj]
        return float(f"{obj:.12g}") if isinstance(obj, float) else obj

    write_text(json.dumps(rounded(_json_safe(metrics)), indent=2, sort_keys=True) + "\n", path)


def predictions_dataset(
    prepared: xr.Dataset, forecasts: Mapping[str, np.ndarray], maps: np.ndarray | None = None
) -> xr.Dataset:
    """Test-set forecasts with real coordinates: init time and lead (and valid time)."""
    test = prepared.isel(sample=np.flatnonzero(prepared["split"].values == "test"))
    init = test["time"].values
    leads = test["lead"].values
    valid = np.array([[np.datetime64(t, "M") + int(lead) for lead in leads] for t in init])
    data = {"observed": (("time", "lead"), test["y"].values.astype("float32"))}
    for name, values in forecasts.items():
        data[name] = (("time", "lead"), values.astype("float32"))
    coords = {
        "time": ("time", init, {"long_name": "forecast initialisation (last input month)"}),
        "lead": ("lead", leads, {"units": "months"}),
        "valid_time": (("time", "lead"), valid.astype("datetime64[ns]")),
    }
    if maps is not None:
        data["prediction_map"] = (("time", "lead", "lat", "lon"), maps.astype("float32"))
        data["observed_map"] = (
            ("time", "lead", "lat", "lon"),
            test["y_map"].values.astype("float32"),
        )
        coords.update(lat=test["lat"].values, lon=test["lon"].values)
    ds = xr.Dataset(data, coords=coords)
    ds.attrs = {
        "target": prepared.attrs["target"],
        "units": "degC",
        "description": "test-set forecasts of the model, baselines and oracle",
    }
    return ds
