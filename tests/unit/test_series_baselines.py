"""Series baselines (climatology, ridge on lags, AR(p), persistence) on series whose
truth is known: an AR(2) process, a seasonal cycle, a target linear in lagged inputs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.signal import lfilter

from pipeline.series_baselines import (
    N_LAGS,
    SeriesSamples,
    autoregressive,
    climatology,
    lag_windows,
    persistence,
    ridge_on_lags,
    series_baselines,
)


def time_axis(n: int, freq: str = "D", start: str = "2000-01-01") -> np.ndarray:
    return pd.date_range(start, periods=n, freq=freq).values


def chronological_split(n_time: int) -> np.ndarray:
    """60 % train, 20 % val, 20 % test, in time order."""
    cut = np.array([0.6, 0.8]) * n_time
    return np.array(["train", "val", "test"])[np.searchsorted(cut, np.arange(n_time), "right")]


def make_samples(n_entity: int, n_time: int, history: int, leads: tuple[int, ...]):
    """Every window of every entity; a sample whose window and targets do not all lie in
    one split belongs to none (""), so no train sample reads a val or test step."""
    time_split = chronological_split(n_time)
    ends = np.arange(history - 1, n_time - max(leads))
    first, last = time_split[ends - history + 1], time_split[ends + max(leads)]
    split = np.where(first == last, last, "")
    samples = SeriesSamples(
        entity=np.repeat(np.arange(n_entity), len(ends)),
        end=np.tile(ends, n_entity),
        leads=np.array(leads),
        history=history,
        split=np.tile(split, n_entity),
    )
    return samples, time_split


def observed(target: np.ndarray, samples: SeriesSamples) -> np.ndarray:
    return target[samples.entity[:, None], samples.target_steps]


def rmse_on(pred: np.ndarray, obs: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Per lead."""
    return np.sqrt(np.nanmean((pred[rows] - obs[rows]) ** 2, axis=0))


def seasonal_series(time: np.ndarray, rng: np.random.Generator, phi: float = 0.8):
    """10 + 5 sin(day of year) plus AR(1) noise of unit variance: (series, cycle)."""
    doy = pd.DatetimeIndex(time).day_of_year.values
    cycle = 10 + 5 * np.sin(2 * np.pi * doy / 365.25)
    noise = lfilter([np.sqrt(1 - phi**2)], [1, -phi], rng.standard_normal(len(time)))
    return cycle + noise, cycle


def test_ar_recovers_an_ar2_and_beats_persistence_and_climatology() -> None:
    rng = np.random.default_rng(0)
    n, history, phi = 3000, 24, (0.5, 0.3)
    series = 10 + lfilter([1], [1, -phi[0], -phi[1]], rng.standard_normal(n))
    target = series[None, :]
    samples, _ = make_samples(1, n, history, leads=(1, 3))
    time = time_axis(n, "MS", "1800-01-01")
    ar = autoregressive(target, target, samples)
    # the lead-1 forecast is linear in the window: its coefficients are the AR's
    window = target[0][samples.end[:, None] - np.arange(history)]
    design = np.column_stack([np.ones(len(window)), window])
    coef = np.linalg.lstsq(design, ar[:, 0], rcond=None)[0]
    np.testing.assert_allclose(coef[1:3], phi, atol=0.06)
    assert np.abs(coef[3:]).max() < 0.06
    obs, test = observed(target, samples), samples.split == "test"
    ar_rmse = rmse_on(ar, obs, test)
    assert np.all(ar_rmse < rmse_on(persistence(target, samples), obs, test))
    assert np.all(ar_rmse < rmse_on(climatology(target, time, samples), obs, test))


