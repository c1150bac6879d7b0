"""Verification metrics: pure NumPy functions with NaN masks and optional weights.

Conventions (as in WeatherBench 2, Rasp et al. 2024): for gridded fields, ``weights``
are cell-area weights broadcast against the inputs; the time axis is axis 0. RMSE takes
the square root *after* the mean over time. NaNs (land, missing observations) are
masked in both arguments alike and never filled.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike


def _valid(pred: ArrayLike, obs: ArrayLike) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    p, o = np.asarray(pred, dtype=float), np.asarray(obs, dtype=float)
    return p, o, np.isfinite(p) & np.isfinite(o)


def _weighted_mean(values: np.ndarray, valid: np.ndarray, weights: ArrayLike | None) -> float:
    w = np.ones_like(values) if weights is None else np.broadcast_to(weights, values.shape)
    w = np.where(valid, w, 0.0)
    return float(np.sum(np.where(valid, values, 0.0) * w) / np.sum(w))


def mse(pred: ArrayLike, obs: ArrayLike, weights: ArrayLike | None = None) -> float:
    p, o, valid = _valid(pred, obs)
    return _weighted_mean((p - o) ** 2, valid, weights)


def rmse(pred: ArrayLike, obs: ArrayLike, weights: ArrayLike | None = None) -> float:
    """Root of the (area-weighted) mean squared error over time and space."""
    return float(np.sqrt(mse(pred, obs, weights)))


def mae(pred: ArrayLike, obs: ArrayLike, weights: ArrayLike | None = None) -> float:
    p, o, valid = _valid(pred, obs)
    return _weighted_mean(np.abs(p - o), valid, weights)


def bias(pred: ArrayLike, obs: ArrayLike, weights: ArrayLike | None = None) -> float:
    p, o, valid = _valid(pred, obs)
    return _weighted_mean(p - o, valid, weights)


def pearson(pred: ArrayLike, obs: ArrayLike, weights: ArrayLike | None = None) -> float:
    """(Weighted) Pearson correlation; the ACC when both are anomalies."""
    p, o, valid = _valid(pred, obs)
    pm, om = _weighted_mean(p, valid, weights), _weighted_mean(o, valid, weights)
    cov = _weighted_mean((p - pm) * (o - om), valid, weights)
    var_p = _weighted_mean((p - pm) ** 2, valid, weights)
    var_o = _weighted_mean((o - om) ** 2, valid, weights)
    return float(cov / np.sqrt(var_p * var_o)) if var_p > 0 and var_o > 0 else float("nan")


def acc(pred: ArrayLike, obs: ArrayLike, weights: ArrayLike | None = None) -> float:
    """Anomaly correlation coefficient: Pearson correlation of anomalies."""
    return pearson(pred, obs, weights)


def msess(
    pred: ArrayLike, obs: ArrayLike, reference: ArrayLike, weights: ArrayLike | None = None
) -> float:
    """MSE skill score 1 - MSE/MSE_ref against a reference (baseline) forecast."""
    ref = mse(reference, obs, weights)
    return float(1 - mse(pred, obs, weights) / ref) if ref > 0 else float("nan")


def fraction_of_oracle(model_acc: float, oracle_acc: float) -> float:
    """Skill as a fraction of the predictability limit's correlation."""
    return float(model_acc / oracle_acc) if oracle_acc else float("nan")


# ------------------------------------------------------------------------- hydrology


# Series scores run along the last (time) axis: 1-D series give a float, (entity, time)
# arrays one value per entity. The pairs where either side is NaN are dropped per
# entity; an entity with no pair left, or a score undefined on its pairs (a constant
# series), scores NaN. The arguments are keyword-only because, unlike the scores above,
# these are not symmetric and hydrology libraries disagree on their order.


def _time_mean(values: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Mean over the valid entries of the last axis; NaN where there is none."""
    with np.errstate(invalid="ignore"):
        return np.where(valid, values, 0.0).sum(-1) / valid.sum(-1)


def _time_std(values: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Population standard deviation over the valid entries of the last axis; exactly 0
    where they are all equal, so that a constant series is recognised despite rounding."""
    mean = _time_mean(values, valid)
    std = np.sqrt(_time_mean((values - mean[..., None]) ** 2, valid))
    constant = np.where(valid, values, -np.inf).max(-1) == np.where(valid, values, np.inf).min(-1)
    return np.where(constant, 0.0, std)


def _ratio_or_nan(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den != 0, num / np.where(den != 0, den, 1.0), np.nan)


def _per_series(values: np.ndarray) -> float | np.ndarray:
    return float(values) if np.ndim(values) == 0 else values


def nse(*, sim: ArrayLike, obs: ArrayLike) -> float | np.ndarray:
    """Nash-Sutcliffe efficiency 1 - sum (sim - obs)^2 / sum (obs - mean obs)^2 (Nash &
    Sutcliffe 1970): 1 is perfect, 0 is as good as the observed mean."""
    s, o, valid = _valid(sim, obs)
    sse = _time_mean((s - o) ** 2, valid)
    return _per_series(1 - _ratio_or_nan(sse, _time_std(o, valid) ** 2))


def kge(*, sim: ArrayLike, obs: ArrayLike) -> dict[str, float | np.ndarray]:
    """Kling-Gupta efficiency (Gupta et al. 2009) ``1 - sqrt((r-1)^2 + (alpha-1)^2 +
    (beta-1)^2)`` and its components: the Pearson correlation r, the variability ratio
    alpha = sigma_sim / sigma_obs and the bias ratio beta = mu_sim / mu_obs."""
    s, o, valid = _valid(sim, obs)
    mean_s, mean_o = _time_mean(s, valid), _time_mean(o, valid)
    std_s, std_o = _time_std(s, valid), _time_std(o, valid)
    cov = _time_mean((s - mean_s[..., None]) * (o - mean_o[..., None]), valid)
    r = _ratio_or_nan(cov, std_s * std_o)
    alpha, beta = _ratio_or_nan(std_s, std_o), _ratio_or_nan(mean_s, mean_o)
    value = 1 - np.sqrt((r - 1) ** 2 + (alpha - 1) ** 2 + (beta - 1) ** 2)
    parts = {"kge": value, "r": r, "alpha": alpha, "beta": beta}
    return {name: _per_series(v) for name, v in parts.items()}


# -------------------------------------------------------- classification/segmentation


def confusion_matrix(labels: ArrayLike, predicted: ArrayLike, n_classes: int) -> np.ndarray:
    """Counts C[i, j] of true class i predicted as j; negative labels are ignored."""
    t, p = np.asarray(labels).ravel(), np.asarray(predicted).ravel()
    keep = t >= 0
    return np.bincount(n_classes * t[keep] + p[keep], minlength=n_classes**2).reshape(
        n_classes, n_classes
    )


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1), 0.0)


