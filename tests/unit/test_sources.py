"""Download stage against a local HTTP server serving archive-format files."""

from __future__ import annotations

import base64
import functools
import http.server
import re
import shutil
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import xarray as xr

from pipeline.io import sha256_file
from pipeline.logs import configure
from pipeline.sources import DownloadError, dataset_params, fetch, read_manifest
from pipeline.sources.http import download, expand_urls
from pipeline.sources.urls import redact_text, redact_url
from tests.conftest import _Handler


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


USER, TOKEN, QUERY_TOKEN = "alice", "s3cr3t-t0ken", "q-t0ken-42"


class _AuthHandler(_Handler):
    """Serves files only to ``alice:s3cr3t-t0ken`` (basic or bearer auth). Files also need
    ``?token=``; the Zarr store does not, as Zarr appends its keys to the store URL."""

    def do_GET(self) -> None:
        basic = "Basic " + base64.b64encode(f"{USER}:{TOKEN}".encode()).decode()
        url = urlsplit(self.path)
        query_ok = url.path.startswith("/store.zarr/") or (
            parse_qs(url.query).get("token") == [QUERY_TOKEN]
        )
        if self.headers.get("Authorization") not in (basic, f"Bearer {TOKEN}") or not query_ok:
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Basic realm="archive"')
            self.end_headers()
            return
        self.path = url.path
        super().do_GET()


@pytest.fixture
def auth_server(tmp_path: Path, tiny_enso: dict) -> Iterator[str]:
    """A server that requires credentials; yields its host:port. It serves
    ``sst.mnmean.nc`` and the Zarr store ``store.zarr``."""
    root = tmp_path / "protected"
    root.mkdir()
    shutil.copy(tiny_enso["data"], root / "sst.mnmean.nc")
    xr.open_dataset(tiny_enso["data"]).to_zarr(
        root / "store.zarr", consolidated=True, zarr_format=2
    )
    handler = functools.partial(_AuthHandler, directory=str(root))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def _assert_no_secret(out: Path, *texts: str) -> None:
    for path in [p for p in out.rglob("*") if p.is_file()]:
        data = path.read_bytes()
        assert TOKEN.encode() not in data and QUERY_TOKEN.encode() not in data, path
    for text in texts:
        assert TOKEN not in text and QUERY_TOKEN not in text, text


def test_credentials_in_the_url_never_reach_files_or_logs(
    auth_server: str, tmp_path: Path, capfd: pytest.CaptureFixture
) -> None:
    url = f"http://{USER}:{TOKEN}@{auth_server}/sst.mnmean.nc?token={QUERY_TOKEN}"
    dataset = {"source": {"kind": "http", "url": url, "retries": 0}, "variables": {"sst": None}}
    out = tmp_path / "raw" / "ersst"
    log_file = out / "download.log"
    configure(log_file)  # as the download job does: the terminal and the rule's log file
    manifest = fetch("ersst", dataset, out)
    assert xr.open_dataset(manifest["files"][0]["path"])["sst"].sizes["time"] == 240
    shown = manifest["source"]["url"]
    assert shown == f"http://***@{auth_server}/sst.mnmean.nc?token=***"
    assert dataset_params(dataset)["source"]["url"] == shown
    assert dataset["source"]["url"] == url  # the job still has the real URL
    assert shown in log_file.read_text()  # the download is logged, redacted
    captured = capfd.readouterr()
    _assert_no_secret(out, captured.out, captured.err)


def test_wrong_credentials_fail_without_showing_them(
    auth_server: str, tmp_path: Path, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture
) -> None:
    url = f"http://{USER}:wrong-{TOKEN}@{auth_server}/sst.mnmean.nc?token={QUERY_TOKEN}"
    out = tmp_path / "raw"
    with pytest.raises(DownloadError) as info:
        fetch("ersst", {"source": {"kind": "http", "url": url, "retries": 0}}, out)
    assert "401" in str(info.value) and "token=***" in str(info.value)
    captured = capfd.readouterr()
    _assert_no_secret(out, str(info.value), caplog.text, captured.out, captured.err)


