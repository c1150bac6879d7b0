"""Everything MLflow: store and experiment set-up, runs, tags, provenance, artifacts.

Set-up (database migration, experiment creation) happens once, in a local rule, before
jobs start; jobs then log by experiment *id*, so parallel jobs never race to create the
store or fall back to the "Default" experiment. A tracking failure inside a job is
logged as a warning and never loses the job's results: its files under ``results/``
hold everything, and ``python -m pipeline sync`` can re-log them later.
"""

from __future__ import annotations

import functools
import importlib.metadata
import json
import logging
import math
import os
import subprocess
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from pipeline.io import write_json
from pipeline.scores import ALL

log = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[2]
TAG_PREFIX = "pipeline."
EXPERIMENT_KIND = "mlflow.experimentKind"
PACKAGES = (
    "torch",
    "numpy",
    "xarray",
    "dask",
    "zarr",
    "xarray-regrid",
    "mlflow",
    "snakemake",
    "scikit-learn",
    "pandas",
)


def tracking_uri(config: Mapping[str, Any]) -> str:
    """``MLFLOW_TRACKING_URI`` if set, else the config's store."""
    return os.environ.get("MLFLOW_TRACKING_URI") or config["mlflow"]["tracking_uri"]


#: MLflow error codes that say "try again later" (HTTP 5xx/429/timeouts, sqlite locks).
TRANSIENT_CODES = frozenset(
    {
        "TEMPORARILY_UNAVAILABLE",
        "INTERNAL_ERROR",
        "REQUEST_LIMIT_EXCEEDED",
        "DEADLINE_EXCEEDED",
        "ABORTED",
        "SERVICE_UNDER_MAINTENANCE",
    }
)
#: Bounded back-off: RETRY_ATTEMPTS tries, RETRY_DELAY * 2**n seconds apart (0.5 ... 8 s).
RETRY_ATTEMPTS = 6
RETRY_DELAY = 0.5


def is_transient(err: BaseException) -> bool:
    """Whether a tracking error may pass if retried: a lost connection, a timeout, an
    HTTP 5xx/429 from a server, a locked or briefly unavailable database. Anything else
    (a bad value, a full disk, a missing run) fails the same way every time."""
    import requests
    import sqlalchemy.exc
    from mlflow.exceptions import MlflowException

    seen: set[int] = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        if isinstance(
            err,
            ConnectionError
            | TimeoutError
            | requests.ConnectionError
            | requests.Timeout
            | sqlalchemy.exc.OperationalError,
        ):
            return True
        if isinstance(err, MlflowException) and err.error_code in TRANSIENT_CODES:
            return True
        if "database is locked" in str(err).lower():
            return True
        err = err.__cause__ or err.__context__
    return False


def _retry(func: Callable[[], Any]) -> Any:
    """Call ``func``; retry transient errors with exponential back-off, raise the rest."""
    for attempt in range(RETRY_ATTEMPTS):
        try:
            return func()
        except Exception as err:
            if attempt == RETRY_ATTEMPTS - 1 or not is_transient(err):
                raise
            wait = RETRY_DELAY * 2**attempt
            log.info("transient MLflow error (%s); retrying in %.1fs", err, wait)
            time.sleep(wait)
    return None


def setup_experiments(uri: str, names: list[str], artifact_root: str | Path) -> dict[str, str]:
    """Create (or upgrade) the store and the experiments; return {name: experiment id}."""
    from mlflow.entities import LifecycleStage
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    ids = {}
    for name in names:
        exp = client.get_experiment_by_name(name)
        if exp is None:
            location = None
            if not uri.startswith(("http://", "https://", "databricks")):
                location = Path(artifact_root).resolve().as_uri()
            # a training experiment: the UI opens on its runs, not on GenAI traces
            ids[name] = client.create_experiment(
                name, artifact_location=location, tags={EXPERIMENT_KIND: "custom_model_development"}
            )
            log.info("created MLflow experiment %s (id %s) in %s", name, ids[name], uri)
        else:
            if exp.lifecycle_stage == LifecycleStage.DELETED:
                client.restore_experiment(exp.experiment_id)
            ids[name] = exp.experiment_id
    return ids


