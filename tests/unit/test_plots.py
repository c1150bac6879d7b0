"""Figures: the over-fitting flag, styles, ticks, titles, shared map scales, the importance
grid, and every plot renders a 300-dpi PNG with a PDF beside it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from matplotlib.colors import to_hex
from matplotlib.figure import Figure
from PIL import Image

from pipeline import plots, runs
from pipeline.scores import ALL, score_rows, scores_table
from pipeline.tasks import get_task


def history(val: list[float], train: list[float]) -> pd.DataFrame:
    return pd.DataFrame(
        {"epoch": range(1, len(val) + 1), "train_loss": train, "val_loss": val, "lr": 1e-3}
    )


def test_overfitting_is_flagged_when_val_rises_while_train_falls() -> None:
    train = [1.0, 0.8, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1]
    val = [1.0, 0.8, 0.7, 0.7, 0.75, 0.8, 0.9, 1.0]
    assert plots.overfitting_epochs(history(val, train)) == [5, 6, 7, 8]


def test_noise_on_a_plateau_is_not_overfitting() -> None:
    train = list(np.linspace(1.0, 0.5, 10))
    val = [1.0, 0.8, 0.6, 0.5, 0.501, 0.499, 0.5005, 0.4995, 0.502, 0.5]
    assert plots.overfitting_epochs(history(val, train)) == []


def test_plots_render(tmp_path: Path) -> None:
    h = history([1.0, 0.8, 0.9, 1.0, 1.2], [1.0, 0.7, 0.5, 0.4, 0.3])
    assert plots.loss_curves(h, tmp_path / "loss.png").stat().st_size > 5000
    cm = np.array([[5, 1, 0], [2, 10, 1], [0, 1, 4]])
    assert plots.confusion_matrix(cm, ["a", "b", "c"], tmp_path / "cm.png").stat().st_size > 5000
    curves = {"a": (np.array([0, 0.5, 1]), np.array([0, 0.8, 1]), 0.65)}
    assert plots.roc_curves(curves, tmp_path / "roc.png").stat().st_size > 5000
    obs = np.random.default_rng(0).standard_normal((50, 2))
    assert plots.scatter(obs, obs * 0.5, [1, 6], tmp_path / "sc.png").stat().st_size > 5000
    time = np.arange("2000-01", "2004-03", dtype="datetime64[M]")
    path = plots.index_timeseries(
        time, obs, {"model": obs * 0.9}, [1, 6], [1, 6], tmp_path / "ts.png"
    )
    assert path.stat().st_size > 5000


# ------------------------------------------------------------------ figures for a talk

LEADS = [1, 3, 6, 9, 12]
DEFAULT_MODELS = ["cnn", "convlstm", "lstm", "resnet", "unet"]
REFERENCES = ("persistence", "climatology", "linear", "oracle")
ROLES = dict.fromkeys(("persistence", "climatology", "linear"), "baseline") | {"oracle": "ceiling"}


def summary_table(acc: dict[str, list[float]], leads: list[int] = LEADS) -> pd.DataFrame:
    """summary.csv rows of the ACC metric: {forecast: ACC per lead}."""
    return pd.DataFrame(
        [
            {
                "forecast": name,
                "role": ROLES.get(name, "ensemble" if name.endswith("-ensemble") else "model"),
                "dim": "lead",
                "group": str(lead),
                "metric": "acc",
                "mean": value,
                "std": 0.01,
                "n_seeds": 2,
            }
            for name, values in acc.items()
            for lead, value in zip(leads, values, strict=True)
        ]
    )


def run_scores(model: str, leads: list[int] = LEADS) -> pd.DataFrame:
    """metrics.csv of one run: falling skill for the network and every reference."""
    rows = []
    for j, name in enumerate((model, *REFERENCES)):
        role = "model" if name == model else ROLES[name]
        for k, lead in enumerate(leads):
            acc = float("nan") if name == "climatology" else 0.95 - 0.05 * k - 0.01 * j
            rows += score_rows(name, role, "lead", lead, {"acc": acc, "rmse": 0.3 + 0.05 * k})
        rows += score_rows(name, role, "lead", ALL, {"acc": 0.5, "rmse": 0.5})
    return scores_table(rows)


def line_styles(fig: Figure) -> dict[str, tuple[str, str]]:
    """{legend label: (colour, marker)} of the labelled lines of a figure."""
    return {
        line.get_label(): (to_hex(line.get_color()), str(line.get_marker()))
        for ax in fig.axes
        for line in ax.get_lines()
        if not line.get_label().startswith("_")
    }


def test_every_forecast_in_a_summary_has_its_own_colour_and_marker(
    tmp_path: Path, figures: list[Figure]
) -> None:
    forecasts = [*DEFAULT_MODELS, "persistence", "linear", "oracle"]
    acc = {
        name: list(np.linspace(0.9, 0.5, len(LEADS)) - 0.01 * k) for k, name in enumerate(forecasts)
    }
    plots.summary_skill(summary_table(acc), tmp_path / "skill.png", "enso")
    styles = {k: v for k, v in line_styles(figures[0]).items() if "best" not in k}
    assert len(styles) == len(forecasts)
    colours = [colour for colour, _ in styles.values()]
    markers = [marker for _, marker in styles.values()]
    assert len(set(colours)) == len(colours), styles  # HEAD: resnet and the oracle both red
    assert len(set(markers)) == len(markers), styles


def test_a_model_looks_the_same_in_its_run_and_in_the_summary(
    tmp_path: Path, figures: list[Figure]
) -> None:
    plots.skill_vs_lead(
        run_scores("resnet"), tmp_path / "run.png", "enso · resnet · seed 0", "resnet"
    )
    acc = {name: [0.9, 0.8, 0.7, 0.6, 0.5] for name in [*DEFAULT_MODELS, "linear", "oracle"]}
    plots.summary_skill(summary_table(acc), tmp_path / "summary.png", "enso")
    run, summary = (line_styles(fig) for fig in figures)
    for name in ("resnet", "linear"):
        assert run[name] == summary[name]


def test_styles_stay_distinct_for_any_variant_names() -> None:
    names = [f"variant{k}" for k in range(25)] + list(plots.REFERENCE_STYLES)
    styles = plots.forecast_styles(names)
    pairs = {(s.color, s.marker) for s in styles.values()}
    assert len(pairs) == len(names)
    # a model's style does not depend on the other forecasts in the figure
    assert (
        plots.forecast_styles(["unet", "persistence"])["unet"]
        == plots.forecast_styles(DEFAULT_MODELS)["unet"]
    )


def test_a_seed_ensemble_is_its_variant_dashed(tmp_path: Path, figures: list[Figure]) -> None:
    styles = plots.forecast_styles(["resnet", "resnet-ensemble", "persistence"])
    member, ensemble = styles["resnet"], styles["resnet-ensemble"]
    assert (ensemble.color, ensemble.marker, ensemble.ls) == (member.color, member.marker, "--")
    assert plots.forecast_styles(["resnet-ensemble"]) == {"resnet-ensemble": ensemble}  # alone
    acc = {"resnet": [0.9, 0.8, 0.7, 0.6, 0.5], "resnet-ensemble": [0.92, 0.82, 0.72, 0.62, 0.52]}
    plots.summary_skill(summary_table(acc), tmp_path / "summary.png", "enso")
    lines = {line.get_label(): line for line in figures[0].axes[0].get_lines()}
    assert lines["resnet-ensemble"].get_linestyle() == "--"
    assert lines["resnet"].get_linestyle() == "-"
    assert to_hex(lines["resnet-ensemble"].get_color()) == to_hex(lines["resnet"].get_color())


def test_ticks_fall_at_the_leads_and_axes_carry_units(
    tmp_path: Path, figures: list[Figure]
) -> None:
    plots.skill_vs_lead(run_scores("unet"), tmp_path / "run.png", "enso · unet · seed 3", "unet")
    acc = {name: [0.9, 0.8, 0.7, 0.6, 0.5] for name in ["unet", "persistence"]}
    plots.summary_skill(summary_table(acc), tmp_path / "summary.png", "enso")
    run, summary = figures
    for ax in [*run.axes, *summary.axes]:
        assert list(ax.get_xticks()) == LEADS  # HEAD: matplotlib's 2, 4, 6, ...
        assert ax.get_xlabel() == "lead (months)"
    assert [ax.get_ylabel() for ax in run.axes] == ["ACC (unitless)", "RMSE (degC)"]
    assert "(unitless)" in summary.axes[0].get_ylabel()


def test_run_figures_are_titled_with_experiment_model_and_seed(
    tmp_path: Path, figures: list[Figure]
) -> None:
    title = runs.run_title(tmp_path / "results" / "enso" / "runs" / "unet" / "seed3")
    assert title == "enso · unet · seed 3"
    obs = np.random.default_rng(0).standard_normal((50, 2))
    time = np.arange("2000-01", "2004-03", dtype="datetime64[M]")
    plots.skill_vs_lead(run_scores("unet", [1, 6]), tmp_path / "a.png", title, "unet")
    plots.index_timeseries(
        time, obs, {"unet": obs}, [1, 6], [1, 6], tmp_path / "b.png", title=title
    )
    plots.scatter(obs, obs * 0.5, [1, 6], tmp_path / "c.png", title)
    plots.loss_curves(history([1.0, 0.8], [1.0, 0.7]), tmp_path / "d.png", title)
    for fig in figures:
        texts = [fig.get_suptitle(), *(ax.get_title() for ax in fig.axes)]
        assert any(title in text for text in texts), texts


def test_predicted_and_observed_maps_share_one_scale_on_lat_lon_axes(
    tmp_path: Path, figures: list[Figure]
) -> None:
    lat, lon = np.arange(-25.0, 30.0, 10.0), np.arange(5.0, 360.0, 10.0)
    rng = np.random.default_rng(0)

    def field(scale: float) -> xr.DataArray:
        values = scale * rng.standard_normal((lat.size, lon.size))
        return xr.DataArray(values, coords={"lat": lat, "lon": lon}, dims=("lat", "lon"))

    data = {
        "time": "2007-11",
        "inputs": {"sst": field(1.0), "heat_content": field(3.0)},
        "forecast": {
            "model": "unet seed 0",
            "lead": 6,
            "predicted": field(0.5),  # a damped forecast: its own scale would hide that
            "observed": field(2.0),
            "units": "anomaly (degC)",
        },
    }
    plots.map_panels(data, tmp_path / "maps.png", "enso")
    fig = figures[0]
    meshes = {
        ax.get_title(): ax.collections[0] for ax in fig.axes if ax.collections and ax.get_title()
    }
    predicted = next(m for t, m in meshes.items() if t.startswith("predicted"))
    observed = next(m for t, m in meshes.items() if t.startswith("observed"))
    assert predicted.get_clim() == observed.get_clim()
    assert predicted.colorbar is observed.colorbar or predicted.get_cmap() == observed.get_cmap()
    colorbars = [ax for ax in fig.axes if ax.get_label() == "<colorbar>"]
    assert len(colorbars) == 2  # inputs and forecast, not one per panel
    fig.canvas.draw()
    ax = next(ax for ax in fig.axes if ax.get_title().startswith("predicted"))
    lats = [t.get_text() for t in ax.get_yticklabels() if t.get_text()]
    lons = [t.get_text() for t in ax.get_xticklabels() if t.get_text()]
    assert any(t.endswith("°N") for t in lats) and any(t.endswith("°S") for t in lats), lats
    assert any(t.endswith("°E") for t in lons) and any(t.endswith("°W") for t in lons), lons


def importance_table(leads: list[int], groups: list[str]) -> pd.DataFrame:
    """importance.csv of a run: single-pass scores per group, multi-pass cumulative; the
    leads as text, as importance_job writes them."""
    rng = np.random.default_rng(1)
    rows = []
    for lead in leads:
        scores = rng.uniform(0, 1, len(groups))
        order = np.argsort(-scores)
        for rank, j in enumerate(order, start=1):
            rows.append((str(lead), "single", 1, groups[j], scores[j], rank))
            rows.append((str(lead), "multi", rank, groups[j], scores[order[:rank]].sum(), rank))
    table = pd.DataFrame(rows, columns=["lead", "method", "pass", "group", "score", "rank"])
    return table.assign(ci_low=table["score"] - 0.05, ci_high=table["score"] + 0.05)


def test_importance_figure_is_a_grid_with_one_group_order(
    tmp_path: Path, figures: list[Figure]
) -> None:
    groups = ["sst", "heat_content", "taux", "ssh", "sss"]
    table = importance_table(LEADS, groups)
    task = get_task("forecast")
    plots.importance_bars(
        table,
        tmp_path / "importance.png",
        "enso · unet · seed 0",
        task.dim,
        task.group_label,
        task.importance_label,
    )
    fig = figures[0]
    panels = [ax for ax in fig.axes if ax.get_visible() and ax.patches]
    assert len(panels) == 2 * len(LEADS)
    rows = {round(ax.get_position().y0, 3) for ax in panels}
    assert len(rows) >= 2  # HEAD: all ten panels in one row
    assert fig.get_size_inches()[0] <= 16  # HEAD: 28 inches wide
    order = plots.importance_order(table)
    for ax in panels:
        method, lead = ax.get_title().split("-pass, lead ")
        part = table[(table["method"] == method) & (table["lead"] == lead.split()[0])]
        expected = part.set_index("group")["score"].reindex(order).to_numpy()
        bars = sorted(ax.patches, key=lambda p: p.get_y())
        np.testing.assert_allclose([b.get_width() for b in bars], expected)
    assert any("cumulative" in t.get_text() for t in fig.texts)
    assert panels[0].get_xlabel() == "ΔMSE (degC²)"


def test_importance_heatmap_of_classes(tmp_path: Path, figures: list[Figure]) -> None:
    """Output groups that are names (classes) keep the task's order, and their axis label."""
    table = importance_table([0, 1], ["sst", "tcwv"]).rename(columns={"lead": "class"})
    table["class"] = table["class"].map({"0": "TC", "1": "AR"})
    both = pd.concat([table.assign(variant="unet", seed=0), table.assign(variant="fcn", seed=0)])
    plots.importance_heatmap(both, tmp_path / "heatmap.png", "climatenet", "class", "Δloss")
    panels = [ax for ax in figures[0].axes if ax.get_title() in {"unet", "fcn"}]
    assert len(panels) == 2
    for ax in panels:
        labels = [t.get_text() for t in ax.get_xticklabels()]
        assert labels == ["TC", "AR"]  # the task's order, as the table lists them
        assert ax.get_xlabel() == "class"
    assert any("Δloss" in ax.get_ylabel() for ax in figures[0].axes)


