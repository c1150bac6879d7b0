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

import contextlib
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

from pipeline import distributed
from pipeline.io import atomic_path, write_text
from pipeline.memory import available_memory
from pipeline.samples import Samples, StoreSamples
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


def chunks_per_group(samples: Samples, buffer_bytes: int) -> int:
    """How many storage chunks one group of an epoch holds: as many as fill the
    shuffle buffer (at least one)."""
    if samples.chunk is None or len(samples) == 0:
        return 1
    chunk_bytes = np.bincount(samples.chunk).max() * samples.nbytes / len(samples)
    return max(1, int(buffer_bytes // chunk_bytes))


def epoch_groups(samples: Samples, per_group: int, seed: int, epoch: int) -> list[torch.Tensor]:
    """The order of one epoch as groups of samples read together; a function of (seed,
    epoch) and the storage chunks only, so memory or store, resumed or not, and any
    number of workers see the same batches.

    When all chunks fit one group (or the samples are not chunked) it is a full
    permutation. Otherwise it is a shuffle buffer: the chunks are permuted and dealt into
    groups of ``per_group``, and each group's samples permuted, so an epoch reads every
    chunk once and holds one group at a time.
    """
    if samples.chunk is None or len(np.unique(samples.chunk)) <= per_group:
        return [epoch_order(len(samples), seed, epoch)]
    generator = torch.Generator().manual_seed(seed * 100_003 + epoch)
    ids = np.unique(samples.chunk)
    rank = np.empty(len(ids), dtype=np.int64)
    rank[torch.randperm(len(ids), generator=generator).numpy()] = np.arange(len(ids))
    group = rank[np.searchsorted(ids, samples.chunk)] // per_group
    members = np.split(np.argsort(group, kind="stable"), np.cumsum(np.bincount(group))[:-1])
    return [torch.as_tensor(m)[torch.randperm(len(m), generator=generator)] for m in members]


def in_order_groups(samples: Samples, per_group: int) -> list[torch.Tensor]:
    """Every sample once in stored order (validation), cut where groups of chunks end."""
    order = torch.arange(len(samples))
    if samples.chunk is None:
        return [order]
    _, first = np.unique(samples.chunk, return_index=True)
    return list(torch.tensor_split(order, torch.as_tensor(np.sort(first)[per_group::per_group])))


def shard(groups: list[torch.Tensor], batch_size: int, rank: int, world: int) -> list[torch.Tensor]:
    """Rank ``rank``'s part of every global batch of ``batch_size`` in ``groups``: a
    contiguous slice of each (sizes differ by at most one), group structure kept, so
    batching the result by ``batch_size // world`` gives this rank's shards in step with
    the others. A last batch smaller than ``world`` is dropped: every rank must step."""
    if world == 1:
        return groups
    flat_len = sum(len(g) for g in groups)
    position = torch.arange(flat_len)
    full = flat_len - flat_len % batch_size
    size = torch.where(position < full, batch_size, flat_len - full)
    owner = (position % batch_size) * world // size
    keep = (owner == rank) & (size >= world)
    return [g[k] for g, k in zip(groups, keep.split([len(g) for g in groups]), strict=True)]


# ------------------------------------------------------------------------------ data


def fits_on_device(nbytes: int, device: torch.device, fraction: float = 0.5) -> bool:
    if device.type != "cuda":
        return True  # already in host memory: slicing it is the fastest path
    free, _ = torch.cuda.mem_get_info(device)
    return nbytes < fraction * free


#: A piece of an epoch: samples, targets, and which of them in which order (None: all,
#: as they are). Store reads come back in stored order with ``take``; see StoreSamples.read.
Piece = tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]


class _Pieces(torch.utils.data.Dataset):
    """A DataLoader source whose item is a piece of an epoch: a whole group of chunks read
    from the store, or a batch gathered from memory as the device-resident path does."""

    def __init__(self, samples: Samples):
        self.samples = samples

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, idx: torch.Tensor) -> Piece:
        if isinstance(self.samples, StoreSamples):
            return self.samples.read(idx)
        return (*self.samples.batch(idx), None)


def _init_worker(worker_id: int) -> None:
    """A DataLoader worker dies with the training process (a killed job leaves no reader
    behind: one blocked in a store read outlived it) and decompresses on one thread
    (Blosc and Zarr would take every core): the training process needs the others, and
    one core keeps up with it."""
    import numcodecs.blosc
    import zarr

    distributed.die_with_parent()
    numcodecs.blosc.set_nthreads(1)
    zarr.config.set({"threading.max_workers": 1})