def git_state(repo: Path = REPO) -> dict[str, str]:
    """Commit and dirty flag of the workflow checkout ('unknown' outside git)."""

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", "-C", str(repo), *args], capture_output=True, text=True, check=True
        ).stdout.strip()

    try:
        commit = git("rev-parse", "HEAD")
        dirty = bool(git("status", "--porcelain", "--untracked-files=no"))
    except (OSError, subprocess.CalledProcessError):
        return {"commit": "unknown", "dirty": "unknown"}
    return {"commit": commit, "dirty": str(dirty).lower()}


def package_versions() -> dict[str, str]:
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "absent"
    return versions


def run_tags(
    experiment: str, model: str, seed: int, config_hash: str, data_sha256: str
) -> dict[str, str]:
    """The tags every (experiment, model, seed) run carries (docs/tracking.md lists them)."""
    git = git_state()
    return {
        f"{TAG_PREFIX}experiment": experiment,
        f"{TAG_PREFIX}role": "model",
        f"{TAG_PREFIX}model": model,
        f"{TAG_PREFIX}seed": str(seed),
        f"{TAG_PREFIX}config_hash": config_hash,
        f"{TAG_PREFIX}data_sha256": data_sha256,
        f"{TAG_PREFIX}git_dirty": git["dirty"],
        "mlflow.source.git.commit": git["commit"],
        **{f"{TAG_PREFIX}version.{k}": v for k, v in package_versions().items()},
    }


def flatten(spec: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """Nested spec -> flat MLflow params (``model.kernel``, ``training.lr``)."""
    out: dict[str, str] = {}
    for key, value in spec.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flatten(value, f"{name}."))
        else:
            out[name] = str(value)
    return out


def _finite(values: Mapping[str, Any]) -> dict[str, float]:
    """MLflow metrics must be numbers: drop None (NaN in JSON) and non-finite values."""
    return {k: float(v) for k, v in values.items() if v is not None and math.isfinite(v)}


def group_suffix(dim: str, group: str, groups: Iterable[str]) -> str:
    """``lead06`` or ``class_AR``: numeric groups zero-padded to the width of the largest,
    so that the MLflow UI, which sorts metric names as text, lists them in order."""
    numbers = [g for g in map(str, groups) if g.lstrip("-").isdigit()]
    if str(group).lstrip("-").isdigit():
        width = len(str(max(int(g) for g in numbers)))
        return f"{dim}{int(group):0{width}d}"
    return f"{dim}_{str(group).replace(' ', '_')}"


def score_metrics(scores: Any, forecast: str) -> dict[str, float]:
    """``test_{metric}_{dim}{group}`` and ``test_{metric}`` (the ``all`` group) of one
    forecast in a long-form score table (metrics.csv): a network, or a baseline."""
    part = scores[scores["forecast"] == forecast]
    groups = [g for g in part["group"].unique() if g != ALL]
    out = {}
    for row in part.itertuples():
        suffix = "" if row.group == ALL else f"_{group_suffix(row.dim, row.group, groups)}"
        out[f"test_{row.metric}{suffix}"] = row.value
    return _finite(out)


def importance_metrics(table: Any, dim: str, groups: Iterable[str]) -> dict[str, float]:
    """``importance_single_{input group}_{dim}{group}``: the single-pass score of each
    input group per output group; ``groups`` are all of them (the zero-padding width)."""
    groups = [str(g) for g in groups]
    single = table[table["method"] == "single"]
    return _finite(
        {
            f"importance_single_{r['group']}_{group_suffix(dim, r[dim], groups)}": r["score"]
            for r in single.to_dict("records")
        }
    )


# --- the run-folder state -------------------------------------------------------------

STATE_FILE = ".mlflow_run"
TRACKING_TAG = f"{TAG_PREFIX}tracking"  # "partial" while parts of the run are missing
SUMMARY_TAG = f"{TAG_PREFIX}summary_run"  # the summary run that lists this run


