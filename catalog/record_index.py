"""Study records rendered when their study changes, so a request for a study's record is one lookup.

Building a record reads every triple of a study's metadata from the graph store (about 8 µs a triple from a
read-only RocksDB snapshot) and nests it into JSON-LD; that is most of the cost of answering a crawler that
visits each study once. The archive renders a study's record document (compact JSON-LD) whenever it commits,
releases or re-links the study, and keeps it in the state database (:mod:`catalog.state_db`), so that every API
node serves the rendering one of them made: one row per view and study, zlib-compressed. Each row carries the
*fingerprint* of what it was rendered under (base URL, catalog name, the rendering code); a row with another
fingerprint is stale and is not served (``bia reindex`` renders it again). Each row also keeps when its content
last changed (a rendering that comes out the same keeps the old time): the ``Last-Modified`` of the record and the
``lastmod`` of its sitemap entry.
"""

from __future__ import annotations

import hashlib
import time
import zlib
from dataclasses import dataclass

from catalog.state_db import StateDB


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

    def __init__(self, db: StateDB, view: str) -> None:
        self.db = db
        self.view = view

    def close(self) -> None:
        pass

    def put(self, iri: str, body: bytes, fingerprint: str) -> None:
        """Store a rendering (its change time moves only when its content differs from the stored one)."""
        with self.db.transaction(write=True) as db:
            db.execute(
                "INSERT INTO records (view, iri, fingerprint, digest, body, changed) VALUES (?, ?, ?, ?, ?, ?)"
                " ON CONFLICT(view, iri) DO UPDATE SET fingerprint = excluded.fingerprint, body = excluded.body,"
                " changed = CASE WHEN records.digest = excluded.digest THEN records.changed ELSE excluded.changed END,"
                " digest = excluded.digest",
                (self.view, iri, fingerprint, body_digest(body), zlib.compress(body, 6), time.time()),
            )

    def get(self, iri: str, fingerprint: str) -> StoredRecord | None:
        """The stored record of ``iri`` if it was rendered under ``fingerprint``; None when absent or stale."""
        with self.db.transaction() as db:
            row = db.execute(
                "SELECT fingerprint, digest, body, changed FROM records WHERE view = ? AND iri = ?", (self.view, iri)
            ).fetchone()
        if row is None or row[0] != fingerprint:
            return None
        return StoredRecord(iri, row[1], zlib.decompress(bytes(row[2])), row[3])

    def changed(self) -> dict[str, float]:
        """When each stored record last changed (seconds since the epoch), by IRI."""
        return {row[0]: row[1] for row in self.db.stream("SELECT iri, changed FROM records WHERE view = ?", (self.view,))}

    def delete(self, iri: str) -> None:
        with self.db.transaction(write=True) as db:
            db.execute("DELETE FROM records WHERE view = ? AND iri = ?", (self.view, iri))

    def stale(self, fingerprint: str) -> list[str]:
        """IRIs of the records rendered under another fingerprint."""
        with self.db.transaction() as db:
            return [
                r[0]
                for r in db.execute(
                    "SELECT iri FROM records WHERE view = ? AND fingerprint != ? ORDER BY iri", (self.view, fingerprint)
                )
            ]

    def iris(self) -> list[str]:
        with self.db.transaction() as db:
            return [r[0] for r in db.execute("SELECT iri FROM records WHERE view = ? ORDER BY iri", (self.view,))]
