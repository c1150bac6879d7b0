"""Regridding: conventions, the seam, NaN masks, out-of-core memory, class labels."""

from __future__ import annotations

import tracemalloc

import dask
import numpy as np
import pytest
import xarray as xr

from pipeline.conservative import latitude_weights, longitude_weights
from pipeline.regrid import is_global_longitude, regrid, regrid_dataset, target_grid
from pipeline.variables import is_categorical

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


# -- class labels: the class covering most of each cell, never an average


def labels_field(lat: np.ndarray, lon: np.ndarray, seed: int = 0, n_time: int = 2) -> xr.Dataset:
    """Random classes 0..2 (int8) on the given cell centres, beside a continuous 'v'."""
    rng = np.random.default_rng(seed)
    shape = (n_time, lat.size, lon.size)
    time = xr.date_range("2000-01-01", periods=n_time, freq="MS")
    return xr.Dataset(
        {
            "label": (("time", "lat", "lon"), rng.integers(0, 3, shape).astype("i1")),
            "v": (("time", "lat", "lon"), rng.normal(size=shape)),
        },
        coords={"time": time, "lat": lat, "lon": lon},
    )


def block_areas(labels: np.ndarray, lat: np.ndarray, k: int) -> np.ndarray:
    """Area of each class in each k x k block of cells (cell area ~ the sin-lat span)."""
    half = np.abs(np.diff(lat)[0]) / 2
    area = np.sin(np.deg2rad(lat + half)) - np.sin(np.deg2rad(lat - half))
    n_lat, n_lon = labels.shape[-2] // k, labels.shape[-1] // k
    blocks = labels.reshape(*labels.shape[:-2], n_lat, k, n_lon, k)
    weights = area.reshape(n_lat, k)[:, :, None, None]
    return np.stack([((blocks == c) * weights).sum((-3, -1)) for c in range(3)], -1)


def test_labels_take_the_class_covering_most_of_each_cell() -> None:
    lat, lon = np.arange(-59.0, 60.0, 2.0), np.arange(1.0, 360.0, 2.0)
    src = labels_field(lat, lon)
    out = regrid(src, {**GRID, "resolution": 10.0})
    assert out["label"].dtype == np.int8  # an integer in, an integer out
    areas = block_areas(src["label"].values, lat, k=5)
    top = np.sort(areas, -1)
    clear = top[..., -1] > top[..., -2] * (1 + 1e-9)  # no tie between the two largest
    np.testing.assert_array_equal(out["label"].values[clear], areas.argmax(-1)[clear])
    assert clear.mean() > 0.9
    # the continuous variable beside it is regridded as before, untouched by the labels
    xr.testing.assert_identical(out["v"], regrid(src[["v"]], {**GRID, "resolution": 10.0})["v"])


def test_an_exact_tie_goes_to_the_smaller_class() -> None:
    src = labels_field(np.arange(-57.5, 60.0, 5.0), np.arange(2.5, 360.0, 5.0), n_time=1)
    src["label"][:] = xr.where(src["lon"] % 10 < 5, 2, 1)  # every 10-degree cell: half 2, half 1
    assert (regrid(src, GRID)["label"] == 1).all()


def test_refining_labels_copies_the_source_cell_holding_each_target_cell() -> None:
    src = labels_field(np.arange(-55.0, 60.0, 10.0), np.arange(5.0, 360.0, 10.0))
    out = regrid(src, {**GRID, "resolution": 2.5, "lat": [-60, 60]})["label"]
    expected = src["label"].values.repeat(4, axis=1).repeat(4, axis=2)
    np.testing.assert_array_equal(out.values, expected)


def test_unlabelled_area_follows_the_nan_threshold() -> None:
    lat, lon = np.arange(-59.0, 60.0, 2.0), np.arange(1.0, 360.0, 2.0)
    src = labels_field(lat, lon, n_time=1)
    src["label"][:] = 2
    src["label"].loc[{"lon": slice(0, 6)}] = -1  # 3 of the 5 columns of the cell 0..10 E
    src["label"].loc[{"lon": slice(100, 110)}] = -1  # the cell 100..110 E wholly
    strict = regrid(src, {**GRID, "nan_threshold": 0.5})["label"].isel(time=0)
    loose = regrid(src, {**GRID, "nan_threshold": 0.9})["label"].isel(time=0)
    assert (strict.sel(lon=5.0) == -1).all() and (loose.sel(lon=5.0) == 2).all()
    assert (loose.sel(lon=105.0) == -1).all() and (loose.sel(lon=115.0) == 2).all()
    unlabelled = regrid(src.assign(label=src["label"] * 0 - 1), GRID)["label"]
    assert (unlabelled == -1).all() and unlabelled.dtype == np.int8