def test_an_interval_that_misses_its_score_still_draws(tmp_path: Path) -> None:
    """A short test period and few bootstrap draws give such rows (an LSTM run of the
    tiny synthetic study: score -0.0291, interval -0.0488 to -0.0307)."""
    table = importance_table([1, 6], ["sst", "heat_content"])
    first = table.index[0]
    table.loc[first, ["ci_low", "ci_high"]] = table.loc[first, "score"] + [0.01, 0.05]
    assert plots.importance_bars(table, tmp_path / "importance.png").exists()


def test_overfitting_shades_only_the_flagged_epochs(tmp_path: Path, figures: list[Figure]) -> None:
    train = list(np.linspace(1.0, 0.1, 10))
    val = [1.0, 0.8, 0.7, 0.6, 0.65, 0.66, 0.59, 0.58, 0.64, 0.66]  # epochs 7-8: new bests
    h = history(val, train)
    assert plots.overfitting_epochs(h) == [5, 6, 9, 10]
    plots.loss_curves(h, tmp_path / "loss.png")
    ax = figures[0].axes[0]
    spans = [(p.get_x(), p.get_x() + p.get_width()) for p in ax.patches]
    assert spans == [(4.5, 6.5), (8.5, 10.5)]  # HEAD: one span 4.5-10.5 over epochs 7-8
    assert plots.overfitting_spans(h) == [(5, 6), (9, 10)]
    assert not any("not converged" in t.get_text() for t in ax.texts)


