"""Figures of the segmentation task, built from pipeline.plots' primitives: example
maps with the true and predicted masks, per-class ROC and PR curves, normalised
confusion matrices and IoU per class for every forecast."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import xarray as xr
from matplotlib.colors import BoundaryNorm, ListedColormap

from pipeline import metrics as m
from pipeline import plots
from pipeline.scores import ALL

MASK_COLORS = ("white", "tab:red", "tab:blue", "tab:green", "tab:orange", "tab:purple")
CHANNEL_CMAPS = {"TMQ": "YlGnBu", "PSL": "viridis"}
CURVE_POINTS = 400  # points drawn per curve: millions of pixels give millions of thresholds


def _mask_style(n_classes: int) -> tuple[ListedColormap, BoundaryNorm]:
    cmap = ListedColormap(MASK_COLORS[:n_classes])
    return cmap, BoundaryNorm(np.arange(-0.5, n_classes), n_classes)


def _show_samples(labels: np.ndarray, count: int = 3) -> list[int]:
    """Test samples to draw: the ones with the most event pixels, one per class first."""
    events = (labels > 0).sum(axis=(1, 2))
    chosen: list[int] = []
    for k in range(1, int(labels.max(initial=0)) + 1):
        has = (labels == k).sum(axis=(1, 2))
        if has.any():
            chosen.append(int(np.argmax(has)))
    for i in np.argsort(-events, kind="stable"):
        if len(set(chosen)) >= count:
            break
        chosen.append(int(i))
    return list(dict.fromkeys(chosen))[:count]


def example_maps(
    prepared: xr.Dataset,
    test: np.ndarray,
    probabilities: np.ndarray,
    path: Path,
    title: str,
    model: str,
) -> Path:
    """A few test times: each input channel in its units, then the true and the
    predicted masks, on degree axes."""
    classes = [str(c) for c in prepared["class"].values]
    labels = prepared["y"].values[test]
    predicted = probabilities.argmax(axis=1)
    rows = _show_samples(labels)
    stats = prepared.attrs["stats"]
    channels = [str(c) for c in prepared["channel"].values]
    ncols = len(channels) + 2
    lat, lon = prepared["lat"], prepared["lon"]
    aspect = float(np.ptp(lat.values) / max(np.ptp(lon.values), 1e-9))
    fig, axes = plt.subplots(
        len(rows),
        ncols,
        figsize=(3.2 * ncols, (3.2 * aspect + 0.9) * len(rows) + 0.6),
        squeeze=False,
        layout="constrained",
    )
    cmap, norm = _mask_style(len(classes))
    for r, i in enumerate(rows):
        when = np.datetime_as_string(np.datetime64(str(prepared["time"].values[test[i]])), unit="h")
        for c, name in enumerate(channels):
            values = prepared["x"][test[i], 0, c].values * stats[name]["std"] + stats[name]["mean"]
            da = xr.DataArray(values, coords={"lat": lat, "lon": lon}, dims=("lat", "lon"))
            lo, hi = np.percentile(values, [1, 99])
            mesh = plots.draw_map(
                axes[r, c], da, lo, hi, f"{name}, {when}", CHANNEL_CMAPS.get(name, "RdBu_r")
            )
            fig.colorbar(mesh, ax=axes[r, c], shrink=0.7, label=prepared.attrs["units"][name])
        for c, (mask, what) in enumerate(
            ((labels[i], "true"), (predicted[i], f"predicted ({model})"))
        ):
            da = xr.DataArray(mask, coords={"lat": lat, "lon": lon}, dims=("lat", "lon"))
            ax = axes[r, len(channels) + c]
            plots.draw_map(ax, da, 0, 0, f"{what} classes", cmap, norm)
    handles = [plt.Rectangle((0, 0), 1, 1, color=MASK_COLORS[k]) for k in range(1, len(classes))]
    fig.legend(handles, classes[1:], loc="lower center", ncol=len(classes), fontsize=8)
    fig.suptitle(plots.titled(title, "inputs, true and predicted classes (test period)"))
    return plots.save(fig, path)


def _thin(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    keep = np.unique(np.linspace(0, len(x) - 1, CURVE_POINTS).astype(int))
    return x[keep], y[keep]


def curves(
    labels: np.ndarray,
    probabilities: np.ndarray,
    classes: Sequence[str],
    path: Path,
    title: str,
    model: str,
) -> Path:
    """One-vs-rest ROC and precision-recall curves per class, over every test pixel."""
    fig, (roc, pr) = plt.subplots(1, 2, figsize=(9.5, 4.2), layout="constrained")
    valid = labels >= 0
    for k, name in enumerate(classes):
        truth = labels[valid] == k
        scores = probabilities[:, k][valid]
        fpr, tpr = m.roc_curve(truth, scores)
        color = MASK_COLORS[k] if k else "grey"
        roc.plot(
            *_thin(fpr, tpr), color=color, label=f"{name} (AUC {m.roc_auc(truth, scores):.3f})"
        )
        precision, recall = m.pr_curve(truth, scores)
        pr.plot(
            *_thin(recall, precision),
            color=color,
            label=f"{name} (AP {m.pr_auc(truth, scores):.3f})",
        )
        pr.axhline(truth.mean(), color=color, lw=0.6, ls=":")
    roc.plot([0, 1], [0, 1], color="grey", lw=0.8, ls="--", label="no skill")
    roc.set(
        xlabel="false positive rate (unitless)", ylabel="true positive rate (unitless)", title="ROC"
    )
    pr.set(
        xlabel="recall (unitless)",
        ylabel="precision (unitless)",
        title="precision-recall (dotted: class frequency)",
    )
    for ax in (roc, pr):
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    fig.suptitle(plots.titled(title, f"{model}, one class against the rest, every test pixel"))
    return plots.save(fig, path)


def _confusion_axes(ax: plt.Axes, fractions: np.ndarray, classes: Sequence[str], title: str):
    image = ax.imshow(fractions, cmap="Blues", vmin=0, vmax=1)
    for (i, j), value in np.ndenumerate(fractions):
        ax.text(
            j,
            i,
            f"{value:.2f}",
            ha="center",
            va="center",
            fontsize=8,
            color="white" if value > 0.6 else "black",
        )
    ax.set(xticks=range(len(classes)), yticks=range(len(classes)), title=title)
    ax.set_xticklabels(classes, rotation=30, ha="right")
    ax.set_yticklabels(classes)
    return image


def confusion(cm: np.ndarray, classes: Sequence[str], path: Path, title: str, model: str) -> Path:
    """The confusion matrix normalised by the true class (rows: recall per class)."""
    fractions = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(4.8, 4.2), layout="constrained")
    image = _confusion_axes(ax, fractions, classes, plots.titled(title, model))
    ax.set(xlabel="predicted class", ylabel="true class")
    fig.colorbar(image, ax=ax, shrink=0.8, label="fraction of the true class's pixels")
    return plots.save(fig, path)


def _value_column(table: pd.DataFrame) -> str:
    return "mean" if "mean" in table else "value"


def confusion_grid(table: pd.DataFrame, classes: Sequence[str], path: Path, title: str) -> Path:
    """Each forecast's normalised confusion matrix (mean over seeds), side by side."""
    value = _value_column(table)
    names = list(dict.fromkeys(table.loc[table["metric"] == f"predicted_{classes[0]}", "forecast"]))
    fig, axes = plt.subplots(
        1, len(names), figsize=(3.4 * len(names) + 1, 3.8), squeeze=False, layout="constrained"
    )
    image = None
    for ax, name in zip(axes[0], names, strict=True):
        part = table[table["forecast"] == name].set_index(["group", "metric"])[value]
        fractions = np.array(
            [[part.get((t, f"predicted_{p}"), np.nan) for p in classes] for t in classes]
        )
        image = _confusion_axes(ax, fractions, classes, name)
    axes[0, 0].set_ylabel("true class")
    fig.colorbar(
        image, ax=axes[0].tolist(), shrink=0.8, label="fraction of the true class's pixels"
    )
    fig.suptitle(
        plots.titled(title, "confusion matrices, normalised by the true class (test period)")
    )
    return plots.save(fig, path)