def test_climatology_beats_persistence_at_long_leads_and_finds_the_cycle() -> None:
    rng = np.random.default_rng(1)
    time = time_axis(12 * 365)  # 2000-2011, three Feb 29s
    series, cycle = seasonal_series(time, rng)
    target = series[None, :]
    samples, _ = make_samples(1, len(time), history=30, leads=(1, 90, 180))
    obs, test = observed(target, samples), samples.split == "test"
    clim = climatology(target, time, samples)
    clim_rmse = rmse_on(clim, obs, test)
    pers_rmse = rmse_on(persistence(target, samples), obs, test)
    assert pers_rmse[0] < clim_rmse[0]  # the noise's memory wins at one day
    assert np.all(clim_rmse[1:] < pers_rmse[1:])
    truth = cycle[samples.target_steps]
    assert np.abs(clim - truth)[test].mean() < 0.4
    # Feb 29 is forecast as Feb 28
    feb29 = np.flatnonzero(pd.DatetimeIndex(time).strftime("%m-%d") == "02-29")
    rows = np.flatnonzero(samples.target_steps[:, 0] == feb29[0])
    assert clim[rows, 0] == clim[rows - 1, 0]


def lagged_inputs(n_entity: int, time: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """(entity, time, 2): rain-like and temperature-like forcings."""
    n = len(time)
    rain = rng.gamma(0.5, 4.0, (n_entity, n)) * (rng.random((n_entity, n)) < 0.4)
    temp = np.stack([seasonal_series(time, rng)[0] for _ in range(n_entity)])
    return np.stack([rain, temp], axis=-1)


def mean_last(x: np.ndarray, w: int) -> np.ndarray:
    """Mean over the last ``w`` steps of the last axis (NaN for the first w-1)."""
    out = np.full(x.shape, np.nan)
    out[..., w - 1 :] = np.lib.stride_tricks.sliding_window_view(x, w, axis=-1).mean(-1)
    return out


def test_ridge_recovers_a_target_linear_in_lagged_inputs_per_entity() -> None:
    rng = np.random.default_rng(2)
    time = time_axis(6 * 365)
    inputs = lagged_inputs(2, time, rng)
    rain, temp = inputs[..., 0], inputs[..., 1]
    a, b, c = np.array([[1.5], [0.4]]), np.array([[-0.8], [1.2]]), np.array([[0.3], [-0.5]])
    truth = a * rain + b * np.roll(rain, 2, axis=1) + c * mean_last(temp, 30) + 3.0
    target = truth + 0.01 * rng.standard_normal(truth.shape)
    samples, _ = make_samples(2, len(time), history=90, leads=(0,))
    ridge = ridge_on_lags(inputs, target, time, samples)
    test = samples.split == "test"
    error = rmse_on(ridge, truth[samples.entity[:, None], samples.target_steps], test)
    assert error[0] < 0.02 * np.nanstd(truth)
    clim = climatology(target, time, samples)
    obs = observed(target, samples)
    assert rmse_on(ridge, obs, test) < rmse_on(clim, obs, test)


def test_no_prediction_reads_a_test_target_and_inputs_only_through_the_window() -> None:
    rng = np.random.default_rng(3)
    time = time_axis(5 * 365)
    forcing = lagged_inputs(2, time, rng)[..., :1]
    target = np.stack([seasonal_series(time, rng)[0] for _ in range(2)])
    inputs = np.concatenate([forcing, target[..., None]], axis=-1)
    samples, time_split = make_samples(2, len(time), history=60, leads=(1, 5))
    base = series_baselines(inputs, target, time, samples, target_feature=1)
    assert set(base) == {"climatology", "ridge", "ar", "persistence"}
    is_test = time_split == "test"
    changed = target.copy()
    changed[:, is_test] = rng.normal(50, 10, (2, is_test.sum()))
    for name, pred in series_baselines(inputs, changed, time, samples, 1).items():
        np.testing.assert_array_equal(pred, base[name], err_msg=name)
    changed_inputs = inputs.copy()
    changed_inputs[:, is_test] = rng.normal(50, 10, (2, is_test.sum(), 2))
    moved = series_baselines(changed_inputs, changed, time, samples, 1)
    fitted = np.isin(samples.split, ["train", "val"])  # windows that hold no test step
    test = samples.split == "test"
    for name, pred in moved.items():
        np.testing.assert_array_equal(pred[fitted], base[name][fitted], err_msg=name)
        assert (name == "climatology") == np.array_equal(pred[test], base[name][test])


def test_missing_values_are_dropped_from_fits_and_forecast_as_nan() -> None:
    rng = np.random.default_rng(4)
    time = time_axis(4 * 365)
    series = seasonal_series(time, rng)[0][None, :]
    inputs = np.stack([series, lagged_inputs(1, time, rng)[..., 0]], axis=-1)
    samples, _ = make_samples(1, len(time), history=40, leads=(1,))
    gap = 500  # a train step; one missing input
    inputs[0, gap, 0] = np.nan
    target = series.copy()
    target[0, rng.choice(len(time), 100, replace=False)] = np.nan  # missing flows
    out = series_baselines(inputs, target, time, samples, target_feature=0)
    end = samples.end
    reads_gap = (end >= gap) & (end < gap + N_LAGS)  # the ridge's lags hold it
    assert np.isnan(out["ridge"][reads_gap]).all() and np.isfinite(out["ridge"][~reads_gap]).all()
    assert np.isnan(out["ar"][end == gap]).all()
    assert np.isfinite(out["ar"][end > gap + 40]).all()
    assert np.isfinite(out["climatology"]).all()
    np.testing.assert_array_equal(out["persistence"][end == gap, 0], series[0, gap - 1])
    # a window with nothing observed has nothing to persist
    blank = inputs[..., 0].copy()
    blank[0, 1000:1040] = np.nan
    assert np.isnan(persistence(blank, samples)[end == 1039]).all()
    assert np.isfinite(persistence(blank, samples)[end == 1040]).all()


@pytest.mark.parametrize(
    ("freq", "n", "history", "windows"),
    [
        ("6h", 4 * 4 * 365, 120, [28, 120]),
        ("D", 4 * 365, 365, [30, 90, 365]),
        ("W-MON", 8 * 52, 104, [13, 52]),
        ("MS", 40 * 12, 36, [12]),
        ("YS", 60, 10, []),
    ],
)
def test_non_daily_steps(freq: str, n: int, history: int, windows: list[int]) -> None:
    rng = np.random.default_rng(5)
    time = time_axis(n, freq, "1950-01-01")
    series, cycle = seasonal_series(time, rng, phi=0.3)
    target = series[None, :]
    samples, _ = make_samples(1, n, history=history, leads=(1,))
    assert lag_windows(time, history) == windows
    out = series_baselines(target[..., None], target, time, samples, target_feature=0)
    assert all(np.isfinite(pred).all() for pred in out.values())
    clim, steps = out["climatology"][:, 0], samples.target_steps[:, 0]
    train_steps = np.unique(samples.target_steps[samples.train])
    if freq == "MS":  # one bin per month, unsmoothed
        months = pd.DatetimeIndex(time).month
        means = pd.Series(series[train_steps]).groupby(months[train_steps]).mean()
        np.testing.assert_allclose(clim, means.loc[months[steps]].values)
    elif freq == "YS":  # one bin: the train mean
        np.testing.assert_allclose(clim, series[train_steps].mean())
    else:
        assert np.abs(clim - cycle[steps]).mean() < 0.5


def test_samples_outside_the_record_or_without_train_are_refused() -> None:
    target = np.zeros((1, 50))
    time = time_axis(50)
    samples, _ = make_samples(1, 50, history=10, leads=(1,))
    with pytest.raises(ValueError, match="outside"):
        climatology(target[:, :40], time[:40], samples)
    no_train = SeriesSamples(
        samples.entity, samples.end, samples.leads, 10, np.full(len(samples.end), "test")
    )
    with pytest.raises(ValueError, match="no train"):
        persistence(target, no_train)
