"""Regridding: conventions, the seam, NaN masks, out-of-core memory."""

from __future__ import annotations

import tracemalloc

import dask
import numpy as np
import pytest
import xarray as xr

from pipeline.conservative import latitude_weights, longitude_weights
from pipeline.regrid import is_global_longitude, regrid, regrid_dataset, target_grid

GRID = {
    "resolution": 10.0,
    "lat": [-60, 60],
    "lon": [0, 360],
    "method": "conservative",
    "nan_threshold": 0.5,
    "time_chunk": 10,
}


def field(lat_desc: bool = True, lon: np.ndarray | None = None, n_time: int = 2) -> xr.Dataset:
    lat = np.arange(-89.0, 90.0, 2.0)
    lat = lat[::-1] if lat_desc else lat
    lon = np.arange(0.0, 360.0, 2.0) if lon is None else lon
    la, lo = np.meshgrid(lat, lon, indexing="ij")
    values = 10 + np.cos(np.deg2rad(la)) * np.cos(np.deg2rad(lo)) * 5 + np.sin(np.deg2rad(2 * la))
    data = np.stack([values + t for t in range(n_time)])
    time = xr.date_range("2000-01-01", periods=n_time, freq="MS")
    return xr.Dataset(
        {"v": (("time", "lat", "lon"), data)}, coords={"time": time, "lat": lat, "lon": lon}
    )


def test_target_grid_conventions() -> None:
    g = target_grid({**GRID, "lon": [-180, 180]})
    assert g["lat"].values[0] == -55 and np.all(np.diff(g["lat"]) > 0)
    assert g["lon"].values[0] == -175 and g["lon"].values[-1] == 175


@pytest.mark.parametrize("method", ["linear", "conservative"])
def test_latitude_order_does_not_matter(method: str) -> None:
    grid = {**GRID, "method": method}
    a = regrid(field(lat_desc=True), grid)
    b = regrid(field(lat_desc=False), grid)
    xr.testing.assert_allclose(a, b)
    assert np.all(np.diff(a["lat"]) > 0)


@pytest.mark.parametrize("method", ["linear", "conservative"])
def test_longitude_conventions_agree(method: str) -> None:
    src = field()
    west = regrid(src, {**GRID, "method": method, "lon": [-180, 180]})
    east = regrid(src, {**GRID, "method": method})
    assert west["lon"].min() < 0
    wrapped = west.assign_coords(lon=west["lon"] % 360).sortby("lon")
    np.testing.assert_allclose(wrapped["v"].values, east["v"].values, rtol=1e-12)


def test_source_in_minus180_convention_gives_same_result() -> None:
    src = field()
    shifted = src.assign_coords(lon=((src["lon"] + 180) % 360) - 180).sortby("lon")
    np.testing.assert_allclose(regrid(shifted, GRID)["v"], regrid(src, GRID)["v"], rtol=1e-12)


def test_seam_cell_is_filled_from_both_sides() -> None:
    # A field that is 1 east of 355 and 0 elsewhere: the cell 355..5 sees half of it.
    src = field()
    src["v"][:] = xr.where((src["lon"] >= 356) | (src["lon"] <= 358), 0.0, 0.0)
    src["v"].loc[{"lon": 358.0}] = 2.0  # the source cell 357..359
    out = regrid(src, {**GRID, "lon": [-5, 355]})
    seam = out["v"].sel(lon=0.0).isel(time=0)
    np.testing.assert_allclose(seam.values, 2.0 * 2 / 10, rtol=1e-12)


PACIFIC = np.arange(121.0, 280.0, 2.0)  # 2-degree cells from 120E to 80W


@pytest.mark.parametrize("method", ["linear", "conservative"])
@pytest.mark.parametrize("lon", [PACIFIC, PACIFIC - 360], ids=["0..360", "negative"])
def test_regional_domain_is_nan_outside_and_never_wrapped(method: str, lon: np.ndarray) -> None:
    """The Pacific on a -180..180 grid: values inside the domain, NaN across the gap."""
    out = regrid(field(lon=lon), {**GRID, "method": method, "lon": [-180, 180]})["v"]
    inside = (out["lon"] >= 125) | (out["lon"] <= -85)
    assert out.where(inside, drop=True).notnull().all()
    assert out.where(~inside & (out["lon"] > -75) & (out["lon"] < 115), drop=True).isnull().all()
    # values come from the nearest source cells only: as on a 0..360 grid, where no seam is
    east = regrid(field(lon=lon), {**GRID, "method": method})["v"]
    wrapped = out.assign_coords(lon=out["lon"] % 360).sortby("lon")
    np.testing.assert_allclose(wrapped.values, east.values, rtol=1e-12)


@pytest.mark.parametrize("method", ["linear", "conservative"])
def test_domain_stored_on_both_sides_of_zero_stays_one_piece(method: str) -> None:
    """50W-90E stored as 0..90 then 310..360 (a 0..360 archive's subset) is not a global
    field with a hole: it regrids as the one run -50..90, NaN over 90E-50W."""
    run = field(lon=np.arange(-49.0, 90.0, 2.0))
    split = run.assign_coords(lon=run["lon"] % 360).sortby("lon")
    grid = {**GRID, "method": method}
    a, b = regrid(split, grid)["v"], regrid(run, grid)["v"]
    np.testing.assert_allclose(a.values, b.values, rtol=1e-12)
    assert a.sel(lon=slice(100, 300)).isnull().all()
    assert a.sel(lon=slice(0, 80)).notnull().all() and a.sel(lon=slice(320, 360)).notnull().all()


