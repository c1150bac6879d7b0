"""The training loop: device, mixed precision, early stopping, LR schedule,
checkpoint/resume and determinism, for every architecture in the model zoo.

Data path: the task gives each split's samples (pipeline.samples). When they fit on
the device they are moved there once and batches are gathered on the device (no
DataLoader); otherwise a DataLoader with workers and pinned memory streams them. Both
paths see the same batches in the same order: the order of epoch e is a permutation
seeded by (seed, e), so a resumed run continues exactly where an uninterrupted one
would be.
"""

from __future__ import annotations

import copy
import logging
import os
import random
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import xarray as xr
from torch import nn
from tqdm.auto import tqdm

from pipeline.io import atomic_path, write_text
from pipeline.samples import Samples
from pipeline.tasks import prepared_task
from pipeline.tasks.base import Loss
from pipeline.tracking import RunLogger

log = logging.getLogger(__name__)

CHECKPOINT = "checkpoint.pt"
HISTORY_COLUMNS = ["epoch", "train_loss", "val_loss", "lr"]


# ----------------------------------------------------------------------------- setup


def seed_everything(seed: int, deterministic: bool = True) -> None:
    """Seed Python, NumPy and torch; optionally force deterministic kernels."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.benchmark = False


def resolve_device(name: str) -> torch.device:
    """``auto``: CUDA when present, else CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("training.device is 'cuda' but no CUDA device is visible")
    return torch.device(name)


def resolve_amp(setting: str, device: torch.device) -> torch.dtype | None:
    """bf16 autocast on CUDA for ``auto``; always for ``bf16``; never for ``off``."""
    if setting == "off" or (setting == "auto" and device.type != "cuda"):
        return None
    return torch.bfloat16


def epoch_order(n: int, seed: int, epoch: int) -> torch.Tensor:
    """The sample order of one epoch: a function of (seed, epoch) only."""
    generator = torch.Generator().manual_seed(seed * 100_003 + epoch)
    return torch.randperm(n, generator=generator)


# ------------------------------------------------------------------------------ data


def fits_on_device(nbytes: int, device: torch.device, fraction: float = 0.5) -> bool:
    if device.type != "cuda":
        return True  # already in host memory: slicing it is the fastest path
    free, _ = torch.cuda.mem_get_info(device)
    return nbytes < fraction * free


class _BatchesOf(torch.utils.data.Dataset):
    """A DataLoader source whose item is a whole batch: ``samples.batch(indices)``, the
    same gather the device-resident path does."""

    def __init__(self, samples: Samples):
        self.samples = samples

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, idx: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        return self.samples.batch(torch.as_tensor(idx))


class Batches:
    """Yields (x, y) batches of a split, on the device, in the (seed, epoch) order."""

    def __init__(
        self,
        data: Samples,
        batch_size: int,
        device: torch.device,
        resident: bool,
        num_workers: int = 0,
    ):
        self.batch_size, self.device, self.resident = batch_size, device, resident
        self.num_workers = num_workers
        self.data = data.to(device) if resident else data

    def __len__(self) -> int:
        return -(-len(self.data) // self.batch_size)

    def __call__(self, order: torch.Tensor) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        if self.resident:
            order = order.to(self.device)
            for start in range(0, len(order), self.batch_size):
                yield self.data.batch(order[start : start + self.batch_size])
            return
        loader = torch.utils.data.DataLoader(
            _BatchesOf(self.data),
            batch_size=None,  # each item is a batch already
            sampler=torch.utils.data.BatchSampler(order.tolist(), self.batch_size, False),
            num_workers=self.num_workers,
            pin_memory=self.device.type == "cuda",
            # its own generator, so the loader never draws from the global RNG (dropout's)
            generator=torch.Generator().manual_seed(0),
        )
        for xb, yb in loader:
            yield (xb.to(self.device, non_blocking=True), yb.to(self.device, non_blocking=True))


# ------------------------------------------------------------------------------ loop


def make_optimizer(model: nn.Module, training: Mapping[str, Any]) -> torch.optim.Optimizer:
    cls = torch.optim.AdamW if training["optimizer"] == "adamw" else torch.optim.Adam
    return cls(model.parameters(), lr=training["lr"], weight_decay=training["weight_decay"])


def make_scheduler(optimizer: torch.optim.Optimizer, training: Mapping[str, Any]) -> Any:
    if training["scheduler"] == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=training["epochs"])
    if training["scheduler"] == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer, factor=0.5, patience=max(1, training["patience"] // 2)
        )
    return None


