"""Matplotlib figures. Each function takes data and writes one figure atomically, as a
300-dpi PNG (the path it returns) and a vector PDF of the same stem beside it.

Every forecast has one style (colour, marker, line) in every figure: see ``forecast_styles``.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.ticker import FuncFormatter, MaxNLocator

from pipeline.io import atomic_path
from pipeline.scores import group_order

DPI = 300
VECTOR_FORMAT = "pdf"
LEAD_LABEL = "lead (months)"
ACC_LABEL = "ACC (unitless)"
RMSE_LABEL = "RMSE (degC)"
DMSE_LABEL = "ΔMSE (degC²)"


def save(fig: plt.Figure, path: str | Path) -> Path:
    """Write ``path`` (PNG, 300 dpi) and the vector copy beside it; return ``path``."""
    path = Path(path)
    for target in (path, path.with_suffix(f".{VECTOR_FORMAT}")):
        with atomic_path(target) as tmp:
            fig.savefig(tmp, dpi=DPI, bbox_inches="tight", format=target.suffix.lstrip("."))
    plt.close(fig)
    return path


def titled(*parts: str) -> str:
    return ": ".join(p for p in parts if p)


def lead_label(lead: int) -> str:
    return f"lead {lead} month" + ("" if int(lead) == 1 else "s")


def _lead_axis(ax: plt.Axes, leads: Sequence[int], label: str = LEAD_LABEL) -> None:
    """Ticks at the forecast leads themselves, never at matplotlib's round numbers."""
    ax.set_xticks(list(leads))
    ax.set_xlabel(label)


# ------------------------------------------------------------------------------ styles


@dataclass(frozen=True)
class Style:
    color: str
    marker: str
    ls: str = "-"
    lw: float = 1.8

    def kw(self) -> dict:
        return {"color": self.color, "marker": self.marker, "ls": self.ls, "lw": self.lw}


# The references: fixed, and in colours that no model gets.
REFERENCE_STYLES = {
    "persistence": Style("tab:gray", "x", "--", 1.5),
    "climatology": Style("black", "_", ":", 1.5),
    "linear": Style("tab:green", "D", "-.", 1.5),
    "oracle": Style("tab:red", "*", ":", 1.5),
    "ridge": Style("darkgreen", "d", "-.", 1.5),  # the series baselines (series_baselines)
    "ar": Style("sienna", "v", "--", 1.5),
}
MODEL_COLORS = (
    "tab:blue",
    "tab:orange",
    "tab:purple",
    "tab:brown",
    "tab:pink",
    "tab:cyan",
    "tab:olive",
    "navy",
    "goldenrod",
    "teal",
)
MODEL_MARKERS = ("o", "s", "^", "v", "P", "X", "h", "<", ">", "p")
# The default study's variants keep the same style whatever else an experiment holds.
MODEL_SLOTS = {"cnn": 0, "resnet": 1, "lstm": 2, "convlstm": 3, "unet": 4}
N_SLOTS = len(MODEL_COLORS) * len(MODEL_MARKERS)
ENSEMBLE_SUFFIX = "-ensemble"  # a variant's seed ensemble (pipeline.summarize)


