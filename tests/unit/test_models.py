"""The model zoo: shapes, Earth-aware padding, spec checking, the index read-out."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import xarray as xr

from pipeline.config import ConfigError
from pipeline.geo import INDEX_BOXES, box_mean
from pipeline.models.layers import EarthPad2d, PaddedConv2d
from pipeline.models.registry import Shapes, build_model, data_shapes
from pipeline.models.specs import ARCH_OPTIONS, MAP_ARCHS, complete_spec
from pipeline.prepare import open_prepared
from pipeline.tasks import get_task
from pipeline.tasks.forecast import MapForecaster

LAT, LON = 6, 36


def shapes(n_out: int = 3) -> Shapes:
    weights = torch.full((2, LAT, LON), 1.0 / (LAT * LON))
    return Shapes(history=3, channels=2, lat=LAT, lon=LON, n_out=n_out, channel_weights=weights)


@pytest.mark.parametrize("arch", sorted(ARCH_OPTIONS))
def test_every_arch_gives_n_out_values_or_maps(arch: str) -> None:
    torch.manual_seed(0)
    model = build_model({"arch": arch}, shapes(n_out=4))
    x = torch.randn(5, 3, 2, LAT, LON)
    out = model(x)
    assert out.shape == ((5, 4, LAT, LON) if arch in MAP_ARCHS else (5, 4))
    assert torch.isfinite(out).all()
    out.sum().backward()  # differentiable end to end
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)


def test_data_shapes_weight_only_valid_cells(tiny_prepared: Path) -> None:
    ds = open_prepared(tiny_prepared).load()
    s = data_shapes(ds, ds.sizes["lead"])
    assert (s.history, s.channels, s.lat, s.lon, s.n_out) == (2, 2, ds.sizes["lat"], 36, 2)
    torch.testing.assert_close(s.channel_weights.sum(dim=(1, 2)), torch.ones(2))
    land = ~torch.as_tensor(ds["mask"].values)
    assert land.any() and (s.channel_weights[land] == 0).all()


def test_periodic_padding_wraps_longitude_not_latitude() -> None:
    x = torch.arange(12.0).reshape(1, 1, 3, 4)
    padded = EarthPad2d(3, "periodic")(x)
    assert padded.shape == (1, 1, 5, 6)
    # longitude: the column left of lon 0 is the last longitude, and vice versa
    assert torch.equal(padded[0, 0, 1:-1, 0], x[0, 0, :, -1])
    assert torch.equal(padded[0, 0, 1:-1, -1], x[0, 0, :, 0])
    # latitude: zeros above the first and below the last row, never the other pole
    assert torch.equal(padded[0, 0, 0], torch.zeros(6))
    assert torch.equal(padded[0, 0, -1], torch.zeros(6))
    zero = EarthPad2d(3, "zero")(x)
    assert torch.equal(zero[0, 0, 1:-1, 0], torch.zeros(3))


def test_periodic_conv_sees_across_the_seam_only() -> None:
    conv = PaddedConv2d(1, 1, 3, "periodic")
    torch.nn.init.ones_(conv[1].weight)
    torch.nn.init.zeros_(conv[1].bias)
    impulse = torch.zeros(1, 1, 5, 8)
    impulse[0, 0, 2, 7] = 1.0  # at the last longitude
    out = conv(impulse)
    assert out[0, 0, 2, 0] == 1.0  # reaches the first longitude through the seam
    pole = torch.zeros(1, 1, 5, 8)
    pole[0, 0, 0, 3] = 1.0  # at the northernmost row
    assert conv(pole)[0, 0, -1].abs().sum() == 0  # never reaches the other pole


def test_cnn_options_flatten_head_avg_pool_tanh() -> None:
    spec = {
        "arch": "cnn",
        "filters": [4, 8],
        "kernel": 3,
        "activation": "tanh",
        "pool": "avg",
        "head": "flatten",
        "dense": [16, 8],
        "padding": "zero",
        "dropout": 0.1,
    }
    model = build_model(spec, shapes())
    assert model(torch.randn(2, 3, 2, LAT, LON)).shape == (2, 3)
    assert isinstance(model.features[1], torch.nn.Tanh)


def test_ham_2019_cnn_is_a_config() -> None:
    spec = {
        "arch": "cnn",
        "filters": [30, 30, 30],
        "kernel": 4,
        "pool": "max",
        "head": "flatten",
        "dense": [30],
        "activation": "tanh",
        "padding": "zero",
    }
    model = build_model(spec, Shapes(history=3, channels=2, lat=24, lon=72, n_out=23))
    assert model(torch.randn(2, 3, 2, 24, 72)).shape == (2, 23)


def test_lstm_accepts_plain_time_series() -> None:
    model = build_model(
        {"arch": "lstm", "hidden": 8, "layers": 2, "dropout": 0.1},
        Shapes(history=30, channels=0, lat=0, lon=0, n_out=1, features=5),
    )
    assert model(torch.randn(4, 30, 5)).shape == (4, 1)


def test_lstm_learned_pooling() -> None:
    model = build_model({"arch": "lstm", "hidden": 8, "pooled": 2}, shapes())
    assert model(torch.randn(2, 3, 2, LAT, LON)).shape == (2, 3)


def test_unet_index_readout_is_the_prepare_operator(tiny_prepared: Path) -> None:
    """The forecast task wraps map networks in the box mean prepare takes the index by."""
    prepared = open_prepared(tiny_prepared).load()
    model = get_task("forecast").model({"arch": "unet", "depth": 1, "base": 4}, prepared)
    assert isinstance(model, MapForecaster)
    assert {k.split(".")[0] for k in model.state_dict()} == {"unet", "readout"}  # as saved
    maps = torch.randn(3, 2, prepared.sizes["lat"], prepared.sizes["lon"], dtype=torch.float64)
    ours = model.readout(maps.float())
    da = xr.DataArray(
        maps.numpy(),
        dims=("b", "lead", "lat", "lon"),
        coords={"lat": prepared["lat"], "lon": prepared["lon"]},
    )
    reference = box_mean(da, INDEX_BOXES["nino34"]).values
    np.testing.assert_allclose(ours.numpy(), reference, rtol=1e-5)


@pytest.mark.parametrize(
    ("spec", "key"),
    [
        ({"arch": "cnn", "kernal": 3}, "m.kernal"),
        ({"arch": "cnn", "pool": "median"}, "m.pool"),
        ({"arch": "cnn", "activation": "swish"}, "m.activation"),
        ({"arch": "cnn", "filters": [16, -2]}, "m.filters"),
        ({"arch": "unet", "depth": 0}, "m.depth"),
        ({"arch": "lstm", "dropout": 1.5}, "m.dropout"),
    ],
)
def test_bad_model_options_name_the_option(spec: dict, key: str) -> None:
    with pytest.raises(ConfigError) as info:
        complete_spec(spec, "m")
    assert info.value.key == key
