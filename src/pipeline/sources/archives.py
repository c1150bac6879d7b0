"""Safe extraction of downloaded archives (zip, tar, tar.gz, ...).

An archive names its members; a hostile or broken one can name ``../../.bashrc``, an
absolute path, or a link to one, and a naive extraction writes outside the folder meant
for it ("zip slip"; CVE-2007-4559 for Python's tarfile). Every member is checked before
anything is written: a path that leaves the destination, or a link whose target does,
is refused with an error naming the archive and the member. Python 3.11's zipfile has
no filter, so names and links are checked here, lexically, for zip and tar alike; tar
members then also pass tarfile's ``data`` filter (PEP 706), which resolves hard links,
refuses device files and drops unsafe permission bits.
Extraction is atomic: into a temporary folder beside the destination, renamed onto it
once complete (pipeline.io.atomic_path), so an interrupted run leaves nothing half-done.
"""

from __future__ import annotations

import os
import re
import stat
import tarfile
import zipfile
from pathlib import Path

from pipeline.io import atomic_path
from pipeline.variables import DataError


class UnsafeArchiveError(DataError):
    """An archive member would land outside the destination; names archive and member."""


def _refuse(archive: Path, member: str, why: str) -> UnsafeArchiveError:
    return UnsafeArchiveError(
        f"{archive}: member '{member}' {why}; refusing to extract this archive (nothing was "
        "written). Extract it by hand if you trust it, and point the source at the folder"
    )


def _escapes(name: str) -> str | None:
    """Why a member name or link target would leave the folder it is extracted into (an
    absolute path: POSIX, Windows drive or UNC; a ``..`` component), or None. Lexical
    checks, so they hold whatever links earlier members made."""
    path = name.replace("\\", "/")
    if path.startswith("/") or re.match(r"[A-Za-z]:", path):
        return "is an absolute path"
    if ".." in path.split("/"):
        return "climbs out of the folder with '..'"
    return None


def _check(archive: Path, member: str, link: str | None = None) -> None:
    """Refuse ``member`` if its name, or the target of the link it is, escapes."""
    if why := _escapes(member):
        raise _refuse(archive, member, why)
    if link is not None and (why := _escapes(link)):
        raise _refuse(archive, member, f"links to '{link}', which {why}")


def _extract_zip(archive: Path, into: Path) -> None:
    """Check every member, then extract; links (Unix mode in ``external_attr``) become
    symbolic links, as zipfile itself would write them as text files."""
    with zipfile.ZipFile(archive) as zf:
        infos = zf.infolist()
        links = {
            i.filename: zf.read(i).decode() for i in infos if stat.S_ISLNK(i.external_attr >> 16)
        }
        for info in infos:
            _check(archive, info.filename, links.get(info.filename))
        for info in infos:
            if info.filename not in links:
                zf.extract(info, into)
                continue
            path = into / info.filename
            path.parent.mkdir(parents=True, exist_ok=True)
            os.symlink(links[info.filename], path)


def _extract_tar(archive: Path, into: Path) -> None:
    """Check every member as for zip (tarfile would strip a leading ``/`` silently),
    then through tarfile's ``data`` filter (links resolved, special files), then extract."""
    with tarfile.open(archive) as tf:
        members = tf.getmembers()
        for member in members:
            _check(archive, member.name, member.linkname if member.issym() else None)
            try:
                tarfile.data_filter(member, str(into))
            except tarfile.FilterError as err:
                raise _refuse(archive, member.name, f"is unsafe ({err})") from err
        tf.extractall(into, members=members, filter="data")


#: Archive suffixes, longest first, stripped to name the folder an archive unpacks into.
ARCHIVE_SUFFIXES = (".tar.gz", ".tar.bz2", ".tar.xz", ".tgz", ".zip", ".tar")


def unpacked_name(archive: Path) -> str:
    """The folder name for ``archive``: its name without the archive suffix."""
    name = archive.name
    for suffix in ARCHIVE_SUFFIXES:
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return f"{name}.d"


def extract(archive: str | Path, dest: str | Path) -> list[Path]:
    """Extract ``archive`` (zip or any tar) into ``dest``, replacing a previous ``dest``;
    return the extracted files (not folders), sorted. UnsafeArchiveError names a member
    that would leave ``dest``; nothing is written then."""
    archive, dest = Path(archive), Path(dest)
    if zipfile.is_zipfile(archive):
        extract_into = _extract_zip
    elif tarfile.is_tarfile(archive):
        extract_into = _extract_tar
    else:
        raise DataError(f"{archive}: neither a zip nor a tar archive (a truncated download?)")
    with atomic_path(dest) as tmp:
        tmp.mkdir()
        extract_into(archive, tmp)
    return sorted(Path(folder) / name for folder, _, names in os.walk(dest) for name in names)
