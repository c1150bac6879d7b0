"""Shared fixtures: system-tool gating, a local HTTP server, tiny synthetic data."""

from __future__ import annotations

import functools
import http.server
import os
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
REQUIRE_SYSTEM = os.environ.get("PIPELINE_REQUIRE_SYSTEM_TESTS") == "1"

#: A resolved model variant that trains in seconds on the CPU (for job-level tests).
TINY_CNN = {
    "base": "cnn",
    "model": {"arch": "cnn", "filters": [4], "kernel": 3},
    "training": {
        "epochs": 2,
        "batch_size": 32,
        "lr": 1e-3,
        "weight_decay": 0.0,
        "optimizer": "adam",
        "scheduler": "none",
        "grad_clip": 0.0,
        "patience": 5,
        "loss": "auto",
        "amp": "off",
        "device": "cpu",
        "deterministic": True,
        "gpu_resident": "auto",
        "num_workers": 0,
        "data": "auto",
        "shuffle_buffer_mb": 256,
        "strategy": "single",
        "processes": 2,
    },
}


def require_tools(*tools: str) -> None:
    """Skip (or, in CI with PIPELINE_REQUIRE_SYSTEM_TESTS=1, fail) when a tool is missing."""
    missing = [t for t in tools if shutil.which(t) is None]
    if missing:
        message = f"system tool(s) not installed: {', '.join(missing)}"
        if REQUIRE_SYSTEM:
            pytest.fail(message + " (PIPELINE_REQUIRE_SYSTEM_TESTS=1 forbids skipping)")
        pytest.skip(message)


class _Handler(http.server.SimpleHTTPRequestHandler):
    """Serves a folder; ``/truncated/<file>`` promises the full length but sends half."""

    def log_message(self, *args: object) -> None:  # keep test output quiet
        pass

    def do_GET(self) -> None:
        if self.path.startswith("/truncated/"):
            path = Path(self.directory) / self.path.removeprefix("/truncated/")
            data = path.read_bytes()
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data[: len(data) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        super().do_GET()


class LocalServer:
    def __init__(self, root: Path):
        self.root = root
        handler = functools.partial(_Handler, directory=str(root))
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> LocalServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def http_root(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """A folder served over HTTP on 127.0.0.1; yields (folder, base URL)."""
    root = tmp_path / "served"
    root.mkdir()
    with LocalServer(root) as server:
        yield root, server.url


@pytest.fixture(scope="session")
def tiny_enso(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A 20-year, 4-degree synthetic ENSO archive (written once per session)."""
    from pipeline.sources.synthetic import write_enso

    out = tmp_path_factory.mktemp("tiny_enso")
    return write_enso(out, years=20, start_year=1990, seed=3, resolution=4.0)


@pytest.fixture(scope="session")
def tiny_prepared(tmp_path_factory: pytest.TempPathFactory, tiny_enso: dict) -> Path:
    """A prepared.zarr built from the tiny archive by the real regrid and prepare stages."""
    import xarray as xr

    from pipeline.io import sha256_file, write_zarr
    from pipeline.prepare import prepare
    from pipeline.regrid import regrid

    grid = {
        "resolution": 10.0,
        "lat": [-30, 30],
        "lon": [0, 360],
        "method": "conservative",
        "nan_threshold": 0.5,
    }
    folder = tmp_path_factory.mktemp("prepared")
    write_zarr(regrid(xr.open_dataset(tiny_enso["data"]), grid), folder / "grid.zarr")
    manifest = {
        "dataset": "enso_synth",
        "files": [
            {"path": str(tiny_enso[role]), "role": role, "sha256": sha256_file(tiny_enso[role])}
            for role in ("data", "truth")
        ],
    }
    experiment = {
        "task": {
            "kind": "forecast",
            "inputs": ["sst", "heat_content"],
            "target": "nino34",
            "target_variable": "sst",
            "history": 2,
            "leads": [1, 6],
        },
        "splits": {"train": [1990, 2001], "val": [2002, 2005], "test": [2006, 2009]},
    }
    path = folder / "prepared.zarr"
    prepare([folder / "grid.zarr"], [manifest], experiment, "test", path)
    return path
