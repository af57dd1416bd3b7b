"""The catalog's registry: accessions, studies' lifecycle state, submissions, staged files and owner tokens.

One SQLite database (WAL mode) shared by every process of a site. It is the journal that makes finalize and
release crash-safe: a study row in state ``finalizing`` or ``releasing`` names work that recovery rolls
forward. Accessions come from a counter that only ever goes up, so an accession is never reused, even when a
finalize fails.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
import secrets
import sqlite3
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from catalog.errors import Conflict, NotFound, Unauthorized

SCHEMA = """
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS tokens (
    token_hash TEXT PRIMARY KEY, owner TEXT NOT NULL, created_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS submissions (
    id TEXT PRIMARY KEY, owner TEXT NOT NULL, status TEXT NOT NULL, created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL, metadata TEXT, metadata_name TEXT, release_date TEXT,
    file_lists TEXT NOT NULL DEFAULT '[]', accession TEXT, report TEXT);
CREATE TABLE IF NOT EXISTS staged_files (
    submission_id TEXT NOT NULL, path TEXT NOT NULL, size INTEGER NOT NULL, md5 TEXT NOT NULL,
    sha256 TEXT NOT NULL, PRIMARY KEY (submission_id, path));
CREATE TABLE IF NOT EXISTS studies (
    accession TEXT PRIMARY KEY, owner TEXT, state TEXT NOT NULL, release_date TEXT NOT NULL,
    submission_id TEXT, source TEXT NOT NULL, title TEXT, file_count INTEGER NOT NULL DEFAULT 0,
    total_size INTEGER NOT NULL DEFAULT 0, content_hash TEXT, created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0);
CREATE INDEX IF NOT EXISTS studies_state ON studies(state, release_date);
CREATE INDEX IF NOT EXISTS studies_owner ON studies(owner);
"""

#: Study states. ``finalizing``/``releasing``/``withdrawing`` are in-flight work recovery rolls forward.
FINALIZING, EMBARGOED, RELEASING, RELEASED, FAILED = "finalizing", "embargoed", "releasing", "released", "failed"
IN_FLIGHT = (FINALIZING, RELEASING)


def now_iso() -> str:
    """The current UTC time, ISO 8601 with seconds."""
    return dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat()


@dataclass
class StudyRow:
    """A study as the registry knows it."""

    accession: str
    owner: str | None
    state: str
    release_date: str
    submission_id: str | None
    source: str
    title: str | None
    file_count: int
    total_size: int
    content_hash: str | None
    created_at: str
    updated_at: str
    attempts: int

    @property
    def is_public(self) -> bool:
        return self.state == RELEASED


class Registry:
    """Access to the registry database; every method opens its own short connection (thread- and process-safe)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self.path, timeout=60)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.executescript(SCHEMA)  # executescript manages its own transaction
            columns = {row[1] for row in db.execute("PRAGMA table_info(staged_files)")}
            if "key" not in columns:  # registries made before uploads had keys of their own
                db.execute("ALTER TABLE staged_files ADD COLUMN key TEXT")
        finally:
            db.close()

    @contextmanager
    def _connect(self, immediate: bool = False) -> Iterator[sqlite3.Connection]:
        db = sqlite3.connect(self.path, timeout=60, isolation_level=None)
        db.row_factory = sqlite3.Row
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")
            db.execute("BEGIN IMMEDIATE" if immediate else "BEGIN")
            try:
                yield db
            except BaseException:
                db.execute("ROLLBACK")
                raise
            else:
                db.execute("COMMIT")
        finally:
            db.close()

    # ------------------------------------------------------------------ tokens

    def create_token(self, owner: str) -> str:
        """A new secret bearer token for ``owner`` (only its hash is stored)."""
        owner = owner.strip()
        if not owner:
            raise ValueError("an owner name is required")
        token = "bia_" + secrets.token_urlsafe(32)
        with self._connect() as db:
            db.execute("INSERT INTO tokens VALUES (?, ?, ?)", (_hash(token), owner, now_iso()))
        return token

    def owner_of_token(self, token: str | None) -> str:
        """The owner a token belongs to; Unauthorized if it is unknown (or revoked: every request reads the table)."""
        if token:
            with self._connect() as db:
                row = db.execute("SELECT owner FROM tokens WHERE token_hash = ?", (_hash(token),)).fetchone()
            if row:
                return row["owner"]
        raise Unauthorized("a valid bearer token is required (create one with `bia token create NAME`)")

    def tokens(self, owner: str | None = None) -> list[TokenRow]:
        """Every token (or ``owner``'s), oldest first, by its non-secret id; the tokens themselves are not kept."""
        query = "SELECT token_hash, owner, created_at FROM tokens" + (" WHERE owner = ?" if owner is not None else "")
        with self._connect() as db:
            rows = db.execute(query + " ORDER BY created_at, token_hash", (owner,) if owner is not None else ()).fetchall()
        return [TokenRow.of(row) for row in rows]

    def revoke_tokens(self, *, token_id: str | None = None, owner: str | None = None) -> list[TokenRow]:
        """Delete the token with id ``token_id``, or every token of ``owner``; the revoked rows, NotFound if none."""
        if (token_id is None) == (owner is None):
            raise ValueError("name a token id or an owner")
        if token_id is not None:
            token_id = token_id.strip().lower()
            if not re.fullmatch(f"[0-9a-f]{{{TOKEN_ID_LENGTH}}}", token_id):
                raise NotFound(f"{token_id!r} is not a token id (`bia token list` shows {TOKEN_ID_LENGTH} hex digits)")
            where, value = f"substr(token_hash, 1, {TOKEN_ID_LENGTH}) = ?", token_id
        else:
            where, value = "owner = ?", str(owner)
        with self._connect(immediate=True) as db:
            rows = db.execute(f"SELECT token_hash, owner, created_at FROM tokens WHERE {where}", (value,)).fetchall()
            db.execute(f"DELETE FROM tokens WHERE {where}", (value,))
        if not rows:
            raise NotFound(f"no token with id {token_id}" if token_id is not None else f"no token of {owner!r}")
        return [TokenRow.of(row) for row in rows]

    # ------------------------------------------------------------------ accessions and studies

    def mint_accession(self, prefix: str, db: sqlite3.Connection) -> str:
        """The next accession (inside the caller's IMMEDIATE transaction); never reused, and never one a study
        already has (a harvested S-BIAD record keeps its source's accession, which the counter may reach)."""
        row = db.execute("SELECT value FROM counters WHERE name = ?", (prefix,)).fetchone()
        value = row["value"] if row else 0
        while True:
            value += 1
            if db.execute("SELECT 1 FROM studies WHERE accession = ?", (f"{prefix}{value}",)).fetchone() is None:
                break
        db.execute("INSERT INTO counters VALUES (?, ?) ON CONFLICT(name) DO UPDATE SET value = excluded.value", (prefix, value))
        return f"{prefix}{value}"

    def begin_finalize(self, submission_id: str, owner: str, prefix: str, release_date: str, title: str | None) -> str:
        """Mint an accession and record the in-flight finalize, atomically; Conflict if already finalizing."""
        with self._connect(immediate=True) as db:
            sub = db.execute("SELECT status, accession FROM submissions WHERE id = ?", (submission_id,)).fetchone()
            if sub is None:
                raise NotFound(f"no submission {submission_id}")
            if sub["status"] != "open":
                raise Conflict(f"submission {submission_id} is {sub['status']}" + (f" as {sub['accession']}" if sub["accession"] else ""))
            accession = self.mint_accession(prefix, db)
            stamp = now_iso()
            db.execute(
                "INSERT INTO studies (accession, owner, state, release_date, submission_id, source, title, created_at, updated_at)"
                " VALUES (?, ?, ?, ?, ?, 'deposit', ?, ?, ?)",
                (accession, owner, FINALIZING, release_date, submission_id, title, stamp, stamp),
            )
            db.execute(
                "UPDATE submissions SET status = 'finalizing', accession = ?, updated_at = ? WHERE id = ?",
                (accession, stamp, submission_id),
            )
        return accession

    def begin_put(self, accession: str, owner: str | None, release_date: str, source: str, title: str | None) -> StudyRow | None:
        """Record an in-flight load of a harvested (or updated) study; returns the previous row, if any."""
        stamp = now_iso()
        with self._connect(immediate=True) as db:
            previous = db.execute("SELECT * FROM studies WHERE accession = ?", (accession,)).fetchone()
            if previous is not None and previous["state"] in IN_FLIGHT:
                raise Conflict(f"{accession} is being {previous['state']} by another process")
            if previous is not None and previous["source"] == "deposit" and source != "deposit":
                raise Conflict(f"{accession} was deposited here; a {source} record with that accession cannot replace it")
            db.execute(
                "INSERT INTO studies (accession, owner, state, release_date, source, title, created_at, updated_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(accession) DO UPDATE SET owner = excluded.owner,"
                " state = excluded.state, release_date = excluded.release_date, source = excluded.source,"
                " title = excluded.title, updated_at = excluded.updated_at, attempts = 0",
                (accession, owner, FINALIZING, release_date, source, title, stamp, stamp),
            )
        return StudyRow(**dict(previous)) if previous is not None else None

    def set_state(self, accession: str, state: str, **fields: Any) -> None:
        """Move a study to ``state`` and update other columns."""
        columns = {"state": state, "updated_at": now_iso(), **fields}
        assignments = ", ".join(f"{k} = ?" for k in columns)
        with self._connect() as db:
            db.execute(f"UPDATE studies SET {assignments} WHERE accession = ?", (*columns.values(), accession))

    def bump_attempts(self, accession: str) -> int:
        """Count one more recovery attempt; returns the new count."""
        with self._connect() as db:
            db.execute("UPDATE studies SET attempts = attempts + 1 WHERE accession = ?", (accession,))
            return db.execute("SELECT attempts FROM studies WHERE accession = ?", (accession,)).fetchone()["attempts"]

    def study(self, accession: str) -> StudyRow | None:
        with self._connect() as db:
            row = db.execute("SELECT * FROM studies WHERE accession = ?", (accession,)).fetchone()
        return StudyRow(**dict(row)) if row else None

    def studies(self, *, states: tuple[str, ...] | None = None, owner: str | None = None) -> list[StudyRow]:
        query, args = "SELECT * FROM studies WHERE 1=1", []
        if states:
            query += f" AND state IN ({','.join('?' * len(states))})"
            args.extend(states)
        if owner is not None:
            query += " AND owner = ?"
            args.append(owner)
        with self._connect() as db:
            return [StudyRow(**dict(r)) for r in db.execute(query + " ORDER BY created_at, accession", args)]

    def due_for_release(self, today: str) -> list[StudyRow]:
        """Embargoed studies whose release date has come."""
        with self._connect() as db:
            rows = db.execute("SELECT * FROM studies WHERE state = ? AND release_date <= ?", (EMBARGOED, today)).fetchall()
        return [StudyRow(**dict(r)) for r in rows]

    def delete_study(self, accession: str) -> None:
        with self._connect() as db:
            db.execute("DELETE FROM studies WHERE accession = ?", (accession,))

    # ------------------------------------------------------------------ submissions

    def create_submission(self, owner: str) -> str:
        sub_id = "sub-" + secrets.token_hex(8)
        stamp = now_iso()
        with self._connect() as db:
            db.execute(
                "INSERT INTO submissions (id, owner, status, created_at, updated_at) VALUES (?, ?, 'open', ?, ?)",
                (sub_id, owner, stamp, stamp),
            )
        return sub_id

    def submission(self, sub_id: str, owner: str | None = None) -> dict[str, Any]:
        """A submission as a dict; NotFound for an unknown id or someone else's submission."""
        with self._connect() as db:
            row = db.execute("SELECT * FROM submissions WHERE id = ?", (sub_id,)).fetchone()
        if row is None or (owner is not None and row["owner"] != owner):
            raise NotFound(f"no submission {sub_id}")
        sub = dict(row)
        sub["file_lists"] = json.loads(sub["file_lists"] or "[]")
        sub["report"] = json.loads(sub["report"]) if sub["report"] else None
        return sub

    def submissions(self, owner: str) -> list[dict[str, Any]]:
        with self._connect() as db:
            ids = [r["id"] for r in db.execute("SELECT id FROM submissions WHERE owner = ? ORDER BY created_at", (owner,))]
        return [self.submission(i) for i in ids]

    def update_submission(self, sub_id: str, *, require_open: bool = True, **fields: Any) -> None:
        """Change fields of an open submission (Conflict once it is finalizing or finalized)."""
        for key in ("file_lists", "report"):
            if key in fields and not isinstance(fields[key], str) and fields[key] is not None:
                fields[key] = json.dumps(fields[key])
        fields["updated_at"] = now_iso()
        assignments = ", ".join(f"{k} = ?" for k in fields)
        with self._connect(immediate=True) as db:
            row = db.execute("SELECT status FROM submissions WHERE id = ?", (sub_id,)).fetchone()
            if row is None:
                raise NotFound(f"no submission {sub_id}")
            if require_open and row["status"] != "open":
                raise Conflict(f"submission {sub_id} is {row['status']} and can no longer change")
            db.execute(f"UPDATE submissions SET {assignments} WHERE id = ?", (*fields.values(), sub_id))

    def stage_file(self, sub_id: str, path: str, size: int, md5: str, sha256: str, key: str) -> str | None:
        """Record an uploaded file under ``path`` if the submission is still open (:class:`Conflict` else, e.g.
        when a finalize began while it was uploading); returns the row of the copy it replaces, if any."""
        with self._connect(immediate=True) as db:
            sub = db.execute("SELECT status FROM submissions WHERE id = ?", (sub_id,)).fetchone()
            if sub is None:
                raise NotFound(f"no submission {sub_id}")
            if sub["status"] != "open":
                raise Conflict(f"submission {sub_id} is {sub['status']}; the upload of {path} was not kept")
            old = db.execute("SELECT * FROM staged_files WHERE submission_id = ? AND path = ?", (sub_id, path)).fetchone()
            db.execute(
                "INSERT INTO staged_files (submission_id, path, size, md5, sha256, key) VALUES (?, ?, ?, ?, ?, ?)"
                " ON CONFLICT(submission_id, path) DO UPDATE SET"
                " size = excluded.size, md5 = excluded.md5, sha256 = excluded.sha256, key = excluded.key",
                (sub_id, path, size, md5, sha256, key),
            )
        return dict(old) if old is not None else None

    def staged_files(self, sub_id: str) -> Iterator[dict[str, Any]]:
        """Staged files of a submission, by path (streamed from the database)."""
        db = sqlite3.connect(self.path, timeout=60)
        db.row_factory = sqlite3.Row
        try:
            for row in db.execute("SELECT * FROM staged_files WHERE submission_id = ? ORDER BY path", (sub_id,)):
                yield dict(row)
        finally:
            db.close()

    def staged_count(self, sub_id: str) -> tuple[int, int]:
        with self._connect() as db:
            row = db.execute(
                "SELECT count(*) AS n, coalesce(sum(size), 0) AS bytes FROM staged_files WHERE submission_id = ?", (sub_id,)
            ).fetchone()
        return row["n"], row["bytes"]

    def finish_submission(self, sub_id: str, status: str) -> None:
        with self._connect() as db:
            db.execute("UPDATE submissions SET status = ?, updated_at = ? WHERE id = ?", (status, now_iso(), sub_id))
            if status in ("finalized", "discarded"):
                db.execute("DELETE FROM staged_files WHERE submission_id = ?", (sub_id,))

    def counts(self) -> dict[str, int]:
        with self._connect() as db:
            return {r["state"]: r["n"] for r in db.execute("SELECT state, count(*) AS n FROM studies GROUP BY state")}


#: hex digits of a token's hash that name it in `bia token list` (not a secret: the hash of a random token)
TOKEN_ID_LENGTH = 12


@dataclass(frozen=True)
class TokenRow:
    """A token as the registry knows it: its short id, whose it is and when it was made."""

    id: str
    owner: str
    created_at: str

    @classmethod
    def of(cls, row: sqlite3.Row) -> TokenRow:
        return cls(row["token_hash"][:TOKEN_ID_LENGTH], row["owner"], row["created_at"])


def token_id(token: str) -> str:
    """The short non-secret id that names ``token`` in listings and revocations."""
    return _hash(token)[:TOKEN_ID_LENGTH]


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()
