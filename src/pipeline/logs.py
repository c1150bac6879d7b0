"""Logging for jobs: to the rule's log file and to the terminal."""

from __future__ import annotations

import logging
import sys
from pathlib import Path


def configure(log_file: str | Path | None = None, level: int = logging.INFO) -> None:
    """Send pipeline logs (and warnings) to stderr and, if given, to ``log_file``."""
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if log_file:
        Path(log_file).parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(log_file, mode="w"))
    logging.basicConfig(
        level=level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        handlers=handlers,
        force=True,
    )
    logging.captureWarnings(True)
