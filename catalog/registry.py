"""The catalog's registry: accessions, studies' lifecycle state, submissions, staged files and owner tokens.

One SQLite database (WAL mode) shared by every process of a site. It is the journal that makes finalize and
release crash-safe: a study row in state ``finalizing`` or ``releasing`` names work in flight, held under a lease
(:mod:`catalog.leases`) by the process doing it; recovery takes over only a lease that expired or whose holder
died. Every change of a study's state is a compare-and-set on its holder (or on its state), so two processes
never both run one finalize, release or recovery. Accessions come from a counter that only ever goes up, so an
accession is never reused, even when a finalize fails.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
import secrets
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator

from catalog import leases
from catalog.errors import Conflict, NotFound, Unauthorized, ValidationFailed
from catalog.file_paths import CLASH_KEY_VERSION, ancestors, clash_key
from catalog.state_db import SqliteStateDB, StateDB
from catalog.state_schema import ensure_schema

#: lifecycle columns of a study row restored when an uncommitted replacement is abandoned
_RESTORED = (
    "owner",
    "state",
    "release_date",
    "submission_id",
    "source",
    "title",
    "file_count",
    "total_size",
    "content_hash",
    "created_at",
    "updated_at",
)

#: Study states. ``finalizing``/``releasing`` are in-flight work recovery rolls forward.
FINALIZING, EMBARGOED, RELEASING, RELEASED, FAILED = "finalizing", "embargoed", "releasing", "released", "failed"
IN_FLIGHT = (FINALIZING, RELEASING)
#: seconds a lease lasts unless its holder renews it
DEFAULT_LEASE_SECONDS = 60.0


class InFlight(Conflict):
    """The study is being changed by someone else (``expired``: that work was cut off and awaits recovery)."""

    code = "in_flight"

    def __init__(self, message: str, expired: bool = False) -> None:
        super().__init__(message)
        self.expired = expired


class LeaseLost(Conflict):
    """This process no longer holds the work it tried to complete (it was taken over after its lease expired)."""

    code = "lease_lost"


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
    lease_owner: str | None = None
    lease_expires: float | None = None
    commit_id: str | None = None
    previous: str | None = None
    committing: str | None = None

    @property
    def is_public(self) -> bool:
        return self.state == RELEASED


class Registry:
    """Access to the registry database; every method opens its own short connection (thread- and process-safe)."""

    def __init__(self, source: str | Path | StateDB, lease_seconds: float = DEFAULT_LEASE_SECONDS) -> None:
        #: the state database (a path: the SQLite file of an embedded catalog)
        self.db = source if isinstance(source, StateDB) else SqliteStateDB(Path(source))
        self.lease_seconds = lease_seconds
        ensure_schema(self.db)
        self._refresh_clash_keys()
        #: this handle's name as a lease holder
        self.holder = leases.new_holder()
        self._heartbeat = leases.Heartbeat(self._renew, lease_seconds)

    def close(self) -> None:
        """Stop renewing leases; work this handle still holds becomes free for recovery."""
        self._heartbeat.stop()
        leases.forget(self.holder)

    def _connect(self, immediate: bool = False) -> Any:
        """One transaction (``immediate``: a write, serialized with every other writer of the site)."""
        return self.db.transaction(write=immediate)

    def ping(self) -> None:
        """Raise unless the state database answers."""
        self.db.ping()

    def _refresh_clash_keys(self) -> None:
        """Recompute staged paths' clash keys when the rule changed since they were computed."""
        with self._connect(immediate=True) as db:
            row = db.execute("SELECT value FROM meta WHERE name = 'clash_key_version'").fetchone()
            version = int(row[0]) if row else _legacy_clash_version(self.db, db)
            if version >= CLASH_KEY_VERSION:
                return
            rows = db.execute("SELECT submission_id, path FROM staged_files").fetchall()
            db.executemany(
                "UPDATE staged_files SET fold_key = ? WHERE submission_id = ? AND path = ?",
                [(clash_key(path), sub_id, path) for sub_id, path in rows],
            )
            db.execute(
                "INSERT INTO meta VALUES ('clash_key_version', ?) ON CONFLICT(name) DO UPDATE SET value = excluded.value",
                (str(CLASH_KEY_VERSION),),
            )

    # ------------------------------------------------------------------ tokens

    def create_token(self, owner: str) -> str:
        """A new secret bearer token for ``owner`` (only its hash is stored)."""
        owner = owner.strip()
        if not owner:
            raise ValueError("an owner name is required")
        token = "bia_" + secrets.token_urlsafe(32)
        with self._connect(immediate=True) as db:
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

    def mint_accession(self, prefix: str, db: Any) -> str:
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

    def begin_finalize(
        self, submission_id: str, owner: str, prefix: str, release_date: str, title: str | None, revision: int | None = None
    ) -> str:
        """Mint an accession and record the in-flight finalize under this holder's lease, atomically; Conflict if
        the submission is not open, or if its content changed since ``revision`` (the one that was validated)."""
        with self._connect(immediate=True) as db:
            sub = db.execute("SELECT status, accession, revision FROM submissions WHERE id = ?", (submission_id,)).fetchone()
            if sub is None:
                raise NotFound(f"no submission {submission_id}")
            if sub["status"] != "open":
                raise Conflict(
                    f"submission {submission_id} is {sub['status']}" + (f" as {sub['accession']}" if sub["accession"] else "")
                )
            if revision is not None and sub["revision"] != revision:
                raise Conflict(
                    f"submission {submission_id} changed while it was being validated (an upload, a file list "
                    "or metadata arrived); nothing was finalized: validate and finalize it again"
                )
            accession = self.mint_accession(prefix, db)
            stamp = now_iso()
            db.execute(
                "INSERT INTO studies (accession, owner, state, release_date, submission_id, source, title, created_at,"
                " updated_at, lease_owner, lease_expires, commit_id, committing) VALUES (?, ?, ?, ?, ?, 'deposit', ?, ?, ?,"
                " ?, ?, ?, '')",
                (
                    accession,
                    owner,
                    FINALIZING,
                    release_date,
                    submission_id,
                    title,
                    stamp,
                    stamp,
                    self.holder,
                    self._expiry(),
                    _new_commit(),
                ),
            )
            db.execute(
                "UPDATE submissions SET status = 'finalizing', accession = ?, updated_at = ? WHERE id = ?",
                (accession, stamp, submission_id),
            )
        return accession

    def begin_put(self, accession: str, owner: str | None, release_date: str, source: str, title: str | None) -> StudyRow | None:
        """Record an in-flight load of a harvested (or updated) study under this holder's lease; returns the row as
        it was before (kept in the row, and put back by :meth:`abandon` if the load is never committed)."""
        stamp = now_iso()
        with self._connect(immediate=True) as db:
            previous = db.execute("SELECT * FROM studies WHERE accession = ?", (accession,)).fetchone()
            if previous is not None and previous["state"] in IN_FLIGHT:
                if leases.expired(previous["lease_owner"], previous["lease_expires"]):
                    raise InFlight(f"an interrupted {previous['state']} of {accession} awaits recovery", expired=True)
                raise InFlight(f"{accession} is being {previous['state']} by another process")
            if previous is not None and previous["source"] == "deposit" and source != "deposit":
                raise Conflict(f"{accession} was deposited here; a {source} record with that accession cannot replace it")
            kept = json.dumps({k: previous[k] for k in _RESTORED}) if previous is not None else None
            db.execute(
                "INSERT INTO studies (accession, owner, state, release_date, source, title, created_at, updated_at,"
                " lease_owner, lease_expires, commit_id, previous, committing) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, '')"
                " ON CONFLICT(accession) DO UPDATE SET owner = excluded.owner, state = excluded.state,"
                " release_date = excluded.release_date, source = excluded.source, title = excluded.title,"
                " updated_at = excluded.updated_at, attempts = 0, lease_owner = excluded.lease_owner,"
                " lease_expires = excluded.lease_expires, commit_id = excluded.commit_id, previous = excluded.previous,"
                " committing = ''",
                (
                    accession,
                    owner,
                    FINALIZING,
                    release_date,
                    source,
                    title,
                    stamp,
                    stamp,
                    self.holder,
                    self._expiry(),
                    _new_commit(),
                    kept,
                ),
            )
        return StudyRow(**dict(previous)) if previous is not None else None

    def confirm_held(self, accession: str, committing: str | None = None) -> None:
        """At a commit point: renew this holder's lease on the study, or :class:`LeaseLost` if another process took the
        work over meanwhile (a stalled process, a clock running ahead), so that it never commits over that work.
        ``committing``: record, in the same step, that the commit goes ahead into that view (recovery completes it)."""
        if committing is None:
            self._held_update(accession, "lease_expires = ?", (self._expiry(),))
        else:
            self._held_update(accession, "lease_expires = ?, committing = ?", (self._expiry(), committing))

    def new_commit(self, accession: str) -> str:
        """A fresh commit id for in-flight work this holder took over (its earlier commit never happened)."""
        commit = _new_commit()
        self._held_update(accession, "commit_id = ?, committing = ''", (commit,))
        return commit

    def finish(self, accession: str, state: str, **fields: Any) -> None:
        """Complete held in-flight work: move the study to ``state`` and update other columns, if this holder still
        holds it (:class:`LeaseLost` else). A deposit's submission is finalized in the same transaction."""
        columns = {
            "state": state,
            "updated_at": now_iso(),
            "attempts": 0,
            "lease_owner": None,
            "lease_expires": None,
            "previous": None,
            **fields,
        }
        with self._connect(immediate=True) as db:
            done = db.execute(
                f"UPDATE studies SET {', '.join(f'{k} = ?' for k in columns)} WHERE accession = ? AND lease_owner = ?",
                (*columns.values(), accession, self.holder),
            )
            if done.rowcount != 1:
                raise LeaseLost(f"{accession} is no longer held by this process (another took its work over)")
            _count_change(db)
            if state in (EMBARGOED, RELEASED):
                finalized = db.execute(
                    "UPDATE submissions SET status = 'finalized', updated_at = ? WHERE accession = ?"
                    " AND status = 'finalizing' RETURNING id",
                    (now_iso(), accession),
                ).fetchall()
                for (sub_id,) in finalized:
                    db.execute("DELETE FROM staged_files WHERE submission_id = ?", (sub_id,))

    def abandon(self, row: StudyRow) -> None:
        """Held in-flight work that was never committed: put the study's row back as it was before (or remove it)."""
        with self._connect(immediate=True) as db:
            if row.previous is None:
                done = db.execute("DELETE FROM studies WHERE accession = ? AND lease_owner = ?", (row.accession, self.holder))
            else:
                before = json.loads(row.previous)
                assignments = ", ".join(f"{k} = ?" for k in before)
                done = db.execute(
                    f"UPDATE studies SET {assignments}, attempts = 0, lease_owner = NULL, lease_expires = NULL,"
                    " previous = NULL WHERE accession = ? AND lease_owner = ?",
                    (*before.values(), row.accession, self.holder),
                )
            if done.rowcount != 1:
                raise LeaseLost(f"{row.accession} is no longer held by this process")

    def fail_finalize(self, accession: str, submission_id: str, report: dict[str, Any]) -> None:
        """A finalize that cannot complete: its accession is burned (state ``failed``, never shown) and the
        submission is open again, with ``report`` saying why, to be fixed and finalized again or discarded."""
        with self._connect(immediate=True) as db:
            done = db.execute(
                "UPDATE studies SET state = ?, updated_at = ?, lease_owner = NULL, lease_expires = NULL"
                " WHERE accession = ? AND lease_owner = ?",
                (FAILED, now_iso(), accession, self.holder),
            )
            if done.rowcount != 1:
                raise LeaseLost(f"{accession} is no longer held by this process")
            db.execute(
                "UPDATE submissions SET status = 'open', accession = NULL, report = ?, updated_at = ? WHERE id = ?",
                (json.dumps(report), now_iso(), submission_id),
            )

    def let_go(self, accession: str, count_attempt: bool = True) -> None:
        """Stop holding in-flight work without completing it (it stays in flight and anyone may take it over now):
        after a failure, counted as an attempt unless it was an outage."""
        uncount = "" if count_attempt else ", attempts = GREATEST(attempts - 1, 0)"
        self._held_update(accession, "lease_owner = NULL, lease_expires = NULL" + uncount, ())

    def claim(self, accession: str, states: tuple[str, ...] = IN_FLIGHT) -> StudyRow | None:
        """Take over the in-flight work on a study if its lease expired or its holder died (compare-and-set, one
        attempt counted); None if it is held by someone alive or not in ``states``."""
        row = self.study(accession)
        if row is None or row.state not in states or not leases.expired(row.lease_owner, row.lease_expires):
            return None
        with self._connect(immediate=True) as db:
            done = db.execute(
                "UPDATE studies SET lease_owner = ?, lease_expires = ?, attempts = attempts + 1 WHERE accession = ?"
                " AND state = ? AND lease_owner IS NOT DISTINCT FROM ? AND lease_expires IS NOT DISTINCT FROM ?",
                (self.holder, self._expiry(), accession, row.state, row.lease_owner, row.lease_expires),
            )
        return self.study(accession) if done.rowcount == 1 else None

    def claim_expired(self) -> Iterator[StudyRow]:
        """Take over, one at a time as the caller asks for the next, every piece of in-flight work whose lease expired
        or whose holder died (claiming them all at once would let the leases of those still waiting run out while
        the first is worked on, and another process take them over too)."""
        for row in self.studies(states=IN_FLIGHT):
            if leases.expired(row.lease_owner, row.lease_expires):
                taken = self.claim(row.accession)
                if taken is not None:
                    yield taken

    def claim_release(self, accession: str) -> bool:
        """Start releasing an embargoed study (compare-and-set on its state): False if another process did."""
        with self._connect(immediate=True) as db:
            done = db.execute(
                "UPDATE studies SET state = ?, updated_at = ?, lease_owner = ?, lease_expires = ?, attempts = 0"
                " WHERE accession = ? AND state = ?",
                (RELEASING, now_iso(), self.holder, self._expiry(), accession, EMBARGOED),
            )
        return done.rowcount == 1

    @contextmanager
    def holding(self, accession: str) -> Iterator[None]:
        """Renew this holder's lease on a study for as long as the block runs."""
        key = "study:" + accession
        self._heartbeat.hold(key)
        try:
            yield
        finally:
            self._heartbeat.drop(key)

    def try_lease(self, name: str) -> bool:
        """Hold (or go on holding) the named lease, e.g. the one for background duties; False if someone alive
        holds it. The heartbeat renews it until :meth:`drop_lease`."""
        now = time.time()
        with self._connect(immediate=True) as db:
            row = db.execute("SELECT holder, expires FROM leases WHERE name = ?", (name,)).fetchone()
            if row is not None and row["holder"] != self.holder and not leases.expired(row["holder"], row["expires"], now):
                return False
            db.execute(
                "INSERT INTO leases VALUES (?, ?, ?) ON CONFLICT(name) DO UPDATE SET holder = excluded.holder,"
                " expires = excluded.expires",
                (name, self.holder, now + self.lease_seconds),
            )
        if row is None or row["holder"] != self.holder:
            self._heartbeat.hold("lease:" + name)
        return True

    def drop_lease(self, name: str) -> None:
        with self._connect(immediate=True) as db:
            db.execute("DELETE FROM leases WHERE name = ? AND holder = ?", (name, self.holder))
        self._heartbeat.drop("lease:" + name)

    def _renew(self, keys: Any) -> None:
        expires = self._expiry()
        with self._connect(immediate=True) as db:
            for key in keys:
                kind, _, name = key.partition(":")
                if kind == "study":
                    db.execute(
                        "UPDATE studies SET lease_expires = ? WHERE accession = ? AND lease_owner = ?",
                        (expires, name, self.holder),
                    )
                else:
                    db.execute("UPDATE leases SET expires = ? WHERE name = ? AND holder = ?", (expires, name, self.holder))

    def _held_update(self, accession: str, assignments: str, values: tuple[Any, ...]) -> None:
        with self._connect(immediate=True) as db:
            done = db.execute(
                f"UPDATE studies SET {assignments} WHERE accession = ? AND lease_owner = ?", (*values, accession, self.holder)
            )
        if done.rowcount != 1:
            raise LeaseLost(f"{accession} is no longer held by this process (another took its work over)")

    def _expiry(self) -> float:
        return time.time() + self.lease_seconds

    def study(self, accession: str) -> StudyRow | None:
        with self._connect() as db:
            row = db.execute("SELECT * FROM studies WHERE accession = ?", (accession,)).fetchone()
        return StudyRow(**dict(row)) if row else None

    def studies(self, *, states: tuple[str, ...] | None = None, owner: str | None = None) -> list[StudyRow]:
        query = "SELECT * FROM studies WHERE 1=1"
        args: list[str] = []
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
        with self._connect(immediate=True) as db:
            db.execute("DELETE FROM studies WHERE accession = ?", (accession,))

    # ------------------------------------------------------------------ submissions

    def create_submission(self, owner: str) -> str:
        sub_id = "sub-" + secrets.token_hex(8)
        stamp = now_iso()
        with self._connect(immediate=True) as db:
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
        """Change fields of an open submission (Conflict once it is finalizing or finalized); a change of anything
        but its report is a new revision."""
        for key in ("file_lists", "report"):
            if key in fields and not isinstance(fields[key], str) and fields[key] is not None:
                fields[key] = json.dumps(fields[key])
        content_changed = any(key != "report" for key in fields)
        fields["updated_at"] = now_iso()
        assignments = ", ".join(f"{k} = ?" for k in fields) + (", revision = revision + 1" if content_changed else "")
        with self._connect(immediate=True) as db:
            row = db.execute("SELECT status FROM submissions WHERE id = ?", (sub_id,)).fetchone()
            if row is None:
                raise NotFound(f"no submission {sub_id}")
            if require_open and row["status"] != "open":
                raise Conflict(f"submission {sub_id} is {row['status']} and can no longer change")
            db.execute(f"UPDATE submissions SET {assignments} WHERE id = ?", (*fields.values(), sub_id))

    def stage_file(self, sub_id: str, path: str, size: int, md5: str, sha256: str, key: str) -> dict[str, Any] | None:
        """Record an uploaded file under ``path`` if the submission is still open (:class:`Conflict` else, e.g.
        when a finalize began while it was uploading); returns the row of the copy it replaces, if any."""
        with self._connect(immediate=True) as db:
            sub = db.execute("SELECT status FROM submissions WHERE id = ?", (sub_id,)).fetchone()
            if sub is None:
                raise NotFound(f"no submission {sub_id}")
            if sub["status"] != "open":
                raise Conflict(f"submission {sub_id} is {sub['status']}; the upload of {path} was not kept")
            old = db.execute("SELECT * FROM staged_files WHERE submission_id = ? AND path = ?", (sub_id, path)).fetchone()
            fold = clash_key(path)
            if old is None:
                _refuse_clash(db, sub_id, path, fold)
            db.execute(
                "INSERT INTO staged_files (submission_id, path, size, md5, sha256, key, fold_key) VALUES (?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT(submission_id, path) DO UPDATE SET"
                " size = excluded.size, md5 = excluded.md5, sha256 = excluded.sha256, key = excluded.key",
                (sub_id, path, size, md5, sha256, key, fold),
            )
            db.execute(
                "UPDATE submissions SET updated_at = ?, revision = revision + 1 WHERE id = ?", (now_iso(), sub_id)
            )  # a new revision, in use: not abandoned
        return dict(old) if old is not None else None

    def staged_files(self, sub_id: str) -> Iterator[dict[str, Any]]:
        """Staged files of a submission, by path (streamed from the database)."""
        for row in self.db.stream("SELECT * FROM staged_files WHERE submission_id = ? ORDER BY path", (sub_id,)):
            yield dict(row)

    def staged_count(self, sub_id: str) -> tuple[int, int]:
        with self._connect() as db:
            row = db.execute(
                "SELECT count(*) AS n, coalesce(sum(size), 0) AS bytes FROM staged_files WHERE submission_id = ?", (sub_id,)
            ).fetchone()
        return row["n"], row["bytes"]

    def discard_submission(self, sub_id: str) -> None:
        """Close an open submission for good (compare-and-set: :class:`Conflict` if a finalize began meanwhile);
        its staged rows go. Its bytes are removed afterwards by the caller."""
        with self._connect(immediate=True) as db:
            done = db.execute(
                "UPDATE submissions SET status = 'discarded', updated_at = ? WHERE id = ? AND status = 'open'",
                (now_iso(), sub_id),
            )
            if done.rowcount != 1:
                row = db.execute("SELECT status FROM submissions WHERE id = ?", (sub_id,)).fetchone()
                raise Conflict(
                    f"submission {sub_id} is {row['status'] if row else 'gone'}; only an open submission can be discarded"
                )
            db.execute("DELETE FROM staged_files WHERE submission_id = ?", (sub_id,))

    def submissions_to_clean(self, open_before: str) -> list[dict[str, Any]]:
        """Submissions whose bytes should go: open ones unchanged since ``open_before`` (ISO time, abandoned) and
        ``failed`` ones (from before finalize reopened failures). Bytes a crash left under closed submissions are
        found by :meth:`closed_submissions`."""
        with self._connect() as db:
            rows = db.execute(
                "SELECT id, owner, status, updated_at FROM submissions WHERE (status = 'open' AND updated_at < ?)"
                " OR status = 'failed' ORDER BY updated_at",
                (open_before,),
            ).fetchall()
        return [dict(r) for r in rows]

    def closed_submissions(self, ids: Iterable[str]) -> set[str]:
        """Those of ``ids`` that name a finalized, discarded or expired submission: nothing staged for them is
        needed any more."""
        closed: set[str] = set()
        wanted = list(ids)
        with self._connect() as db:
            for start in range(0, len(wanted), 500):
                chunk = wanted[start : start + 500]
                closed.update(
                    r["id"]
                    for r in db.execute(
                        "SELECT id FROM submissions WHERE status IN ('finalized', 'discarded', 'expired')"
                        f" AND id IN ({','.join('?' * len(chunk))})",
                        chunk,
                    )
                )
        return closed

    def expire_submission(self, sub_id: str, seen_at: str) -> bool:
        """Mark an abandoned submission ``expired`` if it has not changed since ``seen_at`` (compare-and-set, so an
        upload arriving meanwhile keeps it open); its staged rows go. True if it was expired."""
        with self._connect(immediate=True) as db:
            done = db.execute(
                "UPDATE submissions SET status = 'expired', updated_at = ? WHERE id = ? AND updated_at = ?"
                " AND status IN ('open', 'failed')",
                (now_iso(), sub_id, seen_at),
            )
            if done.rowcount == 1:
                db.execute("DELETE FROM staged_files WHERE submission_id = ?", (sub_id,))
        return done.rowcount == 1

    # ------------------------------------------------------------------ changes, for whatever follows the catalog

    def changes(self) -> int:
        """How many times a study was committed, released or withdrawn so far (every process of the site counts)."""
        return self._counter(CHANGES)

    def record_change(self) -> None:
        """Count a change made without a lifecycle step (a study withdrawn or deleted)."""
        with self._connect(immediate=True) as db:
            _count_change(db)

    def followed(self, follower: str) -> int:
        """The change count ``follower`` (e.g. the linker) last caught up with."""
        return self._counter("~followed:" + follower)

    def mark_followed(self, follower: str, changes: int) -> None:
        """``follower`` has caught up with ``changes`` (never moves back)."""
        with self._connect(immediate=True) as db:
            db.execute(
                "INSERT INTO counters VALUES (?, ?) ON CONFLICT(name) DO UPDATE SET value = GREATEST(counters.value, excluded.value)",
                ("~followed:" + follower, changes),
            )

    def _counter(self, name: str) -> int:
        with self._connect() as db:
            row = db.execute("SELECT value FROM counters WHERE name = ?", (name,)).fetchone()
        return int(row["value"]) if row else 0

    def counts(self) -> dict[str, int]:
        with self._connect() as db:
            return {r["state"]: r["n"] for r in db.execute("SELECT state, count(*) AS n FROM studies GROUP BY state")}


