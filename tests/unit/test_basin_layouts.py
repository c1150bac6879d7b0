"""Basin layouts read as users have them: GenericDataset, Caravan and CAMELS-US files."""

from __future__ import annotations

import logging
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from pipeline.series_files import open_series
from pipeline.sources import fetch
from pipeline.sources.archives import UnsafeArchiveError
from pipeline.sources.basin_layouts import (
    basin_layout,
    is_camels_us,
    is_generic_dataset,
    read_basins,
    read_camels_us,
    read_generic_dataset,
)
from pipeline.sources.basins import write_basins
from pipeline.variables import DataError

# --- GenericDataset / Caravan ----------------------------------------------------------


def _series(path: Path, start: str, days: int, **values: float) -> None:
    """A basin file as GenericDataset wants it: one coordinate ``date``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    date = pd.date_range(start, periods=days)
    ds = xr.Dataset(
        {
            name: ("date", np.arange(days) + value, {"units": "mm/day"})
            for name, value in values.items()
        },
        coords={"date": date},
    )
    ds.to_netcdf(path)


def _csv(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_reads_the_synthetic_basins_back(tmp_path: Path) -> None:
    paths = write_basins(tmp_path, n_basins=3, years=1, seed=0)
    ds = read_generic_dataset(tmp_path)
    assert list(ds["entity"].values) == ["basin_000", "basin_001", "basin_002"]
    assert ds["streamflow"].dims == ("entity", "time") and ds["streamflow"].chunks is not None
    assert ds["streamflow"].attrs["units"] == "mm/day"
    assert ds["temperature_2m_mean"].attrs["units"] == "degC"
    assert ds["aridity"].dims == ("entity",) and ds["aridity"].dtype == float
    with xr.open_dataset(paths[1]) as one:
        np.testing.assert_array_equal(
            ds["streamflow"].sel(entity="basin_001").values, one["streamflow"].values
        )
    attributes = pd.read_csv(paths[3], index_col=0)
    np.testing.assert_allclose(ds["area"].values, attributes["area"].values)


def test_generic_layout_with_split_attributes_and_nc4(tmp_path: Path) -> None:
    """Attribute files split by feature groups (same basins) and by basin groups (same
    features), as neuralhydrology allows; ``.nc4`` files count too."""
    _series(tmp_path / "time_series" / "007.nc", "2000-01-01", 5, q=1.0)
    _series(tmp_path / "time_series" / "b.nc4", "2000-01-03", 5, q=10.0)
    _csv(tmp_path / "attributes" / "clim.csv", "gauge_id,p_mean\n007,2.5\nb,3.5\n")
    _csv(tmp_path / "attributes" / "soil_1.csv", "basin,depth,name\n007,1.0,Creek A\n")
    _csv(tmp_path / "attributes" / "soil_2.csv", "basin,depth,name\nb,2.0,River B\n")
    ds = read_generic_dataset(tmp_path)
    assert list(ds["entity"].values) == ["007", "b"]  # ids stay text: leading zeros kept
    assert ds.sizes["time"] == 7  # the union of the basins' dates
    np.testing.assert_array_equal(ds["q"].sel(entity="007").values[-2:], [np.nan, np.nan])
    np.testing.assert_array_equal(ds["q"].sel(entity="b").values[2:], 10.0 + np.arange(5))
    np.testing.assert_array_equal(ds["p_mean"].values, [2.5, 3.5])
    np.testing.assert_array_equal(ds["depth"].values, [1.0, 2.0])
    assert "name" in ds.coords and list(ds["name"].values) == ["Creek A", "River B"]


def test_caravan_layout(tmp_path: Path) -> None:
    """Caravan: one folder per source under timeseries/netcdf/ and attributes/, inside
    the archive's top folder."""
    root = tmp_path / "Caravan"
    for source, gauge in (("camels", "camels_01013500"), ("lamah", "lamah_212")):
        _series(
            root / "timeseries" / "netcdf" / source / f"{gauge}.nc",
            "1981-01-02",
            4,
            streamflow=1.0,
            total_precipitation_sum=2.0,
        )
        _csv(
            root / "attributes" / source / f"attributes_other_{source}.csv",
            f"gauge_id,gauge_name,area\n{gauge},name of {gauge},12.5\n",
        )
        _csv(
            root / "attributes" / source / f"attributes_caravan_{source}.csv",
            f"gauge_id,aridity\n{gauge},0.8\n",
        )
    assert is_generic_dataset(tmp_path) and basin_layout(tmp_path) == "generic_dataset"
    ds = read_basins(tmp_path, variables=["streamflow", "aridity"], basins=["lamah_212"])
    assert list(ds["entity"].values) == ["lamah_212"]
    assert set(ds.data_vars) == {"streamflow", "aridity"}
    assert ds["gauge_name"].item() == "name of lamah_212"


