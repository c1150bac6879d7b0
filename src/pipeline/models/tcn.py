"""Temporal convolutional network (TCN; Bai et al. 2018, arXiv:1803.01271).

A stack of residual blocks, each two causal dilated 1-D convolutions over time with
weight normalisation, an activation and dropout, plus a skip connection (a 1x1
convolution where the width changes). Causal: the output at step t sees steps <= t
only, zero-padded before the window's start. Block i is dilated by ``dilation**i``, so
the receptive field grows exponentially with depth (``receptive_field``), and the head
reads the last step, as the recurrent models do.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import weight_norm

from pipeline.models.layers import activation
from pipeline.models.series import SeriesModel


def receptive_field(spec: dict) -> int:
    """Steps the last output sees: 1 + 2 (kernel - 1) * sum of the blocks' dilations."""
    dilations = sum(spec["dilation"] ** i for i in range(len(spec["filters"])))
    return 1 + 2 * (spec["kernel"] - 1) * dilations


class CausalConv1d(nn.Module):
    """A weight-normalised convolution over (batch, channels, time), padded on the left
    only so that no output sees a later input."""

    def __init__(self, c_in: int, c_out: int, kernel: int, dilation: int):
        super().__init__()
        self.pad = (kernel - 1) * dilation
        self.conv = weight_norm(nn.Conv1d(c_in, c_out, kernel, dilation=dilation))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.pad(x, (self.pad, 0)))


class TemporalBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, spec: dict, dilation: int):
        super().__init__()
        layers: list[nn.Module] = []
        for c in (c_in, c_out):
            layers += [
                CausalConv1d(c, c_out, spec["kernel"], dilation),
                activation(spec["activation"]),
            ]
            if spec["dropout"]:
                layers.append(nn.Dropout(spec["dropout"]))
        self.net = nn.Sequential(*layers)
        self.skip = nn.Conv1d(c_in, c_out, 1) if c_in != c_out else nn.Identity()
        self.out = activation(spec["activation"])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.net(x) + self.skip(x))


class TCN(SeriesModel):
    def __init__(
        self,
        spec: dict,
        n_features: int,
        n_out: int,
        area_weights: torch.Tensor | None = None,
    ):
        super().__init__(n_features, area_weights)
        blocks: list[nn.Module] = []
        c_in = self.n_features
        for i, width in enumerate(spec["filters"]):
            blocks.append(TemporalBlock(c_in, width, spec, spec["dilation"] ** i))
            c_in = width
        self.blocks = nn.Sequential(*blocks)
        self.head = nn.Linear(c_in, n_out)

    def encode(self, seq: torch.Tensor) -> torch.Tensor:
        return self.blocks(seq.transpose(1, 2))[:, :, -1]
