"""Download stage against a local HTTP server serving archive-format files."""

from __future__ import annotations

import shutil
import socket
from pathlib import Path

import pytest
import xarray as xr

from pipeline.io import sha256_file
from pipeline.sources import DownloadError, fetch, read_manifest
from pipeline.sources.http import download, expand_urls


@pytest.fixture
def served_file(http_root: tuple[Path, str], tiny_enso: dict) -> tuple[Path, str, str]:
    root, url = http_root
    shutil.copy(tiny_enso["data"], root / "sst.mnmean.nc")
    return root, url, sha256_file(root / "sst.mnmean.nc")


def test_http_download_with_checksum(served_file, tmp_path: Path) -> None:
    _root, url, digest = served_file
    path = download(f"{url}/sst.mnmean.nc", tmp_path / "raw", "ersst", sha256=digest, retries=0)
    assert sha256_file(path) == digest
    assert xr.open_dataset(path)["sst"].sizes["time"] == 240


def test_checksum_mismatch_raises_and_leaves_no_file(served_file, tmp_path: Path) -> None:
    _, url, _ = served_file
    out = tmp_path / "raw"
    with pytest.raises(DownloadError) as info:
        download(f"{url}/sst.mnmean.nc", out, "ersst", sha256="0" * 64, retries=0)
    message = str(info.value)
    assert "checksum mismatch" in message and f"{url}/sst.mnmean.nc" in message
    assert not any(out.rglob("*.nc")), list(out.rglob("*"))
    assert not [p for p in out.rglob("*") if p.is_file()]


@pytest.mark.parametrize("with_hash", [True, False])
def test_truncated_transfer_is_never_accepted(served_file, tmp_path: Path, with_hash: bool) -> None:
    _, url, digest = served_file
    out = tmp_path / "raw"
    with pytest.raises(DownloadError):
        download(
            f"{url}/truncated/sst.mnmean.nc",
            out,
            "ersst",
            sha256=digest if with_hash else None,
            retries=0,
        )
    assert not [p for p in out.rglob("*") if p.is_file()]


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("kind", ["404", "refused"])
def test_dead_url_names_the_url_and_the_workaround(http_root, tmp_path: Path, kind: str) -> None:
    _, url = http_root
    dead = (
        f"{url}/moved/sst.mnmean.nc"
        if kind == "404"
        else (f"http://127.0.0.1:{_closed_port()}/sst.mnmean.nc")
    )
    with pytest.raises(DownloadError) as info:
        download(dead, tmp_path / "raw", "ersst", retries=1)
    message = str(info.value)
    assert dead in message
    assert "datasets.ersst.source.url" in message and "kind: local" in message


def test_expand_urls_per_year() -> None:
    urls = expand_urls("https://x/godas/pottmp.{year}.nc", [1980, 1982])
    assert urls == [f"https://x/godas/pottmp.{y}.nc" for y in (1980, 1981, 1982)]
    with pytest.raises(DownloadError):
        expand_urls("https://x/pottmp.{year}.nc", None)


def test_http_source_writes_manifest(served_file, tmp_path: Path) -> None:
    _, url, digest = served_file
    dataset = {
        "source": {"kind": "http", "url": f"{url}/sst.mnmean.nc", "sha256": digest, "retries": 0},
        "variables": {"sst": None},
    }
    manifest = fetch("ersst", dataset, tmp_path / "raw" / "ersst")
    assert manifest["files"][0]["sha256"] == digest
    assert read_manifest(tmp_path / "raw" / "ersst" / "manifest.json") == manifest


def test_remote_zarr_subset(http_root, tiny_enso: dict, tmp_path: Path) -> None:
    root, url = http_root
    xr.open_dataset(tiny_enso["data"]).to_zarr(root / "era5.zarr", consolidated=True, zarr_format=2)
    dataset = {
        "source": {
            "kind": "zarr",
            "url": f"{url}/era5.zarr",
            "select": {"variables": ["sst"], "time": ["1995-01-01", "1996-12-31"]},
        },
        "variables": {"sst": None},
    }
    manifest = fetch("wb2", dataset, tmp_path / "raw" / "wb2")
    local = xr.open_zarr(manifest["files"][0]["path"])
    assert list(local.data_vars) == ["sst"]
    assert local.sizes["time"] == 24
    expected = xr.open_dataset(tiny_enso["data"])["sst"].sel(time=slice("1995", "1996"))
    xr.testing.assert_allclose(local["sst"].load(), expected.load())


def test_remote_zarr_missing_variable(http_root, tiny_enso: dict, tmp_path: Path) -> None:
    root, url = http_root
    xr.open_dataset(tiny_enso["data"]).to_zarr(root / "s.zarr", consolidated=True, zarr_format=2)
    dataset = {"source": {"kind": "zarr", "url": f"{url}/s.zarr", "select": {"variables": ["t2m"]}}}
    with pytest.raises(DownloadError, match="t2m"):
        fetch("wb2", dataset, tmp_path / "raw")


def test_local_glob_and_missing_path(tiny_enso: dict, tmp_path: Path) -> None:
    folder = Path(tiny_enso["data"]).parent
    manifest = fetch(
        "mine", {"source": {"kind": "local", "path": str(folder / "enso*.nc")}}, tmp_path
    )
    assert [Path(f["path"]).name for f in manifest["files"]] == ["enso.nc"]
    with pytest.raises(DownloadError, match="no file matches"):
        fetch("mine", {"source": {"kind": "local", "path": str(tmp_path / "nope*.nc")}}, tmp_path)


def test_synthetic_source_is_reproducible(tmp_path: Path) -> None:
    spec = {"source": {"kind": "synthetic", "generator": "enso", "years": 12, "resolution": 8.0}}
    a = fetch("s", spec, tmp_path / "a")
    b = fetch("s", spec, tmp_path / "b")
    assert [f["sha256"] for f in a["files"]] == [f["sha256"] for f in b["files"]]
    assert {f["role"] for f in a["files"]} == {"data", "truth"}
