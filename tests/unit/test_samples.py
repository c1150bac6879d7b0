"""Samples training draws batches from: stored arrays, or windows cut from series on the fly."""

from __future__ import annotations

import numpy as np
import torch

from pipeline.samples import ArraySamples, Windows
from pipeline.train import Batches, epoch_order

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
        resident = list(Batches(samples, 8, torch.device("cpu"), resident=True)(order))
        streamed = list(Batches(samples, 8, torch.device("cpu"), resident=False)(order))
        assert len(resident) == len(streamed) == -(-len(samples) // 8)
        for (xa, ya), (xb, yb) in zip(resident, streamed, strict=True):
            assert torch.equal(xa, xb) and torch.equal(ya, yb)
