"""HTTP downloads through pooch: sha256 checks, retries, a progress bar, atomic writes.

pooch downloads into a temporary file and only moves it into place once the transfer
is complete and the hash matches, so a bad or truncated file is never left behind.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlparse

import pooch
import requests
import xarray as xr

from pipeline.sources.urls import DownloadError, check_scheme, redact_text, redact_url

log = logging.getLogger(__name__)

__all__ = ["DownloadError", "download", "expand_urls"]


def mirror_advice(dataset: str) -> str:
    return (
        f"If the archive moved or is offline, point 'datasets.{dataset}.source.url' at a "
        f"mirror, or download the file(s) yourself and use "
        f"'datasets.{dataset}.source: {{kind: local, path: /path/to/files*.nc}}'."
    )


def expand_urls(url: str, year_range: list[int] | None) -> list[str]:
    """One URL, or one per year when the URL holds ``{year}`` (e.g. GODAS pottmp.{year}.nc)."""
    if "{year}" not in url:
        return [url]
    if not year_range:
        raise DownloadError(
            f"URL '{redact_url(url)}' has a {{year}} placeholder but no 'year_range' is set"
        )
    return [url.format(year=y) for y in range(year_range[0], year_range[1] + 1)]


def file_name(url: str) -> str:
    name = Path(urlparse(url).path).name
    if not name:
        raise DownloadError(f"cannot derive a file name from URL '{redact_url(url)}'")
    return name


def known_hash(sha256: str | dict[str, str] | None, name: str) -> str | None:
    digest = sha256.get(name) if isinstance(sha256, dict) else sha256
    return f"sha256:{digest}" if digest else None


def _check_readable(path: Path, url: str) -> None:
    """Without a checksum, at least prove the file is a complete NetCDF/HDF5 file."""
    if path.suffix not in {".nc", ".nc4", ".h5"}:
        return
    try:
        xr.open_dataset(path).close()
    except Exception as err:
        path.unlink(missing_ok=True)
        raise DownloadError(
            f"downloaded '{redact_url(url)}' but it is not a readable NetCDF file ({err}); "
            "removed it"
        ) from err


@contextlib.contextmanager
def _quiet_pooch() -> Iterator[None]:
    """Mute pooch's own logger, which prints the full URL (credentials included) to stderr."""
    logger = pooch.get_logger()
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(level)


def _explicit_auth(request: requests.PreparedRequest) -> requests.PreparedRequest:
    """Keep the Authorization header we set: without an ``auth``, requests replaces it
    with credentials from the URL or ~/.netrc."""
    return request


def download(
    url: str,
    out_dir: str | Path,
    dataset: str,
    sha256: str | dict[str, str] | None = None,
    retries: int = 3,
    timeout: float = 60,
    progress: bool = True,
    headers: dict[str, str] | None = None,
) -> Path:
    """Download ``url`` into ``out_dir`` and return the local path.

    Raises DownloadError naming the (redacted) URL for a refused scheme, a checksum
    mismatch (the file is deleted), truncated transfers, or unreachable servers (after
    ``retries`` retries). ``headers`` (e.g. from :func:`auth_headers`) go with the request.
    """
    check_scheme("http", url, dataset)
    out_dir = Path(out_dir)
    name = file_name(url)
    expected = known_hash(sha256, name)
    shown = redact_url(url)
    fetcher = pooch.create(
        path=out_dir,
        base_url="",
        registry={name: expected},
        urls={name: url},
        retry_if_failed=retries,
    )
    auth = {"headers": headers, "auth": _explicit_auth} if headers else {}
    downloader = pooch.HTTPDownloader(progressbar=progress, timeout=timeout, **auth)
    log.info("downloading %s into %s", shown, out_dir)
    try:
        with _quiet_pooch():
            path = Path(fetcher.fetch(name, downloader=downloader))
    except ValueError as err:  # pooch's hash mismatch (the scheme was checked above)
        (out_dir / name).unlink(missing_ok=True)
        raise DownloadError(
            f"checksum mismatch for '{shown}': {redact_text(str(err))}. The bad file was "
            "deleted. If the archive legitimately changed, update the sha256 in the config."
        ) from None
    except Exception as err:
        (out_dir / name).unlink(missing_ok=True)
        raise DownloadError(
            f"could not download '{shown}' after {retries} retries: {type(err).__name__}: "
            f"{redact_text(str(err))}. " + mirror_advice(dataset)
        ) from None
    if expected is None:
        _check_readable(path, shown)
    return path
