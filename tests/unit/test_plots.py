"""Figures: the over-fitting flag, and every plot renders a non-empty PNG."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from pipeline import plots


def history(val: list[float], train: list[float]) -> pd.DataFrame:
    return pd.DataFrame(
        {"epoch": range(1, len(val) + 1), "train_loss": train, "val_loss": val, "lr": 1e-3}
    )


def test_overfitting_is_flagged_when_val_rises_while_train_falls() -> None:
    train = [1.0, 0.8, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1]
    val = [1.0, 0.8, 0.7, 0.7, 0.75, 0.8, 0.9, 1.0]
    assert plots.overfitting_epochs(history(val, train)) == [5, 6, 7, 8]


def test_noise_on_a_plateau_is_not_overfitting() -> None:
    train = list(np.linspace(1.0, 0.5, 10))
    val = [1.0, 0.8, 0.6, 0.5, 0.501, 0.499, 0.5005, 0.4995, 0.502, 0.5]
    assert plots.overfitting_epochs(history(val, train)) == []


def test_plots_render(tmp_path: Path) -> None:
    h = history([1.0, 0.8, 0.9, 1.0, 1.2], [1.0, 0.7, 0.5, 0.4, 0.3])
    assert plots.loss_curves(h, tmp_path / "loss.png").stat().st_size > 5000
    cm = np.array([[5, 1, 0], [2, 10, 1], [0, 1, 4]])
    assert plots.confusion_matrix(cm, ["a", "b", "c"], tmp_path / "cm.png").stat().st_size > 5000
    curves = {"a": (np.array([0, 0.5, 1]), np.array([0, 0.8, 1]), 0.65)}
    assert plots.roc_curves(curves, tmp_path / "roc.png").stat().st_size > 5000
    obs = np.random.default_rng(0).standard_normal((50, 2))
    assert plots.scatter(obs, obs * 0.5, [1, 6], tmp_path / "sc.png").stat().st_size > 5000
    time = np.arange("2000-01", "2004-03", dtype="datetime64[M]")
    path = plots.index_timeseries(
        time, obs, {"model": obs * 0.9}, [1, 6], [1, 6], tmp_path / "ts.png"
    )
    assert path.stat().st_size > 5000
