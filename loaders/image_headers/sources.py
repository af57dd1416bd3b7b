"""Where header bytes come from, counted and capped.

A :class:`ByteSource` answers ``read(offset, length)``; :class:`FileSource` (a local file), :class:`MemorySource`
(bytes in memory) and :class:`RangeSource` (any ``read(offset, length)`` callable, e.g. one that sends an HTTP Range
request) are the three kinds; :class:`ReadAhead` over a remote one turns many small reads into a few large ones. The readers never see a source directly: they get a :class:`CountingReader`, a
seekable binary file object over the source that counts every byte and call, and refuses (:class:`ByteCapExceeded`)
any read that would take the total past the cap. Once over the cap it keeps refusing, so a library that swallows
the first refusal cannot read on; the caller checks :attr:`CountingReader.over_cap` afterwards.

An OME-Zarr store is many small objects, not one byte range: :class:`KeySource` answers ``get(key)`` (a local
folder: :class:`DirectoryKeys`; an ``.ome.zarr.zip`` read through a :class:`CountingReader`: :class:`ZipKeys`),
counted and capped the same way by :class:`CountingKeys`.
"""

from __future__ import annotations

import io
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Callable, Iterable, Protocol, cast


class ByteCapExceeded(Exception):
    """A read would take the bytes read from one file past the cap."""


class ByteSource(Protocol):
    #: what the source is called in messages and results (a path or URL)
    name: str
    #: its length in bytes, None when unknown
    size: int | None

    def read(self, offset: int, length: int) -> bytes: ...


