"""Synthetic ENSO archive: the offline default, the test data, and a known truth.

A seasonally modulated recharge oscillator (Jin 1997) drives SST and heat-content maps
on a 2-degree global grid that look like ERSSTv5/GODAS files: CF-encoded NetCDF,
float32, latitudes descending, longitudes 0..358, land missing. The latent state and
the oracle forecast E[T(t+L) | T(t), h(t)] go to a sidecar ``truth.nc``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from pipeline.io import write_netcdf

#: ERSSTv5's missing value; xarray decodes it to NaN.
FILL_VALUE = np.float32(-9.96921e36)
TIME_UNITS = "days since 1800-01-01 00:00:00"
ORACLE_LEADS = np.arange(1, 25)
SPIN_UP_MONTHS = 120


@dataclass(frozen=True)
class RechargeOscillator:
    """Monthly-stepped recharge oscillator.

    T[t+1] = T[t] + R(m) T[t] + F1 h[t] + sT eT,   h[t+1] = h[t] - eps h[t] - F2 T[t] + sh eh,
    with R(m) = R0 + Ra cos(2 pi (m - peak_month) / 12), so growth peaks in boreal winter
    and events phase-lock to it. The defaults give a ~3.7-year spectral peak, a T
    autocorrelation that drops below 0.5 after ~7 months, and h leading T by ~10 months.
    """

    R0: float = -0.03
    Ra: float = 0.06
    F1: float = 0.12
    F2: float = 0.16
    eps: float = 0.03
    sT: float = 0.25
    sh: float = 0.3
    peak_month: int = 1  # 0 = January

    def transition(self, month: np.ndarray) -> np.ndarray:
        """State transition matrices A(m), shape (..., 2, 2), for calendar months 0..11."""
        R = self.R0 + self.Ra * np.cos(2 * np.pi * (np.asarray(month) - self.peak_month) / 12)
        A = np.empty((*np.shape(R), 2, 2))
        A[..., 0, 0] = 1 + R
        A[..., 0, 1] = self.F1
        A[..., 1, 0] = -self.F2
        A[..., 1, 1] = 1 - self.eps
        return A

    def simulate(self, n_months: int, rng: np.random.Generator, start_month: int = 0):
        """Return T and h (length n_months) after a spin-up from rest."""
        total = n_months + SPIN_UP_MONTHS
        months = (start_month - SPIN_UP_MONTHS + np.arange(total)) % 12
        A = self.transition(months)
        noise = rng.standard_normal((total, 2)) * np.array([self.sT, self.sh])
        state = np.zeros((total, 2))
        for t in range(total - 1):
            state[t + 1] = A[t] @ state[t] + noise[t]
        return state[SPIN_UP_MONTHS:, 0], state[SPIN_UP_MONTHS:, 1]

    def oracle(self, T: np.ndarray, h: np.ndarray, months: np.ndarray, leads: np.ndarray):
        """E[T(t+L) | T(t), h(t)] for every t and lead L: shape (time, lead)."""
        state = np.stack([T, h], axis=-1)
        out = np.empty((len(T), int(leads.max())))
        for step in range(int(leads.max())):
            state = np.einsum("tij,tj->ti", self.transition((months + step) % 12), state)
            out[:, step] = state[:, 0]
        return out[:, leads - 1]


def grid(resolution: float) -> tuple[np.ndarray, np.ndarray]:
    """ERSST-style cell centres: latitudes descending from 90-res, longitudes from 0."""
    n_lat = round(180 / resolution) - 1
    lat = 90 - resolution * np.arange(1, n_lat + 1)
    lon = resolution * np.arange(round(360 / resolution))
    return lat.astype(np.float32), lon.astype(np.float32)


def land_mask(lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    """Crude continents (True = land), leaving the tropical Pacific open."""
    la, lo = np.meshgrid(lat, lon, indexing="ij")
    boxes = [  # (lat0, lat1, lon0, lon1), longitudes 0..360
        (15, 72, 235, 300),  # North America
        (7, 18, 255, 280),  # Central America
        (-55, 10, 280, 325),  # South America
        (-35, 35, 0, 50),  # Africa (east of Greenwich)
        (5, 35, 343, 360),  # West Africa
        (35, 75, 0, 145),  # Eurasia
        (8, 35, 68, 90),  # India
        (10, 25, 95, 110),  # Indochina
        (-38, -12, 115, 153),  # Australia
        (60, 83, 300, 340),  # Greenland
    ]
    land = la < -70  # Antarctica
    for lat0, lat1, lon0, lon1 in boxes:
        land |= (la >= lat0) & (la <= lat1) & (lo >= lon0) & (lo <= lon1)
    return land


def _gauss(x: np.ndarray, centre: float, width: float) -> np.ndarray:
    return np.exp(-(((x - centre) / width) ** 2))


def patterns(lat: np.ndarray, lon: np.ndarray) -> dict[str, np.ndarray]:
    """Spatial patterns (lat, lon) through which the latent state enters the fields."""
    la, lo = np.meshgrid(lat, lon, indexing="ij")
    pacific = 1 / (1 + np.exp(-(lo - 140) / 8)) / (1 + np.exp((lo - 285) / 8))
    enso = _gauss(la, 0, 12) * _gauss(lo, 230, 45)
    box = (np.abs(la) <= 5) & (lo >= 190) & (lo <= 240)
    enso /= enso[box].mean()  # Niño3.4 box mean of the pattern is 1, so the index ~ T
    return {
        "sst_T": enso,
        "hc_h": _gauss(la, 0, 10) * pacific,
        "hc_T": _gauss(la, 0, 10) * pacific * np.tanh((lo - 200) / 35),
    }


def _smooth_red_noise(
    rng: np.random.Generator, n_time: int, lat: np.ndarray, lon: np.ndarray, sigma_deg: float
) -> np.ndarray:
    """AR(1) (phi=0.6) noise, smoothed with a Gaussian of ``sigma_deg`` (periodic in lon)."""
    res = float(abs(lat[1] - lat[0]))
    white = rng.standard_normal((n_time, len(lat), len(lon))).astype(np.float32)
    k_lat = np.fft.fftfreq(2 * len(lat), d=res)  # zero-padded: latitude does not wrap
    k_lon = np.fft.fftfreq(len(lon), d=res)
    kernel = np.exp(-2 * (np.pi * sigma_deg) ** 2 * (k_lat[:, None] ** 2 + k_lon[None, :] ** 2))
    spec = np.fft.fft2(white, s=(2 * len(lat), len(lon)), axes=(1, 2)) * kernel
    smooth = np.fft.ifft2(spec, axes=(1, 2)).real[:, : len(lat), :].astype(np.float32)
    smooth /= smooth.std()
    phi = np.float32(0.6)
    for t in range(1, n_time):
        smooth[t] = phi * smooth[t - 1] + np.sqrt(1 - phi**2) * smooth[t]
    return smooth


def climatology(lat: np.ndarray, lon: np.ndarray, months: np.ndarray) -> dict[str, np.ndarray]:
    """Seasonal climatologies (time, lat, lon) in degC with a Pacific cold tongue."""
    la, lo = np.meshgrid(lat, lon, indexing="ij")
    coslat = np.cos(np.deg2rad(la))
    season = np.cos(2 * np.pi * (months[:, None, None] - 7) / 12)  # NH peak in August
    hemisphere = np.sin(np.deg2rad(la))[None]
    cold_tongue = 3.0 * _gauss(la, 0, 6) * _gauss(lo, 260, 35)
    sst = -1.8 + 30.0 * coslat**2 - cold_tongue + 3.0 * season * hemisphere
    hc = 4.0 + 14.0 * coslat**2 + 2.0 * _gauss(la, 0, 10) * np.tanh((180 - lo) / 40)
    hc = hc + 1.0 * season * hemisphere
    return {"sst": np.maximum(sst, -1.8), "heat_content": hc}


def enso_datasets(
    years: int = 150,
    start_year: int = 1871,
    seed: int = 0,
    resolution: float = 2.0,
    oscillator: RechargeOscillator = RechargeOscillator(),
) -> tuple[xr.Dataset, xr.Dataset]:
    """Build the (data, truth) datasets. Deterministic for a given seed."""
    rng = np.random.default_rng(seed)
    n = 12 * years
    time = pd.date_range(f"{start_year}-01-01", periods=n, freq="MS")
    months = np.asarray(time.month) - 1
    T, h = oscillator.simulate(n, rng, start_month=int(months[0]))
    scale_T, scale_h = 0.8, 0.7  # latent units -> degC (Niño3.4 std ~1 degC)
    oracle = oscillator.oracle(T, h, months, ORACLE_LEADS) * scale_T
    T, h = T * scale_T, h * scale_h

    lat, lon = grid(resolution)
    land = land_mask(lat, lon)
    pat = patterns(lat, lon)
    clim = climatology(lat, lon, months)
    noise_sst = _smooth_red_noise(rng, n, lat, lon, sigma_deg=8.0)
    noise_hc = _smooth_red_noise(rng, n, lat, lon, sigma_deg=10.0)
    sst = clim["sst"] + T[:, None, None] * pat["sst_T"] + 0.35 * noise_sst
    hc = (
        clim["heat_content"]
        + h[:, None, None] * pat["hc_h"]
        + 0.5 * T[:, None, None] * pat["hc_T"]
        + 0.3 * noise_hc
    )
    fields = {}
    for name, values in (("sst", sst), ("heat_content", hc)):
        values = values.astype(np.float32)
        values[:, land] = np.nan
        fields[name] = (("time", "lat", "lon"), values)

    data = xr.Dataset(fields, coords={"time": time, "lat": lat, "lon": lon})
    data["sst"].attrs = {
        "long_name": "Monthly Means of Sea Surface Temperature",
        "standard_name": "sea_surface_temperature",
        "units": "degC",
    }
    data["heat_content"].attrs = {
        "long_name": "0-300 m mean ocean potential temperature",
        "standard_name": "sea_water_potential_temperature",
        "units": "degC",
    }
    data["lat"].attrs = {"units": "degrees_north", "standard_name": "latitude", "axis": "Y"}
    data["lon"].attrs = {"units": "degrees_east", "standard_name": "longitude", "axis": "X"}
    data["time"].attrs = {"standard_name": "time", "axis": "T"}
    data.attrs = {
        "title": "geodl-pipeline synthetic ENSO archive (stands in for ERSSTv5 + GODAS)",
        "Conventions": "CF-1.8",
        "source": f"recharge oscillator, seed={seed}",
    }
    truth = xr.Dataset(
        {
            "T": (
                "time",
                T.astype(np.float32),
                {"long_name": "latent east-Pacific SST index", "units": "degC"},
            ),
            "h": (
                "time",
                h.astype(np.float32),
                {"long_name": "latent heat-content index", "units": "degC"},
            ),
            "oracle": (
                ("time", "lead"),
                oracle.astype(np.float32),
                {
                    "long_name": "E[T(t+lead) | T(t), h(t)]: the predictability limit",
                    "units": "degC",
                },
            ),
        },
        coords={"time": time, "lead": ("lead", ORACLE_LEADS, {"units": "months"})},
        attrs={"Conventions": "CF-1.8", "source": f"recharge oscillator, seed={seed}"},
    )
    return data, truth


def _encoding(ds: xr.Dataset) -> dict[str, dict]:
    """CF time units, float32 with ERSST's fill value, and one-year chunks on disk (as
    archives chunk by time), so readers that chunk over time decompress nothing twice."""
    enc: dict[str, dict] = {
        "time": {"units": TIME_UNITS, "calendar": "standard", "dtype": "float64"}
    }
    for name, var in ds.data_vars.items():
        chunks = tuple(min(12, n) if d == "time" else n for d, n in var.sizes.items())
        enc[name] = {
            "dtype": "float32",
            "_FillValue": FILL_VALUE,
            "zlib": True,
            "complevel": 1,
            "chunksizes": chunks,
        }
    return enc


def write_enso(
    out_dir: str | Path,
    years: int = 150,
    start_year: int = 1871,
    seed: int = 0,
    resolution: float = 2.0,
) -> dict[str, Path]:
    """Write ``{dataset}.nc`` and ``truth.nc`` into ``out_dir`` (atomically)."""
    out_dir = Path(out_dir)
    data, truth = enso_datasets(years, start_year, seed, resolution)
    paths = {"data": out_dir / "enso.nc", "truth": out_dir / "truth.nc"}
    write_netcdf(data, paths["data"], encoding=_encoding(data), engine="netcdf4")
    write_netcdf(truth, paths["truth"], encoding=_encoding(truth), engine="netcdf4")
    return paths
