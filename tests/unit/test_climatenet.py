"""ClimateNet's archive layout: one file per time step, expert copies, corrupt files.

The files are written here in exactly that layout (data-YYYY-MM-DD-HH-R_N.nc; TMQ, U850,
V850, PSL over time(1) x lat x lon; LABELS over lat x lon, int64), on a 16 x 32 grid with
latitudes -90..90 as CAM5 stores them, and go through the path a user's run takes: the
download (manifest), the pre-flight check, the regrid job.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from pipeline.datacheck import check_local_datasets
from pipeline.regrid import normalise_coords, open_raw, regrid, regrid_dataset
from pipeline.sources import fetch
from pipeline.sources.climatenet import group_copies, is_climatenet
from pipeline.variables import DataError

LAT = np.linspace(-90.0, 90.0, 16)
LON = np.arange(32) * 11.25
CHANNELS = ("TMQ", "U850", "V850", "PSL")
VARIABLES = {name: {} for name in (*CHANNELS, "LABELS")}
GRID = {
    "resolution": 30.0,
    "lat": [-90, 90],
    "lon": [0, 360],
    "method": "conservative",
    "nan_threshold": 0.5,
    "time_chunk": 4,
}
#: Six time steps; two labelled by three experts (copies _0, _1, _2).
DATES = [
    "1996-06-09T01",
    "1997-07-01T01",
    "1998-08-20T01",
    "2000-09-06T01",
    "2002-10-31T00",
    "2005-11-05T18",
]
COPIES = {1: 3, 3: 3}


def stem(date: str, run: int = 1) -> str:
    day, hour = date.split("T")
    return f"data-{day}-{hour}-{run}"


def write_file(
    path: Path, date: str, seed: int, labels: np.ndarray | None = None, time_coord: bool = True
) -> Path:
    """One ClimateNet file: inputs drawn from ``date`` alone (so copies share them),
    ``labels`` (drawn from ``seed`` if None)."""
    rng = np.random.default_rng(int(date[:4] + date[5:7] + date[8:10]))
    data = {
        name: (("time", "lat", "lon"), rng.normal(size=(1, LAT.size, LON.size)).astype("f4"))
        for name in CHANNELS
    }
    if labels is None:
        labels = np.random.default_rng(seed).choice(3, size=(LAT.size, LON.size), p=[0.6, 0.1, 0.3])
    data["LABELS"] = (("lat", "lon"), labels.astype("i8"))
    coords = {"lat": LAT, "lon": LON}
    if time_coord:
        coords["time"] = [np.datetime64(date)]
    ds = xr.Dataset(data, coords=coords)
    if time_coord:  # CAM5 history files: days since, noleap
        ds["time"].encoding = {"units": "days since 1996-01-01 00:00:00", "calendar": "noleap"}
    ds.to_netcdf(path, format="NETCDF4")
    return path


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def archive(root: Path) -> dict[int, list[Path]]:
    """DATES with their COPIES; date 3's copy _1 truncated; date 5 without a time
    coordinate (its time comes from its name)."""
    root.mkdir(parents=True, exist_ok=True)
    files = {}
    for i, date in enumerate(DATES):
        files[i] = [
            write_file(root / f"{stem(date)}_{n}.nc", date, seed=10 * i + n, time_coord=i != 5)
            for n in range(COPIES.get(i, 1))
        ]
    truncate(files[3][1])
    return files


def config(root: Path, splits: dict | None = None) -> dict:
    dataset = {"source": {"kind": "local", "path": str(root / "*.nc")}, "variables": VARIABLES}
    splits = splits or {"train": [1996, 1999], "val": [2000, 2001], "test": [2002, 2005]}
    return {
        "datasets": {"climatenet": dataset},
        "experiments": {
            "seg": {"dataset": "climatenet", "task": {"kind": "segmentation"}, "splits": splits}
        },
    }


def snapshots(exp: dict) -> None:
    """A segmentation task's time step: any (see pipeline.datacheck.check_time)."""
    return None


def expected_labels(path: Path) -> np.ndarray:
    """One copy's LABELS regridded on its own (regrid_labels on the raw file)."""
    raw = xr.open_dataset(path)[["LABELS"]].expand_dims(time=1)
    return regrid(raw, GRID)["LABELS"].values[0]


