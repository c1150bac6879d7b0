"""LSTM over a sequence: of reduced maps (one vector per month) or of plain time series.

Maps (batch, time, channels, lat, lon) are reduced per time step to the area-weighted
ocean mean of each channel, plus (``pooled: k``) a learned projection of a k x k
average-pooled map. Time series (batch, time, features) go in as they are (e.g.
rainfall-runoff forcings).
"""

from __future__ import annotations

import torch
from torch import nn


class LSTMForecaster(nn.Module):
    def __init__(
        self,
        spec: dict,
        n_features: int,
        n_out: int,
        area_weights: torch.Tensor | None = None,
    ):
        super().__init__()
        self.pooled = spec["pooled"]
        if area_weights is not None:  # gridded input: weights (channels, lat, lon), each sums to 1
            self.register_buffer("area_weights", area_weights.float())
            channels = area_weights.shape[0]
            n_features = channels
            if self.pooled:
                self.pool = nn.AdaptiveAvgPool2d(self.pooled)
                self.project = nn.Linear(channels * self.pooled**2, channels * 4)
                n_features += channels * 4
        else:
            self.area_weights = None
        self.lstm = nn.LSTM(
            n_features,
            spec["hidden"],
            num_layers=spec["layers"],
            batch_first=True,
            dropout=spec["dropout"] if spec["layers"] > 1 else 0.0,
        )
        self.head = nn.Linear(spec["hidden"], n_out)

    def sequence(self, x: torch.Tensor) -> torch.Tensor:
        """(batch, time, features) from either input form."""
        if x.dim() == 3:
            return x
        means = torch.einsum("btcyx,cyx->btc", x, self.area_weights.to(x.dtype))
        if not self.pooled:
            return means
        b, t, c, ny, nx = x.shape
        pooled = self.pool(x.reshape(b * t, c, ny, nx)).reshape(b, t, -1)
        return torch.cat([means, torch.tanh(self.project(pooled))], dim=-1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.lstm(self.sequence(x))
        return self.head(out[:, -1])
