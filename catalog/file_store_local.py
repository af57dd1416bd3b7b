"""The file store in a local folder.

Layout under the root: ``<key>`` holds the bytes; ``.bia-meta/<key>`` a JSON sidecar with the
checksums, content type and the identity (inode, size, mtime) of the file they describe;
``.bia-incoming/`` uploads in progress. A put writes a temporary file in ``.bia-incoming`` (same
filesystem), verifies it, then hard-links it to ``<key>``: ``link`` is atomic and fails if the key
exists, so an object appears whole or not at all and is never overwritten. The sidecar is written
just after; a sidecar that is missing or describes another file (a crash, a concurrent reader in
that instant) is detected by its identity and the checksums are recomputed from the bytes.
"""

from __future__ import annotations

import json
import os
import shutil
import stat as stat_mode
import time
import uuid
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import IO, Any, BinaryIO, Iterator

from catalog.file_store import (
    DEFAULT_CONTENT_TYPE,
    INCOMING,
    RESERVED_PREFIX,
    FileStore,
    HashingReader,
    InvalidRange,
    ObjectExists,
    ObjectNotFound,
    Progress,
    StoredObject,
    check_checksums,
    check_key,
    check_prefix,
    folder_prefix,
    check_range,
)

META = RESERVED_PREFIX + "meta"
CHUNK_SIZE = 1 << 20


