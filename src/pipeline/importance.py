"""Single- and multi-pass permutation importance (Breiman 2001; Lakshmanan et al. 2015;
McGovern et al. 2019): a shared permutation per pass, across samples.

Public API::

    from pipeline.importance import permutation_importance, channel_groups
    table = permutation_importance(predict, X, y, channel_groups(["sst", "hc"], X.shape),
                                   methods=("single", "multi"), repeats=5, seed=0)

``predict`` is any callable ``X -> y`` over a batch: a ``torch.nn.Module`` (run on its
own device, no gradients) or a function of NumPy arrays (a scikit-learn ``predict``).
A *group* is a boolean mask over one sample's shape (``X.shape[1:]``, broadcastable):
a variable, a (variable, lag) pair or a region. Permuting group g replaces its entries
with those of another sample, ``X[pi]``; a pass shares one permutation across the whole
frozen set plus the candidate. Each pass scores K candidates in batched forward passes:
``where(M, X[pi][idx], X[idx])`` for all K masks at once, reshaped to (K*b, ...).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np
import pandas as pd
import torch

Predict = Callable[[object], object]
#: Per-sample loss of a batch of outputs against targets, (batch,); higher is worse.
SampleLoss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def squared_error(pred: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per-sample mean squared error over every output of a sample (the default loss)."""
    return ((pred.reshape(len(pred), -1) - y.reshape(len(y), -1)) ** 2).mean(dim=-1)


COLUMNS = ["method", "pass", "group", "score", "ci_low", "ci_high", "rank", "increment"]


def channel_groups(names: Sequence[str], sample_shape: Sequence[int], axis: int = -3) -> dict:
    """One group per variable: the channel axis of (history, channel, lat, lon) samples.

    ``axis`` counts within one sample's shape (default: the channel axis of gridded maps;
    use -1 for (N, features) tables).
    """
    shape = tuple(sample_shape)
    axis = axis % len(shape)
    groups = {}
    for i, name in enumerate(names):
        mask = np.zeros([n if d == axis else 1 for d, n in enumerate(shape)], dtype=bool)
        mask[(slice(None),) * axis + (i,)] = True
        groups[name] = mask
    return groups


def variable_lag_groups(
    names: Sequence[str], lags: Sequence[int], sample_shape: Sequence[int]
) -> dict:
    """One group per (variable, lag) of (history, channel, lat, lon) samples."""
    groups = {}
    for h, lag in enumerate(lags):
        for c, name in enumerate(names):
            mask = np.zeros((len(lags), len(names), 1, 1), dtype=bool)
            mask[h, c] = True
            groups[f"{name}@{lag}"] = mask
    return groups


#: The most rows of small samples one forward pass holds (see _Scorer).
SMALL_SAMPLE_ROWS = 1024


