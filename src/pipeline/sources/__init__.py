"""The download stage: fetch a dataset into ``results/data/raw/{dataset}/``.

Every source kind ends in a ``manifest.json`` listing the files with their sha256, so
later stages (and MLflow provenance) know exactly which bytes a result came from. The
manifest records the source with its URL redacted: credentials never reach a file.
"""

from __future__ import annotations

import glob
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pipeline.io import sha256_file, sha256_tree, write_json
from pipeline.sources.archives import extract, unpacked_name
from pipeline.sources.basins import TRUTH, write_basins
from pipeline.sources.extremes import write_extremes
from pipeline.sources.http import download, expand_urls
from pipeline.sources.index import write_index
from pipeline.sources.remote_zarr import fetch_zarr
from pipeline.sources.synthetic import write_enso
from pipeline.sources.urls import (
    DownloadError,
    auth_headers,
    dataset_params,
    listed_urls,
    public_source,
)

__all__ = [
    "DownloadError",
    "NoMatchError",
    "dataset_params",
    "fetch",
    "local_paths",
    "read_manifest",
]

MANIFEST = "manifest.json"


def _entry(path: Path, role: str = "data") -> dict[str, Any]:
    digest = sha256_tree(path) if path.is_dir() else sha256_file(path)
    return {"path": str(path), "role": role, "sha256": digest}


#: Options of the extremes generator a source may set (pipeline.sources.extremes).
EXTREMES_OPTIONS = (
    "years",
    "start_year",
    "seed",
    "resolution",
    "steps_per_day",
    "layout",
    "experts",
    "days",
)


def _enso(source: Mapping[str, Any], out_dir: Path) -> list[dict[str, Any]]:
    paths = write_enso(
        out_dir,
        years=source.get("years", 150),
        start_year=source.get("start_year", 1871),
        seed=source.get("seed", 0),
        resolution=source.get("resolution", 2.0),
    )
    return [_entry(paths["data"]), _entry(paths["truth"], role="truth")]


def _extremes(source: Mapping[str, Any], out_dir: Path) -> list[dict[str, Any]]:
    """The files hold their labels, so all are data; unset options keep the generator's
    defaults."""
    options = {key: source[key] for key in EXTREMES_OPTIONS if key in source}
    return [_entry(p) for p in write_extremes(out_dir, **options)]


#: Options of the basins generator a source may set (pipeline.sources.basins).
BASINS_OPTIONS = ("n_basins", "years", "start_year", "seed")


def _basins(source: Mapping[str, Any], out_dir: Path) -> list[dict[str, Any]]:
    """The GenericDataset layout's files are data; the noise-free flow is the truth."""
    options = {key: source[key] for key in BASINS_OPTIONS if key in source}
    return [
        _entry(p, role="truth" if p.name == TRUTH else "data")
        for p in write_basins(out_dir, **options)
    ]


#: Options of the index generator a source may set (pipeline.sources.index).
INDEX_OPTIONS = ("years", "start_year", "seed", "step")


def _index(source: Mapping[str, Any], out_dir: Path) -> list[dict[str, Any]]:
    options = {key: source[key] for key in INDEX_OPTIONS if key in source}
    return [_entry(p) for p in write_index(out_dir, **options)]


#: The synthetic generators, by ``source.generator``.
GENERATORS = {"enso": _enso, "extremes": _extremes, "basins": _basins, "index": _index}


def _synthetic(name: str, source: Mapping[str, Any], out_dir: Path) -> list[dict[str, Any]]:
    return GENERATORS[source["generator"]](source, out_dir)


def _http(name: str, source: Mapping[str, Any], out_dir: Path) -> list[dict[str, Any]]:
    """Each URL's file; with ``extract``, the folder its archive unpacks into instead (the
    archive stays beside it, so a rerun checks its sha256 and does not fetch it again)."""
    headers = auth_headers(source, name)
    entries = []
    urls = [u for url in listed_urls(source) for u in expand_urls(url, source.get("year_range"))]
    for url in urls:
        path = download(
            url,
            out_dir,
            dataset=name,
            sha256=source.get("sha256"),
            retries=source.get("retries", 3),
            timeout=source.get("timeout", 60),
            headers=headers,
        )
        if source.get("extract", False):
            folder = out_dir / unpacked_name(path)
            extract(path, folder)
            path = folder
        entries.append(_entry(path))
    return entries


def _zarr(name: str, source: Mapping[str, Any], out_dir: Path) -> list[dict[str, Any]]:
    target = out_dir / f"{name}.zarr"
    headers = auth_headers(source, name)
    return [_entry(fetch_zarr(source["url"], target, name, source.get("select", {}), headers))]


class NoMatchError(DownloadError):
    """A local source's ``path`` matches no file. ``key`` and ``detail`` let the pre-flight
    check (pipeline.datacheck) say the same as a ConfigError naming the key."""

    def __init__(self, key: str, detail: str):
        super().__init__(f"{key}: {detail}")
        self.key, self.detail = key, detail


def local_paths(name: str, source: Mapping[str, Any]) -> list[Path]:
    """The files of local source ``name``: its ``path`` glob (``~`` expanded, relative to
    the working directory), resolved and sorted, so the pre-flight check and the download
    stage see the same files in the same order."""
    pattern = str(Path(source["path"]).expanduser())
    paths = sorted(Path(p).resolve() for p in glob.glob(pattern))
    if not paths:
        raise NoMatchError(
            f"datasets.{name}.source.path",
            f"no file matches '{pattern}' (relative paths are resolved from {Path.cwd()})",
        )
    return paths


def _local(name: str, source: Mapping[str, Any], out_dir: Path) -> list[dict[str, Any]]:
    return [_entry(p) for p in local_paths(name, source)]


FETCHERS = {"synthetic": _synthetic, "http": _http, "zarr": _zarr, "local": _local}


def fetch(name: str, dataset: Mapping[str, Any], out_dir: str | Path) -> dict[str, Any]:
    """Fetch dataset ``name`` into ``out_dir`` and write its manifest; return the manifest."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    source = dataset["source"]
    files = FETCHERS[source["kind"]](name, source, out_dir)
    kind = source["kind"]
    manifest = {"dataset": name, "kind": kind, "source": public_source(source), "files": files}
    write_json(manifest, out_dir / MANIFEST)
    return manifest


def read_manifest(path: str | Path) -> dict[str, Any]:
    with open(path) as fh:
        return json.load(fh)
