"""Metrics against scikit-learn (and analytic values) on random inputs."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy import stats
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


def hydroeval_nse(sim: np.ndarray, obs: np.ndarray) -> float:
    """NSE as hydroeval (Hallouin 2021) writes it."""
    return 1 - np.sum((obs - sim) ** 2) / np.sum((obs - np.mean(obs)) ** 2)


def hydroeval_kge(sim: np.ndarray, obs: np.ndarray) -> tuple[float, float, float, float]:
    """KGE (Gupta et al. 2009) and r, alpha, beta as hydroeval writes them."""
    sim_dev, obs_dev = sim - np.mean(sim), obs - np.mean(obs)
    r = np.sum(sim_dev * obs_dev) / np.sqrt(np.sum(sim_dev**2) * np.sum(obs_dev**2))
    alpha = np.std(sim) / np.std(obs)
    beta = np.sum(sim) / np.sum(obs)
    return 1 - np.sqrt((r - 1) ** 2 + (alpha - 1) ** 2 + (beta - 1) ** 2), r, alpha, beta


def flows(n_entities: int, n_time: int) -> tuple[np.ndarray, np.ndarray]:
    """Skewed (gamma) observed flows per entity and imperfect simulations of them."""
    obs = rng.gamma(2.0, 2.0, (n_entities, n_time)) * rng.uniform(0.1, 10, (n_entities, 1))
    sim = obs * rng.uniform(0.8, 1.2, (n_entities, 1)) + rng.standard_normal(obs.shape)
    return sim, obs


def test_nse_and_kge_of_one_series() -> None:
    sim, obs = flows(1, 365)
    sim, obs = sim[0], obs[0]
    assert isinstance(m.nse(sim=sim, obs=obs), float)
    assert m.nse(sim=sim, obs=obs) == pytest.approx(skm.r2_score(obs, sim))
    assert m.nse(sim=sim, obs=obs) == pytest.approx(hydroeval_nse(sim, obs))
    k = m.kge(sim=sim, obs=obs)
    assert (k["kge"], k["r"], k["alpha"], k["beta"]) == pytest.approx(hydroeval_kge(sim, obs))
    assert k["r"] == pytest.approx(stats.pearsonr(sim, obs).statistic)
    assert m.kge(sim=obs, obs=obs) == pytest.approx({"kge": 1, "r": 1, "alpha": 1, "beta": 1})
    assert m.nse(sim=obs, obs=obs) == 1.0
    assert m.nse(sim=np.full_like(obs, obs.mean()), obs=obs) == pytest.approx(0.0)
    with pytest.raises(TypeError):
        m.nse(sim, obs)  # NSE is not symmetric: the roles must be named


def test_nse_and_kge_per_entity_drop_missing_pairs() -> None:
    sim, obs = flows(5, 200)
    obs[rng.random(obs.shape) < 0.1] = np.nan  # gaps in observed flow
    sim[rng.random(sim.shape) < 0.05] = np.nan
    nse, k = m.nse(sim=sim, obs=obs), m.kge(sim=sim, obs=obs)
    assert nse.shape == (5,) and all(v.shape == (5,) for v in k.values())
    for e in range(5):
        pairs = np.isfinite(sim[e]) & np.isfinite(obs[e])
        s, o = sim[e, pairs], obs[e, pairs]
        assert nse[e] == pytest.approx(skm.r2_score(o, s))
        ours = (k["kge"][e], k["r"][e], k["alpha"][e], k["beta"][e])
        assert ours == pytest.approx(hydroeval_kge(s, o))


def test_undefined_scores_are_nan_without_warnings() -> None:
    sim, obs = flows(5, 50)
    obs[0] = np.nan  # no observation at all
    sim[1, ::2] = np.nan  # no pair left: obs is missing where sim is not
    obs[1, 1::2] = np.nan
    obs[2] = 0.1  # constant observations (their mean is not exactly 0.1 in floating point)
    sim[3] = 2.0  # a constant simulation: r undefined, alpha 0
    obs[4] = np.tile([-1.0, 1.0], 25)  # zero mean (an anomaly series): beta undefined
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        nse, k = m.nse(sim=sim, obs=obs), m.kge(sim=sim, obs=obs)
    assert np.isnan(nse[:3]).all() and np.isfinite(nse[3:]).all()
    assert np.isnan(k["kge"]).all()
    assert np.isnan(k["alpha"][:3]).all() and k["alpha"][3] == 0 and np.isnan(k["r"][3])
    assert np.isfinite(k["beta"][2:4]).all() and np.isnan(k["beta"][4])
    assert np.isfinite(k["r"][4]) and np.isfinite(k["alpha"][4])


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
