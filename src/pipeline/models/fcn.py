"""Fully convolutional network: convolutions at full resolution, then 1x1 to the outputs.

The single-scale baseline for segmentation beside the U-Net: no pooling, so nothing is
lost to downsampling, but the receptive field grows only with depth. ``dilation: d``
dilates layer i by d**i (1, d, d^2, ...), which grows it exponentially at the same
cost (the context module of Yu & Koltun 2016). Each conv is followed by batch norm, as
in the U-Net, so that the two differ in scales, not in normalisation.
"""

from __future__ import annotations

import torch
from torch import nn

from pipeline.models.layers import PaddedConv2d, activation, stack_history


class FCN(nn.Module):
    def __init__(self, spec: dict, in_channels: int, out_channels: int):
        super().__init__()
        layers: list[nn.Module] = []
        c_in = in_channels
        for i, width in enumerate(spec["filters"]):
            conv = PaddedConv2d(
                c_in, width, spec["kernel"], spec["padding"], dilation=spec["dilation"] ** i
            )
            layers += [conv, nn.BatchNorm2d(width), activation(spec["activation"])]
            if spec["dropout"]:
                layers.append(nn.Dropout2d(spec["dropout"]))
            c_in = width
        self.features = nn.Sequential(*layers)
        self.out = nn.Conv2d(c_in, out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.features(stack_history(x)))
