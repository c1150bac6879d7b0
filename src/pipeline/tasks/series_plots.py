"""Figures of the series task (rainfall-runoff across basins, station or index series),
built from pipeline.plots' primitives: the distribution of NSE over entities and the
hydrographs of the best, median and worst entity.

Every figure shows the baselines and the oracle beside the networks, as pipeline.plots
does for ENSO: a network's score means little without the forecast it has to beat and the
ceiling it cannot pass. NSE over basins is read as a CDF, as in Kratzert et al. (2019),
HESS 23, 5089. How to read each figure: docs/figures.md.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import xarray as xr

from pipeline import metrics as m
from pipeline import plots, timesteps
from pipeline.scores import NETWORK_ROLES

#: Axis names of the entity scores (unitless efficiencies).
SCORE_LABELS = {"nse": "NSE", "kge": "KGE"}
#: The score of the mean observed flow as a forecast: NSE 0, KGE 1 - sqrt(2) (Knoben et
#: al. 2019, HESS 23, 4323): below it a forecast is worse than a constant.
MEAN_FLOW_SCORE = {"nse": 0.0, "kge": 1 - np.sqrt(2)}
#: Scores are drawn on [-1, 1]: below -1 a forecast is useless however low it goes, and a
#: long tail would squeeze the skilful range that tells forecasts apart.
CLIP = -1.0
#: Steps a hydrograph panel shows: a year of daily data, two weeks of hourly data, the
#: whole test period of monthly data; a full seasonal cycle, with each event still visible.
WINDOW_STEPS = 365
CEILING_LABEL = "(skill ceiling)"


def series_styles(roles: Mapping[str, str]) -> dict[str, plots.Style]:
    """pipeline.plots' style of each forecast, its line by role where pipeline.plots has
    no reference style for the name: a baseline dash-dotted, a seed ensemble dashed and a
    ceiling dotted, so that a role reads the same in every figure whatever its name."""
    styles = plots.forecast_styles(roles)
    looks = {"baseline": ("-.", 1.5), "ensemble": ("--", 2.2), "ceiling": (":", 1.5)}
    for name, role in roles.items():
        if role in looks and name not in plots.REFERENCE_STYLES:
            ls, lw = looks[role]
            styles[name] = plots.Style(styles[name].color, styles[name].marker, ls, lw)
    return styles


def _shown(name: str, role: str) -> str:
    return f"{name} {CEILING_LABEL}" if role == "ceiling" else name


def nse_cdf(
    per_entity: pd.DataFrame,
    path: str | Path,
    title: str = "",
    score: str = "nse",
    noun: str = "entities",
) -> Path:
    """The empirical CDF of ``score`` over entities, one step line per forecast, clipped
    to [-1, 1] (the share below -1 in the legend), each median marked on the line; the
    legend in order of median. ``per_entity``: one row per (forecast, entity), columns
    forecast, role, entity and ``score`` (e.g. the summary's mean over seeds)."""
    if per_entity.duplicated(["forecast", "entity"]).any():
        raise ValueError(f"nse_cdf takes one {score} per forecast and entity: average seeds first")
    label = SCORE_LABELS.get(score, score.upper())
    roles = dict(zip(per_entity["forecast"], per_entity["role"], strict=True))
    values = {
        name: part[score].to_numpy(dtype=float) for name, part in per_entity.groupby("forecast")
    }
    medians = {
        name: np.nanmedian(v) if np.isfinite(v).any() else -np.inf for name, v in values.items()
    }
    order = sorted(values, key=lambda n: (-medians[n], n))
    styles = series_styles({n: roles[n] for n in order})
    fig, ax = plt.subplots(figsize=(7, 4.6))
    for name in order:
        finite = np.sort(values[name][np.isfinite(values[name])])
        n = len(finite)
        if not n:
            continue
        style = styles[name]
        note = f"median {medians[name]:.2f}, {int((finite < CLIP).sum())}/{n} below {CLIP:g}"
        missing = len(values[name]) - n
        if missing:
            note += f", {missing} not scored"
        ax.step(
            np.r_[CLIP, np.clip(finite, CLIP, 1.0), 1.0],
            np.r_[0.0, np.arange(1, n + 1) / n, 1.0],
            where="post",
            color=style.color,
            ls=style.ls,
            lw=style.lw,
            label=f"{_shown(name, roles[name])}: {note}",
        )
        ax.plot(
            max(medians[name], CLIP), 0.5, ls="none", marker=style.marker, ms=7, color=style.color
        )
    ax.axhline(0.5, color="grey", lw=0.6, ls=":")
    benchmark = MEAN_FLOW_SCORE.get(score)
    if benchmark is not None:
        ax.axvline(benchmark, color="grey", lw=0.8)
        ax.annotate(
            "mean observed flow",
            (benchmark, 0.02),
            xytext=(-3, 0),
            textcoords="offset points",
            rotation=90,
            fontsize=7,
            color="grey",
            ha="right",
            va="bottom",
        )
    n_entities = per_entity["entity"].nunique()
    ax.set(
        xlim=(CLIP - 0.03, 1.0),
        ylim=(0, 1.01),
        xlabel=f"{label} (unitless), test period; below {CLIP:g} drawn at {CLIP:g}",
        ylabel=f"fraction of {noun} with {label} ≤ x",
        title=plots.titled(title, f"{label} over {n_entities} {noun}, markers at the median"),
    )
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7.5, loc="upper left")
    return plots.save(fig, path)


