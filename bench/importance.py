"""Wall time of permutation importance: ours (batched) vs the PermutationImportance
package (multi-pass) and scikit-learn (single-pass), on the same model and data.

PermutationImportance is installed for the benchmark only, without its dependencies
(its pin of an old scipy does not install):
    .venv/bin/pip install --no-deps --target bench/.deps PermutationImportance
Usage: .venv/bin/python bench/importance.py [--samples 5000] [--features 12] [--repeats 5]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.inspection import permutation_importance as sklearn_importance

from pipeline.importance import channel_groups, permutation_importance

sys.path.insert(0, str(Path(__file__).parent / ".deps"))


def make_problem(samples: int, features: int, seed: int = 0):
    """A tabular problem with a correlated pair and an MLP fitted to it."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((samples, features)).astype(np.float32)
    X[:, 1] = X[:, 0] + 0.05 * rng.standard_normal(samples)
    coef = np.linspace(1.0, 0.0, features).astype(np.float32)
    y = (X @ coef + 0.3 * np.tanh(X[:, 2] * X[:, 3]))[:, None].astype(np.float32)
    torch.manual_seed(seed)
    model = torch.nn.Sequential(
        torch.nn.Linear(features, 256),
        torch.nn.ReLU(),
        torch.nn.Linear(256, 256),
        torch.nn.ReLU(),
        torch.nn.Linear(256, 1),
    )
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    xt, yt = torch.as_tensor(X), torch.as_tensor(y)
    for _ in range(200):
        opt.zero_grad()
        torch.nn.functional.mse_loss(model(xt), yt).backward()
        opt.step()
    return X, y, model.eval()


class Wrapped(BaseEstimator, RegressorMixin):
    """The same torch model behind a scikit-learn predict."""

    def __init__(self, model=None):
        self.model = model

    def fit(self, X, y):
        return self

    def predict(self, X):
        with torch.no_grad():
            return self.model(torch.as_tensor(np.asarray(X, dtype=np.float32))).numpy()[:, 0]


def timed(fn) -> tuple[float, object]:
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--samples", type=int, default=5000)
    parser.add_argument("--features", type=int, default=12)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(1)
    X, y, model = make_problem(args.samples, args.features)
    names = [f"x{i}" for i in range(args.features)]
    groups = channel_groups(names, X.shape[1:], axis=-1)
    wrapped = Wrapped(model)
    rows = []

    t_multi, ours_multi = timed(
        lambda: permutation_importance(
            model, X, y, groups, methods=("multi",), repeats=1, bootstrap=0, batch_size=2048
        )
    )
    from PermutationImportance import permutation_importance as pi_importance

    def mse_score(training_data, scoring_data):
        inputs, outputs = scoring_data
        return float(np.mean((wrapped.predict(inputs) - outputs[:, 0]) ** 2))

    t_pi, pi_result = timed(
        lambda: pi_importance(
            (X, y), mse_score, np.argmax, variable_names=names, nimportant_vars=args.features
        )
    )
    rows.append(("multi-pass, 1 permutation per candidate", "ours (batched)", t_multi))
    rows.append(("multi-pass, 1 permutation per candidate", "PermutationImportance 1.2", t_pi))
    ours_order = ours_multi["group"].tolist()
    pi_order = [
        name for name, _ in sorted(pi_result.retrieve_multipass().items(), key=lambda kv: kv[1][0])
    ]

    t_single, ours_single = timed(
        lambda: permutation_importance(
            model,
            X,
            y,
            groups,
            methods=("single",),
            repeats=args.repeats,
            bootstrap=0,
            batch_size=2048,
        )
    )
    t_sk, sk = timed(
        lambda: sklearn_importance(
            wrapped,
            X,
            y[:, 0],
            n_repeats=args.repeats,
            scoring="neg_mean_squared_error",
            random_state=0,
        )
    )
    rows.append((f"single-pass, {args.repeats} repeats", "ours (batched)", t_single))
    rows.append((f"single-pass, {args.repeats} repeats", "scikit-learn", t_sk))

    print(f"samples={args.samples} features={args.features} torch threads=1")
    print("| task | implementation | wall (s) | ratio to ours |\n|---|---|---|---|")
    ours_time = {"multi": t_multi, "single": t_single}
    for task, impl, seconds in rows:
        ref = ours_time["multi" if task.startswith("multi") else "single"]
        print(f"| {task} | {impl} | {seconds:.2f} | {seconds / ref:.1f}x |")
    print("multi-pass order, ours:", ours_order[:5], "PermutationImportance:", pi_order[:5])
    ours_top = ours_single.sort_values("rank")["group"].tolist()[:3]
    sk_top = [names[i] for i in np.argsort(-sk.importances_mean)[:3]]
    print("single-pass top 3, ours:", ours_top, "sklearn:", sk_top)


if __name__ == "__main__":
    main()
