"""Synthetic basins: a CAMELS stand-in whose streamflow truth is known.

N catchments of daily forcing drive a conceptual rainfall-runoff model, one parameter
set per basin:

- precipitation: a first-order wet/dry Markov chain with gamma-distributed amounts
  (Richardson 1981, Water Resour. Res. 17, 182-190), occurrence and amount modulated by
  a seasonal cycle of random phase (summer- or winter-wet climates);
- temperature: a seasonal cycle, colder with latitude and elevation (lapse rate
  6.5 K/km), plus AR(1) weather noise;
- potential evaporation: Oudin et al. (2005, J. Hydrol. 303, 290-306), from temperature
  and extraterrestrial radiation (FAO-56, Allen et al. 1998, eqs. 21-25);
- streamflow: an HBV-like model (Bergström 1976, SMHI report RHO 7; Seibert & Vis 2012,
  HESS 16, 3315, "HBV-light"): a degree-day snow store in elevation bands, a soil
  bucket with recharge (SM/FC)^BETA and evaporation limited below LP*FC, a fast
  reservoir (quick flow above UZL, recession K1) percolating into a slow one (recession
  K2). Water is conserved exactly: P = Q + ET + change in storage.

Three climate regimes give the mix of CAMELS (shares in REGIMES): snowy mountain basins
(a winter snowpack melting in late spring: months-long memory, where an LSTM beats short
lag windows; about 30% of all basins have frac_snow >= SNOW_DOMINATED), humid rain-fed
basins, and arid ones with intermittent flow. Hidden parameters follow
catchment properties that are exposed as static attributes, with scatter (Kratzert et
al. 2019, HESS 23, 5089: attributes let one model serve many basins):

| attribute | units | informs |
|---|---|---|
| gauge_lat, elev_mean | degrees_north, m | temperature, so snow; radiation, so PET |
| slope_mean, area | m/km, km2 | fast recession K1 (steep: faster; large: slower) |
| soil_capacity | mm | field capacity FC |
| geol_permeability | log10(m2) | percolation and slow recession K2 (baseflow) |
| p_mean, pet_mean, aridity | mm/day, mm/day, - | water supply vs demand |
| frac_snow | - | share of precipitation on days below 0 degC |
| high_prec_freq, low_prec_freq | days/yr | days >= 5 p_mean; days < 1 mm (CAMELS) |
| p_seasonality | - | Woods (2009): > 0 summer-wet, < 0 winter-wet |

The climate attributes are computed from the record, as CAMELS and Caravan do.

Observed flow is the simulation times lognormal noise (AR(1) in log space, as rating-
curve errors persist) with a few gaps (NaN runs); the forcing has no gaps. The noise-
free simulation, the oracle that sets each basin's NSE ceiling, goes to ``truth.nc``
beside evaporation, storage and the hidden parameters.

Files follow neuralhydrology's GenericDataset layout: ``time_series/<basin>.nc`` with one
coordinate ``date`` and the forcing and target under Caravan's names (Kratzert et al.
2023, Sci. Data 10, 61), so one config serves both; ``attributes/attributes.csv`` with
the basin id (``gauge_id``) in its first column.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr
from scipy.signal import lfilter

from pipeline.io import cf_series_encoding, write_netcdf, write_text

TIME_SERIES = "time_series"
ATTRIBUTES = "attributes"
TRUTH = "truth.nc"
TIME_UNITS = "days since 1970-01-01"
#: Days simulated before the record so that storages (the slow reservoir) settle.
SPIN_UP_DAYS = 3 * 365
#: A basin is snow-dominated when this share of its precipitation falls as snow.
SNOW_DOMINATED = 0.3
#: Temperature lapse rate (K/m) and the snow model's elevation bands (m from the mean).
LAPSE_RATE = 6.5e-3
BANDS_M = (-750.0, -375.0, 0.0, 375.0, 750.0)
YEAR = 365.25

#: Forcing and target, under Caravan's names.
VARIABLES = {
    "total_precipitation_sum": {
        "long_name": "basin-mean precipitation",
        "standard_name": "lwe_precipitation_rate",
        "units": "mm/day",
    },
    "temperature_2m_mean": {
        "long_name": "basin-mean daily mean air temperature at 2 m",
        "standard_name": "air_temperature",
        "units": "degC",
    },
    "potential_evaporation_sum": {
        "long_name": "potential evapotranspiration (Oudin et al. 2005)",
        "standard_name": "water_potential_evaporation_flux",
        "units": "mm/day",
    },
    "streamflow": {
        "long_name": "observed streamflow per unit basin area",
        "units": "mm/day",
    },
}
PRECIP, TEMP, PET, FLOW = VARIABLES


@dataclass(frozen=True)
class Regime:
    """Ranges (uniform) of one climate regime's location and weather generator."""

    share: float
    lat: tuple[float, float]
    elev: tuple[float, float]
    p01: tuple[float, float]  # P(wet | dry yesterday)
    p11: tuple[float, float]  # P(wet | wet yesterday)
    amount: tuple[float, float]  # mean wet-day precipitation, mm


