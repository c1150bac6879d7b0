"""Data-parallel training on the CPU: 2 processes, gloo, launched by torchrun as the train
rule launches them (pipeline.distributed.launch), against one process on the same
global batch; and a killed DDP job resumed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch
from mlflow.tracking import MlflowClient

from pipeline.distributed import launch
from pipeline.runs import train_job
from pipeline.tracking import setup_experiments
from pipeline.train import CHECKPOINT
from tests.conftest import TINY_CNN

pytestmark = pytest.mark.slow

#: Train and validation loss of the 2-process run within this relative tolerance of the
#: one-process run: the same steps, but DDP averages two half-batch gradients, so sums
#: are taken in another order (float32 rounding, ~1e-7 a step, compounding over epochs).
RTOL = 1e-4


def _job(prepared: Path, tmp_path: Path, name: str, spec: dict) -> dict:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    ids = tmp_path / "ids.json"
    if not ids.exists():
        ids.write_text(json.dumps(setup_experiments(uri, ["enso"], tmp_path / "artifacts")))
    return {
        "prepared_path": str(prepared),
        "experiment": "enso",
        "variant_name": name,
        "variant": spec,
        "seed": 0,
        "run_hash": name,
        "experiment_ids": str(ids),
        "tracking_uri": uri,
        "out_dir": str(tmp_path / name),
    }


def _spec(strategy: str, epochs: int = 4) -> dict:
    """The tiny CNN (no batch norm, no dropout: DDP on the CPU then matches one process)."""
    training = {**TINY_CNN["training"], "epochs": epochs, "patience": epochs}
    training |= {"strategy": strategy, "processes": 2, "batch_size": 16, "scheduler": "cosine"}
    model = {**TINY_CNN["model"], "filters": [8, 8], "dropout": 0.0}
    return {**TINY_CNN, "model": model, "training": training}


def test_two_process_ddp_matches_one_process_on_the_same_global_batch(
    tiny_prepared: Path, tmp_path: Path
) -> None:
    single = _job(tiny_prepared, tmp_path, "single", _spec("single"))
    train_job(**single)
    ddp = _job(tiny_prepared, tmp_path, "ddp", _spec("ddp"))
    launch(ddp, processes=2)

    a = pd.read_csv(tmp_path / "single" / "history.csv")
    b = pd.read_csv(tmp_path / "ddp" / "history.csv")
    assert len(a) == len(b) == 4
    for column in ("train_loss", "val_loss"):
        assert b[column].tolist() == pytest.approx(a[column].tolist(), rel=RTOL), column
    assert (b["train_loss"].iloc[-1] < b["train_loss"].iloc[0]) and b["lr"].equals(a["lr"])
    wa = torch.load(tmp_path / "single" / "model.pt", weights_only=True)
    wb = torch.load(tmp_path / "ddp" / "model.pt", weights_only=True)
    assert wa.keys() == wb.keys()  # a plain model's state_dict: no DDP "module." prefix
    for key in wa:
        torch.testing.assert_close(wb[key], wa[key], rtol=1e-3, atol=1e-5)

    # rank 0 alone wrote the run folder and logged: one MLflow run, one value per epoch
    assert not (tmp_path / "ddp" / CHECKPOINT).exists()
    client = MlflowClient(single["tracking_uri"])
    experiment = client.get_experiment_by_name("enso")
    runs = client.search_runs([experiment.experiment_id], "tags.`pipeline.model` = 'ddp'")
    assert len(runs) == 1 and runs[0].info.status == "FINISHED"
    assert runs[0].data.params["training.strategy"] == "ddp"
    assert len(client.get_metric_history(runs[0].info.run_id, "val_loss")) == 4


LAUNCH = """
import json, sys
from pipeline.distributed import launch
from pipeline.logs import configure
configure(sys.argv[2])
launch(json.loads(sys.argv[1]), processes=2)
"""


def _launch_process(job: dict, log: Path) -> subprocess.Popen:
    """The train job's launcher in its own session, so a kill takes all its processes."""
    return subprocess.Popen(
        [sys.executable, "-c", LAUNCH, json.dumps(job), str(log)],
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_a_killed_ddp_job_resumes_and_matches_an_uninterrupted_one(
    tiny_prepared: Path, tmp_path: Path
) -> None:
    spec = _spec("ddp", epochs=30)
    spec["model"].update(filters=[32, 32], dropout=0.2)  # each rank's dropout must resume
    full = _launch_process(_job(tiny_prepared, tmp_path, "full", spec), tmp_path / "full.log")
    assert full.wait(timeout=600) == 0, (tmp_path / "full.log").read_text()[-3000:]

    job = _job(tiny_prepared, tmp_path / "k", "full", spec)  # same run hash, own folder
    proc = _launch_process(job, tmp_path / "killed.log")
    checkpoint = Path(job["out_dir"]) / CHECKPOINT
    deadline = time.time() + 300
    while not checkpoint.exists() and time.time() < deadline:
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)  # the launcher and both ranks, mid-run
    proc.wait(timeout=30)
    assert not (Path(job["out_dir"]) / "model.pt").exists(), "killed too late: it had finished"
    epoch_at_kill = torch.load(checkpoint, weights_only=True)["epoch"]
    assert 1 <= epoch_at_kill < 30

    resumed = _launch_process(job, tmp_path / "resumed.log")
    assert resumed.wait(timeout=600) == 0, (tmp_path / "resumed.log").read_text()[-3000:]
    assert (
        f"resuming from the checkpoint of epoch {epoch_at_kill}"
        in (tmp_path / "resumed.log").read_text()
    )
    a = pd.read_csv(tmp_path / "full" / "history.csv")
    b = pd.read_csv(Path(job["out_dir"]) / "history.csv")
    pd.testing.assert_frame_equal(a, b)  # gloo on the CPU is deterministic: exactly equal
    wa = torch.load(tmp_path / "full" / "model.pt", weights_only=True)
    wb = torch.load(Path(job["out_dir"]) / "model.pt", weights_only=True)
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
