"""Config validation: every mistake fails early with a message naming the key."""

from __future__ import annotations

import copy

import pytest
import yaml

from pipeline.config import (
    ConfigError,
    expand_variants,
    load_config,
    prepare_hash,
    resolve_config,
    run_hash,
    variant_name,
)
from tests.conftest import REPO


@pytest.fixture
def raw() -> dict:
    with open(REPO / "config" / "test.yaml") as fh:
        return yaml.safe_load(fh)


def _break(raw: dict, path: str, value: object) -> dict:
    cfg = copy.deepcopy(raw)
    *parents, last = path.split(".")
    node = cfg
    for p in parents:
        node = node[p]
    if value is KeyError:
        del node[last]
    else:
        node[last] = value
    return cfg


MISTAKES = [
    # (what, path to change, bad value, key the error must name)
    ("wrong type", "experiments.enso.task.history", "three", "experiments.enso.task.history"),
    (
        "unknown arch",
        "experiments.enso.models.cnn",
        {"arch": "transformer"},
        "experiments.enso.models.cnn.arch",
    ),
    (
        "overlapping splits",
        "experiments.enso.splits.val",
        [1990, 2002],
        "experiments.enso.splits.val",
    ),
    (
        "inverted split",
        "experiments.enso.splits.test",
        [2010, 2003],
        "experiments.enso.splits.test",
    ),
    ("lead zero", "experiments.enso.task.leads", [1, 0], "experiments.enso.task.leads[1]"),
    ("negative lead", "experiments.enso.task.leads", [-3], "experiments.enso.task.leads[0]"),
    ("unknown dataset", "experiments.enso.dataset", "ersst_typo", "experiments.enso.dataset"),
    (
        "missing input variable",
        "experiments.enso.task.inputs",
        ["sst", "ssh"],
        "experiments.enso.task.inputs[1]",
    ),
    (
        "unknown regrid method",
        "experiments.enso.grid.method",
        "bicubic",
        "experiments.enso.grid.method",
    ),
    ("empty seed list", "experiments.enso.seeds", [], "experiments.enso.seeds"),
    ("unknown key", "experiments.enso.trainig", {"epochs": 3}, "experiments.enso"),
    (
        "missing source url",
        "datasets.enso_synth.source",
        {"kind": "http"},
        "datasets.enso_synth.source.url",
    ),
    (
        "http dataset without variables",
        "datasets.enso_synth.source",
        {"kind": "http", "url": "http://x/a.nc"},
        "datasets.enso_synth.variables",
    ),
    (
        "expert copies in the CAM5 layout",
        "datasets.extremes_synth.source.experts",
        3,
        "datasets.extremes_synth.source.experts",
    ),
    (
        "more days than the years hold",
        "datasets.extremes_synth.source.days",
        1200,
        "datasets.extremes_synth.source.days",
    ),
    (
        "maps at fractional hours",
        "datasets.extremes_synth.source.steps_per_day",
        5,
        "datasets.extremes_synth.source.steps_per_day",
    ),
    (
        "map network for a series",
        "experiments.runoff.models.mlp",
        {"arch": "unet"},
        "experiments.runoff.models.mlp.arch",
    ),
    (
        "static attribute the basins lack",
        "experiments.runoff.task.statics",
        ["soil_depth"],
        "experiments.runoff.task.statics[0]",
    ),
    (
        "segmentation loss for a series",
        "experiments.runoff.training.loss",
        "dice",
        "experiments.runoff.training.loss",
    ),
    (
        "more lags than history",
        "experiments.runoff.models.mlp",
        {"arch": "mlp", "lags": 31},
        "experiments.runoff.models.mlp.lags",
    ),
    (
        "the target as its own input at lead 0",
        "experiments.runoff.task.inputs",
        ["total_precipitation_sum", "streamflow"],
        "experiments.runoff.task.leads",
    ),
    ("grid not whole cells", "experiments.enso.grid.resolution", 7.0, "experiments.enso.grid.lat"),
    ("old task kind", "experiments.enso.task.kind", "regression", "experiments.enso.task.kind"),
    (
        "classification loss for a forecast",
        "experiments.enso.training.loss",
        "jaccard",
        "experiments.enso.training.loss",
    ),
    (
        "DDP batch that does not split over the processes",
        "experiments.enso.training",
        {"strategy": "ddp", "processes": 3, "batch_size": 32},
        "experiments.enso.training.batch_size",
    ),
    (
        "sweep of unknown model",
        "experiments.enso.sweep",
        {"vit": {"lr": [0.1]}},
        "experiments.enso.sweep.vit",
    ),
]


@pytest.mark.parametrize(("what", "path", "value", "key"), MISTAKES, ids=[m[0] for m in MISTAKES])
def test_mistakes_name_the_key(raw: dict, what: str, path: str, value: object, key: str) -> None:
    with pytest.raises(ConfigError) as info:
        resolve_config(_break(raw, path, value))
    assert info.value.key == key, str(info.value)
    assert key in str(info.value)


