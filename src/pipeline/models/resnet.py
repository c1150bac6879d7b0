"""Residual network: a stem, residual blocks (x + F(x)) with Earth padding, a GAP head."""

from __future__ import annotations

import torch
from torch import nn

from pipeline.models.layers import PaddedConv2d, activation, stack_history


class ResidualBlock(nn.Module):
    def __init__(self, width: int, kernel: int, padding: str, act: str, dropout: float):
        super().__init__()
        self.body = nn.Sequential(
            PaddedConv2d(width, width, kernel, padding),
            nn.BatchNorm2d(width),
            activation(act),
            nn.Dropout2d(dropout),
            PaddedConv2d(width, width, kernel, padding),
            nn.BatchNorm2d(width),
        )
        self.act = activation(act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(x + self.body(x))


class ResNet(nn.Module):
    def __init__(self, spec: dict, in_channels: int, lat: int, lon: int, n_out: int):
        super().__init__()
        width, kernel, pad = spec["width"], spec["kernel"], spec["padding"]
        self.stem = nn.Sequential(
            PaddedConv2d(in_channels, width, kernel, pad), activation(spec["activation"])
        )
        self.blocks = nn.Sequential(
            *(
                ResidualBlock(width, kernel, pad, spec["activation"], spec["dropout"])
                for _ in range(spec["blocks"])
            )
        )
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(width, n_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.blocks(self.stem(stack_history(x))))
