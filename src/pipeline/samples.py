"""What training draws its batches from: samples as stored arrays, or windows cut on the fly.

Map tasks store one input array per sample in the prepared Zarr store (``StoreSamples``):
training either loads a split into memory once (``ArraySamples``) or, when it does not
fit, reads each piece of an epoch from the store as it goes, in DataLoader workers. Both
know each sample's Zarr chunk, so the epoch order (pipeline.train.epoch_groups) is the
same whichever is used. Series tasks store the
series themselves and cut each sample's window when its batch is drawn (``Windows``),
as neuralhydrology does: (samples x history) arrays are never materialised, so memory
grows with the length of the record, not with the number of windows. Both give a batch
as one gather over a tensor of indices, on the host or on the device alike, so the
device-resident path and the DataLoader path see the same batches in the same order.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
import xarray as xr
import zarr
from zarr.core.buffer import default_buffer_prototype


class Samples(Protocol):
    """A split's samples: ``len``, ``to(device)``, ``nbytes``, ``batch(indices)``, each
    sample's storage ``chunk`` (None: no chunks, any order is as cheap) and ``load()``
    (the samples in memory: themselves, unless they are read from a store)."""

    chunk: np.ndarray | None

    def __len__(self) -> int: ...

    def to(self, device: torch.device) -> Samples: ...

    @property
    def nbytes(self) -> int: ...

    def batch(self, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]: ...

    def load(self) -> Samples: ...


class _TensorFields:
    """``to(device)`` and ``nbytes`` over a dataclass's tensor fields."""

    def _tensors(self) -> dict[str, torch.Tensor]:
        return {
            f.name: v for f in fields(self) if isinstance(v := getattr(self, f.name), torch.Tensor)
        }

    def to(self, device: torch.device):
        return replace(self, **{k: v.to(device) for k, v in self._tensors().items()})

    def load(self):
        return self

    @property
    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in self._tensors().values())


