"""Browse the runs of a real workflow in the MLflow UI, in headless Chromium (marker: browser)."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import require_tools
from tests.integration.workflow import RESULTS

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(full_run: Path) -> Iterator[str]:
    port = free_port()
    mlflow = str(Path(sys.executable).with_name("mlflow"))
    proc = subprocess.Popen(
        [
            mlflow,
            "server",
            "--backend-store-uri",
            f"sqlite:///{full_run}/{RESULTS}/mlflow.db",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
        ],
        cwd=full_run,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 90
    while time.time() < deadline:
        try:
            urllib.request.urlopen(f"{url}/health", timeout=2)
            break
        except OSError:
            time.sleep(0.5)
    else:
        proc.kill()
        pytest.fail("mlflow server did not start")
    yield url
    proc.terminate()
    proc.wait(timeout=30)


def api(url: str, path: str, body: dict | None = None) -> dict:
    request = urllib.request.Request(
        f"{url}/api/2.0/mlflow/{path}",
        data=None if body is None else json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.load(response)


def experiment_runs(url: str) -> tuple[str, list[dict]]:
    exp = api(f"{url}", "experiments/get-by-name?experiment_name=enso")["experiment"]
    runs = api(url, "runs/search", {"experiment_ids": [exp["experiment_id"]], "max_results": 100})
    return exp["experiment_id"], runs["runs"]


def test_rest_api_has_the_conventions(server: str) -> None:
    _, runs = experiment_runs(server)
    children = [r for r in runs if r["info"]["run_name"] != "enso-summary"]
    assert children
    for run in children:
        tags = {t["key"]: t["value"] for t in run["data"]["tags"]}
        params = {p["key"]: p["value"] for p in run["data"]["params"]}
        metrics = {m["key"] for m in run["data"]["metrics"]}
        for tag in ("experiment", "model", "seed", "config_hash", "data_sha256", "git_dirty"):
            assert tags[f"pipeline.{tag}"], tag
        assert tags["mlflow.source.git.commit"] and "mlflow.parentRunId" in tags
        assert {"model.arch", "training.lr", "training.epochs", "seed"} <= set(params)
        assert {"train_loss", "val_loss", "lr", "test_acc_lead6", "test_rmse_lead1"} <= metrics
        assert run["info"]["run_name"] == f"{tags['pipeline.model']}-seed{tags['pipeline.seed']}"


def test_ui_lists_runs_and_shows_metrics_and_loss_curve(server: str, tmp_path: Path) -> None:
    require_tools("chromium")
    playwright = pytest.importorskip("playwright.sync_api")
    exp_id, runs = experiment_runs(server)
    names = sorted(r["info"]["run_name"] for r in runs if r["info"]["run_name"] != "enso-summary")
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=shutil.which("chromium"), headless=True, args=CHROMIUM_ARGS
        )
        page = browser.new_page(viewport={"width": 1600, "height": 1200})
        page.goto(f"{server}/#/experiments/{exp_id}/runs", wait_until="load")  # training runs
        parent = page.get_by_text("enso-summary", exact=True).first
        parent.wait_for(timeout=60_000)
        # the (model, seed) runs are children of the summary run: expand it
        page.locator("[role=row]", has_text="enso-summary").first.locator(
            "button[data-component-id*='runnamecellrenderer']"
        ).first.click()
        for name in names:
            page.get_by_text(name, exact=True).first.wait_for(timeout=60_000)
        page.screenshot(path=str(tmp_path / "runs.png"))

        run = next(r for r in runs if r["info"]["run_name"] == names[0])
        run_url = f"{server}/#/experiments/{exp_id}/runs/{run['info']['run_id']}"
        page.goto(run_url, wait_until="load")
        page.get_by_text("val_loss").first.wait_for(timeout=60_000)
        page.get_by_text("test_acc_lead6").first.wait_for(timeout=60_000)
        page.screenshot(path=str(tmp_path / "run.png"))

        page.goto(f"{run_url}/artifacts/plots/loss_curves.png", wait_until="load")
        page.get_by_text("loss_curves.png").first.wait_for(timeout=60_000)
        page.wait_for_function(
            "() => [...document.images].some(i => i.complete && i.naturalWidth > 300)",
            timeout=60_000,
        )
        page.screenshot(path=str(tmp_path / "artifact.png"))
        browser.close()
