"""Permutation importance: an analytic case with known answers, and the required checks."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.inspection import permutation_importance as sk_permutation_importance

from pipeline.importance import (
    block_bootstrap_ci,
    channel_groups,
    permutation_importance,
    squared_error,
)

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


def test_the_default_loss_is_the_per_sample_squared_error() -> None:
    X, y = analytic_data()
    X, y = X[:500], y[:500]
    explicit = run(X=X, y=y, repeats=2, loss=squared_error)
    pd.testing.assert_frame_equal(explicit, run(X=X, y=y, repeats=2))


class Sign(torch.nn.Module):
    """Two-class logits from the sign of the first feature alone."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack([-4 * x[:, 0], 4 * x[:, 0]], dim=1)


def test_a_task_loss_on_class_labels() -> None:
    """A per-sample cross-entropy of integer labels (a classification task's loss)."""
    X, _ = analytic_data()
    labels = (X[:, 0] > 0).astype(np.int64)  # the true class is the sign of A

    def cross_entropy(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.cross_entropy(logits, y, reduction="none")

    table = run(Sign(), X=X, y=labels, repeats=2, methods=("single",), loss=cross_entropy)
    single = table.set_index("group")["score"]
    assert single["A"] > 1.0  # a random sign: the confident logits cost about 2 nats
    assert single[["A'", "B", "N"]].tolist() == [0.0, 0.0, 0.0]  # never read


def both_outputs(X: np.ndarray) -> np.ndarray:
    """Two outputs: f (reads A, A' and B) and B alone."""
    return np.concatenate([f(X), X[:, 2:3]], axis=1)


def test_several_outputs_are_scored_as_if_each_were_alone() -> None:
    """One set of forward passes serves every output (e.g. classes); each output's
    scores, and its multi-pass order, are those of a run on that output only."""
    X, y = analytic_data()
    X, Y = X[:400], np.concatenate([y[:400], X[:400, 2:3]], axis=1)

    def squared(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return (pred - target) ** 2  # (batch, 2)

    both = run(both_outputs, X=X, y=Y, repeats=2, loss=squared, outputs=["f", "b"])
    for g, name in enumerate(["f", "b"]):
        alone = run(both_outputs, X=X, y=Y, repeats=2, loss=lambda p, t, g=g: squared(p, t)[:, g])
        mine = both[both["output"] == name].drop(columns="output").reset_index(drop=True)
        pd.testing.assert_frame_equal(mine, alone)
    only_b = both[(both["output"] == "b") & (both["method"] == "single")].set_index("group")
    assert only_b.loc[["A", "A'", "N"], "score"].tolist() == [0.0, 0.0, 0.0]


def test_the_bootstrap_is_centred_on_the_score() -> None:
    """Loss increases that are large at both ends of the test period (events there)."""
    diffs = np.r_[np.full(6, 10.0), np.zeros(36), np.full(6, 10.0)]
    low, high = block_bootstrap_ci(diffs, n_boot=4000, block=12, seed=0, level=0.5)
    assert low < diffs.mean() < high  # moving blocks gave 0.21 to 1.46
