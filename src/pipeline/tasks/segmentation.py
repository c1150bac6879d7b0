"""The segmentation task: the class of every pixel of a map (tropical cyclones and
atmospheric rivers, as in ClimateNet: Prabhat et al. 2021; Kashinath et al. 2021).

Samples are single time steps; the inputs are the chosen channels, normalised by their
train-period mean and standard deviation; the target is the label map (0 background,
1.. the event classes, -1 missing). Copies of one time step labelled by different
experts (ClimateNet's ``_N`` files, an ``expert`` dimension in the harmonised data) are
separate samples of the same date, so they always share a split. Networks output class
logits per pixel (U-Net, encoder-decoder, FCN) and train on soft Jaccard (the default,
as ClimateNet), Dice or class-weighted cross-entropy. Baselines: all-background and a
TECA-style threshold detector fitted on train (pipeline.detectors).

Scores per class: precision, recall, F1, IoU, Dice, ROC AUC and PR AUC (one-vs-rest,
from the softmax probabilities) and the row-normalised confusion matrix
(``predicted_<class>``); the ``all`` group is the mean over the event classes (the
background, ~94% of pixels, always scores near 1), plus pixel accuracy and the mean IoU
over every class.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import dask
import dask.array
import numpy as np
import pandas as pd
import torch
import xarray as xr

from pipeline import metrics as m
from pipeline.detectors import CHANNELS as DETECTOR_CHANNELS
from pipeline.detectors import fit_threshold_detector
from pipeline.losses import (
    class_weights_from_frequencies,
    soft_dice_loss,
    soft_jaccard_loss,
    weighted_cross_entropy,
)
from pipeline.models.registry import build_model, data_shapes
from pipeline.prepare import normalisation_stats, split_labels
from pipeline.samples import input_batches, split_indices
from pipeline.scores import ALL, score_rows, scores_table
from pipeline.tasks import segmentation_plots as figures
from pipeline.tasks.base import ImportanceTarget, Loss, Task
from pipeline.variables import DataError

log = logging.getLogger(__name__)

MISSING = -1  # a pixel without a label
CLASS_METRICS = ("precision", "recall", "f1", "iou", "dice", "roc_auc", "pr_auc")
BATCH = 32


def build_samples(fields: xr.Dataset, exp: Mapping[str, Any]) -> xr.Dataset:
    """Harmonised maps -> one sample per (time step, expert copy) with labels.

    Out of core: the maps stay dask arrays (the regridded store is chunked over time).
    One pass reads them for what must be known before writing (the land mask, which
    (time, expert) pairs are labelled, label checks and class counts) and the normalised
    inputs and labels are returned lazy, for prepare to write chunk by chunk. Only the
    train-mean and std are computed a variable at a time (normalisation_stats).
    """
    task, splits = exp["task"], exp["splits"]
    inputs, label_name, classes = list(task["inputs"]), task["labels"], list(task["classes"])
    missing = [n for n in [*inputs, label_name] if n not in fields.data_vars]
    if missing:
        raise DataError(f"regridded data lacks {missing} (has {sorted(fields.data_vars)})")
    fields = fields[[*inputs, label_name]]
    split = split_labels(fields["time"], splits)
    fields = fields.isel(time=np.flatnonzero(split != ""))
    split = split[split != ""]
    if not (split == "train").any():
        raise DataError(f"no time steps fall in the train years {splits['train']}")
    stats = normalisation_stats(fields, split == "train", inputs)
    stacked = xr.concat(
        [(fields[n] - stats[n]["mean"]) / stats[n]["std"] for n in inputs], dim="channel"
    ).transpose("time", "channel", "lat", "lon")
    x = stacked.fillna(0.0).astype(np.float32).data

    labels = fields[label_name]
    if "expert" not in labels.dims:
        labels = labels.expand_dims("expert", axis=1)
    labels = labels.transpose("time", "expert", "lat", "lon")
    values = labels.where(np.isfinite(labels), MISSING).astype(np.int64).data
    bad = (values < MISSING) | (values >= len(classes))
    train_steps = np.flatnonzero(split == "train")
    mask, any_bad, labelled, train_counts = dask.compute(  # one pass over the maps
        stacked.notnull().all("time").data,
        bad.any(),
        (values != MISSING).any(axis=(2, 3)),
        # pixels per class in the train years (an unlabelled copy is all MISSING: none)
        [(values[train_steps] == c).sum() for c in range(len(classes))],
    )
    if any_bad:
        first = np.asarray(dask.compute(values[bad])[0]).ravel()[0]
        raise DataError(
            f"variable '{label_name}' holds the value {int(first)}; task.classes "
            f"names {len(classes)} classes (0..{len(classes) - 1}, and -1 for missing)"
        )
    t, e = np.nonzero(labelled)
    y = values.vindex[t, e] if isinstance(values, dask.array.Array) else values[t, e]
    counts = np.asarray(train_counts, dtype=np.int64)
    absent = [c for c, n in zip(classes, counts, strict=True) if n == 0]
    if absent:
        raise DataError(
            f"variable '{label_name}': class {absent[0]} has no pixel in the train years"
        )
    out = xr.Dataset(
        {
            "x": (("sample", "history", "channel", "lat", "lon"), x[t][:, None]),
            "y": (("sample", "lat", "lon"), y.astype(np.int16)),
            "split": (("sample",), split[t].astype("<U5")),
            "mask": (("channel", "lat", "lon"), mask),
        },
        coords={
            "sample": np.arange(len(t)),
            "time": ("sample", fields["time"].values[t]),
            "expert": ("sample", e),
            "history": ("history", [0], {"units": "time steps relative to the sample"}),
            "channel": ("channel", inputs),
            "class": ("class", classes),
            "lat": fields["lat"],
            "lon": fields["lon"],
        },
    )
    out["x"].attrs = {"long_name": "inputs normalised by train mean and std; missing filled with 0"}
    out["y"].attrs = {"long_name": f"{label_name}: class index per pixel, -1 missing"}
    out.attrs = {
        "labels": label_name,
        "classes": classes,
        "class_pixels": counts.tolist(),
        "class_weights": class_weights_from_frequencies(counts).tolist(),
        "splits": {k: list(v) for k, v in splits.items()},
        "stats": stats,
        "units": {n: str(fields[n].attrs.get("units", "")) for n in inputs},
    }
    return out


#: The train maps the threshold detector is fitted on, at most: its grid search holds
#: several float copies of them. Every sample up to 0.5 GB of its channels (a 5-degree
#: study's thousands); of a 0.25-degree study's 720 x 1440 maps, 32, evenly spaced.
DETECTOR_FIT_BYTES = 2**29


def detector_train_samples(prepared: xr.Dataset) -> np.ndarray:
    """The train samples the threshold detector is fitted on: all of them, or evenly
    spaced ones within DETECTOR_FIT_BYTES of the detector's channels."""
    train = np.flatnonzero(prepared["split"].values == "train")
    per_sample = len(DETECTOR_CHANNELS) * prepared.sizes["lat"] * prepared.sizes["lon"] * 4
    keep = max(1, DETECTOR_FIT_BYTES // per_sample)
    if len(train) <= keep:
        return train
    return train[np.linspace(0, len(train) - 1, keep).round().astype(int)]


def channel_maps(
    prepared: xr.Dataset, index: np.ndarray, names: Sequence[str]
) -> dict[str, np.ndarray]:
    """Input channels ``names`` of the samples ``index``, (N, lat, lon), back in their
    units; only those are read from the store."""
    stats = prepared.attrs["stats"]
    x = prepared["x"].isel(sample=index, history=0).sel(channel=list(names)).values
    return {n: x[:, i] * stats[n]["std"] + stats[n]["mean"] for i, n in enumerate(names)}


def class_scores(probabilities: np.ndarray, labels: np.ndarray, classes: Sequence[str]) -> dict:
    """Per class and summary scores of class probabilities (N, C, lat, lon) against labels."""
    cm = m.confusion_matrix(labels, probabilities.argmax(axis=1), len(classes))
    scores = m.classification_scores(cm)
    auc = m.one_vs_rest_auc(labels, np.moveaxis(probabilities, 1, -1))
    rows = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
    per_class = {}
    for k, name in enumerate(classes):
        per_class[name] = {
            "precision": scores["precision"][k],
            "recall": scores["recall"][k],
            "f1": scores["f1"][k],
            "iou": scores["iou"][k],
            "dice": scores["dice"][k],
            "roc_auc": auc["roc_auc"][k],
            "pr_auc": auc["pr_auc"][k],
            **{f"predicted_{other}": float(rows[k, j]) for j, other in enumerate(classes)},
        }
    events = classes[1:]
    summary = {k: float(np.mean([per_class[c][k] for c in events])) for k in CLASS_METRICS}
    summary |= {
        "accuracy": scores["accuracy"],
        "mean_iou_all_classes": scores["mean_iou"],
        "macro_f1_all_classes": scores["macro_f1"],
    }
    return {"per_class": per_class, "all": summary, "confusion": cm}


class SegmentationTask(Task):
    name = "segmentation"
    dim = "class"
    headline = "iou"
    importance_label = "Δ(1 − soft IoU)"

    def build_samples(
        self, fields: xr.Dataset, exp: Mapping[str, Any], truth: xr.Dataset | None
    ) -> xr.Dataset:
        return build_samples(fields, exp)

    def model(self, spec: Mapping[str, Any], prepared: xr.Dataset) -> torch.nn.Module:
        return build_model(spec, data_shapes(prepared, prepared.sizes["class"]))

    def target(self, spec: Mapping[str, Any]) -> str:
        return "y"

    def loss(self, name: str, prepared: xr.Dataset) -> Loss:
        """Soft Jaccard by default (``auto``); cross-entropy weighted by inverse train class
        frequency; Dice and Jaccard as unweighted means over classes."""
        if name == "cross_entropy":
            weights = torch.as_tensor(prepared.attrs["class_weights"], dtype=torch.float32)
            return lambda logits, labels: weighted_cross_entropy(logits, labels, weights)
        return soft_dice_loss if name == "dice" else soft_jaccard_loss

    def predict(self, model: torch.nn.Module, prepared: xr.Dataset) -> dict[str, np.ndarray]:
        """Softmax class probabilities (samples, classes, lat, lon)."""
        with torch.no_grad():
            probs = [
                torch.softmax(model(x).float(), dim=1).numpy()
                for x in input_batches(prepared, BATCH)
            ]
        return {"forecast": np.concatenate(probs)}

    def baselines(self, prepared: xr.Dataset) -> dict[str, np.ndarray]:
        """All-background, and the threshold detector where its channels and three
        classes (background, TC, AR) are there."""
        test = split_indices(prepared)
        n_classes = prepared.sizes["class"]
        background = np.zeros((len(test), n_classes, prepared.sizes["lat"], prepared.sizes["lon"]))
        background[:, 0] = 1.0
        out = {"all-background": background.astype(np.float32)}
        channels = [str(c) for c in prepared["channel"].values]
        if n_classes != 3 or not set(DETECTOR_CHANNELS) <= set(channels):
            log.info("no threshold baseline: it needs channels %s and 3 classes", DETECTOR_CHANNELS)
            return out
        train = detector_train_samples(prepared)
        lat, lon = prepared["lat"].values, prepared["lon"].values
        labels = np.maximum(prepared["y"].values[train], 0)  # missing pixels as background
        detector = fit_threshold_detector(
            channel_maps(prepared, train, DETECTOR_CHANNELS), labels, lat, lon
        )
        out["threshold"] = detector.probabilities(channel_maps(prepared, test, DETECTOR_CHANNELS))
        return out

    def score(
        self,
        forecasts: Mapping[str, np.ndarray],
        roles: Mapping[str, str],
        references: Mapping[str, np.ndarray],
        prepared: xr.Dataset,
    ) -> pd.DataFrame:
        labels = prepared["y"].values[split_indices(prepared)]
        classes = [str(c) for c in prepared["class"].values]
        rows = []
        for name, probabilities in forecasts.items():
            scores = class_scores(probabilities, labels, classes)
            for cls, values in scores["per_class"].items():
                rows += score_rows(name, roles[name], self.dim, cls, values)
            rows += score_rows(name, roles[name], self.dim, ALL, scores["all"])
        return scores_table(rows)

    def predictions(
        self,
        prepared: xr.Dataset,
        outputs: Mapping[str, np.ndarray],
        baselines: Mapping[str, np.ndarray],
    ) -> xr.Dataset:
        """The network's class probabilities and every forecast's classes, test split."""
        test = prepared.isel(sample=split_indices(prepared))
        space = ("sample", "lat", "lon")
        data = {
            "probability": (("sample", "class", "lat", "lon"), outputs["forecast"]),
            "observed": (space, test["y"].values.astype(np.int8)),
            "prediction": (space, outputs["forecast"].argmax(axis=1).astype(np.int8)),
        }
        for name, probabilities in baselines.items():
            data[name] = (space, probabilities.argmax(axis=1).astype(np.int8))
        ds = xr.Dataset(
            data,
            coords={
                "sample": test["sample"].values,
                "time": ("sample", test["time"].values),
                "expert": ("sample", test["expert"].values),
                "class": test["class"].values,
                "lat": test["lat"].values,
                "lon": test["lon"].values,
            },
        )
        ds.attrs = {
            "description": "test-set class probabilities of the network; classes of the "
            "network and the baselines (argmax); -1 missing",
            "classes": " ".join(map(str, test["class"].values)),
        }
        return ds

    def forecast_from(self, predictions: xr.Dataset) -> np.ndarray:
        return predictions["probability"].values

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
        test = split_indices(prepared)
        labels = prepared["y"].values[test]
        classes = [str(c) for c in prepared["class"].values]
        probabilities = outputs["forecast"]
        confusion = class_scores(probabilities, labels, classes)["confusion"]
        return [
            figures.example_maps(
                prepared, test, probabilities, plot_dir / "example_maps.png", title, name
            ),
            figures.curves(labels, probabilities, classes, plot_dir / "roc_pr.png", title, name),
            figures.confusion(confusion, classes, plot_dir / "confusion_matrix.png", title, name),
            figures.iou_bars(scores, classes, plot_dir / "iou_per_class.png", title),
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
        from pipeline import plots

        classes = [str(c) for c in prepared["class"].values]
        best = figures.best_run(table, run_dirs)
        paths = [
            figures.iou_bars(table, classes, out_dir / "iou_per_class.png", title, verdicts),
            figures.confusion_grid(table, classes, out_dir / "confusion_matrices.png", title),
            plots.importance_heatmap(
                importance,
                out_dir / "importance_heatmap.png",
                title,
                self.dim,
                self.importance_label,
            ),
        ]
        if best is not None:
            name = f"{best.parent.name} seed {best.name.removeprefix('seed')}"
            with xr.open_dataset(best / "predictions.nc") as ds:
                probabilities, labels = ds["probability"].values, ds["observed"].values
            test = split_indices(prepared)
            paths += [
                figures.example_maps(
                    prepared, test, probabilities, out_dir / "example_maps.png", title, name
                ),
                figures.curves(labels, probabilities, classes, out_dir / "roc_pr.png", title, name),
            ]
        return paths

    def importance_targets(
        self, model: torch.nn.Module, prepared: xr.Dataset, settings: Mapping[str, Any]
    ) -> Iterator[ImportanceTarget]:
        """Every class at once: per sample and class, 1 - the soft IoU of the class."""
        classes = [str(c) for c in prepared["class"].values]
        n = len(classes)

        def loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
            return n * soft_jaccard_loss(logits, labels, per="channel")

        yield ImportanceTarget(classes, model, prepared["y"].values[split_indices(prepared)], loss)


TASK = SegmentationTask()
