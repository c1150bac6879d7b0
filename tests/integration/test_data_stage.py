"""The data stage through Snakemake: download -> regrid -> prepare on the test config."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from pipeline.prepare import open_prepared
from tests.conftest import REPO
from tests.integration.workflow import RESULTS, snakemake, write_config

pytestmark = pytest.mark.slow


def test_data_stage_builds_prepared_store(tmp_path: Path) -> None:
    result = snakemake(tmp_path, "--cores", "2", f"{RESULTS}/enso/prepared.zarr")
    assert result.returncode == 0, result.stderr[-3000:]
    ds = open_prepared(tmp_path / RESULTS / "enso" / "prepared.zarr")
    assert set(ds["split"].values) == {"train", "val", "test"}
    assert ds.attrs["config_hash"] and ds.attrs["data_sha256"]
    assert (tmp_path / RESULTS / "data" / "grid" / "enso_synth.zarr").is_dir()
    again = snakemake(tmp_path, "--cores", "2", "-n", f"{RESULTS}/enso/prepared.zarr")
    assert "Nothing to be done" in again.stdout + again.stderr


def test_bad_config_fails_before_any_job(tmp_path: Path) -> None:
    with open(REPO / "config" / "test.yaml") as fh:
        cfg = yaml.safe_load(fh)
    experiments = copy.deepcopy(cfg["experiments"])
    experiments["enso"]["splits"]["val"] = [1990, 2000]
    config = write_config(tmp_path, experiments=experiments)
    result = snakemake(tmp_path, "--cores", "1", config=config)
    assert result.returncode != 0
    assert "experiments.enso.splits.val" in result.stdout + result.stderr
    assert not (tmp_path / RESULTS).exists()
