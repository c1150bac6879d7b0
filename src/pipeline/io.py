"""Atomic writes and checksums: an interrupted job never leaves a half-written output.

A write that fails because the disk is full says so (DiskFullError, naming the output)
instead of surfacing as "NetCDF: HDF error" or a bare OSError from deep in a library.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

#: Below this much free space, a failed write is taken for a full disk: HDF5 (NetCDF)
#: reports ENOSPC only as "NetCDF: HDF error", without the errno.
FULL_DISK_BYTES = 1 << 20


class DiskFullError(OSError):
    """An output could not be written: no space left on its disk (errno ENOSPC)."""


def _disk_full(err: BaseException, folder: Path) -> bool:
    """ENOSPC anywhere in the exception chain, or (for HDF5) almost no space left."""
    cause: BaseException | None = err
    while cause is not None:
        if isinstance(cause, OSError) and cause.errno == errno.ENOSPC:
            return True
        cause = cause.__cause__ or cause.__context__
    try:
        return shutil.disk_usage(folder).free < FULL_DISK_BYTES
    except OSError:
        return False


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists() or path.is_symlink():
        path.unlink()


@contextlib.contextmanager
def atomic_path(target: str | Path) -> Iterator[Path]:
    """Yield a temporary sibling of ``target``; rename it onto ``target`` on success.

    Works for files and directories (Zarr stores). On error the temporary is removed
    and any previous ``target`` is left untouched; a full disk raises DiskFullError.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp-{uuid.uuid4().hex[:8]}")
    try:
        yield tmp
        if target.exists():
            _remove(target)
        os.replace(tmp, target)
    except Exception as err:
        if isinstance(err, DiskFullError) or not _disk_full(err, target.parent):
            raise
        raise DiskFullError(
            errno.ENOSPC,
            f"cannot write {target}: the disk is full (no space left on device, errno "
            "ENOSPC); nothing was written. Free space there, or set 'results' to a "
            "folder on a larger disk",
        ) from err
    finally:
        if tmp.exists():
            _remove(tmp)


def write_json(obj: Any, target: str | Path) -> None:
    with atomic_path(target) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def write_text(text: str, target: str | Path) -> None:
    with atomic_path(target) as tmp:
        tmp.write_text(text)


def write_netcdf(ds: xr.Dataset, target: str | Path, **kwargs: Any) -> None:
    with atomic_path(target) as tmp:
        ds.to_netcdf(tmp, **kwargs)


def cf_series_encoding(ds: xr.Dataset, time: str, units: str) -> dict[str, dict]:
    """CF ``days since`` int32 times and float32 data (NaN fill), as archives of station and
    basin series store them."""
    enc: dict[str, dict] = {time: {"units": units, "calendar": "standard", "dtype": "int32"}}
    for name, var in ds.data_vars.items():
        if var.dtype.kind == "f":
            enc[str(name)] = {"dtype": "float32", "_FillValue": np.float32(np.nan)}
    return enc


def write_zarr(ds: xr.Dataset, target: str | Path, **kwargs: Any) -> None:
    """Write a Zarr store atomically: format 2 with consolidated metadata, which every
    Zarr reader understands and which remote (HTTP) readers open with one request."""
    with atomic_path(target) as tmp:
        ds.to_zarr(tmp, mode="w", consolidated=True, zarr_format=2, **kwargs)


def sha256_file(path: str | Path, chunk_size: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk_size):
            digest.update(block)
    return digest.hexdigest()


def sha256_tree(path: str | Path) -> str:
    """Checksum of a directory (e.g. a Zarr store): file names and contents, sorted."""
    root = Path(path)
    digest = hashlib.sha256()
    for file in sorted(p for p in root.rglob("*") if p.is_file()):
        digest.update(str(file.relative_to(root)).encode())
        digest.update(sha256_file(file).encode())
    return digest.hexdigest()
