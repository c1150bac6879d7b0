"""Samples training draws batches from: stored arrays, or windows cut from series on the fly."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import xarray as xr

from pipeline.io import write_zarr
from pipeline.prepare import open_prepared
from pipeline.samples import ArraySamples, Windows, array_samples
from pipeline.train import Batches, epoch_groups, epoch_order, in_order_groups, rebatch

HISTORY = 5
LEADS = [0, 2]


def _windows(n_entities: int = 3, n_steps: int = 40, per_entity: bool = True) -> Windows:
    rng = np.random.default_rng(0)
    inputs = torch.as_tensor(rng.normal(size=(n_entities, n_steps, 2)), dtype=torch.float32)
    statics = torch.as_tensor(rng.normal(size=(n_entities, 3)), dtype=torch.float32)
    targets = torch.as_tensor(rng.normal(size=(n_entities, n_steps)), dtype=torch.float32)
    ends = np.arange(HISTORY - 1, n_steps - max(LEADS))
    entity = torch.as_tensor(np.repeat(np.arange(n_entities), len(ends)))
    end = torch.as_tensor(np.tile(ends, n_entities))
    return Windows(
        inputs,
        statics,
        targets,
        entity,
        end,
        torch.as_tensor(LEADS),
        HISTORY,
        torch.arange(n_entities, dtype=torch.float32)[:, None] + 10 if per_entity else None,
    )


def test_a_window_is_the_history_with_statics_and_the_targets_at_the_leads() -> None:
    w = _windows()
    idx = torch.tensor([0, 7, len(w) - 1, 40])
    x, y = w.batch(idx)
    assert x.shape == (4, HISTORY, 2 + 3) and y.shape == (4, len(LEADS) + 1)
    for row, i in enumerate(idx.tolist()):
        e, t = int(w.entity[i]), int(w.end[i])
        expected_x = torch.cat([w.inputs[e, t - HISTORY + 1 : t + 1], w.statics[e].expand(5, 3)], 1)
        assert torch.equal(x[row], expected_x)
        assert torch.equal(y[row, :-1], w.targets[e, [t + lead for lead in LEADS]])
        assert y[row, -1] == 10 + e  # the entity's value rides beside its targets


def test_windows_without_statics_or_per_entity_values() -> None:
    w = _windows(per_entity=False)
    w = Windows(w.inputs, w.statics[:, :0], w.targets, w.entity, w.end, w.leads, HISTORY)
    x, y = w.batch(torch.arange(4))
    assert x.shape == (4, HISTORY, 2) and y.shape == (4, len(LEADS))


def test_windows_store_two_integers_per_window_beside_the_series() -> None:
    w = _windows(n_steps=400)
    series = sum(t.nbytes for t in (w.inputs, w.statics, w.targets, w.per_entity, w.leads))
    assert w.nbytes == series + 2 * 8 * len(w)
    assert w.nbytes < len(w) * HISTORY * (2 + 3) * 4 / 2  # a materialised copy: over twice


def test_resident_and_dataloader_paths_give_the_same_batches() -> None:
    for samples in (_windows(), ArraySamples(torch.randn(30, 4, 2), torch.randn(30, 3))):
        order = epoch_order(len(samples), seed=1, epoch=2)
        resident = list(Batches(samples, 8, torch.device("cpu"), resident=True)([order]))
        streamed = list(Batches(samples, 8, torch.device("cpu"), resident=False)([order]))
        assert len(resident) == len(streamed) == -(-len(samples) // 8)
        for (xa, ya), (xb, yb) in zip(resident, streamed, strict=True):
            assert torch.equal(xa, xb) and torch.equal(ya, yb)


def _store(tmp_path: Path, n: int = 40, chunk: int = 4) -> Path:
    """A prepared-like store: x (sample, 3, 2) and integer labels, chunked by ``chunk``."""
    rng = np.random.default_rng(1)
    split = np.where(np.arange(n) % 5 == 0, "val", "train")
    ds = xr.Dataset(
        {
            "x": (("sample", "a", "b"), rng.normal(size=(n, 3, 2)).astype(np.float32)),
            "y": (("sample",), rng.integers(0, 3, n).astype(np.int8)),
            "split": ("sample", split),
        },
        attrs={"json_attrs": ""},
    )
    path = tmp_path / "prepared.zarr"
    write_zarr(ds.chunk({"sample": chunk}), path)
    return path


def test_store_samples_read_the_rows_asked_for_in_the_order_asked(tmp_path: Path) -> None:
    prepared = open_prepared(_store(tmp_path))
    lazy = array_samples(prepared, "train", "y")
    rows = np.flatnonzero(prepared["split"].values == "train")
    idx = torch.tensor([5, 0, 17, 3])
    x, y = lazy.batch(idx)
    stored = xr.open_zarr(tmp_path / "prepared.zarr")
    assert torch.equal(x, torch.as_tensor(stored["x"].values[rows[idx]]))
    assert y.dtype == torch.int64 and torch.equal(y, torch.as_tensor(stored["y"].values[rows[idx]]))
    assert "x" not in prepared.data_vars or not isinstance(prepared["x"].data, np.ndarray)
    loaded = lazy.load()
    assert lazy.nbytes == loaded.nbytes and np.array_equal(lazy.chunk, rows // 4)
    assert torch.equal(loaded.x[idx], x) and np.array_equal(loaded.chunk, lazy.chunk)


def test_epoch_groups_shuffle_whole_chunks_within_the_buffer() -> None:
    samples = ArraySamples(torch.zeros(40, 1), torch.zeros(40), chunk=np.arange(40) // 4)
    one = epoch_groups(samples, per_group=10, seed=3, epoch=2)  # every chunk fits one group
    assert len(one) == 1 and torch.equal(one[0], epoch_order(40, 3, 2))
    groups = epoch_groups(samples, per_group=3, seed=3, epoch=2)
    assert [len(g) for g in groups] == [12, 12, 12, 4]
    assert sorted(torch.cat(groups).tolist()) == list(range(40))
    for group in groups:  # whole chunks, in an order that is not the stored one
        chunks = set((group // 4).tolist())
        assert len(group) == 4 * len(chunks) and group.tolist() != sorted(group.tolist())
    again = epoch_groups(samples, per_group=3, seed=3, epoch=2)
    assert all(torch.equal(a, b) for a, b in zip(groups, again, strict=True))
    later = epoch_groups(samples, per_group=3, seed=3, epoch=3)
    assert not torch.equal(torch.cat(groups), torch.cat(later))
    in_order = in_order_groups(samples, per_group=3)
    assert [g.tolist() for g in in_order] == [
        list(range(s, min(s + 12, 40))) for s in (0, 12, 24, 36)
    ]


@pytest.mark.parametrize("workers", [0, 2])
def test_memory_and_store_paths_give_the_same_batches(tmp_path: Path, workers: int) -> None:
    """Resident, streamed from memory, and read from the store a group at a time (with
    batches straddling groups) are one sequence of batches."""
    lazy = array_samples(open_prepared(_store(tmp_path)), "train", "y")
    cpu = torch.device("cpu")
    buffer = 3 * 4 * lazy.sample_bytes  # three chunks a group: 12 samples, batches of 5
    runs = [
        Batches(lazy.load(), 5, cpu, resident=True, buffer_bytes=buffer),
        Batches(lazy.load(), 5, cpu, resident=False, buffer_bytes=buffer),
        Batches(lazy, 5, cpu, resident=False, num_workers=workers, buffer_bytes=buffer),
    ]
    assert {b.per_group for b in runs} == {3}
    for order in (runs[0].shuffled(seed=1, epoch=4), runs[0].sequential()):
        assert len(order) == 4  # 32 train samples in 10 chunks of 4 rows
        first, *others = (list(b(order)) for b in runs)
        assert len(first) == -(-32 // 5)
        for other in others:
            for (xa, ya), (xb, yb) in zip(first, other, strict=True):
                assert torch.equal(xa, xb) and torch.equal(ya, yb)


def test_rebatch_cuts_pieces_of_any_length_into_the_batches_of_their_concatenation() -> None:
    x = torch.arange(13.0)[:, None]
    pieces = [(x[a:b], x[a:b, 0].long(), None) for a, b in ((0, 3), (3, 4), (4, 11), (11, 13))]
    backwards = torch.arange(6, -1, -1)  # a piece read in stored order, taken in reverse
    pieces[2] = (x[4:11].flip(0), x[4:11, 0].flip(0).long(), backwards)
    batches = list(rebatch(iter(pieces), 4))
    assert [b[0][:, 0].tolist() for b in batches] == [
        [0, 1, 2, 3],
        [4, 5, 6, 7],
        [8, 9, 10, 11],
        [12],
    ]
    assert all(torch.equal(bx[:, 0].long(), by) for bx, by in batches)
