"""Sequence models (lstm, rnn, tcn, mlp) on (batch, time, features) series windows."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch
import xarray as xr

from pipeline.config import ConfigError
from pipeline.models.registry import Shapes, build_model, data_shapes
from pipeline.models.specs import ARCH_OPTIONS, SERIES_ARCHS, complete_spec
from pipeline.models.tcn import receptive_field

SMALL = {
    "lstm": {"hidden": 8},
    "rnn": {"hidden": 8},
    "tcn": {"filters": [8, 8], "kernel": 3},
    "mlp": {"hidden": [8]},
}


def series_shapes(history: int = 20, features: int = 5, n_out: int = 2) -> Shapes:
    return Shapes(history, channels=0, lat=0, lon=0, n_out=n_out, features=features)


def build(arch: str, seed: int = 0, **options) -> torch.nn.Module:
    torch.manual_seed(seed)
    return build_model({"arch": arch, **SMALL[arch], **options}, series_shapes())


def input_grad(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """d(sum of outputs)/dx: which inputs the output depends on."""
    x = x.clone().requires_grad_(True)
    model(x).sum().backward()
    return x.grad


def test_series_archs_are_registered_and_torch_free() -> None:
    assert {"lstm", "rnn", "tcn", "mlp"} == SERIES_ARCHS
    assert set(ARCH_OPTIONS) >= SERIES_ARCHS
    code = "import sys, pipeline.models.specs; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)  # config checks need no torch


@pytest.mark.parametrize("arch", sorted(SERIES_ARCHS))
def test_shapes_gradients_and_determinism(arch: str) -> None:
    model = build(arch)
    x = torch.randn(4, 20, 5)
    out = model(x)
    assert out.shape == (4, 2) and torch.isfinite(out).all()
    out.sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())
    assert torch.equal(build(arch)(x), out.detach())  # same seed, same network
    assert not torch.equal(build(arch, seed=1)(x), out.detach())


@pytest.mark.parametrize("arch", sorted(SERIES_ARCHS))
def test_static_attributes_repeated_along_time_are_read(arch: str) -> None:
    """Kratzert et al. (2019): statics join every step's forcings; two basins with the
    same weather but different attributes get different forecasts."""
    model = build(arch).eval()
    forcing = torch.randn(1, 20, 3).expand(2, -1, -1)
    statics = torch.tensor([[0.5, -1.0], [-0.5, 2.0]])[:, None, :].expand(-1, 20, -1)
    out = model(torch.cat([forcing, statics], dim=-1))
    assert not torch.allclose(out[0], out[1])


def test_data_shapes_of_a_series_store() -> None:
    ds = xr.Dataset({"x": (("sample", "history", "feature"), np.zeros((7, 30, 4)))})
    shapes = data_shapes(ds, n_out=1)
    assert (shapes.history, shapes.features, shapes.n_out) == (30, 4, 1)
    assert shapes.channel_weights is None
    assert build_model({"arch": "mlp"}, shapes)(torch.zeros(2, 30, 4)).shape == (2, 1)


def test_rnn_is_an_elman_tanh_rnn() -> None:
    model = build("rnn", layers=2, dropout=0.2)
    assert isinstance(model.rnn, torch.nn.RNN) and model.rnn.nonlinearity == "tanh"
    assert (model.rnn.num_layers, model.rnn.dropout) == (2, 0.2)


def test_tcn_is_causal_with_the_stated_receptive_field() -> None:
    spec = {"arch": "tcn", "filters": [4, 6, 6], "kernel": 3, "dilation": 2}
    torch.manual_seed(0)
    model = build_model(spec, series_shapes(history=40)).eval()
    x = torch.randn(2, 40, 5)
    later = x.clone()
    later[:, 25:] = torch.randn(2, 15, 5)  # change every input after step 24
    features = model.blocks(x.transpose(1, 2))
    changed = model.blocks(later.transpose(1, 2))
    torch.testing.assert_close(features[..., :25], changed[..., :25], rtol=0, atol=0)
    assert not torch.allclose(features[..., 25:], changed[..., 25:])
    # the last output sees exactly the last receptive_field steps: 1 + 2*2*(1+2+4) = 29
    assert receptive_field(complete_spec(spec, "m")) == 29
    seen = input_grad(model, x).abs().sum((0, 2)) > 0
    assert seen.tolist() == [False] * 11 + [True] * 29
    default = complete_spec({"arch": "tcn"}, "m")
    assert receptive_field(default) >= 365  # a year of daily steps by default


def test_mlp_sees_its_lags_only() -> None:
    model = build("mlp", lags=3)
    seen = input_grad(model, torch.randn(2, 20, 5)).abs().sum((0, 2)) > 0
    assert seen.tolist() == [False] * 17 + [True] * 3
    with pytest.raises(ValueError, match="lags is 21 but the input window has 20 steps"):
        build("mlp", lags=21)


def test_mlp_on_lags_fits_an_ar_process() -> None:
    """On an AR(2) series the MLP with lags 2 reaches the noise floor (the one-step error
    of the true model); with no hidden layer it is the least-squares AR(2) model."""
    rng = np.random.default_rng(0)
    phi, sigma, n = (1.5, -0.75), 0.1, 600
    y = np.zeros(n)
    for t in range(2, n):
        y[t] = phi[0] * y[t - 1] + phi[1] * y[t - 2] + sigma * rng.standard_normal()
    windows = np.lib.stride_tricks.sliding_window_view(y[:-1], 10).copy()  # history 10
    x = torch.as_tensor(windows[:, :, None], dtype=torch.float32)
    target = torch.as_tensor(y[10:, None], dtype=torch.float32)

    def fit(hidden: list[int]) -> tuple[torch.nn.Module, float]:
        torch.manual_seed(0)
        spec = {"arch": "mlp", "lags": 2, "hidden": hidden, "activation": "tanh"}
        model = build_model(spec, series_shapes(history=10, features=1, n_out=1))
        optimizer = torch.optim.Adam(model.parameters(), lr=0.02)
        for _ in range(200):
            optimizer.zero_grad()
            loss = torch.mean((model(x) - target) ** 2)
            loss.backward()
            optimizer.step()
        return model, loss.item()

    _, loss = fit([16])
    assert loss < 1.15 * sigma**2 and loss < 0.2 * y.var()
    linear, _ = fit([])
    weights = linear.head.weight.detach().numpy().ravel()  # on (y[t-2], y[t-1])
    design = np.c_[windows[:, -2:], np.ones(len(windows))]
    ols = np.linalg.lstsq(design, y[10:], rcond=None)[0]
    np.testing.assert_allclose(weights, ols[:2], atol=0.01)
    np.testing.assert_allclose(weights[::-1], phi, atol=0.1)


def test_vanishing_gradient_rnn_against_lstm() -> None:
    """The gradient reaching the first step of a 365-day window, at initialisation:
    none for the RNN; for the LSTM only with its forget gates opened (forget_bias)."""
    x = torch.randn(8, 365, 6)

    def first_step(arch: str, **options) -> float:
        torch.manual_seed(0)
        model = build_model({"arch": arch, **options}, series_shapes(365, 6, 1))
        return input_grad(model, x)[:, 0].norm(dim=-1).mean().item()

    assert first_step("rnn") < 1e-30 and first_step("lstm") < 1e-30
    assert first_step("lstm", forget_bias=3) > 1e-3


def test_lstm_forget_bias_sets_the_forget_gates_only() -> None:
    torch.manual_seed(0)
    plain = build("lstm", layers=2)
    opened = build("lstm", layers=2, forget_bias=3)
    for layer in range(2):
        bias = getattr(opened.lstm, f"bias_hh_l{layer}")
        assert bias[8:16].eq(3).all()
        torch.testing.assert_close(bias[:8], getattr(plain.lstm, f"bias_hh_l{layer}")[:8])


@pytest.mark.parametrize(
    ("spec", "key"),
    [
        ({"arch": "mlp", "hidden": [8, 0]}, "m.hidden"),
        ({"arch": "mlp", "hidden": 8}, "m.hidden"),
        ({"arch": "mlp", "lags": -1}, "m.lags"),
        ({"arch": "tcn", "dilation": 0}, "m.dilation"),
        ({"arch": "rnn", "pooled": 2}, "m.pooled"),
        ({"arch": "lstm", "forget_bias": 2.5}, "m.forget_bias"),
    ],
)
def test_bad_series_options_name_the_option(spec: dict, key: str) -> None:
    with pytest.raises(ConfigError) as info:
        complete_spec(spec, "m")
    assert info.value.key == key
