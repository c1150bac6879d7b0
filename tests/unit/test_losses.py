"""Training losses: batch values against hand computations, torch and scikit-learn, and
the per-sample / per-class splits that permutation importance scores."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.metrics import f1_score, jaccard_score, log_loss

from pipeline import metrics
from pipeline.losses import (
    LOSSES,
    class_weights_from_frequencies,
    masked_mse,
    nse_loss,
    soft_dice_loss,
    soft_jaccard_loss,
    weighted_cross_entropy,
)

SEGMENTATION = [weighted_cross_entropy, soft_jaccard_loss, soft_dice_loss]
WEIGHTS = torch.tensor([0.5, 3.0, 1.5])


def segmentation_batch(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits (4, 3, 5, 8) and labels with ignored pixels; sample 3 lacks class 2."""
    gen = torch.Generator().manual_seed(seed)
    logits = torch.randn(4, 3, 5, 8, generator=gen)
    labels = torch.randint(0, 3, (4, 5, 8), generator=gen)
    labels[3][labels[3] == 2] = 1
    labels[torch.rand(4, 5, 8, generator=gen) < 0.2] = -1
    return logits, labels


def test_masked_mse_ignores_nan_targets() -> None:
    pred = torch.tensor([[1.0, 2.0], [3.0, 100.0]])
    target = torch.tensor([[0.0, 2.0], [3.0, float("nan")]])
    assert masked_mse(pred, target).item() == pytest.approx(1 / 3)
    pred.requires_grad_(True)
    masked_mse(pred, target).backward()
    assert pred.grad[1, 1] == 0 and torch.isfinite(pred.grad).all()


def test_masked_mse_per_sample_and_per_lead() -> None:
    pred = torch.tensor([[1.0, 2.0, 0.0], [3.0, 100.0, 1.0]])
    target = torch.tensor([[0.0, 2.0, 2.0], [3.0, float("nan"), 3.0]])
    per_sample = masked_mse(pred, target, per="sample")
    np.testing.assert_allclose(per_sample, [(1 + 0 + 4) / 3, (0 + 4) / 2])
    per_lead = masked_mse(pred, target, per="channel")
    np.testing.assert_allclose(per_lead, [[1 / 3, 0, 4 / 3], [0, 0, 2]])
    # the batch loss weights each sample by its count of finite targets
    batch = masked_mse(pred, target)
    assert batch.item() == pytest.approx((3 * per_sample[0] + 2 * per_sample[1]).item() / 5)
    maps = torch.randn(3, 2, 4, 5)  # (batch, lead, lat, lon), same mask: the plain mean
    truth = torch.randn(3, 2, 4, 5)
    truth[:, :, 0] = float("nan")
    assert masked_mse(maps, truth, per="sample").mean().item() == pytest.approx(
        masked_mse(maps, truth).item()
    )
    assert masked_mse(torch.ones(2), torch.full((2,), float("nan")), per="sample").eq(0).all()


def nse_batch() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Forecasts and targets (6 samples, 2 leads) of basins whose flows differ 100-fold,
    with missing targets, and each sample's basin standard deviation."""
    gen = torch.Generator().manual_seed(0)
    std = torch.tensor([0.05, 0.05, 1.0, 1.0, 5.0, 5.0])
    target = std[:, None] * torch.randn(6, 2, generator=gen)
    pred = target + std[:, None] * 0.3 * torch.randn(6, 2, generator=gen)
    target[1, 0] = target[4, 1] = float("nan")
    return pred, target, std


def test_nse_loss_is_the_kratzert_2019_formula() -> None:
    """NSE* = mean over observed targets of (pred - obs)^2 / (s_b + 0.1)^2 (written out
    as in neuralhydrology's NSELoss)."""
    pred, target, std = nse_batch()
    valid = ~torch.isnan(target)
    weights = (1 / (std + 0.1) ** 2)[:, None].expand_as(target)
    expected = (weights * (pred - target) ** 2)[valid].mean()
    torch.testing.assert_close(nse_loss(pred, target, std), expected)
    torch.testing.assert_close(LOSSES["nse"](pred, target, std), expected)
    # the batch loss is the per-sample losses weighted by their counts of observed targets
    per_sample = nse_loss(pred, target, std, per="sample")
    counts = valid.sum(1)
    torch.testing.assert_close((per_sample * counts).sum() / counts.sum(), expected)
    alone = torch.stack(
        [nse_loss(pred[i : i + 1], target[i : i + 1], std[i : i + 1]) for i in range(6)]
    )
    torch.testing.assert_close(per_sample, alone)
    torch.testing.assert_close(nse_loss(pred, target, std, per="channel").sum(1), per_sample)


