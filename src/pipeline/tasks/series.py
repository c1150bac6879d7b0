"""The series task: a value per entity and step from the series' own recent past.

Rainfall-runoff across basins (Kratzert et al. 2019, HESS 23, 5089): today's
streamflow of each basin from the last ``history`` days of its forcing, with its
static attributes beside them (lead 0). The same task forecasts a single series, a
station or an index, at leads from its own past (the target among the inputs), plus
optional covariates. Samples are windows cut on the fly (pipeline.series_data);
sequence networks (LSTM, RNN, TCN, MLP on lags) train on MSE or the basin-averaged NSE*
loss, missing targets masked.

Scores, per lead: the median over entities of NSE, KGE and its components r, alpha and
beta (Gupta et al. 2009), and the number of entities with NSE <= 0 (worse than their own
mean); the ``all`` group is their mean over leads. Per entity, at the first lead, rows of
dim ``entity`` hold each entity's NSE and KGE, for the distribution over basins.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import xarray as xr

from pipeline import metrics as m
from pipeline.losses import masked_mse, nse_loss
from pipeline.models.registry import Shapes, build_model
from pipeline.samples import Windows, split_indices
from pipeline.scores import ALL, score_rows, scores_table
from pipeline.series_baselines import SeriesSamples, series_baselines
from pipeline.series_data import build_series_samples, windows
from pipeline.tasks import series_plots as figures
from pipeline.tasks.base import ImportanceTarget, Loss, Task
from pipeline.timesteps import median_spacing

BATCH = 512
ENTITY_DIM = "entity"
PER_ENTITY = ("nse", "kge")


def to_physical(values: np.ndarray, prepared: xr.Dataset) -> np.ndarray:
    """Normalised target values back in the target's units."""
    stats = prepared.attrs["stats"][prepared.attrs["target_name"]]
    return values * stats["std"] + stats["mean"]


def observed(prepared: xr.Dataset) -> np.ndarray:
    """(test samples, leads) observed targets in their units (NaN where missing)."""
    test = split_indices(prepared)
    entity = prepared["sample_entity"].values[test]
    steps = prepared["sample_end"].values[test][:, None] + prepared["lead"].values[None, :]
    return to_physical(prepared["target"].values[entity[:, None], steps], prepared)


def _by_entity(values: np.ndarray, entity: np.ndarray, n_entities: int) -> np.ndarray:
    """(entity, samples of the most-sampled entity) rows, NaN-padded: each entity's series
    of one lead, for scores along time."""
    order = np.argsort(entity, kind="stable")  # each entity's samples in time order
    counts = np.bincount(entity, minlength=n_entities)
    position = np.empty(len(entity), dtype=int)
    position[order] = np.arange(len(entity)) - np.r_[0, np.cumsum(counts)][entity[order]]
    out = np.full((n_entities, counts.max()), np.nan)
    out[entity, position] = values
    return out


def entity_scores(forecast: np.ndarray, obs: np.ndarray, entity: np.ndarray, n: int) -> dict:
    """Per entity: NSE, and KGE with r, alpha and beta, of one lead's forecasts."""
    sim, ref = _by_entity(forecast, entity, n), _by_entity(obs, entity, n)
    return {"nse": m.nse(sim=sim, obs=ref), **m.kge(sim=sim, obs=ref)}


def lead_summary(per_entity: Mapping[str, np.ndarray]) -> dict[str, float]:
    """Medians over entities (NaN entities left out) and the count with NSE <= 0."""
    summary = {k: float(np.nanmedian(v)) for k, v in per_entity.items()}
    summary["n_nse_le_0"] = float(np.sum(per_entity["nse"] <= 0))
    return summary


