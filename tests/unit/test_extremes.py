"""The synthetic extreme-event archive: files, physics of its features, exact labels."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from scipy import ndimage

from pipeline.detectors import components
from pipeline.io import sha256_file
from pipeline.sources import fetch
from pipeline.sources.extremes import (
    EARTH_RADIUS_KM,
    KM_PER_DEG,
    RENDER,
    Geometry,
    NoiseSpec,
    RedNoise,
    background,
    events,
    grid,
    simulate,
    unit_vectors,
    write_extremes,
)

SEED = 3


@pytest.fixture(scope="module")
def record() -> dict[str, np.ndarray]:
    """Two months of daily 2.5-degree maps (the default grid)."""
    chunks = list(simulate(years=1, seed=SEED, days=59))
    out = {name: np.concatenate([c.fields[name] for c in chunks]) for name in chunks[0].fields}
    out["LABELS"] = np.concatenate([c.labels for c in chunks])
    out["days"] = np.concatenate([c.days for c in chunks])
    return out


def _edges(mask: np.ndarray) -> np.ndarray:
    """Cells within one cell (4-neighbours) of the mask's edge, longitude periodic."""
    wrapped = np.pad(mask, ((0, 0), (1, 1)), mode="wrap")
    edges = ndimage.binary_dilation(wrapped) & ~ndimage.binary_erosion(wrapped, border_value=1)
    return edges[:, 1:-1]


def test_files_are_cf_and_byte_identical_per_seed(tmp_path: Path) -> None:
    kwargs = {"years": 1, "days": 40, "resolution": 5.0}
    a = write_extremes(tmp_path / "a", seed=1, **kwargs)
    b = write_extremes(tmp_path / "b", seed=1, **kwargs)
    c = write_extremes(tmp_path / "c", seed=2, **kwargs)
    assert [p.name for p in a] == [
        "extremes.cam.h2.1996-01-01-00000.nc",
        "extremes.cam.h2.1996-02-01-00000.nc",
    ]
    assert [sha256_file(p) for p in a] == [sha256_file(p) for p in b]
    assert sha256_file(a[0]) != sha256_file(c[0])

    raw = xr.open_dataset(a[0], decode_cf=False)
    for name, units in (("TMQ", "kg m-2"), ("U850", "m s-1"), ("V850", "m s-1"), ("PSL", "Pa")):
        assert raw[name].dtype == np.float32
        assert raw[name].dims == ("time", "lat", "lon")
        assert raw[name].attrs["units"] == units
        assert raw[name].attrs["standard_name"] and raw[name].attrs["long_name"]
    assert raw["time"].attrs["units"] == "days since 1996-01-01 00:00:00"
    assert raw["time"].attrs["calendar"] == "noleap"
    assert raw["LABELS"].dtype == np.int64 and "_FillValue" not in raw["LABELS"].attrs
    assert list(raw["LABELS"].attrs["flag_values"]) == [0, 1, 2]
    lat, lon = raw["lat"].values, raw["lon"].values
    assert lat[0] == -90 and lat[-1] == 90 and np.all(np.diff(lat) > 0)
    assert lon[0] == 0 and lon[-1] == 355
    ds = xr.open_dataset(a[1])
    assert ds.sizes["time"] == 9 and str(ds["time"].values[0]) == "1996-02-01 00:00:00"
    assert set(np.unique(ds["LABELS"].values)) <= {0, 1, 2}


def test_climatenet_layout_writes_expert_copies(tmp_path: Path) -> None:
    cam5 = xr.open_dataset(write_extremes(tmp_path / "cam5", years=1, days=2, seed=4)[0])
    paths = write_extremes(tmp_path / "cn", years=1, days=2, seed=4, layout="climatenet", experts=3)
    assert [p.name for p in paths] == [
        f"data-1996-01-0{d}-00-1_{k}.nc" for d in (1, 2) for k in range(3)
    ]
    for day in range(2):
        copies = [xr.open_dataset(p) for p in paths[3 * day : 3 * day + 3]]
        truth = cam5["LABELS"].isel(time=day).values
        assert copies[0]["LABELS"].dims == ("lat", "lon")
        assert copies[0]["LABELS"].dtype == np.int64
        assert copies[0]["TMQ"].dims == ("time", "lat", "lon")
        np.testing.assert_array_equal(copies[0]["LABELS"].values, truth)
        for copy in copies[1:]:
            xr.testing.assert_identical(copy.drop_vars("LABELS"), copies[0].drop_vars("LABELS"))
            differ = copy["LABELS"].values != truth
            # another expert moves the edges of the masks by one cell, and only them
            assert differ.any()
            assert np.all((_edges(truth == 1) | _edges(truth == 2))[differ])
    with pytest.raises(ValueError, match="climatenet"):
        write_extremes(tmp_path / "x", years=1, days=1, experts=2)


def test_synthetic_source_dispatches_to_extremes(tmp_path: Path) -> None:
    source = {"kind": "synthetic", "generator": "extremes", "years": 1, "days": 3}
    source |= {"resolution": 10.0, "layout": "climatenet"}
    manifest = fetch("storms", {"source": source}, tmp_path)
    names = [Path(f["path"]).name for f in manifest["files"]]
    assert names == [f"data-1996-01-0{d}-00-1_0.nc" for d in (1, 2, 3)]
    assert {f["role"] for f in manifest["files"]} == {"data"}


