"""A vanilla (Elman, tanh) RNN, shaped like the LSTM (models/lstm.py) but without gates.

The gradient from the last step back to step t is a product of t Jacobians of norm
below 1 at initialisation, so it vanishes within tens of steps (Bengio et al. 1994;
Pascanu et al. 2013). Beside the LSTM on snow-fed basins, whose flow remembers months
of winter precipitation, it shows what the LSTM's cell state buys.
"""

from __future__ import annotations

import torch
from torch import nn

from pipeline.models.series import SeriesModel


class RNNForecaster(SeriesModel):
    def __init__(
        self,
        spec: dict,
        n_features: int,
        n_out: int,
        area_weights: torch.Tensor | None = None,
    ):
        super().__init__(n_features, area_weights)
        self.rnn = nn.RNN(
            self.n_features,
            spec["hidden"],
            num_layers=spec["layers"],
            nonlinearity="tanh",
            batch_first=True,
            dropout=spec["dropout"] if spec["layers"] > 1 else 0.0,
        )
        self.head = nn.Linear(spec["hidden"], n_out)

    def encode(self, seq: torch.Tensor) -> torch.Tensor:
        return self.rnn(seq)[0][:, -1]
