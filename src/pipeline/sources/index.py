"""Synthetic climate index: one ENSO-like series and its covariate, from known physics.

No dependency ships a real index series, so the single-series study runs on this one.
The latent state is the recharge oscillator (Jin 1997, J. Atmos. Sci. 54, 811) in its
stochastic continuous-time form (Burgers et al. 2005, GRL 32, L13706):

    dT/dt = R(t) T + F1 h + sT dW_T,     dh/dt = -eps h - F2 T + sh dW_h,

T the east-Pacific SST anomaly, h the west-Pacific warm-water volume (thermocline depth)
anomaly. The coefficients are pipeline.sources.synthetic.RechargeOscillator's, read as
rates per month, so the index and the gridded archive share their physics, except the
growth rate R(t) = R0 + Ra cos(2 pi (t - peak) / year): here it swings twice as far and
peaks in September, when the coupled feedbacks are strongest (Stein et al. 2014,
J. Climate 27, 5285), so that the index's variance peaks in boreal winter (Nov-Jan) and
is lowest in early summer, as observed. The period is about 3.7 years.

The system is integrated daily (Euler-Maruyama), then averaged to the output step:
monthly (stamped at the first of the month, as ERSSTv5), weekly (7-day means stamped at
their first day, counted from 1 January of ``start_year``) or daily. The latent path
depends on the seed only, not on the step, so every step shows the same process.

Variables (dims ``time`` only):

| name | units | what |
|---|---|---|
| nino | degC | absolute SST: annual cycle (warmest in April) + 0.8 T + noise |
| wwv | m | 20 degC isotherm depth anomaly: 6 h + noise; leads nino by ~9 months |

The warm-water volume leads the index by about a quarter period (Meinen & McPhaden 2000,
J. Climate 13, 3551), so a forecast using it beats the index's own past at long leads.
Measurement noise is white (NOISE_STD per value). Only the noisy series is written: the
noise-free future value is no forecast a model could reach from the past, so it would
be a false ceiling at any lead beyond 0 (``index_datasets`` returns it, for checks).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from pipeline.io import cf_series_encoding, write_netcdf
from pipeline.sources.synthetic import RechargeOscillator

DATA = "index.nc"
TIME_UNITS = "days since 1800-01-01"
YEAR = 365.25
DAYS_PER_MONTH = YEAR / 12
#: Days simulated before the record, from rest, so the oscillation is established.
SPIN_UP_DAYS = 3653
#: The recharge oscillator's coefficients (per month), growth strongest in September.
OSCILLATOR = RechargeOscillator(Ra=0.12, peak_month=8)
#: Latent units -> physical: Niño3.4-like std ~0.85 degC, thermocline anomaly std ~7 m.
SCALE = {"nino": 0.8, "wwv": 6.0}
#: Annual cycle of the SST: mean, amplitude (degC) and the warmest day of the year.
SST_MEAN, SST_AMPLITUDE, SST_WARMEST_DOY = 26.8, 1.2, 105
#: Standard deviation of the white measurement noise on each value.
NOISE_STD = {"nino": 0.1, "wwv": 1.0}
#: Output steps, each the mean of its days.
STEPS = ("monthly", "weekly", "daily")

VARIABLES = {
    "nino": {
        "long_name": "east-central equatorial Pacific SST (Nino 3.4-like index)",
        "standard_name": "sea_surface_temperature",
        "units": "degC",
    },
    "wwv": {
        "long_name": "equatorial Pacific warm-water volume: 20 degC isotherm depth anomaly",
        "units": "m",
    },
}


def simulate(
    dates: pd.DatetimeIndex, rng: np.random.Generator, oscillator: RechargeOscillator = OSCILLATOR
) -> tuple[np.ndarray, np.ndarray]:
    """Latent T and h at the end of each day of ``dates``, from rest at the first."""
    # The oscillator's calendar month m is centred mid-month: m = 0 on 16 January.
    month = (dates.day_of_year.to_numpy(float) - 0.5) / YEAR * 12 - 0.5
    dt = 1 / DAYS_PER_MONTH
    growth = (oscillator.transition(month)[:, 0, 0] - 1) * dt
    f1, f2, damp = oscillator.F1 * dt, oscillator.F2 * dt, oscillator.eps * dt
    kicks = rng.standard_normal((len(dates), 2)) * np.array([oscillator.sT, oscillator.sh])
    kicks *= np.sqrt(dt)
    T, h = np.empty(len(dates)), np.empty(len(dates))
    t_now = h_now = 0.0
    # Plain floats: a 2-variable loop is ~20x faster than with numpy scalars.
    for i, (r, k_t, k_h) in enumerate(zip(growth.tolist(), *kicks.T.tolist(), strict=True)):
        t_now, h_now = t_now + r * t_now + f1 * h_now + k_t, h_now - damp * h_now - f2 * t_now + k_h
        T[i], h[i] = t_now, h_now
    return T, h


def sst_climatology(dates: pd.DatetimeIndex) -> np.ndarray:
    """The SST's annual cycle (degC) on each day, warmest in April as Niño 3.4."""
    phase = 2 * np.pi * (dates.day_of_year.to_numpy(float) - SST_WARMEST_DOY) / YEAR
    return SST_MEAN + SST_AMPLITUDE * np.cos(phase)


