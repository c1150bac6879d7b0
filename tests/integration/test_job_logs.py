"""A failed job's log file holds its error, not only the terminal."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.workflow import RESULTS, snakemake, write_config

pytestmark = pytest.mark.slow


def test_failed_download_job_log_holds_the_traceback(tmp_path: Path) -> None:
    dead = {"kind": "http", "url": "http://127.0.0.1:9/enso.nc", "retries": 0, "timeout": 5}
    datasets = {"enso_synth": {"source": dead, "variables": {"sst": None, "heat_content": None}}}
    config = write_config(tmp_path, ["enso"], datasets=datasets)
    result = snakemake(tmp_path, "--cores", "1", config=config)
    assert result.returncode != 0
    log = (tmp_path / RESULTS / "logs" / "download" / "enso_synth.log").read_text()
    assert "Traceback" in log
    assert "DownloadError" in log and "http://127.0.0.1:9/enso.nc" in log
