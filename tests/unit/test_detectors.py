"""The threshold-heuristic detector: regions, shapes, invariance, fit on synthetic storms."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.detectors import (
    CHANNELS,
    ThresholdDetector,
    components,
    fit_threshold_detector,
    is_global,
)
from pipeline.detectors import _shape as shape
from pipeline.sources.extremes import grid, simulate

TRAIN = slice(0, 40)
TEST = slice(40, None)


@pytest.fixture(scope="module")
def maps() -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Two months of daily 2.5-degree maps of the synthetic archive."""
    chunks = list(simulate(years=1, seed=5, days=59))
    fields = {name: np.concatenate([c.fields[name] for c in chunks]) for name in CHANNELS}
    return fields, np.concatenate([c.labels for c in chunks])


@pytest.fixture(scope="module")
def detector(maps: tuple) -> ThresholdDetector:
    fields, labels = maps
    lat, lon = grid()
    return fit_threshold_detector({k: v[TRAIN] for k, v in fields.items()}, labels[TRAIN], lat, lon)


def _iou(predicted: np.ndarray, truth: np.ndarray, k: int) -> float:
    return ((predicted == k) & (truth == k)).sum() / ((predicted == k) | (truth == k)).sum()


def test_regions_join_across_the_longitude_seam_but_not_across_maps() -> None:
    mask = np.zeros((2, 5, 8), dtype=bool)
    mask[0, 2, [0, 1, 6, 7]] = True  # one region, cut by the seam
    mask[1, 2, [0, 7]] = True  # the same cells in the next map: another region
    mask[1, 4, 3] = True
    labels, n = components(mask)
    assert n == 3
    assert len(np.unique(labels[0, 2, [0, 1, 6, 7]])) == 1
    assert labels[1, 2, 0] == labels[1, 2, 7] != labels[0, 2, 0]
    assert 0 < labels[1, 4, 3] <= n and labels[1, 4, 3] != labels[1, 2, 0]
    assert components(mask, periodic=False)[1] == 5  # a regional grid does not wrap
    assert is_global(np.arange(0, 360, 2.5)) and not is_global(np.arange(0, 180, 2.5))


def test_shape_of_a_band_on_the_sphere() -> None:
    """A meridional band from 20 to 60 N, 10 degrees of longitude wide at 40 N."""
    lat, lon = grid()
    mask = np.zeros((1, len(lat), len(lon)), dtype=bool)
    mask[0, (lat >= 20) & (lat <= 60), 40:44] = True
    ((length, width),) = shape(*components(mask), lat, lon)
    assert length == pytest.approx(42.5 * 111.2, rel=0.1)
    assert width == pytest.approx(10 * 111.2 * np.cos(np.deg2rad(40)), rel=0.15)


def test_detector_finds_storms_and_rivers_but_imperfectly(maps: tuple, detector) -> None:
    fields, labels = maps
    predicted = detector.predict({k: v[TEST] for k, v in fields.items()})
    assert predicted.shape == labels[TEST].shape and predicted.dtype == np.int64
    for k, name in ((1, "tropical_cyclone"), (2, "atmospheric_river")):
        assert 0.3 < _iou(predicted, labels[TEST], k) < 0.9
        assert 0.3 < detector.train_iou[name] < 0.95
    lo, hi = detector.tc_band
    assert 0 <= lo < 10 and 30 < hi < 45


def test_probabilities_sum_to_one_and_argmax_is_the_prediction(maps: tuple, detector) -> None:
    fields, _ = maps
    test = {k: v[TEST] for k, v in fields.items()}
    p = detector.probabilities(test)
    assert p.shape == (19, 3, *fields["TMQ"].shape[1:]) and p.dtype == np.float32
    assert p.min() >= 0 and np.allclose(p.sum(axis=1), 1, atol=1e-6)
    np.testing.assert_array_equal(p.argmax(axis=1), detector.predict(test))
    assert len(np.unique(p[:, 2])) > 10  # soft scores: ROC curves have more than one point


def test_normalised_channels_give_the_same_answer(maps: tuple, detector) -> None:
    """The pipeline hands the detector (x - mean) / std: nothing may change."""
    fields, labels = maps
    lat, lon = grid()
    rng = np.random.default_rng(0)
    normalised = {}
    for name, values in fields.items():
        offset, scale = rng.normal(0, 1e3), rng.uniform(0.01, 100)
        normalised[name] = (values.astype(np.float64) - offset) / scale
    other = fit_threshold_detector(
        {k: v[TRAIN] for k, v in normalised.items()}, labels[TRAIN], lat, lon
    )
    assert other.train_iou == pytest.approx(detector.train_iou)
    test, test_normalised = ({k: v[TEST] for k, v in f.items()} for f in (fields, normalised))
    np.testing.assert_array_equal(other.predict(test_normalised), detector.predict(test))
    np.testing.assert_allclose(
        other.probabilities(test_normalised), detector.probabilities(test), atol=1e-4
    )


def test_missing_channel_or_wrong_grid_is_named(maps: tuple, detector) -> None:
    fields, labels = maps
    lat, lon = grid()
    without_psl = {k: v[TRAIN] for k, v in fields.items() if k != "PSL"}
    with pytest.raises(ValueError, match="PSL"):
        fit_threshold_detector(without_psl, labels[TRAIN], lat, lon)
    with pytest.raises(ValueError, match="TMQ"):
        detector.predict({k: v[TEST, :, :10] for k, v in fields.items()})