@pytest.mark.parametrize(
    "val",
    [
        [1.0, 0.8, 0.7, 0.65],  # best epoch is the last
        [1.0, 0.5, 0.9, 0.8, 0.7, 0.6],  # falling again after a jump
    ],
)
def test_a_run_still_improving_is_flagged_not_converged(
    val: list[float], tmp_path: Path, figures: list[Figure]
) -> None:
    h = history(val, list(np.linspace(1.0, 0.2, len(val))))
    plots.loss_curves(h, tmp_path / "loss.png")
    assert any("not converged" in t.get_text() for t in figures[0].axes[0].texts)
    assert plots.still_improving(h)


def test_converged_run_is_not_flagged() -> None:
    h = history([1.0, 0.7, 0.6, 0.61, 0.605, 0.607], [1.0, 0.8, 0.6, 0.5, 0.45, 0.4])
    assert not plots.still_improving(h)


def test_figures_are_300_dpi_png_with_a_pdf_beside(tmp_path: Path) -> None:
    path = plots.roc_curves(
        {"a": (np.array([0, 0.5, 1]), np.array([0, 0.8, 1]), 0.65)}, tmp_path / "roc.png"
    )
    assert path == tmp_path / "roc.png"
    with Image.open(path) as png:
        assert png.format == "PNG"
        assert np.allclose(png.info["dpi"], 300, atol=0.5)
    assert (tmp_path / "roc.pdf").read_bytes().startswith(b"%PDF")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["roc.pdf", "roc.png"]


def test_a_large_sweep_still_gets_styles() -> None:
    names = [f"cnn-k{k}-lr{lr}" for k in range(12) for lr in range(10)]  # 120 variants
    styles = plots.forecast_styles([*names, "persistence"])
    assert len(styles) == 121
    assert len({styles[n] for n in names}) == plots.N_SLOTS  # every style used once first
