"""A multilayer perceptron on the lag window: the feed-forward generalisation of AR(p).

The last ``lags`` steps of the window (all of them at ``lags: 0``), every feature at
every lag, are flattened into one vector and passed through the hidden layers. With no
hidden layer it is a linear autoregression on those lags with covariates, the
classical model (Box & Jenkins) that the series baselines fit by least squares; hidden
layers make it a nonlinear AR(p). Unlike the recurrent models, it sees nothing older
than its lags, however long the window.
"""

from __future__ import annotations

import torch
from torch import nn

from pipeline.models.layers import activation
from pipeline.models.series import SeriesModel


class LagMLP(SeriesModel):
    def __init__(
        self,
        spec: dict,
        n_features: int,
        history: int,
        n_out: int,
        area_weights: torch.Tensor | None = None,
    ):
        super().__init__(n_features, area_weights)
        self.lags = spec["lags"] or history
        if self.lags > history:
            raise ValueError(
                f"model 'mlp': lags is {self.lags} but the input window has {history} steps"
            )
        layers: list[nn.Module] = []
        width = self.lags * self.n_features
        for size in spec["hidden"]:
            layers += [nn.Linear(width, size), activation(spec["activation"])]
            if spec["dropout"]:
                layers.append(nn.Dropout(spec["dropout"]))
            width = size
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(width, n_out)

    def encode(self, seq: torch.Tensor) -> torch.Tensor:
        return self.body(seq[:, -self.lags :].flatten(1))