def read_state(folder: str | Path) -> dict[str, Any]:
    """The MLflow state of a run folder (``{}`` if none): the run id, the store, the key
    the run belongs to (a run hash), each job's status and the parts it could not log.

    Written as soon as a run is opened, so a killed job's rerun finds its run again.
    It is not a Snakemake output: Snakemake never deletes it before a rerun."""
    path = Path(folder) / STATE_FILE
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def write_state(folder: str | Path, state: Mapping[str, Any]) -> None:
    write_json(dict(state), Path(folder) / STATE_FILE)


def _guarded(method: Callable) -> Callable:
    """Run a tracking call with retries; when they fail, warn once, mark the run
    partial, note the part in the folder state and skip every later call."""

    @functools.wraps(method)
    def wrapper(self: RunLogger, *args: Any, **kwargs: Any) -> Any:
        part = method.__name__
        if part == "artifact":
            part = f"artifact {Path(args[0]).name}"
        if not self.enabled:
            self.missing.append(part)
            return None
        try:
            return _retry(lambda: method(self, *args, **kwargs))
        except Exception as err:
            self.enabled = False
            self.missing.append(part)
            log.warning(
                "MLflow tracking failed (%s: %s); the job goes on and its files under results/ "
                "keep everything. Complete the run later with: python -m pipeline sync %s",
                type(err).__name__,
                err,
                self.state_dir or "<run folder>",
            )
            self._mark_partial()
            return None

    return wrapper