def evaluate_loss(
    model: nn.Module, batches: Batches, loss_fn: Loss, amp: torch.dtype | None
) -> float:
    model.eval()
    total, count = 0.0, 0
    with (
        torch.no_grad(),
        torch.autocast(batches.device.type, dtype=amp or torch.bfloat16, enabled=amp is not None),
    ):
        for xb, yb in batches(torch.arange(len(batches.data))):
            total += float(loss_fn(model(xb), yb)) * len(xb)
            count += len(xb)
    return total / count


def train_epoch(
    model: nn.Module,
    batches: Batches,
    order: torch.Tensor,
    optimizer: torch.optim.Optimizer,
    loss_fn: Loss,
    amp: torch.dtype | None,
    grad_clip: float,
    desc: str,
) -> float:
    """One pass over the training batches in ``order``; the mean training loss."""
    model.train()
    total, count = 0.0, 0
    bar = tqdm(
        batches(order), total=len(batches), desc=desc, leave=False, mininterval=1.0, disable=None
    )
    for xb, yb in bar:
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(
            batches.device.type, dtype=amp or torch.bfloat16, enabled=amp is not None
        ):
            loss = loss_fn(model(xb), yb)
        loss.backward()
        if grad_clip:
            nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        optimizer.step()
        total += float(loss.detach()) * len(xb)
        count += len(xb)
    return total / count


@dataclass
class TrainState:
    """Where training stands after an epoch: what a checkpoint holds besides the model,
    optimizer, scheduler and RNG, so a resumed run continues exactly."""

    best_state: dict[str, Any]
    epoch: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)
    best_val: float = float("inf")
    best_epoch: int = 0
    bad_epochs: int = 0
    epoch_seconds: list[float] = field(default_factory=list)

    def record(self, row: dict[str, Any], seconds: float, model: nn.Module) -> None:
        """Log an epoch; keep the weights when validation improved (early stopping)."""
        self.epoch = row["epoch"]
        self.history.append(row)
        self.epoch_seconds.append(seconds)
        if row["val_loss"] < self.best_val:
            self.best_val, self.best_epoch, self.bad_epochs = row["val_loss"], row["epoch"], 0
            self.best_state = copy.deepcopy(model.state_dict())
        else:
            self.bad_epochs += 1


@dataclass
class TrainResult:
    model: nn.Module
    history: pd.DataFrame
    best_epoch: int
    resumed_from: int
    samples_per_second: float
    epoch_seconds: list[float]


def _save_checkpoint(
    path: Path,
    run_hash: str,
    state: TrainState,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
) -> None:
    payload = {
        "run_hash": run_hash,
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict() if scheduler is not None else None,
        "torch_rng": torch.get_rng_state(),
        **{f.name: getattr(state, f.name) for f in fields(state)},
    }
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def load_checkpoint(path: Path, device: torch.device | str = "cpu") -> dict[str, Any] | None:
    """A checkpoint's state, or None when there is none or it is unreadable.

    ``weights_only=True`` unpickles tensors and plain containers only, so a planted or
    corrupt file can never run code; it is ignored and training starts afresh.
    """
    if not path.exists():
        return None
    try:
        return torch.load(path, map_location=device, weights_only=True)
    except Exception as err:  # UnpicklingError, truncated file, foreign format
        log.warning("ignoring unreadable checkpoint %s (%s: %s)", path, type(err).__name__, err)
        return None


def _resume(
    path: Path,
    run_hash: str,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    device: torch.device,
) -> TrainState:
    """The state to continue from: the checkpoint's when it belongs to this run."""
    fresh = TrainState(best_state=copy.deepcopy(model.state_dict()))
    ckpt = load_checkpoint(path, device)
    if ckpt is None:
        return fresh
    if ckpt.get("run_hash") != run_hash:
        log.warning("ignoring %s: it belongs to another configuration", path)
        return fresh
    model.load_state_dict(ckpt["model"])
    optimizer.load_state_dict(ckpt["optimizer"])
    if scheduler is not None:
        scheduler.load_state_dict(ckpt["scheduler"])
    torch.set_rng_state(ckpt["torch_rng"])
    log.info("resuming from the checkpoint of epoch %d", ckpt["epoch"])
    return TrainState(**{f.name: ckpt[f.name] for f in fields(TrainState)})


