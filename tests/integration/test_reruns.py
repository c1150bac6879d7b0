"""A rerun does only the work whose inputs changed: each rule's params carry only what
determines its output."""

from __future__ import annotations

import copy
import re
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO
from tests.integration.workflow import snakemake, write_config

pytestmark = pytest.mark.slow


def planned_jobs(workdir: Path, config: Path) -> dict[str, int]:
    """{rule: count} of the jobs a dry run plans."""
    result = snakemake(workdir, "-n", config=config)
    assert result.returncode == 0, result.stderr[-3000:]
    text = result.stdout + result.stderr
    if "Nothing to be done" in text:
        return {}
    table = text.split("Job stats:", 1)[1]
    return {
        rule: int(count)
        for rule, count in re.findall(r"^(\w+)\s+(\d+)\s*$", table, re.M)
        if rule not in ("total", "all")
    }


def edited_config(tmp_path: Path, edit) -> Path:  # type: ignore[no-untyped-def]
    experiments = copy.deepcopy(yaml.safe_load((REPO / "config" / "test.yaml").read_text()))[
        "experiments"
    ]
    edit(experiments["enso"])
    return write_config(tmp_path, experiments=experiments)


def test_a_model_option_reruns_only_that_model_and_the_summary(
    full_run: Path, tmp_path: Path
) -> None:
    config = edited_config(tmp_path, lambda exp: exp["models"]["cnn"].update(kernel=5))
    assert planned_jobs(full_run, config) == {
        "train": 1,
        "evaluate": 1,
        "importance": 1,
        "summarize": 1,
    }


def test_an_importance_setting_reruns_only_importance_and_the_summary(
    full_run: Path, tmp_path: Path
) -> None:
    config = edited_config(tmp_path, lambda exp: exp["importance"].update(repeats=3))
    models = len(
        yaml.safe_load((REPO / "config" / "test.yaml").read_text())["experiments"]["enso"]["models"]
    )
    assert planned_jobs(full_run, config) == {"importance": models, "summarize": 1}


def test_a_reordered_config_reruns_nothing(full_run: Path, tmp_path: Path) -> None:
    # write_config dumps the keys in another order than config/test.yaml holds them
    assert planned_jobs(full_run, edited_config(tmp_path, lambda exp: None)) == {}
