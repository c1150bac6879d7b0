"""Bad input, one table: every bad config and every bad data file, each with the message
it expects, run through the path a user's run takes.

Each case writes a config file (config/test.yaml with one mistake, or config/test.yaml
pointed at a small local NetCDF file with one defect) and runs what `pipeline check` and
then the workflow run: ``load_config`` (strict YAML, from the file), the pre-flight check
(pipeline.datacheck.check_local_datasets), the download of the dataset, the regrid job and
the prepare stage. A config mistake is a ConfigError naming the key, raised before any
job; a data defect is a DataError (or a DiskFullError) naming the file and the variable.
"""

from __future__ import annotations

import contextlib
import copy
import errno
import os
import re
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import xarray as xr
import yaml

from pipeline.config import ConfigError, check_config_files, load_config
from pipeline.datacheck import check_local_datasets
from pipeline.io import DiskFullError, write_netcdf
from pipeline.prepare import prepare
from pipeline.regrid import regrid_dataset
from pipeline.sources import DownloadError, fetch, local_paths
from pipeline.variables import DataError
from tests.conftest import REPO
from tests.integration.workflow import RESULTS, snakemake

# config/test.yaml's forecast experiment alone (every case here is about its data)
TEST_YAML = re.sub(
    r"  (extremes|basins|index)_synth:\n.*\n|\n  # Segmentation(.|\n)*",
    "",
    (REPO / "config" / "test.yaml").read_text(),
)
MONTHS = pd.date_range("1971-01-01", "2010-12-01", freq="MS")  # config/test.yaml's years

Change = Callable[[dict], None] | str  # a mutation of config/test.yaml, or raw YAML text


def put(path: str, value: object) -> Callable[[dict], None]:
    """Set the dotted ``path`` (e.g. ``experiments.enso.seeds``) of the test config."""

    def change(cfg: dict) -> None:
        *parents, last = path.split(".")
        node = cfg
        for p in parents:
            node = node[p]
        node[last] = value

    return change


def rename_dataset(name: str) -> Callable[[dict], None]:
    def change(cfg: dict) -> None:
        cfg["datasets"][name] = cfg["datasets"].pop("enso_synth")
        cfg["experiments"]["enso"]["dataset"] = name

    return change


def rename(section: str, old: str, new: str) -> Callable[[dict], None]:
    def change(cfg: dict) -> None:
        node = cfg
        for p in section.split("."):
            node = node[p]
        node[new] = node.pop(old)

    return change


def both(*changes: Callable[[dict], None]) -> Callable[[dict], None]:
    def change(cfg: dict) -> None:
        for c in changes:
            c(cfg)

    return change


HTTP = {"kind": "http", "url": "file:///etc/passwd"}
ZARR = {"kind": "zarr", "url": "file:///data/era5.zarr"}
SAFE = r"\^\[A-Za-z0-9\]"  # the allowed pattern is quoted in the message
# A second "cnn:" line in the models block: YAML keeps only the last one.
DUPLICATE = TEST_YAML.replace(
    "      resnet: {arch: resnet, width: 4, blocks: 1}", "      cnn: {arch: resnet, width: 4}"
)


def local(path: Path, splits: dict[str, list[int]] | None = None) -> Callable[[dict], None]:
    """Point the test config at the local file(s) ``path`` (a glob) as dataset 'obs'."""

    def change(cfg: dict) -> None:
        cfg["datasets"] = {
            "obs": {
                "source": {"kind": "local", "path": str(path)},
                "variables": {"sst": {}, "heat_content": {}},
            }
        }
        cfg["experiments"]["enso"]["dataset"] = "obs"
        cfg["experiments"]["enso"]["splits"].update(splits or {})

    return change