@pytest.mark.parametrize("lon", [PACIFIC, PACIFIC - 360], ids=["0..360", "negative"])
def test_labels_of_a_regional_domain_are_missing_outside_and_never_wrapped(lon) -> None:
    src = labels_field(np.arange(-59.0, 60.0, 2.0), lon)
    out = regrid(src, {**GRID, "lon": [-180, 180]})["label"]
    inside = (out["lon"] >= 125) | (out["lon"] <= -85)
    assert (out.where(inside, drop=True) >= 0).all()
    assert (out.where(~inside & (out["lon"] > -75) & (out["lon"] < 115), drop=True) == -1).all()
    east = regrid(src, GRID)["label"]
    wrapped = out.assign_coords(lon=out["lon"] % 360).sortby("lon")
    np.testing.assert_array_equal(wrapped.values, east.values)


def test_labels_across_the_seam() -> None:
    """Cells straddling 0E (a grid from -5E) get the classes of both sides: the same as
    the field shifted 5 degrees east on a grid from 0E, where no cell straddles it."""
    src = labels_field(np.arange(-59.0, 60.0, 2.0), np.arange(1.0, 360.0, 2.0))
    seam = regrid(src, {**GRID, "lon": [-5, 355]})["label"]
    shifted = regrid(src.assign_coords(lon=src["lon"] + 5), GRID)["label"]
    assert (seam >= 0).all()
    np.testing.assert_array_equal(seam.values, shifted.values)


@pytest.mark.parametrize(
    ("values", "attrs", "encoding", "categorical"),
    [
        (np.array([0, 1, 2], dtype="i8"), {}, {}, True),
        (np.array([0.0, 1.0, np.nan]), {"flag_values": [0, 1], "flag_meanings": "a b"}, {}, True),
        (np.array([0.0, 1.0, np.nan]), {}, {"dtype": np.dtype("i1"), "_FillValue": -9}, True),
        (np.array([0.5, 1.0, np.nan]), {}, {"dtype": np.dtype("i2"), "scale_factor": 0.5}, False),
        (np.array([0.5, 1.0, 2.0]), {"units": "K"}, {}, False),
    ],
    ids=["integer", "cf-flags", "integer-on-disk", "packed-quantity", "float"],
)
def test_which_variables_are_labels(values, attrs, encoding, categorical) -> None:
    da = xr.DataArray(values, dims="x", attrs=attrs)
    da.encoding = encoding
    assert is_categorical(da) is categorical


def test_a_decoded_fill_value_becomes_missing_in_an_integer_store(tmp_path) -> None:
    """An int8 label with a _FillValue decodes to float with NaN: stored as int8, -1."""
    src = labels_field(np.arange(-59.0, 60.0, 2.0), np.arange(1.0, 360.0, 2.0))
    src["label"].loc[{"lon": slice(100, 110)}] = -9
    src["label"].encoding = {"_FillValue": np.int8(-9)}
    path = tmp_path / "labels.nc"
    src.to_netcdf(path)
    assert xr.open_dataset(path)["label"].dtype.kind == "f"
    manifest = {"dataset": "m", "files": [{"path": str(path), "role": "data"}]}
    regrid_dataset(manifest, {}, GRID, tmp_path / "o.zarr")
    out = xr.open_zarr(tmp_path / "o.zarr")
    assert out["label"].dtype == np.int8 and out["v"].dtype == np.float32
    assert (out["label"].sel(lon=105.0) == -1).all() and (out["label"].sel(lon=95.0) >= 0).all()


@pytest.mark.parametrize("west", [0.0, -180.0])
def test_separable_bilinear_matches_xarray_regrid_nan_where_a_neighbour_is(west: float) -> None:
    """The fast linear path (sparse separable weights) against xarray-regrid's linear on
    a field with land: the same values, and NaN wherever one of four neighbours is NaN."""
    from pipeline.conservative import regrid_linear
    from pipeline.regrid import normalise_coords, target_grid

    src = field(lat_desc=False)
    src["v"] = src["v"].where(~((src["lat"] > 10) & (src["lat"] < 30) & (src["lon"] < 60)))
    grid = {**GRID, "resolution": 5.0, "lon": [west, west + 360]}
    source = normalise_coords(src, lon_west=west)
    target = target_grid(grid)
    ours = regrid_linear(source, target)["v"]
    reference = source.regrid.linear(target)["v"].transpose(*ours.dims)
    np.testing.assert_array_equal(ours.isnull().values, reference.isnull().values)
    assert ours.isnull().any() and ours.notnull().any()
    np.testing.assert_allclose(ours.values, reference.values, rtol=1e-12, equal_nan=True)
