"""Threshold-heuristic detector of tropical cyclones and atmospheric rivers.

The segmentation baseline, in the manner of TECA's detectors (Prabhat et al. 2012,
"TECA: a parallel toolkit for extreme climate analysis", Procedia CS 9): no learning
beyond a few thresholds, fitted on the train split by a small grid search that
maximises each class's IoU there.

- AR: connected regions of high precipitable water (TMQ above its zonal mean) that are
  long (> 2000 km) and elongated (length / width above a fitted ratio), the geometric AR
  criteria of Ralph et al. (2004) and Guan & Waliser (2015).
- TC: connected regions of strong wind, inside the latitude band where TCs were labelled,
  around a deep sea-level pressure minimum (below its zonal mean), holes (eyes) filled.
  TC wins where both apply.

Every channel enters as its zonal anomaly divided by that anomaly's train standard
deviation, so the detector gives the same answer on physical units and on channels
normalised as (x - mean) / std: the pipeline hands it normalised channels. On a global
grid, regions are connected across the 0/360 longitude seam.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

CHANNELS = ("TMQ", "U850", "V850", "PSL")
EARTH_RADIUS_KM = 6371.0
#: An AR is at least this long (Ralph et al. 2004).
AR_MIN_LENGTH_KM = 2000.0
#: Candidate thresholds: quantiles of the train anomalies (in the TC band for TCs).
AR_MOISTURE_QUANTILES = (0.85, 0.88, 0.9, 0.92, 0.94, 0.96, 0.98)
AR_ELONGATIONS = (1.5, 2.0, 2.5, 3.0, 4.0)
TC_WIND_QUANTILES = (0.9, 0.93, 0.95, 0.97, 0.98, 0.99, 0.995)
TC_PRESSURE_QUANTILES = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05)
#: Connectivity of regions: the 8 neighbours within a map; maps (axis 0) never touch.
_NEIGHBOURS = np.zeros((3, 3, 3), dtype=bool)
_NEIGHBOURS[1] = True


@dataclass(frozen=True)
class Features:
    """Per-cell inputs of the rules, each (N, lat, lon), in train standard deviations."""

    moisture: np.ndarray
    pressure: np.ndarray
    wind: np.ndarray


def _zonal_anomaly(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return x - x.mean(axis=-1, keepdims=True)


def _check(fields: Mapping[str, np.ndarray], lat: np.ndarray, lon: np.ndarray) -> None:
    missing = [c for c in CHANNELS if c not in fields]
    if missing:
        raise ValueError(f"the threshold detector needs channels {CHANNELS}; missing {missing}")
    for name in CHANNELS:
        shape = np.shape(fields[name])
        if len(shape) != 3 or shape[1:] != (len(lat), len(lon)):
            raise ValueError(
                f"channel {name} has shape {shape}; expected (N, {len(lat)}, {len(lon)}) "
                "(maps over the given lat and lon)"
            )


def features(fields: Mapping[str, np.ndarray], scale: Mapping[str, float]) -> Features:
    """Zonal anomalies over their train scale; wind is the anomaly vector's magnitude."""
    z = {name: _zonal_anomaly(fields[name]) / scale[name] for name in CHANNELS}
    return Features(z["TMQ"], z["PSL"], np.hypot(z["U850"], z["V850"]))


def is_global(lon: np.ndarray) -> bool:
    """Whether regular longitudes ``lon`` go once around the globe (so wrap)."""
    step = abs(float(lon[1] - lon[0])) if len(lon) > 1 else 0.0
    return step > 0 and abs(len(lon) * step - 360.0) < step / 2


def components(mask: np.ndarray, periodic: bool = True) -> tuple[np.ndarray, int]:
    """Connected regions of each map of ``mask`` (N, lat, lon), joined across the
    longitude seam when ``periodic``; labels 1..n are unique over all maps, 0 is outside."""
    labels, n = ndimage.label(mask, structure=_NEIGHBOURS)
    if not periodic:
        return labels, n
    west, east = labels[..., 0], labels[..., -1]
    pairs = (west > 0) & (east > 0)
    if not pairs.any():
        return labels, n
    graph = coo_matrix(
        (np.ones(int(pairs.sum())), (west[pairs], east[pairs])), shape=(n + 1, n + 1)
    )
    n_merged, merged = connected_components(graph, directed=False)
    merged = np.where(merged == merged[0], 0, np.where(merged == 0, merged[0], merged))
    return merged[labels], n_merged - 1


