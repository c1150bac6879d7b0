"""Synthetic extreme-event archive: a ClimateNet stand-in whose labels are exact.

Tropical cyclones (TC) and atmospheric rivers (AR) move over a CAM5-like background
together with three kinds of look-alike a detector must learn to reject: weak lows
(a pressure minimum without gale-force winds), round moist blobs (TC-core moisture
without the vortex) and dry jets (AR winds without the moisture). The channels are
those ClimateNet's models use (Kashinath et al. 2021, GMD 14, 107-124): TMQ, U850,
V850 and PSL, as float32 CF-encoded NetCDF on a global grid with latitudes ascending
from -90 to 90 and longitudes 0..360-dlon (the CAM5 finite-volume grid), and times as
``days since`` on CAM5's ``noleap`` calendar.

Labels (0 background, 1 TC, 2 AR; TC wins where both apply) follow a fixed rule on the
noise-free features, so the truth is known pixel by pixel:

- TC: within the radius of gale-force winds (17 m/s, 34 kt: the "R34" of TC advisories)
  of the storm's own vortex, eye included;
- AR: inside the filament's core, where its own moisture exceeds half its peak (once the
  peak reaches 5 kg m-2), whatever the peak: weak rivers count as much as strong ones.

Both edges are sharp (super-Gaussian fall-offs) and several grid cells from the centre
at 2.5 degrees, so that the labels can be learnt from the four channels at modest
resolution. Moisture marks ARs (dry jets carry the same winds), while TC cores are no
moister than blobs: permutation importance should find TMQ for AR and PSL or the winds
for TC. The background adds smooth red noise at two scales; the large one (moist and
dry spells, wind surges) is what a fixed threshold cannot see past and a detector that
looks around a feature can.

Two layouts: ``cam5`` writes one CAM5 history file per month (``extremes.cam.h2.
YYYY-MM-DD-SSSSS.nc``, dims time x lat x lon); ``climatenet`` writes ClimateNet's archive,
one file per time step (``data-YYYY-MM-DD-HH-1_N.nc``) with ``LABELS`` over lat x lon
(int64, as in ClimateNet's files), ``N`` numbering expert copies: copy 0 holds the exact
labels, copies 1.. the same inputs with each class mask grown or shrunk by one cell.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import xarray as xr
from scipy import ndimage

from pipeline.io import write_netcdf

CHANNELS = ("TMQ", "U850", "V850", "PSL")
CLASSES = ("background", "tropical_cyclone", "atmospheric_river")
LAYOUTS = ("cam5", "climatenet")
#: CAM history files' fill value (there are no missing values here).
FILL_VALUE = np.float32(1e36)
EARTH_RADIUS_KM = 6371.0
KM_PER_DEG = np.pi * EARTH_RADIUS_KM / 180
#: TC label edge: gale-force winds, 34 kt (the R34 radius).
GALE = 17.0
#: An AR is labelled once its own precipitable water peaks above this (kg m-2), where
#: it exceeds half that peak.
AR_MOISTURE = 5.0
#: CAM5's noleap calendar.
MONTH_DAYS = (31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)
YEAR_DAYS = sum(MONTH_DAYS)

ATTRS = {
    "TMQ": {
        "long_name": "Total (vertically integrated) precipitable water",
        "standard_name": "atmosphere_mass_content_of_water_vapor",
        "units": "kg m-2",
    },
    "U850": {
        "long_name": "Zonal wind at 850 mbar pressure surface",
        "standard_name": "eastward_wind",
        "units": "m s-1",
    },
    "V850": {
        "long_name": "Meridional wind at 850 mbar pressure surface",
        "standard_name": "northward_wind",
        "units": "m s-1",
    },
    "PSL": {
        "long_name": "Sea level pressure",
        "standard_name": "air_pressure_at_mean_sea_level",
        "units": "Pa",
    },
    "LABELS": {
        "long_name": "event class: 0 background, 1 tropical cyclone, 2 atmospheric river",
        "flag_values": np.arange(len(CLASSES), dtype=np.int64),
        "flag_meanings": " ".join(CLASSES),
    },
}


LAT_ATTRS = {"units": "degrees_north", "standard_name": "latitude", "axis": "Y"}
LON_ATTRS = {"units": "degrees_east", "standard_name": "longitude", "axis": "X"}


# --- geometry ------------------------------------------------------------------------


def grid(resolution: float = 2.5) -> tuple[np.ndarray, np.ndarray]:
    """CAM5 finite-volume grid: latitudes -90..90 ascending (poles included), longitudes
    0..360-dlon."""
    n_lat = round(180 / resolution) + 1
    lat = np.linspace(-90.0, 90.0, n_lat)
    lon = 360.0 / round(360 / resolution) * np.arange(round(360 / resolution))
    return lat, lon


def unit_vectors(lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    """Points on the unit sphere, shape (..., 3), for latitudes/longitudes in degrees."""
    la, lo = np.deg2rad(lat), np.deg2rad(lon)
    return np.stack([np.cos(la) * np.cos(lo), np.cos(la) * np.sin(lo), np.sin(la)], axis=-1)


@dataclass(frozen=True)
class Geometry:
    """Grid cells as unit vectors ``p`` with their local ``east`` and ``north`` unit
    vectors, each (3, lat, lon)."""

    p: np.ndarray
    east: np.ndarray
    north: np.ndarray

    @classmethod
    def of(cls, lat: np.ndarray, lon: np.ndarray) -> Geometry:
        la, lo = np.meshgrid(np.deg2rad(lat), np.deg2rad(lon), indexing="ij")
        p = np.moveaxis(unit_vectors(*np.meshgrid(lat, lon, indexing="ij")), -1, 0)
        east = np.stack([-np.sin(lo), np.cos(lo), np.zeros_like(lo)])
        north = np.stack([-np.sin(la) * np.cos(lo), -np.sin(la) * np.sin(lo), np.cos(la)])
        return cls(p, east, north)

    def dot(self, vectors: np.ndarray, field: str = "p") -> np.ndarray:
        """Dot products of k vectors (k, 3) with every cell's ``field``: (k, lat, lon)."""
        return np.tensordot(vectors, getattr(self, field), axes=(1, 0))

    def distance(self, centres: np.ndarray) -> np.ndarray:
        """Great-circle distance (km) from k centres (k, 3) to every cell: (k, lat, lon)."""
        return EARTH_RADIUS_KM * np.arccos(np.clip(self.dot(centres), -1.0, 1.0))

    def swirl(self, axes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """East and north components (k, lat, lon) of the unit vector axis x p: flow
        counter-clockwise about each axis, seen from above it. As (east, north, p) is a
        right-handed basis, (a x p).east = a.north and (a x p).north = -a.east."""
        sin = np.sqrt(np.maximum(1.0 - self.dot(axes) ** 2, 1e-12))
        return self.dot(axes, "north") / sin, -self.dot(axes, "east") / sin


# --- feature populations -----------------------------------------------------------------


@dataclass(frozen=True)
class Events:
    """One kind of feature: birth day, lifetime (days), ramp (days) and per-event
    parameters, all arrays over events. Day 0 is the first time step."""

    birth: np.ndarray
    life: np.ndarray
    ramp: float
    params: dict[str, np.ndarray]

    def at(self, day: float) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
        """Parameters of the events alive at ``day``, their age and intensity envelope
        (0..1: a trapezoid with ``ramp``-day flanks, so events grow and decay)."""
        age = day - self.birth
        alive = (age >= 0) & (age < self.life)
        age = age[alive]
        envelope = np.clip(np.minimum(age, self.life[alive] - age) / self.ramp, 0.0, 1.0)
        return {k: v[alive] for k, v in self.params.items()}, age, envelope


def _births(
    rng: np.random.Generator, n_days: float, concurrent: float, life: tuple[float, float]
) -> tuple[np.ndarray, np.ndarray]:
    """A Poisson stream of births keeping ``concurrent`` events alive on average, started
    one longest lifetime before day 0 so the first map already holds a full population."""
    lo, hi = life
    span = n_days + hi
    n = rng.poisson(concurrent / ((lo + hi) / 2) * span)
    return rng.uniform(-hi, n_days, n), rng.uniform(lo, hi, n)


def _hemisphere(rng: np.random.Generator, n: int, north: float = 0.5) -> np.ndarray:
    return np.where(rng.random(n) < north, 1.0, -1.0)


def _tropical_cyclones(rng: np.random.Generator, n_days: float) -> Events:
    """Storms born at 7-20 deg, drifting west and poleward and recurving east, dying
    before 33 deg; two in three in the north, most in each hemisphere's late summer."""
    birth, life = _births(rng, n_days, concurrent=6.0, life=(4.0, 10.0))
    sign = _hemisphere(rng, len(birth), north=0.65)
    doy = birth % YEAR_DAYS
    peak = np.where(sign > 0, 245.0, 60.0)  # early September / early March
    keep = rng.random(len(birth)) < 0.5 * (1 + 0.8 * np.cos(2 * np.pi * (doy - peak) / YEAR_DAYS))
    birth, life, sign = birth[keep], life[keep], sign[keep]
    n = len(birth)
    lat0 = rng.uniform(7.0, 20.0, n)
    north_speed = rng.uniform(100.0, 250.0, n)  # km/day
    life = np.minimum(life, (33.0 - lat0) * KM_PER_DEG / north_speed)
    return Events(
        birth,
        life,
        ramp=1.0,
        params={
            "lat0": sign * lat0,
            "lon0": rng.uniform(0.0, 360.0, n),
            "east_speed": rng.uniform(-550.0, -250.0, n),  # km/day: westward first...
            "east_accel": rng.uniform(40.0, 90.0, n),  # km/day2: ...then recurving east
            "north_speed": sign * north_speed,
            "edge_wind": rng.uniform(20.0, 28.0, n),  # m/s at the outer radius
            "outer": rng.uniform(650.0, 1000.0, n),  # km: where the vortex ends
            "rmax": rng.uniform(120.0, 220.0, n),  # km: radius of maximum wind
            "moisture": rng.uniform(15.0, 25.0, n),  # kg m-2: moist core
            "core": rng.uniform(350.0, 650.0, n),  # km
        },
    )


def _rivers(rng: np.random.Generator, n_days: float, concurrent: float, wet: bool) -> Events:
    """Filaments anchored at 10-22 deg, heading poleward-east (azimuth 25-48 deg in the
    north, 132-155 in the south) for 6000-9000 km, drifting east. ``wet=False`` gives
    dry jets: the same winds without the moisture."""
    birth, life = _births(rng, n_days, concurrent, life=(2.0, 5.0))
    n = len(birth)
    sign = _hemisphere(rng, n)
    azimuth = rng.uniform(25.0, 48.0, n)
    return Events(
        birth,
        life,
        ramp=0.5,
        params={
            "lat0": sign * rng.uniform(10.0, 22.0, n),
            "lon0": rng.uniform(0.0, 360.0, n),
            "east_speed": rng.uniform(300.0, 800.0, n),
            "azimuth": np.where(sign > 0, azimuth, 180.0 - azimuth),
            "curvature": rng.uniform(-0.1, 0.1, n),  # radians: a small circle
            "length": rng.uniform(6000.0, 9000.0, n),
            "half_width": rng.uniform(350.0, 480.0, n),
            "moisture": rng.uniform(8.0, 25.0, n) * wet,
            "jet": rng.uniform(12.0, 20.0, n),  # m/s along the band
        },
    )


def _blobs(rng: np.random.Generator, n_days: float) -> Events:
    """Round moist blobs in the tropics and subtropics, as moist as TC cores."""
    birth, life = _births(rng, n_days, concurrent=5.0, life=(1.0, 4.0))
    n = len(birth)
    return Events(
        birth,
        life,
        ramp=0.5,
        params={
            "lat0": _hemisphere(rng, n) * rng.uniform(0.0, 35.0, n),
            "lon0": rng.uniform(0.0, 360.0, n),
            "east_speed": rng.uniform(-400.0, 0.0, n),
            "moisture": rng.uniform(15.0, 25.0, n),
            "core": rng.uniform(350.0, 650.0, n),
        },
    )


def _weak_lows(rng: np.random.Generator, n_days: float) -> Events:
    """Broad pressure minima (6-20 hPa) with weak (2-6 m/s) cyclonic winds."""
    birth, life = _births(rng, n_days, concurrent=3.0, life=(2.0, 6.0))
    n = len(birth)
    return Events(
        birth,
        life,
        ramp=1.0,
        params={
            "lat0": _hemisphere(rng, n) * rng.uniform(5.0, 35.0, n),
            "lon0": rng.uniform(0.0, 360.0, n),
            "east_speed": rng.uniform(-400.0, 0.0, n),
            "depth": rng.uniform(600.0, 2000.0, n),  # Pa
            "radius": rng.uniform(600.0, 1200.0, n),
            "wind": rng.uniform(2.0, 6.0, n),
        },
    )


#: Sampler per feature kind; each draws from its own child of the seed, so the events do
#: not depend on the grid, the time step or on each other.
POPULATIONS: dict[str, Callable[[np.random.Generator, float], Events]] = {
    "tc": _tropical_cyclones,
    "ar": lambda rng, n_days: _rivers(rng, n_days, concurrent=7.5, wet=True),
    "jet": lambda rng, n_days: _rivers(rng, n_days, concurrent=3.0, wet=False),
    "blob": _blobs,
    "low": _weak_lows,
}


def events(years: int, seed: int) -> dict[str, Events]:
    """Every feature of a ``years``-long record, by kind (deterministic for a seed)."""
    streams = np.random.SeedSequence(seed).spawn(len(POPULATIONS) + 1)[1:]
    n_days = float(years * YEAR_DAYS)
    return {
        kind: sample(np.random.default_rng(stream), n_days)
        for (kind, sample), stream in zip(POPULATIONS.items(), streams, strict=True)
    }


def _position(p: dict[str, np.ndarray], age: np.ndarray) -> np.ndarray:
    """Centres (k, 3) after ``age`` days of drift (km/day east and north, with an
    eastward acceleration where given)."""
    lat = p["lat0"] + p.get("north_speed", 0.0) * age / KM_PER_DEG
    east = p["east_speed"] * age + 0.5 * p.get("east_accel", 0.0) * age**2
    lon = p["lon0"] + east / (KM_PER_DEG * np.cos(np.deg2rad(lat)))
    return unit_vectors(lat, lon % 360.0)


def _flat_top(x: np.ndarray, power: int = 6) -> np.ndarray:
    """A super-Gaussian exp(-x^power), ``power`` even: flat inside |x| < 1, a sharp edge
    at |x| ~ 1."""
    x2 = x * x
    y = x2
    for _ in range(power // 2 - 1):
        y = y * x2
    return np.exp(-y)


# --- rendering: each kind adds its noise-free anomalies and returns its label mask -------


@dataclass
class Fields:
    """Anomalies being summed for one time step, (lat, lon) each."""

    tmq: np.ndarray
    u: np.ndarray
    v: np.ndarray
    psl: np.ndarray

    def add_wind(self, east: np.ndarray, north: np.ndarray, speed: np.ndarray) -> None:
        """Add k flows (k, lat, lon) of ``speed`` along unit vectors (east, north)."""
        self.u += (speed * east).sum(0)
        self.v += (speed * north).sum(0)


def _cyclonic(g: Geometry, centres: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Unit vectors of cyclonic flow about each centre: counter-clockwise in the north,
    clockwise in the south."""
    east, north = g.swirl(centres)
    sign = np.sign(centres[:, 2])[:, None, None]
    return sign * east, sign * north


def _render_tc(g: Geometry, f: Fields, p: dict, age: np.ndarray, env: np.ndarray) -> np.ndarray:
    """Modified Rankine vortices (v ~ r inside ``rmax``, ~ r^-0.25 outside) cut off by a
    super-Gaussian at ``outer``, cyclonic. Pressure deficit from the peak wind by Holland's
    (1980) relation with B = 1.3 (dp = rho e vmax^2 / B ~ 2.4 vmax^2 Pa). Label: the
    vortex's own wind >= 17 m/s, eye included."""
    c = _position(p, age)
    r = g.distance(c)
    outer, rmax = p["outer"][:, None, None], p["rmax"][:, None, None]
    vmax = p["edge_wind"] * (p["outer"] / p["rmax"]) ** 0.25 * env
    edge = _flat_top(r / outer, power=8)
    speed = (
        vmax[:, None, None]
        * np.where(r < rmax, r / rmax, (rmax / np.maximum(r, rmax)) ** 0.25)
        * edge
    )
    f.add_wind(*_cyclonic(g, c), speed)
    depth = (rmax / np.maximum(r, rmax)) ** 0.6 * edge
    f.psl -= (2.4 * vmax[:, None, None] ** 2 * depth).sum(0)
    f.tmq += ((p["moisture"] * env)[:, None, None] * _flat_top(r / p["core"][:, None, None])).sum(0)
    eye = (r < rmax) & (speed.max(axis=(1, 2), keepdims=True) >= GALE)
    return ((speed >= GALE) | eye).any(0)


def _river_frame(p: dict, age: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Axis n and in-plane basis e1, e2 (each (k, 3)) of each band's small circle: it
    passes through the anchor heading along ``azimuth`` and bends by ``curvature``."""
    s = _position(p, age)
    lat, lon = np.arcsin(s[:, 2]), np.arctan2(s[:, 1], s[:, 0])
    east = np.stack([-np.sin(lon), np.cos(lon), np.zeros_like(lon)], axis=-1)
    north = np.stack([-np.sin(lat) * np.cos(lon), -np.sin(lat) * np.sin(lon), np.cos(lat)], -1)
    az, c = np.deg2rad(p["azimuth"])[:, None], p["curvature"][:, None]
    heading = np.cos(az) * north + np.sin(az) * east
    n = np.cos(c) * np.cross(s, heading) + np.sin(c) * s
    e1 = (s - np.sin(c) * n) / np.cos(c)
    return n, e1, np.cross(n, e1)


def _render_river(g: Geometry, f: Fields, p: dict, age: np.ndarray, env: np.ndarray) -> np.ndarray:
    """Bands along a small circle, flat-topped across (``half_width``) and along
    (``length``): moisture ``moisture`` and a wider along-band jet ``jet`` blowing
    poleward. Label: where the band's own moisture exceeds half its peak, once that peak
    reaches 5 kg m-2."""
    n, e1, e2 = _river_frame(p, age)
    c = p["curvature"][:, None, None]
    across = EARTH_RADIUS_KM * (np.arcsin(np.clip(g.dot(n), -1.0, 1.0)) - c)
    half = p["length"][:, None, None] / 2
    along = EARTH_RADIUS_KM * np.cos(c) * np.arctan2(g.dot(e2), g.dot(e1))
    along = _flat_top((along - half) / half, power=8)
    width = p["half_width"][:, None, None]
    peak = (p["moisture"] * env)[:, None, None]
    moisture = peak * along * _flat_top(across / width)
    f.tmq += moisture.sum(0)
    jet = (p["jet"] * env)[:, None, None] * along * np.exp(-((across / (1.5 * width)) ** 2))
    f.add_wind(*g.swirl(n), jet)
    return ((moisture >= 0.5 * peak) & (peak >= AR_MOISTURE)).any(0)


def _render_blob(g: Geometry, f: Fields, p: dict, age: np.ndarray, env: np.ndarray) -> None:
    r = g.distance(_position(p, age))
    f.tmq += ((p["moisture"] * env)[:, None, None] * _flat_top(r / p["core"][:, None, None])).sum(0)


def _render_low(g: Geometry, f: Fields, p: dict, age: np.ndarray, env: np.ndarray) -> None:
    """Gaussian pressure minima; their weak cyclonic winds peak at ``radius``."""
    c = _position(p, age)
    x = g.distance(c) / p["radius"][:, None, None]
    f.psl -= ((p["depth"] * env)[:, None, None] * np.exp(-(x**2))).sum(0)
    f.add_wind(*_cyclonic(g, c), (p["wind"] * env)[:, None, None] * x * np.exp(0.5 * (1 - x**2)))


RENDER = {
    "tc": _render_tc,
    "ar": _render_river,
    "jet": _render_river,
    "blob": _render_blob,
    "low": _render_low,
}


# --- background --------------------------------------------------------------------------


def background(lat: np.ndarray, lon: np.ndarray, day: float) -> Fields:
    """Large-scale state: moisture falling from an ITCZ that follows the seasons to the
    poles (with a moister west Pacific), subtropical highs and subpolar lows with
    eastward-moving mid-latitude waves (wavenumber 5, 8 deg/day), trade winds and
    westerlies."""
    la, lo = np.meshgrid(lat, np.deg2rad(lon), indexing="ij")
    a = np.abs(la)
    doy = day % YEAR_DAYS
    itcz = 6.0 * np.sin(2 * np.pi * (doy - 105.0) / YEAR_DAYS)
    tmq = 4.0 + 44.0 * np.exp(-(((la - itcz) / 25.0) ** 2))
    tmq += 4.0 * np.cos(lo - np.deg2rad(150.0)) * np.exp(-((la / 20.0) ** 2))
    waves = 700.0 * np.exp(-(((a - 50.0) / 10.0) ** 2)) * np.cos(5 * (lo - np.deg2rad(8.0 * day)))
    psl = 101325.0 + 900.0 * np.exp(-(((a - 30.0) / 10.0) ** 2))
    psl += waves - 1800.0 * np.exp(-(((a - 62.0) / 10.0) ** 2))
    u = -6.0 * np.exp(-(((a - 13.0) / 10.0) ** 2)) + 12.0 * np.exp(-(((a - 45.0) / 11.0) ** 2))
    v = -1.5 * np.sign(la) * np.exp(-(((a - 12.0) / 9.0) ** 2))
    return Fields(tmq, u, v, psl)


@dataclass(frozen=True)
class NoiseSpec:
    """Spatially smooth AR(1) noise: std, Gaussian smoothing length (deg), e-folding
    time (days); ``moist`` scales it with the tropical moisture (see ``moist_scale``)."""

    std: float
    length: float
    time: float
    moist: bool = False


#: Per channel, the sum of a small-scale and (TMQ, winds) a large-scale component: the
#: latter (moist and dry spells, trade-wind surges) is what a local detector must see
#: past, and a fixed threshold cannot.
NOISE = {
    "TMQ": (NoiseSpec(2.0, 5.0, 2.0), NoiseSpec(6.0, 15.0, 5.0, moist=True)),
    "U850": (NoiseSpec(2.0, 4.0, 1.0), NoiseSpec(3.0, 12.0, 3.0)),
    "V850": (NoiseSpec(2.0, 4.0, 1.0), NoiseSpec(3.0, 12.0, 3.0)),
    "PSL": (NoiseSpec(150.0, 6.0, 2.0),),
}


def moist_scale(lat: np.ndarray) -> np.ndarray:
    """Moisture varies most where there is most of it: 1 at the equator, 1/2 at the poles."""
    return 0.5 + 0.5 * np.exp(-((lat / 35.0) ** 2))


class RedNoise:
    """Streams a field of smooth red noise chunk by chunk: white noise smoothed by a
    Gaussian (periodic in longitude), scaled to unit variance, then an AR(1) in time
    with coefficient exp(-dt/time), carried from one chunk to the next."""

    def __init__(self, rng: np.random.Generator, spec: NoiseSpec, resolution: float, dt: float):
        self.rng, self.spec = rng, spec
        self.sigma = spec.length / resolution
        delta = np.zeros(int(8 * self.sigma) * 2 + 1)
        delta[len(delta) // 2] = 1.0
        kernel = ndimage.gaussian_filter1d(delta, self.sigma)
        # smoothed unit white noise has variance sum(k^2) per axis: (sum(k^2))^2 in 2-D
        self.gain = 1.0 / float((kernel**2).sum())
        self.phi = float(np.exp(-dt / spec.time))
        self.state: np.ndarray | None = None

    def next(self, n: int, shape: tuple[int, int]) -> np.ndarray:
        white = self.rng.standard_normal((n, *shape))
        smooth = ndimage.gaussian_filter(
            white, sigma=(0, self.sigma, self.sigma), mode=("nearest", "nearest", "wrap")
        )
        smooth *= self.gain
        out = np.empty_like(smooth)
        first = 0
        if self.state is None:  # start in the stationary state
            self.state, out[0], first = smooth[0], smooth[0], 1
        innovation = np.sqrt(1 - self.phi**2)
        for t in range(first, n):
            self.state = self.phi * self.state + innovation * smooth[t]
            out[t] = self.state
        return out * self.spec.std


# --- the record ------------------------------------------------------------------------


def _calendar(n_steps: int, steps_per_day: int, start_year: int) -> list[tuple[int, int, int, int]]:
    """(year, month, day, hour) of each step on the noleap calendar."""
    starts = np.cumsum((0, *MONTH_DAYS))
    out = []
    for i in range(n_steps):
        day, part = divmod(i, steps_per_day)
        year, doy = divmod(day, YEAR_DAYS)
        month = int(np.searchsorted(starts, doy, side="right"))
        out.append(
            (start_year + year, month, doy - starts[month - 1] + 1, 24 * part // steps_per_day)
        )
    return out


@dataclass(frozen=True)
class Chunk:
    """Consecutive time steps of the record: fields (time, lat, lon), labels, dates."""

    days: np.ndarray
    dates: list[tuple[int, int, int, int]]
    fields: dict[str, np.ndarray]
    labels: np.ndarray


def simulate(
    years: int = 4,
    start_year: int = 1996,
    seed: int = 0,
    resolution: float = 2.5,
    steps_per_day: int = 1,
    days: int | None = None,
) -> Iterator[Chunk]:
    """The record month by month (memory stays at one month). Deterministic for a seed;
    the events depend on ``seed`` and ``years`` only, not on the grid or time step.
    ``days`` keeps only the record's first days (the same maps: a short archive)."""
    lat, lon = grid(resolution)
    geometry = Geometry.of(lat, lon)
    population = events(years, seed)
    specs = [(name, spec) for name, parts in NOISE.items() for spec in parts]
    streams = np.random.SeedSequence(seed).spawn(1)[0].spawn(len(specs))
    noise = [
        (name, spec, RedNoise(np.random.default_rng(stream), spec, resolution, 1 / steps_per_day))
        for (name, spec), stream in zip(specs, streams, strict=True)
    ]
    n_steps = (years * YEAR_DAYS if days is None else days) * steps_per_day
    dates = _calendar(n_steps, steps_per_day, start_year)
    month_of = np.array([(y - start_year) * 12 + m - 1 for y, m, _, _ in dates])
    shape = (len(lat), len(lon))
    for month in np.unique(month_of):
        steps = np.flatnonzero(month_of == month)
        times = steps / steps_per_day
        fields = {name: np.empty((len(steps), *shape), np.float32) for name in CHANNELS}
        labels = np.zeros((len(steps), *shape), np.int64)
        for i, day in enumerate(times):
            f = background(lat, lon, day)
            masks = {}
            for kind, pop in population.items():
                params, age, env = pop.at(day)
                masks[kind] = RENDER[kind](geometry, f, params, age, env)
            labels[i] = np.where(masks["tc"], 1, np.where(masks["ar"], 2, 0))
            for name, values in zip(CHANNELS, (f.tmq, f.u, f.v, f.psl), strict=True):
                fields[name][i] = values
        for name, spec, source in noise:
            values = source.next(len(steps), shape)
            fields[name] += values * moist_scale(lat)[:, None] if spec.moist else values
        fields["TMQ"] = np.maximum(fields["TMQ"], 0.0)
        yield Chunk(times, [dates[s] for s in steps], fields, labels)


# --- files -----------------------------------------------------------------------------


def _dataset(
    days: np.ndarray,
    fields: dict[str, np.ndarray],
    labels: np.ndarray,
    grid_: tuple[np.ndarray, np.ndarray],
    start_year: int,
    seed: int,
) -> xr.Dataset:
    """A CF dataset of ``fields`` (time, lat, lon) and ``labels``, over (time, lat, lon)
    or, as in ClimateNet's files, (lat, lon)."""
    lat, lon = grid_
    data = {name: (("time", "lat", "lon"), values, ATTRS[name]) for name, values in fields.items()}
    data["LABELS"] = (("time", "lat", "lon")[-labels.ndim :], labels, ATTRS["LABELS"])
    time_attrs = {
        "standard_name": "time",
        "axis": "T",
        "units": f"days since {start_year:04d}-01-01 00:00:00",
        "calendar": "noleap",
    }
    return xr.Dataset(
        data,
        coords={
            "time": ("time", days.astype(np.float64), time_attrs),
            "lat": ("lat", lat, {**LAT_ATTRS}),
            "lon": ("lon", lon, {**LON_ATTRS}),
        },
        attrs={
            "title": "geodl-pipeline synthetic extreme events (stands in for ClimateNet / CAM5)",
            "Conventions": "CF-1.8",
            "source": f"synthetic TCs, ARs and look-alikes, seed={seed}",
            "references": "Kashinath et al. (2021), ClimateNet, GMD 14, 107-124",
        },
    )


def _encoding(ds: xr.Dataset) -> dict[str, dict]:
    """float32 with CAM's fill value, int64 labels without one, one chunk per time step."""
    enc: dict[str, dict] = {"time": {"dtype": "float64"}}
    for name, var in ds.data_vars.items():
        chunks = tuple(1 if d == "time" else n for d, n in var.sizes.items())
        common = {"zlib": True, "complevel": 1, "shuffle": True, "chunksizes": chunks}
        if name == "LABELS":
            enc[name] = {"dtype": "int64", "_FillValue": None, **common}
        else:
            enc[name] = {"dtype": "float32", "_FillValue": FILL_VALUE, **common}
    return enc


def _grow_or_shrink(mask: np.ndarray, grow: bool) -> np.ndarray:
    """One-cell dilation or erosion (4-neighbour), periodic in longitude."""
    padded = np.pad(mask, ((1, 1), (0, 0)), constant_values=not grow)
    neighbours = [padded[:-2], padded[2:], np.roll(mask, 1, axis=1), np.roll(mask, -1, axis=1)]
    return (
        mask | np.logical_or.reduce(neighbours)
        if grow
        else mask & np.logical_and.reduce(neighbours)
    )


def expert_labels(labels: np.ndarray, seed: int, step: int, expert: int) -> np.ndarray:
    """Another expert's labels of one map: copy 0 is the truth; copy k > 0 grows or
    shrinks each class mask by one cell (its choice, seeded by seed, step and k)."""
    if expert == 0:
        return labels
    grow = np.random.default_rng([seed, step, expert]).random(2) < 0.5
    tc = _grow_or_shrink(labels == 1, bool(grow[0]))
    ar = _grow_or_shrink(labels == 2, bool(grow[1]))
    return np.where(tc, 1, np.where(ar, 2, 0)).astype(labels.dtype)


def write_extremes(
    out_dir: str | Path,
    *,
    years: int = 4,
    start_year: int = 1996,
    seed: int = 0,
    resolution: float = 2.5,
    steps_per_day: int = 1,
    layout: str = "cam5",
    experts: int = 1,
    days: int | None = None,
) -> list[Path]:
    """Write the archive into ``out_dir`` (each file atomically); return the paths.

    Defaults: 4 noleap years from 1996 (ClimateNet's CAM5 runs start then) of daily maps
    on a 2.5-degree grid (73 x 144): 1460 maps, so that consecutive maps show distinct
    weather; CAM5 writes 3-hourly (``steps_per_day=8``). ``experts`` > 1 needs the
    climatenet layout. ``days`` keeps only the first days of the record.
    """
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {LAYOUTS}, not {layout!r}")
    if experts < 1 or (experts > 1 and layout != "climatenet"):
        raise ValueError(f"experts={experts}: expert copies (> 1) need layout='climatenet'")
    if steps_per_day < 1 or 24 % steps_per_day:
        raise ValueError(f"steps_per_day={steps_per_day} must divide 24")
    if days is not None and not 1 <= days <= years * YEAR_DAYS:
        raise ValueError(f"days={days} must lie in 1..{years * YEAR_DAYS} ({years} years)")
    out_dir = Path(out_dir)
    where = grid(resolution)
    paths: list[Path] = []
    step = 0
    for chunk in simulate(years, start_year, seed, resolution, steps_per_day, days):
        if layout == "cam5":
            year, month, _, _ = chunk.dates[0]
            paths.append(out_dir / f"extremes.cam.h2.{year:04d}-{month:02d}-01-00000.nc")
            ds = _dataset(chunk.days, chunk.fields, chunk.labels, where, start_year, seed)
            write_netcdf(ds, paths[-1], encoding=_encoding(ds), engine="netcdf4")
            continue
        for i, (year, month, day, hour) in enumerate(chunk.dates):
            fields = {name: values[i : i + 1] for name, values in chunk.fields.items()}
            for k in range(experts):
                labels = expert_labels(chunk.labels[i], seed, step, k)
                paths.append(out_dir / f"data-{year:04d}-{month:02d}-{day:02d}-{hour:02d}-1_{k}.nc")
                ds = _dataset(chunk.days[i : i + 1], fields, labels, where, start_year, seed)
                write_netcdf(ds, paths[-1], encoding=_encoding(ds), engine="netcdf4")
            step += 1
    return paths