REGIMES = {
    "snow": Regime(0.35, (44, 56), (1200, 2400), (0.25, 0.4), (0.6, 0.75), (5, 9)),
    "humid": Regime(0.4, (25, 45), (50, 800), (0.25, 0.4), (0.55, 0.7), (7, 12)),
    "arid": Regime(0.25, (25, 40), (200, 1500), (0.07, 0.15), (0.3, 0.5), (5, 9)),
}
#: Shape of the wet-day gamma distribution (< 1: many light days, few heavy ones).
GAMMA_SHAPE = 0.75


@dataclass(frozen=True)
class HBV:
    """One parameter per basin (arrays of shape (basin,)): HBV-light's names."""

    tt: np.ndarray  # snow/rain threshold and melt onset, degC
    cfmax: np.ndarray  # degree-day factor, mm/degC/day
    fc: np.ndarray  # field capacity, mm
    beta: np.ndarray  # recharge shape
    lp: np.ndarray  # share of fc above which evaporation is potential
    k0: np.ndarray  # quick flow above uzl, 1/day
    k1: np.ndarray  # fast recession, 1/day
    k2: np.ndarray  # slow recession, 1/day
    uzl: np.ndarray  # quick-flow threshold of the fast reservoir, mm
    perc: np.ndarray  # percolation to the slow reservoir, mm/day


@dataclass(frozen=True)
class Simulation:
    """Fluxes (time, basin) in mm/day, storage at the end of each day in mm, and the
    storage before the first day (basin,)."""

    streamflow: np.ndarray
    evaporation: np.ndarray
    swe: np.ndarray
    storage: np.ndarray
    initial_storage: np.ndarray


def _uniform(rng: np.random.Generator, bounds: np.ndarray) -> np.ndarray:
    """One draw per row of ``bounds`` (basin, 2)."""
    return bounds[:, 0] + rng.random(len(bounds)) * (bounds[:, 1] - bounds[:, 0])


def assign_regimes(n_basins: int, rng: np.random.Generator) -> np.ndarray:
    """Each basin's regime name, in the shares of REGIMES (rounded), shuffled."""
    counts = np.round(np.array([r.share for r in REGIMES.values()]) * n_basins).astype(int)
    counts[np.argmax(counts)] += n_basins - counts.sum()
    return rng.permutation(np.repeat(list(REGIMES), counts))


