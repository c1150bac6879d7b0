"""The segmentation task (tasks/segmentation.py): samples per date and expert copy,
train-only statistics and class weights, losses, baselines, scores against
scikit-learn, predictions, importance per class, and its config checks."""

from __future__ import annotations

import copy
import json

import dask.array
import numpy as np
import pytest
import torch
import xarray as xr
from sklearn.metrics import average_precision_score, jaccard_score, roc_auc_score

from pipeline.config import ConfigError, load_yaml, resolve_config
from pipeline.importance import channel_groups, permutation_importance
from pipeline.tasks import get_task
from pipeline.tasks.segmentation import MISSING, build_samples, class_scores
from pipeline.variables import DataError
from tests.conftest import REPO

TASK = get_task("segmentation")
EXP = {
    "task": {
        "kind": "segmentation",
        "inputs": ["TMQ", "U850", "V850", "PSL"],
        "labels": "LABELS",
        "classes": ["background", "TC", "AR"],
    },
    "splits": {"train": [2000, 2000], "val": [2001, 2001], "test": [2002, 2002]},
}


def fields(experts: int = 1, seed: int = 0) -> xr.Dataset:
    """Daily maps over three years whose labels follow the channels: TC where PSL is
    low, AR where TMQ is high; ``experts`` > 1 adds copies, the last missing some days."""
    rng = np.random.default_rng(seed)
    time = xr.date_range("2000-01-01", "2002-12-31", freq="5D", use_cftime=False)
    shape = (len(time), 8, 16)
    tmq, psl = rng.normal(30, 10, shape), rng.normal(101000, 500, shape)
    labels = np.where(psl < 100400, 1, np.where(tmq > 42, 2, 0))
    data = {
        "TMQ": (("time", "lat", "lon"), tmq.astype(np.float32), {"units": "kg m-2"}),
        "U850": (("time", "lat", "lon"), rng.normal(0, 5, shape).astype(np.float32)),
        "V850": (("time", "lat", "lon"), rng.normal(0, 5, shape).astype(np.float32)),
        "PSL": (("time", "lat", "lon"), psl.astype(np.float32), {"units": "Pa"}),
    }
    if experts == 1:
        data["LABELS"] = (("time", "lat", "lon"), labels.astype(np.int8))
    else:
        copies = np.repeat(labels[:, None], experts, axis=1).astype(np.int8)
        copies[::2, -1] = MISSING  # a copy that exists for every other date only
        data["LABELS"] = (("time", "expert", "lat", "lon"), copies)
    coords = {"time": time, "lat": np.linspace(-70, 70, 8), "lon": np.arange(16) * 22.5}
    return xr.Dataset(data, coords=coords)


def prepared(ds: xr.Dataset) -> xr.Dataset:
    """build_samples, with the attrs as prepare writes and open_prepared reads them."""
    out = build_samples(ds, EXP)
    out.attrs = json.loads(json.dumps(out.attrs)) | {"task": "segmentation"}
    return out


def test_samples_statistics_and_class_weights_come_from_the_train_years() -> None:
    ds = fields()
    out = prepared(ds)
    train = ds.sel(time=slice("2000", "2000"))
    assert out.attrs["stats"]["TMQ"]["mean"] == pytest.approx(float(train["TMQ"].mean()), rel=1e-5)
    counts = np.bincount(train["LABELS"].values.ravel(), minlength=3)
    assert out.attrs["class_pixels"] == counts.tolist()
    weights = np.asarray(out.attrs["class_weights"])
    assert (weights * counts / counts.sum()).sum() == pytest.approx(1.0)  # mean pixel weight 1
    assert out["x"].dims == ("sample", "history", "channel", "lat", "lon")
    assert out["y"].dtype.kind == "i" and sorted(set(out["split"].values)) == [
        "test",
        "train",
        "val",
    ]
    assert out.attrs["units"]["TMQ"] == "kg m-2"


def test_expert_copies_are_samples_of_one_date_in_one_split() -> None:
    out = prepared(fields(experts=3))
    n_dates = fields().sizes["time"]
    assert len(out["sample"]) == n_dates * 3 - (n_dates + 1) // 2  # the missing copies dropped
    split_of = {}
    for time, split in zip(out["time"].values, out["split"].values, strict=True):
        assert split_of.setdefault(time, split) == split
    same = out["time"].values == out["time"].values[0]
    assert np.array_equal(out["x"].values[same][0], out["x"].values[same][-1])  # inputs shared


@pytest.mark.parametrize("experts", [1, 3])
def test_maps_out_of_core_give_the_same_samples_left_lazy(experts: int) -> None:
    """Fields read from a time-chunked store (dask) give exactly the samples of fields in
    memory, and x and y come back lazy, for prepare to write chunk by chunk."""
    ds = fields(experts=experts)
    eager = build_samples(ds, EXP)
    lazy = build_samples(ds.chunk({"time": 20}), EXP)
    assert isinstance(lazy["x"].data, dask.array.Array)
    assert isinstance(lazy["y"].data, dask.array.Array)
    xr.testing.assert_identical(lazy.compute(), eager)


@pytest.mark.parametrize("chunks", [None, {"time": 20}], ids=["in memory", "out of core"])
def test_a_class_absent_from_train_or_an_unknown_label_is_a_data_error(chunks) -> None:
    ds = fields()
    ds["LABELS"] = ds["LABELS"].where(ds["LABELS"] != 1, 0)
    with pytest.raises(DataError, match=r"LABELS.*class TC has no pixel"):
        build_samples(ds.chunk(chunks) if chunks else ds, EXP)
    ds = fields()
    ds["LABELS"][0, 0, 0] = 7
    with pytest.raises(DataError, match="'LABELS' holds the value 7"):
        build_samples(ds.chunk(chunks) if chunks else ds, EXP)


