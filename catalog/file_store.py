"""The catalog's file store: one interface over a local folder or S3-compatible object storage.

Keys are relative POSIX paths (``staging/<submission>/<path>``, ``studies/S-BIAD1/<path>``); every
method checks them with :func:`check_key`, so a depositor's path can never leave the store. A depositor's path
only ever comes after such a folder of its own, so the catalog's other top-level folders cannot be reached from
one: ``file-tables/`` (:data:`FILE_TABLES_PREFIX`) holds the published file tables.
Objects are written once: :meth:`FileStore.put` never overwrites, computes MD5 and SHA-256 on the
way, and makes an object visible at its key only after its checksums were verified.

Use :func:`catalog.stores.open_file_store` to get the store a :class:`~catalog.config.Settings` asks for.
"""

from __future__ import annotations

import abc
import hashlib
import re
from dataclasses import dataclass
from datetime import timedelta
from typing import IO, Callable, Iterator

from catalog.errors import CatalogError, Conflict, NotFound, ValidationFailed
from catalog.file_paths import MAX_KEY_BYTES, path_problem

#: first-segment prefix reserved for the stores' own bookkeeping (temporary uploads, checksums)
RESERVED_PREFIX = ".bia-"
#: where uploads in progress live until their checksums are verified
INCOMING = RESERVED_PREFIX + "incoming"
DEFAULT_CONTENT_TYPE = "application/octet-stream"
#: the top-level folder of the published file tables (``file-tables/<sha256>.sqlite``, see catalog.file_tables)
FILE_TABLES_PREFIX = "file-tables/"

#: called with the number of bytes of each chunk read; what it returns is ignored (e.g. a tqdm bar's update)
Progress = Callable[[int], object]


class InvalidKey(CatalogError):
    """A key that is not a clean relative POSIX path."""

    status = 400
    code = "invalid_key"


class InvalidChecksum(CatalogError):
    """An expected checksum that is not a hex digest of the right length."""

    status = 400
    code = "invalid_checksum"


class ObjectExists(Conflict):
    """Something is already stored at the key (objects are never overwritten)."""

    code = "object_exists"


class ObjectNotFound(NotFound):
    """Nothing is stored at the key."""

    code = "object_not_found"


class ChecksumMismatch(ValidationFailed):
    """The bytes received do not have the checksum the depositor declared."""

    code = "checksum_mismatch"


class SizeMismatch(ValidationFailed):
    """The stream was shorter or longer than the declared size."""

    code = "size_mismatch"


class InvalidRange(CatalogError):
    """A byte range outside the object (HTTP 416)."""

    status = 416
    code = "range_not_satisfiable"


class StorageUnavailable(CatalogError):
    """The storage backend failed or refused the catalog's credentials."""

    status = 503
    code = "storage_unavailable"


@dataclass(frozen=True)
class StoredObject:
    """An object in the store, with the checksums computed when it was written."""

    key: str
    size: int
    md5: str
    sha256: str
    content_type: str | None = None


def check_key(key: str) -> str:
    """Return ``key`` if it is a clean relative POSIX path, else raise :class:`InvalidKey`."""
    if not isinstance(key, str) or not key:
        raise InvalidKey("an object key must be a non-empty string")
    _check_path(key, key)
    if key.split("/", 1)[0].startswith(RESERVED_PREFIX):
        raise InvalidKey(f"object key {key!r}: names starting with {RESERVED_PREFIX!r} are reserved")
    return key


def folder_prefix(prefix: str) -> str:
    """A checked prefix that names a folder: ``""`` or ending with ``/``."""
    prefix = check_prefix(prefix)
    return prefix if prefix == "" or prefix.endswith("/") else prefix + "/"


def check_prefix(prefix: str) -> str:
    """Return ``prefix`` if it is ``""`` or the start of a valid key (a trailing ``/`` allowed)."""
    if prefix == "":
        return prefix
    if not isinstance(prefix, str):
        raise InvalidKey("a key prefix must be a string")
    body = prefix[:-1] if prefix.endswith("/") else prefix
    if not body:
        raise InvalidKey(f"key prefix {prefix!r} is absolute")
    _check_path(body, prefix)
    if body.startswith(RESERVED_PREFIX):
        raise InvalidKey(f"key prefix {prefix!r}: names starting with {RESERVED_PREFIX!r} are reserved")
    return prefix


