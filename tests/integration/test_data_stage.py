"""The data stage through Snakemake: download -> regrid -> prepare on the test config."""

from __future__ import annotations

import copy
import subprocess
from pathlib import Path

import pytest
import yaml

from pipeline.prepare import open_prepared
from tests.conftest import REPO
from tests.integration.workflow import RESULTS, SNAKEMAKE, snakemake, write_config

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


def test_a_series_dataset_fails_before_any_job(tmp_path: Path) -> None:
    import numpy as np
    import pandas as pd
    import xarray as xr

    series = tmp_path / "nino12.nc"
    time = pd.date_range("1971-01-01", periods=40 * 12, freq="MS")
    xr.Dataset(
        {"sst": ("time", np.random.default_rng(0).normal(size=len(time)))}, {"time": time}
    ).to_netcdf(series)
    local = {
        "source": {"kind": "local", "path": str(series)},
        "variables": {"sst": None, "heat_content": {"from": "sst"}},
    }
    config = write_config(tmp_path, ["enso"], datasets={"enso_synth": local})
    for command in (
        [str(Path(SNAKEMAKE).with_name("python")), "-m", "pipeline", "check", str(config)],
        [SNAKEMAKE, "--snakefile", str(REPO / "Snakefile"), "-n", "--configfile", str(config)],
    ):
        result = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=120)
        assert result.returncode != 0, command
        assert f"{series}: variable 'sst' is a 1-D series" in result.stdout + result.stderr
    assert not (tmp_path / RESULTS).exists()
