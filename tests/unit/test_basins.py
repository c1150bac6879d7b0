"""The synthetic basins: determinism, the GenericDataset layout, and hydrological sanity."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from pipeline.sources.basins import (
    FLOW,
    PET,
    PRECIP,
    SNOW_DOMINATED,
    SPIN_UP_DAYS,
    STATIC,
    TEMP,
    VARIABLES,
    basins_datasets,
    read_truth,
    write_basins,
)

Basins = tuple[dict[str, xr.Dataset], pd.DataFrame, xr.Dataset]
SMALL = {"n_basins": 24, "years": 4, "start_year": 2000, "seed": 1}


@pytest.fixture(scope="module")
def basins() -> Basins:
    return basins_datasets(**SMALL)


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Path]]:
    out = tmp_path_factory.mktemp("basins")
    return out, write_basins(out, n_basins=3, years=2, start_year=2000, seed=5)


def _stack(series: dict[str, xr.Dataset], name: str) -> np.ndarray:
    """(basin, date) values of ``name``."""
    return np.stack([ds[name].to_numpy() for ds in series.values()])


def _nse(obs: np.ndarray, sim: np.ndarray) -> float:
    ok = ~np.isnan(obs)
    obs, sim = obs[ok], sim[ok]
    return float(1 - ((obs - sim) ** 2).sum() / ((obs - obs.mean()) ** 2).sum())


def test_same_seed_same_arrays_other_seed_other_arrays(tmp_path: Path) -> None:
    runs = [
        write_basins(tmp_path / name, n_basins=3, years=1, seed=s)
        for name, s in (("a", 7), ("b", 7), ("c", 8))
    ]
    for first, again, other in zip(*runs, strict=True):
        if first.suffix == ".csv":
            assert first.read_bytes() == again.read_bytes() != other.read_bytes()
            continue
        with xr.open_dataset(first) as a, xr.open_dataset(again) as b, xr.open_dataset(other) as c:
            for name in a.data_vars:
                assert a[name].to_numpy().tobytes() == b[name].to_numpy().tobytes(), name
            assert not a[FLOW].equals(c[FLOW])


def test_generic_dataset_layout(written: tuple[Path, list[Path]]) -> None:
    out, paths = written
    ids = ["basin_000", "basin_001", "basin_002"]
    assert paths == [
        *(out / "time_series" / f"{b}.nc" for b in ids),
        out / "attributes" / "attributes.csv",
        out / "truth.nc",
    ]
    for path in paths[:3]:
        with xr.open_dataset(path) as ds:
            assert list(ds.coords) == ["date"] and dict(ds.sizes) == {"date": 731}
            assert ds.indexes["date"].equals(pd.date_range("2000-01-01", "2001-12-31"))
            assert set(ds.data_vars) == set(VARIABLES)
            assert {n: ds[n].attrs["units"] for n in ds.data_vars} == {
                n: a["units"] for n, a in VARIABLES.items()
            }
            assert all(ds[n].dtype == np.float32 for n in ds.data_vars)
            assert ds["date"].encoding["units"].startswith("days since")
    table = pd.read_csv(out / "attributes" / "attributes.csv", dtype={"gauge_id": str})
    assert table.columns[0] == "gauge_id" and list(table["gauge_id"]) == ids
    assert list(table.columns[1:]) == list(STATIC)
    truth = read_truth(out / "truth.nc")
    assert truth["streamflow"].dims == ("entity", "time")
    assert list(truth["entity"].values) == ids


def test_water_balance_closes(basins: Basins, written: tuple[Path, list[Path]]) -> None:
    """P = Q + ET + change in storage, per basin over the record, from the files too."""
    series, _, truth = basins
    precip = _stack(series, PRECIP).sum(1)
    out = (truth["streamflow"] + truth["evaporation"]).sum("date").to_numpy()
    change = (truth["storage"].isel(date=-1) - truth["initial_storage"]).to_numpy()
    np.testing.assert_allclose(precip, out + change, rtol=1e-9)
    assert (truth["evaporation"].sum("date") > 0.1 * precip).all()  # ET is a real term

    out_dir, paths = written
    truth = read_truth(out_dir / "truth.nc")
    precip = []
    for path in paths[:3]:
        with xr.open_dataset(path) as ds:
            precip.append(float(ds[PRECIP].astype(float).sum()))
    terms = (truth["streamflow"] + truth["evaporation"]).sum("time")
    change = truth["storage"].isel(time=-1) - truth["initial_storage"]
    np.testing.assert_allclose(precip, (terms + change).to_numpy(), rtol=1e-4)


def test_climates_span_snow_rain_and_arid(basins: Basins) -> None:
    _, attributes, _ = basins
    snowy = attributes["frac_snow"] >= SNOW_DOMINATED
    assert 0.2 <= snowy.mean() <= 0.5
    assert (attributes["aridity"] > 2).sum() >= 2  # arid basins
    assert ((attributes["aridity"] < 1) & ~snowy).sum() >= 5  # humid rain-fed basins


def test_snow_basins_peak_in_spring_with_lagged_flow(basins: Basins) -> None:
    """Snow stores winter precipitation and releases it as melt: flow peaks in April-
    August (mostly May-June), exceeds April-July precipitation, and follows the last
    week's precipitation less closely than in rain-fed basins."""
    series, attributes, truth = basins
    month = truth.indexes["date"].month
    flow, precip = truth["streamflow"].to_numpy(), _stack(series, PRECIP)
    snowy = (attributes["frac_snow"] >= SNOW_DOMINATED).to_numpy()
    rainy = (attributes["frac_snow"] < 0.05).to_numpy()
    peak = np.array([np.argmax([f[month == m].mean() for m in range(1, 13)]) + 1 for f in flow])
    assert set(peak[snowy]) <= {4, 5, 6, 7, 8} and np.median(peak[snowy]) in {5, 5.5, 6}
    spring = np.isin(month, [4, 5, 6, 7])
    spring_ratio = flow[:, spring].sum(1) / precip[:, spring].sum(1)
    assert np.median(spring_ratio[snowy]) > 1 > np.median(spring_ratio[rainy])
    week = np.stack([np.convolve(p, np.ones(7))[: len(p)] for p in precip])
    recent = np.array([np.corrcoef(q, p)[0, 1] for q, p in zip(flow, week, strict=True)])
    assert np.median(recent[snowy]) < np.median(recent[rainy]) - 0.15