def _to_step(daily: pd.DataFrame, step: str) -> pd.DataFrame:
    """Means over each output step: calendar months, or 7-day weeks from the first day
    (a last incomplete week is dropped)."""
    if step == "daily":
        return daily
    if step == "monthly":
        return daily.resample("MS").mean()
    if step == "weekly":
        weeks = daily.iloc[: len(daily) // 7 * 7]
        means = weeks.groupby(np.arange(len(weeks)) // 7).mean()
        return means.set_index(weeks.index[::7])
    raise ValueError(f"step={step!r}: choose one of {', '.join(STEPS)}")


def _dataset(values: pd.DataFrame, title: str, seed: int) -> xr.Dataset:
    ds = xr.Dataset(
        {name: ("time", values[name].to_numpy(), VARIABLES[name]) for name in VARIABLES},
        coords={"time": values.index.to_numpy()},
        attrs={
            "title": title,
            "Conventions": "CF-1.8",
            "source": f"pipeline.sources.index: recharge oscillator, seed={seed}",
        },
    )
    ds["time"].attrs = {"standard_name": "time", "axis": "T"}
    return ds


def index_datasets(
    years: int = 60, start_year: int = 1950, seed: int = 0, step: str = "monthly"
) -> tuple[xr.Dataset, xr.Dataset]:
    """The (data, truth) series over ``time`` at ``step``. Deterministic for a seed: the
    latent path is drawn first, so it is the same at every step."""
    if years < 1:
        raise ValueError(f"years={years} must be at least 1")
    rng = np.random.default_rng(seed)
    first = pd.Timestamp(f"{start_year}-01-01")
    days = pd.date_range(first - pd.Timedelta(days=SPIN_UP_DAYS), f"{start_year + years - 1}-12-31")
    T, h = simulate(days, rng)
    record = days >= first
    daily = pd.DataFrame(
        {
            "nino": sst_climatology(days[record]) + SCALE["nino"] * T[record],
            "wwv": SCALE["wwv"] * h[record],
        },
        index=days[record],
    )
    clean = _to_step(daily, step)
    noise = rng.standard_normal(clean.shape) * np.array([NOISE_STD[n] for n in clean.columns])
    truth = _dataset(clean, "synthetic climate index: the noise-free truth", seed)
    for name in truth.data_vars:
        truth[name].attrs["measurement_noise_std"] = NOISE_STD[str(name)]
    data = _dataset(clean + noise, f"synthetic ENSO-like climate index ({step})", seed)
    return data, truth


def write_index(
    out_dir: str | Path,
    *,
    years: int = 60,
    start_year: int = 1950,
    seed: int = 0,
    step: str = "monthly",
) -> list[Path]:
    """Write the series file into ``out_dir`` (atomically); return its path in a list."""
    data, _ = index_datasets(years, start_year, seed, step)
    path = Path(out_dir) / DATA
    write_netcdf(
        data, path, encoding=cf_series_encoding(data, "time", TIME_UNITS), engine="netcdf4"
    )
    return [path]