def _model_style(slot: int) -> Style:
    """Slots 0-9 differ in colour and marker; later ones reuse a colour with a new marker."""
    n = len(MODEL_COLORS)
    return Style(MODEL_COLORS[slot % n], MODEL_MARKERS[(slot + slot // n) % len(MODEL_MARKERS)])


def forecast_styles(names: Iterable[str]) -> dict[str, Style]:
    """One distinct style per forecast. A model keeps its slot (the default variants a fixed
    one, any other name one chosen by a hash of the name), so it looks the same in its
    run's figures and in the summary; a clash within one figure moves to the next free slot
    (a sweep of more than N_SLOTS variants reuses styles rather than failing the summary)."""
    names = list(dict.fromkeys(names))
    styles = {n: REFERENCE_STYLES[n] for n in names if n in REFERENCE_STYLES}
    models = sorted(
        (n for n in names if n not in REFERENCE_STYLES), key=lambda n: (n not in MODEL_SLOTS, n)
    )
    ensembles = [n for n in models if n.endswith(ENSEMBLE_SUFFIX)]
    models = [n for n in models if n not in ensembles]
    taken: set[int] = set()
    for name in models:
        slot = MODEL_SLOTS.get(name, zlib.crc32(name.encode()) % len(MODEL_COLORS))
        while slot in taken and len(taken) < N_SLOTS:  # past N_SLOTS models, styles repeat
            slot = (slot + 1) % N_SLOTS
        taken.add(slot)
        styles[name] = _model_style(slot)
    for name in ensembles:  # its members' colour and marker, dashed
        base = name.removesuffix(ENSEMBLE_SUFFIX)
        member = styles.get(base) or forecast_styles([base])[base]
        styles[name] = Style(member.color, member.marker, "--", member.lw + 0.4)
    return {n: styles[n] for n in names}


# ------------------------------------------------------------------------------ training


def overfitting_epochs(
    history: pd.DataFrame, window: int = 3, tolerance: float = 0.02
) -> list[int]:
    """Epochs where the validation loss sits more than ``tolerance`` (relative) above its best
    so far while the training loss is still falling over the last ``window`` epochs."""
    val, train = history["val_loss"].to_numpy(), history["train_loss"].to_numpy()
    flagged = []
    for i in range(window, len(history)):
        if val[i] > (1 + tolerance) * val[:i].min() and train[i] < train[i - window]:
            flagged.append(int(history["epoch"].iloc[i]))
    return flagged


def overfitting_spans(history: pd.DataFrame, **flag: float) -> list[tuple[int, int]]:
    """(first, last) epoch of each unbroken run of flagged epochs: an epoch in between that
    was not flagged (validation back near its best) is never shaded."""
    epochs = history["epoch"].astype(int).tolist()
    spans: list[tuple[int, int]] = []
    for epoch in overfitting_epochs(history, **flag):
        i = epochs.index(epoch)
        if spans and i > 0 and epochs[i - 1] == spans[-1][1]:
            spans[-1] = (spans[-1][0], epoch)
        else:
            spans.append((epoch, epoch))
    return spans


def still_improving(history: pd.DataFrame, window: int = 3, tolerance: float = 0.02) -> bool:
    """True when training stopped before the validation loss settled: its best epoch is the
    last one, or it fell by more than ``tolerance`` (relative) over the last ``window`` epochs."""
    val = history["val_loss"].to_numpy()
    if len(val) < 2:
        return len(val) == 1
    earlier = val[max(0, len(val) - 1 - window)]
    return bool(np.argmin(val) == len(val) - 1 or val[-1] < (1 - tolerance) * earlier)


def loss_curves(history: pd.DataFrame, path: str | Path, title: str = "") -> Path:
    """Training and validation loss per epoch; the best epoch, over-fitting and a run that
    had not converged marked."""
    fig, ax = plt.subplots(figsize=(6, 3.6))
    ax.plot(history["epoch"], history["train_loss"], label="train", color="tab:blue")
    ax.plot(history["epoch"], history["val_loss"], label="validation", color="tab:orange")
    if len(history):
        best = history.loc[history["val_loss"].idxmin()]
        ax.axvline(best["epoch"], color="grey", ls=":", label=f"best epoch {int(best['epoch'])}")
    for k, (first, last) in enumerate(overfitting_spans(history)):
        ax.axvspan(
            first - 0.5,
            last + 0.5,
            color="tab:red",
            alpha=0.12,
            label="over-fitting: val > 2% above its best, train ↓" if k == 0 else None,
        )
    if still_improving(history):
        ax.annotate(
            "not converged: validation loss still falling at the last epoch",
            xy=(0.0, -0.2),
            xycoords="axes fraction",
            va="top",
            fontsize=8,
            color="tab:red",
        )
    ax.set(xlabel="epoch", ylabel="loss: MSE (degC²)", title=titled(title, "loss curves"))
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    losses = history[["train_loss", "val_loss"]].to_numpy()
    if len(history) and np.all(losses > 0) and losses.max() > 10 * losses.min():
        ax.set_yscale("log")  # only where the losses span more than a decade
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return save(fig, path)


# ------------------------------------------------------------------------------ one run


def _per_lead(scores: pd.DataFrame, forecast: str, metric: str) -> pd.Series:
    """One forecast's ``metric`` by lead (int) from a long-form score table."""
    rows = scores[
        (scores["forecast"] == forecast) & (scores["metric"] == metric) & (scores["group"] != "all")
    ]
    value = "mean" if "mean" in rows else "value"
    return rows.set_index(rows["group"].astype(int))[value].sort_index()


def skill_vs_lead(scores: pd.DataFrame, path: str | Path, title: str = "", model: str = "") -> Path:
    """ACC and RMSE against lead time, for the run's network ``model``, the baselines and
    the oracle (a skill ceiling, not a forecast), from the run's long-form scores."""
    names = [model, *(n for n in REFERENCE_STYLES if n in set(scores["forecast"]))]
    styles = forecast_styles(names)
    leads = sorted(_per_lead(scores, model, "acc").index)
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    for ax, score, label in ((axes[0], "acc", ACC_LABEL), (axes[1], "rmse", RMSE_LABEL)):
        for name in names:
            values = _per_lead(scores, name, score)
            if not np.isfinite(values.to_numpy(dtype=float)).any():
                continue
            shown = "oracle (skill ceiling)" if name == "oracle" else name
            ax.plot(values.index, values.to_numpy(), label=shown, **styles[name].kw())
        _lead_axis(ax, leads)
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    axes[0].axhline(0.5, color="grey", lw=0.6)
    axes[1].legend(fontsize=8)  # RMSE shows every forecast (climatology has no ACC)
    fig.suptitle(titled(title, "skill against lead time (test period)"))
    return save(fig, path)


def index_timeseries(
    time: np.ndarray,
    observed: np.ndarray,
    forecasts: dict[str, np.ndarray],
    leads: list[int],
    show: list[int],
    path: str | Path,
    target: str = "Niño3.4",
    title: str = "",
) -> Path:
    """Predicted vs observed index at a few leads (plotted at the valid time)."""
    fig, axes = plt.subplots(
        len(show), 1, figsize=(10, 2.6 * len(show)), sharex=True, squeeze=False
    )
    styles = forecast_styles(forecasts)
    for ax, lead in zip(axes[:, 0], show, strict=True):
        i = leads.index(lead)
        valid = np.asarray(time, dtype="datetime64[M]") + lead
        ax.plot(valid, observed[:, i], color="black", lw=1.5, label="observed")
        for name, values in forecasts.items():
            kw = {**styles[name].kw(), "lw": 1.0, "marker": None}
            ax.plot(valid, values[:, i], label=name, **kw)
        ax.axhspan(-0.5, 0.5, color="grey", alpha=0.08)
        ax.set(ylabel=f"{target} anomaly (degC)", title=lead_label(lead))
        ax.grid(alpha=0.3)
    axes[-1, 0].set_xlabel("valid time (month forecast for)")
    axes[0, 0].legend(fontsize=8, ncol=len(forecasts) + 1)
    fig.suptitle(titled(title, f"{target} forecasts against observations (test period)"))
    return save(fig, path)


def scatter(
    observed: np.ndarray,
    predicted: np.ndarray,
    leads: list[int],
    path: str | Path,
    title: str = "",
    target: str = "Niño3.4",
    model: str = "model",
) -> Path:
    """Predicted against observed, one panel per lead, with the 1:1 line."""
    fig, axes = plt.subplots(1, len(leads), figsize=(3 * len(leads), 3.4), squeeze=False)
    lim = float(np.nanmax(np.abs([observed, predicted]))) * 1.05
    color = forecast_styles([model])[model].color
    for ax, i in zip(axes[0], range(len(leads)), strict=True):
        ax.scatter(observed[:, i], predicted[:, i], s=6, alpha=0.6, color=color)
        ax.plot([-lim, lim], [-lim, lim], color="grey", lw=0.8)
        r = np.corrcoef(observed[:, i], predicted[:, i])[0, 1]
        ax.set(
            xlim=(-lim, lim),
            ylim=(-lim, lim),
            title=f"{lead_label(leads[i])} (r={r:.2f})",
            xlabel=f"observed {target} (degC)",
        )
        ax.set_aspect("equal")
    axes[0, 0].set_ylabel(f"predicted {target} (degC)")
    fig.suptitle(titled(title, "predicted against observed (test period)"))
    return save(fig, path)


def confusion_matrix(cm: np.ndarray, classes: list[str], path: str | Path, title: str = "") -> Path:
    """Counts with row-normalised shading (recall per true class)."""
    cm = np.asarray(cm)
    norm = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(4.6, 4.0))
    image = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    for (i, j), count in np.ndenumerate(cm):
        ax.text(
            j,
            i,
            str(count),
            ha="center",
            va="center",
            color="white" if norm[i, j] > 0.6 else "black",
        )
    ax.set(
        xticks=range(len(classes)),
        yticks=range(len(classes)),
        xticklabels=classes,
        yticklabels=classes,
        xlabel="predicted class",
        ylabel="observed class",
        title=title or "Confusion matrix",
    )
    fig.colorbar(image, ax=ax, shrink=0.8, label="fraction of the observed class (recall)")
    return save(fig, path)


def roc_curves(
    curves: dict[str, tuple[np.ndarray, np.ndarray, float]], path: str | Path, title: str = ""
) -> Path:
    """One ROC curve per class: {name: (fpr, tpr, auc)}."""
    fig, ax = plt.subplots(figsize=(4.4, 4.2))
    for name, (fpr, tpr, auc) in curves.items():
        ax.plot(fpr, tpr, label=f"{name} (AUC {auc:.2f})")
    ax.plot([0, 1], [0, 1], color="grey", lw=0.8, ls="--", label="no skill")
    ax.set(
        xlabel="false positive rate (unitless)",
        ylabel="true positive rate (unitless)",
        title=title or "ROC",
    )
    ax.legend(fontsize=8)
    return save(fig, path)


IMPORTANCE_CAPTION = (
    "Bars: {loss}, the increase in the test loss when a group is shuffled across samples, "
    "with 95% block-bootstrap interval. Single-pass: the group alone. Multi-pass: cumulative, the "
    "group and every group chosen in an earlier pass shuffled together (#k = pass k)."
)
IMPORTANCE_COLUMNS = 5  # leads per row before the panels wrap (the default study has 5)


def importance_order(table: pd.DataFrame) -> list[str]:
    """Groups by decreasing mean single-pass score (multi-pass if there is none), then by
    name: one order for every panel, so a group sits on the same row everywhere."""
    methods = set(table["method"])
    ranked = table[table["method"] == ("single" if "single" in methods else "multi")]
    mean = ranked.groupby("group")["score"].mean()
    every = sorted(set(table["group"]))
    return sorted(every, key=lambda g: (-mean.get(g, -np.inf), g))


def importance_bars(
    table: pd.DataFrame,
    path: str | Path,
    title: str = "",
    dim: str = "lead",
    label: Callable[[str], str] = str,
    xlabel: str = DMSE_LABEL,
) -> Path:
    """Loss increase with 95% intervals per input group: a grid of panels, rows = method
    (wrapped after a few output groups), columns = the output groups of ``dim`` (leads,
    classes), input groups in one order (``importance_order``)."""
    methods = [m for m in ("single", "multi") if m in set(table["method"])]
    table = table.assign(**{dim: table[dim].astype(str)})
    leads = sorted(dict.fromkeys(table[dim]), key=group_order)
    order = importance_order(table)
    ncols = min(len(leads), IMPORTANCE_COLUMNS)
    wraps = -(-len(leads) // ncols)
    nrows = len(methods) * wraps
    height = max(1.6, 0.22 * len(order) + 0.9)
    fig, axes = plt.subplots(
        nrows,
        ncols,
        figsize=(2.7 * ncols + 1.4, height * nrows + 0.9),
        squeeze=False,
        sharey=True,
        sharex="row",  # multi-pass bars are cumulative: a larger scale than single-pass
    )
    y = np.arange(len(order))
    for axis in axes.flat:
        axis.set_visible(False)
    for r, method in enumerate(methods):
        for k, lead in enumerate(leads):
            ax = axes[r * wraps + k // ncols, k % ncols]
            ax.set_visible(True)
            part = table[(table["method"] == method) & (table[dim] == lead)]
            part = part.set_index("group").reindex(order)
            err = np.array([part["score"] - part["ci_low"], part["ci_high"] - part["score"]])
            err = np.clip(err, 0.0, None)  # a percentile interval may miss its score
            ax.barh(
                y,
                part["score"],
                xerr=np.nan_to_num(err),
                capsize=2,
                color="tab:purple" if method == "multi" else "tab:blue",
            )
            if method == "multi":
                for yi, rank in zip(y, part["rank"], strict=True):
                    if np.isfinite(rank):
                        ax.annotate(
                            f"#{int(rank)}",
                            (0, yi),
                            xytext=(2, 0),
                            fontsize=6,
                            textcoords="offset points",
                            va="center",
                            color="white",
                        )
            ax.axvline(0, color="grey", lw=0.6)
            ax.set_title(f"{method}-pass, {label(lead)}", fontsize=9)
            ax.grid(axis="x", alpha=0.3)
            ax.set_xlabel(xlabel, fontsize=8)
    axes[0, 0].set_yticks(y, order)
    axes[0, 0].invert_yaxis()
    fig.suptitle(titled(title, "permutation importance (test period)"))
    fig.text(0.01, 0.0, IMPORTANCE_CAPTION.format(loss=xlabel), fontsize=7, wrap=True, va="top")
    fig.tight_layout()
    return save(fig, path)


# ------------------------------------------------------------------------------ summary


def summary_skill(
    table: pd.DataFrame,
    path: str | Path,
    title: str = "",
    verdicts: Sequence[str] = (),
    metric: str = "acc",
    ylabel: str = ACC_LABEL,
    xlabel: str = LEAD_LABEL,
    threshold: float | None = 0.5,
) -> Path:
    """``metric`` (ACC by default) against lead for every model (mean ± std over seeds)
    and the references (baselines and ceilings, by role); the best forecast at each lead
    ringed, ``threshold`` (ACC 0.5, "useful skill") drawn, and ``verdicts`` (one line per
    lead) written below."""
    acc = table[(table["metric"] == metric) & table["mean"].notna() & (table["group"] != "all")]
    acc = acc.assign(lead=acc["group"].astype(int))
    models = sorted(acc[acc["role"].isin(("model", "ensemble"))]["forecast"].unique())
    known = list(REFERENCE_STYLES)
    references = sorted(
        set(acc.loc[acc["role"].isin(("baseline", "ceiling")), "forecast"]),
        key=lambda n: (known.index(n) if n in known else len(known), n),
    )
    styles = forecast_styles([*models, *references])
    leads = sorted(int(v) for v in acc["lead"].unique())
    fig, ax = plt.subplots(figsize=(7.5, 4.5 + 0.2 * len(verdicts)))
    for name in models:
        part = acc[acc["forecast"] == name].sort_values("lead")
        ax.plot(part["lead"], part["mean"], label=name, **styles[name].kw())
        ax.fill_between(
            part["lead"],
            part["mean"] - part["std"],
            part["mean"] + part["std"],
            color=styles[name].color,
            alpha=0.15,
        )
    for name in references:
        part = acc[acc["forecast"] == name].sort_values("lead")
        label = "oracle (skill ceiling)" if name == "oracle" else name
        ax.plot(part["lead"], part["mean"], label=label, **styles[name].kw())
    forecasts = acc[acc["role"] != "ceiling"]
    if len(forecasts):
        best = forecasts.loc[forecasts.groupby("lead")["mean"].idxmax()]
        ax.plot(
            best["lead"],
            best["mean"],
            ls="none",
            marker="o",
            ms=13,
            mfc="none",
            mec="black",
            mew=1.2,
            label="best forecast at the lead",
        )
    if threshold is not None:
        ax.axhline(threshold, color="grey", lw=0.6)
    _lead_axis(ax, leads, xlabel)
    ax.set(ylabel=f"{ylabel}, test period", title=titled(title, "skill against lead time"))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, ncol=2)
    if verdicts:
        fig.text(0.01, 0.0, "\n".join(verdicts), fontsize=7.5, va="top", family="monospace")
    return save(fig, path)


def importance_heatmap(
    importance: pd.DataFrame,
    path: str | Path,
    title: str = "",
    dim: str = "lead",
    xlabel: str = DMSE_LABEL,
) -> Path:
    """Single-pass loss increase (mean over seeds), input group x ``dim`` (lead, class),
    one panel per model."""
    single = importance[importance["method"] == "single"]
    variants = sorted(single["variant"].unique())
    order = importance_order(single)
    fig, axes = plt.subplots(
        1,
        len(variants),
        figsize=(2.6 * len(variants) + 1.5, 0.3 * len(order) + 2.2),
        layout="constrained",
        squeeze=False,
        sharey=True,
    )
    single = single.assign(**{dim: single[dim].astype(str)})
    columns = sorted(dict.fromkeys(single[dim]), key=group_order)
    grid = single.groupby(["variant", "group", dim])["score"].mean()
    vmax = float(np.nanmax(np.abs(grid.to_numpy()))) or 1.0
    image = None
    for ax, variant in zip(axes[0], variants, strict=True):
        frame = grid.loc[variant].unstack(dim).reindex(index=order, columns=columns)
        image = ax.imshow(frame.to_numpy(), cmap="RdBu_r", vmin=-vmax, vmax=vmax, aspect="auto")
        ax.set_xticks(range(frame.shape[1]), frame.columns)
        ax.set_yticks(range(frame.shape[0]), frame.index)
        ax.set(title=variant, xlabel=LEAD_LABEL if dim == "lead" else dim)
    fig.colorbar(image, ax=axes[0].tolist(), label=f"{xlabel}, single-pass")
    fig.suptitle(titled(title, "single-pass permutation importance, mean over seeds"))
    return save(fig, path)


def _degrees(hemispheres: str, wrap: bool) -> FuncFormatter:
    """Tick labels in degrees: 20°S, 0°, 20°N; longitudes 0-360 as 120°E, 180°, 60°W."""

    def label(value: float, _pos: int) -> str:
        if wrap:
            value = (value + 180) % 360 - 180
        if np.isclose(value, 0) or (wrap and np.isclose(abs(value), 180)):
            return f"{abs(value):g}°"
        return f"{abs(value):g}°{hemispheres[int(value > 0)]}"

    return FuncFormatter(label)


def draw_map(
    ax: plt.Axes, da, vmin: float, vmax: float, title: str, cmap: Any = "RdBu_r", norm: Any = None
):
    """A lat-lon field on ``ax`` with degree tick labels and equal aspect; the mesh
    (``norm``, e.g. class boundaries, replaces ``vmin``/``vmax``). The mesh is rasterised
    in vector files: a PDF of one path per grid cell is slow to write and to open."""
    limits = {"norm": norm} if norm is not None else {"vmin": vmin, "vmax": vmax}
    mesh = ax.pcolormesh(
        da["lon"], da["lat"], da.values, cmap=cmap, shading="auto", rasterized=True, **limits
    )
    ax.set_title(title, fontsize=9)
    ax.set_aspect("equal")
    ax.xaxis.set_major_formatter(_degrees("WE", wrap=True))
    ax.yaxis.set_major_formatter(_degrees("SN", wrap=False))
    ax.tick_params(labelsize=7)
    return mesh


def _symmetric_limit(*arrays) -> float:
    return float(max(np.nanmax(np.abs(a.values)) for a in arrays)) or 1.0


def map_panels(data: dict, path: str | Path, title: str = "") -> Path:
    """Lat-lon maps: the input fields (one normalised-anomaly scale) in the first row and,
    when ``data["forecast"]`` is given, the predicted and observed anomaly on one shared
    degC scale with a single colour bar in the second."""
    inputs, forecast = data["inputs"], data.get("forecast")
    ncols = max(len(inputs), 2 if forecast else 1)
    nrows = 2 if forecast else 1
    first = next(iter(inputs.values()))
    aspect = float(np.ptp(first["lat"].values) / max(np.ptp(first["lon"].values), 1e-9))
    height = 4.4 * aspect + 0.8  # a row of maps, with its titles and tick labels
    fig, axes = plt.subplots(
        nrows,
        ncols,
        figsize=(4.4 * ncols + 1, height * nrows + 0.4),
        squeeze=False,
        layout="constrained",
    )
    for ax in axes.flat[len(inputs) : ncols]:
        ax.set_visible(False)
    limit = _symmetric_limit(*inputs.values())
    mesh = None
    for ax, (name, da) in zip(axes[0], inputs.items(), strict=False):
        mesh = draw_map(ax, da, -limit, limit, f"input: {name}")
    fig.colorbar(
        mesh, ax=axes[0, : len(inputs)].tolist(), shrink=0.85, label="normalised anomaly (σ)"
    )
    if forecast:
        pair = (forecast["predicted"], forecast["observed"])
        limit = _symmetric_limit(*pair)
        at = lead_label(forecast["lead"])
        titles = (f"predicted by {forecast['model']}, {at}", f"observed, {at}")
        for ax, da, name in zip(axes[1], pair, titles, strict=False):
            mesh = draw_map(ax, da, -limit, limit, name)
        for ax in axes[1, 2:]:
            ax.set_visible(False)
        fig.colorbar(mesh, ax=axes[1, :2].tolist(), shrink=0.85, label=forecast["units"])
    fig.suptitle(titled(title, f"example: initialised {data['time']}"), fontsize=10)
    return save(fig, path)
