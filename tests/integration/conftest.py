"""A whole-workflow run of config/test.yaml, shared by the end-to-end tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.workflow import snakemake


@pytest.fixture(scope="session")
def full_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Run the test config from scratch through summarize; return the working directory."""
    workdir = tmp_path_factory.mktemp("full_run")
    result = snakemake(workdir, "--cores", "2", timeout=1500)  # every study of the config
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    (workdir / "snakemake.out").write_text(result.stdout + result.stderr)
    return workdir
