"""Figures of the series task: the NSE CDF over entities and the hydrographs, written as
PNG and PDF, with gaps in the observations and an entity far below NSE -1."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from matplotlib.colors import to_hex
from matplotlib.figure import Figure

from pipeline import metrics as m
from pipeline import plots
from pipeline.tasks import series_plots as sp

ROLES = {
    "lstm": "model",
    "lstm-ensemble": "ensemble",
    "ridge": "baseline",
    "climatology": "baseline",
    "oracle": "ceiling",
}


def basins(n: int = 6, days: int = 3 * 365, freq: str = "D") -> dict[str, xr.DataArray]:
    """Observed flow (mm/day) of ``n`` basins with gaps, and forecasts of falling quality:
    the oracle near it, the network and its ensemble noisier, the ridge baseline noisier
    still; the last basin's network forecast is far off (NSE < -1)."""
    rng = np.random.default_rng(0)
    time = pd.date_range("2010-01-01", periods=days, freq=freq).values
    entity = [f"basin{k:02d}" for k in range(n)]
    season = 1.5 + np.sin(2 * np.pi * np.arange(days) / 365.25)
    truth = season * rng.lognormal(0.0, 0.4, (n, days))

    def series(values: np.ndarray) -> xr.DataArray:
        return xr.DataArray(
            values, coords={"entity": entity, "time": time}, dims=("entity", "time")
        )

    observed = truth * rng.lognormal(0.0, 0.1, truth.shape)
    observed[:, days // 10 : days // 10 + max(days // 30, 1)] = np.nan
    observed[1, days // 3] = np.nan
    lstm = truth + rng.normal(0.0, 0.3, truth.shape)
    lstm[-1] = truth[-1] * 3 + 2
    out = {
        "oracle": series(truth),
        "lstm": series(lstm),
        "lstm-ensemble": series(truth + rng.normal(0.0, 0.25, truth.shape)),
        "ridge": series(truth + rng.normal(0.0, 0.6, truth.shape)),
        "climatology": series(np.broadcast_to(season, truth.shape).copy()),
    }
    obs = series(observed).rename("streamflow")
    obs.attrs["units"] = "mm/day"
    return {"observed": obs, **out}


def per_entity(data: dict[str, xr.DataArray]) -> pd.DataFrame:
    obs = data["observed"]
    rows = [
        {"forecast": name, "role": ROLES[name], "entity": str(e), "nse": v}
        for name in ROLES
        for e, v in zip(
            obs["entity"].values, m.nse(sim=data[name].values, obs=obs.values), strict=True
        )
    ]
    return pd.DataFrame(rows)


def written(path: Path) -> bool:
    return path.stat().st_size > 5000 and path.with_suffix(".pdf").stat().st_size > 5000


def test_nse_cdf_ranks_forecasts_by_median_and_counts_entities_below_minus_one(
    tmp_path: Path, figures: list[Figure]
) -> None:
    table = per_entity(basins())
    assert table.loc[table["forecast"] == "lstm", "nse"].min() < -1
    path = sp.nse_cdf(table, tmp_path / "nse_cdf.png", "camels", noun="basins")
    assert written(path)
    ax = figures[0].axes[0]
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    medians = table.groupby("forecast")["nse"].median().sort_values(ascending=False)
    assert [label.split(":")[0].split(" ")[0] for label in labels] == list(medians.index)
    lstm = next(label for label in labels if label.startswith("lstm:"))
    assert f"median {medians['lstm']:.2f}, 1/6 below -1" in lstm
    assert "oracle (skill ceiling)" in labels[0]
    for line in ax.get_lines():
        assert np.all(np.asarray(line.get_xdata(), dtype=float) >= -1.0)
    assert "basins" in ax.get_ylabel() and "(unitless)" in ax.get_xlabel()


def test_nse_cdf_counts_an_unscored_entity_apart(tmp_path: Path, figures: list[Figure]) -> None:
    table = per_entity(basins(n=4))
    table.loc[(table["forecast"] == "ridge") & (table["entity"] == "basin00"), "nse"] = np.nan
    sp.nse_cdf(table, tmp_path / "nse_cdf.png")
    ridge = next(
        t.get_text() for t in figures[0].axes[0].get_legend().get_texts() if "ridge" in t.get_text()
    )
    assert "/3 below -1, 1 not scored" in ridge


def test_nse_cdf_takes_one_score_per_forecast_and_entity(tmp_path: Path) -> None:
    table = per_entity(basins(n=3))
    with pytest.raises(ValueError, match="average seeds first"):
        sp.nse_cdf(pd.concat([table, table.iloc[:1]]), tmp_path / "nse_cdf.png")


def test_roles_keep_their_look_whatever_the_baseline_is_called() -> None:
    styles = sp.series_styles(ROLES | {"persistence": "baseline"})
    assert styles["ridge"].ls == "-." and styles["lstm"].ls == "-"
    assert styles["lstm-ensemble"].ls == "--"
    assert to_hex(styles["lstm-ensemble"].color) == to_hex(styles["lstm"].color)
    assert styles["oracle"] == plots.REFERENCE_STYLES["oracle"]
    assert styles["persistence"] == plots.REFERENCE_STYLES["persistence"]
    colours = [s.color for s in styles.values() if s not in (styles["lstm-ensemble"],)]
    assert len(set(colours)) == len(colours)


def test_best_median_worst_are_real_scored_entities() -> None:
    scores = pd.Series({"a": 0.9, "b": np.nan, "c": -3.0, "d": 0.5, "e": 0.7})
    assert sp.best_median_worst(scores) == {"best": "a", "median": "e", "worst": "c"}
    assert sp.best_median_worst(pd.Series({"a": 0.2, "b": 0.8})) == {"best": "b", "worst": "a"}
    with pytest.raises(ValueError, match="no entity"):
        sp.best_median_worst(pd.Series({"a": np.nan}))


def test_hydrographs_show_gaps_units_and_each_forecasts_nse(
    tmp_path: Path, figures: list[Figure]
) -> None:
    data = basins()
    observed = data.pop("observed")
    table = per_entity({"observed": observed, **data})
    lstm = table[table["forecast"] == "lstm"].set_index("entity")["nse"]
    entities = sp.best_median_worst(lstm)
    shown = {name: data[name] for name in ("lstm", "ridge", "oracle")}
    path = sp.hydrographs(observed, shown, ROLES, entities, tmp_path / "hydro.png", "camels")
    assert written(path)
    axes = figures[0].axes
    assert len(axes) == 3
    for ax, (which, entity) in zip(axes, entities.items(), strict=True):
        assert ax.get_title().startswith(f"{which}: {entity}")
        assert f"lstm {lstm[entity]:.2f}" in ax.get_title()
        assert ax.get_ylabel() == "streamflow (mm/day)"
        observed_line = next(line for line in ax.get_lines() if line.get_label() == "observed")
        assert len(observed_line.get_xdata()) == sp.WINDOW_STEPS  # one of three years
        assert np.isnan(observed_line.get_ydata()).any()  # the gap stays a gap
    assert entities["worst"] == "basin05" and "lstm -" in axes[2].get_title()
    legend = [t.get_text() for t in figures[0].legends[0].get_texts()]
    assert "observation missing" in legend and "oracle (skill ceiling)" in legend
    assert axes[-1].get_xlabel() == "date (daily steps; its first 365 days shown)"


def test_a_short_monthly_record_is_drawn_whole(tmp_path: Path, figures: list[Figure]) -> None:
    data = basins(n=2, days=60, freq="MS")
    observed = data.pop("observed")
    observed.attrs["units"] = "degC"
    sp.hydrographs(
        observed.rename("temperature"),
        {"lstm": data["lstm"]},
        ROLES,
        {"station": "basin00"},
        tmp_path / "monthly.png",
    )
    ax = figures[0].axes[0]
    assert ax.get_xlabel() == "date (monthly steps; the whole test period shown)"
    assert ax.get_ylabel() == "temperature (degC)"
    assert len(ax.get_lines()[0].get_xdata()) == 60


def test_hydrographs_need_units(tmp_path: Path) -> None:
    data = basins(n=2, days=30)
    observed = data.pop("observed")
    observed.attrs.clear()
    with pytest.raises(ValueError, match="units"):
        sp.hydrographs(observed, data, ROLES, {"best": "basin00"}, tmp_path / "x.png")


def test_skill_vs_lead_counts_leads_in_the_data_step(tmp_path: Path, figures: list[Figure]) -> None:
    leads = [1, 2, 4, 8]
    nse = {
        "lstm": ("model", [0.8, 0.6, 0.4, 0.1]),
        "ar": ("baseline", [0.85, 0.55, 0.3, 0.0]),
        "climatology": ("baseline", [0.2, 0.2, 0.2, 0.2]),
        "oracle": ("ceiling", [0.9, 0.8, 0.6, 0.4]),
    }
    table = pd.DataFrame(
        [
            {
                "forecast": name,
                "role": role,
                "dim": "lead",
                "group": str(lead),
                "metric": "nse",
                "mean": value,
                "std": 0.02,
                "n_seeds": 2,
            }
            for name, (role, values) in nse.items()
            for lead, value in zip(leads, values, strict=True)
        ]
    )
    path = sp.skill_vs_lead(table, tmp_path / "skill.png", "station", "weekly")
    assert written(path)
    ax = figures[0].axes[0]
    assert ax.get_xlabel() == "lead (weeks)" and list(ax.get_xticks()) == leads
    assert ax.get_ylabel() == "NSE (unitless), test period"
    lines = {line.get_label(): line for line in ax.get_lines()}
    assert {"lstm", "ar", "climatology", "oracle (skill ceiling)"} <= set(lines)
    best = lines["best forecast at the lead"].get_ydata()
    assert list(best) == [0.85, 0.6, 0.4, 0.2]  # the baseline wins at lead 1, never the oracle
