"""U-Net (Ronneberger et al. 2015): an encoder-decoder with skip connections.

For forecasting it predicts the anomaly map at every lead; the forecast task reads the
index from the maps by the same area-weighted box operator prepare uses (tasks/forecast.py).
With ``out_channels = n_classes`` it is a segmentation network (e.g. ClimateNet).

``skips=False`` (arch ``encdec``) removes the skip connections and nothing else: the
decoder convolutions keep their widths and see the upsampled bottleneck alone, so the
output depends on the input only through the coarsest features. Only the 1x1 convs that
fuse a skip with the upsampled features go, so the parameter counts stay close: the
ablation that shows what the skips (fine detail from the encoder) are worth.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from pipeline.models.layers import PaddedConv2d, activation, stack_history


def double_conv(c_in: int, c_out: int, kernel: int, padding: str, act: str) -> nn.Sequential:
    return nn.Sequential(
        PaddedConv2d(c_in, c_out, kernel, padding),
        nn.BatchNorm2d(c_out),
        activation(act),
        PaddedConv2d(c_out, c_out, kernel, padding),
        nn.BatchNorm2d(c_out),
        activation(act),
    )


class UNet(nn.Module):
    def __init__(self, spec: dict, in_channels: int, out_channels: int, skips: bool = True):
        super().__init__()
        self.skips = skips
        k, pad, act = spec["kernel"], spec["padding"], spec["activation"]
        widths = [spec["base"] * 2**level for level in range(spec["depth"] + 1)]
        self.down = nn.ModuleList()
        c_in = in_channels
        for width in widths[:-1]:
            self.down.append(double_conv(c_in, width, k, pad, act))
            c_in = width
        self.bottom = double_conv(c_in, widths[-1], k, pad, act)
        self.up = nn.ModuleList()
        self.reduce = nn.ModuleList()
        for width in reversed(widths[:-1]):
            self.reduce.append(nn.Conv2d(width * 2, width, 1) if skips else nn.Identity())
            self.up.append(double_conv(width * 2, width, k, pad, act))
        self.out = nn.Conv2d(widths[0], out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = stack_history(x)
        features = []
        for block in self.down:
            h = block(h)
            features.append(h)
            h = F.max_pool2d(h, 2, ceil_mode=True)
        h = self.bottom(h)
        for reduce, block, skip in zip(self.reduce, self.up, reversed(features), strict=True):
            h = reduce(F.interpolate(h, size=skip.shape[-2:], mode="nearest"))
            h = block(torch.cat([h, skip], dim=1) if self.skips else h)
        return self.out(h)
