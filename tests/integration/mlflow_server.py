"""A real ``mlflow server`` on a free loopback port, for the tracking and UI tests."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_mlflow_server(
    folder: Path, store: str, *extra: str, env: dict | None = None
) -> tuple[subprocess.Popen, str]:
    """Start a server on ``store`` in ``folder`` (its log: folder/server.log); return it and
    its URL once it answers."""
    port = free_port()
    proc = subprocess.Popen(
        [
            str(Path(sys.executable).with_name("mlflow")),
            "server",
            "--backend-store-uri",
            store,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
            *extra,
        ],
        cwd=folder,
        env={**os.environ, **(env or {})},
        stdout=subprocess.DEVNULL,
        stderr=open(folder / "server.log", "w"),  # noqa: SIM115 (closed with the process)
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            urllib.request.urlopen(f"{url}/health", timeout=2)
            return proc, url
        except urllib.error.HTTPError:
            return proc, url  # it answers (a login server refuses even /health)
        except OSError:
            time.sleep(0.5)
    proc.kill()
    pytest.fail("mlflow server did not start: " + (folder / "server.log").read_text()[-2000:])