def test_defaults_are_filled(raw: dict) -> None:
    cfg = resolve_config(raw)
    exp = cfg["experiments"]["enso"]
    assert exp["training"]["optimizer"] == "adamw"
    assert exp["grid"]["nan_threshold"] == 0.5
    assert cfg["mlflow"]["tracking_uri"].startswith("sqlite:///")
    assert "variants" in exp


def test_default_config_resolves() -> None:
    cfg = load_config(REPO / "config" / "config.yaml")
    assert set(cfg["experiments"]["enso"]["variants"]) == {
        "cnn",
        "resnet",
        "lstm",
        "convlstm",
        "unet",
    }


def test_sweep_expands_into_named_variants(raw: dict) -> None:
    raw["experiments"]["enso"]["sweep"] = {"cnn": {"lr": [1e-3, 3e-4], "kernel": [3, 5]}}
    variants = resolve_config(raw)["experiments"]["enso"]["variants"]
    assert {"cnn-k3-lr0.001", "cnn-k5-lr0.0003", "lstm"} <= set(variants)
    spec = variants["cnn-k5-lr0.0003"]
    assert spec["model"]["kernel"] == 5 and spec["training"]["lr"] == 3e-4
    assert spec["base"] == "cnn"
    assert len(variants) == 4 + 4  # 4 cnn variants + resnet, lstm, convlstm, unet


def test_training_loss_is_checked_by_the_task_where_it_was_set(raw: dict) -> None:
    raw["experiments"]["enso"]["sweep"] = {"cnn": {"loss": ["mse", "dice"]}}
    with pytest.raises(ConfigError) as info:
        resolve_config(raw)
    assert info.value.key == "experiments.enso.sweep.cnn.loss"
    assert "cnn-lossdice" in str(info.value) and "classification loss" in str(info.value)
    raw["experiments"]["enso"]["sweep"] = {"cnn": {"loss": ["mse", "auto"]}}
    variants = resolve_config(raw)["experiments"]["enso"]["variants"]
    assert variants["lstm"]["training"]["loss"] == "auto"  # the default: the task's own
    assert {v["training"]["loss"] for n, v in variants.items() if n.startswith("cnn")} == {
        "mse",
        "auto",
    }


def test_variant_name_formats_values() -> None:
    assert variant_name("cnn", {"filters": [16, 32], "dropout": 0.25}) == "cnn-do0.25-f16_32"


def test_hashes_are_stable_and_sensitive(raw: dict) -> None:
    a, b = resolve_config(raw), resolve_config(copy.deepcopy(raw))
    assert prepare_hash(a, "enso") == prepare_hash(b, "enso")
    assert run_hash(a, "enso", "cnn", 0) == run_hash(b, "enso", "cnn", 0)
    assert run_hash(a, "enso", "cnn", 0) != run_hash(a, "enso", "cnn", 1)
    raw["experiments"]["enso"]["task"]["history"] = 3
    c = resolve_config(raw)
    assert prepare_hash(a, "enso") != prepare_hash(c, "enso")
    # training options do not change the prepared data
    raw2 = copy.deepcopy(raw)
    raw2["experiments"]["enso"]["training"]["epochs"] = 99
    assert prepare_hash(resolve_config(raw2), "enso") == prepare_hash(c, "enso")


def test_expand_variants_rejects_duplicate_names(raw: dict) -> None:
    exp = resolve_config(raw)["experiments"]["enso"]
    exp["sweep"] = {"cnn": {"lr": [0.001, 0.0010]}}
    with pytest.raises(ConfigError):
        expand_variants(exp)


@pytest.mark.parametrize("path", sorted((REPO / "config" / "experiments").glob("*.yaml")))
def test_shipped_experiment_configs_are_valid(path, tmp_path, monkeypatch) -> None:
    # a home with one ClimateNet file name, for the configs that read ~/ClimateNet
    (tmp_path / "ClimateNet" / "train").mkdir(parents=True)
    (tmp_path / "ClimateNet" / "train" / "data-1996-01-01-00-1_0.nc").touch()
    monkeypatch.setenv("HOME", str(tmp_path))
    cfg = load_config(path)
    assert cfg["experiments"]


def test_config_reference_is_up_to_date() -> None:
    from pipeline.config_doc import config_reference

    assert (REPO / "config" / "README.md").read_text() == config_reference(), (
        "regenerate with: python -m pipeline config-doc > config/README.md"
    )


def test_a_new_token_in_a_url_changes_no_hash() -> None:
    from pipeline.config import prepare_hash

    def hashed(url: str) -> str:
        cfg = yaml.safe_load((REPO / "config" / "test.yaml").read_text())
        cfg["datasets"]["enso_synth"] = {
            "source": {"kind": "http", "url": url},
            "variables": {"sst": None, "heat_content": None},
        }
        return prepare_hash(resolve_config(cfg), "enso")

    base = "https://user:{}@example.org/enso.nc?token={}"
    assert hashed(base.format("old", "old")) == hashed(base.format("new", "new"))
    assert hashed(base.format("old", "old")) != hashed("https://example.org/other.nc")
