"""The base of the sequence models (``specs.SERIES_ARCHS``): LSTM, RNN, TCN, MLP on lags.

They read a sequence of vectors and forecast from its last step. Series studies give
(batch, time, features) windows: the dynamic inputs, with the static attributes repeated
at every step (Kratzert et al. 2019, HESS 23, 5089). Gridded studies give maps
(batch, time, channels, lat, lon), reduced per step to each channel's area-weighted mean
over valid cells, so every sequence model can also be compared on a map task.
"""

from __future__ import annotations

import torch
from torch import nn


class SeriesModel(nn.Module):
    """Turns either input form into (batch, time, features); subclasses define ``encode``
    (that sequence -> one vector per sample) and ``head`` (that vector -> n_out)."""

    head: nn.Module

    def __init__(self, n_features: int, area_weights: torch.Tensor | None = None):
        super().__init__()
        if area_weights is not None:  # gridded input: weights (channels, lat, lon), each sums to 1
            self.register_buffer("area_weights", area_weights.float())
            n_features = area_weights.shape[0]
        else:
            self.area_weights = None
        self.n_features = n_features

    def sequence(self, x: torch.Tensor) -> torch.Tensor:
        """(batch, time, features) from either input form."""
        if x.dim() == 3:
            return x
        return torch.einsum("btcyx,cyx->btc", x, self.area_weights.to(x.dtype))

    def encode(self, seq: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.encode(self.sequence(x)))