def _check_path(path: str, shown: str) -> None:
    problem = path_problem(path, max_bytes=MAX_KEY_BYTES)
    if problem:
        raise InvalidKey(f"object key {shown[:80]!r} has {problem}")


def check_checksums(md5: str | None, sha256: str | None) -> tuple[str | None, str | None]:
    """Lower-cased expected checksums, or :class:`InvalidChecksum` if one is malformed."""
    out: list[str | None] = []
    for name, value, length in (("md5", md5, 32), ("sha256", sha256, 64)):
        if value is None:
            out.append(None)
            continue
        value = value.strip().lower()
        if not re.fullmatch(f"[0-9a-f]{{{length}}}", value):
            raise InvalidChecksum(f"expected {name} {value!r} is not {length} hexadecimal digits")
        out.append(value)
    return out[0], out[1]


def check_range(start: int, end: int | None) -> None:
    """Reject ranges that cannot select anything (negative start, end before start)."""
    if start < 0 or (end is not None and end < start):
        raise InvalidRange(f"byte range {start}-{'' if end is None else end} is not valid")


def content_disposition(filename: str) -> str:
    """An RFC 6266 ``attachment`` header value: an ASCII fallback name plus the UTF-8 name."""
    from urllib.parse import quote

    fallback = "".join(c if 32 <= ord(c) < 127 and c not in '"\\' else "_" for c in filename)
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(filename, safe='')}"


class HashingReader:
    """A read-only stream wrapper that computes MD5/SHA-256, counts bytes and enforces a declared size.

    ``read(n)`` fills up to ``n`` bytes from the wrapped stream (short reads are joined), so callers
    that assemble parts from repeated reads do not copy data quadratically.
    """

    def __init__(
        self,
        stream: IO[bytes],
        size: int | None = None,
        progress: Progress | None = None,
    ) -> None:
        if size is not None and size < 0:
            raise SizeMismatch(f"declared size {size} is negative")
        self._stream = stream
        self._declared = size
        self._progress = progress
        self._md5 = hashlib.md5()
        self._sha256 = hashlib.sha256()
        self.count = 0

    def read(self, n: int = -1) -> bytes:
        chunks: list[bytes] = []
        wanted = n if n is not None and n >= 0 else None
        got = 0
        eof = False
        while wanted is None or got < wanted:
            chunk = self._stream.read(wanted - got if wanted is not None else 1 << 20)
            if not chunk:
                eof = True
                break
            chunks.append(chunk)
            got += len(chunk)
        data = bytes(chunks[0]) if len(chunks) == 1 else b"".join(chunks)  # bytes, even from a bytearray stream
        self._consume(data)
        if eof:
            self._check_complete()
        return data

    def _consume(self, data: bytes) -> None:
        if not data:
            return
        self.count += len(data)
        if self._declared is not None and self.count > self._declared:
            raise SizeMismatch(f"the stream holds more than the declared {self._declared} bytes")
        self._md5.update(data)
        self._sha256.update(data)
        if self._progress is not None:
            self._progress(len(data))

    def _check_complete(self) -> None:
        if self._declared is not None and self.count != self._declared:
            raise SizeMismatch(f"the stream ended after {self.count} of the declared {self._declared} bytes")

    def drain_check(self) -> None:
        """After a consumer stopped at the declared size: fail if the stream holds more bytes."""
        extra = self._stream.read(1)
        if extra:
            raise SizeMismatch(f"the stream holds more than the declared {self._declared} bytes")
        self._check_complete()

    @property
    def md5(self) -> str:
        return self._md5.hexdigest()

    @property
    def sha256(self) -> str:
        return self._sha256.hexdigest()

    def verify(self, expected_md5: str | None, expected_sha256: str | None) -> None:
        """Raise :class:`ChecksumMismatch` naming every checksum that differs."""
        errors = [
            {
                "field": name,
                "expected": want,
                "actual": got,
                "message": f"{name} differs",
            }
            for name, want, got in (
                ("md5", expected_md5, self.md5),
                ("sha256", expected_sha256, self.sha256),
            )
            if want is not None and want != got
        ]
        if errors:
            names = " and ".join(e["field"] for e in errors)
            raise ChecksumMismatch(f"the received bytes do not match the declared {names}", errors)