def test_observations_are_noisy_gappy_and_only_the_flow(basins: Basins) -> None:
    series, _, truth = basins
    obs, oracle = _stack(series, FLOW), truth["streamflow"].to_numpy()
    gaps = np.isnan(obs)
    assert 0 < gaps.mean() < 0.05 and gaps.any(1).all()
    assert not any(np.isnan(_stack(series, n)).any() for n in (PRECIP, TEMP, PET))
    assert not np.isnan(oracle).any()
    nse = np.array([_nse(o, s) for o, s in zip(obs, oracle, strict=True)])
    assert (nse < 1).all() and np.median(nse) > 0.9 and nse.min() > 0.7
    ratio = obs[~gaps] / oracle[~gaps]
    assert abs(np.median(np.log(ratio))) < 0.05  # multiplicative, centred


def test_attributes_inform_the_hidden_parameters() -> None:
    """Exposed properties carry the parameters (with scatter), so statics help a model."""
    _, attributes, truth = basins_datasets(n_basins=150, years=1, seed=2)

    def corr(attribute: str, parameter: str) -> float:
        return float(np.corrcoef(attributes[attribute], np.log(truth[parameter]))[0, 1])

    assert corr("slope_mean", "hbv_k1") > 0.5
    assert corr("geol_permeability", "hbv_k2") < -0.8
    assert corr("geol_permeability", "hbv_perc") > 0.8
    np.testing.assert_array_equal(attributes["soil_capacity"], truth["hbv_fc"])


def test_spin_up_leaves_no_trend(basins: Basins) -> None:
    """Storage settles before the record: the first and last year hold similar water."""
    _, _, truth = basins
    assert SPIN_UP_DAYS >= 365
    storage = truth["storage"].to_numpy()
    first, last = storage[:, :365].mean(1), storage[:, -365:].mean(1)
    assert np.median(np.abs(last - first) / (first + last)) < 0.2


def test_bad_sizes_are_refused() -> None:
    with pytest.raises(ValueError, match="n_basins"):
        basins_datasets(n_basins=0)


def test_a_synthetic_source_writes_the_basins_with_their_truth(tmp_path: Path) -> None:
    from pipeline.config import GENERATOR_VARIABLES
    from pipeline.sources import fetch

    assert GENERATOR_VARIABLES["basins"] == (*VARIABLES, *STATIC)  # what config checks know
    source = {"kind": "synthetic", "generator": "basins", "n_basins": 3, "years": 3, "seed": 2}
    manifest = fetch("basins_synth", {"source": source}, tmp_path)
    roles = {Path(f["path"]).relative_to(tmp_path).as_posix(): f["role"] for f in manifest["files"]}
    assert roles == {
        **{f"time_series/basin_00{i}.nc": "data" for i in range(3)},
        "attributes/attributes.csv": "data",
        "truth.nc": "truth",
    }
