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
import logging
import math
import os
import subprocess
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

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


def _retry(func: Callable, attempts: int = 5, delay: float = 0.5) -> Any:
    """SQLite stores can be briefly locked by a parallel job: retry with back-off."""
    for attempt in range(attempts):
        try:
            return func()
        except Exception as err:  # mlflow wraps sqlite errors in several types
            if attempt == attempts - 1 or "locked" not in str(err).lower():
                raise
            time.sleep(delay * 2**attempt)
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
    """The tags every (experiment, model, seed) run carries (see architecture.md)."""
    git = git_state()
    return {
        f"{TAG_PREFIX}experiment": experiment,
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


def evaluation_metrics(metrics: Mapping[str, Any]) -> dict[str, float]:
    """``test_{metric}_lead{L}`` and ``test_{metric}`` (mean over leads) of the model."""
    out = {}
    for lead, entry in metrics["per_lead"].items():
        for key, value in entry["model"].items():
            out[f"test_{key}_lead{lead}"] = value
    for key, value in metrics["mean_over_leads"]["model"].items():
        out[f"test_{key}"] = value
    return _finite(out)


def importance_metrics(table: Any) -> dict[str, float]:
    """``importance_single_{group}_lead{L}``: the single-pass Delta MSE of each group."""
    single = table[table["method"] == "single"]
    return _finite(
        {f"importance_single_{r.group}_lead{r.lead}": r.score for r in single.itertuples()}
    )


def _guarded(method: Callable) -> Callable:
    """Run a tracking call; on failure warn once, disable tracking and carry on."""

    @functools.wraps(method)
    def wrapper(self: RunLogger, *args: Any, **kwargs: Any) -> Any:
        if not self.enabled:
            return None
        try:
            return _retry(lambda: method(self, *args, **kwargs))
        except Exception as err:
            self.enabled = False
            log.warning(
                "MLflow tracking failed (%s: %s); the job goes on and its files under results/ "
                "keep everything. Re-log later with: python -m pipeline sync <run folder>",
                type(err).__name__,
                err,
            )
            return None

    return wrapper


class RunLogger:
    """One job's MLflow run. Every method is a no-op once tracking has failed."""

    def __init__(self, uri: str, experiment_id: str, system_metrics: bool = True):
        self.uri = uri
        self.experiment_id = experiment_id
        self.system_metrics = system_metrics
        self.enabled = True
        self.run_id: str | None = None

    @_guarded
    def start(self, run_name: str, tags: Mapping[str, str], run_id: str | None = None) -> str:
        import mlflow

        mlflow.set_tracking_uri(self.uri)
        run = mlflow.start_run(
            run_id=run_id,
            experiment_id=None if run_id else self.experiment_id,
            run_name=None if run_id else run_name,
            tags=None if run_id else dict(tags),
            log_system_metrics=self.system_metrics,
        )
        self.run_id = run.info.run_id
        return self.run_id

    @_guarded
    def params(self, params: Mapping[str, Any]) -> None:
        import mlflow

        mlflow.log_params(dict(params))

    @_guarded
    def metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        import mlflow

        mlflow.log_metrics({k: float(v) for k, v in metrics.items()}, step=step)

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
    def link_children(self, run_ids: list[str]) -> None:
        """Make this run the parent of ``run_ids`` (the ``mlflow.parentRunId`` tag)."""
        from mlflow.tracking import MlflowClient

        client = MlflowClient(tracking_uri=self.uri)
        for run_id in run_ids:
            client.set_tag(run_id, "mlflow.parentRunId", self.run_id)

    @_guarded
    def end(self, status: str = "FINISHED") -> None:
        import mlflow

        mlflow.end_run(status=status)
