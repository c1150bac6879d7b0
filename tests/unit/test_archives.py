"""Safe archive extraction: normal archives, path traversal, absolute paths, links."""

from __future__ import annotations

import io
import stat
import tarfile
import zipfile
from pathlib import Path

import pytest

from pipeline.sources.archives import UnsafeArchiveError, extract
from pipeline.variables import DataError


def _zip(path: Path, members: dict[str, str], links: dict[str, str] | None = None) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, text in members.items():
            zf.writestr(name, text)
        for name, target in (links or {}).items():
            info = zipfile.ZipInfo(name)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            zf.writestr(info, target)
    return path


def _tar(path: Path, members: dict[str, str], links: dict[str, str] | None = None) -> Path:
    with tarfile.open(path, "w:gz") as tf:
        for name, text in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(text.encode())
            tf.addfile(info, io.BytesIO(text.encode()))
        for name, target in (links or {}).items():
            info = tarfile.TarInfo(name)
            info.type, info.linkname = tarfile.SYMTYPE, target
            tf.addfile(info)
    return path


ARCHIVES = {"zip": _zip, "tar.gz": _tar}
LAYOUT = {"top/time_series/a.nc": "A", "top/attributes/attributes.csv": "gauge_id\n"}


@pytest.mark.parametrize("kind", ARCHIVES)
def test_extracts_a_normal_archive(tmp_path: Path, kind: str) -> None:
    archive = ARCHIVES[kind](tmp_path / f"data.{kind}", LAYOUT)
    dest = tmp_path / "out"
    paths = extract(archive, dest)
    assert paths == sorted(dest / name for name in LAYOUT)
    assert (dest / "top/time_series/a.nc").read_text() == "A"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temp left


@pytest.mark.parametrize("kind", ARCHIVES)
def test_a_second_extraction_replaces_the_first(tmp_path: Path, kind: str) -> None:
    dest = tmp_path / "out"
    extract(ARCHIVES[kind](tmp_path / f"a.{kind}", {"old.txt": "1"}), dest)
    extract(ARCHIVES[kind](tmp_path / f"b.{kind}", {"new.txt": "2"}), dest)
    assert sorted(p.name for p in dest.iterdir()) == ["new.txt"]


BAD_MEMBERS = {
    "traversal": ("ok/../../evil.txt", "'..'"),
    "absolute": ("/tmp/evil.txt", "absolute"),
}


@pytest.mark.parametrize("kind", ARCHIVES)
@pytest.mark.parametrize("case", BAD_MEMBERS)
def test_a_member_leaving_dest_is_refused_before_writing(
    tmp_path: Path, kind: str, case: str
) -> None:
    member, why = BAD_MEMBERS[case]
    archive = ARCHIVES[kind](tmp_path / f"bad.{kind}", {"first.txt": "x", member: "evil"})
    dest = tmp_path / "sub" / "out"
    with pytest.raises(UnsafeArchiveError) as err:
        extract(archive, dest)
    assert str(archive) in str(err.value) and member.lstrip("/") in str(err.value)
    if kind == "zip":  # tarfile's own filter words its reasons differently
        assert why in str(err.value)
    assert not dest.exists() and list((tmp_path / "sub").iterdir()) == []
    assert not (tmp_path / "evil.txt").exists()


@pytest.mark.parametrize("kind", ARCHIVES)
def test_a_link_pointing_outside_is_refused(tmp_path: Path, kind: str) -> None:
    archive = ARCHIVES[kind](tmp_path / f"link.{kind}", {"a.txt": "x"}, {"escape": "../../etc"})
    with pytest.raises(UnsafeArchiveError, match="escape"):
        extract(archive, tmp_path / "out")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("kind", ARCHIVES)
def test_a_link_inside_is_kept(tmp_path: Path, kind: str) -> None:
    archive = ARCHIVES[kind](tmp_path / f"link.{kind}", {"d/a.txt": "x"}, {"d/b.txt": "a.txt"})
    dest = tmp_path / "out"
    extract(archive, dest)
    assert (dest / "d/b.txt").is_symlink() and (dest / "d/b.txt").read_text() == "x"


def test_not_an_archive_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "data.zip"
    path.write_bytes(b"<html>404</html>")
    with pytest.raises(DataError, match=str(path)):
        extract(path, tmp_path / "out")


def test_a_device_file_in_a_tar_is_refused_by_the_data_filter(tmp_path: Path) -> None:
    archive = tmp_path / "fifo.tar"
    with tarfile.open(archive, "w") as tf:
        info = tarfile.TarInfo("pipe")
        info.type = tarfile.FIFOTYPE
        tf.addfile(info)
    with pytest.raises(UnsafeArchiveError, match="'pipe' is unsafe"):
        extract(archive, tmp_path / "out")
