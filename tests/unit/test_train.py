"""The training loop: determinism, kill-and-resume, data paths, early stopping, and the
loss and target the task chooses (the losses themselves: test_losses.py)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import psutil
import pytest
import torch
import xarray as xr

from pipeline.io import write_zarr
from pipeline.prepare import open_prepared
from pipeline.samples import array_samples
from pipeline.train import (
    CHECKPOINT,
    epoch_order,
    resolve_amp,
    resolve_device,
    save_outputs,
    train_model,
)

TRAINING = {
    "epochs": 4,
    "batch_size": 32,
    "lr": 1e-3,
    "weight_decay": 0.0,
    "optimizer": "adamw",
    "scheduler": "cosine",
    "grad_clip": 1.0,
    "patience": 10,
    "loss": "auto",
    "amp": "auto",
    "device": "cpu",
    "deterministic": True,
    "gpu_resident": "auto",
    "num_workers": 0,
    "data": "auto",
    "shuffle_buffer_mb": 256,
    "strategy": "single",
    "processes": 2,
}


def variant(arch: str = "cnn", **training: object) -> dict:
    model = (
        {"arch": arch, "filters": [4], "kernel": 3, "dropout": 0.1}
        if arch == "cnn"
        else {"arch": arch}
    )
    return {"base": arch, "model": model, "training": {**TRAINING, **training}}


def run(prepared_path: Path, out: Path, spec: dict, seed: int = 0) -> tuple[pd.DataFrame, dict]:
    result = train_model(open_prepared(prepared_path), spec, seed, out, run_hash="h")
    save_outputs(result, out / "model.pt", out / "history.csv")
    return pd.read_csv(out / "history.csv"), torch.load(out / "model.pt", weights_only=True)


def assert_same_weights(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def assert_same_run(a: Path, b: Path) -> None:
    """Byte-identical history.csv and identical final weights in two run folders."""
    assert (a / "history.csv").read_bytes() == (b / "history.csv").read_bytes()
    assert_same_weights(
        torch.load(a / "model.pt", weights_only=True), torch.load(b / "model.pt", weights_only=True)
    )


@pytest.mark.parametrize("arch", ["cnn", "unet", "lstm"])
def test_two_cpu_runs_are_bit_identical(tiny_prepared: Path, tmp_path: Path, arch: str) -> None:
    run(tiny_prepared, tmp_path / "a", variant(arch))
    run(tiny_prepared, tmp_path / "b", variant(arch))
    assert_same_run(tmp_path / "a", tmp_path / "b")


def test_seeds_differ(tiny_prepared: Path, tmp_path: Path) -> None:
    a, _ = run(tiny_prepared, tmp_path / "a", variant(), seed=0)
    b, _ = run(tiny_prepared, tmp_path / "b", variant(), seed=1)
    assert not a["train_loss"].equals(b["train_loss"])


def test_history_and_checkpoint_contract(tiny_prepared: Path, tmp_path: Path) -> None:
    history, weights = run(tiny_prepared, tmp_path, variant())
    assert list(history.columns) == ["epoch", "train_loss", "val_loss", "lr"]
    assert history["epoch"].tolist() == [1, 2, 3, 4]
    assert history["lr"].iloc[0] == 1e-3 and history["lr"].iloc[-1] < 1e-3  # cosine schedule
    assert all(isinstance(v, torch.Tensor) for v in weights.values())  # a plain state_dict
    assert (tmp_path / CHECKPOINT).exists()  # the job removes it once its outputs exist


def test_device_resident_and_dataloader_paths_agree(tiny_prepared: Path, tmp_path: Path) -> None:
    a, wa = run(tiny_prepared, tmp_path / "a", variant(gpu_resident="always"))
    b, wb = run(tiny_prepared, tmp_path / "b", variant(gpu_resident="never", num_workers=0))
    pd.testing.assert_frame_equal(a, b)
    assert_same_weights(wa, wb)


def test_early_stopping_restores_best_weights(tiny_prepared: Path, tmp_path: Path) -> None:
    # a huge learning rate makes validation loss worse after the first epochs
    history, weights = run(
        tiny_prepared, tmp_path, variant(lr=0.5, patience=2, epochs=30, scheduler="none")
    )
    assert len(history) < 30
    best = int(history.loc[history["val_loss"].idxmin(), "epoch"])
    assert len(history) == best + 2  # stopped `patience` epochs after the best
    ckpt = torch.load(tmp_path / CHECKPOINT, weights_only=True)
    assert_same_weights(weights, ckpt["best_state"])


RESUME_SCRIPT = """
import sys, json, torch
from pathlib import Path
from pipeline.io import write_zarr
from pipeline.prepare import open_prepared
from pipeline.samples import array_samples
from pipeline.train import train_model, save_outputs
torch.set_num_threads(1)
prepared, out, spec = sys.argv[1], Path(sys.argv[2]), json.loads(sys.argv[3])
result = train_model(open_prepared(prepared), spec, 0, out, run_hash="h")
save_outputs(result, out / "model.pt", out / "history.csv")
print("resumed_from", result.resumed_from)
"""


def _processes_of(out: Path) -> list[psutil.Process]:
    """Live processes whose command line names ``out`` (a job and its workers)."""
    found = []
    for proc in psutil.process_iter(["cmdline", "status"]):
        if str(out) in " ".join(proc.info["cmdline"] or []) and proc.info["status"] != "zombie":
            found.append(proc)
    return found


def _train_process(prepared: Path, out: Path, spec: dict) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", RESUME_SCRIPT, str(prepared), str(out), json.dumps(spec)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.fixture(scope="module")
def small_chunks(tiny_prepared: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny prepared store rewritten with 8 samples a chunk: many chunks, as a large
    store has."""
    ds = xr.open_zarr(tiny_prepared)
    for var in ds.variables.values():
        var.encoding.pop("chunks", None)
        var.encoding.pop("preferred_chunks", None)
    path = tmp_path_factory.mktemp("rechunked") / "prepared.zarr"
    write_zarr(ds.chunk({"sample": 8}), path)
    return path


