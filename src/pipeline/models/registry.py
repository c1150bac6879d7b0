"""One entry point that builds any architecture from its spec and the data shapes.

Networks end in a plain layer of ``n_out`` values or, for ``specs.MAP_ARCHS``, ``n_out``
maps; what those outputs mean (leads, classes) and any read-out on top
is the task's business (pipeline.tasks), so no code here or in training inspects it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import xarray as xr
from torch import nn

from pipeline.geo import area_weights
from pipeline.models.cnn import CNN
from pipeline.models.convlstm import ConvLSTM
from pipeline.models.fcn import FCN
from pipeline.models.lstm import LSTMForecaster
from pipeline.models.mlp import LagMLP
from pipeline.models.resnet import ResNet
from pipeline.models.rnn import RNNForecaster
from pipeline.models.specs import complete_spec
from pipeline.models.tcn import TCN
from pipeline.models.unet import UNet


@dataclass(frozen=True)
class Shapes:
    """What a model needs to know about its data.

    Gridded input is (batch, history, channels, lat, lon); time-series input is
    (batch, time, features) with ``features`` set. ``n_out`` is the number of outputs the
    task asks for (leads, classes). ``channel_weights`` (channels, lat, lon) are
    normalised valid-area weights (ocean means for the LSTM's inputs).
    """

    history: int
    channels: int
    lat: int
    lon: int
    n_out: int
    features: int | None = None
    channel_weights: torch.Tensor | None = None


def data_shapes(ds: xr.Dataset, n_out: int) -> Shapes:
    """Model shapes and the valid-area weights of each channel from prepared data.

    A series store's ``x`` is (sample, time, feature): no maps, so no weights.
    """
    if ds["x"].ndim == 3:
        _, history, features = ds["x"].shape
        return Shapes(history, channels=0, lat=0, lon=0, n_out=n_out, features=features)
    mask = torch.as_tensor(ds["mask"].values, dtype=torch.float32)
    area = torch.as_tensor(area_weights(ds["lat"]).values, dtype=torch.float32)
    channel_weights = mask * area[None, :, None]
    channel_weights /= channel_weights.sum(dim=(1, 2), keepdim=True)
    return Shapes(
        history=ds.sizes["history"],
        channels=ds.sizes["channel"],
        lat=ds.sizes["lat"],
        lon=ds.sizes["lon"],
        n_out=n_out,
        channel_weights=channel_weights,
    )


def build_model(spec: dict, shapes: Shapes) -> nn.Module:
    """Build the model a (possibly partial) spec describes, for data of ``shapes``."""
    spec = complete_spec(dict(spec), f"model '{spec.get('arch')}'")
    arch = spec["arch"]
    in_channels = shapes.history * shapes.channels
    if arch == "cnn":
        return CNN(spec, in_channels, shapes.lat, shapes.lon, shapes.n_out)
    if arch == "resnet":
        return ResNet(spec, in_channels, shapes.lat, shapes.lon, shapes.n_out)
    if arch == "convlstm":
        return ConvLSTM(spec, shapes.channels, shapes.lat, shapes.lon, shapes.n_out)
    features, weights = shapes.features or shapes.channels, shapes.channel_weights
    if arch == "lstm":
        return LSTMForecaster(spec, features, shapes.n_out, weights)
    if arch == "rnn":
        return RNNForecaster(spec, features, shapes.n_out, weights)
    if arch == "tcn":
        return TCN(spec, features, shapes.n_out, weights)
    if arch == "mlp":
        return LagMLP(spec, features, shapes.history, shapes.n_out, weights)
    if arch in ("unet", "encdec"):
        return UNet(spec, in_channels, shapes.n_out, skips=arch == "unet")
    if arch == "fcn":
        return FCN(spec, in_channels, shapes.n_out)
    raise ValueError(f"unknown arch '{arch}'")