def score_series(
    forecasts: Mapping[str, np.ndarray],
    roles: Mapping[str, str],
    obs: np.ndarray,
    entity: np.ndarray,
    entity_names: Sequence[str],
    leads: Sequence[int],
) -> pd.DataFrame:
    """The long-form table (module docstring) of (samples, leads) forecasts."""
    rows = []
    for name, forecast in forecasts.items():
        per_lead = []
        for i, lead in enumerate(leads):
            per_entity = entity_scores(forecast[:, i], obs[:, i], entity, len(entity_names))
            per_lead.append(lead_summary(per_entity))
            rows += score_rows(name, roles[name], "lead", lead, per_lead[-1])
            if i == 0:
                for e, entity_name in enumerate(entity_names):
                    values = {k: float(per_entity[k][e]) for k in PER_ENTITY}
                    rows += score_rows(name, roles[name], ENTITY_DIM, entity_name, values)
        mean = {k: float(np.mean([s[k] for s in per_lead])) for k in per_lead[0]}
        rows += score_rows(name, roles[name], "lead", ALL, mean)
    return scores_table(rows)


def physical_inputs(prepared: xr.Dataset) -> np.ndarray:
    """(entity, time, feature) inputs back in their units (the baselines fit on these)."""
    stats = prepared.attrs["stats"]
    names = [str(f) for f in prepared["feature"].values]
    mean = np.array([stats[n]["mean"] for n in names])
    std = np.array([stats[n]["std"] for n in names])
    return prepared["inputs"].values.astype(float) * std + mean


def lag_blocks(history: int, days_per_step: float) -> list[tuple[int, int]]:
    """(first, last) steps back of each lag block importance permutes ("how far back does
    the model look?"): edges near a week, a month, a season, half a year and a year
    back, in the record's own step, the last block running to ``history``."""
    edges = sorted({max(1, round(d / days_per_step)) for d in (7, 30, 90, 180, 365)})
    edges = [0, *[e for e in edges if e < history], history]
    return [(a, b - 1) for a, b in itertools.pairwise(edges) if b > a]


#: Importance permutes a materialised copy of the test windows, at most this large.
IMPORTANCE_BYTES = 256 * 2**20