class LocalFileStore(FileStore):
    """Objects as files below ``root`` (created if missing)."""

    def __init__(self, root: Path, *, chunk_size: int = CHUNK_SIZE, fsync: bool = True) -> None:
        self.root = Path(root).absolute()
        self.chunk_size = chunk_size
        self.fsync = fsync
        self._incoming = self.root / INCOMING
        self._meta = self.root / META
        self._incoming.mkdir(parents=True, exist_ok=True)
        self._meta.mkdir(parents=True, exist_ok=True)

    def __repr__(self) -> str:
        return f"LocalFileStore({str(self.root)!r})"

    # ------------------------------------------------------------------ writing

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
        key = check_key(key)
        expected_md5, expected_sha256 = check_checksums(expected_md5, expected_sha256)
        dest = self.root / key
        if os.path.lexists(dest):
            raise ObjectExists(_exists_message(dest, key))
        reader = HashingReader(stream, size, progress)
        tmp = self._incoming / uuid.uuid4().hex
        try:
            with open(tmp, "xb") as out:
                while chunk := reader.read(self.chunk_size):
                    out.write(chunk)
                out.flush()
                if self.fsync:
                    os.fsync(out.fileno())
            reader.verify(expected_md5, expected_sha256)
            obj = StoredObject(
                key,
                reader.count,
                reader.md5,
                reader.sha256,
                content_type or DEFAULT_CONTENT_TYPE,
            )
            self._link(tmp, key)
            self._write_meta(obj, os.stat(dest))
            return obj
        finally:
            tmp.unlink(missing_ok=True)

    def move(self, src: str, dst: str) -> StoredObject:
        src, dst = check_key(src), check_key(dst)
        obj = self.stat(src)
        if obj is None:
            raise ObjectNotFound(f"no object at {src!r} to move")
        moved = replace(obj, key=dst)
        self._link(self.root / src, dst)  # same inode and mtime: the sidecar's identity still holds
        meta_src, meta_dst = self._meta / src, self._meta / dst
        try:
            meta_dst.parent.mkdir(parents=True, exist_ok=True)
            os.link(meta_src, meta_dst)
        except OSError:
            self._write_meta(moved, os.stat(self.root / dst))
        self._remove(src)
        return moved

    def delete(self, key: str) -> bool:
        return self._remove(check_key(key))

    def purge_incomplete(self, older_than: timedelta = timedelta(days=1)) -> int:
        cutoff = time.time() - older_than.total_seconds()
        removed = 0
        for entry in os.scandir(self._incoming):
            if entry.stat(follow_symlinks=False).st_mtime < cutoff:
                os.unlink(entry.path)
                removed += 1
        return removed

    def _link(self, source: Path, key: str) -> None:
        """Hard-link ``source`` at ``key``, creating folders; never replaces anything."""
        dest = self.root / key
        for _ in range(3):  # a concurrent delete may prune the new parent folder before the link
            try:
                dest.parent.mkdir(parents=True, exist_ok=True)
            except (FileExistsError, NotADirectoryError):
                raise ObjectExists(f"cannot store {key!r}: a folder on its path is an existing object") from None
            try:
                os.link(source, dest)
                return
            except FileExistsError:
                raise ObjectExists(_exists_message(dest, key)) from None
            except FileNotFoundError:
                continue
        raise FileNotFoundError(f"folder of {key!r} kept disappearing while linking")

    def _remove(self, key: str) -> bool:
        path = self.root / key
        try:
            if not stat_mode.S_ISREG(os.lstat(path).st_mode):
                return False
            os.unlink(path)
            removed = True
        except (FileNotFoundError, NotADirectoryError):
            removed = False
        meta = self._meta / key
        try:
            os.unlink(meta)
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            pass
        self._prune(path.parent, self.root)
        self._prune(meta.parent, self._meta)
        return removed

    @staticmethod
    def _prune(folder: Path, top: Path) -> None:
        """Remove empty folders from ``folder`` up to (not including) ``top``."""
        while folder != top and top in folder.parents:
            try:
                folder.rmdir()
            except OSError:
                return
            folder = folder.parent

    # ------------------------------------------------------------------ checksum sidecars

    def _write_meta(self, obj: StoredObject, st: os.stat_result) -> None:
        record = {
            "size": obj.size,
            "md5": obj.md5,
            "sha256": obj.sha256,
            "content_type": obj.content_type,
            "ino": st.st_ino,
            "mtime_ns": st.st_mtime_ns,
        }
        tmp = self._incoming / (uuid.uuid4().hex + ".json")
        tmp.write_text(json.dumps(record), encoding="utf-8")
        target = self._meta / obj.key
        try:
            self._clear_stale_meta(target)
            os.replace(tmp, target)
        finally:
            tmp.unlink(missing_ok=True)

    def _clear_stale_meta(self, target: Path) -> None:
        """Make room for a sidecar: drop stale sidecars of deleted objects that block its path."""
        for folder in reversed(target.relative_to(self._meta).parents):
            path = self._meta / folder
            if path != self._meta and path.is_file():
                path.unlink()
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.is_dir():
            shutil.rmtree(target)

    def _read_meta(self, key: str) -> dict[str, Any] | None:
        try:
            return json.loads((self._meta / key).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None

    # ------------------------------------------------------------------ reading

    def stat(self, key: str) -> StoredObject | None:
        key = check_key(key)
        path = self.root / key
        try:
            st = os.lstat(path)
        except (FileNotFoundError, NotADirectoryError):
            return None
        if not stat_mode.S_ISREG(st.st_mode):
            return None
        meta = self._read_meta(key)
        if meta and (meta.get("ino"), meta.get("size"), meta.get("mtime_ns")) == (
            st.st_ino,
            st.st_size,
            st.st_mtime_ns,
        ):
            return StoredObject(key, st.st_size, meta["md5"], meta["sha256"], meta.get("content_type"))
        return self._rehash(key, (meta or {}).get("content_type"))

    def _rehash(self, key: str, content_type: str | None) -> StoredObject | None:
        """Recompute a missing or stale sidecar from the bytes."""
        try:
            with open(self.root / key, "rb") as handle:
                st = os.fstat(handle.fileno())
                reader = HashingReader(handle)
                while reader.read(self.chunk_size):
                    pass
        except (FileNotFoundError, NotADirectoryError):
            return None
        obj = StoredObject(
            key,
            reader.count,
            reader.md5,
            reader.sha256,
            content_type or DEFAULT_CONTENT_TYPE,
        )
        self._write_meta(obj, st)
        return obj

    def open_range(self, key: str, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        key = check_key(key)
        check_range(start, end)
        try:
            handle = open(self.root / key, "rb")
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            raise ObjectNotFound(f"no object at {key!r}") from None
        size = os.fstat(handle.fileno()).st_size
        if start >= size and not (start == 0 and size == 0):
            handle.close()
            raise InvalidRange(f"byte range starts at {start}, past the end of {key!r} ({size} bytes)")
        last = size - 1 if end is None else min(end, size - 1)
        return self._read(handle, start, last - start + 1)

    def _read(self, handle: BinaryIO, start: int, length: int) -> Iterator[bytes]:
        with handle:
            handle.seek(start)
            while length > 0:
                chunk = handle.read(min(self.chunk_size, length))
                if not chunk:
                    return
                length -= len(chunk)
                yield chunk

    def list(self, prefix: str = "", *, checksums: bool = True) -> Iterator[StoredObject]:
        prefix = check_prefix(prefix)
        base = prefix.rsplit("/", 1)[0] + "/" if "/" in prefix else ""
        for key, entry in self._walk(self.root / base, base, prefix):
            if checksums:
                obj = self.stat(key)
                if obj is not None:
                    yield obj
            else:
                yield StoredObject(key, entry.stat(follow_symlinks=False).st_size, "", "")

    def folders(self, prefix: str) -> tuple[str, ...]:
        prefix = folder_prefix(prefix)
        try:
            with os.scandir(self.root / prefix) as scan:
                return tuple(
                    sorted(e.name for e in scan if e.is_dir(follow_symlinks=False) and not e.name.startswith(RESERVED_PREFIX))
                )
        except (FileNotFoundError, NotADirectoryError):
            return ()

    def _walk(self, folder: Path, rel: str, prefix: str) -> Iterator[tuple[str, os.DirEntry]]:
        """Regular files below ``folder`` in S3 key order (a folder sorts as ``name/``)."""
        try:
            with os.scandir(folder) as scan:
                entries = [(e.name + "/" if e.is_dir(follow_symlinks=False) else e.name, e) for e in scan]
        except (FileNotFoundError, NotADirectoryError):
            return
        for name, entry in sorted(entries, key=lambda item: item[0]):
            key = rel + name
            if not rel and name.startswith(RESERVED_PREFIX):
                continue
            if name.endswith("/"):
                if key.startswith(prefix) or prefix.startswith(key):
                    yield from self._walk(Path(entry.path), key, prefix)
            elif entry.is_file(follow_symlinks=False) and key.startswith(prefix):
                yield key, entry

    def presigned_get_url(
        self,
        key: str,
        expires: timedelta = timedelta(hours=1),
        filename: str | None = None,
    ) -> str | None:
        check_key(key)
        return None


def _exists_message(path: Path, key: str) -> str:
    if path.is_dir():
        return f"cannot store {key!r}: it is the folder of other objects"
    return f"an object is already stored at {key!r}"


__all__ = ["LocalFileStore"]