class PathClash(ValidationFailed):
    """Two paths of one submission that would name the same file, or a file where a folder is needed."""

    code = "path_clash"


def _refuse_clash(db: Any, sub_id: str, path: str, fold: str) -> None:
    """:class:`PathClash` if ``path`` clashes with a file already staged in the submission."""
    same = db.execute("SELECT path FROM staged_files WHERE submission_id = ? AND fold_key = ? LIMIT 1", (sub_id, fold)).fetchone()
    if same is not None:
        _clash(path, same[0], "names the same file on case-insensitive or Unicode-normalising file systems as")
    inside = db.execute(
        "SELECT path FROM staged_files WHERE submission_id = ? AND fold_key > ? AND fold_key < ? LIMIT 1",
        (sub_id, fold + "/", fold + "0"),
    ).fetchone()
    if inside is not None:
        _clash(path, inside[0], "would be a file where a folder is needed for")
    folders = ancestors(fold)
    if folders:
        above = db.execute(
            f"SELECT path FROM staged_files WHERE submission_id = ? AND fold_key IN ({','.join('?' * len(folders))}) LIMIT 1",
            (sub_id, *folders),
        ).fetchone()
        if above is not None:
            _clash(path, above[0], "needs a folder where there is already a file:")


def _clash(path: str, other: str, how: str) -> None:
    raise PathClash(f"{path!r} {how} {other!r}", [{"field": "path", "value": path, "message": f"{how} {other!r}"}])


