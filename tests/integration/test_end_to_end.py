"""The whole DAG on the test config: outputs, MLflow contents, reproducibility, report."""

from __future__ import annotations

import filecmp
from pathlib import Path

import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from pipeline.config import load_config
from pipeline.scores import ALL, read_scores
from tests.conftest import REPO
from tests.integration.workflow import RESULTS, snakemake

pytestmark = pytest.mark.slow

CONFIG = load_config(REPO / "config" / "test.yaml")
VARIANTS = list(CONFIG["experiments"]["enso"]["variants"])
SEEDS = CONFIG["experiments"]["enso"]["seeds"]
LEADS = CONFIG["experiments"]["enso"]["task"]["leads"]


def run_dirs(workdir: Path) -> list[Path]:
    return [workdir / RESULTS / "enso" / "runs" / v / f"seed{s}" for v in VARIANTS for s in SEEDS]


def test_every_model_runs_through_importance_and_summary(full_run: Path) -> None:
    for run in run_dirs(full_run):
        for name in (
            "model.pt",
            "history.csv",
            "mlflow_run_id",
            "metrics.csv",
            "predictions.nc",
            "importance.csv",
            "plots/loss_curves.png",
            "plots/skill_vs_lead.png",
            "plots/importance.png",
            "plots/timeseries.png",
            "plots/scatter.png",
            "plots/confusion_matrix.png",
            "plots/roc.png",
        ):
            assert (run / name).exists(), run / name
        table = pd.read_csv(run / "importance.csv")
        assert list(table.columns)[:8] == [
            "lead",
            "method",
            "pass",
            "group",
            "score",
            "ci_low",
            "ci_high",
            "rank",
        ]
        assert set(table["method"]) == {"single", "multi"}
    summary_dir = full_run / RESULTS / "enso" / "summary"
    summary = pd.read_csv(summary_dir / "summary.csv", dtype={"group": str})
    assert list(summary.columns) == [
        "forecast",
        "role",
        "dim",
        "group",
        "metric",
        "mean",
        "std",
        "n_seeds",
    ]
    assert set(VARIANTS) | {"persistence", "linear", "oracle", "climatology"} == set(
        summary["forecast"]
    )
    best = pd.read_csv(summary_dir / "best_forecasts.csv", dtype={"lead": str})
    assert best["lead"].tolist() == [*map(str, LEADS), ALL]
    assert "oracle" not in set(best["best_forecast"])
    for name in ("skill_vs_lead.png", "importance_heatmap.png", "example_maps.png"):
        assert (summary_dir / "figures" / name).stat().st_size > 10_000
    assert "geodl-pipeline finished." in (full_run / "snakemake.out").read_text()


def test_one_mlflow_run_holds_train_evaluate_importance(full_run: Path) -> None:
    client = MlflowClient(f"sqlite:///{full_run}/{RESULTS}/mlflow.db")
    experiment = client.get_experiment_by_name("enso")
    parent_id = (full_run / RESULTS / "enso" / "summary" / "mlflow_run_id").read_text().strip()
    for run_dir in run_dirs(full_run):
        run = client.get_run((run_dir / "mlflow_run_id").read_text().strip())
        assert run.info.experiment_id == experiment.experiment_id
        metrics = run.data.metrics
        assert "val_loss" in metrics and "test_acc_lead6" in metrics
        assert any(k.startswith("importance_single_heat_content") for k in metrics)
        artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
        assert {"history.csv", "metrics.csv", "importance.csv", "predictions.nc"} <= artifacts
        plots = {a.path for a in client.list_artifacts(run.info.run_id, "plots")}
        assert {"plots/skill_vs_lead.png", "plots/importance.png"} <= plots
        assert "loss_curves.png" in artifacts  # at the top, where a newcomer looks first
        assert run.data.tags["pipeline.summary_run"] == parent_id
    parent = client.get_run(parent_id)
    assert parent.data.tags["pipeline.role"] == "summary"
    assert {"best_acc", "best_acc_lead1", "best_acc_lead6"} <= set(parent.data.metrics)
    runs = client.search_runs([experiment.experiment_id], "tags.pipeline.role = 'model'")
    assert len(runs) == len(VARIANTS) * len(SEEDS)


def test_rerun_from_scratch_is_byte_identical_and_in_place_is_a_noop(
    full_run: Path, tmp_path: Path
) -> None:
    # the ENSO study again, from scratch: its run files are compared
    again = snakemake(tmp_path, "--cores", "2", f"{RESULTS}/enso/summary/summary.csv")
    assert again.returncode == 0, again.stderr[-3000:]
    for first, second in zip(run_dirs(full_run), run_dirs(tmp_path), strict=True):
        for name in ("metrics.csv", "importance.csv", "history.csv"):
            assert filecmp.cmp(first / name, second / name, shallow=False), first / name
    noop = snakemake(full_run, "--cores", "2", "-n")
    assert "Nothing to be done" in noop.stdout + noop.stderr


def test_report_builds_with_the_summary_figure(full_run: Path) -> None:
    result = snakemake(full_run, "--report", f"{RESULTS}/report.html")
    assert result.returncode == 0, result.stderr[-3000:]
    html = (full_run / RESULTS / "report.html").read_text(errors="replace")
    assert "skill_vs_lead.png" in html and "summary.csv" in html
    assert len(html) > 50_000  # the figures are embedded


