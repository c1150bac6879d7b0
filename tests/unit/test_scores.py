"""The long-form score table (metrics.csv): rows, group order, a deterministic round trip."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.scores import (
    ALL,
    SCORE_COLUMNS,
    group_order,
    read_scores,
    score_rows,
    scores_table,
    write_scores,
)


def example_table() -> pd.DataFrame:
    """A lead-grouped forecast, a class-grouped one, and a NaN (a constant forecast's ACC)."""
    rows = [
        *score_rows("cnn", "model", "lead", 6, {"acc": 0.77, "rmse": 1 / 3}),
        *score_rows("cnn", "model", "lead", ALL, {"acc": 0.8, "rmse": 0.3}),
        *score_rows("climatology", "baseline", "lead", 6, {"acc": float("nan"), "rmse": 0.9}),
        *score_rows("unet", "model", "class", "AR", {"iou": 0.81}),
    ]
    return scores_table(rows)


def test_score_rows_are_one_row_per_metric() -> None:
    rows = score_rows("cnn", "model", "lead", 6, {"acc": 0.77, "rmse": 0.5})
    common = {"forecast": "cnn", "role": "model", "dim": "lead", "group": "6"}
    assert rows == [
        {**common, "metric": "acc", "value": 0.77},
        {**common, "metric": "rmse", "value": 0.5},
    ]
    table = scores_table(rows)
    assert list(table.columns) == SCORE_COLUMNS
    assert list(scores_table([]).columns) == SCORE_COLUMNS  # an empty table keeps its columns


def test_groups_sort_numbers_numerically_then_names_in_their_order_then_all() -> None:
    groups = ["all", "TC", "12", "6", "AR", "1", "background"]
    assert sorted(groups, key=group_order) == ["1", "6", "12", "TC", "AR", "background", "all"]


def test_metrics_csv_round_trip(tmp_path: Path) -> None:
    table = example_table()
    write_scores(table, tmp_path / "metrics.csv")
    back = read_scores(tmp_path / "metrics.csv")
    assert list(back.columns) == SCORE_COLUMNS
    assert back["group"].tolist() == ["6", "6", "all", "all", "6", "6", "AR"]  # text, both kinds
    pd.testing.assert_frame_equal(back.drop(columns="value"), table.drop(columns="value"))
    np.testing.assert_allclose(back["value"], table["value"], rtol=1e-12)
    assert back["value"].isna().tolist() == table["value"].isna().tolist()


def test_metrics_csv_is_deterministic_text(tmp_path: Path) -> None:
    table = example_table()
    write_scores(table, tmp_path / "a.csv")
    write_scores(table.copy(), tmp_path / "b.csv")
    text = (tmp_path / "a.csv").read_text()
    assert (tmp_path / "b.csv").read_text() == text
    assert text.splitlines()[0] == ",".join(SCORE_COLUMNS)
    assert "cnn,model,lead,6,rmse,0.333333333333\n" in text  # 12 significant digits
    assert "climatology,baseline,lead,6,acc,\n" in text  # NaN is an empty field


def test_only_the_score_columns_are_written(tmp_path: Path) -> None:
    table = example_table().assign(variant="cnn", seed=0)  # as collect_scores adds them
    write_scores(table, tmp_path / "metrics.csv")
    assert list(read_scores(tmp_path / "metrics.csv").columns) == SCORE_COLUMNS
