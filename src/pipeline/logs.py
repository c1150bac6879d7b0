"""Logging for jobs: to the rule's log file and to the terminal.

Snakemake points users at a failed job's log file, so the job's error must land there
too: :func:`configure` routes uncaught exceptions through the same handlers.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from traceback import format_exception
from types import TracebackType

import pipeline

log = logging.getLogger("pipeline")


def _log_uncaught(
    kind: type[BaseException], error: BaseException, traceback: TracebackType | None
) -> None:
    """Write an uncaught exception with its traceback to every handler (file and terminal)."""
    if issubclass(kind, KeyboardInterrupt):
        sys.__excepthook__(kind, error, traceback)
        return
    from pipeline.sources.urls import redact_text  # a library's message may hold a secret URL

    text = "".join(format_exception(kind, error, traceback))
    message = redact_text(f"{kind.__name__}: {error}")
    log.critical("job failed: %s\n%s", message, redact_text(text))


def configure(
    log_file: str | Path | None = None, level: int = logging.INFO, prefix: str = ""
) -> None:
    """Send pipeline logs, warnings and any uncaught error to stderr and ``log_file``;
    ``prefix`` starts every line (a DDP process's rank)."""
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if log_file:
        Path(log_file).parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(log_file, mode="w"))
    logging.basicConfig(
        level=level,
        format=prefix + "%(asctime)s %(levelname)s %(name)s: %(message)s",
        handlers=handlers,
        force=True,
    )
    logging.captureWarnings(True)
    sys.excepthook = _log_uncaught
    if log_file:  # a job: which code it runs (a clone sharing a venv runs its own checkout)
        log.info("pipeline code: %s", Path(pipeline.__file__).parent)
