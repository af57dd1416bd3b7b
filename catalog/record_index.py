"""Study records rendered when their study changes, so a request for a study's record is one lookup.

Building a record reads every triple of a study's metadata from the graph store (about 8 µs a triple from a
read-only RocksDB snapshot) and nests it into JSON-LD; that is most of the cost of answering a crawler that
visits each study once. The archive renders a study's record document (compact JSON-LD) whenever it commits,
releases or re-links the study, and keeps it here beside the search index: one SQLite file per view, one row per
study, zlib-compressed. Each row carries the *fingerprint* of what it was rendered under (base URL, catalog name,
the rendering code); a row with another fingerprint is stale and is not served (``bia reindex`` renders it again).
Each row also keeps when its content last changed (a rendering that comes out the same keeps the old time): the
``Last-Modified`` of the record and the ``lastmod`` of its sitemap entry.
"""
from __future__ import annotations

import hashlib
import sqlite3
import threading
import time
import zlib
from dataclasses import dataclass
from pathlib import Path

_SCHEMA = """
CREATE TABLE IF NOT EXISTS records (
    iri TEXT PRIMARY KEY,
    fingerprint TEXT NOT NULL,
    digest TEXT NOT NULL,
    body BLOB NOT NULL,
    changed REAL NOT NULL
);
"""


@dataclass(frozen=True)
class StoredRecord:
    """A rendered study record: its compact JSON-LD, a digest of it (for ETags) and when it last changed."""

    iri: str
    digest: str
    body: bytes
    changed: float


def body_digest(body: bytes) -> str:
    return hashlib.sha1(body).hexdigest()[:20]


class RecordIndex:
    """The rendered records of one view's studies, keyed by study IRI."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None, timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def put(self, iri: str, body: bytes, fingerprint: str) -> None:
        """Store a rendering (its change time moves only when its content differs from the stored one)."""
        with self._lock:
            self._db.execute(
                "INSERT INTO records (iri, fingerprint, digest, body, changed) VALUES (?, ?, ?, ?, ?)"
                " ON CONFLICT(iri) DO UPDATE SET fingerprint = excluded.fingerprint, body = excluded.body,"
                " changed = CASE WHEN records.digest = excluded.digest THEN records.changed ELSE excluded.changed END,"
                " digest = excluded.digest",
                (iri, fingerprint, body_digest(body), zlib.compress(body, 6), time.time()),
            )

    def get(self, iri: str, fingerprint: str) -> StoredRecord | None:
        """The stored record of ``iri`` if it was rendered under ``fingerprint``; None when absent or stale."""
        with self._lock:
            row = self._db.execute("SELECT fingerprint, digest, body, changed FROM records WHERE iri = ?", (iri,)).fetchone()
        if row is None or row[0] != fingerprint:
            return None
        return StoredRecord(iri, row[1], zlib.decompress(row[2]), row[3])

    def changed(self) -> dict[str, float]:
        """When each stored record last changed (seconds since the epoch), by IRI."""
        with self._lock:
            return dict(self._db.execute("SELECT iri, changed FROM records"))

    def delete(self, iri: str) -> None:
        with self._lock:
            self._db.execute("DELETE FROM records WHERE iri = ?", (iri,))

    def stale(self, fingerprint: str) -> list[str]:
        """IRIs of the records rendered under another fingerprint."""
        with self._lock:
            return [r[0] for r in self._db.execute("SELECT iri FROM records WHERE fingerprint != ? ORDER BY iri", (fingerprint,))]

    def iris(self) -> list[str]:
        with self._lock:
            return [r[0] for r in self._db.execute("SELECT iri FROM records ORDER BY iri")]
