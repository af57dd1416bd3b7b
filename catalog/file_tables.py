"""Published file tables: an immutable object per study version, a pointer to it in the state database, and a copy
on each node that serves it.

A study version's file table (:mod:`catalog.file_index`) never changes once built, so it is published under its
content: the SHA-256 of the SQLite file names it. :meth:`SharedTables.publish` places the table in the node's
folder as ``<accession>@<sha256>.sqlite``, stores it in the file store as ``file-tables/<sha256>.sqlite``, then
writes the pointer row ``file_tables(view, accession)`` (digest, object key, commit, files, bytes). In that order,
so no node ever reads a pointer to an object not yet stored. Readers look the pointer up (one indexed query); a
node that lacks the table of that digest downloads it to a temporary file, checks its SHA-256 and renames it into
place (:meth:`SharedTables.local`): a truncated or altered object is refused, never served. A pointer that is gone
means the view has no table for the study (deleted, or moved to the other view): the node drops its stale copy.
Removing a pointer removes its object once no other pointer names that digest; that check and the deletion run
inside the site-wide write transaction, where a publisher also checks that its object is still there, so a
deletion never strands a new pointer. The counts (files, bytes) and the commit a table was built for are columns
of the pointer: listings, totals and recovery never need the table itself.

**Embedded catalogs** (SQLite state database and a local file store: one host) keep no copy in the file store:
the pointer references the table in the view's folder (its ``object_key`` is empty). Every process of an embedded
catalog reads that one folder, so a copy would double the disk the largest derived data takes (a 1.3 M-file
study's table is hundreds of MB) and add a second write to every publish, for nothing another process could not
already read. With a PostgreSQL state database or an S3 file store other hosts may serve the catalog, so tables
are copied to the file store.

Tables made before pointers existed (``<accession>.sqlite``) are adopted when a folder is opened
(:meth:`SharedTables.adopt_legacy`): hashed, renamed and given a pointer, unless the study already has one.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sqlite3
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from catalog.errors import CatalogError, NotFound
from catalog.file_store import FILE_TABLES_PREFIX, FileStore, ObjectExists, ObjectNotFound
from catalog.file_store_local import LocalFileStore
from catalog.state_db import StateDB

log = logging.getLogger(__name__)

CONTENT_TYPE = "application/vnd.sqlite3"
#: downloads in progress (``.<accession>.<random>.fetching``) older than this are left by dead processes
STALE_FETCH_SECONDS = 3600
#: how long a process reuses a pointer it read (a request reads it several times; another node's new version is
#: served at most this much later, and always whole)
POINTER_SECONDS = 1.0
_POINTERS_KEPT = 10_000
_CHUNK = 1 << 20
_ATTEMPTS = 3


class TableUnavailable(CatalogError):
    """A study's file table is published but its bytes cannot be had (lost from the store, or corrupt)."""

    status = 503
    code = "file_table_unavailable"
    retry_after = 30


@dataclass(frozen=True)
class TablePointer:
    """Where the published table of a study in a view is, and what it holds."""

    accession: str
    commit: str | None
    #: the table's key in the file store (``""``: the table in the folder of an embedded catalog)
    object_key: str
    digest: str
    files: int
    bytes: int


def object_key(digest: str) -> str:
    """The file-store key of the table with this SHA-256."""
    return f"{FILE_TABLES_PREFIX}{digest}.sqlite"


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def table_facts(path: Path) -> dict[str, Any]:
    """The ``meta`` rows of a built table (``files``, ``bytes``, ``commit``), read without changing the file."""
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return dict(db.execute("SELECT key, value FROM meta"))
    finally:
        db.close()


def table_formats(path: Path, limit: int = 1000) -> dict[str, int]:
    """Files of a built table by their ``format`` (``(unknown)`` for none), most frequent first, at most ``limit``."""
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        column = db.execute("SELECT idx FROM columns WHERE name = 'format'").fetchone()
        if column is None:
            return {}
        rows = db.execute(f"SELECT c{int(column[0])}, count(*) AS n FROM files GROUP BY 1 ORDER BY n DESC LIMIT ?", (limit,))
        counts: dict[str, int] = {}
        for value, n in rows:
            name = str(value) if value not in (None, "") else "(unknown)"
            counts[name] = counts.get(name, 0) + int(n)
        return counts
    finally:
        db.close()


_POINTER = "SELECT accession, commit_id, object_key, digest, files, bytes FROM file_tables"


def _pointer(row: Any) -> TablePointer:
    return TablePointer(row[0], row[1], row[2], row[3], int(row[4]), int(row[5]))