def _piece_len(piece: Piece) -> int:
    return len(piece[0]) if piece[2] is None else len(piece[2])


def _part(piece: Piece, start: int, end: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Samples ``start:end`` of a piece, in the piece's order."""
    x, y, take = piece
    return (
        (x[start:end], y[start:end]) if take is None else (x[take[start:end]], y[take[start:end]])
    )


def rebatch(
    pieces: Iterator[Piece], batch_size: int
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Consecutive batches of ``batch_size`` from pieces of any length (the last one
    shorter): what the pieces' concatenation would give, gathering only batch by batch."""
    carry: list[tuple[torch.Tensor, torch.Tensor]] = []
    for piece in pieces:
        n, start = _piece_len(piece), 0
        if carry:  # the batch straddling pieces
            need = batch_size - sum(len(c[0]) for c in carry)
            start = min(n, need)
            carry.append(_part(piece, 0, start))
            if start < need:
                continue
            yield torch.cat([c[0] for c in carry]), torch.cat([c[1] for c in carry])
            carry = []
        end = start + (n - start) // batch_size * batch_size
        for a in range(start, end, batch_size):
            yield _part(piece, a, a + batch_size)
        if end < n:
            carry = [_part(piece, end, n)]
    if carry:
        yield torch.cat([c[0] for c in carry]), torch.cat([c[1] for c in carry])


class Batches:
    """Yields (x, y) batches of a split, on the device, in the order of ``epoch_groups``.

    Three paths, one sequence of batches: samples resident on the device are gathered
    there; samples in host memory stream batch by batch through a DataLoader; samples
    in a store are read a whole group of chunks at a time by DataLoader workers (each
    chunk decompressed once an epoch) and cut into batches as they arrive. Under DDP
    each process yields its shard of every batch (``shard``).
    """

    def __init__(
        self,
        data: Samples,
        batch_size: int,
        device: torch.device,
        resident: bool,
        num_workers: int = 0,
        buffer_bytes: int = 256 * 2**20,
    ):
        self.batch_size, self.device, self.resident = batch_size, device, resident
        self.num_workers = num_workers
        self.data = data.to(device) if resident else data
        self.per_group = chunks_per_group(data, buffer_bytes)
        self.rank, self.world = distributed.rank(), distributed.world_size()
        self.local_batch = batch_size // self.world

    def __len__(self) -> int:
        return -(-len(self.data) // self.batch_size)

    def share(self, step: int, local: int) -> float:
        """world x this rank's fraction of global batch ``step``: 1 but for an uneven last
        batch, where it makes DDP's mean of the ranks' gradients the whole batch's."""
        size = min(self.batch_size, len(self.data) - step * self.batch_size)
        return local * self.world / size

    def shuffled(self, seed: int, epoch: int) -> list[torch.Tensor]:
        """The order of training epoch ``epoch``, as groups (pass them to ``self``)."""
        return epoch_groups(self.data, self.per_group, seed, epoch)

    def sequential(self) -> list[torch.Tensor]:
        """Every sample once in stored order, as groups (pass them to ``self``)."""
        return in_order_groups(self.data, self.per_group)

    def __call__(self, groups: list[torch.Tensor]) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        groups = shard(groups, self.batch_size, self.rank, self.world)
        if self.resident:
            order = torch.cat(groups).to(self.device)
            for start in range(0, len(order), self.local_batch):
                yield self.data.batch(order[start : start + self.local_batch])
            return
        whole_groups = isinstance(self.data, StoreSamples)
        pieces = [
            piece
            for group in groups
            for piece in ([group] if whole_groups else group.split(self.local_batch))
        ]
        loader = torch.utils.data.DataLoader(
            _Pieces(self.data),
            batch_size=None,  # each item is a piece already
            sampler=pieces,
            num_workers=self.num_workers,
            pin_memory=self.device.type == "cuda",
            # one group in flight per worker: memory stays at (workers + 1) groups
            prefetch_factor=1 if whole_groups and self.num_workers else None,
            worker_init_fn=_init_worker,
            # its own generator, so the loader never draws from the global RNG (dropout's)
            generator=torch.Generator().manual_seed(0),
        )
        for xb, yb in rebatch(iter(loader), self.local_batch):
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
        for xb, yb in batches(batches.sequential()):
            total += float(loss_fn(model(xb), yb)) * len(xb)
            count += len(xb)
    total, count = distributed.all_sum(total, count)  # every rank: the same value
    return total / count


def train_epoch(
    model: nn.Module,
    batches: Batches,
    order: list[torch.Tensor],
    optimizer: torch.optim.Optimizer,
    loss_fn: Loss,
    amp: torch.dtype | None,
    grad_clip: float,
    desc: str,
) -> float:
    """One pass over the training batches in ``order`` (groups of samples, as
    ``Batches.shuffled`` gives them); the mean training loss."""
    model.train()
    # summed on the device, read once an epoch: no host sync per step
    total, count = torch.zeros((), dtype=torch.float64, device=batches.device), 0
    bar = tqdm(
        batches(order), total=len(batches), desc=desc, leave=False, mininterval=1.0, disable=None
    )
    for step, (xb, yb) in enumerate(bar):
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(batches.device.type, amp) if amp else contextlib.nullcontext():
            loss = loss_fn(model(xb), yb)
        if batches.world > 1:  # DDP averages over ranks; weigh by this rank's share
            (loss * batches.share(step, len(xb))).backward()
        else:
            loss.backward()
        if grad_clip:
            nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        optimizer.step()
        total += loss.detach().double() * len(xb)
        count += len(xb)
    total, count = distributed.all_sum(float(total), count)
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


def _save_checkpoint(  # every rank calls it; rank 0 writes
    path: Path,
    run_hash: str,
    state: TrainState,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
) -> None:
    rng_states = distributed.gather(torch.get_rng_state())  # each rank's dropout stream
    if not distributed.is_main():
        return
    payload = {
        "run_hash": run_hash,
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict() if scheduler is not None else None,
        "torch_rng": rng_states,
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
    rng = ckpt["torch_rng"]  # one state per rank; a single tensor before DDP existed
    torch.set_rng_state(rng if isinstance(rng, torch.Tensor) else rng[distributed.rank()])
    log.info("resuming from the checkpoint of epoch %d", ckpt["epoch"])
    return TrainState(**{f.name: ckpt[f.name] for f in fields(TrainState)})


def data_parallel(model: nn.Module, device: torch.device) -> nn.Module:
    """``model`` wrapped for DDP when this is one of several processes, else itself. On
    CUDA, batch norm is synchronised across the processes, so statistics are those of
    the global batch; gloo (CPU) has no SyncBatchNorm, so there they are per process."""
    if distributed.world_size() == 1:
        return model
    if device.type == "cuda":
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
        return nn.parallel.DistributedDataParallel(model, device_ids=[torch.cuda.current_device()])
    return nn.parallel.DistributedDataParallel(model)


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
    net = data_parallel(model, train_batches.device)
    samples, train_seconds = 0, 0.0
    for epoch in range(state.epoch + 1, training["epochs"] + 1):
        if state.bad_epochs >= training["patience"]:
            break
        started = time.perf_counter()
        lr = optimizer.param_groups[0]["lr"]
        train_loss = train_epoch(
            net,
            train_batches,
            train_batches.shuffled(seed, epoch),
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


def load_samples(splits: list[Samples], policy: str, fraction: float = 0.5) -> list[Samples]:
    """The splits in memory (``memory``), left in their store (``lazy``), or, for
    ``auto``, in memory when together they take less than ``fraction`` of the memory this
    job may still take (pipeline.memory: a cgroup limit counts)."""
    nbytes = sum(s.nbytes for s in splits)
    if policy == "lazy" or (policy == "auto" and nbytes > fraction * available_memory()):
        return splits
    return [s.load() for s in splits]


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
    if distributed.world_size() > 1:  # the same initial weights, a dropout stream per rank
        torch.manual_seed(seed * 100_003 + distributed.rank())
    target = task.target(variant["model"])
    train_data, val_data = load_samples(
        [task.samples(prepared, split, target) for split in ("train", "val")], training["data"]
    )
    nbytes = train_data.nbytes + val_data.nbytes
    policy = training["gpu_resident"]
    resident = policy == "always" or (policy == "auto" and fits_on_device(nbytes, device))
    resident = resident and not isinstance(train_data, StoreSamples)
    workers = training["num_workers"] if not resident else 0
    buffer = int(training["shuffle_buffer_mb"] * 2**20)
    train_batches, val_batches = (
        Batches(data, training["batch_size"], device, resident, workers, buffer)
        for data in (train_data, val_data)
    )
    log.info(
        "training %s seed %d on %s (amp=%s, %s, %d train / %d val samples)",
        variant["base"],
        seed,
        device,
        resolve_amp(training["amp"], device),
        "device-resident"
        if resident
        else "read from the store as it goes"
        if isinstance(train_data, StoreSamples)
        else "DataLoader from memory",
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
