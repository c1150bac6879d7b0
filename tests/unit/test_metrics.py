"""Metrics against scikit-learn (and analytic values) on random inputs."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn import metrics as skm

from pipeline import metrics as m

rng = np.random.default_rng(0)


def test_regression_metrics_match_sklearn_and_numpy() -> None:
    obs = rng.standard_normal(200)
    pred = 0.7 * obs + 0.3 * rng.standard_normal(200) + 0.1
    assert m.mse(pred, obs) == pytest.approx(skm.mean_squared_error(obs, pred))
    assert m.rmse(pred, obs) == pytest.approx(np.sqrt(skm.mean_squared_error(obs, pred)))
    assert m.mae(pred, obs) == pytest.approx(skm.mean_absolute_error(obs, pred))
    assert m.bias(pred, obs) == pytest.approx(np.mean(pred - obs))
    assert m.pearson(pred, obs) == pytest.approx(np.corrcoef(pred, obs)[0, 1])
    assert m.msess(pred, obs, np.zeros_like(obs)) == pytest.approx(
        1 - skm.mean_squared_error(obs, pred) / np.mean(obs**2)
    )


def test_nan_is_masked_in_both_arguments() -> None:
    obs = rng.standard_normal(50)
    pred = obs + 0.5
    obs_nan = obs.copy()
    obs_nan[:10] = np.nan
    assert m.mse(pred, obs_nan) == pytest.approx(0.25)
    assert m.rmse(pred[10:], obs[10:]) == pytest.approx(m.rmse(pred, obs_nan))


def test_rmse_is_root_after_the_time_and_area_mean() -> None:
    err = rng.standard_normal((12, 4, 5))
    w = np.cos(np.deg2rad(np.array([-30.0, -10, 10, 30])))[:, None]
    expected = np.sqrt(np.mean([np.sum(e**2 * w) / np.sum(w * np.ones((4, 5))) for e in err]))
    assert m.rmse(err, np.zeros_like(err), w) == pytest.approx(expected)
    # not the mean of per-time RMSEs
    assert m.rmse(err, np.zeros_like(err), w) != pytest.approx(
        np.mean([np.sqrt(np.sum(e**2 * w) / np.sum(w * np.ones((4, 5)))) for e in err])
    )


def test_weighted_pearson_equals_repeated_samples() -> None:
    a, b = rng.standard_normal(6), rng.standard_normal(6)
    w = np.array([1, 2, 1, 3, 1, 2])
    assert m.pearson(a, b, w) == pytest.approx(np.corrcoef(np.repeat(a, w), np.repeat(b, w))[0, 1])


def test_nse_and_kge() -> None:
    obs = rng.gamma(2.0, 2.0, 365)
    sim = obs * 1.1 + rng.standard_normal(365) * 0.3
    assert m.nse(sim, obs) == pytest.approx(skm.r2_score(obs, sim))
    k = m.kge(sim, obs)
    r, alpha, beta = np.corrcoef(sim, obs)[0, 1], sim.std() / obs.std(), sim.mean() / obs.mean()
    assert (k["r"], k["alpha"], k["beta"]) == pytest.approx((r, alpha, beta))
    assert k["kge"] == pytest.approx(1 - np.sqrt((r - 1) ** 2 + (alpha - 1) ** 2 + (beta - 1) ** 2))
    assert m.kge(obs, obs)["kge"] == pytest.approx(1.0)


def test_classification_matches_sklearn() -> None:
    labels = rng.integers(0, 3, 500)
    predicted = np.where(rng.random(500) < 0.7, labels, rng.integers(0, 3, 500))
    cm = m.confusion_matrix(labels, predicted, 3)
    np.testing.assert_array_equal(cm, skm.confusion_matrix(labels, predicted, labels=[0, 1, 2]))
    scores = m.classification_scores(cm)
    np.testing.assert_allclose(
        scores["precision"], skm.precision_score(labels, predicted, average=None)
    )
    np.testing.assert_allclose(scores["recall"], skm.recall_score(labels, predicted, average=None))
    np.testing.assert_allclose(scores["f1"], skm.f1_score(labels, predicted, average=None))
    assert scores["macro_f1"] == pytest.approx(skm.f1_score(labels, predicted, average="macro"))
    np.testing.assert_allclose(scores["iou"], skm.jaccard_score(labels, predicted, average=None))
    assert scores["mean_iou"] == pytest.approx(
        skm.jaccard_score(labels, predicted, average="macro")
    )
    # Dice equals F1 per class
    np.testing.assert_allclose(scores["dice"], scores["f1"])


def test_ignored_labels_and_absent_classes() -> None:
    cm = m.confusion_matrix(np.array([0, 0, -1, 1]), np.array([0, 1, 2, 1]), 3)
    assert cm.sum() == 3
    scores = m.classification_scores(cm)
    assert scores["precision"][2] == 0.0 and scores["recall"][2] == 0.0


def test_auc_matches_sklearn() -> None:
    labels = rng.integers(0, 3, 400)
    logits = rng.standard_normal((400, 3)) + np.eye(3)[labels] * 1.5
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    probs = np.round(probs, 2)  # ties
    ours = m.one_vs_rest_auc(labels, probs)
    for k in range(3):
        assert ours["roc_auc"][k] == pytest.approx(skm.roc_auc_score(labels == k, probs[:, k]))
        assert ours["pr_auc"][k] == pytest.approx(
            skm.average_precision_score(labels == k, probs[:, k])
        )
    fpr, tpr = m.roc_curve(labels == 0, probs[:, 0])
    sk_fpr, sk_tpr, _ = skm.roc_curve(labels == 0, probs[:, 0], drop_intermediate=False)
    np.testing.assert_allclose(fpr, sk_fpr)
    np.testing.assert_allclose(tpr, sk_tpr)
