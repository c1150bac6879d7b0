"""Two checkouts sharing one venv: each one's jobs run that checkout's own code."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.integration.workflow import SNAKEMAKE, copy_checkout

pytestmark = pytest.mark.slow


def test_a_clones_jobs_import_the_clones_code(tmp_path: Path) -> None:
    # the venv's editable install points at REPO/src; the clone must still run its own src
    clone = copy_checkout(tmp_path / "clone")
    result = subprocess.run(
        [
            SNAKEMAKE,
            "--cores",
            "1",
            "results-test/data/raw/enso_synth/manifest.json",
            "--configfile",
            "config/test.yaml",
        ],
        cwd=clone,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    log = (clone / "results-test" / "logs" / "download" / "enso_synth.log").read_text()
    assert f"pipeline code: {clone / 'src' / 'pipeline'}" in log
