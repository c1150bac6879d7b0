"""RunLogger against a real SQLite MLflow store: retries, resume, partial runs, names."""

from __future__ import annotations

import errno
import socket
import sqlite3
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy.exc
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE, TEMPORARILY_UNAVAILABLE
from mlflow.tracking import MlflowClient

from pipeline import tracking
from pipeline.scores import ALL, score_rows, scores_table
from pipeline.tracking import (
    TAG_PREFIX,
    TRACKING_TAG,
    RunLogger,
    group_suffix,
    importance_metrics,
    is_transient,
    log_reference_runs,
    read_state,
    score_metrics,
    setup_experiments,
)


@pytest.fixture(scope="module")
def store_uri(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A SQLite store in tmp, created once (creating its tables takes seconds)."""
    return f"sqlite:///{tmp_path_factory.mktemp('store')}/mlflow.db"


@pytest.fixture
def store(store_uri: str, tmp_path: Path, request: pytest.FixtureRequest) -> tuple[str, str]:
    """(tracking URI, id of an experiment of this test's own)."""
    return store_uri, setup_experiments(store_uri, [request.node.name], tmp_path / "art")[
        request.node.name
    ]


@pytest.fixture(autouse=True)
def fast_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tracking, "RETRY_DELAY", 0.01)


def unreachable_server_error() -> MlflowException:
    """What MLflow raises when the tracking server's port is closed."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    client = MlflowClient(f"http://127.0.0.1:{port}")
    with pytest.raises(MlflowException) as info:
        client.get_experiment_by_name("enso")
    return info.value


def test_transient_errors_are_told_from_permanent_ones(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    locked = sqlalchemy.exc.OperationalError(
        "INSERT", {}, sqlite3.OperationalError("database is locked")
    )
    assert is_transient(unreachable_server_error())  # no "locked" in its message
    assert is_transient(MlflowException("busy", error_code=TEMPORARILY_UNAVAILABLE))  # 503
    assert is_transient(locked)
    assert is_transient(TimeoutError("read timed out"))
    assert not is_transient(OSError(errno.ENOSPC, "No space left on device"))
    assert not is_transient(MlflowException("bad", error_code=INVALID_PARAMETER_VALUE))


def test_retry_outlasts_transient_errors_and_not_permanent_ones() -> None:
    calls: list[int] = []

    def flaky() -> str:
        calls.append(1)
        if len(calls) < 4:
            raise MlflowException("HTTP 503", error_code=TEMPORARILY_UNAVAILABLE)
        return "ok"

    assert tracking._retry(flaky) == "ok" and len(calls) == 4
    calls.clear()

    def full() -> None:
        calls.append(1)
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(OSError):
        tracking._retry(full)
    assert len(calls) == 1


def test_group_suffixes_sort_as_text_and_name_classes() -> None:
    leads = ["1", "6", "12"]
    assert [group_suffix("lead", g, leads) for g in leads] == ["lead01", "lead06", "lead12"]
    assert group_suffix("lead", "6", ["1", "6"]) == "lead6"  # no padding below 10
    assert group_suffix("class", "AR", ["TC", "AR"]) == "class_AR"
    assert group_suffix("class", "tropical cyclone", []) == "class_tropical_cyclone"


def test_metric_names_sort_in_lead_order() -> None:
    leads = [1, 3, 12]
    rows = [r for lead in leads for r in score_rows("cnn", "model", "lead", lead, {"acc": 0.9})]
    rows += score_rows("cnn", "model", "lead", ALL, {"acc": 0.8, "rmse": float("nan")})
    rows += score_rows("persistence", "baseline", "lead", 1, {"acc": 0.95})
    metrics = score_metrics(scores_table(rows), "cnn")
    names = [n for n in metrics if "_lead" in n]
    assert names == ["test_acc_lead01", "test_acc_lead03", "test_acc_lead12"]
    assert sorted(names) == names
    assert metrics["test_acc"] == 0.8  # the ``all`` group has no suffix
    assert "test_rmse" not in metrics  # MLflow takes finite numbers only
    assert score_metrics(scores_table(rows), "persistence") == {"test_acc_lead1": 0.95}
    table = pd.DataFrame(
        {"lead": ["1", "3", "12"], "method": "single", "group": "sst", "score": [0.1, 0.2, 0.3]}
    )
    assert sorted(importance_metrics(table, "lead", ["1", "3", "12"])) == [
        "importance_single_sst_lead01",
        "importance_single_sst_lead03",
        "importance_single_sst_lead12",
    ]


def test_resumed_run_logs_nothing_twice(store: tuple[str, str], tmp_path: Path) -> None:
    uri, exp = store
    with RunLogger(uri, exp, job="train", state_dir=tmp_path, system_metrics=False) as first:
        first.open("cnn-seed0", {"pipeline.model": "cnn"}, key="h")
        first.params({"training.lr": 0.001})
        for step in (1, 2):
            first.metrics({"val_loss": 1.0 / step}, step=step)
        # the job dies here: the folder state still says train is running
        state = read_state(tmp_path)
        assert state["run_id"] == first.run_id and state["jobs"]["train"] == "running"
        first.end("KILLED")
        first.run_id = None  # nothing more from this attempt

    with RunLogger(uri, exp, job="train", state_dir=tmp_path, system_metrics=False) as second:
        second.open("cnn-seed0", {"pipeline.model": "cnn"}, key="h")
        second.params({"training.lr": 0.001})
        for step in (1, 2, 3):
            second.metrics({"val_loss": 1.0 / step}, step=step)
    client = MlflowClient(uri)
    assert second.run_id == state["run_id"]
    assert [m.step for m in client.get_metric_history(second.run_id, "val_loss")] == [1, 2, 3]
    run = client.get_run(second.run_id)
    assert run.info.status == "FINISHED"
    assert read_state(tmp_path)["jobs"]["train"] == "finished"
    assert len(client.search_runs([exp])) == 1

    # a finished job (or another config) never reopens the run: a new run
    with RunLogger(uri, exp, job="train", state_dir=tmp_path, system_metrics=False) as third:
        third.open("cnn-seed0", {}, key="h")
    assert third.run_id != second.run_id


def test_failed_job_marks_its_run_failed(store: tuple[str, str], tmp_path: Path) -> None:
    uri, exp = store
    tr = RunLogger(uri, exp, job="train", state_dir=tmp_path, system_metrics=False)
    with pytest.raises(ZeroDivisionError), tr:
        tr.open("cnn-seed0", {}, key="h")
        _ = 1 / 0
    assert MlflowClient(uri).get_run(tr.run_id).info.status == "FAILED"
    assert read_state(tmp_path)["jobs"]["train"] == "failed"


def test_a_part_that_cannot_be_logged_marks_the_run_partial(
    store: tuple[str, str], tmp_path: Path
) -> None:
    uri, exp = store
    figure = tmp_path / "plots" / "importance.png"  # never written: the copy fails for good
    with RunLogger(uri, exp, job="importance", state_dir=tmp_path, system_metrics=False) as tr:
        tr.open("cnn-seed0", {}, key="h")
        tr.metrics({"importance_single_sst_lead1": 0.1})
        tr.artifact(figure, "plots")
        tr.metrics({"after": 1.0})  # skipped: tracking is off for the rest of the job
    run = MlflowClient(uri).get_run(tr.run_id)
    assert run.data.tags[TRACKING_TAG] == "partial"
    assert run.info.status == "FINISHED" and "after" not in run.data.metrics
    state = read_state(tmp_path)
    assert state["jobs"]["importance"] == "partial"
    assert state["missing"]["importance"] == ["artifact importance.png", "metrics"]


def test_a_rerun_evaluation_replaces_the_runs_results(
    store: tuple[str, str], tmp_path: Path
) -> None:
    uri, exp = store
    with RunLogger(uri, exp, job="train", state_dir=tmp_path, system_metrics=False) as train:
        train.open("cnn-seed0", {"pipeline.model": "cnn"}, key="h")
    for acc in (0.1, 0.5):  # evaluate, then evaluate again after a change
        with RunLogger(uri, exp, job="evaluate", state_dir=tmp_path, system_metrics=False) as ev:
            ev.reopen(train.run_id)
            ev.metrics({"test_acc": acc})
    assert MlflowClient(uri).get_run(train.run_id).data.metrics["test_acc"] == 0.5


def test_reference_runs_carry_their_role_and_the_model_metric_names(
    store: tuple[str, str],
) -> None:
    """Baselines, the oracle (a ceiling) and seed ensembles get runs of their own, reused
    for the same prepared data, with the network runs' metric names."""
    uri, exp = store
    rows = []
    for name, role in [
        ("cnn", "model"),
        ("persistence", "baseline"),
        ("oracle", "ceiling"),
        ("cnn-ensemble", "ensemble"),
    ]:
        rows += score_rows(name, role, "lead", 6, {"acc": 0.7})
        rows += score_rows(name, role, "lead", ALL, {"acc": 0.6})
    scores = scores_table(rows)
    ids = log_reference_runs(uri, exp, "enso", scores, "sha", "hash")
    client = MlflowClient(uri)
    runs = {client.get_run(i).data.tags[f"{TAG_PREFIX}model"]: client.get_run(i) for i in ids}
    assert set(runs) == {"persistence", "oracle", "cnn-ensemble"}  # never the model run
    roles = {name: run.data.tags[f"{TAG_PREFIX}role"] for name, run in runs.items()}
    assert roles == {"persistence": "baseline", "oracle": "ceiling", "cnn-ensemble": "ensemble"}
    assert runs["oracle"].info.run_name == "ceiling: oracle"
    for run in runs.values():
        assert run.data.metrics == {"test_acc_lead6": 0.7, "test_acc": 0.6}
        assert run.info.status == "FINISHED"
    again = log_reference_runs(uri, exp, "enso", scores.assign(value=0.5), "sha", "hash")
    assert again == ids  # the same prepared data: the same runs, new values
    assert client.get_run(ids[0]).data.metrics["test_acc"] == 0.5
    other = log_reference_runs(uri, exp, "enso", scores, "other-data", "hash")
    assert not set(other) & set(ids)