def _iou(predicted: np.ndarray, truth: np.ndarray) -> float:
    union = np.count_nonzero(predicted | truth)
    return np.count_nonzero(predicted & truth) / union if union else 1.0


def _shape(labels: np.ndarray, n: int, lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    """(length, width) in km of regions 1..n. The length is that of a uniform band with
    the same second moment along its major axis (variance = length^2 / 12) on the sphere;
    the width is the area over that length, which a bend does not inflate."""
    _, i, j = np.nonzero(labels)
    index = labels[labels > 0]
    la, lo = np.deg2rad(lat)[i], np.deg2rad(lon)[j]
    xyz = (np.cos(la) * np.cos(lo), np.cos(la) * np.sin(lo), np.sin(la))
    weight = np.cos(la)

    def mean(values: np.ndarray) -> np.ndarray:
        return np.bincount(index, weights=weight * values, minlength=n + 1)[1:] / total

    total = np.maximum(np.bincount(index, weights=weight, minlength=n + 1)[1:], 1e-12)
    centre = np.stack([mean(c) for c in xyz], axis=-1)
    cov = np.empty((n, 3, 3))
    for a in range(3):
        for b in range(a, 3):
            cov[:, a, b] = cov[:, b, a] = mean(xyz[a] * xyz[b]) - centre[:, a] * centre[:, b]
    major = np.clip(np.linalg.eigvalsh(cov)[:, -1], 0.0, None)
    length = EARTH_RADIUS_KM * np.sqrt(12 * major)
    cell = EARTH_RADIUS_KM**2 * np.deg2rad(abs(lat[1] - lat[0])) * np.deg2rad(lon[1] - lon[0])
    area = cell * total  # km2: cells of cos(lat) * cell
    return np.stack([length, area / np.maximum(length, 1e-6)], axis=-1)


def _ar_regions(
    f: Features, threshold: float, lat: np.ndarray, lon: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Moist regions: their labels and (length, width)."""
    labels, n = components(f.moisture > threshold, is_global(lon))
    return labels, _shape(labels, n, lat, lon)


def _elongated(size: np.ndarray, elongation: float) -> np.ndarray:
    """Per label (0 first, never kept): long enough and ``elongation`` times longer
    than wide."""
    keep = (size[:, 0] >= AR_MIN_LENGTH_KM) & (size[:, 0] >= elongation * size[:, 1])
    return np.concatenate([[False], keep])


def _tc_regions(
    f: Features, wind: float, band: np.ndarray, periodic: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Windy regions in the band, eyes filled: their labels and their deepest pressure
    (per label, +inf for label 0)."""
    windy = np.pad((f.wind > wind) & band[:, None], ((1, 1), (0, 0), (0, 0)))
    # padded with empty maps: the first and last maps are not on the border in time
    windy = ndimage.binary_fill_holes(windy, structure=_NEIGHBOURS)[1:-1]
    labels, n = components(windy, periodic)
    deepest = np.full(n + 1, np.inf)
    inside = labels > 0
    np.minimum.at(deepest, labels[inside], f.pressure[inside])
    return labels, deepest


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1 + np.tanh(0.5 * x))


@dataclass(frozen=True)
class ThresholdDetector:
    """Fitted thresholds; moisture, wind and pressure in train standard deviations of
    the zonal anomalies (``scale``, per channel, in the units the detector was fitted on)."""

    lat: np.ndarray
    lon: np.ndarray
    scale: dict[str, float]
    ar_moisture: float
    ar_elongation: float
    tc_wind: float
    tc_pressure: float
    tc_band: tuple[float, float]
    train_iou: dict[str, float]

    def _band(self) -> np.ndarray:
        lo, hi = self.tc_band
        return (np.abs(self.lat) >= lo) & (np.abs(self.lat) <= hi)

    def _masks(self, f: Features) -> tuple[np.ndarray, np.ndarray]:
        labels, deepest = _tc_regions(f, self.tc_wind, self._band(), is_global(self.lon))
        tc = (deepest < self.tc_pressure)[labels]
        regions, size = _ar_regions(f, self.ar_moisture, self.lat, self.lon)
        return tc, _elongated(size, self.ar_elongation)[regions] & ~tc

    def predict(self, fields: Mapping[str, np.ndarray]) -> np.ndarray:
        """Class per cell, (N, lat, lon): 0 background, 1 TC, 2 AR."""
        _check(fields, self.lat, self.lon)
        tc, ar = self._masks(features(fields, self.scale))
        return np.where(tc, 1, np.where(ar, 2, 0)).astype(np.int64)

    def probabilities(self, fields: Mapping[str, np.ndarray]) -> np.ndarray:
        """Class scores (N, 3, lat, lon), summing to 1, whose argmax is ``predict``.

        Each class's score is 3/4 for its decision plus 1/4 of a sigmoid of the cell's
        margin over the class's threshold (wind for TC, moisture for AR), so that ROC and
        PR curves have more than one point; TC takes its share first, then AR.
        """
        _check(fields, self.lat, self.lon)
        f = features(fields, self.scale)
        tc, ar = self._masks(f)
        tc_margin = np.where(self._band()[:, None], f.wind - self.tc_wind, -np.inf)
        r_tc = 0.75 * tc + 0.25 * _sigmoid(tc_margin)
        r_ar = 0.75 * ar + 0.25 * _sigmoid(f.moisture - self.ar_moisture)
        p_ar = (1 - r_tc) * r_ar
        return np.stack([1 - r_tc - p_ar, r_tc, p_ar], axis=1).astype(np.float32)


def fit_threshold_detector(
    fields: Mapping[str, np.ndarray],
    labels: np.ndarray,
    lat: np.ndarray,
    lon: np.ndarray,
) -> ThresholdDetector:
    """Fit the thresholds on train maps: ``fields`` maps each channel to (N, lat, lon),
    ``labels`` (N, lat, lon) holds 0/1/2; ``lat``, ``lon`` are the 1-D coordinates."""
    lat, lon = np.asarray(lat, dtype=np.float64), np.asarray(lon, dtype=np.float64)
    _check(fields, lat, lon)
    labels = np.asarray(labels)
    if labels.shape != np.shape(fields["TMQ"]):
        raise ValueError(
            f"labels have shape {labels.shape}; the channels {np.shape(fields['TMQ'])}"
        )
    scale = {}
    for name in CHANNELS:
        sd = float(_zonal_anomaly(fields[name]).std())
        scale[name] = sd if sd > 0 else 1.0
    f = features(fields, scale)
    is_tc, is_ar = labels == 1, labels == 2

    tc_lat = np.abs(np.broadcast_to(lat[:, None], labels.shape[1:]))[is_tc.any(axis=0)]
    band = (float(tc_lat.min()), float(tc_lat.max())) if tc_lat.size else (0.0, 0.0)
    in_band = (np.abs(lat) >= band[0]) & (np.abs(lat) <= band[1])
    tc_best = (-1.0, np.inf, -np.inf)  # (iou, wind, pressure)
    if tc_lat.size:
        band_pressure = f.pressure[:, in_band]
        pressures = np.quantile(band_pressure, TC_PRESSURE_QUANTILES)
        for wind in np.quantile(f.wind[:, in_band], TC_WIND_QUANTILES):
            regions, deepest = _tc_regions(f, float(wind), in_band, is_global(lon))
            for pressure in pressures:
                iou = _iou((deepest < pressure)[regions], is_tc)
                if iou > tc_best[0]:
                    tc_best = (iou, float(wind), float(pressure))

    ar_best = (-1.0, np.inf, np.inf)  # (iou, moisture, elongation)
    for moisture in np.quantile(f.moisture, AR_MOISTURE_QUANTILES):
        regions, size = _ar_regions(f, float(moisture), lat, lon)
        for elongation in AR_ELONGATIONS:
            iou = _iou(_elongated(size, elongation)[regions], is_ar)
            if iou > ar_best[0]:
                ar_best = (iou, float(moisture), elongation)

    return ThresholdDetector(
        lat=lat,
        lon=lon,
        scale=scale,
        ar_moisture=ar_best[1],
        ar_elongation=ar_best[2],
        tc_wind=tc_best[1],
        tc_pressure=tc_best[2],
        tc_band=band,
        train_iou={"tropical_cyclone": max(tc_best[0], 0.0), "atmospheric_river": ar_best[0]},
    )