def test_an_unreadable_basin_file_is_skipped_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    _series(tmp_path / "time_series" / "good.nc", "2000-01-01", 3, q=1.0)
    bad = tmp_path / "time_series" / "bad.nc"
    bad.write_bytes(b"CDF\x01 truncated")
    with caplog.at_level(logging.WARNING):
        ds = read_generic_dataset(tmp_path)
    assert list(ds["entity"].values) == ["good"]
    assert str(bad) in caplog.text and "skipping" in caplog.text


def test_a_basin_without_a_variable_names_file_and_variable(tmp_path: Path) -> None:
    _series(tmp_path / "time_series" / "a.nc", "2000-01-01", 3, q=1.0, p=1.0)
    _series(tmp_path / "time_series" / "b.nc", "2000-01-01", 3, q=1.0)
    with pytest.raises(DataError, match=r"b\.nc: has no variable 'p'"):
        read_generic_dataset(tmp_path)
    ds = read_generic_dataset(tmp_path, variables=["q"])
    assert set(ds.data_vars) == {"q"}


@pytest.mark.parametrize(
    ("variables", "basins", "message"),
    [
        (["q", "nope"], None, "has no variable 'nope'"),
        (None, ["a", "zzz"], "no data for basin.* zzz"),
    ],
)
def test_unknown_variables_and_basins_are_named(
    tmp_path: Path, variables: list[str] | None, basins: list[str] | None, message: str
) -> None:
    _series(tmp_path / "time_series" / "a.nc", "2000-01-01", 3, q=1.0)
    with pytest.raises(DataError, match=message):
        read_generic_dataset(tmp_path, variables=variables, basins=basins)


def test_conflicting_attribute_files_are_named(tmp_path: Path) -> None:
    _series(tmp_path / "time_series" / "a.nc", "2000-01-01", 3, q=1.0)
    _csv(tmp_path / "attributes" / "one.csv", "gauge_id,area\na,1.0\n")
    _csv(tmp_path / "attributes" / "two.csv", "gauge_id,area\na,2.0\n")
    with pytest.raises(DataError, match=r"two\.csv: attribute 'area' of basin 'a' differs"):
        read_generic_dataset(tmp_path)


def test_a_file_without_a_date_coordinate_is_named(tmp_path: Path) -> None:
    path = tmp_path / "time_series" / "a.nc"
    path.parent.mkdir(parents=True)
    xr.Dataset(
        {"q": ("time", [1.0, 2.0])}, coords={"time": pd.date_range("2000", periods=2)}
    ).to_netcdf(path)
    with pytest.raises(DataError, match=rf"{path}: has no 1-D coordinate 'date'"):
        read_generic_dataset(tmp_path)


# --- CAMELS-US ---------------------------------------------------------------------------

