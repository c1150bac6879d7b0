"""MLflow after real faults: a killed job, a failing job, a flaky or vanished server, a
full disk; then ``sync`` completes the partial run in place. And the team server's login.

Real stores throughout: SQLite in tmp, and ``mlflow server`` on 127.0.0.1 behind a small
proxy that can answer 503 or go down, like an overloaded or restarting server.
"""

from __future__ import annotations

import errno
import http.client
import http.server
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from pipeline import tracking
from pipeline.runs import importance_job, train_job
from pipeline.tracking import TRACKING_TAG, read_state, setup_experiments
from tests.conftest import REPO, TINY_CNN, require_tools
from tests.integration.mlflow_server import start_mlflow_server

#: a server's own store and artifacts, in the folder it runs in
SERVER_STORE = "sqlite:///server.db"
ARTIFACTS = ("--artifacts-destination", "server-artifacts")

IMPORTANCE = {
    "groups": "variable",
    "leads": None,
    "method": ["single"],
    "repeats": 1,
    "bootstrap": 0,
    "block_length": 12,
    "batch_size": 256,
}


@pytest.fixture(autouse=True)
def fast_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail fast: no MLflow-internal HTTP retries, short back-off in the pipeline's own."""
    monkeypatch.setattr(tracking, "RETRY_DELAY", 0.05)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)


def experiment_ids(uri: str, folder: Path, name: str = "enso") -> Path:
    """The mlflow_setup rule's output for ``uri``: {experiment: id}."""
    path = folder / "ids.json"
    path.write_text(json.dumps(setup_experiments(uri, [name], folder / "artifacts")))
    return path


def train(prepared: Path, out: Path, uri: str, ids: Path, variant: dict = TINY_CNN) -> str:
    return train_job(
        prepared_path=prepared,
        experiment="enso",
        variant_name="cnn",
        variant=variant,
        seed=0,
        run_hash="h",
        experiment_ids=ids,
        tracking_uri=uri,
        out_dir=out,
    )


def sync(uri: str, *paths: Path, cwd: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "pipeline", "sync", *map(str, paths), "--tracking-uri", uri],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": str(REPO / "src")},
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]


def only_run(uri: str, ids: Path):
    """The experiment's single run (the test fails if there are more)."""
    runs = MlflowClient(uri).search_runs([json.loads(ids.read_text())["enso"]])
    assert len(runs) == 1, [r.info.run_name for r in runs]
    return runs[0]


def artifacts(uri: str, run_id: str) -> set[str]:
    client = MlflowClient(uri)
    return {a.path for a in client.list_artifacts(run_id)} | {
        a.path for a in client.list_artifacts(run_id, "plots")
    }


def steps(uri: str, run_id: str, key: str) -> list[int]:
    return [m.step for m in MlflowClient(uri).get_metric_history(run_id, key)]


# --- a killed job ------------------------------------------------------------------------


def test_killed_train_job_is_resumed_into_the_same_run(tiny_prepared: Path, tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    ids = experiment_ids(uri, tmp_path)
    out = tmp_path / "run"
    slow = {**TINY_CNN, "training": {**TINY_CNN["training"], "epochs": 20, "patience": 20}}
    args = [str(tiny_prepared), str(out), uri, str(ids), json.dumps(slow)]
    code = (
        "import sys, json; from pathlib import Path; "
        "from tests.integration.test_tracking_faults import train; "
        "train(Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3], Path(sys.argv[4]), "
        "json.loads(sys.argv[5]))"
    )
    proc = subprocess.Popen([sys.executable, "-c", code, *args], cwd=REPO)
    client = MlflowClient(uri)
    exp = json.loads(ids.read_text())["enso"]
    deadline = time.time() + 120
    while not client.search_runs([exp]) and proc.poll() is None and time.time() < deadline:
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)  # before the first checkpoint: kill -9, no clean-up
    proc.wait()
    assert not (out / "checkpoint.pt").exists() and not (out / "mlflow_run_id").exists()
    assert client.search_runs([exp])[0].info.status == "RUNNING"

    run_id = train(tiny_prepared, out, uri, ids, slow)  # what Snakemake's rerun does
    run = only_run(uri, ids)
    assert run.info.run_id == run_id and run.info.status == "FINISHED"
    assert steps(uri, run_id, "val_loss") == list(range(1, 21))
    assert TRACKING_TAG not in run.data.tags
    assert read_state(out)["jobs"]["train"] == "finished"