def fit(
    model: nn.Module,
    train_batches: Batches,
    val_batches: Batches,
    loss_fn: Loss,
    training: Mapping[str, Any],
    seed: int,
    checkpoint_path: Path,
    run_hash: str,
    tracker: RunLogger | None = None,
) -> TrainResult:
    """Epochs until ``training.epochs`` or early stopping, checkpointing after each, so
    that a killed run resumes where it stopped; ends with the best epoch's weights."""
    optimizer = make_optimizer(model, training)
    scheduler = make_scheduler(optimizer, training)
    amp = resolve_amp(training["amp"], train_batches.device)
    state = _resume(checkpoint_path, run_hash, model, optimizer, scheduler, train_batches.device)
    resumed_from = state.epoch
    samples, train_seconds = 0, 0.0
    for epoch in range(state.epoch + 1, training["epochs"] + 1):
        if state.bad_epochs >= training["patience"]:
            break
        started = time.perf_counter()
        lr = optimizer.param_groups[0]["lr"]
        train_loss = train_epoch(
            model,
            train_batches,
            epoch_order(len(train_batches.data), seed, epoch),
            optimizer,
            loss_fn,
            amp,
            training["grad_clip"],
            f"epoch {epoch}/{training['epochs']}",
        )
        val_loss = evaluate_loss(model, val_batches, loss_fn, amp)
        if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
            scheduler.step(val_loss)
        elif scheduler is not None:
            scheduler.step()
        seconds = time.perf_counter() - started
        samples += len(train_batches.data)
        train_seconds += seconds
        row = {"epoch": epoch, "train_loss": train_loss, "val_loss": val_loss, "lr": lr}
        state.record(row, seconds, model)
        log.info(
            "epoch %d/%d  train_loss %.4f  val_loss %.4f  lr %.2e  (%.1fs)%s",
            epoch,
            training["epochs"],
            train_loss,
            val_loss,
            lr,
            seconds,
            "  early stop" if state.bad_epochs >= training["patience"] else "",
        )
        if tracker is not None:
            tracker.metrics(
                {**{k: row[k] for k in ("train_loss", "val_loss", "lr")}, "epoch_seconds": seconds},
                step=epoch,
            )
        _save_checkpoint(checkpoint_path, run_hash, state, model, optimizer, scheduler)

    model.load_state_dict(state.best_state)  # early stopping restores the best weights
    return TrainResult(
        model=model,
        history=pd.DataFrame(state.history, columns=HISTORY_COLUMNS),
        best_epoch=state.best_epoch,
        resumed_from=resumed_from,
        samples_per_second=samples / train_seconds if train_seconds else float("nan"),
        epoch_seconds=state.epoch_seconds,
    )


def train_model(
    prepared: xr.Dataset,
    variant: Mapping[str, Any],
    seed: int,
    out_dir: str | Path,
    run_hash: str,
    tracker: RunLogger | None = None,
) -> TrainResult:
    """Train one (variant, seed) of the prepared data's task; resume from
    ``out_dir/checkpoint.pt`` if it belongs to this run."""
    training = variant["training"]
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    seed_everything(seed, training["deterministic"])
    device = resolve_device(training["device"])
    task = prepared_task(prepared)

    model = task.model(variant["model"], prepared).to(device)
    target = task.target(variant["model"])
    train_data, val_data = (
        task.samples(prepared, "train", target),
        task.samples(prepared, "val", target),
    )
    nbytes = train_data.nbytes + val_data.nbytes
    policy = training["gpu_resident"]
    resident = policy == "always" or (policy == "auto" and fits_on_device(nbytes, device))
    workers = training["num_workers"] if not resident else 0
    train_batches = Batches(train_data, training["batch_size"], device, resident, workers)
    val_batches = Batches(val_data, training["batch_size"], device, resident, workers)
    log.info(
        "training %s seed %d on %s (amp=%s, %s path, %d train / %d val samples)",
        variant["base"],
        seed,
        device,
        resolve_amp(training["amp"], device),
        "device-resident" if resident else "DataLoader",
        len(train_data),
        len(val_data),
    )
    loss_fn = task.loss(training["loss"], prepared)
    return fit(
        model,
        train_batches,
        val_batches,
        loss_fn,
        training,
        seed,
        out_dir / CHECKPOINT,
        run_hash,
        tracker,
    )


def save_outputs(result: TrainResult, model_path: str | Path, history_path: str | Path) -> None:
    """model.pt (a state_dict; load with weights_only=True) and history.csv, atomically."""
    with atomic_path(model_path) as tmp:
        torch.save({k: v.cpu() for k, v in result.model.state_dict().items()}, tmp)
    write_text(result.history.to_csv(index=False), history_path)