def iou_bars(
    table: pd.DataFrame,
    classes: Sequence[str],
    path: Path,
    title: str,
    verdicts: Sequence[str] = (),
) -> Path:
    """IoU per class (and the mean over event classes) of every network, seed ensemble
    and baseline; networks as mean ± std over seeds."""
    value = _value_column(table)
    iou = table[table["metric"] == "iou"]
    names = list(dict.fromkeys(iou["forecast"]))
    styles = plots.forecast_styles(names)
    groups = [*classes, ALL]
    width = 0.8 / len(names)
    fig, ax = plt.subplots(figsize=(1.6 * len(groups) + 3, 4.2 + 0.2 * len(verdicts)))
    for k, name in enumerate(names):
        part = iou[iou["forecast"] == name].set_index("group").reindex(groups)
        spread = part["std"].fillna(0).to_numpy() if "std" in part else None
        ax.bar(
            np.arange(len(groups)) + (k - (len(names) - 1) / 2) * width,
            part[value].to_numpy(),
            width,
            yerr=spread,
            capsize=2,
            color=styles[name].color,
            hatch="//" if name.endswith(plots.ENSEMBLE_SUFFIX) else None,
            alpha=0.5 if part["role"].iloc[0] == "baseline" else 1.0,
            label=name,
        )
    ax.set_xticks(range(len(groups)), [*classes, "mean over events"])
    ax.set(
        ylim=(0, 1),
        ylabel="IoU (unitless), test period",
        title=plots.titled(title, "IoU per class"),
    )
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    if verdicts:
        fig.text(0.01, 0.0, "\n".join(verdicts), fontsize=7.5, va="top", family="monospace")
    return plots.save(fig, path)


def best_run(table: pd.DataFrame, run_dirs: Sequence[Path]) -> Path | None:
    """The first seed's folder of the network with the best mean IoU over event classes."""
    iou = table[(table["metric"] == "iou") & (table["group"] == ALL) & (table["role"] == "model")]
    if iou.empty:
        return None
    best = iou.loc[iou["mean"].idxmax(), "forecast"]
    runs = [d for d in run_dirs if d.parent.name == best and (d / "predictions.nc").exists()]
    return runs[0] if runs else None