def test_class_scores_match_scikit_learn() -> None:
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 3, (6, 5, 7))
    labels[0, 0, :3] = MISSING
    logits = rng.normal(size=(6, 3, 5, 7)) + 2 * np.eye(3)[np.clip(labels, 0, 2)].transpose(
        0, 3, 1, 2
    )
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    scores = class_scores(probs, labels, ["background", "TC", "AR"])
    valid = labels.ravel() >= 0
    y, p = labels.ravel()[valid], np.moveaxis(probs, 1, -1).reshape(-1, 3)[valid]
    iou = jaccard_score(y, p.argmax(1), average=None)
    for k, name in enumerate(["background", "TC", "AR"]):
        got = scores["per_class"][name]
        assert got["iou"] == pytest.approx(iou[k])
        assert got["roc_auc"] == pytest.approx(roc_auc_score(y == k, p[:, k]))
        assert got["pr_auc"] == pytest.approx(average_precision_score(y == k, p[:, k]))
    assert scores["all"]["iou"] == pytest.approx(iou[1:].mean())  # the event classes
    assert scores["all"]["mean_iou_all_classes"] == pytest.approx(iou.mean())


def test_baselines_scores_and_predictions_round_trip() -> None:
    out = prepared(fields())
    baselines = TASK.baselines(out)
    assert set(baselines) == {"all-background", "threshold"}
    roles = dict.fromkeys(baselines, "baseline")
    table = TASK.score(baselines, roles, baselines, out)
    iou = table[(table["metric"] == "iou")].set_index(["forecast", "group"])["value"]
    assert iou["all-background", "TC"] == 0 and iou["all-background", "background"] > 0.5
    assert iou["threshold", "all"] > iou["all-background", "all"]
    outputs = {"forecast": baselines["threshold"]}
    ds = TASK.predictions(out, outputs, baselines)
    assert np.array_equal(TASK.forecast_from(ds), baselines["threshold"])
    assert np.array_equal(ds["observed"].values, out["y"].values[out["split"].values == "test"])


@pytest.mark.parametrize("name", ["auto", "cross_entropy", "jaccard", "dice"])
def test_every_loss_trains_the_segmenter(name: str) -> None:
    out = prepared(fields())
    torch.manual_seed(0)
    model = TASK.model({"arch": "unet", "depth": 1, "base": 4}, out)
    x = torch.as_tensor(out["x"].values[:8])
    y = torch.as_tensor(out[TASK.target({"arch": "unet"})].values[:8].astype(np.int64))
    loss = TASK.loss(name, out)(model(x), y)
    loss.backward()
    assert loss.ndim == 0 and torch.isfinite(loss) and loss > 0


def test_importance_scores_every_class_in_one_pass_and_finds_the_signal() -> None:
    """A "network" that is the labelling rule: permuting PSL hurts TC, TMQ hurts AR."""
    out = prepared(fields())
    test = out["split"].values == "test"
    stats = out.attrs["stats"]

    class Rule(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            tmq = x[:, 0, 0] * stats["TMQ"]["std"] + stats["TMQ"]["mean"]
            psl = x[:, 0, 3] * stats["PSL"]["std"] + stats["PSL"]["mean"]
            tc, ar = (psl < 100400).double(), ((tmq > 42) & (psl >= 100400)).double()
            return 20 * torch.stack([1 - tc - ar, tc, ar], dim=1)

    (target,) = TASK.importance_targets(Rule(), out, {})
    table = permutation_importance(
        target.predict,
        out["x"].values[test],
        target.y,
        channel_groups(list(out["channel"].values), out["x"].shape[1:]),
        loss=target.loss,
        outputs=target.groups,
        methods=("single",),
        repeats=2,
        bootstrap=0,
    )
    top = table[table["rank"] == 1].set_index("output")["group"]
    assert top["TC"] == "PSL" and top["AR"] == "TMQ"
    unused = table[table["group"].isin(["U850", "V850"])]["score"]
    assert (unused == 0).all()  # channels the rule never reads score exactly 0


def config(**changes) -> dict:
    cfg = load_yaml(REPO / "config" / "test.yaml")
    exp = cfg["experiments"]["extremes"]
    for key, value in changes.items():
        exp[key] = value
    return cfg


@pytest.mark.parametrize(
    ("changes", "key", "match"),
    [
        ({"models": {"cnn": {"arch": "cnn"}}}, "experiments.extremes.models.cnn.arch", "class map"),
        ({"training": {"loss": "mse"}}, "experiments.extremes.training.loss", "not a segmentation"),
        ({"importance": {"leads": [1]}}, "experiments.extremes.importance.leads", "forecasts"),
    ],
)
def test_config_errors_name_the_key(changes: dict, key: str, match: str) -> None:
    with pytest.raises(ConfigError, match=match) as err:
        resolve_config(config(**changes))
    assert err.value.key == key


def test_labels_and_classes_are_checked() -> None:
    cfg = config()
    task = copy.deepcopy(cfg["experiments"]["extremes"]["task"])
    cfg["experiments"]["extremes"]["task"] = task | {"labels": "MASK"}
    with pytest.raises(ConfigError) as err:
        resolve_config(cfg)
    assert err.value.key == "experiments.extremes.task.labels"
    cfg["experiments"]["extremes"]["task"] = task | {"classes": ["a", "a"]}
    with pytest.raises(ConfigError) as err:
        resolve_config(cfg)
    assert err.value.key == "experiments.extremes.task.classes"