def test_nse_loss_weighs_every_basin_alike() -> None:
    """With eps = 0, scaling a basin's flows leaves its loss unchanged (MSE would grow
    with the square), and for one basin with s its target's std the loss is 1 - NSE."""
    pred, target, std = nse_batch()
    bigger = torch.where(torch.arange(6)[:, None] >= 4, 10.0, 1.0)
    torch.testing.assert_close(
        nse_loss(pred * bigger, target * bigger, std * bigger.squeeze(1), eps=0.0),
        nse_loss(pred, target, std, eps=0.0),
    )
    assert masked_mse(pred * bigger, target * bigger) > 50 * masked_mse(pred, target)
    obs = torch.randn(100, 1)
    sim = 0.8 * obs + 0.3 * torch.randn(100, 1)
    s = torch.full((100,), obs.std(correction=0).item())
    one_minus_nse = 1 - metrics.nse(sim=sim.numpy().ravel(), obs=obs.numpy().ravel())
    assert nse_loss(sim, obs, s, eps=0.0).item() == pytest.approx(one_minus_nse, rel=1e-5)


def test_nse_loss_masks_missing_targets_and_checks_its_scales() -> None:
    pred, target, std = nse_batch()
    pred.requires_grad_(True)
    nse_loss(pred, target, std).backward()
    assert torch.isfinite(pred.grad).all() and pred.grad[1, 0] == 0 and pred.grad[4, 1] == 0
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert nse_loss(pred.bfloat16(), target, std).dtype == torch.float32
    with pytest.raises(ValueError, match=r"want \(6,\)"):
        nse_loss(pred, target, std[:5])
    with pytest.raises(ValueError, match="finite and >= 0"):
        nse_loss(pred, target, torch.where(torch.arange(6) == 2, float("nan"), std))


def test_cross_entropy_matches_torch_and_sklearn() -> None:
    logits, labels = segmentation_batch()
    ours = weighted_cross_entropy(logits, labels, WEIGHTS)
    torch_ce = torch.nn.CrossEntropyLoss(weight=WEIGHTS, ignore_index=-1)(logits, labels)
    assert torch.equal(ours, torch_ce)
    valid = labels >= 0
    probs = torch.softmax(logits.double(), 1).movedim(1, -1)[valid].numpy()
    y = labels[valid].numpy()
    sk = log_loss(y, probs, sample_weight=WEIGHTS.numpy()[y], labels=[0, 1, 2])
    assert ours.item() == pytest.approx(sk, rel=1e-5)


def test_overlap_losses_match_sklearn_on_hard_predictions(monkeypatch) -> None:
    """Without smoothing, confident logits give 1 - macro IoU and 1 - macro F1."""
    monkeypatch.setattr("pipeline.losses.SMOOTH", 0.0)
    logits, labels = segmentation_batch()
    hard = logits.argmax(1)
    valid = labels >= 0
    y, p = labels[valid].numpy(), hard[valid].numpy()
    confident = 100 * torch.nn.functional.one_hot(hard, 3).movedim(-1, 1).float()
    iou = jaccard_score(y, p, average="macro")
    dice = f1_score(y, p, average="macro")
    assert soft_jaccard_loss(confident, labels).item() == pytest.approx(1 - iou, abs=1e-6)
    assert soft_dice_loss(confident, labels).item() == pytest.approx(1 - dice, abs=1e-6)


def test_soft_jaccard_by_hand() -> None:
    """One sample, two classes, three pixels, one ignored; s = 1 on both sides."""
    p0 = torch.tensor([0.8, 0.3, 0.5])
    logits = torch.stack([p0.log(), (1 - p0).log()])[None, :, None, :]  # softmax -> p0, 1-p0
    labels = torch.tensor([[[0, 1, -1]]])
    iou0 = (0.8 + 1) / (0.8 + 0.3 + 1 - 0.8 + 1)  # I = .8, P = 1.1, T = 1
    iou1 = (0.7 + 1) / (0.2 + 0.7 + 1 - 0.7 + 1)  # I = .7, P = .9, T = 1
    assert soft_jaccard_loss(logits, labels).item() == pytest.approx(1 - (iou0 + iou1) / 2)
    dice0, dice1 = (1.6 + 1) / (1.1 + 1 + 1), (1.4 + 1) / (0.9 + 1 + 1)
    weighted = soft_dice_loss(logits, labels, torch.tensor([1.0, 3.0]))
    assert weighted.item() == pytest.approx(1 - (dice0 + 3 * dice1) / 4)


@pytest.mark.parametrize("loss", SEGMENTATION)
def test_ignored_pixels_do_not_count(loss) -> None:
    logits, labels = segmentation_batch()
    scrambled = torch.where((labels < 0).unsqueeze(1), 1e3 * torch.randn_like(logits), logits)
    for per in ("batch", "sample", "channel"):
        assert torch.equal(loss(logits, labels, per=per), loss(scrambled, labels, per=per))
    # a pixel's column dropped entirely gives the same loss as the column ignored
    cut = labels.clone()
    cut[:, :, -1] = -1
    assert loss(logits[..., :-1], labels[..., :-1]).item() == pytest.approx(
        loss(logits, cut).item(), rel=1e-6
    )


