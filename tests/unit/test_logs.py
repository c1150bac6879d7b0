"""A job's uncaught error goes to its log file, with secrets in URLs redacted."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SCRIPT = """
import sys
from pipeline.logs import configure
configure(sys.argv[1])
raise RuntimeError("GET https://alice:s3cret@example.org/x.nc?token=t0ken failed: 403")
"""


def test_uncaught_error_is_logged_with_secrets_redacted(tmp_path: Path) -> None:
    log = tmp_path / "job.log"
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(log)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode != 0
    text = log.read_text()
    assert "job failed: RuntimeError: GET https://" in text and "Traceback" in text
    for secret in ("s3cret", "t0ken"):
        assert secret not in text and secret not in result.stderr