def best_median_worst(scores: pd.Series) -> dict[str, str]:
    """The entities a hydrograph figure shows, from one forecast's score per entity (the
    index): the highest, the median (the upper middle one for an even count, so that it is
    a real entity) and the lowest; unscored entities never, an entity only once."""
    finite = scores[np.isfinite(scores.to_numpy(dtype=float))]
    if finite.empty:
        raise ValueError("no entity has a finite score to choose hydrographs by")
    ranked = sorted(finite.index, key=lambda e: (-finite[e], str(e)))
    picked = {"best": ranked[0], "median": ranked[(len(ranked) - 1) // 2], "worst": ranked[-1]}
    unique: dict[str, str] = {}
    for key, entity in picked.items():
        if entity not in unique.values():
            unique[key] = str(entity)
    return unique


def _gaps(valid: np.ndarray) -> list[tuple[int, int]]:
    """(first, last) index of each run of missing values."""
    edges = np.diff(np.r_[0, (~valid).astype(int), 0])
    return list(zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1) - 1, strict=True))


def hydrographs(
    observed: xr.DataArray,
    forecasts: Mapping[str, xr.DataArray],
    roles: Mapping[str, str],
    entities: Mapping[str, str],
    path: str | Path,
    title: str = "",
) -> Path:
    """Observed and forecast series of a few entities over the test period, one panel
    each (``entities``: panel name, e.g. "best", to entity id), with every forecast's NSE
    over the whole test period in the panel title; the first ``WINDOW_STEPS`` steps drawn.
    ``observed`` and each forecast: (entity, time), ``observed`` with its ``units``."""
    if "units" not in observed.attrs:
        raise ValueError(f"observed {observed.name!r} has no units attribute")
    observed = observed.transpose("entity", "time")
    times = observed["time"].values
    shown = slice(0, min(len(times), WINDOW_STEPS))
    step = timesteps.infer_step(times)
    half = np.timedelta64(int(timesteps.median_spacing(times) * 43200), "s")
    styles = series_styles(roles)
    fig, axes = plt.subplots(
        len(entities),
        1,
        figsize=(10, 2.6 * len(entities) + 0.9),
        sharex=True,
        squeeze=False,
        layout="constrained",
    )
    for ax, (which, entity) in zip(axes[:, 0], entities.items(), strict=True):
        obs = observed.sel(entity=entity).values.astype(float)
        sims = {
            name: da.sel(entity=entity).reindex(time=times).values.astype(float)
            for name, da in forecasts.items()
        }
        ax.plot(times[shown], obs[shown], color="black", lw=1.2, label="observed", zorder=3)
        for name, sim in sims.items():
            kw = {**styles[name].kw(), "marker": None, "lw": 1.0}
            on_top = roles[name] in NETWORK_ROLES  # the networks over the references
            label = _shown(name, roles[name])
            ax.plot(times[shown], sim[shown], label=label, zorder=2.5 if on_top else 2, **kw)
        for k, (first, last) in enumerate(_gaps(np.isfinite(obs[shown]))):
            ax.axvspan(
                times[first] - half,
                times[last] + half,
                color="grey",
                alpha=0.2,
                lw=0,
                label="observation missing" if k == 0 else None,
            )
        nse = ", ".join(f"{name} {m.nse(sim=sim, obs=obs):.2f}" for name, sim in sims.items())
        ax.set_title(f"{which}: {entity} (NSE over the test period: {nse})", fontsize=9)
        ax.set_ylabel(f"{observed.name or 'target'} ({observed.attrs['units']})")
        ax.grid(alpha=0.3)
    legend: dict[str, Any] = {}  # a gap in any panel, not only the first, has its entry
    for ax in axes[:, 0]:
        handles, labels = ax.get_legend_handles_labels()
        legend |= dict(zip(labels, handles, strict=True))
    fig.legend(
        legend.values(), legend.keys(), loc="outside lower center", ncol=len(legend), fontsize=8
    )
    unit = timesteps.step_unit(step) if step else "steps"
    span = "the whole test period" if shown.stop == len(times) else f"its first {shown.stop} {unit}"
    axes[-1, 0].set_xlabel(f"date ({step or 'irregular'} steps; {span} shown)")
    fig.suptitle(plots.titled(title, "observed and forecast series (test period)"))
    return plots.save(fig, path)


def skill_vs_lead(
    table: pd.DataFrame,
    path: str | Path,
    title: str,
    step: str,
    metric: str = "nse",
    verdicts: Sequence[str] = (),
) -> Path:
    """A single series forecast at several leads: pipeline.plots' summary skill figure
    (every forecast of the summary table, the best at each lead ringed) in ``metric``,
    with leads in the data's own step (days, weeks, months) and the mean-flow score drawn."""
    return plots.summary_skill(
        table,
        path,
        title,
        verdicts,
        metric=metric,
        ylabel=f"{SCORE_LABELS.get(metric, metric.upper())} (unitless)",
        xlabel=f"lead ({timesteps.step_unit(step)})",
        threshold=MEAN_FLOW_SCORE.get(metric),
    )