FORCING_HEADER = (
    "Year Mnth Day Hr\tdayl(s)\tprcp(mm/day)\tsrad(W/m2)\tswe(mm)\ttmax(C)\ttmin(C)\tvp(Pa)"
)
#: gauge -> (HUC-2 region, area in m2 as the forcing header gives it, first date).
GAUGES = {"01013500": ("01", 2252700000, "1980-01-01"), "03010655": ("03", 70200000, "1980-01-03")}
DAYS = 6


def _camels(root: Path) -> None:
    """CAMELS-US's own text files (basin_dataset_public_v1p2) for two gauges, and the
    attribute tables in their own folder beside it."""
    data = root / "basin_dataset_public_v1p2"
    for gauge, (huc, area, start) in GAUGES.items():
        dates = pd.date_range(start, periods=DAYS)
        rows = [
            f"{d.year} {d.month:02d} {d.day:02d} 12\t{35000 + i:.2f}\t{i * 1.5:.2f}\t150.00\t"
            f"0.00\t{5 + i:.2f}\t{-3 + i:.2f}\t800.00"
            for i, d in enumerate(dates)
        ]
        _csv(
            data / "basin_mean_forcing" / "daymet" / huc / f"{gauge}_lump_cida_forcing_leap.txt",
            "\n".join(["47.23739", "250", str(area), FORCING_HEADER, *rows]) + "\n",
        )
        flows = [100.0 * (i + 1) for i in range(DAYS)]
        flows[2] = -999.0
        lines = [
            f"{gauge} {d.year} {d.month:02d} {d.day:02d} {q:10.2f} {'M' if q < 0 else 'A:e'}"
            for d, q in zip(dates, flows, strict=True)
        ]
        _csv(data / "usgs_streamflow" / huc / f"{gauge}_streamflow_qc.txt", "\n".join(lines) + "\n")
    attributes = root / "camels_attributes_v2.0"
    _csv(
        attributes / "camels_topo.txt",
        "gauge_id;gauge_lat;gauge_lon;elev_mean;area_gages2\n"
        "01013500;47.23739;-68.58264;250.31;2252.7\n03010655;41.5;-79.3;500.0;70.2\n",
    )
    _csv(
        attributes / "camels_clim.txt",
        "gauge_id;p_mean;aridity;high_prec_timing\n01013500;3.1;0.6;son\n3010655;2.9;0.7;mam\n",
    )


@pytest.fixture
def camels(tmp_path: Path) -> Path:
    _camels(tmp_path)
    return tmp_path


def test_camels_files_read_back(camels: Path) -> None:
    assert is_camels_us(camels) and basin_layout(camels) == "camels_us"
    assert not is_generic_dataset(camels)
    ds = read_camels_us(camels)
    assert list(ds["entity"].values) == list(GAUGES)  # 8-digit ids, leading zeros kept
    assert ds.sizes["time"] == DAYS + 2  # the union of both records
    first = ds.sel(entity="01013500")
    np.testing.assert_allclose(first["prcp"].values[:DAYS], 1.5 * np.arange(DAYS))
    assert np.isnan(first["prcp"].values[DAYS:]).all()
    assert first["tmax"].attrs["units"] == "degC" and first["srad"].attrs["units"] == "W m-2"
    assert first["prcp"].attrs["units"] == "mm/day"
    assert ds["forcing_area"].attrs["units"] == "km2"
    np.testing.assert_allclose(ds["forcing_area"].values, [2252.7, 70.2])


def test_camels_streamflow_in_mm_per_day_with_missing_values(camels: Path) -> None:
    ds = read_camels_us(camels, variables=["streamflow"])
    for gauge, (_, area, start) in GAUGES.items():
        q = ds["streamflow"].sel(entity=gauge).sel(time=slice(start, None)).values[:DAYS]
        cfs = 100.0 * np.arange(1, DAYS + 1)
        expected = 28316846.592 * cfs * 86400 / (area * 10**6)  # neuralhydrology's formula
        expected[2] = np.nan  # -999: missing
        np.testing.assert_allclose(q, expected, rtol=1e-6)
    assert ds["streamflow"].attrs["units"] == "mm/day"


