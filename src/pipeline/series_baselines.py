"""Reference forecasts for series tasks: rainfall-runoff across basins, or a single series.

Every baseline is fitted on the train samples only, per entity (each basin its own
model, as a calibrated model would be), and forecasts every given sample as a
(samples, leads) array in the target's physical units. What they read:

- ``climatology``: the entity's train-period mean for the target step's season;
- ``ridge``: ridge regression on lagged inputs (the linear model on lagged forcings of
  Kratzert et al. 2019, HESS 23, 5089, section 3);
- ``ar``, ``persistence``: the target's own past inside the input window, when the
  target is itself an input (Box & Jenkins 1976, *Time Series Analysis*).

A missing input is never filled: a sample whose features are missing is left out of
the fit and forecast as NaN.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import xarray as xr
from sklearn.linear_model import RidgeCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from pipeline.baselines import RIDGE_ALPHAS
from pipeline.timesteps import infer_step, median_spacing

#: Climatologies are smoothed over a circular window of about this many days.
SMOOTH_DAYS = 31
#: The ridge reads each input's last N_LAGS steps and its means over these spans.
N_LAGS = 8
WINDOW_DAYS = (1, 7, 30, 90, 365)
#: AR orders tried, at most (and never past the window).
AR_MAX_ORDER = 30
#: Per-entity fits are small (thousands of rows, tens of columns): BLAS threads buy
#: nothing there and, on cores busy with other jobs, slow them several-fold.
_one_blas_thread = threadpool_limits.wrap(limits=1, user_api="blas")

_MONTH_START = np.cumsum([0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30])


@dataclass(frozen=True)
class SeriesSamples:
    """Which windows a series task forecasts from, as ``samples.Windows`` cuts them.

    Sample i reads entity ``entity[i]``'s ``history`` steps ending at step ``end[i]``
    and forecasts its target at ``end[i] + leads`` (lead 0: the window's last step);
    ``split`` names its split ("train", "val", "test" or "").
    """

    entity: np.ndarray  # (sample,) int
    end: np.ndarray  # (sample,) int
    leads: np.ndarray  # (lead,) int
    history: int
    split: np.ndarray  # (sample,) str

    def __post_init__(self) -> None:
        for name in ("entity", "end", "leads", "split"):
            object.__setattr__(self, name, np.asarray(getattr(self, name)))

    @property
    def train(self) -> np.ndarray:
        return self.split == "train"

    @property
    def target_steps(self) -> np.ndarray:
        """(sample, lead): the step each forecast is for."""
        return self.end[:, None] + self.leads[None, :]

    def check(self, n_time: int) -> None:
        """Every window and target step lies on a record of ``n_time`` steps, and some
        samples are train: a baseline fitted on nothing would be all NaN."""
        if len(self.entity) != len(self.end) or len(self.end) != len(self.split):
            raise ValueError("entity, end and split must have one entry per sample")
        if len(self.end) and (
            np.min(self.end) - self.history + 1 < 0 or self.target_steps.max() >= n_time
        ):
            raise ValueError(f"a window or target step lies outside the {n_time}-step record")
        if not self.train.any():
            raise ValueError("no train samples to fit the baselines on")


def _entity_rows(samples: SeriesSamples) -> list[tuple[int, np.ndarray]]:
    """Each entity's sample rows, for per-entity fits."""
    order = np.argsort(samples.entity, kind="stable")
    ids, starts = np.unique(samples.entity[order], return_index=True)
    return list(zip(ids.tolist(), np.split(order, starts[1:]), strict=True))


# ------------------------------------------------------------------------- climatology


def _season(time: np.ndarray) -> tuple[np.ndarray, int, float]:
    """Each step's season bin, the number of bins and their length in days.

    Day of year for daily and finer steps (Feb 29 joins Feb 28, so every year has
    365 bins), week of year for weekly, month for monthly, one bin for annual data.
    """
    step = infer_step(time)
    if step is None:
        raise ValueError("the time axis has no calendar step (hourly to annual)")
    if step == "annual":
        return np.zeros(len(time), dtype=int), 1, 365.25
    dt = xr.DataArray(np.asarray(time), dims="time").dt
    month, day = dt.month.values, dt.day.values
    if step == "monthly":
        return month - 1, 12, 365.25 / 12
    day_of_year = _MONTH_START[month - 1] + np.where((month == 2) & (day == 29), 28, day) - 1
    if step == "weekly":
        return np.minimum(day_of_year // 7, 51), 52, 7.0
    return day_of_year, 365, 1.0


def _circular_sum(values: np.ndarray, width: int) -> np.ndarray:
    """Sum over a centred circular window of ``width`` (odd) bins along the last axis;
    exact, so that an empty window stays exactly zero."""
    half = width // 2
    return sum(np.roll(values, shift, axis=-1) for shift in range(-half, half + 1))


def climatology(target: np.ndarray, time: np.ndarray, samples: SeriesSamples) -> np.ndarray:
    """The entity's mean target over the train samples' target steps in the same
    season as each forecast step, smoothed over about ``SMOOTH_DAYS``.

    A season no train value falls near takes the entity's train mean; an entity with
    no train value is NaN.
    """
    samples.check(target.shape[1])
    season, n_bins, bin_days = _season(time)
    used = np.zeros(target.shape, dtype=bool)
    train = samples.train
    used[samples.entity[train, None], samples.target_steps[train]] = True
    used &= np.isfinite(target)
    entity, step = np.nonzero(used)
    key = entity * n_bins + season[step]
    size = target.shape[0] * n_bins
    sums = np.bincount(key, weights=target[used], minlength=size).reshape(-1, n_bins)
    counts = np.bincount(key, minlength=size).reshape(-1, n_bins)
    width = round(SMOOTH_DAYS / bin_days) // 2 * 2 + 1
    window_sums, window_counts = _circular_sum(sums, width), _circular_sum(counts, width)
    with np.errstate(invalid="ignore", divide="ignore"):
        overall = sums.sum(1) / counts.sum(1)
        clim = np.where(window_counts > 0, window_sums / window_counts, overall[:, None])
    return clim[samples.entity[:, None], season[samples.target_steps]]


# ----------------------------------------------------------------------- ridge on lags


def lag_windows(time: np.ndarray, history: int, n_lags: int = N_LAGS) -> list[int]:
    """The spans (in steps) the ridge averages each input over: ``WINDOW_DAYS`` in the
    record's step, longer than the lags (whose mean they would repeat) and no longer
    than the window."""
    days = median_spacing(time)
    spans = {round(d / days) for d in WINDOW_DAYS}
    return sorted(s for s in spans if min(n_lags, history) < s <= history)


def lag_features(x: np.ndarray, end: np.ndarray, n_lags: int, windows: list[int]) -> np.ndarray:
    """(samples, features): each input's values at the last ``n_lags`` steps up to
    ``end`` and its means over the last ``windows`` steps, from one entity's (time,
    feature) inputs.

    A lag is NaN where its input is missing; a mean is taken over the observed steps
    and is NaN only when fewer than half are observed, so that one gap does not blank
    a year of samples.
    """
    lags = x[end[:, None] - np.arange(n_lags)]  # (sample, lag, feature)
    observed = np.isfinite(x)
    zero = np.zeros((1, x.shape[1]))
    total = np.concatenate([zero, np.cumsum(np.where(observed, x, 0.0), axis=0)])
    count = np.concatenate([zero, np.cumsum(observed, axis=0)])
    means = []
    for w in windows:
        n = count[end + 1] - count[end + 1 - w]
        with np.errstate(invalid="ignore", divide="ignore"):
            means.append(np.where(n >= w / 2, (total[end + 1] - total[end + 1 - w]) / n, np.nan))
    return np.concatenate([lags.reshape(len(end), -1), *means], axis=1)


@_one_blas_thread
def ridge_on_lags(
    inputs: np.ndarray,
    target: np.ndarray,
    time: np.ndarray,
    samples: SeriesSamples,
    n_lags: int = N_LAGS,
) -> np.ndarray:
    """Per entity and lead, ridge regression of the target at ``end + lead`` on
    ``lag_features`` of the window's inputs, standardised on the train rows; the
    penalty is chosen by efficient leave-one-out on train (as ``baselines.fit_linear``)."""
    samples.check(target.shape[1])
    n_lags = min(n_lags, samples.history)
    windows = lag_windows(time, samples.history, n_lags)
    train, steps = samples.train, samples.target_steps
    out = np.full(steps.shape, np.nan)
    for e, rows in _entity_rows(samples):
        features = lag_features(inputs[e], samples.end[rows], n_lags, windows)
        complete = np.isfinite(features).all(1)
        y = target[e][steps[rows]]
        for j in range(y.shape[1]):
            fit = train[rows] & complete & np.isfinite(y[:, j])
            if fit.sum() < 2:
                continue
            model = make_pipeline(StandardScaler(), RidgeCV(alphas=RIDGE_ALPHAS))
            model.fit(features[fit], y[fit, j])
            out[rows[complete], j] = model.predict(features[complete])
    return out


# ------------------------------------------------------------------ the target's own past


def _ar_fit(lags: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Intercept and coefficients of the AIC-best AR order (Akaike 1974) among 0 (the
    mean) to ``lags.shape[1]``, all fitted on the same rows.

    One QR factorisation serves every order: the first p+1 columns of Q span the
    order-p regressors, so the residual sums of squares are cumulative sums.
    """
    n = len(y)
    design = np.column_stack([np.ones(n), lags])
    q, r = np.linalg.qr(design)
    qty = q.T @ y
    # an order counts only while its regressors are independent (a constant series)
    diag = np.abs(np.diag(r))
    independent = np.cumprod(diag > 1e-10 * diag.max()).astype(bool)
    orders = np.flatnonzero(independent & (np.arange(len(diag)) + 2 <= n))
    # a floor above rounding, so that exact fits tie and the penalty picks the least order
    rss = np.maximum(y @ y - np.cumsum(qty**2)[orders], 1e-12 * (y @ y) or 1.0)
    p = int(orders[np.argmin(n * np.log(rss / n) + 2 * (orders + 1))])
    return np.linalg.solve(r[: p + 1, : p + 1], qty[: p + 1])


@_one_blas_thread
def autoregressive(
    series: np.ndarray, target: np.ndarray, samples: SeriesSamples, max_order: int = AR_MAX_ORDER
) -> np.ndarray:
    """Direct multi-step AR(p) (Box & Jenkins 1976): per entity and lead, least squares
    of the target at ``end + lead`` on ``series`` (the target as an input) at ``end``,
    ``end - 1``, ..., ``end - p + 1`` plus an intercept, p up to ``min(max_order,
    history)`` by AIC on train. NaN where the chosen order's lags are missing."""
    samples.check(target.shape[1])
    max_order = min(max_order, samples.history)
    train, steps = samples.train, samples.target_steps
    out = np.full(steps.shape, np.nan)
    for e, rows in _entity_rows(samples):
        lags = series[e][samples.end[rows, None] - np.arange(max_order)]
        y = target[e][steps[rows]]
        for j in range(y.shape[1]):
            fit = train[rows] & np.isfinite(lags).all(1) & np.isfinite(y[:, j])
            if fit.sum() < 2:
                continue
            coef = _ar_fit(lags[fit], y[fit, j])
            out[rows, j] = coef[0] + lags[:, : len(coef) - 1] @ coef[1:]
    return out


def persistence(series: np.ndarray, samples: SeriesSamples) -> np.ndarray:
    """The last observed value of ``series`` (the target as an input) in each window,
    for every lead; NaN when the window has none."""
    samples.check(series.shape[1])
    steps = np.arange(series.shape[1])
    last = np.maximum.accumulate(np.where(np.isfinite(series), steps, -1), axis=1)
    entity, end = samples.entity, samples.end
    at = last[entity, end]
    value = np.where(at > end - samples.history, series[entity, np.maximum(at, 0)], np.nan)
    return np.repeat(value[:, None], len(samples.leads), axis=1)


def series_baselines(
    inputs: np.ndarray,
    target: np.ndarray,
    time: np.ndarray,
    samples: SeriesSamples,
    target_feature: int | None = None,
) -> dict[str, np.ndarray]:
    """Every applicable baseline's (samples, leads) forecast, by name: "climatology"
    and "ridge" always, "ar" and "persistence" when the target is input number
    ``target_feature``.

    ``inputs`` is (entity, time, feature) and ``target`` (entity, time), both in
    physical units with NaN where missing; ``time`` is the record's time axis.
    """
    out = {
        "climatology": climatology(target, time, samples),
        "ridge": ridge_on_lags(inputs, target, time, samples),
    }
    if target_feature is not None:
        series = inputs[..., target_feature]
        out["ar"] = autoregressive(series, target, samples)
        out["persistence"] = persistence(series, samples)
    return out
