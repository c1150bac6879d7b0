"""Reference forecasts every evaluation reports beside the models.

All are fitted on the train split only. The oracle (the synthetic generator's
E[T(t+L) | T(t), h(t)]) is not a baseline but the predictability limit; it comes with
the prepared data when the dataset has a truth file.
"""

from __future__ import annotations

import numpy as np
import xarray as xr
from sklearn.decomposition import PCA
from sklearn.linear_model import RidgeCV
from sklearn.pipeline import Pipeline, make_pipeline

from pipeline.samples import split_inputs

RIDGE_ALPHAS = np.logspace(-3, 4, 15)


def persistence(index_init: np.ndarray, n_leads: int) -> np.ndarray:
    """The last observed anomaly, for every lead: (samples, leads)."""
    return np.repeat(np.asarray(index_init, dtype=float)[:, None], n_leads, axis=1)


def climatology(n_samples: int, n_leads: int) -> np.ndarray:
    """Zero anomaly: the train-period monthly climatology itself."""
    return np.zeros((n_samples, n_leads))


def fit_linear(x_train: np.ndarray, y_train: np.ndarray, n_components: int = 20) -> Pipeline:
    """Ridge regression on the leading principal components of the flattened inputs.

    The full SVD (not randomised) keeps the fit deterministic; RidgeCV picks the
    penalty by efficient leave-one-out on the train split.
    """
    flat = x_train.reshape(len(x_train), -1)
    n_components = min(n_components, *flat.shape)
    model = make_pipeline(PCA(n_components, svd_solver="full"), RidgeCV(alphas=RIDGE_ALPHAS))
    return model.fit(flat, y_train)


def baseline_forecasts(prepared: xr.Dataset, split: str = "test") -> dict[str, np.ndarray]:
    """Every baseline's (samples, leads) forecast on ``split`` (plus the oracle if known)."""
    is_split = prepared["split"].values == split
    train = prepared["split"].values == "train"
    n_leads = prepared.sizes["lead"]
    linear = fit_linear(split_inputs(prepared, "train"), prepared["y"].values[train])
    out = {
        "persistence": persistence(prepared["index_init"].values[is_split], n_leads),
        "climatology": climatology(int(is_split.sum()), n_leads),
        "linear": linear.predict(split_inputs(prepared, split).reshape(int(is_split.sum()), -1)),
    }
    if "oracle" in prepared:
        out["oracle"] = prepared["oracle"].values[is_split].astype(float)
    return out