def good(times: pd.DatetimeIndex = MONTHS) -> xr.Dataset:
    """What the pipeline needs: monthly maps of sst and heat_content on a 10-degree grid."""
    rng = np.random.default_rng(0)
    lat, lon = np.arange(-85.0, 90.0, 10.0), np.arange(5.0, 360.0, 10.0)
    season = 2 * np.cos(2 * np.pi * np.asarray(times.month) / 12)[:, None, None]
    shape = (len(times), len(lat), len(lon))
    ds = xr.Dataset(
        {
            "sst": (("time", "lat", "lon"), 25 + season + rng.standard_normal(shape)),
            "heat_content": (("time", "lat", "lon"), 15 + season + rng.standard_normal(shape)),
        },
        coords={"time": times, "lat": lat, "lon": lon},
    ).astype("float32")
    ds["sst"].attrs["units"] = ds["heat_content"].attrs["units"] = "degC"
    ds["lat"].attrs["units"], ds["lon"].attrs["units"] = "degrees_north", "degrees_east"
    return ds


def saved(ds: xr.Dataset) -> Callable[[Path], Path]:
    def write(folder: Path) -> Path:
        ds.to_netcdf(folder / "obs.nc")
        return folder / "obs.nc"

    return write


def with_sst(values: Callable[[np.ndarray], None]) -> xr.Dataset:
    ds = good()
    sst = ds["sst"].values.copy()
    values(sst)
    return ds.assign(sst=(ds["sst"].dims, sst, ds["sst"].attrs))


def inf(sst: np.ndarray) -> None:
    sst[100, 5, 7], sst[200, 9, 3] = np.inf, -np.inf


def curvilinear(index_dims: tuple[str, str], lat_name: str, lon_name: str) -> xr.Dataset:
    """The good maps on a grid whose latitude/longitude are 2-D (a rotated/ocean grid)."""
    ds = good()
    lat2d, lon2d = np.meshgrid(ds["lat"].values, ds["lon"].values, indexing="ij")
    dims = ("time", *index_dims)
    out = xr.Dataset({n: (dims, ds[n].values, ds[n].attrs) for n in ds.data_vars})
    return out.assign_coords(
        time=ds["time"],
        **{lat_name: (index_dims, lat2d), lon_name: (index_dims, lon2d)},
    )


def series() -> xr.Dataset:
    return good().mean(("lat", "lon"))


def disk_full_zarr(monkeypatch: pytest.MonkeyPatch, grid_dir: Path) -> None:
    """Zarr's file writes (the last Python call before the OS) fail with ENOSPC."""
    import zarr.storage._local as zarr_local

    def no_space(*args: Any, **kwargs: Any) -> int:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(zarr_local, "_put", no_space)