def test_camels_attributes_join_with_leading_zeros_restored(camels: Path) -> None:
    ds = read_camels_us(camels, basins=["3010655"])  # a lost leading zero is restored
    assert list(ds["entity"].values) == ["03010655"]
    assert ds["aridity"].item() == 0.7 and ds["elev_mean"].item() == 500.0
    assert ds["high_prec_timing"].item() == "mam"  # text attributes are coordinates


def test_camels_corrupt_basin_file_is_skipped_with_a_warning(
    camels: Path, caplog: pytest.LogCaptureFixture
) -> None:
    bad = next(camels.rglob("03010655_lump_cida_forcing_leap.txt"))
    bad.write_text("not a number\n")
    with caplog.at_level(logging.WARNING):
        ds = read_camels_us(camels)
    assert list(ds["entity"].values) == ["01013500"]
    assert str(bad) in caplog.text


def test_camels_missing_forcing_product_and_variable_are_named(camels: Path) -> None:
    with pytest.raises(DataError, match="no such forcing product; there are daymet"):
        read_camels_us(camels, forcing="nldas")
    with pytest.raises(
        DataError, match=r"01013500_lump_cida_forcing_leap\.txt: has no variable 'pet'"
    ):
        read_camels_us(camels, variables=["prcp", "pet"])


def test_neither_layout_is_named(tmp_path: Path) -> None:
    assert basin_layout(tmp_path) is None
    with pytest.raises(DataError, match="neither a GenericDataset"):
        read_basins(tmp_path)


def _zip_folder(folder: Path, archive: Path) -> None:
    """Zip ``folder`` as CAMELS-US publishes it: the folder itself is the top member."""
    with zipfile.ZipFile(archive, "w") as zf:
        for path in sorted(folder.rglob("*")):
            zf.write(path, path.relative_to(folder.parent))


def test_camels_zips_over_http_are_extracted_and_read(
    http_root: tuple[Path, str], tmp_path: Path
) -> None:
    """CAMELS-US's two archives (time series, attributes) fetched as one http source."""
    served, url = http_root
    _camels(tmp_path / "staging")
    _zip_folder(tmp_path / "staging/basin_dataset_public_v1p2", served / "timeseries.zip")
    _zip_folder(tmp_path / "staging/camels_attributes_v2.0", served / "attributes.zip")
    source = {
        "kind": "http",
        "url": [f"{url}/timeseries.zip", f"{url}/attributes.zip"],
        "extract": True,
        "retries": 0,
    }
    manifest = fetch("camels", {"source": source}, tmp_path / "raw")
    folders = [Path(f["path"]) for f in manifest["files"]]
    assert [f.name for f in folders] == ["timeseries", "attributes"]
    assert all(f.is_dir() for f in folders)
    ds = open_series([str(f) for f in folders])
    assert list(ds["entity"].values) == list(GAUGES)
    assert ds["aridity"].values.tolist() == [0.6, 0.7]  # attributes from the second zip


def test_a_path_traversal_member_over_http_is_refused(
    http_root: tuple[Path, str], tmp_path: Path
) -> None:
    served, url = http_root
    with zipfile.ZipFile(served / "evil.zip", "w") as zf:
        zf.writestr("basins/time_series/b1.nc", b"")
        zf.writestr("../../escaped.txt", b"gotcha")
    source = {"kind": "http", "url": f"{url}/evil.zip", "extract": True, "retries": 0}
    with pytest.raises(UnsafeArchiveError, match=r"evil\.zip: member '\.\./\.\./escaped\.txt'"):
        fetch("camels", {"source": source}, tmp_path / "raw" / "camels")
    assert not list(tmp_path.rglob("escaped.txt"))
    assert not (tmp_path / "raw" / "camels" / "evil").exists()