def test_the_archive_becomes_one_time_step_per_date(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    files = archive(tmp_path / "ClimateNet" / "train")
    cfg = config(tmp_path / "ClimateNet" / "train")
    manifest = fetch("climatenet", cfg["datasets"]["climatenet"], tmp_path / "raw")
    assert len(manifest["files"]) == 10  # the download lists every file, corrupt or not

    corrupt = str(files[3][1].resolve())
    with caplog.at_level(logging.WARNING):
        check_local_datasets(cfg, step_of=snapshots)
    assert [r for r in caplog.records if corrupt in r.getMessage()], caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        regrid_dataset(
            manifest, cfg["datasets"]["climatenet"], GRID, tmp_path / "g.zarr", time_step=None
        )
    assert [r for r in caplog.records if corrupt in r.getMessage()], caplog.text

    store = xr.open_zarr(tmp_path / "g.zarr")
    assert store.sizes["time"] == len(DATES)  # copies share their date: one time step each
    assert list(store["time"].dt.strftime("%Y-%m-%dT%H").values) == DATES
    assert store["time"].dt.calendar == "noleap"  # date 5's name read in the archive's calendar
    assert store["LABELS"].dims == ("time", "expert", "lat", "lon")
    assert store["LABELS"].dtype == np.int8 and store["TMQ"].dtype == np.float32
    assert store["LABELS"].attrs["flag_meanings"] == "background tropical_cyclone atmospheric_river"

    for i, copies in files.items():
        first = xr.open_dataset(copies[0])[list(CHANNELS)]
        inputs = regrid(first, GRID).astype("float32")
        for name in CHANNELS:
            np.testing.assert_allclose(store[name][i], inputs[name][0], rtol=1e-6)
        readable = [p for p in copies if p != files[3][1]]
        labels = store["LABELS"][i].values
        for k, path in enumerate(readable):
            np.testing.assert_array_equal(labels[k], expected_labels(path))
        assert (labels[len(readable) :] == -1).all()  # fewer copies than the most-copied date


def test_without_copies_labels_are_time_lat_lon(tmp_path: Path) -> None:
    for i, date in enumerate(DATES[:3]):
        write_file(tmp_path / f"{stem(date)}_0.nc", date, seed=i)
    manifest = fetch("climatenet", config(tmp_path)["datasets"]["climatenet"], tmp_path / "raw")
    raw = open_raw(manifest, 4, VARIABLES, time_step=None)
    assert raw["LABELS"].dims == ("time", "lat", "lon") and raw["LABELS"].dtype == np.int8
    out = regrid(normalise_coords(raw, 0.0), GRID)
    assert out["LABELS"].dims == ("time", "lat", "lon")


def test_an_archive_with_no_readable_file_names_them_all(tmp_path: Path) -> None:
    paths = [write_file(tmp_path / f"{stem(d)}_0.nc", d, seed=0) for d in DATES[:2]]
    for path in paths:
        truncate(path)
    pattern = rf"{paths[0].resolve()}, {paths[1].resolve()}: none of these ClimateNet files"
    with pytest.raises(DataError, match=pattern):
        check_local_datasets(config(tmp_path), step_of=snapshots)
    manifest = fetch("climatenet", config(tmp_path)["datasets"]["climatenet"], tmp_path / "raw")
    with pytest.raises(DataError, match=pattern):
        open_raw(manifest, 4, VARIABLES, time_step=None)


def test_a_label_outside_climatenets_classes_is_named(tmp_path: Path) -> None:
    labels = np.zeros((LAT.size, LON.size), dtype=int)
    labels[3, 4] = 7
    write_file(tmp_path / f"{stem(DATES[0])}_0.nc", DATES[0], seed=0)
    bad = write_file(tmp_path / f"{stem(DATES[1])}_0.nc", DATES[1], seed=0, labels=labels)
    manifest = fetch("climatenet", config(tmp_path)["datasets"]["climatenet"], tmp_path / "raw")
    match = rf"{bad.resolve()}: variable 'LABELS' holds class\(es\) \[7\] outside its classes"
    with pytest.raises(DataError, match=match):
        regrid_dataset(
            manifest, {"variables": VARIABLES}, GRID, tmp_path / "g.zarr", time_step=None
        )


def test_two_runs_at_one_time_step_are_duplicates(tmp_path: Path) -> None:
    a = write_file(tmp_path / f"{stem(DATES[0], run=1)}_0.nc", DATES[0], seed=0)
    b = write_file(tmp_path / f"{stem(DATES[0], run=2)}_0.nc", DATES[0], seed=1)
    with pytest.raises(DataError, match=rf"{a.resolve()} and {b.resolve()}: .* two time steps at"):
        check_local_datasets(config(tmp_path), step_of=snapshots)


def test_a_split_without_a_time_step_is_named(tmp_path: Path) -> None:
    for i, date in enumerate(DATES[:3]):
        write_file(tmp_path / f"{stem(date)}_0.nc", date, seed=i)
    cfg = config(tmp_path, {"train": [1996, 1997], "val": [1998, 1998], "test": [2010, 2011]})
    with pytest.raises(DataError, match=r"experiments\.seg\.splits\.test asks for 2010-2011"):
        check_local_datasets(cfg, step_of=snapshots)


def test_the_layout_is_known_by_every_file_name() -> None:
    names = [f"/a/data-2000-09-06-01-1_{n}.nc" for n in (10, 2, 0)]
    assert is_climatenet(names)
    assert not is_climatenet([*names, "/a/sst.mnmean.nc"])
    assert not is_climatenet([])
    # copies in the order of N (numeric, so _10 comes after _2)
    assert group_copies(names) == {"data-2000-09-06-01-1": [names[2], names[1], names[0]]}
