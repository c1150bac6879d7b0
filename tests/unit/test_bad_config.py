"""Config mistakes, one table: each fails in ``load_config`` (from a file, as `pipeline check`
reads it) with a ConfigError naming the key, before any job runs."""

from __future__ import annotations

import copy
import re
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from pipeline.config import ConfigError, check_config_files, load_config
from tests.conftest import REPO
from tests.integration.workflow import RESULTS, snakemake

TEST_YAML = (REPO / "config" / "test.yaml").read_text()

Change = Callable[[dict], None] | str  # a mutation of config/test.yaml, or raw YAML text


def put(path: str, value: object) -> Callable[[dict], None]:
    """Set the dotted ``path`` (e.g. ``experiments.enso.seeds``) of the test config."""

    def change(cfg: dict) -> None:
        *parents, last = path.split(".")
        node = cfg
        for p in parents:
            node = node[p]
        node[last] = value

    return change


def rename_dataset(name: str) -> Callable[[dict], None]:
    def change(cfg: dict) -> None:
        cfg["datasets"][name] = cfg["datasets"].pop("enso_synth")
        cfg["experiments"]["enso"]["dataset"] = name

    return change


def rename(section: str, old: str, new: str) -> Callable[[dict], None]:
    def change(cfg: dict) -> None:
        node = cfg
        for p in section.split("."):
            node = node[p]
        node[new] = node.pop(old)

    return change


def both(*changes: Callable[[dict], None]) -> Callable[[dict], None]:
    def change(cfg: dict) -> None:
        for c in changes:
            c(cfg)

    return change


HTTP = {"kind": "http", "url": "file:///etc/passwd"}
ZARR = {"kind": "zarr", "url": "file:///data/era5.zarr"}
SAFE = r"\^\[A-Za-z0-9\]"  # the allowed pattern is quoted in the message
# A second "cnn:" line in the models block: YAML keeps only the last one.
DUPLICATE = TEST_YAML.replace(
    "      resnet: {arch: resnet, width: 4, blocks: 1}", "      cnn: {arch: resnet, width: 4}"
)

