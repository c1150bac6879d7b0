"""A failed job's log file holds its error, not only the terminal."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO
from tests.integration.workflow import snakemake, write_config

pytestmark = pytest.mark.slow


def test_failed_download_job_log_holds_the_traceback(tmp_path: Path) -> None:
    with open(REPO / "config" / "test.yaml") as fh:
        cfg = yaml.safe_load(fh)
    dead = {"kind": "http", "url": "http://127.0.0.1:9/enso.nc", "retries": 0, "timeout": 5}
    datasets = {"enso_synth": {"source": dead, "variables": {"sst": None, "heat_content": None}}}
    config = write_config(tmp_path, datasets=datasets)
    result = snakemake(tmp_path, "--cores", "1", config=config)
    assert result.returncode != 0
    log = (Path(tmp_path) / cfg["results"] / "logs" / "download" / "enso_synth.log").read_text()
    assert "Traceback" in log
    assert "DownloadError" in log and "http://127.0.0.1:9/enso.nc" in log
