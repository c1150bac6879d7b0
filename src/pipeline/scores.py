"""The long-form score table every task writes and every shared stage reads.

One row per (forecast, role, dim, group, metric, value): ``(cnn, model, lead, 6, acc,
0.77)`` or ``(unet, model, class, AR, iou, 0.81)``. ``group == "all"`` rows summarise
over the groups. Summary, tracking and ``sync`` work on it without knowing the task
(WeatherBench 2 stacks metric x region the same way, Rasp et al. 2024). Torch-free:
the tracking module, which Snakemake imports, uses it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from pipeline.io import write_text

SCORE_COLUMNS = ["forecast", "role", "dim", "group", "metric", "value"]
#: The run's network, a seed-ensemble mean, a baseline, a skill ceiling (the oracle).
ROLES = ("model", "ensemble", "baseline", "ceiling")
NETWORK_ROLES = ("model", "ensemble")
ALL = "all"  # the group of rows that summarise every group


def score_rows(
    forecast: str, role: str, dim: str, group: int | str, scores: Mapping[str, float]
) -> list[dict[str, Any]]:
    """Long-form rows of one forecast's scores for one group."""
    return [
        {
            "forecast": forecast,
            "role": role,
            "dim": dim,
            "group": str(group),
            "metric": metric,
            "value": value,
        }
        for metric, value in scores.items()
    ]


def scores_table(rows: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    return pd.DataFrame(list(rows), columns=SCORE_COLUMNS)


def group_order(group: str) -> tuple[int, float]:
    """Sort key of groups: numbers numerically, then names (a stable sort keeps them in
    the task's order, e.g. its classes), then ``all``."""
    try:
        return (0, float(group))
    except ValueError:
        return (2 if group == ALL else 1, 0.0)


def write_scores(table: pd.DataFrame, path: str | Path) -> None:
    """metrics.csv, deterministic: the long-form columns, values to 12 significant digits,
    NaN (e.g. the ACC of a constant forecast) as an empty field."""
    write_text(table[SCORE_COLUMNS].to_csv(index=False, float_format="%.12g"), path)


def read_scores(path: str | Path) -> pd.DataFrame:
    """A metrics.csv back, groups as text (lead ``6`` and class ``AR`` alike)."""
    return pd.read_csv(path, dtype={"group": str})
