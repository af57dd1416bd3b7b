"""Uploaded ``.ome.zarr.zip`` archives unpacked into a folder, checked member by member before a byte is written.

Refused (:class:`UnsafeArchive`, naming the member): a name that is absolute, climbs out (``..``), holds a
backslash, a NUL or a control character (:func:`catalog.file_paths.path_problem`), or repeats another member's
name; a symbolic link; more than ``max_members`` members, or more than ``max_bytes`` bytes declared or actually
unpacked; an encrypted member. Which images the store holds, and where, is the header readers' business
(:mod:`loaders.image_headers.ome_zarr`): unpacking only writes the members.
"""

from __future__ import annotations

import stat
import zipfile
from dataclasses import dataclass
from pathlib import Path

from catalog.file_paths import path_problem

#: members and bytes an archive may unpack to, by default
MAX_MEMBERS = 200_000
MAX_BYTES = 64 << 30
_COPY = 1 << 20


class UnsafeArchive(ValueError):
    """The archive would write outside its folder, or more than it may."""


@dataclass(frozen=True)
class Unpacked:
    #: the store root, relative to the folder unpacked into ("" when the members sit at the top)
    root: str
    members: int
    size_bytes: int


def unpack(path: str, folder: Path, *, max_members: int = MAX_MEMBERS, max_bytes: int = MAX_BYTES) -> Unpacked:
    """Unpack the OME-Zarr zip at ``path`` into ``folder`` after checking every member (see the module)."""
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise UnsafeArchive(f"not a readable zip archive: {exc}") from exc
    with archive:
        members = checked_members(archive.infolist(), max_members, max_bytes)
        written = 0
        for info in members:
            written += _extract(archive, info, folder, max_bytes - written)
    return Unpacked(store_root([info.filename for info in members]), len(members), written)


def checked_members(infos: list[zipfile.ZipInfo], max_members: int, max_bytes: int) -> list[zipfile.ZipInfo]:
    """The archive's file members, each checked (see the module); :class:`UnsafeArchive` for the first that fails."""
    files = [info for info in infos if not info.is_dir()]
    if len(files) > max_members:
        raise UnsafeArchive(f"it holds {len(files):,} members, more than the {max_members:,} allowed")
    declared, seen = 0, set()
    for info in files:
        name = info.filename
        problem = path_problem(name)
        if problem:
            raise UnsafeArchive(f"member {name[:200]!r} has {problem}")
        if name in seen:
            raise UnsafeArchive(f"member {name[:200]!r} occurs twice")
        seen.add(name)
        if stat.S_ISLNK(info.external_attr >> 16):
            raise UnsafeArchive(f"member {name[:200]!r} is a symbolic link")
        if info.flag_bits & 0x1:
            raise UnsafeArchive(f"member {name[:200]!r} is encrypted")
        declared += info.file_size
        if declared > max_bytes:
            raise UnsafeArchive(f"its members declare more than the {max_bytes:,} bytes allowed")
    return files


def _extract(archive: zipfile.ZipFile, info: zipfile.ZipInfo, folder: Path, allowed: int) -> int:
    target = folder / info.filename
    if not target.resolve().is_relative_to(folder.resolve()):
        raise UnsafeArchive(f"member {info.filename[:200]!r} would be written outside the store")
    target.parent.mkdir(parents=True, exist_ok=True)
    count = 0
    with archive.open(info) as source, open(target, "xb") as sink:
        while chunk := source.read(_COPY):
            count += len(chunk)
            if count > allowed:
                raise UnsafeArchive("it unpacks to more bytes than allowed")
            sink.write(chunk)
    return count


def store_root(names: list[str]) -> str:
    """The store's top folder: the archive's single top folder when everything sits inside one, else ""."""
    tops = {name.split("/", 1)[0] for name in names}
    if len(tops) == 1 and all("/" in name for name in names):
        return tops.pop()
    return ""
