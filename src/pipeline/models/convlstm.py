"""Convolutional LSTM (Shi et al. 2015): LSTM gates computed by convolutions over maps."""

from __future__ import annotations

import torch
from torch import nn

from pipeline.models.layers import PaddedConv2d


class ConvLSTMCell(nn.Module):
    def __init__(self, c_in: int, hidden: int, kernel: int, padding: str):
        super().__init__()
        self.hidden = hidden
        self.gates = PaddedConv2d(c_in + hidden, 4 * hidden, kernel, padding)

    def forward(
        self, x: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        h, c = state
        i, f, o, g = self.gates(torch.cat([x, h], dim=1)).chunk(4, dim=1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h = torch.sigmoid(o) * torch.tanh(c)
        return h, c


class ConvLSTM(nn.Module):
    def __init__(self, spec: dict, in_channels: int, lat: int, lon: int, n_out: int):
        super().__init__()
        hidden = spec["hidden"]
        factor = spec["downsample"]
        # cheaper cells and a wider receptive field on coarser maps
        self.pool = nn.AvgPool2d(factor, ceil_mode=True) if factor > 1 else nn.Identity()
        self.cells = nn.ModuleList(
            ConvLSTMCell(in_channels if i == 0 else hidden, hidden, spec["kernel"], spec["padding"])
            for i in range(spec["layers"])
        )
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(hidden, n_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        seq = [self.pool(x[:, step]) for step in range(x.shape[1])]
        b, _, ny, nx = seq[0].shape
        for cell in self.cells:
            h = x.new_zeros(b, cell.hidden, ny, nx)
            c = torch.zeros_like(h)
            outputs = []
            for frame in seq:
                h, c = cell(frame, (h, c))
                outputs.append(h)
            seq = outputs
        return self.head(seq[-1])
