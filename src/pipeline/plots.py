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


def overfitting_epochs(history: pd.DataFrame, window: int = 3) -> list[int]:
    """Epochs where, over the last ``window`` epochs, val loss rose while train loss fell."""
    flagged = []
    for i in range(window, len(history)):
        recent = history.iloc[i - window : i + 1]
        if recent["val_loss"].iloc[-1] > recent["val_loss"].iloc[0] and (
            recent["train_loss"].iloc[-1] < recent["train_loss"].iloc[0]
        ):
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