def classification_scores(cm: np.ndarray) -> dict[str, object]:
    """Per-class and macro precision, recall, F1, IoU and Dice from a confusion matrix."""
    tp = np.diag(cm).astype(float)
    fp = cm.sum(axis=0) - tp
    fn = cm.sum(axis=1) - tp
    precision = _ratio(tp, tp + fp)
    recall = _ratio(tp, tp + fn)
    f1 = _ratio(2 * precision * recall, precision + recall)
    iou = _ratio(tp, tp + fp + fn)
    dice = _ratio(2 * tp, 2 * tp + fp + fn)
    return {
        "precision": precision.tolist(),
        "recall": recall.tolist(),
        "f1": f1.tolist(),
        "iou": iou.tolist(),
        "dice": dice.tolist(),
        "macro_precision": float(precision.mean()),
        "macro_recall": float(recall.mean()),
        "macro_f1": float(f1.mean()),
        "mean_iou": float(iou.mean()),
        "mean_dice": float(dice.mean()),
        "accuracy": float(tp.sum() / cm.sum()),
    }


def _cumulative_hits(labels: ArrayLike, scores: ArrayLike) -> tuple[np.ndarray, np.ndarray, int]:
    """Per distinct threshold (descending): samples at or above it, positives among them."""
    y, s = np.asarray(labels, dtype=bool).ravel(), np.asarray(scores, dtype=float).ravel()
    order = np.argsort(-s, kind="mergesort")
    y, s = y[order], s[order]
    last_of_tie = np.r_[np.flatnonzero(np.diff(s)), len(s) - 1]
    return last_of_tie + 1, np.cumsum(y)[last_of_tie], int(y.sum())


Hits = tuple[np.ndarray, np.ndarray, int]


def _roc_of(hits: Hits, n: int) -> tuple[np.ndarray, np.ndarray]:
    above, tps, positives = hits
    negatives = n - positives
    return np.r_[0.0, (above - tps) / max(negatives, 1)], np.r_[0.0, tps / max(positives, 1)]


def _average_precision(hits: Hits) -> float:
    above, tps, positives = hits
    recall = tps / max(positives, 1)
    return float(np.sum(np.diff(np.r_[0.0, recall]) * (tps / above)))


def roc_curve(labels: ArrayLike, scores: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """False- and true-positive rates of a binary problem, over all score thresholds."""
    return _roc_of(_cumulative_hits(labels, scores), int(np.size(labels)))


def pr_curve(labels: ArrayLike, scores: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Precision and recall of a binary problem, over all score thresholds (descending)."""
    above, tps, positives = _cumulative_hits(labels, scores)
    return tps / above, tps / max(positives, 1)


def roc_auc(labels: ArrayLike, scores: ArrayLike) -> float:
    fpr, tpr = roc_curve(labels, scores)
    return float(np.trapezoid(tpr, fpr))


def pr_auc(labels: ArrayLike, scores: ArrayLike) -> float:
    """Area under the precision-recall curve as average precision (step-wise)."""
    return _average_precision(_cumulative_hits(labels, scores))


def one_vs_rest_auc(labels: ArrayLike, probabilities: ArrayLike) -> dict[str, list[float]]:
    """ROC AUC and PR AUC per class from class probabilities (..., n_classes); one sort
    per class serves both (segmentation scores millions of pixels)."""
    y = np.asarray(labels).ravel()
    probs = np.asarray(probabilities).reshape(-1, np.shape(probabilities)[-1])
    keep = y >= 0
    roc, pr = [], []
    for k in range(probs.shape[1]):
        hits = _cumulative_hits(y[keep] == k, probs[keep, k])
        fpr, tpr = _roc_of(hits, int(keep.sum()))
        roc.append(float(np.trapezoid(tpr, fpr)))
        pr.append(_average_precision(hits))
    return {"roc_auc": roc, "pr_auc": pr}