@pytest.mark.parametrize("method", ["linear", "conservative"])
def test_global_field_still_wraps_across_the_seam(method: str) -> None:
    out = regrid(field(), {**GRID, "method": method, "lon": [-5, 355]})["v"]
    assert out.notnull().all()  # the seam cells (0 and 350) are filled from both sides
    east = regrid(field(), {**GRID, "method": method, "lon": [-180, 180]})["v"]
    assert east.notnull().all()


def test_global_longitude_means_n_times_spacing_is_360() -> None:
    assert is_global_longitude(np.arange(0.0, 360.0, 2.0))
    assert is_global_longitude(np.arange(-179.5, 180.0, 1.0)[::-1])
    assert not is_global_longitude(PACIFIC)
    assert not is_global_longitude(np.arange(0.0, 358.0, 2.0))  # one column short


def test_conservative_weights_sum_to_cell_areas() -> None:
    src = np.arange(-89.0, 90.0, 2.0)
    tgt = np.arange(-87.5, 90.0, 5.0)
    w = latitude_weights(src, tgt)
    exact = np.sin(np.deg2rad(tgt + 2.5)) - np.sin(np.deg2rad(tgt - 2.5))
    np.testing.assert_allclose(w.sum(axis=1), exact, rtol=1e-12)
    wl = longitude_weights(np.arange(0.0, 360.0, 2.0), np.arange(2.5, 360.0, 5.0))
    np.testing.assert_allclose(wl.sum(axis=1), 5.0)


def test_land_stays_nan_and_does_not_bleed() -> None:
    src = field()
    land = (src["lon"] >= 100) & (src["lon"] < 140) & (np.abs(src["lat"]) < 30)
    src["v"] = src["v"].where(~land)
    out = regrid(src, GRID)["v"].isel(time=0)
    # cells fully inside the land box are NaN ...
    assert out.sel(lat=slice(-20, 20), lon=slice(105, 135)).isnull().all()
    # ... while ocean cells next to the coast keep finite values equal to the ocean-only mean
    coast = out.sel(lat=5.0, lon=95.0)
    assert np.isfinite(coast)
    lin = regrid(src, {**GRID, "method": "linear"})["v"].isel(time=0)
    assert np.isfinite(lin.sel(lat=5.0, lon=85.0))
    assert lin.sel(lat=5.0, lon=115.0).isnull()


def test_nan_threshold_controls_coastal_cells() -> None:
    src = field()
    src["v"] = src["v"].where(src["lon"] < 96)  # a coast cutting cell 90..100 at 96
    strict = regrid(src, {**GRID, "nan_threshold": 0.0})["v"].sel(lon=95.0)
    loose = regrid(src, {**GRID, "nan_threshold": 0.9})["v"].sel(lon=95.0)
    assert strict.isnull().all() and loose.notnull().all()


def test_peak_memory_is_bounded_by_the_chunk(tmp_path, tiny_enso) -> None:
    """Regrid 4 and then 20 one-year chunks: the traced peak grows far slower than the data.

    An eager regrid would hold the whole record (peak growing at least 1:1 with the data);
    the chunked one holds a few chunks plus a task graph that grows a little per chunk.
    """

    def peak(n_years: int) -> int:
        src = xr.open_dataset(tiny_enso["data"]).isel(time=slice(0, 12 * n_years))
        path = tmp_path / f"src{n_years}.nc"
        src.to_netcdf(path)
        manifest = {"dataset": "m", "files": [{"path": str(path), "role": "data"}]}
        tracemalloc.start()
        with dask.config.set(scheduler="synchronous"):
            regrid_dataset(manifest, {}, {**GRID, "time_chunk": 12}, tmp_path / f"o{n_years}.zarr")
        _, top = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        return top

    year_bytes = 12 * 44 * 90 * 4 * 2  # one chunk: a year of both variables, float32
    small, large = peak(4), peak(20)
    data_growth = 16 * year_bytes
    print(
        f"peak traced memory: {small / 1e6:.2f} MB for 4 chunks, {large / 1e6:.2f} MB for 20 "
        f"(data {20 * year_bytes / 1e6:.1f} MB)"
    )
    assert large - small < 0.35 * data_growth, (small, large, data_growth)
    assert large < 0.5 * 20 * year_bytes, (large, 20 * year_bytes)


@pytest.mark.parametrize("method", ["conservative", "linear"])
def test_a_repeated_end_column_is_the_same_global_grid(method: str) -> None:
    # many archives store 0..360 inclusive: the last column repeats the first
    closed = field(lon=np.arange(0.0, 361.0, 2.0))
    grid = {**GRID, "method": method}
    np.testing.assert_allclose(regrid(closed, grid)["v"], regrid(field(), grid)["v"], rtol=1e-12)
