"""Layers shared by the architectures: Earth-aware padding, activations, the index head."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

ACTIVATIONS = {
    "relu": nn.ReLU,
    "tanh": nn.Tanh,
    "gelu": nn.GELU,
    "elu": nn.ELU,
    "leaky_relu": nn.LeakyReLU,
    "sigmoid": nn.Sigmoid,
}


def activation(name: str) -> nn.Module:
    return ACTIVATIONS[name]()


class EarthPad2d(nn.Module):
    """Pad (..., lat, lon) maps: circular in longitude, zeros in latitude.

    Longitude wraps around the globe, latitude does not: wrapping it would glue the
    South Pole to the North Pole (WeatherBench's periodic convolution). ``mode="zero"``
    pads zeros on both axes, as a plain ``Conv2d(padding=k//2)`` would. A kernel
    dilated by d spans ``d * (kernel - 1) + 1`` cells, and is padded for that span.
    """

    def __init__(self, kernel: int, mode: str = "periodic", dilation: int = 1):
        super().__init__()
        span = dilation * (kernel - 1) + 1
        self.before, self.after = (span - 1) // 2, span // 2
        self.mode = mode

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, a = self.before, self.after
        if self.mode == "periodic":
            x = F.pad(x, (b, a, 0, 0), mode="circular")
            return F.pad(x, (0, 0, b, a))
        return F.pad(x, (b, a, b, a))


class PaddedConv2d(nn.Sequential):
    """Earth padding followed by an unpadded convolution ("same" size at stride 1)."""

    def __init__(
        self, c_in: int, c_out: int, kernel: int, padding: str, stride: int = 1, dilation: int = 1
    ):
        super().__init__(
            EarthPad2d(kernel, padding, dilation),
            nn.Conv2d(c_in, c_out, kernel, stride=stride, dilation=dilation),
        )


def stack_history(x: torch.Tensor) -> torch.Tensor:
    """(batch, history, channels, lat, lon) -> (batch, history*channels, lat, lon);
    (batch, channels, lat, lon) maps pass as they are."""
    if x.dim() == 4:
        return x
    b, h, c, ny, nx = x.shape
    return x.reshape(b, h * c, ny, nx)


class IndexReadout(nn.Module):
    """Area-weighted box mean of predicted maps: the same operator prepare applies."""

    def __init__(self, weights: torch.Tensor):
        super().__init__()
        self.register_buffer("weights", weights.float())  # (lat, lon), sums to 1

    def forward(self, maps: torch.Tensor) -> torch.Tensor:
        return torch.einsum("blyx,yx->bl", maps, self.weights.to(maps.dtype))