def importance_windows(prepared: xr.Dataset) -> tuple[Windows, torch.Tensor]:
    """The test windows and the ones importance permutes: all, or evenly thinned to fit
    ``IMPORTANCE_BYTES``."""
    test = windows(prepared, "test")
    width = prepared.sizes["feature"] + prepared.sizes["static"]
    keep = max(1, IMPORTANCE_BYTES // (test.history * width * 4))
    return test, torch.as_tensor(np.linspace(0, len(test) - 1, min(keep, len(test))).astype(int))


class SeriesTask(Task):
    name = "series"
    dim = "lead"
    headline = "nse"
    ceilings = frozenset({"oracle"})
    importance_label = "ΔNSE* loss"

    def group_label(self, group: str) -> str:
        return f"lead {group}"

    def build_samples(
        self, fields: xr.Dataset, exp: Mapping[str, Any], truth: xr.Dataset | None
    ) -> xr.Dataset:
        ds = build_series_samples(fields, exp)
        if truth is not None:
            oracle = truth[exp["task"]["target"]].sel(entity=ds[ENTITY_DIM], time=ds["time"])
            ds["oracle"] = oracle.astype(np.float32)
        return ds

    def samples(self, prepared: xr.Dataset, split: str, target: str) -> Windows:
        return windows(prepared, split)

    def model(self, spec: Mapping[str, Any], prepared: xr.Dataset) -> torch.nn.Module:
        features = prepared.sizes["feature"] + prepared.sizes["static"]
        shapes = Shapes(
            int(prepared.attrs["history"]), 0, 0, 0, prepared.sizes["lead"], features=features
        )
        return build_model(dict(spec), shapes)

    def target(self, spec: Mapping[str, Any]) -> str:
        return "target"

    def loss(self, name: str, prepared: xr.Dataset) -> Loss:
        """NSE* (``nse``) or MSE (``auto``, ``mse``) on the normalised target; each target
        row ends with its entity's train std (pipeline.series_data.windows), which NSE*
        divides by and MSE leaves out."""
        if name == "nse":
            return lambda out, y: nse_loss(out, y[:, :-1], y[:, -1])
        return lambda out, y: masked_mse(out, y[:, :-1])

    def predict(self, model: torch.nn.Module, prepared: xr.Dataset) -> dict[str, np.ndarray]:
        """(test samples, leads) forecasts in the target's units."""
        test = windows(prepared, "test")
        with torch.no_grad():
            out = [
                model(test.batch(torch.arange(i, min(i + BATCH, len(test))))[0]).numpy()
                for i in range(0, len(test), BATCH)
            ]
        return {"forecast": to_physical(np.concatenate(out).astype(float), prepared)}

    def baselines(self, prepared: xr.Dataset) -> dict[str, np.ndarray]:
        """Step-of-year climatology and ridge on lagged inputs per entity; AR(p) and
        persistence where the target is an input; the oracle where the truth is known.
        All fitted on the train samples (pipeline.series_baselines)."""
        features = [str(f) for f in prepared["feature"].values]
        target_name = prepared.attrs["target_name"]
        samples = SeriesSamples(
            entity=prepared["sample_entity"].values,
            end=prepared["sample_end"].values,
            leads=prepared["lead"].values,
            history=int(prepared.attrs["history"]),
            split=prepared["split"].values,
        )
        target = to_physical(prepared["target"].values.astype(float), prepared)
        forecasts = series_baselines(
            physical_inputs(prepared),
            target,
            prepared["time"].values,
            samples,
            features.index(target_name) if target_name in features else None,
        )
        test = split_indices(prepared)
        out = {name: values[test] for name, values in forecasts.items()}
        if "oracle" in prepared:
            steps = samples.target_steps[test]
            out["oracle"] = prepared["oracle"].values[samples.entity[test][:, None], steps]
        return out

    def score(
        self,
        forecasts: Mapping[str, np.ndarray],
        roles: Mapping[str, str],
        references: Mapping[str, np.ndarray],
        prepared: xr.Dataset,
    ) -> pd.DataFrame:
        test = split_indices(prepared)
        return score_series(
            forecasts,
            roles,
            observed(prepared),
            prepared["sample_entity"].values[test],
            [str(e) for e in prepared[ENTITY_DIM].values],
            [int(lead) for lead in prepared["lead"].values],
        )

    def predictions(
        self,
        prepared: xr.Dataset,
        outputs: Mapping[str, np.ndarray],
        baselines: Mapping[str, np.ndarray],
    ) -> xr.Dataset:
        """Per test sample and lead: the forecast, the observation and every baseline,
        with the sample's entity and the date it forecasts (lead 0: its window's end)."""
        test = split_indices(prepared)
        entity = prepared["sample_entity"].values[test]
        end = prepared["sample_end"].values[test]
        dims = ("sample", "lead")
        data = {"prediction": (dims, outputs["forecast"]), "observed": (dims, observed(prepared))}
        data |= {f"baseline_{name}": (dims, values) for name, values in baselines.items()}
        units = prepared.attrs["units"][prepared.attrs["target_name"]]
        return xr.Dataset(
            data,
            coords={
                "lead": prepared["lead"].values,
                ENTITY_DIM: ("sample", prepared[ENTITY_DIM].values[entity]),
                "window_end": ("sample", prepared["time"].values[end]),
            },
            attrs={"units": units, "step": prepared.attrs["step"]},
        )

    def forecast_from(self, predictions: xr.Dataset) -> np.ndarray:
        return predictions["prediction"].values

    def _series_at_lead0(
        self, prepared: xr.Dataset, values: Mapping[str, np.ndarray]
    ) -> dict[str, xr.DataArray]:
        """(entity, time) series of each forecast's first lead over the test samples."""
        test = split_indices(prepared)
        entity = prepared["sample_entity"].values[test]
        step = prepared["sample_end"].values[test] + int(prepared["lead"].values[0])
        out = {}
        for name, forecast in values.items():
            grid = np.full((prepared.sizes[ENTITY_DIM], prepared.sizes["time"]), np.nan)
            grid[entity, step] = forecast[:, 0]
            da = xr.DataArray(
                grid, coords={ENTITY_DIM: prepared[ENTITY_DIM], "time": prepared["time"]}
            )
            out[name] = da.isel(time=slice(step.min(), step.max() + 1))
        return out

    @staticmethod
    def _nse_cdf(
        prepared: xr.Dataset, per_entity: pd.DataFrame, path: Path, title: str
    ) -> list[Path]:
        """The CDF of NSE over entities, where there are several (one has no distribution)."""
        if prepared.sizes[ENTITY_DIM] < 2:
            return []
        return [figures.nse_cdf(per_entity, path, title)]

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
        """The CDF of NSE over entities, and hydrographs of the model's best, median and
        worst entity (a single series: the one) beside the observations, the oracle and the
        best baseline."""
        per_entity = scores[scores["dim"] == ENTITY_DIM].rename(columns={"group": "entity"})
        per_entity = per_entity[per_entity["metric"] == "nse"].rename(columns={"value": "nse"})
        paths = self._nse_cdf(prepared, per_entity, plot_dir / "nse_cdf.png", title)
        nse = per_entity[per_entity["forecast"] == name].set_index("entity")["nse"]
        first = str(int(prepared["lead"].values[0]))  # the lead the hydrographs show
        at_first = scores[(scores["dim"] == self.dim) & (scores["group"] == first)]
        refs = at_first[(at_first["metric"] == "nse") & (at_first["role"] == "baseline")]
        best = refs.loc[refs["value"].idxmax(), "forecast"] if refs["value"].notna().any() else None
        shown = {name: outputs["forecast"]}
        shown |= {k: v for k, v in baselines.items() if k in {best, "oracle"}}
        roles = dict(zip(scores["forecast"], scores["role"], strict=False))
        series = self._series_at_lead0(prepared, {"observed": observed(prepared), **shown})
        obs = series.pop("observed").rename(prepared.attrs["target_name"])
        obs.attrs["units"] = prepared.attrs["units"][prepared.attrs["target_name"]]
        paths.append(
            figures.hydrographs(
                obs,
                series,
                {k: roles[k] for k in series},
                figures.best_median_worst(nse),
                plot_dir / "hydrographs.png",
                title,
            )
        )
        return paths

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
        """The CDF of NSE over entities (networks' mean over seeds, ensembles, baselines,
        the oracle), and skill against lead where there are several leads."""
        nse = table[(table["dim"] == ENTITY_DIM) & (table["metric"] == "nse")]
        per_entity = nse.rename(columns={"group": "entity", "mean": "nse"})
        paths = self._nse_cdf(prepared, per_entity, out_dir / "nse_cdf.png", title)
        if prepared.sizes["lead"] > 1:
            leads = table[table["dim"] == self.dim]
            step = prepared.attrs["step"]
            paths.append(
                figures.skill_vs_lead(
                    leads, out_dir / "skill_vs_lead.png", title, step, "nse", verdicts
                )
            )
        return paths

    def importance_inputs(
        self, prepared: xr.Dataset, settings: Mapping[str, Any]
    ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """Test windows (evenly thinned to fit ``IMPORTANCE_BYTES``) and their groups: each
        dynamic input, each static attribute, and blocks of lags over every dynamic input
        (``lags 0-6``: the last week of a daily record)."""
        test, pick = importance_windows(prepared)
        history, n_dynamic = test.history, prepared.sizes["feature"]
        width = n_dynamic + prepared.sizes["static"]
        x = test.batch(pick)[0].numpy()
        names = [str(f) for f in prepared["feature"].values]
        names += [str(s) for s in prepared["static"].values]
        groups = {}
        for i, name in enumerate(names):
            groups[name] = np.zeros((1, width), dtype=bool)
            groups[name][0, i] = True
        for first, last in lag_blocks(history, median_spacing(prepared["time"])):
            mask = np.zeros((history, width), dtype=bool)
            mask[history - 1 - last : history - first, :n_dynamic] = True
            groups[f"lags {first}-{last}"] = mask
        return x, groups

    def importance_targets(
        self,
        model: torch.nn.Module,
        prepared: xr.Dataset,
        settings: Mapping[str, Any],
    ) -> Iterator[ImportanceTarget]:
        """Every lead at once, by the NSE* loss per sample and lead, on the windows
        ``importance_inputs`` kept."""
        test, pick = importance_windows(prepared)
        y = test.batch(pick)[1].numpy()
        leads = [str(lead) for lead in prepared["lead"].values]

        def loss(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
            return len(leads) * nse_loss(out, y[:, :-1], y[:, -1], per="channel")

        yield ImportanceTarget(leads, model, y, loss)


TASK = SeriesTask()
