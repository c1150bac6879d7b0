"""Training losses a task can pick by name (``LOSSES``), each also split per sample.

Every loss takes the model output first and the target second, and returns, by ``per``:

- ``"batch"``: the scalar that training minimises;
- ``"sample"``: a (batch,) tensor, sample i's loss computed on sample i alone;
- ``"channel"``: a (batch, channels) tensor of per-sample contributions along dim 1 of the
  output (the class of segmentation logits, the lead of a forecast) that sum over
  channels to the ``"sample"`` loss. Permutation importance reads "delta loss per
  class" from it, and the per-class deltas add up to the total delta.

The NSE loss takes, third, the standard deviation of each sample's target series over
the train period (batch,), as the segmentation losses take class weights.

Segmentation losses take logits (batch, classes, *space) and integer labels
(batch, *space), where label -1 marks a missing or ignored pixel, and optional class
weights (classes,). Losses are computed in float32 even under bf16 autocast: logits are
cast with ``.float()`` and no op here is on autocast's lower-precision list.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F

IGNORE = -1  # the label of a missing or ignored pixel
NSE_EPS = 0.1  # added to each basin's standard deviation in the NSE loss (Kratzert et al. 2019)
SMOOTH = 1.0  # pixels added to both sides of the soft IoU and Dice ratios
PER = ("batch", "sample", "channel")


def _check_per(per: str) -> None:
    if per not in PER:
        raise ValueError(f"per must be one of {PER}, got {per!r}")


def _safe_div(num: torch.Tensor, den: torch.Tensor) -> torch.Tensor:
    """num / den, and num (which is then 0) where den is 0, with finite gradients."""
    return num / torch.where(den > 0, den, torch.ones_like(den))


def _split(terms: torch.Tensor, den: torch.Tensor, per: str) -> torch.Tensor:
    """Per-sample (``per="sample"``) or per-channel (``"channel"``) means of loss terms.

    ``terms`` (batch, channels, ...) are the weighted per-element terms and ``den``
    (batch,) the sample's total weight; a sample with no weight has loss 0.
    """
    by_channel = terms.reshape(terms.shape[0], terms.shape[1], -1).sum(-1)
    if per == "channel":
        return _safe_div(by_channel, den[:, None])
    return _safe_div(by_channel.sum(1), den)


def masked_mse(pred: torch.Tensor, target: torch.Tensor, *, per: str = "batch") -> torch.Tensor:
    """MSE over the finite targets only (land and missing values are NaN).

    Per sample: the mean squared error over the sample's own finite targets. The batch loss
    is the mean of the per-sample losses weighted by each sample's count of finite
    targets, so the plain mean when every sample has the same mask.
    """
    _check_per(per)
    valid = torch.isfinite(target)
    diff = torch.where(valid, pred.float() - torch.nan_to_num(target), 0.0)
    if per == "batch":
        return (diff**2).sum() / valid.sum().clamp(min=1)
    if diff.dim() == 1:  # (batch,): one output channel
        diff, valid = diff[:, None], valid[:, None]
    return _split(diff**2, valid.reshape(len(valid), -1).sum(1).float(), per)


def nse_loss(
    pred: torch.Tensor,
    target: torch.Tensor,
    target_std: torch.Tensor,
    *,
    eps: float = NSE_EPS,
    per: str = "batch",
) -> torch.Tensor:
    """The basin-averaged NSE loss NSE* (Kratzert et al. 2019, HESS 23, 5089).

    The squared error of sample i weighted by ``1 / (s_i + eps)**2``, with s_i the
    standard deviation of the target of sample i's basin (or station) over the train
    period, in the units of ``target``. Plain MSE lets basins with large flows dominate;
    so weighted, a basin's mean term is about its 1 - NSE (for eps << s), and every
    basin counts alike. ``eps`` keeps near-constant basins from dominating in turn. NaN
    targets are masked; the batch, per-sample and per-channel reductions are those of
    ``masked_mse``.
    """
    std = torch.as_tensor(target_std, dtype=torch.float32, device=pred.device)
    if std.shape != pred.shape[:1]:
        raise ValueError(f"target_std has shape {tuple(std.shape)}, want ({len(pred)},)")
    if not bool(torch.isfinite(std).all()) or bool((std < 0).any()):
        raise ValueError("target_std must be finite and >= 0 (a basin with no train target?)")
    scale = (1 / (std + eps)).reshape(-1, *[1] * (pred.dim() - 1))
    return masked_mse(pred.float() * scale, target * scale, per=per)


def _class_weights(class_weights: torch.Tensor | None, logits: torch.Tensor) -> torch.Tensor:
    """Float32 class weights on the logits' device; all 1 when none are given."""
    n_classes = logits.shape[1]
    if class_weights is None:
        return torch.ones(n_classes, device=logits.device)
    weights = torch.as_tensor(class_weights, dtype=torch.float32, device=logits.device)
    if weights.shape != (n_classes,):
        raise ValueError(f"class_weights has shape {tuple(weights.shape)}, want ({n_classes},)")
    return weights


def _one_hot(labels: torch.Tensor, n_classes: int) -> torch.Tensor:
    """(batch, classes, *space) float32 indicators of the labels; all 0 at ignored pixels."""
    labels = labels.long()
    hot = F.one_hot(labels.clamp(min=0), n_classes).movedim(-1, 1).float()
    return hot * (labels != IGNORE).unsqueeze(1)


