"""The task interface: everything that differs between kinds of study.

A task (forecast, segmentation, ...) owns how samples are built from harmonised fields,
what the network is trained against and with which loss, its output head, the baselines,
how forecasts are scored, the figures and the per-sample loss of permutation importance.
Its config checks live in a torch-free sibling module (``<kind>_checks.py``) that
Snakemake runs before any job. Training, jobs, tracking, summary and ``sync`` only call
these methods, so a new kind of study adds modules and edits none (docs/design.md).

Scores are the long-form table of pipeline.scores; the summary is a group-by of it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import xarray as xr

from pipeline.samples import Samples, array_samples, split_inputs

Loss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class ImportanceTarget:
    """What permutation importance explains: a callable from a batch of inputs to
    outputs, the matching targets, and the output ``groups`` it scores (a lead, the
    classes). ``loss`` maps (outputs, targets) to per-sample losses, (batch,) for one
    group or (batch, len(groups)); higher is worse; None is the squared error."""

    groups: Sequence[str]
    predict: Callable[[torch.Tensor], torch.Tensor]
    y: np.ndarray
    loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None


class Task(ABC):
    """What a kind of study must provide; see the module docstring."""

    #: ``task.kind`` in the config.
    name: str
    #: The dimension scores are grouped by (``lead``, ``class``, ``basin``).
    dim: str
    #: The metric that ranks forecasts ("best" in the summary), and its orientation.
    headline: str
    lower_is_better: frozenset[str] = frozenset()

    def group_label(self, group: str) -> str:
        """How figures name one group (``lead 6 months``, ``class AR``)."""
        return f"{self.dim} {group}"

    # ------------------------------------------------------------------ data
    @abstractmethod
    def build_samples(
        self, fields: xr.Dataset, exp: Mapping[str, Any], truth: xr.Dataset | None
    ) -> xr.Dataset:
        """Harmonised fields -> the prepared store: ``x``, targets, ``split``, stats."""

    def samples(self, prepared: xr.Dataset, split: str, target: str) -> Samples:
        """What training draws the batches of ``split`` from: by default the stored
        input ``x`` and ``target`` of each sample."""
        return array_samples(prepared, split, target)

    # ------------------------------------------------------------------ model
    @abstractmethod
    def model(self, spec: Mapping[str, Any], prepared: xr.Dataset) -> torch.nn.Module:
        """The network for ``spec`` with this task's output head."""

    @abstractmethod
    def target(self, spec: Mapping[str, Any]) -> str:
        """The prepared variable the network of ``spec`` is trained against."""

    @abstractmethod
    def loss(self, name: str, prepared: xr.Dataset) -> Loss:
        """The training loss ``(outputs, targets) -> scalar`` that ``training.loss``
        names (``auto``: the task's default)."""

    # ------------------------------------------------------------------ evaluation
    @abstractmethod
    def predict(self, model: torch.nn.Module, prepared: xr.Dataset) -> dict[str, np.ndarray]:
        """Test-split outputs: ``forecast`` (what ``score`` takes) and any extras."""

    @abstractmethod
    def baselines(self, prepared: xr.Dataset) -> dict[str, np.ndarray]:
        """Reference forecasts on the test split, fitted on train only; a name in
        ``ceilings`` is a skill ceiling (the oracle), never a competitor."""

    ceilings: frozenset[str] = frozenset()

    @abstractmethod
    def score(
        self,
        forecasts: Mapping[str, np.ndarray],
        roles: Mapping[str, str],
        references: Mapping[str, np.ndarray],
        prepared: xr.Dataset,
    ) -> pd.DataFrame:
        """The long-form score table (pipeline.scores) of test-split ``forecasts`` (their
        role by name), with skill scores against ``references`` (the baselines)."""

    @abstractmethod
    def predictions(
        self,
        prepared: xr.Dataset,
        outputs: Mapping[str, np.ndarray],
        baselines: Mapping[str, np.ndarray],
    ) -> xr.Dataset:
        """predictions.nc: the test-split forecast (and baselines) with coordinates."""

    @abstractmethod
    def forecast_from(self, predictions: xr.Dataset) -> np.ndarray:
        """The model's forecast back from predictions.nc (seed ensembles average these)."""

    @abstractmethod
    def run_figures(
        self,
        prepared: xr.Dataset,
        outputs: Mapping[str, np.ndarray],
        baselines: Mapping[str, np.ndarray],
        scores: pd.DataFrame,
        name: str,
        plot_dir: Path,
        title: str,
    ) -> list[Path]:
        """The figures of one run."""

    @abstractmethod
    def summary_figures(
        self,
        table: pd.DataFrame,
        importance: pd.DataFrame,
        verdicts: Sequence[str],
        prepared: xr.Dataset,
        run_dirs: Sequence[Path],
        out_dir: Path,
        title: str,
    ) -> list[Path]:
        """The figures of the experiment summary."""

    # ------------------------------------------------------------------ importance
    def importance_inputs(
        self, prepared: xr.Dataset, settings: Mapping[str, Any]
    ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """The test inputs importance permutes, and its groups: boolean masks over one
        sample's shape, by name. By default, one group per input channel of the maps, or
        per (channel, lag) with ``groups: variable_lag``."""
        from pipeline.importance import channel_groups, variable_lag_groups

        x = split_inputs(prepared)
        names = [str(c) for c in prepared["channel"].values]
        if settings["groups"] == "variable_lag":
            return x, variable_lag_groups(names, list(prepared["history"].values), x.shape[1:])
        return x, channel_groups(names, x.shape[1:])

    @abstractmethod
    def importance_targets(
        self,
        model: torch.nn.Module,
        prepared: xr.Dataset,
        settings: Mapping[str, Any],
    ) -> Iterator[ImportanceTarget]:
        """The output groups importance explains, each with its per-sample loss."""

    importance_label: str = "Δloss"
