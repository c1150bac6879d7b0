"""Permutation importance: an analytic case with known answers, and the required checks."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.inspection import permutation_importance as sk_permutation_importance

from pipeline.importance import channel_groups, permutation_importance

N = 4000
NAMES = ["A", "A'", "B", "N"]
B_COEF = np.sqrt(0.1)


def analytic_data(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    s, b, noise, eps, eta = rng.standard_normal((5, N))
    X = np.stack([s, s + 0.05 * eps, b, noise], axis=1).astype(np.float32)
    y = 0.8 * X[:, 0] + 0.2 * X[:, 1] + B_COEF * X[:, 2] + 0.1 * eta
    return X, y[:, None]


def f(X: np.ndarray) -> np.ndarray:
    """The fixed model; elementwise, so its outputs do not depend on the batch."""
    return (0.8 * X[:, 0] + 0.2 * X[:, 1] + np.float32(B_COEF) * X[:, 2])[:, None]


class TorchF(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (0.8 * x[:, 0] + 0.2 * x[:, 1] + np.float32(B_COEF) * x[:, 2])[:, None]


def run(predict=f, X=None, y=None, **kw):
    if X is None:
        X, y = analytic_data()
    kw = {"repeats": 10, "bootstrap": 300, "block_length": 1, "seed": 0, **kw}
    return permutation_importance(predict, X, y, channel_groups(NAMES, X.shape[1:], axis=-1), **kw)


@pytest.fixture(scope="module")
def table():
    return run()


def test_single_pass_values_ranking_and_intervals(table) -> None:
    single = table[table["method"] == "single"].set_index("group")
    assert single.sort_values("rank").index.tolist() == ["A", "B", "A'", "N"]
    for group, expected in {"A": 1.28, "B": 0.20, "A'": 0.08}.items():
        row = single.loc[group]
        assert row["ci_low"] <= expected <= row["ci_high"], (group, row.to_dict())
        assert row["score"] == pytest.approx(expected, rel=0.15)
    assert single.loc["N", "score"] == 0.0  # never read: exactly zero
    assert single.loc["N", "ci_low"] == 0.0 == single.loc["N", "ci_high"]


def test_multi_pass_finds_the_hidden_duplicate(table) -> None:
    multi = table[table["method"] == "multi"].sort_values("pass")
    assert multi["group"].tolist() == ["A", "A'", "B", "N"]
    second = multi.iloc[1]
    assert second["increment"] == pytest.approx(0.72, rel=0.1)  # shared permutation
    # the cumulative score of {A, A'} is 2.0 analytically
    assert second["ci_low"] <= 2.0 <= second["ci_high"]
    assert multi.iloc[2]["increment"] == pytest.approx(0.20, rel=0.2)
    # N adds nothing; pass 4 redraws the permutation of {A, A', B}: Monte-Carlo noise only
    assert multi.iloc[3]["increment"] == pytest.approx(0.0, abs=0.05)


@pytest.mark.parametrize("batch_size", [1, 7, 64, 4000])
def test_batched_equals_loop_for_every_batch_size(batch_size: int) -> None:
    X, y = analytic_data()
    X, y = X[:300], y[:300]
    reference = run(X=X, y=y, repeats=3, batch_size=300)
    batched = run(X=X, y=y, repeats=3, batch_size=batch_size)
    np.testing.assert_array_equal(reference["score"].to_numpy(), batched["score"].to_numpy())
    # the plain loop: one candidate, one sample at a time, same permutations
    from pipeline.importance import permutation

    base = ((f(X) - y) ** 2).mean(axis=1)
    for group_index, group in enumerate(NAMES):
        total = np.zeros(len(X))
        for r in range(3):
            pi = permutation(0, 1, r, len(X))
            for n in range(len(X)):
                x = X[n].copy()
                x[group_index] = X[pi[n], group_index]
                total[n] += ((f(x[None]) - y[n]) ** 2).mean() - base[n]
        expected = (total / 3).mean()
        got = reference[(reference["method"] == "single") & (reference["group"] == group)]["score"]
        assert got.item() == expected, group


def test_seeded_runs_reproduce_and_seeds_matter() -> None:
    a, b = run(repeats=2), run(repeats=2)
    c = run(repeats=2, seed=1)
    assert a.equals(b)
    assert not np.allclose(a["score"], c["score"])


def test_input_is_never_mutated() -> None:
    X, y = analytic_data()
    before = X.copy()
    run(X=X, y=y, repeats=2)
    np.testing.assert_array_equal(X, before)


def test_torch_model_gives_the_same_numbers() -> None:
    np.testing.assert_allclose(
        run(TorchF(), repeats=3)["score"], run(repeats=3)["score"], rtol=1e-6
    )


def test_gridded_torch_version() -> None:
    """Each field's spatial mean carries A, A', B, N: the same ranking and values."""
    X, y = analytic_data()
    rng = np.random.default_rng(5)
    pattern = rng.standard_normal((4, 6, 8)).astype(np.float32)
    pattern -= pattern.mean(axis=(1, 2), keepdims=True)  # zero-mean structure per field
    grids = X[:, None, :, None, None] + pattern[None, None]  # (N, history=1, C=4, lat, lon)

    class GridModel(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            means = x.mean(dim=(-2, -1))[:, 0]  # (N, C)
            return (0.8 * means[:, 0] + 0.2 * means[:, 1] + np.float32(B_COEF) * means[:, 2])[
                :, None
            ]

    groups = channel_groups(NAMES, grids.shape[1:])
    table = permutation_importance(GridModel(), grids, y, groups, repeats=10, bootstrap=0, seed=0)
    flat = run(repeats=10, bootstrap=0)
    np.testing.assert_allclose(table["score"], flat["score"], rtol=1e-4, atol=1e-5)
    assert table[table["method"] == "multi"]["group"].tolist() == ["A", "A'", "B", "N"]


class FixedModel(BaseEstimator, RegressorMixin):
    """A scikit-learn style estimator wrapping f (fit does nothing)."""

    def fit(self, X, y):
        return self

    def predict(self, X):
        return f(np.asarray(X, dtype=np.float32))[:, 0]


def test_single_pass_agrees_with_sklearn() -> None:
    X, y = analytic_data()
    ours = run(repeats=30, methods=("single",)).set_index("group")
    sk = sk_permutation_importance(
        FixedModel(), X, y[:, 0], scoring="neg_mean_squared_error", n_repeats=30, random_state=0
    )
    for i, name in enumerate(NAMES):
        mc_error = 4 * sk.importances_std[i] / np.sqrt(30) + 4 * ours.loc[name, "score"] / np.sqrt(
            N
        )
        assert abs(ours.loc[name, "score"] - sk.importances_mean[i]) <= mc_error + 1e-12, name