@dataclass
class ArraySamples(_TensorFields):
    """Inputs and targets per sample, in memory."""

    x: torch.Tensor
    y: torch.Tensor
    chunk: np.ndarray | None = None  # each sample's chunk in the store it was read from

    def __len__(self) -> int:
        return len(self.x)

    def batch(self, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.x[idx], self.y[idx]


def _as_tensor(values: np.ndarray | torch.Tensor) -> torch.Tensor:
    """float32 inputs and values; int64 class labels, for the losses that take them
    (no copy when the dtype is already right)."""
    tensor = torch.as_tensor(values)
    return tensor.to(torch.float32 if tensor.is_floating_point() else torch.int64)


#: Chunks read by one slice of the store: zarr decodes them concurrently, and the slice
#: taken before rows are picked from it stays small beside a group.
RUN_CHUNKS = 8


def read_rows(array: Any, rows: np.ndarray) -> torch.Tensor:
    """Rows ``rows`` (ascending) of a Zarr array chunked along its first axis.

    Runs of whole chunks are decompressed straight into the result; runs holding rows
    of other splits go through one scratch buffer, from which the rows are picked. Both
    are several times faster than zarr's integer-array selection, or than slices that
    zarr allocates afresh. In a DataLoader worker the result is made in shared memory,
    which is how it reaches the training process (torch would otherwise copy it there).
    """
    size = array.chunks[0]
    dtype = torch.from_numpy(np.empty(0, dtype=array.dtype)).dtype
    tensor = torch.empty((len(rows), *array.shape[1:]), dtype=dtype)
    if torch.utils.data.get_worker_info() is not None:
        tensor.share_memory_()
    out, scratch, done = tensor.numpy(), None, 0
    ids = np.unique(rows // size)
    for run in np.split(ids, np.flatnonzero(np.diff(ids) != 1) + 1):
        for first in run[::RUN_CHUNKS]:
            start = first * size
            stop = min(min(first + RUN_CHUNKS, run[-1] + 1) * size, array.shape[0])
            lo, hi = np.searchsorted(rows, [start, stop])
            if hi - lo == stop - start:  # every row of these chunks
                _read_into(array, start, stop, out[done : done + hi - lo])
            else:
                if scratch is None:
                    scratch = np.empty((RUN_CHUNKS * size, *array.shape[1:]), array.dtype)
                _read_into(array, start, stop, scratch[: stop - start])
                out[done : done + hi - lo] = scratch[rows[lo:hi] - start]
            done += hi - lo
    return tensor


def _read_into(array: Any, start: int, stop: int, out: np.ndarray) -> None:
    """Decompress rows ``start:stop`` of a Zarr array into ``out``."""
    buffer = default_buffer_prototype().nd_buffer.from_numpy_array(out)
    array.get_basic_selection(slice(start, stop), out=buffer)


class StoreSamples:
    """One split's ``x`` and target, read from the prepared Zarr store when a batch is drawn.

    ``read`` decompresses each Zarr chunk it touches once (``read_rows``); pipeline.train
    hands it whole groups of chunks, so an epoch decompresses each chunk once. The store
    is opened in the process that reads it (each DataLoader worker opens its own), never
    pickled.
    """

    def __init__(self, path: str | Path, rows: np.ndarray, target: str):
        self.path, self.rows, self.target = str(path), rows, target
        self._arrays: tuple[Any, Any] | None = None
        x, y = self.arrays()
        self.chunk = rows // x.chunks[0]
        label_bytes = 8 if np.issubdtype(y.dtype, np.integer) else 4  # as _as_tensor gives them
        self.sample_bytes = int(np.prod(x.shape[1:])) * 4 + int(np.prod(y.shape[1:])) * label_bytes

    def arrays(self) -> tuple[Any, Any]:
        if self._arrays is None:
            group = zarr.open_group(self.path, mode="r")
            self._arrays = (group["x"], group[self.target])
        return self._arrays

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_arrays": None}

    def __len__(self) -> int:
        return len(self.rows)

    def to(self, device: torch.device) -> StoreSamples:
        return self  # batches move to the device as they are drawn

    @property
    def nbytes(self) -> int:
        """What the split takes in memory once loaded."""
        return len(self) * self.sample_bytes

    def read(self, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """The rows ``idx`` as stored, and where each asked row is among them:
        ``x[take]`` is the batch (``take`` None: already in the order asked). Putting the
        rows in order is left to whoever slices batches from them, so a group is never
        copied whole to reorder it."""
        rows = self.rows[np.asarray(idx)]
        take = None
        if not np.all(rows[1:] > rows[:-1]):
            order = np.argsort(rows)
            rows, take = rows[order], torch.as_tensor(np.argsort(order))
        x, y = (_as_tensor(read_rows(a, rows)) for a in self.arrays())
        return x, y, take

    def batch(self, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x, y, take = self.read(idx)
        return (x, y) if take is None else (x[take], y[take])

    def load(self) -> ArraySamples:
        x, y = self.batch(torch.arange(len(self)))
        return ArraySamples(x, y, self.chunk)


def split_indices(prepared: xr.Dataset, split: str = "test") -> np.ndarray:
    """Indices of the samples of ``split``."""
    return np.flatnonzero(prepared["split"].values == split)


def array_samples(ds: xr.Dataset, split: str, target: str) -> StoreSamples:
    """The samples of one split of a prepared store with an ``x`` per sample (as
    pipeline.prepare.open_prepared opens it: it knows its path)."""
    rows = split_indices(ds, split)
    if len(rows) == 0:
        raise ValueError(f"the prepared data has no '{split}' samples")
    return StoreSamples(ds.encoding["source"], rows, target)


@dataclass
class Windows(_TensorFields):
    """Samples cut on the fly from per-entity series (basins, stations).

    Sample i is entity ``entity[i]``'s ``history`` steps of ``inputs`` ending at step
    ``end[i]``, with the entity's ``statics`` repeated at every step (Kratzert et al.
    2019, HESS 23, 5089), and its ``targets`` at ``end[i] + leads``. Where ``per_entity``
    is given, its row for the entity is appended to the targets: a value the loss needs
    per sample, such as the basin's train-period target std of the NSE* loss.
    """

    inputs: torch.Tensor  # (entity, time, feature)
    statics: torch.Tensor  # (entity, static); zero columns when there are none
    targets: torch.Tensor  # (entity, time)
    entity: torch.Tensor  # (sample,) int64
    end: torch.Tensor  # (sample,) int64
    leads: torch.Tensor  # (lead,) int64
    history: int
    per_entity: torch.Tensor | None = None  # (entity, k)
    chunk = None  # held in memory whole: any order is as cheap

    def __len__(self) -> int:
        return len(self.entity)

    def batch(self, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        e, t = self.entity[idx], self.end[idx]
        steps = t[:, None] + torch.arange(1 - self.history, 1, device=t.device)
        x = self.inputs[e[:, None], steps]
        if self.statics.shape[1]:
            x = torch.cat([x, self.statics[e, None, :].expand(-1, self.history, -1)], dim=-1)
        y = self.targets[e[:, None], t[:, None] + self.leads]
        if self.per_entity is not None:
            y = torch.cat([y, self.per_entity[e]], dim=-1)
        return x, y


def split_inputs(prepared: xr.Dataset, split: str = "test") -> np.ndarray:
    """The inputs ``x`` of one split, read from the store (and only that split)."""
    return prepared["x"].isel(sample=split_indices(prepared, split)).values


def input_batches(prepared: xr.Dataset, size: int, split: str = "test") -> Iterator[torch.Tensor]:
    """The inputs of one split, ``size`` samples at a time, each read from the store
    when it is reached: predicting never holds more than one batch of inputs."""
    x = prepared["x"].isel(sample=split_indices(prepared, split))
    for start in range(0, x.sizes["sample"], size):
        yield torch.as_tensor(x[start : start + size].values)
