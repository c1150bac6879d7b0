"""Training through Snakemake with a real MLflow store; tracking failures lose nothing."""

from __future__ import annotations

import json
import logging
import socket
from pathlib import Path

import pytest
import yaml
from mlflow.tracking import MlflowClient

from pipeline.runs import OFFLINE_RUN_ID, train_job
from tests.conftest import REPO, TINY_CNN
from tests.integration.workflow import RESULTS, snakemake, write_config

pytestmark = pytest.mark.slow


def test_parallel_jobs_all_land_in_the_experiment(tmp_path: Path) -> None:
    with open(REPO / "config" / "test.yaml") as fh:
        exp = yaml.safe_load(fh)["experiments"]["enso"]
    exp["models"] = {"cnn": exp["models"]["cnn"], "lstm": exp["models"]["lstm"]}
    exp["seeds"] = [0, 1]
    config = write_config(tmp_path, ["enso"], experiments={"enso": exp})
    targets = [f"{RESULTS}/enso/runs/{m}/seed{s}/model.pt" for m in ("cnn", "lstm") for s in (0, 1)]
    result = snakemake(tmp_path, *targets, "--cores", "4", config=config)  # 4 train jobs at once
    assert result.returncode == 0, result.stderr[-4000:]

    client = MlflowClient(f"sqlite:///{tmp_path}/{RESULTS}/mlflow.db")
    experiment = client.get_experiment_by_name("enso")
    runs = client.search_runs([experiment.experiment_id])
    names = sorted(r.info.run_name for r in runs)
    assert names == ["cnn-seed0", "cnn-seed1", "lstm-seed0", "lstm-seed1"]
    assert all(r.info.status == "FINISHED" for r in runs)
    default = client.get_experiment_by_name("Default")
    assert not client.search_runs([default.experiment_id])
    for run in runs:
        model, seed = run.data.tags["pipeline.model"], run.data.tags["pipeline.seed"]
        folder = tmp_path / RESULTS / "enso" / "runs" / model / f"seed{seed}"
        assert (folder / "mlflow_run_id").read_text().strip() == run.info.run_id
        assert len(client.get_metric_history(run.info.run_id, "val_loss")) == 2
        assert run.data.params["training.epochs"] == "2"
        for tag in ("experiment", "config_hash", "data_sha256", "git_dirty"):
            assert run.data.tags[f"pipeline.{tag}"]
        assert run.data.tags["mlflow.source.git.commit"]
        artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
        assert {"history.csv", "resolved_config.yaml", "loss_curves.png"} <= artifacts
        assert client.search_logged_models(
            [experiment.experiment_id], filter_string=f"source_run_id = '{run.info.run_id}'"
        )
    # a second invocation has nothing to do
    again = snakemake(tmp_path, *targets, "--cores", "4", "-n", config=config)
    assert "Nothing to be done" in again.stdout + again.stderr


def test_unreachable_tracking_server_loses_no_results(
    tiny_prepared: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}"
    ids = tmp_path / "ids.json"
    ids.write_text(json.dumps({"enso": "1"}))
    with caplog.at_level(logging.WARNING):
        run_id = train_job(
            prepared_path=tiny_prepared,
            experiment="enso",
            variant_name="cnn",
            variant=TINY_CNN,
            seed=0,
            run_hash="h",
            experiment_ids=ids,
            tracking_uri=dead,
            out_dir=tmp_path / "run",
        )
    assert run_id == OFFLINE_RUN_ID
    for name in ("model.pt", "history.csv", "plots/loss_curves.png", "resolved_config.yaml"):
        assert (tmp_path / "run" / name).exists(), name
    assert (tmp_path / "run" / "mlflow_run_id").read_text().strip() == OFFLINE_RUN_ID
    assert "MLflow tracking failed" in caplog.text