CASES: list[tuple[str, Change, str, str]] = [
    # (case id, change, key the error names, regex the message matches)
    # -- names become paths and wildcards
    ("dataset escapes", rename_dataset("../../escape"), "datasets", rf"'\.\./\.\./escape'.*{SAFE}"),
    ("dataset regex char", rename_dataset("era5("), "datasets", rf"'era5\('.*{SAFE}"),
    ("dataset dots", rename_dataset("a..b"), "datasets", "no '..'"),
    ("experiment dots", rename("experiments", "enso", ".."), "experiments", SAFE),
    ("experiment slash", rename("experiments", "enso", "a/b"), "experiments", SAFE),
    (
        "model slash",
        rename("experiments.enso.models", "cnn", "x/cnn"),
        "experiments.enso.models",
        SAFE,
    ),
    ("results empty", put("results", ""), "results", "relative folder inside"),
    ("results dot", put("results", "."), "results", "relative folder inside"),
    ("results root", put("results", "/"), "results", "not absolute"),
    ("results absolute", put("results", "/tmp/out"), "results", "not absolute"),
    ("results parent", put("results", ".."), "results", r"no '\.\.'"),
    ("results escapes", put("results", "out/../../x"), "results", r"no '\.\.'"),
    # -- YAML mistakes: the file and the line
    (
        "duplicate key",
        DUPLICATE,
        "experiments.enso.models.cnn",
        r"duplicate key in .*config\.yaml line 24 \(first at line 23\)",
    ),
    (
        "duplicate dataset",
        TEST_YAML.replace("experiments:\n", "datasets: {}\nexperiments:\n"),
        "datasets",
        "line 12 .first at line 8",
    ),
    (
        "yaml syntax",
        TEST_YAML.replace("history: 2", "history: [2"),
        "<root>",
        r"config\.yaml, line \d+, column \d+",
    ),
    (
        "yaml tab",
        TEST_YAML.replace("    task:", "\ttask:"),
        "<root>",
        r"config\.yaml, line 16, column 1",
    ),
    # -- sweeps: each value is checked like the base
    (
        "sweep batch_size 0",
        put("experiments.enso.sweep", {"cnn": {"batch_size": [0]}}),
        "experiments.enso.sweep.cnn.batch_size[0]",
        "less than the minimum of 1",
    ),
    (
        "sweep negative lr",
        put("experiments.enso.sweep", {"lstm": {"lr": [1e-3, -1]}}),
        "experiments.enso.sweep.lstm.lr[1]",
        "less than or equal to the minimum of 0",
    ),
    (
        "sweep epochs 0",
        put("experiments.enso.sweep", {"cnn": {"epochs": [2, 0], "kernel": [3]}}),
        "experiments.enso.sweep.cnn.epochs[1]",
        "minimum of 1",
    ),
    (
        "sweep bad optimizer",
        put("experiments.enso.sweep", {"cnn": {"optimizer": ["sgd"]}}),
        "experiments.enso.sweep.cnn.optimizer[0]",
        "'sgd' is not one of",
    ),
    (
        "sweep kernel 0",
        put("experiments.enso.sweep", {"cnn": {"kernel": [3, 0]}}),
        "experiments.enso.sweep.cnn.kernel[1]",
        "at least 1",
    ),
    (
        "sweep unknown arch",
        put("experiments.enso.sweep", {"cnn": {"arch": ["cnn", "vit"]}}),
        "experiments.enso.sweep.cnn.arch[1]",
        "'vit' is not one of",
    ),
    (
        "sweep unknown option",
        put("experiments.enso.sweep", {"cnn": {"kernal": [3]}}),
        "experiments.enso.sweep.cnn.kernal[0]",
        "unknown option",
    ),
    # -- seeds must fit 32 bits
    (
        "seed 2**32",
        put("experiments.enso.seeds", [0, 2**32]),
        "experiments.enso.seeds[1]",
        "maximum of 4294967295",
    ),
    (
        "source seed 2**32",
        put("datasets.enso_synth.source.seed", 2**32),
        "datasets.enso_synth.source.seed",
        "maximum of 4294967295",
    ),
    # -- leads, splits and the data's years
    (
        "importance lead",
        put("experiments.enso.importance.leads", [1, 3]),
        "experiments.enso.importance.leads[1]",
        r"lead 3 is not one of the task's leads \[1, 6\]",
    ),
    (
        "split too short",
        both(
            put("experiments.enso.splits.test", [2010, 2010]),
            put("experiments.enso.task.leads", [1, 12]),
        ),
        "experiments.enso.splits.test",
        "2010-2010 has 12 months, but .* = 14 months",
    ),
    (
        "test after the data",
        put("experiments.enso.splits.test", [2003, 2012]),
        "experiments.enso.splits.test",
        "outside dataset 'enso_synth', which covers 1971-2010",
    ),
    (
        "train before the data",
        put("experiments.enso.splits.train", [1950, 1995]),
        "experiments.enso.splits.train",
        "covers 1971-2010",
    ),
    # -- URL schemes
    (
        "tracking scheme",
        put("mlflow.tracking_uri", "ftp://host/mlflow"),
        "mlflow.tracking_uri",
        "unknown scheme 'ftp'",
    ),
    (
        "http file scheme",
        put(
            "datasets.enso_synth",
            {"source": HTTP, "variables": {"sst": None, "heat_content": None}},
        ),
        "datasets.enso_synth.source.url",
        "accepts only http, https URLs.*scheme 'file'",
    ),
    (
        "zarr file scheme",
        put(
            "datasets.enso_synth",
            {"source": ZARR, "variables": {"sst": None, "heat_content": None}},
        ),
        "datasets.enso_synth.source.url",
        "kind: local",
    ),
    (
        "auth_env incomplete",
        put(
            "datasets.enso_synth.source",
            {"kind": "http", "url": "https://x/a.nc", "auth_env": {"username": "U"}},
        ),
        "datasets.enso_synth.source.auth_env.password",
        "is required",
    ),
    # -- the kinds of mistakes checked before
    (
        "wrong type",
        put("experiments.enso.task.history", "three"),
        "experiments.enso.task.history",
        "is not of type 'integer'",
    ),
    ("unknown key", put("experiments.enso.trainig", {"epochs": 3}), "experiments.enso", "trainig"),
    (
        "unknown dataset",
        put("experiments.enso.dataset", "ersst_typo"),
        "experiments.enso.dataset",
        "unknown dataset 'ersst_typo'",
    ),
    (
        "overlapping splits",
        put("experiments.enso.splits.val", [1990, 2002]),
        "experiments.enso.splits.val",
        "overlap",
    ),
]


def write(tmp_path: Path, change: Change) -> Path:
    """The test config with ``change`` applied, written as ``config.yaml`` in tmp_path."""
    path = tmp_path / "config.yaml"
    if isinstance(change, str):
        path.write_text(change)
    else:
        cfg = copy.deepcopy(yaml.safe_load(TEST_YAML))
        change(cfg)
        path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


@pytest.mark.parametrize(
    ("change", "key", "pattern"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_bad_config_names_the_key(tmp_path: Path, change: Change, key: str, pattern: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, change))
    assert info.value.key == key, str(info.value)
    assert f"'{key}'" in str(info.value)
    assert re.search(pattern, str(info.value)), str(info.value)


def test_check_config_files_rejects_duplicates(tmp_path: Path) -> None:
    good = write(tmp_path, TEST_YAML)
    check_config_files([good])
    bad = tmp_path / "extra.yaml"
    bad.write_text("results: a\nresults: b\n")
    with pytest.raises(ConfigError, match=r"'results'.*extra\.yaml line 2 \(first at line 1\)"):
        check_config_files([good, bad])


@pytest.mark.parametrize(
    ("change", "key"),
    [(DUPLICATE, "experiments.enso.models.cnn"), (rename_dataset("../escape"), "datasets")],
    ids=["duplicate key", "escaping dataset name"],
)
def test_snakemake_stops_before_any_job(tmp_path: Path, change: Change, key: str) -> None:
    config = write(tmp_path, change)
    proc = snakemake(tmp_path, "-n", config=config, timeout=300)
    output = proc.stdout + proc.stderr  # Snakemake 9 prints a Snakefile's error on stdout
    assert proc.returncode != 0
    assert f"config error at '{key}'" in output, output[-3000:]
    assert not (tmp_path / RESULTS).exists()
    assert not (tmp_path.parent / "escape").exists()