class FileSource:
    """A local file, read with ``pread`` (no buffering: the counted bytes are the bytes read)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.name = str(path)
        self._fd = os.open(path, os.O_RDONLY)
        self.size: int | None = os.fstat(self._fd).st_size

    def read(self, offset: int, length: int) -> bytes:
        return os.pread(self._fd, length, offset)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> "FileSource":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class MemorySource:
    """Bytes in memory."""

    def __init__(self, data: bytes, name: str = "<memory>") -> None:
        self.name, self._data = name, bytes(data)
        self.size: int | None = len(data)

    def read(self, offset: int, length: int) -> bytes:
        return self._data[offset : offset + length]


class RangeSource:
    """Any ``read(offset, length) -> bytes`` callable (an HTTP Range request, an object-store GET with a range)."""

    def __init__(self, read: Callable[[int, int], bytes], size: int | None, name: str) -> None:
        self._read, self.size, self.name = read, size, name

    def read(self, offset: int, length: int) -> bytes:
        return bytes(self._read(offset, length))


class ReadAhead:
    """A :class:`ByteSource` over another that fetches whole aligned blocks of ``block`` bytes, runs of missing
    blocks in one call, and keeps the last ``keep`` blocks: over HTTP, a header read becomes a few Range requests
    instead of one per structure. ``calls`` and ``fetched`` count what was asked of the source below."""

    def __init__(self, source: ByteSource, block: int = 64 * 1024, keep: int = 64) -> None:
        self.source, self.block, self.keep = source, block, keep
        self.name, self.size = source.name, source.size
        self.calls = self.fetched = 0
        self._blocks: dict[int, bytes] = {}

    def read(self, offset: int, length: int) -> bytes:
        if length <= 0:
            return b""
        first, last = offset // self.block, (offset + length - 1) // self.block
        missing = [index for index in range(first, last + 1) if index not in self._blocks]
        if missing:
            self._fetch(missing[0], missing[-1])
        data = b"".join(self._blocks.get(index, b"") for index in range(first, last + 1))
        start = offset - first * self.block
        return data[start : start + length]

    def _fetch(self, first: int, last: int) -> None:
        data = self.source.read(first * self.block, (last - first + 1) * self.block)
        self.calls += 1
        self.fetched += len(data)
        for index in range(first, last + 1):
            self._blocks.pop(index, None)
            self._blocks[index] = data[(index - first) * self.block : (index - first + 1) * self.block]
        while len(self._blocks) > max(self.keep, last - first + 1):
            del self._blocks[next(iter(self._blocks))]


class CountingReader(io.RawIOBase):
    """A seekable binary file over a :class:`ByteSource` that counts bytes and reads and enforces ``cap``.

    The first ``head`` bytes are fetched once and served from memory (format detection and the first header
    read then cost one read between them).
    """

    def __init__(self, source: ByteSource, cap: int, head: int = 1024) -> None:
        super().__init__()
        self.source, self.cap = source, cap
        self.name = source.name
        self.bytes_read = self.reads = self._pos = 0
        self.over_cap = False
        self._head = self._fetch(0, min(head, source.size if source.size is not None else head))

    def _fetch(self, offset: int, length: int) -> bytes:
        if self.over_cap or self.bytes_read + length > self.cap:
            self.over_cap = True
            raise ByteCapExceeded(f"reading {length:,} bytes at offset {offset:,} would pass the {self.cap:,}-byte cap")
        data = self.source.read(offset, length) if length > 0 else b""
        self.bytes_read += len(data)
        self.reads += 1
        return data

    @property
    def head(self) -> bytes:
        return self._head

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if whence == io.SEEK_CUR:
            offset += self._pos
        elif whence == io.SEEK_END:
            if self.source.size is None:
                raise OSError("the size of this source is unknown")
            offset += self.source.size
        if offset < 0:
            raise OSError(f"negative seek position {offset}")
        self._pos = offset
        return offset

    def read(self, size: int | None = -1) -> bytes:
        known = self.source.size
        if size is None or size < 0:
            size = (known - self._pos) if known is not None else self.cap - self.bytes_read + 1
        if known is not None:
            size = min(size, known - self._pos)
        if size <= 0:
            return b""
        end = self._pos + size
        if end <= len(self._head):
            data = self._head[self._pos : end]
        else:
            data = self._fetch(self._pos, size)
        self._pos += len(data)
        return data

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def readall(self) -> bytes:
        return self.read(-1)


# ---------------------------------------------------------------------- key/value stores (OME-Zarr)


class KeySource(Protocol):
    name: str

    def get(self, key: str, limit: int) -> bytes | None:
        """The object stored under ``key`` (None if absent); refuse with :class:`ByteCapExceeded` if it is larger
        than ``limit`` bytes, before reading it."""
        ...


class DirectoryKeys:
    """A store held in a local folder: keys are ``/``-separated paths below it (never outside it)."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root).resolve()
        self.name = str(root)

    def get(self, key: str, limit: int) -> bytes | None:
        path = (self.root / key).resolve()
        if not path.is_relative_to(self.root) or not path.is_file():
            return None
        with path.open("rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            if size > limit:
                raise ByteCapExceeded(f"{key} is {size:,} bytes, over what is left of the byte cap ({limit:,})")
            return handle.read(size + 1)  # never ``limit``: a read of n bytes reserves n bytes first


class DemandKeys:
    """A store copied piecemeal into a local folder by a caller that holds it elsewhere (an OME-Zarr folder in S3):
    a key there is read; a key neither there nor known to be ``absent`` is noted in :attr:`wanted` (and reads as
    absent meanwhile), for the caller to copy before asking again."""

    def __init__(self, root: str | os.PathLike[str], absent: Iterable[str] = ()) -> None:
        self.folder, self.absent, self.name = DirectoryKeys(root), set(absent), str(root)
        self.wanted: dict[str, None] = {}

    def get(self, key: str, limit: int) -> bytes | None:
        data = self.folder.get(key, limit)
        if data is None and key not in self.absent:
            self.wanted[key] = None
        return data


class UnreadableZip(Exception):
    """A zip archive the header readers refuse: not a zip, or hostile (the message names the member and why)."""


@dataclass(frozen=True)
class ZipLimits:
    """What a zipped store may hold: members, bytes its members declare in all, bytes one member read unpacks to."""

    max_members: int = 200_000
    max_total: int = 64 << 30
    max_member: int = 16 << 20


class ZipKeys:
    """A store zipped into one archive (an ``.ome.zarr.zip``), read through a :class:`CountingReader` (so the
    archive's compressed bytes count against its cap).

    Every member is checked when it is opened, as unpacking checks it (:mod:`loaders.ngff.unpack`:
    no absolute or ``..`` names, links, duplicates or encrypted members; at most ``max_members`` members and
    ``max_total`` declared bytes): one bad member makes the whole archive :class:`UnreadableZip`. Keys are relative
    to the store's root: the archive's top, or its single top folder (``x.ome.zarr/``) when everything sits in one,
    as unpacking puts it. A member is unpacked only when asked for, at most ``max_member`` bytes."""

    def __init__(self, file: CountingReader, name: str, limits: ZipLimits = ZipLimits()) -> None:
        from loaders.ngff.unpack import UnsafeArchive, checked_members, store_root  # the rules unpacking keeps

        self.name, self.limits = name, limits
        try:
            self._archive = zipfile.ZipFile(cast(IO[bytes], file))
        except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, ValueError) as exc:
            raise UnreadableZip(f"not a readable zip archive: {exc}") from None
        try:
            members = checked_members(self._archive.infolist(), limits.max_members, limits.max_total)
        except UnsafeArchive as exc:
            raise UnreadableZip(str(exc)) from None
        root = store_root([info.filename for info in members])
        prefix = f"{root}/" if root else ""
        self._members = {info.filename[len(prefix) :]: info for info in members}

    def __contains__(self, key: str) -> bool:
        return key in self._members

    def get(self, key: str, limit: int) -> bytes | None:
        info = self._members.get(key)
        if info is None:
            return None
        allowed = min(limit, self.limits.max_member)
        if info.file_size > allowed:
            raise self._too_large(key, info.file_size, allowed, limit)
        try:
            with self._archive.open(info) as member:
                data = member.read(allowed + 1)
        except (zipfile.BadZipFile, EOFError, OSError, ValueError, NotImplementedError, RuntimeError) as exc:
            raise UnreadableZip(f"member {info.filename[:200]!r} cannot be unpacked: {exc}") from None
        if len(data) > allowed:  # more than it declares: zipfile stops at the declared size, this is a second guard
            raise self._too_large(key, len(data), allowed, limit)
        return data

    def _too_large(self, key: str, size: int, allowed: int, limit: int) -> Exception:
        if allowed < limit:
            return UnreadableZip(f"member {key[:200]!r} unpacks to {size:,} bytes, over the {allowed:,} one member may")
        return ByteCapExceeded(f"{key} unpacks to {size:,} bytes, over what is left of the byte cap ({limit:,})")

    def close(self) -> None:
        self._archive.close()


class CountingKeys:
    """A :class:`KeySource` whose reads are counted against one byte cap."""

    def __init__(self, keys: KeySource, cap: int) -> None:
        self.keys, self.cap, self.name = keys, cap, keys.name
        self.bytes_read = self.reads = 0
        self.over_cap = False

    def get(self, key: str) -> bytes | None:
        if self.over_cap:
            raise ByteCapExceeded(f"the {self.cap:,}-byte cap was reached")
        self.reads += 1
        try:
            data = self.keys.get(key, self.cap - self.bytes_read)
        except ByteCapExceeded:
            self.over_cap = True
            raise
        if data is not None:
            self.bytes_read += len(data)
            if self.bytes_read > self.cap:
                self.over_cap = True
                raise ByteCapExceeded(f"{key} takes the bytes read past the {self.cap:,}-byte cap")
        return data
