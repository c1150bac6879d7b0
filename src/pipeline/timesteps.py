"""The time step of a record, read from its time axis: hourly to annual.

A series study counts ``history`` and ``leads`` in its data's own step, and says which
step that is in its files and figures; a gridded forecast needs monthly maps. Neither
may guess: weekly data are never called months. The step is the median spacing of the
time axis (a few gaps do not change it), matched to calendar steps with the tolerance
months and years need (28 to 31 days, 365 or 366).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import xarray as xr

#: Calendar steps by their spacing in days: (name, shortest, longest, plural unit).
CALENDAR_STEPS = (
    ("daily", 0.99, 1.01, "days"),
    ("5-day", 4.99, 5.01, "pentads"),
    ("weekly", 6.99, 7.01, "weeks"),
    ("monthly", 27.9, 31.1, "months"),
    ("annual", 364.9, 366.1, "years"),
)
#: Sub-daily steps: whole hours that divide a day.
HOURS = (1, 2, 3, 4, 6, 8, 12)


def _hours_name(hours: int) -> str:
    return "hourly" if hours == 1 else f"{hours}-hourly"


def step_of_days(days: float) -> str | None:
    """The name of a spacing of ``days`` (e.g. 30.4 -> "monthly"), or None for a spacing
    no calendar step has."""
    for name, lo, hi, _ in CALENDAR_STEPS:
        if lo <= days <= hi:
            return name
    for hours in HOURS:
        if abs(days * 24 - hours) < 0.01:
            return _hours_name(hours)
    return None


def describe_days(days: float) -> str:
    """A spacing in words, for messages: its step's name, or "{days:g}-day"."""
    return step_of_days(days) or f"{days:g}-day"


def median_spacing(times: pd.Index | np.ndarray | xr.DataArray) -> float:
    """The median spacing in days of a time axis (datetime64 or cftime)."""
    values = np.asarray(times)
    index = xr.DataArray(values, dims="time", coords={"time": values}).indexes["time"]
    days = np.asarray((index - index[0]) / pd.Timedelta(days=1), dtype=float)
    return float(np.median(np.diff(days))) if len(days) > 1 else float("nan")


def infer_step(times: pd.Index | np.ndarray | xr.DataArray) -> str | None:
    """The step of a time axis ("daily", "monthly", ...), or None when its spacing is
    no calendar step (or there are fewer than two steps)."""
    spacing = median_spacing(times)
    return None if np.isnan(spacing) else step_of_days(spacing)


def step_unit(step: str) -> str:
    """What ``history`` and ``leads`` count in a record of this step ("days", "months")."""
    for name, _, _, unit in CALENDAR_STEPS:
        if name == step:
            return unit
    for hours in HOURS:
        if _hours_name(hours) == step:
            return "hours" if hours == 1 else f"{hours}-hour steps"
    raise ValueError(f"unknown time step {step!r}")