@pytest.mark.parametrize("loss", SEGMENTATION)
def test_per_sample_is_the_loss_of_the_sample_alone(loss) -> None:
    logits, labels = segmentation_batch()
    per_sample = loss(logits, labels, WEIGHTS, per="sample")
    per_class = loss(logits, labels, WEIGHTS, per="channel")
    assert per_sample.shape == (4,) and per_class.shape == (4, 3)
    alone = torch.stack([loss(logits[i : i + 1], labels[i : i + 1], WEIGHTS) for i in range(4)])
    torch.testing.assert_close(per_sample, alone)
    torch.testing.assert_close(per_class.sum(1), per_sample)  # class shares add up


def test_cross_entropy_per_sample_weighted_mean_is_the_batch_loss() -> None:
    logits, labels = segmentation_batch()
    per_sample = weighted_cross_entropy(logits, labels, WEIGHTS, per="sample")
    sample_weight = (WEIGHTS[labels.clamp(min=0)] * (labels >= 0)).sum((1, 2))
    pooled = (per_sample * sample_weight).sum() / sample_weight.sum()
    assert pooled.item() == pytest.approx(weighted_cross_entropy(logits, labels, WEIGHTS).item())
    full = torch.randint(0, 3, (4, 5, 8))  # no weights, nothing ignored: the plain mean
    assert weighted_cross_entropy(logits, full, per="sample").mean().item() == pytest.approx(
        weighted_cross_entropy(logits, full).item()
    )
    # class c's share is the weighted cross-entropy of the pixels labelled c
    shares = weighted_cross_entropy(logits, labels, WEIGHTS, per="channel")
    ce = torch.nn.functional.cross_entropy(logits, labels, ignore_index=-1, reduction="none")
    mine = (labels[0] == 1) * WEIGHTS[1] * ce[0]
    assert shares[0, 1].item() == pytest.approx((mine.sum() / sample_weight[0]).item())


@pytest.mark.parametrize("loss", SEGMENTATION)
def test_perfect_prediction_costs_nothing(loss) -> None:
    _, labels = segmentation_batch()  # sample 3 has no class-2 pixel
    perfect = 30 * torch.nn.functional.one_hot(labels.clamp(min=0), 3).movedim(-1, 1).float()
    assert loss(perfect, labels).item() == pytest.approx(0, abs=1e-5)
    assert loss(perfect, labels, WEIGHTS, per="channel").abs().max() < 1e-5
    assert loss(-perfect, labels).item() > 0.5  # and a wrong one costs


@pytest.mark.parametrize("loss", SEGMENTATION)
def test_gradients_finite_and_fp32_under_bf16_autocast(loss) -> None:
    logits, labels = segmentation_batch()
    labels[0] = -1  # a sample with nothing to learn from
    for per in ("batch", "sample", "channel"):
        x = logits.clone().requires_grad_(True)
        loss(x, labels, WEIGHTS, per=per).sum().backward()
        assert torch.isfinite(x.grad).all() and x.grad[0].eq(0).all()
    assert loss(logits, labels, WEIGHTS, per="sample")[0] == 0
    with torch.autocast("cpu", dtype=torch.bfloat16):
        low = loss(logits.bfloat16(), labels, WEIGHTS)
    assert low.dtype == torch.float32
    assert torch.equal(low, loss(logits.bfloat16().float(), labels, WEIGHTS))


def test_class_weights_are_climatenet_inverse_frequencies() -> None:
    frequencies = np.array([0.93897, 0.004619, 0.05674])  # background, cyclone, river
    weights = class_weights_from_frequencies(frequencies * 1e6)
    np.testing.assert_allclose(weights, [0.355, 72.171, 5.875], rtol=1e-3)
    assert (weights * frequencies / frequencies.sum()).sum() == pytest.approx(1.0)
    # weighted cross-entropy only sees the weights' ratios
    logits, labels = segmentation_batch()
    w = torch.as_tensor(weights, dtype=torch.float32)
    assert weighted_cross_entropy(logits, labels, w).item() == pytest.approx(
        weighted_cross_entropy(logits, labels, 7 * w).item()
    )
    with pytest.raises(ValueError, match="class 1 has no pixel"):
        class_weights_from_frequencies([10, 0, 3])
    with pytest.raises(ValueError, match="non-negative"):
        class_weights_from_frequencies([10, -1, 3])


def test_registry_and_options() -> None:
    assert set(LOSSES) == {"mse", "nse", "cross_entropy", "jaccard", "dice"}
    logits, labels = segmentation_batch()
    with pytest.raises(ValueError, match="per must be one of"):
        LOSSES["jaccard"](logits, labels, per="pixel")
    with pytest.raises(ValueError, match="want \\(3,\\)"):
        LOSSES["dice"](logits, labels, torch.ones(2))