#: the counter of changes (accession prefixes cannot start with ``~``)
CHANGES = "~changes"


def _count_change(db: Any) -> None:
    db.execute("INSERT INTO counters VALUES (?, 1) ON CONFLICT(name) DO UPDATE SET value = counters.value + 1", (CHANGES,))


def _legacy_clash_version(state: StateDB, db: Any) -> int:
    """The clash-key rule an embedded registry from before the ``meta`` table recorded (its ``user_version``)."""
    return int(db.execute("PRAGMA user_version").fetchone()[0]) if isinstance(state, SqliteStateDB) else 0


def _new_commit() -> str:
    return uuid.uuid4().hex


#: hex digits of a token's hash that name it in `bia token list` (not a secret: the hash of a random token)
TOKEN_ID_LENGTH = 12


@dataclass(frozen=True)
class TokenRow:
    """A token as the registry knows it: its short id, whose it is and when it was made."""

    id: str
    owner: str
    created_at: str

    @classmethod
    def of(cls, row: Any) -> TokenRow:
        return cls(row["token_hash"][:TOKEN_ID_LENGTH], row["owner"], row["created_at"])


def token_id(token: str) -> str:
    """The short non-secret id that names ``token`` in listings and revocations."""
    return _hash(token)[:TOKEN_ID_LENGTH]


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()