def weighted_cross_entropy(
    logits: torch.Tensor,
    labels: torch.Tensor,
    class_weights: torch.Tensor | None = None,
    *,
    per: str = "batch",
) -> torch.Tensor:
    """Per-pixel cross-entropy for segmentation; label -1 (missing) is ignored.

    As ``torch.nn.functional.cross_entropy``: the mean over valid pixels of
    ``w[y] * ce``, divided by the mean of ``w[y]``. Per sample, the same over the
    sample's pixels; per channel, class c's share: the sum over the sample's pixels
    labelled c, divided by the sample's total weight. The batch loss is the mean of
    the per-sample losses weighted by each sample's total weight ``sum w[y]``.
    """
    _check_per(per)
    logits = logits.float()
    if per == "batch":
        weight = None if class_weights is None else _class_weights(class_weights, logits)
        return F.cross_entropy(logits, labels.long(), weight=weight, ignore_index=IGNORE)
    hot = _one_hot(labels, logits.shape[1])
    pixel_weight = (hot.movedim(1, -1) * _class_weights(class_weights, logits)).sum(-1)  # w[y]
    ce = F.cross_entropy(logits, labels.long(), reduction="none", ignore_index=IGNORE)
    terms = hot * (pixel_weight * ce).unsqueeze(1)
    return _split(terms, pixel_weight.reshape(len(ce), -1).sum(1), per)


def _soft_overlap(
    logits: torch.Tensor, labels: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Soft intersection, predicted and true mass per (sample, class) over valid pixels."""
    hot = _one_hot(labels, logits.shape[1])
    valid = (labels != IGNORE).unsqueeze(1)
    probs = torch.where(valid, torch.softmax(logits.float(), dim=1), 0.0)
    space = tuple(range(2, probs.dim()))
    return (probs * hot).sum(space), probs.sum(space), hot.sum(space)


def _overlap_loss(
    score: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor],
    logits: torch.Tensor,
    labels: torch.Tensor,
    class_weights: torch.Tensor | None,
    per: str,
) -> torch.Tensor:
    """1 - the class-weighted mean of an overlap ``score(intersection, predicted, true)``.

    The batch loss pools the masses over the whole batch before the ratio (as ClimateNet
    does), so it is not the mean of the per-sample losses; per sample, the masses are the
    sample's own.
    """
    _check_per(per)
    masses = _soft_overlap(logits, labels)
    if per == "batch":
        masses = tuple(m.sum(0, keepdim=True) for m in masses)
    weights = _class_weights(class_weights, logits)
    share = (1 - score(*masses)) * (weights / weights.sum())  # (batch or 1, classes)
    if per == "channel":
        return share
    loss = share.sum(1)
    return loss[0] if per == "batch" else loss


def _iou(inter: torch.Tensor, pred: torch.Tensor, true: torch.Tensor) -> torch.Tensor:
    return (inter + SMOOTH) / (pred + true - inter + SMOOTH)


def _dice(inter: torch.Tensor, pred: torch.Tensor, true: torch.Tensor) -> torch.Tensor:
    return (2 * inter + SMOOTH) / (pred + true + SMOOTH)


def soft_jaccard_loss(
    logits: torch.Tensor,
    labels: torch.Tensor,
    class_weights: torch.Tensor | None = None,
    *,
    per: str = "batch",
) -> torch.Tensor:
    """1 - the mean over classes of the soft IoU of softmax probabilities and labels.

    Soft IoU of class c: ``(I + s) / (P + T - I + s)`` with I = sum of p_c over pixels
    labelled c, P = sum of p_c, T = the count of pixels labelled c, over valid pixels,
    s = ``SMOOTH``. This is the Jaccard loss ClimateNet trains on (Rahimi et al. 2020;
    Kapp-Schwoerer et al. 2020), except that s = 1 pixel is added to both sides where
    ClimateNet adds 1e-7 to the denominator: a class absent from the labels and from the
    prediction then scores 1, not 0, so a perfect forecast of a sample without, say, a
    cyclone has loss 0. With thousands of pixels per class the two differ by about 1/T.
    Class weights turn the mean over classes into a weighted mean.
    """
    return _overlap_loss(_iou, logits, labels, class_weights, per)


def soft_dice_loss(
    logits: torch.Tensor,
    labels: torch.Tensor,
    class_weights: torch.Tensor | None = None,
    *,
    per: str = "batch",
) -> torch.Tensor:
    """1 - the mean over classes of the soft Dice score ``(2I + s) / (P + T + s)``
    (Milletari et al. 2016), with the masses and smoothing of ``soft_jaccard_loss``."""
    return _overlap_loss(_dice, logits, labels, class_weights, per)


def class_weights_from_frequencies(counts: np.ndarray | list[float]) -> np.ndarray:
    """Inverse-frequency class weights ``w_c = 1 / (C f_c)`` from training pixel counts.

    Normalised so that the pixel-averaged weight ``sum_c f_c w_c`` is 1: a weighted loss
    keeps the scale of the unweighted one. These are ClimateNet's weights (background
    0.355, tropical cyclone 72.2, atmospheric river 5.88 from its class frequencies).
    Median-frequency balancing (Eigen & Fergus 2015) differs only by a constant factor,
    to which weighted cross-entropy and the weighted class means of Jaccard and Dice
    are invariant. A class with no training pixel has no finite weight: an error.
    """
    counts = np.asarray(counts, dtype=np.float64)
    if counts.ndim != 1 or not np.all(np.isfinite(counts)) or np.any(counts < 0):
        raise ValueError(f"class counts must be finite, non-negative and 1-D, got {counts}")
    missing = np.flatnonzero(counts == 0)
    if len(missing):
        raise ValueError(f"class {int(missing[0])} has no pixel in the training data")
    return counts.sum() / (len(counts) * counts)


LOSSES: dict[str, Callable[..., torch.Tensor]] = {
    "mse": masked_mse,
    "nse": nse_loss,
    "cross_entropy": weighted_cross_entropy,
    "jaccard": soft_jaccard_loss,
    "dice": soft_dice_loss,
}
