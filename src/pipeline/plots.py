"""Matplotlib figures. Each function takes data, writes one PNG atomically, returns its path."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from pipeline.io import atomic_path


def _save(fig: plt.Figure, path: str | Path) -> Path:
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, bbox_inches="tight", format=path.suffix.lstrip(".") or "png")
    plt.close(fig)
    return path


def overfitting_epochs(
    history: pd.DataFrame, window: int = 3, tolerance: float = 0.02
) -> list[int]:
    """Epochs where the validation loss sits more than ``tolerance`` (relative) above its best
    so far while the training loss is still falling over the last ``window`` epochs."""
    val, train = history["val_loss"].to_numpy(), history["train_loss"].to_numpy()
    flagged = []
    for i in range(window, len(history)):
        if val[i] > (1 + tolerance) * val[:i].min() and train[i] < train[i - window]:
            flagged.append(int(history["epoch"].iloc[i]))
    return flagged


def loss_curves(history: pd.DataFrame, path: str | Path, title: str = "") -> Path:
    """Training and validation loss per epoch; the best epoch and over-fitting marked."""
    fig, ax = plt.subplots(figsize=(6, 3.6))
    ax.plot(history["epoch"], history["train_loss"], label="train", color="tab:blue")
    ax.plot(history["epoch"], history["val_loss"], label="validation", color="tab:orange")
    if len(history):
        best = history.loc[history["val_loss"].idxmin()]
        ax.axvline(best["epoch"], color="grey", ls=":", label=f"best epoch {int(best['epoch'])}")
    flagged = overfitting_epochs(history)
    if flagged:
        ax.axvspan(
            min(flagged) - 0.5,
            max(flagged) + 0.5,
            color="tab:red",
            alpha=0.12,
            label="over-fitting (val ↑, train ↓)",
        )
    ax.set(xlabel="epoch", ylabel="loss (MSE)", title=title or "Loss curves")
    ax.set_yscale("log" if np.all(history[["train_loss", "val_loss"]].to_numpy() > 0) else "linear")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return _save(fig, path)


FORECAST_STYLE = {
    "model": {"color": "tab:blue", "lw": 2.2},
    "persistence": {"color": "tab:grey", "ls": "--"},
    "climatology": {"color": "black", "ls": ":"},
    "linear": {"color": "tab:green", "ls": "-."},
    "oracle": {"color": "tab:red", "lw": 1.5},
}


def skill_vs_lead(metrics: dict, path: str | Path, title: str = "") -> Path:
    """ACC and RMSE against lead time, for the model, the baselines and the oracle."""
    leads = metrics["leads"]
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    names = [n for n in FORECAST_STYLE if n in metrics["per_lead"][str(leads[0])]]
    for ax, score, label in ((axes[0], "acc", "ACC"), (axes[1], "rmse", "RMSE (degC)")):
        for name in names:
            values = [metrics["per_lead"][str(lead)][name][score] for lead in leads]
            if all(v is None or not np.isfinite(v) for v in values):
                continue
            ax.plot(leads, values, marker="o", label=name, **FORECAST_STYLE[name])
        ax.set(xlabel="lead (months)", ylabel=label)
        ax.grid(alpha=0.3)
    axes[0].axhline(0.5, color="grey", lw=0.6)
    axes[1].legend(fontsize=8)  # RMSE shows every forecast (climatology has no ACC)
    fig.suptitle(title or "Skill against lead time")
    return _save(fig, path)


def index_timeseries(
    time: np.ndarray,
    observed: np.ndarray,
    forecasts: dict[str, np.ndarray],
    leads: list[int],
    show: list[int],
    path: str | Path,
    target: str = "Niño3.4",
) -> Path:
    """Predicted vs observed index at a few leads (plotted at the valid time)."""
    fig, axes = plt.subplots(
        len(show), 1, figsize=(10, 2.6 * len(show)), sharex=True, squeeze=False
    )
    for ax, lead in zip(axes[:, 0], show, strict=True):
        i = leads.index(lead)
        valid = np.asarray(time, dtype="datetime64[M]") + lead
        ax.plot(valid, observed[:, i], color="black", lw=1.5, label="observed")
        for name, values in forecasts.items():
            style = {k: v for k, v in FORECAST_STYLE.get(name, {}).items() if k != "lw"}
            ax.plot(valid, values[:, i], lw=1.0, label=name, **style)
        ax.axhspan(-0.5, 0.5, color="grey", alpha=0.08)
        ax.set(ylabel=f"{target} (degC)", title=f"lead {lead} months")
        ax.grid(alpha=0.3)
    axes[0, 0].legend(fontsize=8, ncol=len(forecasts) + 1)
    return _save(fig, path)


def scatter(
    observed: np.ndarray, predicted: np.ndarray, leads: list[int], path: str | Path
) -> Path:
    """Predicted against observed, one panel per lead, with the 1:1 line."""
    fig, axes = plt.subplots(1, len(leads), figsize=(3 * len(leads), 3.1), squeeze=False)
    lim = float(np.nanmax(np.abs([observed, predicted]))) * 1.05
    for ax, i in zip(axes[0], range(len(leads)), strict=True):
        ax.scatter(observed[:, i], predicted[:, i], s=6, alpha=0.6)
        ax.plot([-lim, lim], [-lim, lim], color="grey", lw=0.8)
        r = np.corrcoef(observed[:, i], predicted[:, i])[0, 1]
        ax.set(
            xlim=(-lim, lim),
            ylim=(-lim, lim),
            title=f"lead {leads[i]} (r={r:.2f})",
            xlabel="observed",
        )
        ax.set_aspect("equal")
    axes[0, 0].set_ylabel("predicted")
    return _save(fig, path)


def confusion_matrix(cm: np.ndarray, classes: list[str], path: str | Path, title: str = "") -> Path:
    """Counts with row-normalised shading (recall per true class)."""
    cm = np.asarray(cm)
    norm = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(4.2, 3.8))
    ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    for (i, j), count in np.ndenumerate(cm):
        ax.text(
            j,
            i,
            str(count),
            ha="center",
            va="center",
            color="white" if norm[i, j] > 0.6 else "black",
        )
    ax.set(
        xticks=range(len(classes)),
        yticks=range(len(classes)),
        xticklabels=classes,
        yticklabels=classes,
        xlabel="predicted",
        ylabel="observed",
        title=title or "Confusion matrix",
    )
    return _save(fig, path)


def roc_curves(
    curves: dict[str, tuple[np.ndarray, np.ndarray, float]], path: str | Path, title: str = ""
) -> Path:
    """One ROC curve per class: {name: (fpr, tpr, auc)}."""
    fig, ax = plt.subplots(figsize=(4.2, 4))
    for name, (fpr, tpr, auc) in curves.items():
        ax.plot(fpr, tpr, label=f"{name} (AUC {auc:.2f})")
    ax.plot([0, 1], [0, 1], color="grey", lw=0.8, ls="--")
    ax.set(xlabel="false positive rate", ylabel="true positive rate", title=title or "ROC")
    ax.legend(fontsize=8)
    return _save(fig, path)


def importance_bars(table: pd.DataFrame, path: str | Path, title: str = "") -> Path:
    """Delta-MSE with 95% intervals per group, one panel per (method, lead)."""
    keys = list(table.groupby(["method", "lead"], sort=True).groups)
    fig, axes = plt.subplots(
        1, len(keys), figsize=(2.8 * len(keys), 3.2), squeeze=False, sharey=True
    )
    for ax, (method, lead) in zip(axes[0], keys, strict=True):
        part = table[(table["method"] == method) & (table["lead"] == lead)].sort_values("rank")
        x = np.arange(len(part))
        err = np.array([part["score"] - part["ci_low"], part["ci_high"] - part["score"]])
        ax.bar(
            x,
            part["score"],
            yerr=np.nan_to_num(err),
            capsize=3,
            color="tab:purple" if method == "multi" else "tab:blue",
        )
        ax.set_xticks(x, part["group"], rotation=45, ha="right")
        ax.set_title(f"{method}-pass, lead {lead}", fontsize=9)
        ax.grid(axis="y", alpha=0.3)
    axes[0, 0].set_ylabel("ΔMSE after permutation")
    fig.suptitle(title or "Permutation importance (multi-pass: cumulative, in pass order)")
    return _save(fig, path)


# Model colours avoid those of the references (grey, black, green, red).
MODEL_COLORS = [
    "tab:blue",
    "tab:orange",
    "tab:purple",
    "tab:brown",
    "tab:pink",
    "tab:cyan",
    "tab:olive",
    "navy",
    "gold",
]


def summary_skill(table: pd.DataFrame, path: str | Path, title: str = "") -> Path:
    """ACC against lead for every model (mean ± std over seeds) and the references."""
    acc = table[table["metric"] == "acc"]
    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    models = sorted(acc[acc["is_model"]]["forecast"].unique())
    colors = plt.cm.tab10(np.linspace(0, 1, 10))
    for k, name in enumerate(models):
        part = acc[acc["forecast"] == name].sort_values("lead")
        ax.plot(part["lead"], part["mean"], marker="o", color=colors[k % 10], label=name)
        ax.fill_between(
            part["lead"],
            part["mean"] - part["std"],
            part["mean"] + part["std"],
            color=colors[k % 10],
            alpha=0.15,
        )
    for name in ("persistence", "linear", "oracle"):
        part = acc[acc["forecast"] == name].sort_values("lead")
        if len(part):
            ax.plot(part["lead"], part["mean"], marker=".", label=name, **FORECAST_STYLE[name])
    ax.axhline(0.5, color="grey", lw=0.6)
    ax.set(
        xlabel="lead (months)", ylabel="ACC (test period)", title=title or "Skill against lead time"
    )
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, ncol=2)
    return _save(fig, path)


def importance_heatmap(importance: pd.DataFrame, path: str | Path) -> Path:
    """Single-pass Delta MSE (mean over seeds), variable x lead, one panel per model."""
    single = importance[importance["method"] == "single"]
    variants = sorted(single["variant"].unique())
    fig, axes = plt.subplots(
        1, len(variants), figsize=(2.6 * len(variants) + 1, 2.8), squeeze=False, sharey=True
    )
    grid = single.groupby(["variant", "group", "lead"])["score"].mean()
    vmax = float(np.nanmax(np.abs(grid.to_numpy()))) or 1.0
    image = None
    for ax, variant in zip(axes[0], variants, strict=True):
        frame = grid.loc[variant].unstack("lead")
        image = ax.imshow(frame.to_numpy(), cmap="RdBu_r", vmin=-vmax, vmax=vmax, aspect="auto")
        ax.set_xticks(range(frame.shape[1]), frame.columns)
        ax.set_yticks(range(frame.shape[0]), frame.index)
        ax.set(title=variant, xlabel="lead (months)")
    fig.colorbar(image, ax=axes[0].tolist(), label="ΔMSE (single-pass)")
    return _save(fig, path)


def map_panels(data: dict, path: str | Path) -> Path:
    """A row of lat-lon maps sharing nothing but the projection (plain lat-lon axes)."""
    panels = data["panels"]
    fig, axes = plt.subplots(1, len(panels), figsize=(4.6 * len(panels), 2.6), squeeze=False)
    for ax, (title, da) in zip(axes[0], panels.items(), strict=True):
        vmax = float(np.nanmax(np.abs(da.values))) or 1.0
        mesh = ax.pcolormesh(
            da["lon"], da["lat"], da.values, cmap="RdBu_r", vmin=-vmax, vmax=vmax, shading="auto"
        )
        ax.set_title(title, fontsize=9)
        ax.set_aspect("equal")
        fig.colorbar(mesh, ax=ax, shrink=0.8)
    fig.suptitle(f"Example: initialised {data['time']}", fontsize=10)
    return _save(fig, path)