class _Scorer:
    """Per-sample losses of K masked permutations of X, batched on the model's device."""

    def __init__(
        self, predict: Predict, X: np.ndarray, y: np.ndarray, batch_size: int, loss: SampleLoss
    ):
        self.is_torch = isinstance(predict, torch.nn.Module)
        self.device = (
            next(predict.parameters()).device
            if self.is_torch and any(True for _ in predict.parameters())
            else torch.device("cpu")
        )
        self.predict = predict
        self.X = torch.as_tensor(np.asarray(X)).to(self.device)
        y = np.asarray(y)
        y = y if np.issubdtype(y.dtype, np.integer) else y.astype(np.float64)
        self.y = torch.as_tensor(y).to(self.device)
        # Rows per forward pass: batch_size bounds the activations of large samples;
        # small ones (a table's rows) go up to SMALL_SAMPLE_ROWS, about 4 MB of inputs,
        # where per-call overhead and small matrix products would cost more.
        elements = int(np.prod(self.X.shape[1:]))
        self.batch_size = max(batch_size, min(SMALL_SAMPLE_ROWS, 2**20 // max(1, elements)))
        self.loss = loss

    def _forward(self, batch: torch.Tensor) -> torch.Tensor:
        if self.is_torch:
            with torch.inference_mode():
                out = self.predict(batch)
        else:
            out = torch.as_tensor(np.asarray(self.predict(batch.cpu().numpy())))
        return out.to(self.device, torch.float64)

    def losses(self, masks: np.ndarray | None, order: np.ndarray | None) -> torch.Tensor:
        """(K, N, G) per-sample losses (G: the loss's output columns, 1 for a (batch,)
        loss); ``masks`` (K, *sample) select what takes X[order].

        Each forward pass holds K copies of about ``batch_size / K`` samples, so memory
        (and cache use) stays bounded by ``batch_size`` rows whatever K is.
        """
        n = len(self.X)
        k = 1 if masks is None else len(masks)
        if not self.is_torch:
            return self._losses_per_candidate(masks, order)
        out: torch.Tensor | None = None
        m = None if masks is None else torch.as_tensor(masks, device=self.device)
        perm = None if order is None else torch.as_tensor(order, device=self.device)
        step = max(1, self.batch_size // k)  # rows per forward pass stay near batch_size
        for start in range(0, n, step):
            idx = torch.arange(start, min(start + step, n), device=self.device)
            xb = self.X[idx]
            if m is None:
                stacked = xb[None]
            else:
                stacked = torch.where(m[:, None], self.X[perm[idx]][None], xb[None])
            pred = self._forward(stacked.reshape(k * len(idx), *xb.shape[1:]))
            y = self.y[idx].repeat(k, *([1] * (self.y.dim() - 1)))
            losses = self.loss(pred, y).reshape(k, len(idx), -1).to(torch.float64)
            if out is None:
                out = torch.empty((k, n, losses.shape[-1]), dtype=torch.float64, device=self.device)
            out[:, idx] = losses
        return out

    def _losses_per_candidate(
        self, masks: np.ndarray | None, order: np.ndarray | None
    ) -> torch.Tensor:
        """A NumPy model: one ``predict`` call per candidate over every sample, as the
        PermutationImportance package calls it. Such models pay per call (input checks,
        conversions), which batching K candidates into small slices would multiply."""
        X = self.X.cpu().numpy()
        shuffled = None if order is None else X[order]
        candidates = [None] if masks is None else list(masks)
        out = []
        for mask in candidates:
            inputs = X if mask is None else np.where(mask, shuffled, X)
            out.append(
                self.loss(self._forward(torch.as_tensor(inputs)), self.y).reshape(len(X), -1)
            )
        return torch.stack(out).to(torch.float64)


def permutation(seed: int, pass_: int, repeat: int, n: int) -> np.ndarray:
    """The row permutation pi(t, r), from a generator seeded by (seed, t, r)."""
    return np.random.default_rng([seed, pass_, repeat]).permutation(n)


def block_bootstrap_ci(
    diffs: np.ndarray, n_boot: int, block: int, seed: int, level: float = 0.95
) -> tuple[float, float]:
    """Percentile interval of the mean of per-sample paired differences, resampling
    blocks of ``block`` consecutive samples (the samples are autocorrelated in time).

    Blocks wrap around the end (circular blocks, Politis & Romano 1992), so every
    sample is drawn equally often and the interval is centred on the score; plain
    moving blocks under-sample the first and last ``block - 1`` samples."""
    if n_boot == 0:
        return float("nan"), float("nan")
    n = len(diffs)
    block = max(1, min(block, n))
    n_blocks = -(-n // block)
    rng = np.random.default_rng([seed, 999_983])
    starts = rng.integers(0, n, size=(n_boot, n_blocks))
    idx = ((starts[:, :, None] + np.arange(block)) % n).reshape(n_boot, -1)[:, :n]
    means = diffs[idx].mean(axis=1)
    alpha = (1 - level) / 2
    return float(np.quantile(means, alpha)), float(np.quantile(means, 1 - alpha))


def _pass_diffs(
    scorer: _Scorer,
    masks: np.ndarray,
    base: torch.Tensor,
    repeats: int,
    seed: int,
    t: int,
) -> np.ndarray:
    """(K, N, G) loss increases of K candidate masks in pass t, mean over the repeats;
    paired differences, so exactly 0 where nothing changed."""
    total = torch.zeros((len(masks), *base.shape), dtype=torch.float64, device=base.device)
    for r in range(repeats):
        total += scorer.losses(masks, permutation(seed, t, r, len(base))) - base[None]
    return (total / repeats).cpu().numpy()  # pooled over r


def permutation_importance(
    predict: Predict,
    X: np.ndarray,
    y: np.ndarray,
    groups: Mapping[str, np.ndarray],
    *,
    methods: Sequence[str] = ("single", "multi"),
    repeats: int = 5,
    bootstrap: int = 200,
    block_length: int = 12,
    seed: int = 0,
    batch_size: int = 256,
    loss: SampleLoss | None = None,
    outputs: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Single- and/or multi-pass permutation importance of a per-sample ``loss`` (higher
    is worse; default: squared error, so scores are Delta MSE).

    Returns one row per (method, pass, group) with ``score`` = mean over repeats of the
    loss increase over the unpermuted baseline, its block-bootstrap 95% interval, the
    ``rank`` (single: by score; multi: the pass that selected it) and, for multi-pass, the
    ``increment`` over the previous pass. X is never modified.

    With ``outputs`` (e.g. classes), ``loss`` returns (batch, len(outputs)) and each
    output is scored on its own column, in a column ``output``: one set of forward passes
    serves every output in the single pass; multi-pass selects per output.
    """
    names = list(groups)
    sample_shape = np.shape(X)[1:]
    masks = np.stack([np.broadcast_to(groups[g], sample_shape) for g in names]).astype(bool)
    scorer = _Scorer(predict, X, y, batch_size, loss or squared_error)
    base = scorer.losses(None, None)[0]  # (N, G)
    first = _pass_diffs(scorer, masks, base, repeats, seed, 1)
    tables = []
    for g in range(base.shape[1]):
        rows = _rows(
            scorer, masks, names, base, first, g, methods, repeats, bootstrap, block_length, seed
        )
        table = pd.DataFrame(rows, columns=COLUMNS)
        tables.append(table if outputs is None else table.assign(output=outputs[g]))
    return pd.concat(tables, ignore_index=True)


def _rows(
    scorer: _Scorer,
    masks: np.ndarray,
    names: list[str],
    base: torch.Tensor,
    first: np.ndarray,
    g: int,
    methods: Sequence[str],
    repeats: int,
    bootstrap: int,
    block_length: int,
    seed: int,
) -> list[dict]:
    """The rows of output column ``g``: pass 1 from ``first``, later passes computed."""
    sample_shape = masks.shape[1:]
    rows: list[dict] = []
    n_passes = len(names) if "multi" in methods else 1
    frozen = np.zeros(sample_shape, dtype=bool)
    previous, chosen = 0.0, []
    for t in range(1, n_passes + 1):
        candidates = [i for i in range(len(names)) if i not in chosen]
        if t == 1:
            diffs = first[..., g]
        else:
            diffs = _pass_diffs(scorer, masks[candidates] | frozen[None], base, repeats, seed, t)
            diffs = diffs[..., g]
        scores = diffs.mean(axis=1)
        if t == 1 and "single" in methods:
            order = np.argsort(-scores, kind="stable")
            for rank, j in enumerate(order, start=1):
                low, high = block_bootstrap_ci(diffs[j], bootstrap, block_length, seed)
                rows.append(
                    {
                        "method": "single",
                        "pass": 1,
                        "group": names[candidates[j]],
                        "score": scores[j],
                        "ci_low": low,
                        "ci_high": high,
                        "rank": rank,
                        "increment": scores[j],
                    }
                )
        if "multi" not in methods:
            break
        best = int(np.argmax(scores))  # ties: lowest index
        low, high = block_bootstrap_ci(diffs[best], bootstrap, block_length, seed)
        rows.append(
            {
                "method": "multi",
                "pass": t,
                "group": names[candidates[best]],
                "score": scores[best],
                "ci_low": low,
                "ci_high": high,
                "rank": t,
                "increment": scores[best] - previous,
            }
        )
        previous = scores[best]
        chosen.append(candidates[best])
        frozen = frozen | masks[candidates[best]]
    return rows