class SharedTables:
    """The published tables of one view: pointers in ``state``, objects in ``store``, copies in ``directory``."""

    def __init__(
        self,
        directory: Path,
        state: StateDB,
        view: str,
        store: FileStore | None = None,
        pointer_seconds: float = POINTER_SECONDS,
    ) -> None:
        self.directory = Path(directory)
        self.state = state
        self.view = view
        self.store = store
        #: whether tables are copied to the file store (another host may need them), see the module docstring
        self.copies = store is not None and (state.shared or not isinstance(store, LocalFileStore))
        #: how long a pointer read is reused by this process (its own publishes and removals are seen at once)
        self.pointer_seconds = pointer_seconds
        self._pointers: dict[str, tuple[float, TablePointer | None]] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._locks_guard = threading.Lock()

    # ------------------------------------------------------------------------------------------------ pointers

    def pointer(self, accession: str, fresh: bool = False) -> TablePointer | None:
        """The study's pointer, as read at most :attr:`pointer_seconds` ago (``fresh``: read now)."""
        now = time.monotonic()
        if not fresh and self.pointer_seconds > 0:
            hit = self._pointers.get(accession)
            if hit is not None and now - hit[0] < self.pointer_seconds:
                return hit[1]
        with self.state.transaction() as conn:
            row = conn.execute(f"{_POINTER} WHERE view = ? AND accession = ?", (self.view, accession)).fetchone()
        pointer = _pointer(row) if row else None
        if self.pointer_seconds > 0:
            if len(self._pointers) >= _POINTERS_KEPT:
                self._pointers.clear()
            self._pointers[accession] = (now, pointer)
        return pointer

    def _forget(self, accession: str) -> None:
        self._pointers.pop(accession, None)

    def older_than(self, layout: int) -> list[str]:
        """The studies whose table was built with a layout older than ``layout`` (or before layouts were counted)."""
        with self.state.transaction() as conn:
            rows = conn.execute(
                "SELECT accession FROM file_tables WHERE view = ? AND (layout IS NULL OR layout < ?) ORDER BY accession",
                (self.view, layout),
            )
            return [row[0] for row in rows]

    def accessions(self) -> list[str]:
        with self.state.transaction() as conn:
            rows = conn.execute("SELECT accession FROM file_tables WHERE view = ? ORDER BY accession", (self.view,))
            return [row[0] for row in rows]

    def formats(self) -> tuple[dict[str, int], list[str]]:
        """Files of every published table of the view by format, summed; and the studies whose pointer does not
        carry its counts (tables published before pointers did), for the caller to count from the tables."""
        counts: dict[str, int] = {}
        missing = []
        for accession, formats in self.state.stream("SELECT accession, formats FROM file_tables WHERE view = ?", (self.view,)):
            if formats is None:
                missing.append(accession)
                continue
            for name, n in json.loads(formats).items():
                counts[name] = counts.get(name, 0) + int(n)
        return counts, missing

    def local_path(self, accession: str, digest: str) -> Path:
        return self.directory / f"{accession}@{digest}.sqlite"

    # ------------------------------------------------------------------------------------------------ publishing

    def publish(self, accession: str, path: Path, replace: bool = True, instead_of: str | None = None) -> TablePointer:
        """Make the table built at ``path`` the study's (``path`` itself stays; the caller removes it). Without
        ``replace`` a study that has a pointer keeps it (and that pointer is returned); with ``instead_of`` (a
        digest) only the table of that digest is replaced (compare-and-set: another version published meanwhile is
        kept, and its pointer returned)."""
        digest, facts = file_sha256(path), table_facts(path)
        commit = facts.get("commit")
        key = object_key(digest) if self.copies else ""
        pointer = TablePointer(
            accession,
            None if commit is None else str(commit),
            key,
            digest,
            int(facts.get("files", 0)),
            int(facts.get("bytes", 0)),
        )
        formats = json.dumps(table_formats(path))
        layout = int(facts["layout"]) if str(facts.get("layout", "")).isdigit() else None
        local = self.local_path(accession, digest)
        self.directory.mkdir(parents=True, exist_ok=True)
        _link(path, local)
        if self.copies:
            self._upload(local, key, digest)
        for _ in range(_ATTEMPTS):
            try:
                written = self._write_pointer(pointer, replace, formats, layout, instead_of)
            except NotFound:
                self._drop_local(accession)
                raise
            if written is not None:
                break
            self._upload(local, key, digest)  # its object was deleted meanwhile (another study's table had its digest)
        else:
            raise TableUnavailable(f"the file table of {accession} could not be kept in the file store ({key})")
        self._forget(accession)  # a read while the pointer was being written may have kept the old one
        self._drop_local(accession, keep=written.digest)
        return written

    def _write_pointer(
        self,
        pointer: TablePointer,
        replace: bool,
        formats: str | None = None,
        layout: int | None = None,
        instead_of: str | None = None,
    ) -> TablePointer | None:
        """Write the pointer (the old one's object removed if nothing else names it); None if the object is gone."""
        self._forget(pointer.accession)
        with self.state.transaction(write=True) as conn:
            if self.copies and not self._stored(pointer.object_key, pointer.digest):
                return None
            old = conn.execute(f"{_POINTER} WHERE view = ? AND accession = ?", (self.view, pointer.accession)).fetchone()
            if old is not None and (not replace or (instead_of is not None and old[3] != instead_of)):
                return _pointer(old)
            if old is None and instead_of is not None:
                raise NotFound(f"no file table for study {pointer.accession}: removed meanwhile")
            conn.execute(
                "INSERT INTO file_tables (view, accession, commit_id, object_key, digest, files, bytes, formats, layout)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (view, accession) DO UPDATE SET"
                " commit_id = excluded.commit_id, object_key = excluded.object_key, digest = excluded.digest,"
                " files = excluded.files, bytes = excluded.bytes, formats = excluded.formats, layout = excluded.layout",
                (
                    self.view,
                    pointer.accession,
                    pointer.commit,
                    pointer.object_key,
                    pointer.digest,
                    pointer.files,
                    pointer.bytes,
                    formats,
                    layout,
                ),
            )
            if old is not None and old[3] != pointer.digest:
                self._release_object(conn, _pointer(old))
        return pointer

    def _stored(self, key: str, digest: str) -> bool:
        assert self.store is not None
        found = self.store.stat(key)
        return found is not None and found.sha256 == digest

    def _upload(self, local: Path, key: str, digest: str) -> None:
        """Store the table at its content key (an object there with other bytes is replaced: it was damaged)."""
        assert self.store is not None
        found = self.store.stat(key)
        size = local.stat().st_size
        if found is not None and found.sha256 == digest and found.size == size:
            return
        if found is not None:
            log.warning("replacing the damaged file table object %s", key)
            self.store.delete(key)
        with local.open("rb") as stream:
            try:
                self.store.put(key, stream, size=size, expected_sha256=digest, content_type=CONTENT_TYPE)
            except ObjectExists:
                pass  # another node stored the same table meanwhile

    def _release_object(self, conn: Any, pointer: TablePointer) -> None:
        """Inside the write transaction that dropped ``pointer``: delete its object unless a pointer (of any view)
        still names its digest. A failure leaves an orphan object, never a missing one."""
        if not pointer.object_key or self.store is None:
            return
        if conn.execute("SELECT 1 FROM file_tables WHERE digest = ? LIMIT 1", (pointer.digest,)).fetchone():
            return
        try:
            self.store.delete(pointer.object_key)
        except CatalogError:
            log.exception("could not delete the file table object %s; it stays as an orphan", pointer.object_key)

    def remove(self, accession: str) -> None:
        """Drop the study's pointer (its object too when no other pointer names it) and the local copies."""
        self._forget(accession)
        with self.state.transaction(write=True) as conn:
            old = conn.execute(f"{_POINTER} WHERE view = ? AND accession = ?", (self.view, accession)).fetchone()
            if old is not None:
                conn.execute("DELETE FROM file_tables WHERE view = ? AND accession = ?", (self.view, accession))
                self._release_object(conn, _pointer(old))
        self._forget(accession)
        self._drop_local(accession)

    # ------------------------------------------------------------------------------------------------ reading

    def local(self, accession: str, fresh: bool = False) -> tuple[Path, TablePointer]:
        """The local copy of the study's published table (fetched if this node lacks it) and its pointer; NotFound
        if the view has no table for the study, :class:`TableUnavailable` if its bytes cannot be had. ``fresh``:
        read the pointer now."""
        for attempt in range(_ATTEMPTS):
            pointer = self.pointer(accession, fresh=fresh or attempt > 0)
            if pointer is None:
                if self.copies:
                    self._drop_local(accession)  # a stale copy (an embedded catalog's folder is its publisher's)
                raise NotFound(f"no file table for study {accession}")
            path = self.local_path(accession, pointer.digest)
            if path.exists():
                return path, pointer
            if not fresh and attempt == 0 and self.pointer_seconds > 0:
                continue  # a pointer read a moment ago, whose table was replaced since: read it again
            if not pointer.object_key or self.store is None:
                raise TableUnavailable(
                    f"the file table of {accession} is missing from {self.directory}; `bia reindex` builds it again"
                )
            try:
                self._fetch(pointer, path)
            except ObjectNotFound:
                if self.pointer(accession, fresh=True) != pointer:
                    continue  # republished or removed while we looked: look again
                raise TableUnavailable(
                    f"the file table of {accession} ({pointer.object_key}) is missing from the file "
                    "store; `bia reindex` builds it again"
                ) from None
            self._drop_local(accession, keep=pointer.digest)
            return path, pointer
        raise TableUnavailable(f"the file table of {accession} kept changing while it was fetched; try again")

    def _fetch(self, pointer: TablePointer, path: Path) -> None:
        """Download the pointer's object to ``path``: to a temporary file, checked against the digest, renamed."""
        assert self.store is not None
        with self._lock(pointer.accession):
            if path.exists():
                return  # another thread fetched it meanwhile
            self.directory.mkdir(parents=True, exist_ok=True)
            tmp = self.directory / f".{pointer.accession}.{uuid.uuid4().hex}.fetching"
            try:
                digest = hashlib.sha256()
                with tmp.open("wb") as out:
                    for chunk in self.store.open_range(pointer.object_key):
                        digest.update(chunk)
                        out.write(chunk)
                    out.flush()
                    os.fsync(out.fileno())
                if digest.hexdigest() != pointer.digest:
                    raise TableUnavailable(
                        f"the stored file table of {pointer.accession} ({pointer.object_key}) is damaged: its bytes do "
                        "not have the published SHA-256; it is not served",
                        [{"field": "sha256", "expected": pointer.digest, "actual": digest.hexdigest()}],
                    )
                os.replace(tmp, path)
            finally:
                tmp.unlink(missing_ok=True)

    def _lock(self, accession: str) -> threading.Lock:
        with self._locks_guard:
            return self._locks.setdefault(accession, threading.Lock())

    def _drop_local(self, accession: str, keep: str | None = None) -> None:
        """Remove the local copies of the study's tables but the one of digest ``keep`` (and a pre-pointer table)."""
        kept = self.local_path(accession, keep).name if keep else None
        for path in [*self.directory.glob(f"{accession}@*.sqlite"), self.directory / f"{accession}.sqlite"]:
            if path.name != kept:
                path.unlink(missing_ok=True)

    # ------------------------------------------------------------------------------------------------ upkeep

    def sweep_objects(self) -> int:
        """Delete the table objects no pointer (of any view) names: those of a publish cut off between its upload
        and its pointer. Safe beside publishes: a publisher checks that its object is there when it writes its
        pointer, under the same lock, and stores it again if not. Returns how many were deleted."""
        if not self.copies:
            return 0
        assert self.store is not None
        keys = [obj.key for obj in self.store.list(FILE_TABLES_PREFIX, checksums=False)]
        if not keys:
            return 0
        removed = 0
        with self.state.transaction(write=True) as conn:
            named = {object_key(row[0]) for row in conn.execute("SELECT DISTINCT digest FROM file_tables")}
            for key in keys:
                if key not in named and self.store.delete(key):
                    removed += 1
        return removed

    def adopt_legacy(self, is_accession) -> list[str]:
        """Give the tables of a folder made before pointers existed (``<accession>.sqlite``) a pointer, unless the
        study has one (then the old table is stale and removed); remove downloads dead processes left. Returns
        the accessions adopted."""
        adopted = []
        for path in sorted(self.directory.glob("*.sqlite")):
            accession = path.stem
            if path.name.startswith(".") or "@" in accession or not is_accession(accession):
                continue
            try:
                if self.pointer(accession) is None:
                    self.publish(accession, path, replace=False)
                    adopted.append(accession)
            except (FileNotFoundError, sqlite3.OperationalError):
                if path.exists():
                    raise
                continue  # another process adopted it meanwhile
            path.unlink(missing_ok=True)
        cutoff = time.time() - STALE_FETCH_SECONDS
        for leftover in self.directory.glob(".*.fetching"):
            try:
                if leftover.stat().st_mtime < cutoff:
                    leftover.unlink()
            except FileNotFoundError:
                pass
        return adopted


def _link(source: Path, target: Path) -> None:
    """Hard-link ``source`` at ``target`` (already there: the same digest, so the same bytes)."""
    try:
        os.link(source, target)
    except FileExistsError:
        pass


__all__ = ["SharedTables", "TablePointer", "TableUnavailable", "file_sha256", "object_key"]
