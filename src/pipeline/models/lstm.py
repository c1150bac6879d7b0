"""LSTM over a sequence: of reduced maps (one vector per month) or of plain time series.

Maps (batch, time, channels, lat, lon) are reduced per time step to the area-weighted
ocean mean of each channel, plus (``pooled: k``) a learned projection of a k x k
average-pooled map. Time series (batch, time, features) go in as they are (e.g.
rainfall-runoff forcings with static attributes repeated at every step).

``forget_bias: b`` sets the forget gates' hidden bias to b instead of a small random
value. Near 0 a gate is about half open, so at initialisation the gradient reaching the
first step of a 365-day window is ~1e-75 of the last step's; at b = 3 the two are of
the same order, so the LSTM can learn snow memory from the start (Gers et al. 2000;
Jozefowicz et al. 2015; the code of Kratzert et al. 2019 uses 5).
"""

from __future__ import annotations

import torch
from torch import nn

from pipeline.models.series import SeriesModel


class LSTMForecaster(SeriesModel):
    def __init__(
        self,
        spec: dict,
        n_features: int,
        n_out: int,
        area_weights: torch.Tensor | None = None,
    ):
        super().__init__(n_features, area_weights)
        self.pooled = spec["pooled"]
        n_features = self.n_features
        if area_weights is not None and self.pooled:
            channels = self.n_features
            self.pool = nn.AdaptiveAvgPool2d(self.pooled)
            self.project = nn.Linear(channels * self.pooled**2, channels * 4)
            n_features += channels * 4
        hidden = spec["hidden"]
        self.lstm = nn.LSTM(
            n_features,
            hidden,
            num_layers=spec["layers"],
            batch_first=True,
            dropout=spec["dropout"] if spec["layers"] > 1 else 0.0,
        )
        if spec["forget_bias"]:
            with torch.no_grad():  # PyTorch's gate order is (input, forget, cell, output)
                for layer in range(spec["layers"]):
                    getattr(self.lstm, f"bias_hh_l{layer}")[hidden : 2 * hidden] = spec[
                        "forget_bias"
                    ]
        self.head = nn.Linear(hidden, n_out)

    def sequence(self, x: torch.Tensor) -> torch.Tensor:
        """Channel means, and the pooled summary of each map where ``pooled`` is set."""
        means = super().sequence(x)
        if x.dim() == 3 or not self.pooled:
            return means
        b, t, c, ny, nx = x.shape
        pooled = self.pool(x.reshape(b * t, c, ny, nx)).reshape(b, t, -1)
        return torch.cat([means, torch.tanh(self.project(pooled))], dim=-1)

    def encode(self, seq: torch.Tensor) -> torch.Tensor:
        return self.lstm(seq)[0][:, -1]