@contextlib.contextmanager
def tiny_tmpfs(folder: Path, size: str = "64k") -> Iterator[Path]:
    """A real, tiny file system (root only): writes into it run out of space for real."""
    folder.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mount = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
        capture_output=True,
        text=True,
    )
    if mount.returncode:
        pytest.skip(f"cannot mount a tmpfs here: {mount.stderr.strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], check=True)


def in_two_folders(ds: xr.Dataset) -> Callable[[Path], Path]:
    """``ds`` split at 1991 into data/a/obs.nc and data/a-1/obs.nc, found by one glob.

    As paths "a" sorts before "a-1", as strings after: the pre-flight check and the
    download stage must list the files in the same order.
    """

    def write(folder: Path) -> Path:
        for sub, years in (("a", slice("1971", "1990")), ("a-1", slice("1991", "2010"))):
            (folder / "data" / sub).mkdir(parents=True)
            ds.sel(time=years).to_netcdf(folder / "data" / sub / "obs.nc")
        return folder / "data" / "*" / "obs.nc"

    return write


def nothing(folder: Path) -> Path:
    """No file at all: a ``source.path`` glob that matches nothing."""
    return folder / "nothing-*.nc"


@dataclass(frozen=True)
class Case:
    id: str
    match: str  # regex; {file} is the data file (the output, for a full disk), {dir} tmp_path
    change: Change | None = None  # a config mistake: config/test.yaml changed
    key: str | None = None  # the key the ConfigError names
    data: Callable[[Path], Path] | None = None  # writes bad file(s), returns source.path
    error: type[Exception] = ConfigError
    splits: dict[str, list[int]] = field(default_factory=dict)  # overrides test.yaml's
    also: str | None = None  # a later stage ("fetch", "regrid", "prepare") that must say
    # the same on its own, without the pre-flight check
    disk: Callable[[pytest.MonkeyPatch, Path], None] | None = None


def bad_config(id: str, change: Change, key: str, match: str) -> Case:
    return Case(id, match, change=change, key=key)


def bad_file(
    id: str, data: Callable[[Path], Path], match: str, error: type[Exception] = DataError, **kw: Any
) -> Case:
    return Case(id, match, data=data, error=error, **kw)


SERIES_HINT = r"\(for series of any time step, a station or an index, set task.kind: series\)"
CASES: list[Case] = [
    # -- config mistakes: bad_config(id, change, key the error names, message regex)
    # -- names become paths and wildcards
    bad_config(
        "dataset escapes",
        rename_dataset("../../escape"),
        "datasets",
        rf"'\.\./\.\./escape'.*{SAFE}",
    ),
    bad_config("dataset regex char", rename_dataset("era5("), "datasets", rf"'era5\('.*{SAFE}"),
    bad_config("dataset dots", rename_dataset("a..b"), "datasets", "no '..'"),
    bad_config("experiment dots", rename("experiments", "enso", ".."), "experiments", SAFE),
    bad_config("experiment slash", rename("experiments", "enso", "a/b"), "experiments", SAFE),
    bad_config(
        "model slash",
        rename("experiments.enso.models", "cnn", "x/cnn"),
        "experiments.enso.models",
        SAFE,
    ),
    bad_config("results empty", put("results", ""), "results", "relative folder inside"),
    bad_config("results dot", put("results", "."), "results", "relative folder inside"),
    bad_config("results root", put("results", "/"), "results", "not absolute"),
    bad_config("results absolute", put("results", "/tmp/out"), "results", "not absolute"),
    bad_config("results parent", put("results", ".."), "results", r"no '\.\.'"),
    bad_config("results escapes", put("results", "out/../../x"), "results", r"no '\.\.'"),
    # -- YAML mistakes: the file and the line
    bad_config(
        "duplicate key",
        DUPLICATE,
        "experiments.enso.models.cnn",
        r"duplicate key in .*config\.yaml line 24 \(first at line 23\)",
    ),
    bad_config(
        "duplicate dataset",
        TEST_YAML.replace("experiments:\n", "datasets: {}\nexperiments:\n"),
        "datasets",
        "line 12 .first at line 8",
    ),
    bad_config(
        "yaml syntax",
        TEST_YAML.replace("history: 2", "history: [2"),
        "<root>",
        r"config\.yaml, line \d+, column \d+",
    ),
    bad_config(
        "yaml tab",
        TEST_YAML.replace("    task:", "\ttask:"),
        "<root>",
        r"config\.yaml, line 16, column 1",
    ),
    # -- sweeps: each value is checked like the base
    bad_config(
        "sweep batch_size 0",
        put("experiments.enso.sweep", {"cnn": {"batch_size": [0]}}),
        "experiments.enso.sweep.cnn.batch_size[0]",
        "less than the minimum of 1",
    ),
    bad_config(
        "sweep negative lr",
        put("experiments.enso.sweep", {"lstm": {"lr": [1e-3, -1]}}),
        "experiments.enso.sweep.lstm.lr[1]",
        "less than or equal to the minimum of 0",
    ),
    bad_config(
        "sweep epochs 0",
        put("experiments.enso.sweep", {"cnn": {"epochs": [2, 0], "kernel": [3]}}),
        "experiments.enso.sweep.cnn.epochs[1]",
        "minimum of 1",
    ),
    bad_config(
        "sweep bad optimizer",
        put("experiments.enso.sweep", {"cnn": {"optimizer": ["sgd"]}}),
        "experiments.enso.sweep.cnn.optimizer[0]",
        "'sgd' is not one of",
    ),
    bad_config(
        "sweep kernel 0",
        put("experiments.enso.sweep", {"cnn": {"kernel": [3, 0]}}),
        "experiments.enso.sweep.cnn.kernel[1]",
        "at least 1",
    ),
    bad_config(
        "sweep unknown arch",
        put("experiments.enso.sweep", {"cnn": {"arch": ["cnn", "vit"]}}),
        "experiments.enso.sweep.cnn.arch[1]",
        "'vit' is not one of",
    ),
    bad_config(
        "sweep unknown option",
        put("experiments.enso.sweep", {"cnn": {"kernal": [3]}}),
        "experiments.enso.sweep.cnn.kernal[0]",
        "unknown option",
    ),
    # -- seeds must fit 32 bits
    bad_config(
        "seed 2**32",
        put("experiments.enso.seeds", [0, 2**32]),
        "experiments.enso.seeds[1]",
        "maximum of 4294967295",
    ),
    bad_config(
        "source seed 2**32",
        put("datasets.enso_synth.source.seed", 2**32),
        "datasets.enso_synth.source.seed",
        "maximum of 4294967295",
    ),
    # -- leads, splits and the data's years
    bad_config(
        "importance lead",
        put("experiments.enso.importance.leads", [1, 3]),
        "experiments.enso.importance.leads[1]",
        r"lead 3 is not one of the task's leads \[1, 6\]",
    ),
    bad_config(
        "split too short",
        both(
            put("experiments.enso.splits.test", [2010, 2010]),
            put("experiments.enso.task.leads", [1, 12]),
        ),
        "experiments.enso.splits.test",
        "2010-2010 has 12 months, but .* = 14 months",
    ),
    bad_config(
        "test after the data",
        put("experiments.enso.splits.test", [2003, 2012]),
        "experiments.enso.splits.test",
        "outside dataset 'enso_synth', which covers 1971-2010",
    ),
    bad_config(
        "train before the data",
        put("experiments.enso.splits.train", [1950, 1995]),
        "experiments.enso.splits.train",
        "covers 1971-2010",
    ),
    # -- URL schemes
    bad_config(
        "tracking scheme",
        put("mlflow.tracking_uri", "ftp://host/mlflow"),
        "mlflow.tracking_uri",
        "unknown scheme 'ftp'",
    ),
    bad_config(
        "http file scheme",
        put(
            "datasets.enso_synth",
            {"source": HTTP, "variables": {"sst": None, "heat_content": None}},
        ),
        "datasets.enso_synth.source.url",
        "accepts only http, https URLs.*scheme 'file'",
    ),
    bad_config(
        "zarr file scheme",
        put(
            "datasets.enso_synth",
            {"source": ZARR, "variables": {"sst": None, "heat_content": None}},
        ),
        "datasets.enso_synth.source.url",
        "kind: local",
    ),
    bad_config(
        "one of several http URLs with a file scheme",
        put(
            "datasets.enso_synth",
            {
                "source": {"kind": "http", "url": ["https://x/a.zip", "file:///b.zip"]},
                "variables": {"sst": None, "heat_content": None},
            },
        ),
        "datasets.enso_synth.source.url",
        "scheme 'file'",
    ),
    bad_config(
        "zarr with several URLs",
        put(
            "datasets.enso_synth",
            {
                "source": {"kind": "zarr", "url": ["https://x/a.zarr", "https://x/b.zarr"]},
                "variables": {"sst": None, "heat_content": None},
            },
        ),
        "datasets.enso_synth.source.url",
        "one store: give one URL",
    ),
    bad_config(
        "auth_env incomplete",
        put(
            "datasets.enso_synth.source",
            {"kind": "http", "url": "https://x/a.nc", "auth_env": {"username": "U"}},
        ),
        "datasets.enso_synth.source.auth_env.password",
        "is required",
    ),
    # -- the kinds of mistakes checked before
    bad_config(
        "wrong type",
        put("experiments.enso.task.history", "three"),
        "experiments.enso.task.history",
        "is not of type 'integer'",
    ),
    bad_config(
        "unknown key", put("experiments.enso.trainig", {"epochs": 3}), "experiments.enso", "trainig"
    ),
    bad_config(
        "unknown dataset",
        put("experiments.enso.dataset", "ersst_typo"),
        "experiments.enso.dataset",
        "unknown dataset 'ersst_typo'",
    ),
    bad_config(
        "overlapping splits",
        put("experiments.enso.splits.val", [1990, 2002]),
        "experiments.enso.splits.val",
        "overlap",
    ),
    # -- bad files: bad_file(id, writes the file(s), message regex naming file and variable)
    bad_file(
        "all-nan",
        saved(with_sst(lambda v: v.fill(np.nan))),
        r"{file}: variable 'sst' has no valid value .* all missing \(NaN\)",
    ),
    bad_file("inf", saved(with_sst(inf)), r"{file}: variable 'sst' holds infinite values"),
    bad_file(
        "variable-not-found",
        saved(good().rename(sst="tos")),
        r"{file}: variable 'sst' not found for dataset 'obs' \(the files have "
        r"\['heat_content', 'tos'\]\); set 'from:' under datasets\.obs\.variables",
        also="regrid",
    ),
    bad_file(
        "missing-month",
        saved(good().drop_sel(time="1980-03-01")),
        r"{file}: variable 'sst' misses 1 month\(s\) after 1980-02 \(the next step is 1980-04\)",
        also="regrid",
    ),
    bad_file(
        "duplicate-step",
        saved(xr.concat([good(), good().sel(time=["1990-06-01"])], "time").sortby("time")),
        r"{file}: variable 'sst' has two time steps in 1990-06 \(duplicate",
        also="regrid",
    ),
    bad_file(
        "non-monotonic",
        saved(good().isel(time=np.r_[0:100, 101, 100, 102:480])),
        r"{file}: variable 'sst' has time steps out of order \(1979-05 comes after 1979-06\)",
        also="regrid",
    ),
    bad_file(
        "curvilinear-2d-latlon",
        saved(curvilinear(("j", "i"), "lat", "lon")),
        r"{file}: variable 'sst' is on a curvilinear grid .*'lat'.*regular lat-lon grid first.*"
        r"cdo remapbil",
        also="regrid",
    ),
    bad_file(
        "nemo-y-x",
        saved(curvilinear(("y", "x"), "nav_lat", "nav_lon")),
        r"{file}: variable 'sst' is on a curvilinear grid .*'nav_lat'.*cdo remapbil",
        also="regrid",
    ),
    bad_file(
        "series",
        saved(series()),
        rf"{{file}}: variable 'sst' is a 1-D series .*{SERIES_HINT}",
        also="regrid",
    ),
    bad_file(
        "weekly",
        saved(good(pd.date_range("1971-01-01", "1980-12-31", freq="7D"))),
        rf"{{file}}: variable 'sst' has a weekly time step; gridded forecast .*{SERIES_HINT}",
        also="regrid",
    ),
    bad_file(
        "daily",
        saved(good(pd.date_range("1971-01-01", "1972-12-31", freq="D"))),
        rf"{{file}}: variable 'sst' has a daily time step; .*monthly.*{SERIES_HINT}",
        also="regrid",
    ),
    bad_file(
        "train-years-partly-covered",
        saved(good(pd.date_range("1950-01-01", "2010-12-01", freq="MS"))),
        r"{file}: variables? .*'sst'.*: the data cover 1950-01 to 2010-12, but "
        r"(experiments\.enso\.)?"
        r"splits\.train asks for 1900-1990 \(600 of its 1092 months are not in the data\)",
        splits={"train": [1900, 1990], "val": [1991, 2000], "test": [2001, 2010]},
        also="prepare",
    ),
    bad_file(
        "test-years-outside",
        saved(good(pd.date_range("1971-01-01", "2005-12-01", freq="MS"))),
        r"{file}: variables? .*'sst'.*: the data cover 1971-01 to 2005-12, but "
        r"(experiments\.enso\.)?"
        r"splits\.test asks for 2003-2010",
        also="prepare",
    ),
    bad_file(
        "disk-full-enospc",
        saved(good()),
        r"cannot write {file}: the disk is full \(no space left on device, errno ENOSPC\)",
        error=DiskFullError,
        disk=disk_full_zarr,
    ),
    bad_file(
        "disk-full-real-tmpfs",
        saved(good()),
        r"cannot write {file}: the disk is full \(no space left on device, errno ENOSPC\)",
        error=DiskFullError,
        disk=lambda monkeypatch, grid_dir: None,  # the grid folder is a 64 kB tmpfs
    ),
    bad_file(
        "variable-not-found-two-folders",
        in_two_folders(good().rename(sst="tos")),
        r"{dir}/data/a/obs\.nc, {dir}/data/a-1/obs\.nc: variable 'sst' not found for "
        r"dataset 'obs'",
        also="regrid",
    ),
    bad_file(
        "no-file-matches",
        nothing,
        r"datasets\.obs\.source\.path.*no file matches",
        error=ConfigError,
        key="datasets.obs.source.path",
        also="fetch",
    ),
]


def write(tmp_path: Path, change: Change) -> Path:
    """The test config with ``change`` applied, written as ``config.yaml`` in tmp_path."""
    path = tmp_path / "config.yaml"
    if isinstance(change, str):
        path.write_text(change)
    else:
        cfg = copy.deepcopy(yaml.safe_load(TEST_YAML))
        change(cfg)
        path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def data_stage(config: dict[str, Any], work: Path, grid_dir: Path) -> Path:
    """What the workflow runs up to prepared.zarr, for the experiment's dataset."""
    name = config["experiments"]["enso"]["dataset"]
    exp, dataset = config["experiments"]["enso"], config["datasets"][name]
    manifest = fetch(name, dataset, work / "raw")
    store = grid_dir / f"{name}.zarr"
    if not store.exists():
        regrid_dataset(manifest, dataset, exp["grid"], store)
    prepared = work / "prepared.zarr"
    prepare([store], [manifest], {k: exp[k] for k in ("task", "splits")}, "test", prepared)
    return prepared


def run(config_file: Path, work: Path, grid_dir: Path) -> Path:
    """A user's run: `pipeline check` (the strict config, the local files' headers), then
    the data stage of the workflow."""
    config = load_config(config_file)
    check_local_datasets(config)
    return data_stage(config, work, grid_dir)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_gets_a_clear_message(
    case: Case, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = case.data(tmp_path) if case.data else None
    config_file = write(tmp_path, case.change if data is None else local(data, case.splits))
    grid_dir = tmp_path / "grid"
    with contextlib.ExitStack() as stack:
        if case.disk is not None:
            if case.id.endswith("tmpfs"):
                stack.enter_context(tiny_tmpfs(grid_dir))
            case.disk(monkeypatch, grid_dir)
        pattern = case.match
        if data is not None:
            named = grid_dir / "obs.zarr" if case.disk else data.resolve()
            pattern = pattern.format(
                file=re.escape(str(named)), dir=re.escape(str(tmp_path.resolve()))
            )
        with pytest.raises(case.error, match=pattern) as first:
            run(config_file, tmp_path / "work", grid_dir)
        if case.disk is not None:  # nothing half-written: neither the store nor a temporary
            assert list(grid_dir.iterdir()) == []
    message = str(first.value)
    assert "Traceback" not in message
    if case.key is not None:
        assert first.value.key == case.key, message
        assert f"'{case.key}'" in message
    if case.also is None:
        return
    config = load_config(config_file)
    exp, dataset = config["experiments"]["enso"], config["datasets"]["obs"]
    if case.also == "fetch":  # the download job says the same, as a DownloadError
        with pytest.raises(DownloadError) as again:
            fetch("obs", dataset, tmp_path / "raw-again")
        assert str(again.value) == f"{case.key}: {first.value.message}"
    if case.also == "regrid":  # the regrid job says the same for any source kind (no pre-check)
        manifest = fetch("obs", dataset, tmp_path / "raw-again")
        with pytest.raises(DataError) as again:
            regrid_dataset(manifest, dataset, exp["grid"], tmp_path / "o.zarr")
        assert str(again.value) == message
    if case.also == "prepare":  # prepare says so too, when it runs without the pre-check
        with pytest.raises(DataError, match=pattern):
            data_stage(config, tmp_path / "again", tmp_path / "grid-again")


def test_good_data_passes_the_same_path(tmp_path: Path) -> None:
    config_file = write(tmp_path, local(saved(good())(tmp_path)))
    prepared = run(config_file, tmp_path / "work", tmp_path / "grid")
    assert xr.open_zarr(prepared).sizes["sample"] > 0


def test_pre_flight_check_reads_headers_only(tmp_path: Path) -> None:
    """Checking a 40-year file takes well under a second: metadata, not values."""
    config = load_config(write(tmp_path, local(saved(good())(tmp_path))))
    start = time.perf_counter()
    check_local_datasets(config)
    assert time.perf_counter() - start < 1.0


def test_local_paths_expand_home_and_resolve_from_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The one glob rule of the pre-flight check and the download: ``~`` expanded,
    relative to the working directory, resolved, in path order."""
    for sub in ("a-1", "a"):
        (tmp_path / sub).mkdir()
        (tmp_path / sub / "obs.nc").touch()
    expected = [tmp_path.resolve() / "a" / "obs.nc", tmp_path.resolve() / "a-1" / "obs.nc"]
    monkeypatch.setenv("HOME", str(tmp_path))
    assert local_paths("obs", {"path": "~/*/obs.nc"}) == expected
    monkeypatch.chdir(tmp_path / "a")
    assert local_paths("obs", {"path": "../*/obs.nc"}) == expected


def test_check_config_files_rejects_duplicates(tmp_path: Path) -> None:
    ok = write(tmp_path, TEST_YAML)
    check_config_files([ok])
    bad = tmp_path / "extra.yaml"
    bad.write_text("results: a\nresults: b\n")
    with pytest.raises(ConfigError, match=r"'results'.*extra\.yaml line 2 \(first at line 1\)"):
        check_config_files([ok, bad])


@pytest.mark.parametrize(
    ("change", "key"),
    [(DUPLICATE, "experiments.enso.models.cnn"), (rename_dataset("../escape"), "datasets")],
    ids=["duplicate key", "escaping dataset name"],
)
def test_snakemake_stops_before_any_job(tmp_path: Path, change: Change, key: str) -> None:
    config = write(tmp_path, change)
    proc = snakemake(tmp_path, "-n", config=config, timeout=300)
    output = proc.stdout + proc.stderr  # Snakemake 9 prints a Snakefile's error on stdout
    assert proc.returncode != 0
    assert f"config error at '{key}'" in output, output[-3000:]
    assert not (tmp_path / RESULTS).exists()
    assert not (tmp_path.parent / "escape").exists()


def test_full_disk_during_a_netcdf_write_is_named(tmp_path: Path) -> None:
    """HDF5 hides ENOSPC ("NetCDF: HDF error"); the write still says the disk is full."""
    with tiny_tmpfs(tmp_path / "small") as folder:
        target = folder / "big.nc"
        with pytest.raises(DiskFullError, match=rf"cannot write {re.escape(str(target))}: "):
            write_netcdf(good(), target)
        assert list(folder.iterdir()) == []
