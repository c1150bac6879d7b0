"""The synthetic ENSO archive: physics of the oscillator, file conventions, determinism."""

from __future__ import annotations

import numpy as np
import xarray as xr

from pipeline.sources.synthetic import RechargeOscillator, enso_datasets, grid


def _long_run(seed: int = 0, years: int = 400) -> tuple[np.ndarray, np.ndarray]:
    return RechargeOscillator().simulate(12 * years, np.random.default_rng(seed))


def test_spectral_peak_is_3_to_5_years() -> None:
    T, _ = _long_run()
    freqs = np.fft.rfftfreq(len(T), d=1 / 12)  # cycles per year
    power = np.abs(np.fft.rfft(T - T.mean())) ** 2
    smooth = np.convolve(power, np.ones(31) / 31, mode="same")
    peak_period = 1 / freqs[1:][np.argmax(smooth[1:])]
    assert 3.0 <= peak_period <= 5.0, peak_period


def test_heat_content_leads_sst() -> None:
    T, h = _long_run()
    lags = np.arange(0, 25)
    corr = [np.corrcoef(h[: len(h) - lag], T[lag:])[0, 1] for lag in lags]
    best = lags[int(np.argmax(corr))]
    # h leads T by about a quarter period (9-15 months for a 3-5 year cycle)
    assert 6 <= best <= 15, best
    assert max(corr) > 0.5


def test_persistence_falls_below_half_within_6_to_9_months() -> None:
    T, _ = _long_run()
    acf = [np.corrcoef(T[:-lag], T[lag:])[0, 1] for lag in range(1, 13)]
    first_below = 1 + next(i for i, a in enumerate(acf) if a < 0.5)
    assert 6 <= first_below <= 9, acf


def test_oracle_is_the_conditional_mean() -> None:
    osc = RechargeOscillator()
    rng = np.random.default_rng(1)
    T, h = osc.simulate(12 * 300, rng)
    months = np.arange(len(T)) % 12
    leads = np.array([1, 6])
    oracle = osc.oracle(T, h, months, leads)
    # lead-1 oracle residual equals the driving noise: uncorrelated with the state
    resid = T[1:] - oracle[:-1, 0]
    assert abs(np.corrcoef(resid, T[:-1])[0, 1]) < 0.05
    assert abs(resid.std() - osc.sT) < 0.02
    # skill decays with lead but stays above persistence at 6 months
    r6 = np.corrcoef(oracle[:-6, 1], T[6:])[0, 1]
    persistence6 = np.corrcoef(T[:-6], T[6:])[0, 1]
    assert r6 > persistence6 + 0.1


def test_files_look_like_ersst(tiny_enso: dict) -> None:
    raw = xr.open_dataset(tiny_enso["data"], decode_cf=False)
    assert raw["sst"].dtype == np.float32
    assert "days since" in raw["time"].attrs["units"]
    assert raw["time"].attrs["calendar"] == "standard"
    assert raw["sst"].attrs["units"] == "degC"
    assert raw["sst"].attrs["standard_name"] == "sea_surface_temperature"
    assert "_FillValue" in raw["sst"].attrs
    assert raw["lat"].values[0] > raw["lat"].values[-1]  # descending
    assert raw["lon"].values.min() >= 0 and raw["lon"].values.max() < 360
    ds = xr.open_dataset(tiny_enso["data"])
    land = ds["sst"].isel(time=0).isnull()
    assert 0.15 < float(land.mean()) < 0.5  # continents are masked, most cells are ocean
    assert bool(land.sel(lat=0, lon=200, method="nearest")) is False  # Niño3.4 is ocean
    truth = xr.open_dataset(tiny_enso["truth"])
    assert {"T", "h", "oracle"} <= set(truth.data_vars)
    assert truth["oracle"].sizes["lead"] == 24


def test_deterministic_per_seed() -> None:
    a, ta = enso_datasets(years=3, seed=5, resolution=8.0)
    b, tb = enso_datasets(years=3, seed=5, resolution=8.0)
    c, _ = enso_datasets(years=3, seed=6, resolution=8.0)
    xr.testing.assert_identical(a, b)
    xr.testing.assert_identical(ta, tb)
    assert not np.allclose(a["sst"].fillna(0), c["sst"].fillna(0))


def test_default_grid_is_two_degrees() -> None:
    lat, lon = grid(2.0)
    assert (lat[0], lat[-1], len(lat)) == (88.0, -88.0, 89)
    assert (lon[0], lon[-1], len(lon)) == (0.0, 358.0, 180)