def draw_catchments(regimes: np.ndarray, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Location, weather-generator and landscape properties per basin."""
    n = len(regimes)
    ranges = ("lat", "elev", "p01", "p11", "amount")
    bounds = {f: np.array([getattr(REGIMES[r], f) for r in regimes], float) for f in ranges}
    mountain = regimes == "snow"
    return {
        "gauge_lat": _uniform(rng, bounds["lat"]),
        "elev_mean": _uniform(rng, bounds["elev"]),
        "p01": _uniform(rng, bounds["p01"]),
        "p11": _uniform(rng, bounds["p11"]),
        "amount": _uniform(rng, bounds["amount"]),
        "p_amplitude": rng.uniform(0.0, 0.6, n),
        "p_phase": rng.uniform(0.0, YEAR, n),  # day of year of the wettest season
        "slope_mean": np.exp(rng.normal(np.log(np.where(mountain, 40.0, 12.0)), 0.5)),
        "area": np.clip(np.exp(rng.normal(np.log(500.0), 1.0, n)), 20.0, 10_000.0),
        "soil_capacity": np.clip(np.exp(rng.normal(np.log(200.0), 0.5, n)), 50.0, 600.0),
        "geol_permeability": rng.uniform(-16.0, -12.0, n),
    }


def hbv_parameters(catchments: dict[str, np.ndarray], rng: np.random.Generator) -> HBV:
    """HBV parameters: those with an exposed property follow it with scatter, the
    others are drawn independently (a share of each basin's behaviour stays unknown)."""
    n = len(catchments["area"])
    scatter = np.exp(rng.normal(0.0, 0.15, (3, n)))
    z_perm = (catchments["geol_permeability"] + 14.0) / 2.0  # -1 (tight) .. 1 (permeable)
    k1 = 0.08 * np.sqrt(catchments["slope_mean"] / 15.0) * (catchments["area"] / 500.0) ** -0.2
    return HBV(
        tt=rng.normal(0.0, 0.5, n),
        cfmax=rng.uniform(1.5, 4.0, n),
        fc=catchments["soil_capacity"],
        beta=rng.uniform(1.0, 4.0, n),
        lp=rng.uniform(0.5, 0.9, n),
        k0=rng.uniform(0.1, 0.3, n),
        k1=np.clip(k1 * scatter[0], 0.02, 0.5),
        k2=np.clip(0.01 * 10 ** (-0.5 * z_perm) * scatter[1], 0.002, 0.05),
        uzl=rng.uniform(10.0, 40.0, n),
        perc=1.0 * 10 ** (0.5 * z_perm) * scatter[2],
    )


def extraterrestrial_radiation(doy: np.ndarray, lat: np.ndarray) -> np.ndarray:
    """Daily extraterrestrial radiation (MJ m-2 day-1), (time, basin), FAO-56 eqs. 21-25."""
    phi = np.deg2rad(lat)[None, :]
    angle = 2 * np.pi * doy[:, None] / 365
    dr = 1 + 0.033 * np.cos(angle)
    decl = 0.409 * np.sin(angle - 1.39)
    ws = np.arccos(np.clip(-np.tan(phi) * np.tan(decl), -1.0, 1.0))
    geometry = ws * np.sin(phi) * np.sin(decl) + np.cos(phi) * np.cos(decl) * np.sin(ws)
    return 24 * 60 / np.pi * 0.0820 * dr * geometry


def oudin_pet(temp: np.ndarray, radiation: np.ndarray) -> np.ndarray:
    """Oudin et al. (2005): PET = Re / (lambda rho) (T + 5) / 100 where T > -5 degC, in
    mm/day (Re in MJ m-2 day-1, lambda = 2.45 MJ/kg, rho = 1000 kg/m3)."""
    return radiation / 2.45 * np.maximum(temp + 5.0, 0.0) / 100.0


def weather(
    doy: np.ndarray, catchments: dict[str, np.ndarray], rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Precipitation, temperature and PET, each (time, basin)."""
    n_days, n = len(doy), len(catchments["area"])
    season = 1 + catchments["p_amplitude"] * np.cos(
        2 * np.pi * (doy[:, None] - catchments["p_phase"]) / YEAR
    )
    p01 = np.clip(catchments["p01"] * season, 0.0, 1.0)
    draws = rng.random((n_days, n))
    wet = np.empty((n_days, n), bool)
    wet[0] = draws[0] < p01[0]
    for t in range(1, n_days):
        wet[t] = draws[t] < np.where(wet[t - 1], catchments["p11"], p01[t])
    amounts = rng.gamma(GAMMA_SHAPE, catchments["amount"] * season / GAMMA_SHAPE)
    precip = np.where(wet, amounts, 0.0)

    lat, elev = catchments["gauge_lat"], catchments["elev_mean"]
    mean = 27.0 - 0.6 * (lat - 25.0) - LAPSE_RATE * elev
    amplitude = 4.0 + 0.25 * (lat - 20.0)
    cycle = -np.cos(2 * np.pi * (doy[:, None] - 20.0) / YEAR)  # coldest ~20 January
    phi, sd = 0.75, 3.0
    noise = lfilter(
        [np.sqrt(1 - phi**2) * sd], [1.0, -phi], rng.standard_normal((n_days, n)), axis=0
    )
    temp = mean + amplitude * cycle + noise
    pet = oudin_pet(temp, extraterrestrial_radiation(doy, lat))
    return precip, temp, pet


def simulate(precip: np.ndarray, temp: np.ndarray, pet: np.ndarray, hbv: HBV) -> Simulation:
    """Run the HBV-like model day by day, all basins at once; exactly mass-conserving.

    Snow is kept in equal-area elevation bands around the basin mean (HBV-light's
    elevation zones), so that melt spreads over weeks, not days."""
    n_days, n = precip.shape
    band_temp = -LAPSE_RATE * np.asarray(BANDS_M)[:, None]  # (band, 1) offsets, degC
    swe = np.zeros((len(BANDS_M), n))
    sm = 0.5 * hbv.fc
    suz = np.zeros(n)
    slz = hbv.perc / hbv.k2  # the slow store's equilibrium under constant percolation
    out = {k: np.empty((n_days, n)) for k in ("q", "et", "swe", "storage")}
    initial = swe.mean(0) + sm + suz + slz
    for t in range(n_days):
        above = temp[t] + band_temp - hbv.tt
        swe = swe + np.where(above > 0, 0.0, precip[t])
        melt = np.minimum(swe, hbv.cfmax * np.maximum(above, 0.0))
        swe = swe - melt
        water = (np.where(above > 0, precip[t], 0.0) + melt).mean(0)
        recharge = water * np.clip(sm / hbv.fc, 0.0, 1.0) ** hbv.beta
        sm = sm + water - recharge
        overflow = np.maximum(sm - hbv.fc, 0.0)
        sm, recharge = sm - overflow, recharge + overflow
        et = np.minimum(pet[t] * np.minimum(sm / (hbv.lp * hbv.fc), 1.0), sm)
        sm = sm - et
        suz = suz + recharge
        perc = np.minimum(hbv.perc, suz)
        suz, slz = suz - perc, slz + perc
        quick = hbv.k0 * np.maximum(suz - hbv.uzl, 0.0) + hbv.k1 * suz
        slow = hbv.k2 * slz
        suz, slz = suz - quick, slz - slow
        out["q"][t], out["et"][t], out["swe"][t] = quick + slow, et, swe.mean(0)
        out["storage"][t] = out["swe"][t] + sm + suz + slz
    return Simulation(out["q"], out["et"], out["swe"], out["storage"], initial)


def observe(flow: np.ndarray, sigma: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Observed flow: ``flow`` times lognormal noise of unit mean (log-space AR(1),
    std ``sigma`` per basin), with gaps of 3-45 days: one per basin plus about one per
    ten years (gauge failures, ice, rejected data)."""
    n_days, n = flow.shape
    phi = 0.5
    eps = lfilter([np.sqrt(1 - phi**2)], [1.0, -phi], rng.standard_normal((n_days, n)), axis=0)
    obs = flow * np.exp(sigma * eps - sigma**2 / 2)
    for b, gaps in enumerate(1 + rng.poisson(n_days / (10 * YEAR), n)):
        for start, length in zip(
            rng.integers(0, n_days, gaps), rng.integers(3, 46, gaps), strict=True
        ):
            obs[start : start + length, b] = np.nan
    return obs


def climate_attributes(
    precip: np.ndarray, temp: np.ndarray, pet: np.ndarray, doy: np.ndarray
) -> dict[str, np.ndarray]:
    """CAMELS climate indices (Addor et al. 2017, HESS 21, 5293) from (time, basin) series."""
    p_mean, pet_mean = precip.mean(0), pet.mean(0)
    # Woods (2009): first harmonics of P and T; seasonality = delta_p cos(phase difference).
    angle = 2 * np.pi * doy / YEAR
    design = np.column_stack([np.ones_like(angle), np.cos(angle), np.sin(angle)])
    (_, pc, ps), (_, tc, ts) = (np.linalg.lstsq(design, x, rcond=None)[0] for x in (precip, temp))
    delta_p = np.hypot(pc, ps) / p_mean
    return {
        "p_mean": p_mean,
        "pet_mean": pet_mean,
        "aridity": pet_mean / p_mean,
        "frac_snow": np.where(temp < 0.0, precip, 0.0).sum(0) / precip.sum(0),
        "high_prec_freq": (precip >= 5 * p_mean).mean(0) * YEAR,
        "low_prec_freq": (precip < 1.0).mean(0) * YEAR,
        "p_seasonality": delta_p * np.cos(np.arctan2(ps, pc) - np.arctan2(ts, tc)),
    }


#: The static attributes written, in this order (units in the module docstring).
STATIC = (
    "gauge_lat",
    "elev_mean",
    "slope_mean",
    "area",
    "soil_capacity",
    "geol_permeability",
    "p_mean",
    "pet_mean",
    "aridity",
    "frac_snow",
    "high_prec_freq",
    "low_prec_freq",
    "p_seasonality",
)


def basin_ids(n_basins: int) -> list[str]:
    width = max(3, len(str(n_basins - 1)))
    return [f"basin_{i:0{width}d}" for i in range(n_basins)]


def _truth(
    sim: Simulation,
    hbv: HBV,
    regimes: np.ndarray,
    sigma: np.ndarray,
    ids: list[str],
    dates: pd.DatetimeIndex,
) -> xr.Dataset:
    """The oracle and the model's water balance terms (basin, date), and what is hidden
    from the files per basin: regime, observation noise and HBV parameters."""
    dims = ("basin", "date")
    flux = {
        "streamflow": ("noise-free simulated streamflow (the oracle)", sim.streamflow),
        "evaporation": ("actual evapotranspiration", sim.evaporation),
    }
    store = {
        "snow_water_equivalent": ("snow water equivalent, basin mean", sim.swe),
        "storage": (
            "total water stored (snow, soil, reservoirs) at the end of the day",
            sim.storage,
        ),
    }
    variables = {
        name: (dims, values.T, {"long_name": about, "units": "mm/day"})
        for name, (about, values) in flux.items()
    } | {
        name: (dims, values.T, {"long_name": about, "units": "mm"})
        for name, (about, values) in store.items()
    }
    per_basin = {
        "initial_storage": (
            sim.initial_storage,
            {"long_name": "storage before the first day", "units": "mm"},
        ),
        "noise_sigma": (sigma, {"long_name": "std of the log observation error"}),
        "regime": (regimes.astype(str), {"long_name": "climate regime"}),
    } | {
        f"hbv_{name}": (values, {"long_name": f"HBV parameter {name}"})
        for name, values in vars(hbv).items()
    }
    variables |= {name: ("basin", values, attrs) for name, (values, attrs) in per_basin.items()}
    return xr.Dataset(
        variables,
        coords={"basin": ids, "date": dates},
        attrs={"title": "synthetic basins: the truth", "source": "pipeline.sources.basins"},
    )


def basins_datasets(
    n_basins: int = 40, years: int = 10, start_year: int = 1990, seed: int = 0
) -> tuple[dict[str, xr.Dataset], pd.DataFrame, xr.Dataset]:
    """The basins in memory: time series per basin id (dims ``date``), the attributes
    (indexed by ``gauge_id``) and the truth (dims ``basin``, ``date``)."""
    if n_basins < 1 or years < 1:
        raise ValueError(f"n_basins={n_basins} and years={years} must be at least 1")
    rng = np.random.default_rng(seed)
    first = pd.Timestamp(f"{start_year}-01-01")
    dates = pd.date_range(
        first - pd.Timedelta(days=SPIN_UP_DAYS), f"{start_year + years - 1}-12-31"
    )
    doy = dates.day_of_year.to_numpy(float)
    regimes = assign_regimes(n_basins, rng)
    catchments = draw_catchments(regimes, rng)
    hbv = hbv_parameters(catchments, rng)
    precip, temp, pet = weather(doy, catchments, rng)
    spun_up = simulate(precip, temp, pet, hbv)
    keep = slice(SPIN_UP_DAYS, None)
    sim = Simulation(
        spun_up.streamflow[keep],
        spun_up.evaporation[keep],
        spun_up.swe[keep],
        spun_up.storage[keep],
        spun_up.storage[SPIN_UP_DAYS - 1],
    )
    sigma = rng.uniform(0.08, 0.2, n_basins)
    series = {
        PRECIP: precip[keep],
        TEMP: temp[keep],
        PET: pet[keep],
        FLOW: observe(sim.streamflow, sigma, rng),
    }
    ids, record = basin_ids(n_basins), dates[keep]
    stats = catchments | climate_attributes(precip[keep], temp[keep], pet[keep], doy[keep])
    attributes = pd.DataFrame(
        {name: stats[name] for name in STATIC}, index=pd.Index(ids, name="gauge_id")
    )
    time_series = {
        basin: xr.Dataset(
            {name: ("date", values[:, b], VARIABLES[name]) for name, values in series.items()},
            coords={"date": record},
            attrs={"title": f"synthetic basin {basin}", "source": "pipeline.sources.basins"},
        )
        for b, basin in enumerate(ids)
    }
    return time_series, attributes, _truth(sim, hbv, regimes, sigma, ids, record)


def _encoding(ds: xr.Dataset) -> dict[str, dict]:
    """Caravan's encoding: times on a ``date`` coordinate."""
    return cf_series_encoding(ds, "date", TIME_UNITS)


def write_basins(
    out_dir: str | Path,
    *,
    n_basins: int = 40,
    years: int = 10,
    start_year: int = 1990,
    seed: int = 0,
) -> list[Path]:
    """Write the basins into ``out_dir`` in the GenericDataset layout, and ``truth.nc``
    beside it (each file atomically); return the paths, ``truth.nc`` last."""
    out_dir = Path(out_dir)
    time_series, attributes, truth = basins_datasets(n_basins, years, start_year, seed)
    paths = []
    for basin, ds in time_series.items():
        paths.append(out_dir / TIME_SERIES / f"{basin}.nc")
        write_netcdf(ds, paths[-1], encoding=_encoding(ds), engine="netcdf4")
    paths.append(out_dir / ATTRIBUTES / "attributes.csv")
    write_text(attributes.to_csv(float_format="%.6g"), paths[-1])
    paths.append(out_dir / TRUTH)
    write_netcdf(truth, paths[-1], encoding=_encoding(truth), engine="netcdf4")
    return paths


def read_truth(path: str | Path) -> xr.Dataset:
    """``truth.nc`` in the pipeline's series convention: dims (entity, time)."""
    with xr.open_dataset(path) as ds:
        return ds.load().rename({"basin": "entity", "date": "time"})
