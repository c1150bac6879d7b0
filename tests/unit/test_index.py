"""The synthetic climate index: determinism, its time steps, and recharge-oscillator physics."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from pipeline.series_files import open_series
from pipeline.sources.index import NOISE_STD, VARIABLES, index_datasets, write_index
from pipeline.timesteps import infer_step

Index = tuple[xr.Dataset, xr.Dataset]


@pytest.fixture(scope="module")
def long_record() -> Index:
    """Monthly data and truth, long enough for seasonal and spectral statistics."""
    return index_datasets(years=500, seed=3)


def _anomaly(series: xr.DataArray) -> np.ndarray:
    """Departure from each calendar month's mean, as one computes an index anomaly."""
    months = series.groupby("time.month")
    return (months - months.mean()).to_numpy()


def _lagged_corr(lead: np.ndarray, follow: np.ndarray, k: int) -> float:
    """corr(lead(t), follow(t + k))."""
    return float(np.corrcoef(lead[:-k], follow[k:])[0, 1])


def test_same_seed_same_files_other_seed_other_files(tmp_path: Path) -> None:
    runs = [
        write_index(tmp_path / name, years=3, seed=s) for name, s in (("a", 7), ("b", 7), ("c", 8))
    ]
    for first, again, other in zip(*runs, strict=True):
        with xr.open_dataset(first) as a, xr.open_dataset(again) as b, xr.open_dataset(other) as c:
            xr.testing.assert_identical(a.load(), b.load())
            assert not np.allclose(a["nino"], c["nino"])
    assert [p.name for p in runs[0]] == ["index.nc"]


@pytest.mark.parametrize(("step", "freq"), [("monthly", "MS"), ("weekly", "7D"), ("daily", "D")])
def test_time_axis_has_the_step_asked_for(step: str, freq: str) -> None:
    data, truth = index_datasets(years=2, start_year=2001, seed=0, step=step)
    assert infer_step(data["time"]) == step
    expected = pd.date_range("2001-01-01", periods=data.sizes["time"], freq=freq)
    np.testing.assert_array_equal(data["time"], expected)  # stamped at each step's start
    assert pd.Timestamp(data["time"].values[-1]).year == 2002
    xr.testing.assert_identical(data["time"], truth["time"])


def test_every_step_averages_one_latent_path() -> None:
    """The seed fixes the path; the step only sets the averaging."""
    daily = index_datasets(years=2, seed=4, step="daily")[1].to_dataframe()
    monthly = index_datasets(years=2, seed=4, step="monthly")[1].to_dataframe()
    weekly = index_datasets(years=2, seed=4, step="weekly")[1].to_dataframe()
    np.testing.assert_allclose(daily.resample("MS").mean(), monthly, rtol=1e-12)
    np.testing.assert_allclose(daily.iloc[:7].mean(), weekly.iloc[0], rtol=1e-12)
    with pytest.raises(ValueError, match="step='hourly'"):
        index_datasets(years=1, step="hourly")


def test_the_index_oscillates_every_two_to_seven_years(long_record: Index) -> None:
    anomaly = _anomaly(long_record[1]["nino"])
    power = np.abs(np.fft.rfft(anomaly)) ** 2
    smooth = np.convolve(power, np.ones(9) / 9, mode="same")
    freq = np.fft.rfftfreq(len(anomaly), d=1 / 12)  # cycles per year
    peak = 1 / freq[1:][np.argmax(smooth[1:])]
    assert 2 < peak < 7
    assert 0.6 < anomaly.std() < 1.2  # degC, as Niño 3.4


def test_variance_peaks_in_boreal_winter(long_record: Index) -> None:
    """Seasonal phase locking: largest anomalies in Nov-Jan, smallest in early summer."""
    anomaly = _anomaly(long_record[0]["nino"])
    variance = np.array([anomaly[m::12].var() for m in range(12)])  # January first
    assert np.argmax(variance) + 1 in (11, 12, 1)
    winter, summer = variance[[10, 11, 0]].mean(), variance[[4, 5, 6]].mean()
    assert winter > 1.5 * summer


def test_warm_water_volume_leads_the_index(long_record: Index) -> None:
    data = long_record[0]
    anomaly, wwv = _anomaly(data["nino"]), data["wwv"].to_numpy()
    corr = np.array([_lagged_corr(wwv, anomaly, k) for k in range(1, 25)])
    best = int(np.argmax(corr)) + 1
    assert 3 <= best <= 12
    assert corr[best - 1] > 0.5
    assert _lagged_corr(anomaly, anomaly, 12) < 0.3  # the index has forgotten by then


def test_warm_water_volume_beats_the_index_past_at_long_leads(long_record: Index) -> None:
    """Least squares at lead 9 months, fitted on the first half, scored on the second:
    the index's last 3 values, then with wwv added."""
    data, lead, lags = long_record[0], 9, 3
    anomaly, wwv = _anomaly(data["nino"]), data["wwv"].to_numpy()
    ends = np.arange(lags - 1, len(anomaly) - lead)
    past = np.column_stack([np.ones(len(ends)), *(anomaly[ends - k] for k in range(lags))])
    target, train = anomaly[ends + lead], ends < len(anomaly) // 2

    def test_corr(x: np.ndarray) -> float:
        beta = np.linalg.lstsq(x[train], target[train], rcond=None)[0]
        return float(np.corrcoef(x[~train] @ beta, target[~train])[0, 1])

    own, with_wwv = test_corr(past), test_corr(np.column_stack([past, wwv[ends]]))
    assert with_wwv > own + 0.15


def test_the_file_reads_as_a_single_series(tmp_path: Path) -> None:
    [data_file] = write_index(tmp_path, years=2, seed=1, step="weekly")
    series = open_series([str(data_file)])
    assert set(series.data_vars) == set(VARIABLES)
    for name, var in series.data_vars.items():
        assert var.dims == ("time",)
        assert var.attrs["units"] == VARIABLES[str(name)]["units"]
        assert var.attrs["long_name"]
    assert infer_step(series["time"]) == "weekly"


def test_truth_minus_data_is_the_measurement_noise(long_record: Index) -> None:
    data, truth = long_record
    for name, std in NOISE_STD.items():
        error = (data[name] - truth[name]).to_numpy()
        assert abs(error.mean()) < 0.1 * std
        assert error.std() == pytest.approx(std, rel=0.05)
        assert truth[name].attrs["measurement_noise_std"] == std
