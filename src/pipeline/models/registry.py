"""One entry point that builds any architecture from its spec and the data shapes."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from pipeline.models.cnn import CNN
from pipeline.models.convlstm import ConvLSTM
from pipeline.models.layers import IndexReadout
from pipeline.models.lstm import LSTMForecaster
from pipeline.models.resnet import ResNet
from pipeline.models.specs import complete_spec
from pipeline.models.unet import UNet


@dataclass(frozen=True)
class Shapes:
    """What a model needs to know about its data.

    Gridded input is (batch, history, channels, lat, lon); time-series input is
    (batch, time, features) with ``features`` set. ``n_out`` is the number of leads
    (regression) or classes (segmentation). ``channel_weights`` (channels, lat, lon)
    are normalised ocean-area weights, ``index_weights`` (lat, lon) the target box.
    """

    history: int
    channels: int
    lat: int
    lon: int
    n_out: int
    features: int | None = None
    channel_weights: torch.Tensor | None = None
    index_weights: torch.Tensor | None = None


class MapForecaster(nn.Module):
    """A U-Net that predicts anomaly maps per lead, with the index read-out attached."""

    output = "map"

    def __init__(self, unet: UNet, index_weights: torch.Tensor | None):
        super().__init__()
        self.unet = unet
        self.readout = IndexReadout(index_weights) if index_weights is not None else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.unet(x)


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
    if arch == "lstm":
        return LSTMForecaster(
            spec, shapes.features or shapes.channels, shapes.n_out, shapes.channel_weights
        )
    if arch == "unet":
        return MapForecaster(UNet(spec, in_channels, shapes.n_out), shapes.index_weights)
    raise ValueError(f"unknown arch '{arch}'")


def predict_index(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """(batch, leads) index forecasts from any forecasting model."""
    out = model(x)
    return model.readout(out) if getattr(model, "output", "index") == "map" else out