def few_chunks_buffer(prepared: Path) -> float:
    """A shuffle buffer (MB) of three chunks of ``prepared``: an epoch in several groups."""
    ds = open_prepared(prepared)
    return 3 * 8 * ds["x"][0].nbytes / 2**20


@pytest.mark.parametrize("data", ["memory", "lazy"])
def test_memory_and_lazy_training_are_bit_identical(
    small_chunks: Path, tmp_path: Path, data: str
) -> None:
    """The data path never changes a result: the store path (workers reading groups of
    chunks) and the memory paths train the same weights, in several shuffle groups."""
    buffer = few_chunks_buffer(small_chunks)
    base = variant(shuffle_buffer_mb=buffer, data="memory", gpu_resident="always")
    run(small_chunks, tmp_path / "a", base)
    spec = variant(shuffle_buffer_mb=buffer, data=data, gpu_resident="never", num_workers=2)
    run(small_chunks, tmp_path / "b", spec)
    assert_same_run(tmp_path / "a", tmp_path / "b")


@pytest.mark.parametrize("data", ["memory", "lazy"])
def test_killed_then_resumed_run_matches_uninterrupted(
    tiny_prepared: Path, small_chunks: Path, tmp_path: Path, data: str
) -> None:
    prepared = tiny_prepared if data == "memory" else small_chunks
    spec = variant("cnn", epochs=25, patience=25, data=data)
    if data == "lazy":  # several shuffle groups, read by a worker
        spec["training"].update(shuffle_buffer_mb=few_chunks_buffer(prepared), num_workers=1)
    spec["model"]["filters"] = [16, 16]
    full = _train_process(prepared, tmp_path / "full", spec)
    assert full.wait(timeout=300) == 0, full.stderr.read()

    proc = _train_process(prepared, tmp_path / "killed", spec)
    checkpoint = tmp_path / "killed" / CHECKPOINT
    deadline = time.time() + 120
    while not checkpoint.exists() and time.time() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert not (tmp_path / "killed" / "model.pt").exists(), "killed too late: it had finished"
    # nothing of the killed job trains on: its DataLoader workers die with it
    deadline = time.time() + 10
    while _processes_of(tmp_path / "killed") and time.time() < deadline:
        time.sleep(0.1)
    assert not _processes_of(tmp_path / "killed")
    epoch_at_kill = torch.load(checkpoint, weights_only=True)["epoch"]
    assert epoch_at_kill < 25

    resumed = _train_process(prepared, tmp_path / "killed", spec)
    stdout, stderr = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, stderr
    assert f"resumed_from {epoch_at_kill}" in stdout
    assert_same_run(tmp_path / "full", tmp_path / "killed")