@pytest.mark.parametrize("how", ["auth_env", "token_env", "netrc"])
def test_credentials_from_the_environment(
    auth_server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    source = {"kind": "http", "url": f"http://{auth_server}/sst.mnmean.nc?token={QUERY_TOKEN}"}
    monkeypatch.setenv("NETRC", str(tmp_path / "no-netrc"))  # never the developer's ~/.netrc
    if how == "auth_env":
        monkeypatch.setenv("ARCHIVE_USER", USER)
        monkeypatch.setenv("ARCHIVE_TOKEN", TOKEN)
        source["auth_env"] = {"username": "ARCHIVE_USER", "password": "ARCHIVE_TOKEN"}
    elif how == "token_env":
        monkeypatch.setenv("ARCHIVE_TOKEN", TOKEN)
        source["token_env"] = "ARCHIVE_TOKEN"
    else:
        netrc = tmp_path / "netrc"
        netrc.write_text(f"machine 127.0.0.1 login {USER} password {TOKEN}\n")
        netrc.chmod(0o600)
        monkeypatch.setenv("NETRC", str(netrc))
    manifest = fetch("ersst", {"source": {**source, "retries": 0}}, tmp_path / "raw")
    assert Path(manifest["files"][0]["path"]).name == "sst.mnmean.nc"
    _assert_no_secret(tmp_path / "raw")


@pytest.mark.parametrize("how", ["auth_env", "token_env"])
def test_zarr_store_credentials_from_the_environment(
    auth_server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    monkeypatch.setenv("ARCHIVE_USER", USER)
    monkeypatch.setenv("ARCHIVE_TOKEN", TOKEN)
    auth = (
        {"auth_env": {"username": "ARCHIVE_USER", "password": "ARCHIVE_TOKEN"}}
        if how == "auth_env"
        else {"token_env": "ARCHIVE_TOKEN"}
    )
    source = {"kind": "zarr", "url": f"http://{auth_server}/store.zarr", **auth}
    source["select"] = {"variables": ["sst"], "time": ["1995-01-01", "1995-12-31"]}
    manifest = fetch("wb2", {"source": source}, tmp_path / "raw")
    assert xr.open_zarr(manifest["files"][0]["path"]).sizes["time"] == 12
    _assert_no_secret(tmp_path / "raw")


def test_missing_credential_variable_names_it(
    auth_server: str, tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.delenv("ARCHIVE_TOKEN", raising=False)
    source = {"kind": "http", "url": f"http://{auth_server}/a.nc", "token_env": "ARCHIVE_TOKEN"}
    with pytest.raises(DownloadError, match=r"datasets\.ersst\.source\.token_env.*'ARCHIVE_TOKEN'"):
        fetch("ersst", {"source": source}, tmp_path)


@pytest.mark.parametrize(
    ("kind", "url", "advice"),
    [
        ("http", "file:///etc/passwd", "only http, https URLs.*scheme 'file'.*kind: local"),
        ("http", "ftp://host/sst.nc", "scheme 'ftp'"),
        ("zarr", "file:///data/era5.zarr", "only http, https, s3, gs URLs.*kind: local"),
        ("zarr", "/data/era5.zarr", "has no scheme.*kind: local"),
    ],
)
def test_refused_scheme_says_why(tmp_path: Path, kind: str, url: str, advice: str) -> None:
    with pytest.raises(DownloadError) as info:
        fetch("ds", {"source": {"kind": kind, "url": url, "retries": 0}}, tmp_path / "raw")
    message = str(info.value)
    assert message.startswith("datasets.ds.source.url:"), message
    assert re.search(advice, message) and "checksum" not in message, message


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://u:p@h.org/a.nc", "https://***@h.org/a.nc"),
        ("https://tok@h.org:8443/a.nc?x=1", "https://***@h.org:8443/a.nc?x=1"),
        (
            "https://h.org/a?api_key=1&year=2&Signature=3&X-Amz-Credential=4&access_token=5",
            "https://h.org/a?api_key=***&year=2&Signature=***&X-Amz-Credential=***&access_token=***",
        ),
        ("https://h.org/pottmp.{year}.nc?apikey=k", "https://h.org/pottmp.{year}.nc?apikey=***"),
        ("s3://bucket/store.zarr", "s3://bucket/store.zarr"),
    ],
    ids=["user-password", "user", "query", "placeholder", "nothing"],
)
def test_redact_url(url: str, shown: str) -> None:
    assert redact_url(url) == shown
    assert redact_text(f"404 for url: {url} (retried)") == f"404 for url: {shown} (retried)"
