"""The time step is read from the data: weekly data are never called months."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from pipeline.timesteps import describe_days, infer_step, step_unit

CASES = [
    (pd.date_range("2000-01-01", periods=100, freq="h"), "hourly", "hours"),
    (pd.date_range("2000-01-01", periods=100, freq="3h"), "3-hourly", "3-hour steps"),
    (pd.date_range("2000-01-01", periods=100, freq="D"), "daily", "days"),
    (pd.date_range("2000-01-01", periods=100, freq="W-SUN"), "weekly", "weeks"),
    (pd.date_range("2000-01-01", periods=100, freq="MS"), "monthly", "months"),
    (pd.date_range("2000-01-31", periods=100, freq="ME"), "monthly", "months"),
    (pd.date_range("1900-07-01", periods=100, freq="YS-JUL"), "annual", "years"),
]


@pytest.mark.parametrize(("times", "step", "unit"), CASES, ids=[c[1] + c[0].freqstr for c in CASES])
def test_the_step_is_read_from_the_time_axis(times: pd.DatetimeIndex, step: str, unit: str) -> None:
    assert infer_step(times) == step
    assert step_unit(step) == unit


def test_gaps_and_cftime_calendars_keep_the_step() -> None:
    daily = pd.date_range("2000-01-01", periods=60, freq="D").delete([5, 6, 7, 30])
    assert infer_step(daily) == "daily"
    noleap = xr.date_range("2001-01-01", periods=48, freq="MS", calendar="noleap", use_cftime=True)
    assert infer_step(noleap) == "monthly"
    assert infer_step(xr.DataArray(np.asarray(daily), dims="time")) == "daily"


def test_a_spacing_no_calendar_has_is_named_in_days() -> None:
    assert infer_step(pd.date_range("2000-01-01", periods=20, freq="10D")) is None
    assert describe_days(10.0) == "10-day"
    assert describe_days(7.0) == "weekly" and describe_days(1 / 24) == "hourly"
    assert infer_step(pd.DatetimeIndex(["2000-01-01"])) is None
    with pytest.raises(ValueError, match="unknown time step"):
        step_unit("fortnightly")