def test_a_checkpoint_from_before_ddp_still_resumes(tiny_prepared: Path, tmp_path: Path) -> None:
    """Checkpoints written before DDP held one RNG state, not one per rank: a run
    interrupted then resumes after the upgrade as it would have before."""
    # without a schedule, 2 epochs then a third are the first 2 of 3
    run(tiny_prepared, tmp_path / "full", variant(epochs=3, scheduler="none"))
    run(tiny_prepared, tmp_path / "old", variant(epochs=2, scheduler="none"))
    ckpt = torch.load(tmp_path / "old" / CHECKPOINT, weights_only=True)
    ckpt["torch_rng"] = ckpt["torch_rng"][0]  # the old format
    torch.save(ckpt, tmp_path / "old" / CHECKPOINT)
    spec = variant(epochs=3, scheduler="none")
    result = train_model(open_prepared(tiny_prepared), spec, 0, tmp_path / "old", "h")
    assert result.resumed_from == 2
    save_outputs(result, tmp_path / "old" / "model.pt", tmp_path / "old" / "history.csv")
    assert_same_run(tmp_path / "full", tmp_path / "old")


def test_checkpoint_of_another_config_is_ignored(tiny_prepared: Path, tmp_path: Path) -> None:
    run(tiny_prepared, tmp_path, variant(epochs=2))
    result = train_model(
        open_prepared(tiny_prepared).load(), variant(epochs=3), 0, tmp_path, "other"
    )
    assert result.resumed_from == 0 and len(result.history) == 3


def test_epoch_order_depends_on_seed_and_epoch_only() -> None:
    assert torch.equal(epoch_order(50, 1, 3), epoch_order(50, 1, 3))
    assert not torch.equal(epoch_order(50, 1, 3), epoch_order(50, 1, 4))
    assert sorted(epoch_order(50, 2, 1).tolist()) == list(range(50))


def test_map_networks_train_on_the_maps(tiny_prepared: Path, tmp_path: Path) -> None:
    """The U-Net's loss is over the anomaly maps (the task's target), land (NaN) excluded."""
    prepared = open_prepared(tiny_prepared).load()
    maps = array_samples(prepared, "train", "y_map").load()
    assert maps.y.shape[1:] == prepared["y_map"].shape[1:] and maps.y.isnan().any()
    history, _ = run(tiny_prepared, tmp_path, variant("unet", epochs=1))
    assert history[["train_loss", "val_loss"]].notna().all(axis=None)


def test_device_and_amp_resolution() -> None:
    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    assert resolve_amp("auto", torch.device("cpu")) is None
    assert resolve_amp("auto", torch.device("cuda")) is torch.bfloat16
    assert resolve_amp("off", torch.device("cuda")) is None
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="no CUDA"):
            resolve_device("cuda")


class _PlantedPayload:
    """A pickle that runs code when loaded with weights_only=False."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self) -> tuple:
        return (Path.touch, (self.marker,))


def test_planted_checkpoint_is_never_executed(
    tiny_prepared: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    marker = tmp_path / "code_ran"
    out = tmp_path / "run"
    out.mkdir()
    torch.save({"run_hash": "h", "epoch": 1, "payload": _PlantedPayload(marker)}, out / CHECKPOINT)
    history, _ = run(tiny_prepared, out, variant(epochs=2))
    assert not marker.exists(), "loading the checkpoint executed code"
    assert list(history["epoch"]) == [1, 2]  # trained from scratch
    assert "ignoring unreadable checkpoint" in caplog.text