class RunLogger:
    """One job's part of an MLflow run. Use it as a context manager: the run ends
    FINISHED when the job ends, FAILED when it raises; a killed job leaves the run
    RUNNING and its folder state, so that the rerun resumes the same run.

    Every call is retried on transient errors; once one fails for good, tracking stops
    for this job, the run is tagged ``pipeline.tracking=partial`` (when the store can be
    reached) and the folder state lists the parts that were not logged, for ``sync``.
    Logging into a resumed run skips params and metric steps that it already holds.
    """

    def __init__(
        self,
        uri: str,
        experiment_id: str,
        *,
        job: str,
        state_dir: str | Path | None = None,
        system_metrics: bool = True,
    ):
        self.uri = uri
        self.experiment_id = experiment_id
        self.job = job
        self.state_dir = Path(state_dir) if state_dir is not None else None
        self.system_metrics = system_metrics
        self.enabled = True
        self.run_id: str | None = None
        self.missing: list[str] = []
        self._state: dict[str, Any] = {}
        self._params: dict[str, str] = {}
        self._latest: dict[str, float] = {}  # the run's metrics when it was re-opened
        self._steps: dict[str, set[int]] = {}

    def __enter__(self) -> RunLogger:
        return self

    def __exit__(self, exc_type: type | None, *exc: object) -> None:
        self.close("FAILED" if exc_type is not None else "FINISHED")

    # --- opening and closing -------------------------------------------------------

    def open(self, run_name: str, tags: Mapping[str, str], key: str) -> None:
        """Open this job's run: the one an unfinished attempt of the same job (same
        store, same ``key``) left in the folder state, else a new one."""
        state = read_state(self.state_dir) if self.state_dir else {}
        previous = state.get("run_id")
        resumable = bool(
            previous
            and state.get("tracking_uri") == self.uri
            and state.get("key") == key
            and state.get("jobs", {}).get(self.job) != "finished"
            and self._exists(previous)
        )
        self._state = state if resumable else {"key": key}
        if resumable:
            log.info("resuming MLflow run %s, left open by an interrupted %s", previous, self.job)
            self.start(run_name, tags, run_id=previous)
            self.tags(tags)  # the tags of this attempt (e.g. a new git commit)
        else:
            self.start(run_name, tags)

    def reopen(self, run_id: str) -> None:
        """Re-open the run another job created (evaluate and importance append to it)."""
        self._state = read_state(self.state_dir) if self.state_dir else {}
        self.start(run_name="", tags={}, run_id=run_id)

    def close(self, status: str = "FINISHED") -> None:
        """End the run with ``status`` and record the job's outcome in the folder state."""
        if self.run_id is None:
            return
        self.end(status)
        if self.missing:
            self._mark_partial()
        self._save_state("partial" if self.missing else status.lower())

    def _save_state(self, outcome: str) -> None:
        """Record this job's outcome (and the parts it could not log) in the folder."""
        if self.state_dir is None or self.run_id is None:
            return
        state = {**self._state, "run_id": self.run_id, "tracking_uri": self.uri}
        state["jobs"] = {**state.get("jobs", {}), self.job: outcome}
        missing = {k: v for k, v in state.get("missing", {}).items() if k != self.job}
        state["missing"] = {**missing, **({self.job: self.missing} if self.missing else {})}
        write_state(self.state_dir, state)
        self._state = state

    def _exists(self, run_id: str) -> bool:
        from mlflow.entities import LifecycleStage
        from mlflow.tracking import MlflowClient

        try:
            run = _retry(lambda: MlflowClient(self.uri).get_run(run_id))
        except Exception:
            return False
        return run.info.lifecycle_stage == LifecycleStage.ACTIVE

    def _mark_partial(self) -> None:
        """Tag the run partial, with one attempt: the store may be the thing that failed."""
        from mlflow.tracking import MlflowClient

        if self.run_id is None:
            return
        try:
            MlflowClient(self.uri).set_tag(self.run_id, TRACKING_TAG, "partial")
        except Exception as err:
            log.warning("could not tag run %s as partial (%s)", self.run_id, err)

    # --- the tracking calls --------------------------------------------------------

    @_guarded
    def start(self, run_name: str, tags: Mapping[str, str], run_id: str | None = None) -> str:
        import mlflow
        from mlflow.tracking import MlflowClient

        mlflow.set_tracking_uri(self.uri)
        if run_id:  # what the run already holds: never log it twice
            data = MlflowClient(self.uri).get_run(run_id).data
            self._params, self._latest = dict(data.params), dict(data.metrics)
        run = mlflow.start_run(
            run_id=run_id,
            experiment_id=None if run_id else self.experiment_id,
            run_name=None if run_id else run_name,
            tags=None if run_id else dict(tags),
            log_system_metrics=self.system_metrics,
        )
        self.run_id = run.info.run_id
        self._save_state("running")  # at once: a rerun after a kill resumes this run
        return self.run_id

    @_guarded
    def params(self, params: Mapping[str, Any]) -> None:
        import mlflow

        new = {k: str(v) for k, v in params.items() if self._params.get(k) != str(v)}
        if new:
            mlflow.log_params(new)
            self._params.update(new)

    @_guarded
    def metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        import mlflow

        if step is None:  # a result (evaluation, importance): a rerun's new value must win
            new = {
                k: float(v)
                for k, v in metrics.items()
                if not (k in self._latest and math.isclose(self._latest[k], v, rel_tol=1e-9))
            }
            if new:
                mlflow.log_metrics(new)
                self._latest.update(new)
            return
        # a per-epoch curve: a resumed run skips the epochs it already holds
        new = {k: float(v) for k, v in metrics.items() if step not in self._logged_steps(k)}
        if new:
            mlflow.log_metrics(new, step=step)
            for key in new:
                self._steps.setdefault(key, set()).add(step)

    def _logged_steps(self, key: str) -> set[int]:
        """The steps of ``key`` the run already holds (looked up once per key)."""
        if key not in self._steps:
            self._steps[key] = set()
            if key in self._latest:
                from mlflow.tracking import MlflowClient

                history = MlflowClient(self.uri).get_metric_history(self.run_id, key)
                self._steps[key] = {m.step for m in history}
        return self._steps[key]

    @_guarded
    def artifact(self, path: str | Path, artifact_path: str | None = None) -> None:
        import mlflow

        mlflow.log_artifact(str(path), artifact_path=artifact_path)

    @_guarded
    def tags(self, tags: Mapping[str, str]) -> None:
        import mlflow

        mlflow.set_tags(dict(tags))

    @_guarded
    def torch_model(self, model: Any, example: Any) -> None:
        """Log the model with a signature, an input example and the pipeline code."""
        import mlflow
        import torch
        from mlflow.models import infer_signature

        model = model.cpu().eval()
        with torch.no_grad():
            output = model(torch.as_tensor(example)).numpy()
        mlflow.pytorch.log_model(
            model,
            name="model",
            signature=infer_signature(example, output),
            input_example=example,
            code_paths=[str(Path(__file__).parent)],
            pip_requirements=[f"torch=={torch.__version__.split('+')[0]}", "numpy"],
        )

    @_guarded
    def tag_runs(self, run_ids: Iterable[str], tags: Mapping[str, str]) -> None:
        """Set ``tags`` on other runs (e.g. the summary run's id on every model run)."""
        from mlflow.tracking import MlflowClient

        client = MlflowClient(tracking_uri=self.uri)
        for run_id in run_ids:
            for key, value in tags.items():
                client.set_tag(run_id, key, value)

    def end(self, status: str = "FINISHED") -> None:
        """Terminate the run in the store (retried; one attempt once tracking has failed,
        so that a reachable store never keeps a RUNNING run), then detach it from this
        process even when the store is unreachable."""
        import mlflow
        from mlflow.tracking import MlflowClient

        def terminate() -> None:
            MlflowClient(self.uri).set_terminated(self.run_id, status)

        try:
            _retry(terminate) if self.enabled else terminate()
        except Exception as err:
            if self.enabled:
                self.missing.append("end")
            self.enabled = False
            log.warning("could not end MLflow run %s (%s)", self.run_id, err)
        if mlflow.active_run() is not None:
            try:
                mlflow.end_run(status) if self.enabled else _forget_active_run()
            except Exception as err:
                log.debug("detaching MLflow run %s: %s", self.run_id, err)


