"""Convolutional network: conv -> activation -> pool blocks, then a GAP or flatten head.

The Ham et al. (2019) ENSO CNN is one configuration of it:
``{arch: cnn, filters: [30, 30, 30], kernel: 4, pool: max, head: flatten, dense: [30]}``
(their conv blocks take SST and heat-content maps of the last 3 months as channels).
"""

from __future__ import annotations

import torch
from torch import nn

from pipeline.models.layers import PaddedConv2d, activation, stack_history


def dense_head(n_in: int, hidden: list[int], n_out: int, act: str, dropout: float) -> nn.Sequential:
    layers: list[nn.Module] = []
    for width in hidden:
        layers += [nn.Linear(n_in, width), activation(act), nn.Dropout(dropout)]
        n_in = width
    layers.append(nn.Linear(n_in, n_out))
    return nn.Sequential(*layers)


class CNN(nn.Module):
    def __init__(self, spec: dict, in_channels: int, lat: int, lon: int, n_out: int):
        super().__init__()
        blocks: list[nn.Module] = []
        c_in = in_channels
        for width in spec["filters"]:
            blocks += [
                PaddedConv2d(c_in, width, spec["kernel"], spec["padding"], spec["stride"]),
                activation(spec["activation"]),
            ]
            if spec["pool"] != "none":
                pool = nn.MaxPool2d if spec["pool"] == "max" else nn.AvgPool2d
                blocks.append(pool(2, ceil_mode=True))
            if spec["dropout"]:
                blocks.append(nn.Dropout2d(spec["dropout"]))
            c_in = width
        self.features = nn.Sequential(*blocks)
        if spec["head"] == "gap":
            self.reduce: nn.Module = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
            n_features = c_in
        else:
            self.reduce = nn.Flatten()
            with torch.no_grad():
                n_features = self.features(torch.zeros(1, in_channels, lat, lon)).numel()
        self.head = dense_head(
            n_features, spec["dense"], n_out, spec["activation"], spec["dropout"]
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.reduce(self.features(stack_history(x))))
