"""What training draws its batches from: samples as stored arrays, or windows cut on the fly.

Map tasks store one input array per sample (``ArraySamples``). Series tasks store the
series themselves and cut each sample's window when its batch is drawn (``Windows``),
as neuralhydrology does: (samples x history) arrays are never materialised, so memory
grows with the length of the record, not with the number of windows. Both give a batch
as one gather over a tensor of indices, on the host or on the device alike, so the
device-resident path and the DataLoader path see the same batches in the same order.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Protocol

import numpy as np
import torch
import xarray as xr


class Samples(Protocol):
    """A split's samples: ``len``, ``to(device)``, ``nbytes`` and ``batch(indices)``."""

    def __len__(self) -> int: ...

    def to(self, device: torch.device) -> Samples: ...

    @property
    def nbytes(self) -> int: ...

    def batch(self, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]: ...


class _TensorFields:
    """``to(device)`` and ``nbytes`` over a dataclass's tensor fields."""

    def _tensors(self) -> dict[str, torch.Tensor]:
        return {
            f.name: v for f in fields(self) if isinstance(v := getattr(self, f.name), torch.Tensor)
        }

    def to(self, device: torch.device):
        return replace(self, **{k: v.to(device) for k, v in self._tensors().items()})

    @property
    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in self._tensors().values())


@dataclass
class ArraySamples(_TensorFields):
    """Inputs and targets stored per sample, as map tasks' prepared stores hold them."""

    x: torch.Tensor
    y: torch.Tensor

    def __len__(self) -> int:
        return len(self.x)

    def batch(self, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.x[idx], self.y[idx]


def array_samples(ds: xr.Dataset, split: str, target: str) -> ArraySamples:
    """Inputs (float32) and targets of one split of a store with an ``x`` per sample;
    targets keep their kind: float32 values, or int64 class labels for losses that
    take them."""
    index = np.flatnonzero(ds["split"].values == split)
    if len(index) == 0:
        raise ValueError(f"the prepared data has no '{split}' samples")
    x = torch.as_tensor(ds["x"].values[index], dtype=torch.float32)
    values = ds[target].values[index]
    dtype = torch.int64 if np.issubdtype(values.dtype, np.integer) else torch.float32
    return ArraySamples(x, torch.as_tensor(values, dtype=dtype))


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
