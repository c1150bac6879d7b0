"""Harmonising raw archives: coordinate names, depth means, units."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from pipeline.variables import DataError, depth_mean, derive_variables, standardise_coords


def godas_like() -> xr.Dataset:
    level = np.array(
        [
            5.0,
            15.0,
            25.0,
            35.0,
            45.0,
            55.0,
            65.0,
            75.0,
            85.0,
            95.0,
            105.0,
            115.0,
            125.0,
            135.0,
            145.0,
            155.0,
            165.0,
            175.0,
            185.0,
            195.0,
            205.0,
            215.0,
            225.0,
            238.0,
            262.0,
            303.0,
            366.0,
            459.0,
        ]
    )
    temp = 300.0 - 0.05 * level  # kelvin, decreasing with depth
    data = np.broadcast_to(temp[None, :, None, None], (2, len(level), 3, 4)).copy()
    ds = xr.Dataset(
        {"pottmp": (("time", "level", "latitude", "longitude"), data, {"units": "K"})},
        coords={
            "time": xr.date_range("1980-01-01", periods=2, freq="MS"),
            "level": level,
            "latitude": [-1.0, 0.0, 1.0],
            "longitude": [0.0, 1.0, 2.0, 3.0],
        },
    )
    return ds


def test_depth_mean_weights_layers_by_thickness() -> None:
    ds = godas_like()
    mean = depth_mean(ds["pottmp"], 0, 300)
    # a linear profile T(z) = 300 - 0.05 z has a 0-300 m mean of 300 - 0.05*150
    np.testing.assert_allclose(mean.values, 300 - 0.05 * 150, atol=0.05)


def test_derive_renames_averages_and_converts() -> None:
    out = derive_variables(
        godas_like(), {"heat_content": {"from": "pottmp", "depth_mean": [0, 300], "units": "degC"}}
    )
    assert list(out.data_vars) == ["heat_content"]
    assert set(out.dims) == {"time", "lat", "lon"}
    assert out["heat_content"].attrs["units"] == "degC"
    np.testing.assert_allclose(out["heat_content"].values, 300 - 7.5 - 273.15, atol=0.05)


def test_missing_variable_names_dataset_and_variable() -> None:
    with pytest.raises(DataError, match=r"godas.*'temp'"):
        derive_variables(godas_like(), {"hc": {"from": "temp"}}, source_name="godas")


def test_depth_mean_needs_a_depth_dimension() -> None:
    with pytest.raises(DataError, match="depth"):
        depth_mean(godas_like()["pottmp"].isel(level=0), 0, 300)


def test_y_x_in_degrees_are_renamed_to_lat_lon() -> None:
    ds = godas_like().rename(latitude="y", longitude="x")
    ds["y"].attrs["units"], ds["x"].attrs["units"] = "degrees_north", "degree_E"
    assert set(standardise_coords(ds)["pottmp"].dims) == {"time", "level", "lat", "lon"}


def test_nemo_index_dims_y_x_are_not_taken_for_lat_lon() -> None:
    """NEMO's y/x count grid rows and columns; the coordinates are the 2-D nav_lat/nav_lon."""
    ds = godas_like().rename(latitude="y", longitude="x").drop_vars(["y", "x"])
    lat2d, lon2d = np.meshgrid([-1.0, 0.0, 1.0], [0.0, 1.0, 2.0, 3.0], indexing="ij")
    ds = ds.assign_coords(nav_lat=(("y", "x"), lat2d), nav_lon=(("y", "x"), lon2d))
    out = standardise_coords(ds)
    assert "lat" not in out.dims and "lon" not in out.dims
    assert out["pottmp"].dims == ("time", "level", "y", "x")