def test_class_frequencies_are_close_to_climatenet() -> None:
    """ClimateNet: 93.7% background, 0.5% TC, 5.8% AR (Kashinath et al. 2021)."""
    labels = np.concatenate([c.labels for c in simulate(years=1, seed=SEED, resolution=5.0)])
    tc, ar = (labels == 1).mean(), (labels == 2).mean()
    assert 0.003 < tc < 0.008, tc
    assert 0.045 < ar < 0.075, ar


def test_tropical_cyclones_spin_cyclonically_between_5_and_35_degrees(record: dict) -> None:
    lat, lon = grid()
    phi = np.deg2rad(lat)[:, None]
    dx = 2 * np.deg2rad(lon[1] - lon[0]) * EARTH_RADIUS_KM * 1e3 * np.cos(phi)
    dy = 2 * np.deg2rad(lat[1] - lat[0]) * EARTH_RADIUS_KM * 1e3
    n_storms = 0
    for t in range(len(record["days"])):
        u, v = record["U850"][t].astype(float), record["V850"][t].astype(float)
        with np.errstate(divide="ignore", invalid="ignore"):  # at the poles
            dv_dx = (np.roll(v, -1, axis=1) - np.roll(v, 1, axis=1)) / dx
            du_dy = (np.roll(u, -1, axis=0) - np.roll(u, 1, axis=0)) / dy
            vorticity = dv_dx - du_dy + u * np.tan(phi) / (EARTH_RADIUS_KM * 1e3)
        regions, n = components(record["LABELS"][t][None] == 1)
        for k in range(1, n + 1):
            rows, cols = np.nonzero(regions[0] == k)
            centre = lat[rows].mean()
            assert 5 <= abs(centre) <= 35, centre
            assert np.sign(vorticity[rows, cols].mean()) == np.sign(centre)
            n_storms += 1
    assert n_storms > 20


def test_atmospheric_rivers_are_long_narrow_and_tilted_poleward_east() -> None:
    """Each river on its own (in the record they may cross): its label's end-to-end
    length, mean width (area / length) and which way it heads from its tropical end."""
    lat, lon = grid()
    g = Geometry.of(lat, lon)
    cell_km2 = (KM_PER_DEG * 2.5) ** 2 * np.cos(np.deg2rad(lat))[:, None] * np.ones(len(lon))
    rivers = events(years=1, seed=SEED)["ar"]
    for i in np.flatnonzero(rivers.birth > 0)[:40]:
        params = {name: values[i : i + 1] for name, values in rivers.params.items()}
        age = rivers.life[i : i + 1] / 2
        f = background(lat, lon, float(rivers.birth[i] + age[0]))
        rows, cols = np.nonzero(RENDER["ar"](g, f, params, age, np.ones(1)))
        p = unit_vectors(lat[rows], lon[cols])
        ends = np.unravel_index(np.argmin(p @ p.T), (len(p), len(p)))
        length = EARTH_RADIUS_KM * np.arccos(np.clip(p[ends[0]] @ p[ends[1]], -1, 1))
        width = cell_km2[rows, cols].sum() / length
        assert length > 4000 and 500 < width < 1000, (length, width)
        tropical, polar = sorted(ends, key=lambda e: abs(lat[rows[e]]))
        assert abs(lat[rows[tropical]]) <= 25 and abs(lat[rows[polar]]) >= 30
        assert 0 < (lon[cols[polar]] - lon[cols[tropical]]) % 360 < 180  # heads east


def test_look_alikes_carry_strong_signals_and_no_label() -> None:
    lat, lon = grid()
    g = Geometry.of(lat, lon)
    for kind, look_alikes in events(years=1, seed=SEED).items():
        if kind in ("tc", "ar"):
            continue
        day = float(look_alikes.birth[look_alikes.birth > 0][0] + 1.0)  # one in its prime
        params, age, envelope = look_alikes.at(day)
        prime = envelope == 1
        f, quiet = background(lat, lon, day), background(lat, lon, day)
        mask = RENDER[kind](
            g, f, {k: v[prime] for k, v in params.items()}, age[prime], envelope[prime]
        )
        assert mask is None or not mask.any()
        moist = (f.tmq - quiet.tmq).max()
        low = (f.psl - quiet.psl).min()
        wind = np.hypot(f.u - quiet.u, f.v - quiet.v).max()
        if kind == "blob":  # as moist as a TC core (15-25 kg m-2)
            assert moist > 12 and wind == 0
        elif kind == "low":  # a pressure minimum with weak winds
            assert low < -500 and 0 < wind < 7 and moist == 0
        else:  # a dry jet: the winds of an AR without its moisture
            assert wind > 12 and moist == 0


def test_red_noise_has_its_std_and_memory() -> None:
    spec = NoiseSpec(std=3.0, length=5.0, time=2.0)
    noise = RedNoise(np.random.default_rng(0), spec, resolution=2.5, dt=0.5)
    series = np.concatenate([noise.next(100, (73, 144)) for _ in range(4)])  # chunks join
    assert abs(series[:, 10:-10].std() / spec.std - 1) < 0.1
    lag1 = np.mean(series[1:] * series[:-1]) / np.mean(series**2)
    assert abs(lag1 - np.exp(-0.5 / 2.0)) < 0.05