def test_killed_summary_job_is_resumed_into_the_same_run(tmp_path: Path) -> None:
    """The summary run follows the same folder state (summarize_job opens it this way)."""
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    ids = experiment_ids(uri, tmp_path)
    exp = json.loads(ids.read_text())["enso"]
    code = (
        "import sys, time; from pipeline.tracking import RunLogger; "
        "t = RunLogger(sys.argv[1], sys.argv[2], job='summarize', state_dir=sys.argv[3], "
        "system_metrics=False); t.open('enso-summary', {'pipeline.role': 'summary'}, 'enso'); "
        "print(t.run_id, flush=True); time.sleep(600)"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code, uri, exp, str(tmp_path / "summary")],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )
    first = proc.stdout.readline().strip()
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    with tracking.RunLogger(
        uri, exp, job="summarize", state_dir=tmp_path / "summary", system_metrics=False
    ) as rerun:
        rerun.open("enso-summary", {"pipeline.role": "summary"}, "enso")
    run = only_run(uri, ids)
    assert run.info.run_id == first == rerun.run_id and run.info.status == "FINISHED"


# --- a failing job -----------------------------------------------------------------------


def test_failed_job_marks_its_run_failed_and_the_rerun_finishes_it(
    tiny_prepared: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    ids = experiment_ids(uri, tmp_path)

    def disk_full(*args: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device", "model.pt")

    with monkeypatch.context() as patch:
        patch.setattr("pipeline.runs.save_outputs", disk_full)
        with pytest.raises(OSError, match="No space left"):
            train(tiny_prepared, tmp_path / "run", uri, ids)
    assert only_run(uri, ids).info.status == "FAILED"
    train(tiny_prepared, tmp_path / "run", uri, ids)
    assert only_run(uri, ids).info.status == "FINISHED"


# --- a full disk, then sync ---------------------------------------------------------------


def test_disk_full_leaves_a_partial_run_that_sync_completes_in_place(
    tiny_prepared: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlflow.store.artifact.local_artifact_repo import LocalArtifactRepository

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    ids = experiment_ids(uri, tmp_path)
    out = tmp_path / "results" / "enso" / "runs" / "cnn" / "seed0"
    run_id = train(tiny_prepared, out, uri, ids)

    def disk_full(self: object, local_file: str, artifact_path: str | None = None) -> None:
        raise OSError(errno.ENOSPC, "No space left on device", local_file)

    with monkeypatch.context() as patch:
        patch.setattr(LocalArtifactRepository, "log_artifact", disk_full)
        importance_job(
            prepared_path=tiny_prepared,
            variant_name="cnn",
            variant=TINY_CNN,
            settings=IMPORTANCE,
            seed=0,
            model_path=out / "model.pt",
            run_id_path=out / "mlflow_run_id",
            tracking_uri=uri,
            out_dir=out,
        )
    run = only_run(uri, ids)
    assert run.info.run_id == run_id and run.info.status == "FINISHED"
    assert run.data.tags[TRACKING_TAG] == "partial"
    assert "importance.csv" not in artifacts(uri, run_id)
    state = read_state(out)
    assert state["jobs"]["importance"] == "partial"
    assert "artifact importance.csv" in state["missing"]["importance"]
    logged_before = dict(run.data.metrics)

    for _ in range(2):  # the second sync finds nothing to do
        sync(uri, tmp_path / "results", cwd=tmp_path)
        run = only_run(uri, ids)
        assert run.info.run_id == run_id and run.info.status == "FINISHED"
        assert TRACKING_TAG not in run.data.tags
        assert {"importance.csv", "plots/importance.png"} <= artifacts(uri, run_id)
        assert run.data.metrics == logged_before  # nothing was missing there
        assert steps(uri, run_id, "val_loss") == [1, 2]
        name = next(k for k in run.data.metrics if k.startswith("importance_single_"))
        assert steps(uri, run_id, name) == [0]
        assert read_state(out)["missing"] == {}
    assert (out / "mlflow_run_id").read_text().strip() == run_id


# --- a flaky server, a vanished server ---------------------------------------------------


class FlakyProxy:
    """An HTTP proxy to ``target`` that answers 503 to the requests numbered in ``fail``,
    or to every request while ``down`` is set (a server restarting or overloaded)."""

    def __init__(self, target: str):
        self.target = target
        self.fail: set[int] = set()
        self.down = False
        self.down_on: str | None = None  # go down at the first request path holding this
        self.count = 0
        self.failed = 0
        self.lock = threading.Lock()
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def relay(self) -> None:
                body = self.body()
                if proxy.refuse(self.path):
                    self.send_response(503)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                conn = http.client.HTTPConnection(*proxy.target.split(":"), timeout=60)
                skip = ("host", "transfer-encoding", "content-length")
                headers = {k: v for k, v in self.headers.items() if k.lower() not in skip}
                conn.request(self.command, self.path, body=body, headers=headers)
                reply = conn.getresponse()
                data = reply.read()
                self.send_response(reply.status)
                for key, value in reply.getheaders():
                    if key.lower() not in ("transfer-encoding", "connection", "content-length"):
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                conn.close()

            def body(self) -> bytes:
                if self.headers.get("Transfer-Encoding", "").lower() != "chunked":
                    return self.rfile.read(int(self.headers.get("Content-Length") or 0))
                data = b""
                while size := int(self.rfile.readline().strip(), 16):
                    data += self.rfile.read(size)
                    self.rfile.readline()
                self.rfile.readline()
                return data

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = relay

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def refuse(self, path: str) -> bool:
        with self.lock:
            self.count += 1
            if self.down_on and self.down_on in path:
                self.down = True
            refused = self.down or self.count in self.fail
            self.failed += refused
            return refused

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    proc, url = start_mlflow_server(tmp_path_factory.mktemp("server"), SERVER_STORE, *ARTIFACTS)
    yield url
    proc.terminate()
    proc.wait(timeout=30)


@pytest.fixture
def proxy(server: str) -> Iterator[FlakyProxy]:
    flaky = FlakyProxy(server.removeprefix("http://"))
    yield flaky
    flaky.close()


def test_server_errors_that_pass_are_retried_whatever_their_message(
    tiny_prepared: Path, tmp_path: Path, proxy: FlakyProxy
) -> None:
    ids = experiment_ids(proxy.url, tmp_path, "enso-flaky")
    ids.write_text(json.dumps({"enso": json.loads(ids.read_text())["enso-flaky"]}))
    proxy.count = 0
    proxy.fail = {4, 5, 6, 12, 13, 20}  # HTTP 503, three times in a row at worst
    run_id = train(tiny_prepared, tmp_path / "run", proxy.url, ids)
    assert proxy.failed == len(proxy.fail)
    run = only_run(proxy.url, ids)
    assert run.info.run_id == run_id and run.info.status == "FINISHED"
    assert TRACKING_TAG not in run.data.tags
    assert steps(proxy.url, run_id, "val_loss") == [1, 2]
    assert {"loss_curves.png", "history.csv", "resolved_config.yaml"} <= artifacts(
        proxy.url, run_id
    )
    assert read_state(tmp_path / "run")["missing"] == {}


def test_server_gone_mid_job_leaves_a_partial_run_that_sync_completes(
    tiny_prepared: Path, tmp_path: Path, proxy: FlakyProxy
) -> None:
    ids = experiment_ids(proxy.url, tmp_path, "enso-down")
    ids.write_text(json.dumps({"enso": json.loads(ids.read_text())["enso-down"]}))
    proxy.down_on = "/artifacts/"  # the server goes away at the first artifact upload
    out = tmp_path / "results" / "enso" / "runs" / "cnn" / "seed0"
    run_id = train(tiny_prepared, out, proxy.url, ids)
    assert (out / "mlflow_run_id").read_text().strip() == run_id  # not "offline"
    state = read_state(out)
    assert state["jobs"]["train"] == "partial"
    assert "artifact loss_curves.png" in state["missing"]["train"]

    proxy.down, proxy.down_on = False, None  # the server is back
    for _ in range(2):
        sync(proxy.url, tmp_path / "results", cwd=tmp_path)
        run = only_run(proxy.url, ids)
        assert run.info.run_id == run_id and run.info.status == "FINISHED"
        assert TRACKING_TAG not in run.data.tags
        assert {"loss_curves.png", "history.csv", "resolved_config.yaml"} <= artifacts(
            proxy.url, run_id
        )
        assert steps(proxy.url, run_id, "val_loss") == [1, 2]
        assert run.data.params["training.epochs"] == "2"


# --- the team server's login -------------------------------------------------------------


def test_login_server_refuses_strangers_and_keeps_the_password_out_of_runs(
    tiny_prepared: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    pytest.importorskip("flask_wtf", reason="MLflow's basic-auth app needs Flask-WTF")
    password = secrets.token_urlsafe(16)
    ini = tmp_path / "auth.ini"
    ini.write_text(
        "[mlflow]\n"
        "default_permission = READ\n"
        f"database_uri = sqlite:///{tmp_path}/auth.db\n"
        "admin_username = admin\n"
        "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
    )
    proc, url = start_mlflow_server(
        tmp_path,
        SERVER_STORE,
        *ARTIFACTS,
        "--app-name",
        "basic-auth",
        env={
            "MLFLOW_AUTH_CONFIG_PATH": str(ini),
            "MLFLOW_AUTH_ADMIN_PASSWORD": password,
            "MLFLOW_FLASK_SERVER_SECRET_KEY": secrets.token_hex(16),  # CSRF of the login UI
        },
    )
    try:
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(f"{url}/api/2.0/mlflow/experiments/search?max_results=1")
        assert refused.value.code == 401

        monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "admin")
        monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", password)
        ids = experiment_ids(url, tmp_path)
        out = tmp_path / "run"
        with caplog.at_level("DEBUG"):
            run_id = train(tiny_prepared, out, url, ids)
        run = only_run(url, ids)
        assert run.info.run_id == run_id and run.info.status == "FINISHED"
        logged = json.dumps([run.data.params, run.data.tags, run.data.metrics])
        assert password not in logged
        downloaded = MlflowClient(url).download_artifacts(run_id, "", str(tmp_path / "dl"))
        files = [*Path(downloaded).rglob("*"), *out.rglob("*")]
        assert files
        for path in files:
            if path.is_file():
                assert password.encode() not in path.read_bytes(), path
        assert password not in caplog.text
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_make_server_never_serves_the_network_without_a_login() -> None:
    require_tools("make")
    refused = subprocess.run(
        ["make", "-n", "server", "HOST=0.0.0.0", "AUTH=none"],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert refused.returncode != 0 and "login" in refused.stderr
    served = subprocess.run(
        ["make", "-n", "server", "HOST=0.0.0.0"], cwd=REPO, capture_output=True, text=True
    )
    assert served.returncode == 0, served.stderr
    assert "--app-name basic-auth" in served.stdout
    local = subprocess.run(["make", "-n", "server"], cwd=REPO, capture_output=True, text=True)
    assert local.returncode == 0 and "--host 127.0.0.1" in local.stdout
    ui = subprocess.run(
        ["make", "-n", "ui", "HOST=0.0.0.0"], cwd=REPO, capture_output=True, text=True
    )
    assert ui.returncode != 0 and "login" in ui.stderr


# --- moving results ----------------------------------------------------------------------


def test_moved_results_get_a_working_store_from_sync(tiny_prepared: Path, tmp_path: Path) -> None:
    """The steps of docs/tracking.md, 'Moving results'."""
    old = tmp_path / "old" / "results"
    uri = f"sqlite:///{old}/mlflow.db"
    ids = old / "mlflow_experiments.json"
    ids.write_text(json.dumps(setup_experiments(uri, ["enso"], old / "mlartifacts")))
    run_dir = old / "enso" / "runs" / "cnn" / "seed0"
    train(tiny_prepared, run_dir, uri, ids)
    experiment = json.loads(ids.read_text())["enso"]
    shutil.move(tmp_path / "old", tmp_path / "new")
    results = tmp_path / "new" / "results"
    # (spelt differently from the new store's URI: MLflow keeps one engine per URI)
    stale = MlflowClient(f"sqlite:///{results}/../results/mlflow.db")
    (stale_run,) = stale.search_runs([experiment])
    with pytest.raises(MlflowException):  # the store still points at the old place
        stale.download_artifacts(stale_run.info.run_id, "history.csv", str(tmp_path / "dl"))

    (results / "mlflow.db").rename(results / "mlflow-before-move.db")
    (results / "mlartifacts").rename(results / "mlartifacts-before-move")
    moved = f"sqlite:///{results}/mlflow.db"
    result = subprocess.run(
        [sys.executable, "-m", "pipeline", "sync", "results/enso/runs", "--tracking-uri", moved],
        capture_output=True,
        text=True,
        cwd=tmp_path / "new",
        env={**os.environ, "PYTHONPATH": str(REPO / "src")},
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    run_id = (results / "enso" / "runs" / "cnn" / "seed0" / "mlflow_run_id").read_text().strip()
    got = MlflowClient(moved).download_artifacts(run_id, "history.csv", str(tmp_path / "dl"))
    assert Path(got).read_bytes() == (results / "enso/runs/cnn/seed0/history.csv").read_bytes()
    assert Path(
        MlflowClient(moved).get_run(run_id).info.artifact_uri.removeprefix("file://")
    ).is_relative_to(results)