class FileStore(abc.ABC):
    """Write-once storage of files by key. Both implementations behave the same for every method."""

    #: How many moves or copies are worth running at once (network stores gain from it, local disks do not).
    concurrency: int = 1

    @abc.abstractmethod
    def put(
        self,
        key: str,
        stream: IO[bytes],
        *,
        size: int | None = None,
        expected_md5: str | None = None,
        expected_sha256: str | None = None,
        content_type: str | None = None,
        progress: Progress | None = None,
    ) -> StoredObject:
        """Stream ``stream`` to ``key`` (never held whole in memory), computing MD5 and SHA-256.

        ``progress`` is called with the number of bytes of each chunk read. A wrong expected
        checksum raises :class:`ChecksumMismatch`, a stream longer or shorter than ``size``
        :class:`SizeMismatch`, an existing key :class:`ObjectExists`; in each case, and if the
        stream raises, nothing is left at ``key``. Readers never see a partial object.
        """

    @abc.abstractmethod
    def stat(self, key: str) -> StoredObject | None:
        """The object at ``key`` with its stored checksums, or None."""

    @abc.abstractmethod
    def open_range(self, key: str, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        """The bytes ``start..end`` (inclusive, like HTTP Range; ``end`` past the object is clamped).

        Raises :class:`ObjectNotFound` / :class:`InvalidRange` at call time, before any byte is read.
        """

    @abc.abstractmethod
    def move(self, src: str, dst: str) -> StoredObject:
        """Move ``src`` to ``dst`` (never overwriting it); ``src`` is removed only once ``dst`` is complete."""

    @abc.abstractmethod
    def delete(self, key: str) -> bool:
        """Remove ``key``; False if nothing was there."""

    @abc.abstractmethod
    def list(self, prefix: str = "", *, checksums: bool = True) -> Iterator[StoredObject]:
        """Objects whose key starts with ``prefix`` (a string prefix, as in S3).

        Order: key order on a local folder, AWS and MinIO; SeaweedFS lists folder by folder.

        With ``checksums=False`` md5/sha256 are ``""``: cheaper on S3 servers whose listings lack metadata.
        """

    @abc.abstractmethod
    def folders(self, prefix: str) -> tuple[str, ...]:
        """The names of the folders directly under ``prefix`` (``staging/`` → submission ids): the next key
        segment of the objects below it, one listing however many objects they hold."""

    def delete_prefix(self, prefix: str) -> int:
        """Remove every object whose key starts with ``prefix`` (not ``""``); returns how many."""
        if check_prefix(prefix) == "":
            raise InvalidKey("refusing to delete every object: give a non-empty prefix")
        return sum(1 for obj in list(self.list(prefix, checksums=False)) if self.delete(obj.key))

    @abc.abstractmethod
    def presigned_get_url(
        self,
        key: str,
        expires: timedelta = timedelta(hours=1),
        filename: str | None = None,
    ) -> str | None:
        """A time-limited URL to download ``key`` directly (None when the store cannot make one).

        ``filename`` makes the download an attachment with that name (Content-Disposition).
        """

    @abc.abstractmethod
    def purge_incomplete(self, older_than: timedelta = timedelta(days=1)) -> int:
        """Remove uploads left behind by crashed processes; returns how many."""


__all__ = [
    "ChecksumMismatch",
    "FileStore",
    "InvalidChecksum",
    "InvalidKey",
    "InvalidRange",
    "ObjectExists",
    "ObjectNotFound",
    "SizeMismatch",
    "StorageUnavailable",
    "StoredObject",
    "check_key",
    "check_prefix",
    "folder_prefix",
]
