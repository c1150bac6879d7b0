"""Wall time of multi-pass permutation importance: ours against the PermutationImportance
package (Jergensen et al., the McGovern et al. 2019 implementation), on the same model,
data and number of model evaluations, for three kinds of model:

- ``numpy``: a scikit-learn ridge regression, called through its NumPy ``predict``;
- ``mlp``: a torch MLP (2 hidden layers of 256) on a table;
- ``cnn``: the default ENSO experiment's CNN on inputs of its shape
  (history 3 x channel 2 x 23 x 72), one group per (variable, lag): 6 groups.

Both run multi-pass selection with one permutation per candidate (21 model evaluations
of the whole set for 6 groups, 78 for 12), no bootstrap; torch on 1 thread. The package
permutes "columns" along axis 1, so the CNN's inputs go to it as (N, 6, 23, 72) and
back to (N, 3, 2, 23, 72) inside its scoring function. Runs alternate, best of 3 each.

PermutationImportance is installed for the benchmark only, without its dependencies
(its pin of an old scipy does not install):
    .venv/bin/pip install --no-deps --target bench/.deps PermutationImportance
Usage: .venv/bin/python bench/importance.py [--samples 5000] [--cnn-samples 400]
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from sklearn.linear_model import Ridge

from pipeline.importance import channel_groups, permutation_importance
from pipeline.models.registry import Shapes, build_model

sys.path.insert(0, str(Path(__file__).parent / ".deps"))


def tabular(samples: int, features: int = 12, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A table with a correlated pair of features and a nonlinear term."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((samples, features)).astype(np.float32)
    X[:, 1] = X[:, 0] + 0.05 * rng.standard_normal(samples)
    coef = np.linspace(1.0, 0.0, features).astype(np.float32)
    y = (X @ coef + 0.3 * np.tanh(X[:, 2] * X[:, 3]))[:, None].astype(np.float32)
    return X, y


def fitted_mlp(X: np.ndarray, y: np.ndarray) -> torch.nn.Module:
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Linear(X.shape[1], 256),
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
    return model.eval()


def enso_cnn(samples: int) -> tuple[torch.nn.Module, np.ndarray, np.ndarray]:
    """The default config's ENSO CNN (random weights: the cost is the same) and inputs."""
    shapes = Shapes(history=3, channels=2, lat=23, lon=72, n_out=5)
    spec = {"arch": "cnn", "filters": [8, 16], "kernel": 5, "pool": "max", "head": "gap"}
    torch.manual_seed(0)
    model = build_model(spec, shapes).eval()
    rng = np.random.default_rng(1)
    X = rng.standard_normal((samples, 3, 2, 23, 72)).astype(np.float32)
    with torch.no_grad():
        y = model(torch.as_tensor(X)).numpy() + 0.1 * rng.standard_normal((samples, 5))
    return model, X, y.astype(np.float32)


def package_multipass(
    predict: Callable[[np.ndarray], np.ndarray], X: np.ndarray, y: np.ndarray, names: list[str]
) -> list[str]:
    """PermutationImportance's multi-pass selection, scored by mean squared error."""
    from PermutationImportance import permutation_importance as package

    def mse(training_data, scoring_data) -> float:
        inputs, outputs = scoring_data
        pred = np.asarray(predict(inputs)).reshape(len(outputs), -1)
        return float(np.mean((pred - outputs.reshape(len(outputs), -1)) ** 2))

    result = package((X, y), mse, np.argmax, variable_names=names, nimportant_vars=len(names))
    return [n for n, _ in sorted(result.retrieve_multipass().items(), key=lambda kv: kv[1][0])]


def best_of(runs: int, fns: dict[str, Callable[[], object]]) -> dict[str, tuple[float, object]]:
    """Alternate the callables ``runs`` times; the best wall time of each, and its result."""
    best: dict[str, tuple[float, object]] = {}
    for _ in range(runs):
        for name, fn in fns.items():
            start = time.perf_counter()
            out = fn()
            seconds = time.perf_counter() - start
            if name not in best or seconds < best[name][0]:
                best[name] = (seconds, out)
    return best


def case(
    label: str, ours: Callable[[], object], package: Callable[[], list[str]], runs: int
) -> dict:
    result = best_of(runs, {"ours": ours, "package": package})
    (t_ours, table), (t_pkg, pkg_order) = result["ours"], result["package"]
    ours_order = table.sort_values("pass")["group"].tolist()
    return {
        "model": label,
        "ours_s": t_ours,
        "package_s": t_pkg,
        "ratio": t_ours / t_pkg,
        "same_top3": ours_order[:3] == pkg_order[:3],
        "order": ours_order[:4],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=5000, help="rows of the tables")
    parser.add_argument("--cnn-samples", type=int, default=400, help="ENSO CNN samples")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)
    X, y = tabular(args.samples)
    names = [f"x{i}" for i in range(X.shape[1])]
    table_groups = channel_groups(names, X.shape[1:], axis=-1)
    ridge = Ridge(alpha=1.0).fit(X, y)
    mlp = fitted_mlp(X, y)
    cnn, Xc, yc = enso_cnn(args.cnn_samples)
    lag_names = [f"{v}@{lag}" for lag in (-2, -1, 0) for v in ("sst", "hc")]
    lag_groups = {}
    for i, name in enumerate(lag_names):
        mask = np.zeros((3, 2, 1, 1), dtype=bool)
        mask[i // 2, i % 2] = True
        lag_groups[name] = mask

    def torch_predict(model: torch.nn.Module, shape: tuple[int, ...]) -> Callable:
        def predict(inputs: np.ndarray) -> np.ndarray:
            with torch.no_grad():
                return model(torch.as_tensor(inputs).reshape(len(inputs), *shape)).numpy()

        return predict

    def ours(predict, X_, y_, groups) -> Callable[[], object]:
        return lambda: permutation_importance(
            predict, X_, y_, groups, methods=("multi",), repeats=1, bootstrap=0
        )

    rows = [
        case(
            "numpy: scikit-learn ridge",
            ours(ridge.predict, X, y, table_groups),
            lambda: package_multipass(ridge.predict, X, y, names),
            args.runs,
        ),
        case(
            "torch MLP",
            ours(mlp, X, y, table_groups),
            lambda: package_multipass(torch_predict(mlp, X.shape[1:]), X, y, names),
            args.runs,
        ),
        case(
            "ENSO CNN",
            ours(cnn, Xc, yc, lag_groups),
            lambda: package_multipass(
                torch_predict(cnn, Xc.shape[1:]), Xc.reshape(len(Xc), 6, 23, 72), yc, lag_names
            ),
            args.runs,
        ),
    ]
    print(f"tables: {args.samples} x 12; ENSO CNN: {args.cnn_samples} samples; torch 1 thread")
    print("| model | ours (s) | PermutationImportance (s) | ours / package | same top 3 |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['model']} | {r['ours_s']:.3f} | {r['package_s']:.3f} | {r['ratio']:.2f} "
            f"| {'yes' if r['same_top3'] else 'no'} ({', '.join(r['order'])}, ...) |"
        )


if __name__ == "__main__":
    main()