def test_metrics_csv_reports_every_lead(full_run: Path) -> None:
    run = run_dirs(full_run)[0]
    scores = read_scores(run / "metrics.csv")
    assert set(scores["dim"]) == {"lead"}
    assert scores["group"].drop_duplicates().tolist() == [*map(str, LEADS), ALL]
    roles = dict(scores[["forecast", "role"]].drop_duplicates().values)
    assert roles == {
        run.parent.name: "model",
        "persistence": "baseline",
        "climatology": "baseline",
        "linear": "baseline",
        "oracle": "ceiling",
    }
    model = set(scores[scores["role"] == "model"]["metric"])
    assert {"acc", "rmse", "msess_persistence", "frac_oracle_acc", "event_roc_auc"} <= model


def test_sync_restores_a_run_into_a_fresh_store(full_run: Path, tmp_path: Path) -> None:
    import shutil
    import subprocess
    import sys

    original_dir = run_dirs(full_run)[0]
    copy = tmp_path / "runs" / original_dir.parent.name / original_dir.name
    shutil.copytree(original_dir, copy)
    store = f"sqlite:///{tmp_path}/fresh.db"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pipeline",
            "sync",
            str(tmp_path / "runs"),
            "--tracking-uri",
            store,
            "--artifact-root",
            str(tmp_path / "artifacts"),
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    source = MlflowClient(f"sqlite:///{full_run}/{RESULTS}/mlflow.db")
    target = MlflowClient(store)
    original = source.get_run((original_dir / "mlflow_run_id").read_text().strip())
    restored = target.get_run((copy / "mlflow_run_id").read_text().strip())
    assert restored.info.experiment_id == target.get_experiment_by_name("enso").experiment_id
    assert restored.data.params == original.data.params
    logged = {k: v for k, v in original.data.metrics.items() if not k.startswith("system/")}
    assert restored.data.metrics.keys() == logged.keys()
    for key, value in logged.items():
        assert restored.data.metrics[key] == pytest.approx(value, rel=1e-9), key
    history = [m.value for m in source.get_metric_history(original.info.run_id, "val_loss")]
    assert [m.value for m in target.get_metric_history(restored.info.run_id, "val_loss")] == history
    for tag in ("pipeline.model", "pipeline.config_hash", "pipeline.data_sha256"):
        assert restored.data.tags[tag] == original.data.tags[tag]


def test_the_series_study_runs_through_summary_and_mlflow(full_run: Path) -> None:
    """Rainfall-runoff on daily basins: per-basin and per-lead scores, figures, MLflow."""
    spec = CONFIG["experiments"]["runoff"]
    root = full_run / RESULTS / "runoff"
    assert not (full_run / RESULTS / "data" / "grid" / "basins_synth").exists()  # no regrid
    for variant in spec["variants"]:
        run = root / "runs" / variant / f"seed{spec['seeds'][0]}"
        for name in ("metrics.csv", "predictions.nc", "importance.csv", "plots/nse_cdf.png"):
            assert (run / name).exists(), run / name
        scores = read_scores(run / "metrics.csv")
        assert set(scores["dim"]) == {"lead", "entity"}
        roles = dict(scores[["forecast", "role"]].drop_duplicates().values)
        assert roles["climatology"] == roles["ridge"] == "baseline"
        assert roles["oracle"] == "ceiling"
        assert {"nse", "kge", "n_nse_le_0"} <= set(scores[scores["dim"] == "lead"]["metric"])
        groups = set(pd.read_csv(run / "importance.csv")["group"])
        assert {*spec["task"]["inputs"], *spec["task"]["statics"]} <= groups
    best = pd.read_csv(root / "summary" / "best_forecasts.csv", dtype={"lead": str})
    assert best["lead"].tolist() == [*map(str, spec["task"]["leads"]), ALL]  # no basin rows
    assert (root / "summary" / "figures" / "nse_cdf.png").stat().st_size > 10_000
    client = MlflowClient(f"sqlite:///{full_run}/{RESULTS}/mlflow.db")
    experiment = client.get_experiment_by_name("runoff")
    runs = client.search_runs([experiment.experiment_id], "tags.pipeline.role = 'model'")
    assert len(runs) == len(spec["variants"]) * len(spec["seeds"])
    assert all("test_nse_lead0" in run.data.metrics for run in runs)


def test_a_monthly_index_series_runs_through_summary(full_run: Path) -> None:
    """A single series forecast from its own past and a covariate, at leads in months."""
    import xarray as xr

    spec = CONFIG["experiments"]["nino_index"]
    root = full_run / RESULTS / "nino_index"
    with xr.open_zarr(root / "prepared.zarr") as prepared:
        assert prepared.attrs["step"] == "monthly" and prepared.sizes["entity"] == 1
    run = root / "runs" / next(iter(spec["variants"])) / f"seed{spec['seeds'][0]}"
    scores = read_scores(run / "metrics.csv")
    assert {"ar", "persistence", "climatology", "ridge"} <= set(scores["forecast"])
    leads = scores[scores["dim"] == "lead"]["group"].drop_duplicates().tolist()
    assert leads == [*map(str, spec["task"]["leads"]), ALL]
    assert (run / "plots" / "hydrographs.png").exists()
    assert not (run / "plots" / "nse_cdf.png").exists()  # one series has no distribution
    figures = root / "summary" / "figures"
    assert (figures / "skill_vs_lead.png").stat().st_size > 10_000
