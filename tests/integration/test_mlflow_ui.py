"""Browse the runs of a real workflow in the MLflow UI, in headless Chromium (marker: browser)."""

from __future__ import annotations

import json
import os
import shutil
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import REPO, require_tools
from tests.integration.mlflow_server import start_mlflow_server
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


#: the URL query that opens MLflow 3's model-training view (not its GenAI overview)
TRAINING_VIEW = "workflowType=machine_learning"


@pytest.fixture(scope="module")
def server(full_run: Path) -> Iterator[str]:
    proc, url = start_mlflow_server(full_run, f"sqlite:///{full_run}/{RESULTS}/mlflow.db")
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


def tags(run: dict) -> dict[str, str]:
    return {t["key"]: t["value"] for t in run["data"]["tags"]}


def by_role(runs: list[dict], role: str) -> list[dict]:
    return [r for r in runs if tags(r).get("pipeline.role") == role]


def test_rest_api_has_the_conventions(server: str) -> None:
    _, runs = experiment_runs(server)
    (summary,) = by_role(runs, "summary")
    models = by_role(runs, "model")
    assert models
    for run in models:
        run_tags = tags(run)
        params = {p["key"]: p["value"] for p in run["data"]["params"]}
        metrics = {m["key"] for m in run["data"]["metrics"]}
        for tag in ("experiment", "model", "seed", "config_hash", "data_sha256", "git_dirty"):
            assert run_tags[f"pipeline.{tag}"], tag
        assert run_tags["mlflow.source.git.commit"]
        # linked to the summary by a tag, not nested (folded) under it in the runs table
        assert "mlflow.parentRunId" not in run_tags
        assert run_tags["pipeline.summary_run"] == summary["info"]["run_id"]
        assert run["info"]["status"] == "FINISHED" and "pipeline.tracking" not in run_tags
        assert {"model.arch", "training.lr", "training.epochs", "seed"} <= set(params)
        assert {"train_loss", "val_loss", "lr", "test_acc_lead6", "test_rmse_lead1"} <= metrics
        assert (
            run["info"]["run_name"]
            == f"{run_tags['pipeline.model']}-seed{run_tags['pipeline.seed']}"
        )
    # the baselines: runs of their own with the models' metric names, to compare columns
    baselines = {tags(r)["pipeline.model"]: r for r in by_role(runs, "baseline")}
    assert {"persistence", "climatology", "linear"} <= set(baselines)
    for run in baselines.values():
        assert {"test_rmse_lead1", "test_rmse_lead6", "test_rmse"} <= {
            m["key"] for m in run["data"]["metrics"]
        }
    persistence = {m["key"] for m in baselines["persistence"]["data"]["metrics"]}
    assert {"test_acc_lead1", "test_acc_lead6", "test_acc"} <= persistence
    # the oracle: a run of its own as a skill ceiling, never a baseline
    (ceiling,) = by_role(runs, "ceiling")
    assert tags(ceiling)["pipeline.model"] == "oracle" and "oracle" not in baselines
    assert not by_role(runs, "ensemble")  # the test config has one seed: no seed ensemble
    assert len(runs) == len(models) + len(baselines) + 2  # + the ceiling and the summary


def test_ui_lists_runs_and_shows_metrics_and_loss_curve(server: str, tmp_path: Path) -> None:
    require_tools("chromium")
    playwright = pytest.importorskip("playwright.sync_api")
    exp_id, runs = experiment_runs(server)
    names = sorted(r["info"]["run_name"] for r in by_role(runs, "model"))
    shots = REPO / "docs" / "images" if os.environ.get("PIPELINE_UPDATE_SCREENSHOTS") else tmp_path
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=shutil.which("chromium"), headless=True, args=CHROMIUM_ARGS
        )
        page = browser.new_page(viewport={"width": 1600, "height": 1000})
        # MLflow 3 opens experiments in its GenAI view unless the link (or the user's
        # toggle, kept by the browser) asks for model training: docs/tracking.md's link
        # opens the runs table, every (model, seed) run and every baseline in view,
        # none folded under the summary
        page.goto(f"{server}/#/experiments/{exp_id}?{TRAINING_VIEW}", wait_until="load")
        for name in [*names, "baseline: persistence", "enso-summary"]:
            page.get_by_text(name, exact=True).first.wait_for(timeout=60_000)
        assert f"/experiments/{exp_id}/runs" in page.url
        page.locator("button[data-component-id='mlflow.assistant.chat_panel.close']").click()
        # the baselines' skill beside the networks', column by column
        page.locator(
            "button[data-component-id$='experimentviewrunscolumnselector.tsx_315']"
        ).click()
        for metric in ("test_acc_lead1", "test_acc_lead6", "test_rmse"):
            page.get_by_placeholder("Search columns").fill(metric)
            page.get_by_text(metric, exact=True).last.click()
        page.keyboard.press("Escape")
        page.get_by_role("columnheader", name="test_acc_lead6").first.wait_for(timeout=60_000)
        page.screenshot(path=str(shots / "mlflow_runs.png"))

        run = next(r for r in runs if r["info"]["run_name"] == names[0])
        run_url = f"{server}/#/experiments/{exp_id}/runs/{run['info']['run_id']}"
        page.goto(f"{run_url}?{TRAINING_VIEW}", wait_until="load")
        page.get_by_text("val_loss").first.wait_for(timeout=60_000)
        page.get_by_text("test_acc_lead6").first.wait_for(timeout=60_000)
        page.screenshot(path=str(shots / "mlflow_run.png"))

        # the loss curves: a chart of the per-epoch metrics, and the figure on top
        page.goto(f"{run_url}/model-metrics", wait_until="load")
        page.get_by_placeholder("Search metric charts").fill("loss")
        page.get_by_text("train_loss").first.wait_for(timeout=60_000)
        page.get_by_text("val_loss").first.wait_for(timeout=60_000)
        page.screenshot(path=str(tmp_path / "loss_charts.png"))
        page.goto(f"{run_url}/artifacts/loss_curves.png", wait_until="load")
        page.get_by_text("loss_curves.png").first.wait_for(timeout=60_000)
        page.wait_for_function(
            "() => [...document.images].some(i => i.complete && i.naturalWidth > 300)",
            timeout=60_000,
        )
        page.screenshot(path=str(tmp_path / "artifact.png"))
        browser.close()