def _forget_active_run() -> None:
    """Drop MLflow's active run and its system-metrics thread without calling the store
    (which just failed: ``mlflow.end_run`` would wait out its HTTP retries, and so would
    MLflow's atexit hook for a run left active)."""
    from mlflow.tracking import fluent

    run = fluent._active_run_stack.get().pop()
    monitor = fluent.run_id_to_system_metrics_monitor.pop(run.info.run_id, None)
    if monitor is not None:
        monitor._shutdown_event.set()


def log_reference_runs(
    uri: str,
    experiment_id: str,
    experiment: str,
    scores: Any,
    data_sha256: str,
    prepared_hash: str,
) -> list[str]:
    """One run per forecast of ``scores`` that is not a single network run (a baseline,
    the oracle, a seed ensemble), tagged ``pipeline.role``, with the model runs' metric
    names: the runs table and its charts then compare a network's skill with each of
    them, column by column.

    A baseline's skill depends only on the prepared data (the input files and the grid,
    task and splits), so a run is reused for the same ``data_sha256`` and
    ``prepared_hash``, its metrics replaced; return the run ids."""
    from mlflow.tracking import MlflowClient

    others = scores[scores["role"] != "model"][["forecast", "role"]].drop_duplicates()
    ids = []
    for name, role in others.itertuples(index=False):
        tags = {
            f"{TAG_PREFIX}experiment": experiment,
            f"{TAG_PREFIX}role": role,
            f"{TAG_PREFIX}model": name,
            f"{TAG_PREFIX}data_sha256": data_sha256,
            f"{TAG_PREFIX}config_hash": prepared_hash,
        }
        query = " and ".join(f"tags.`{k}` = '{v}'" for k, v in tags.items())
        try:
            found = _retry(
                lambda q=query: MlflowClient(uri).search_runs([experiment_id], q, max_results=1)
            )
        except Exception as err:
            log.warning("MLflow tracking failed (%s); reference runs not logged", err)
            return ids
        with RunLogger(uri, experiment_id, job=role, system_metrics=False) as tracker:
            tracker.start(f"{role}: {name}", tags, run_id=found[0].info.run_id if found else None)
            tracker.metrics(score_metrics(scores, name))
        if tracker.run_id:
            ids.append(tracker.run_id)
    return ids
