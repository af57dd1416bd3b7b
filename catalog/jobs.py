"""A durable queue of work on a catalog's files (image headers, previews, conversions), kept in the state database.

A job is keyed by (kind, study, file, version): the kind of work, the study and file it is about, and the version of
the software that does it. A key is done at most once: enqueuing it again does nothing, whatever its state; a new
version of the software is a new key. A job goes ``queued`` → ``running`` → ``done`` (its result stored with it),
or back to ``queued`` after a failure until its attempts (``BIA_JOB_ATTEMPTS``) run out, then ``failed`` with the
reason. An outage (:func:`catalog.errors.is_transient`) costs no attempt.

A worker claims jobs by compare-and-set under a lease, as in-flight study work is held (:mod:`catalog.leases`): the
job row names the worker's holder, a claim id of its own and an expiry the worker's heartbeat renews. A running job
whose holder died (on this host: at once) or whose lease ran out is claimed again, counting an attempt. A result is
stored in the transaction that marks the job done, and only while the claim is still the job's: a worker that lost
its job (it stalled past its lease and another took the job over) has its result refused. So a ``kill -9`` at any
moment loses no job, and no key ever gets a second result; the work itself may run again after a crash.

Kinds are registered by name (:func:`register`) with their handler and version; packages add theirs through the
``bia.jobs`` entry points (each a function that calls :func:`register`), loaded by :func:`kinds`.
"""

from __future__ import annotations

import json
import logging
import secrets
import threading
import time
from dataclasses import dataclass, fields, replace
from importlib.metadata import PackageNotFoundError, entry_points
from importlib.metadata import version as package_version
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence

from catalog import job_journal, leases
from catalog.config import Settings
from catalog.errors import CatalogError, is_transient
from catalog.registry import LeaseLost
from catalog.state_db import StateDB

log = logging.getLogger(__name__)

#: states of a job
QUEUED, RUNNING, DONE, FAILED = "queued", "running", "done", "failed"
STATES = (QUEUED, RUNNING, DONE, FAILED)
#: the entry-point group through which installed packages register their kinds
ENTRY_POINTS = "bia.jobs"
#: longest failure reason kept (characters)
MAX_REASON = 2000
#: jobs enqueued per transaction by :meth:`JobQueue.enqueue_many`
ENQUEUE_CHUNK = 500
#: the columns that name a job (rows are changed by their ``id``, which only the primary key can find: a planner
#: without statistics on a freshly filled table may otherwise scan the ready index for a key)
KEY = "kind = ? AND study = ? AND file_key = ? AND version = ?"
#: the counter ids of jobs are drawn from
IDS = "~jobs"

#: does one job: gets it, returns its result (anything JSON can encode); raises to fail it
Handler = Callable[["Job"], Any]
#: makes a kind's handler once per worker, e.g. opening the stores it reads
Setup = Callable[[Settings], Handler]


# ---------------------------------------------------------------------------------------------------- kinds


@dataclass(frozen=True)
class Kind:
    """A kind of job: its name, the version of the software doing it, and how a worker gets its handler."""

    name: str
    version: str
    setup: Setup


_KINDS: dict[str, Kind] = {}
_KINDS_LOCK = threading.Lock()
_plugins_loaded = False


def register(kind: str, handler: Handler | None, version: str, *, setup: Setup | None = None) -> Kind:
    """Make ``kind`` known at ``version``: ``handler(job)`` does one job, or ``setup(settings)`` makes that handler
    once per worker (when it needs the catalog's stores). Registering a name again replaces it."""
    if not kind or "," in kind or not version:
        raise ValueError(f"a job kind needs a name without commas and a version (got {kind!r}, {version!r})")
    if (handler is None) == (setup is None):
        raise ValueError("give a handler or a setup (one of them)")
    made = Kind(kind, version, setup if setup is not None else _constant(handler))
    with _KINDS_LOCK:
        _KINDS[kind] = made
    return made


def _constant(handler: Handler | None) -> Setup:
    assert handler is not None
    return lambda _settings: handler


def unregister(kind: str) -> None:
    with _KINDS_LOCK:
        _KINDS.pop(kind, None)


def kinds() -> dict[str, Kind]:
    """Every registered kind by name (those of installed packages' ``bia.jobs`` entry points loaded first)."""
    global _plugins_loaded
    if not _plugins_loaded:
        _plugins_loaded = True
        for point in entry_points(group=ENTRY_POINTS):
            try:
                point.load()()
            except Exception:  # noqa: BLE001 - one broken plugin leaves the others working
                log.exception("the job kinds of %s could not be registered", point.value)
    with _KINDS_LOCK:
        return dict(_KINDS)


def software_version(revision: int, libraries: Iterable[str]) -> str:
    """A kind's version: its code's revision and the installed versions of the libraries it uses (``none`` when not
    installed), e.g. ``r2+tifffile-2026.3.3+zarr-3.1.6``: a new library release is a new version, so a job is done
    again by the new software."""
    parts = [f"r{revision}"]
    for name in libraries:
        try:
            parts.append(f"{name}-{package_version(name)}")
        except PackageNotFoundError:
            parts.append(f"{name}-none")
    return "+".join(parts)


def handlers(settings: Settings, names: Iterable[str] | None = None) -> dict[str, Handler]:
    """The handlers of the registered kinds ``names`` (default: all), made for a worker over ``settings``."""
    known = kinds()
    return {name: known[name].setup(settings) for name in (known if names is None else names)}


# ---------------------------------------------------------------------------------------------------- jobs


@dataclass(frozen=True)
class Job:
    """A job as the queue holds it; ``claim_id`` names the claim a worker holds it under."""

    kind: str
    study: str
    file_key: str
    version: str
    state: str = QUEUED
    id: int = 0
    payload: Any = None
    result: Any = None
    reason: str | None = None
    attempts: int = 0
    claim_id: str | None = None
    updated: float | None = None

    @property
    def key(self) -> tuple[str, str, str, str]:
        return (self.kind, self.study, self.file_key, self.version)

    @classmethod
    def of(cls, row: Any) -> Job:
        return cls(
            row["kind"],
            row["study"],
            row["file_key"],
            row["version"],
            row["state"],
            row["id"],
            _decode(row["payload"]),
            _decode(row["result"]),
            row["reason"],
            row["attempts"],
            row["claim_id"],
            row["updated"],
        )

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name not in ("claim_id", "id")}


@dataclass(frozen=True)
class Enqueued:
    """What :meth:`JobQueue.enqueue` did: ``added`` a new job, or found the key already in ``state``."""

    added: bool
    state: str


def encode_result(value: Any) -> str:
    """``value`` as stored JSON; ValueError if JSON cannot hold it."""
    try:
        return json.dumps(value, allow_nan=False, ensure_ascii=False, separators=(",", ":"))
    except (TypeError, ValueError) as exc:
        raise ValueError(f"not JSON: {exc}") from exc


def _decode(text: str | None) -> Any:
    return None if text is None else json.loads(text)


def _clip(reason: str) -> str:
    return reason if len(reason) <= MAX_REASON else reason[: MAX_REASON - 1] + "…"


def _version_filter(kind: str, versions: Mapping[str, str] | None) -> tuple[str, tuple[Any, ...]]:
    if versions is None or kind not in versions:
        return "", ()
    return " AND version = ?", (versions[kind],)


class JobQueue:
    """The jobs of one catalog; every method opens its own short transaction (thread- and process-safe).

    Jobs claimed through this handle are renewed by its heartbeat until they are finished, failed or released;
    once it is closed they are free for other workers at once."""

    def __init__(self, db: StateDB, lease_seconds: float = 60.0, *, max_attempts: int = 3, retry_seconds: float = 10.0):
        self.db = db
        self.lease_seconds = lease_seconds
        self.max_attempts = max(1, max_attempts)
        self.retry_seconds = max(0.0, retry_seconds)
        #: this handle's name as a lease holder
        self.holder = leases.new_holder()
        self._held: dict[str, Job] = {}
        self._held_lock = threading.Lock()
        self._heartbeat = leases.Heartbeat(self._renew, lease_seconds)

    @classmethod
    def for_settings(cls, db: StateDB, settings: Settings) -> JobQueue:
        """A queue with the lease, attempts and retry delay of ``settings``."""
        return cls(db, settings.lease_seconds, max_attempts=settings.job_attempts, retry_seconds=settings.job_retry_seconds)

    def close(self) -> None:
        """Stop renewing; jobs still held become free for other workers."""
        self._heartbeat.stop()
        leases.forget(self.holder)

    # ------------------------------------------------------------------ adding jobs

    def enqueue(self, kind: str, study: str, file_key: str, version: str, payload: Any = None) -> Enqueued:
        """Queue the job of this key unless the key is known (done, queued, running or failed: nothing changes)."""
        key = _checked_key(kind, study, file_key, version)
        text = None if payload is None else encode_result(payload)
        now = time.time()
        with self.db.transaction(write=True) as conn:
            added = conn.execute(
                "INSERT INTO jobs (id, kind, study, file_key, version, state, payload, ready, created, updated)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (study, file_key, kind, version) DO NOTHING",
                (_new_ids(conn, 1), *key, QUEUED, text, now, now, now),
            )
            if added.rowcount == 1:
                return Enqueued(True, QUEUED)
            row = conn.execute(f"SELECT state FROM jobs WHERE {KEY}", key).fetchone()
        return Enqueued(False, row["state"])

    def enqueue_many(self, kind: str, version: str, items: Iterable[tuple[str, str, Any]]) -> int:
        """Queue a job of ``kind`` at ``version`` for each ``(study, file_key, payload)`` whose key is new, a chunk
        per transaction (writers of the site wait for one chunk at most); returns how many were added."""
        added, chunk = 0, []
        for study, file_key, payload in items:
            _checked_key(kind, study, file_key, version)
            chunk.append((study, file_key, None if payload is None else encode_result(payload)))
            if len(chunk) == ENQUEUE_CHUNK:
                added += self._insert(kind, version, chunk)
                chunk = []
        return added + (self._insert(kind, version, chunk) if chunk else 0)

    def _insert(self, kind: str, version: str, chunk: list[tuple[str, str, str | None]]) -> int:
        now = time.time()
        rows = ", ".join(["(?, ?, ?, ?, ?, 'queued', ?, ?, ?, ?)"] * len(chunk))
        with self.db.transaction(write=True) as conn:
            first = _new_ids(conn, len(chunk))
            values = [
                v
                for i, (study, file_key, text) in enumerate(chunk)
                for v in (first + i, kind, study, file_key, version, text, now, now, now)
            ]
            done = conn.execute(
                "INSERT INTO jobs (id, kind, study, file_key, version, state, payload, ready, created, updated)"
                f" VALUES {rows} ON CONFLICT (study, file_key, kind, version) DO NOTHING",
                values,
            )
        return max(done.rowcount, 0)

    # ------------------------------------------------------------------ working

    def claim(self, kinds: Iterable[str], limit: int = 1, *, versions: Mapping[str, str] | None = None) -> list[Job]:
        """Take up to ``limit`` jobs of ``kinds`` (only ``versions[kind]`` where given): first those whose worker
        died or whose lease ran out (an attempt counted; one that had its last attempt is marked failed), then
        queued ones in the order they became ready. Each is held under this handle's lease until it is finished,
        failed or released."""
        names = list(dict.fromkeys(kinds))
        now = time.time()
        if limit < 1 or not names or not self._any_ready(names, versions, now):
            return []  # a read: idle workers never wait for the site's write lock
        taken: list[Job] = []
        with self.db.transaction(write=True) as conn:
            for kind in names:
                for row in self._stalled(conn, kind, versions, now):
                    if len(taken) < limit:
                        job = self._take_over(conn, row, now)
                        taken.extend([job] if job is not None else [])
            ready: list[Any] = []
            for kind in names:
                if len(taken) < limit:
                    where, params = _version_filter(kind, versions)
                    ready += conn.execute(
                        f"SELECT * FROM jobs WHERE kind = ? AND state = 'queued' AND ready <= ?{where} ORDER BY ready LIMIT ?",
                        (kind, now, *params, limit - len(taken)),
                    ).fetchall()
            for row in sorted(ready, key=lambda r: r["ready"])[: limit - len(taken)]:
                job = self._take(conn, row, now)
                taken.extend([job] if job is not None else [])
        for job in taken:
            self._hold(job)
        return taken

    def _any_ready(self, names: list[str], versions: Mapping[str, str] | None, now: float) -> bool:
        with self.db.transaction() as conn:
            for kind in names:
                where, params = _version_filter(kind, versions)
                queued = conn.execute(
                    f"SELECT 1 FROM jobs WHERE kind = ? AND state = 'queued' AND ready <= ?{where} LIMIT 1", (kind, now, *params)
                ).fetchone()
                if queued is not None or any(True for _ in self._stalled(conn, kind, versions, now)):
                    return True
        return False

    @staticmethod
    def _stalled(conn: Any, kind: str, versions: Mapping[str, str] | None, now: float) -> Iterator[Any]:
        """Running jobs of ``kind`` whose holder died or whose lease ran out."""
        where, params = _version_filter(kind, versions)
        rows = conn.execute(f"SELECT * FROM jobs WHERE kind = ? AND state = 'running'{where}", (kind, *params)).fetchall()
        return (row for row in rows if leases.expired(row["holder"], row["expires"], now))

    def _take(self, conn: Any, row: Any, now: float) -> Job | None:
        """Claim the job of ``row`` (compare-and-set on its state, claim and expiry as read), one attempt counted."""
        claim_id = secrets.token_hex(8)
        done = conn.execute(
            "UPDATE jobs SET state = 'running', holder = ?, claim_id = ?, expires = ?, attempts = attempts + 1, updated = ?"
            " WHERE id = ? AND state = ? AND claim_id IS NOT DISTINCT FROM ? AND expires IS NOT DISTINCT FROM ?",
            (self.holder, claim_id, now + self.lease_seconds, now, row["id"], row["state"], row["claim_id"], row["expires"]),
        )
        if done.rowcount != 1:
            return None
        return replace(Job.of(row), state=RUNNING, attempts=row["attempts"] + 1, claim_id=claim_id, updated=now)

    def _take_over(self, conn: Any, row: Any, now: float) -> Job | None:
        """Claim a running job whose worker is gone, or mark it failed if that was its last attempt."""
        if row["attempts"] < self.max_attempts:
            return self._take(conn, row, now)
        reason = f"its worker stopped during its last attempt ({row['attempts']}): killed, or stalled past its lease"
        if row["reason"]:
            reason += f"; before that: {row['reason']}"
        conn.execute(
            "UPDATE jobs SET state = 'failed', reason = ?, holder = NULL, claim_id = NULL, expires = NULL, updated = ?"
            " WHERE id = ? AND state = 'running' AND claim_id IS NOT DISTINCT FROM ?",
            (_clip(reason), now, row["id"], row["claim_id"]),
        )
        return None

    def finish(self, job: Job, result: Any) -> None:
        """Store ``result`` and mark the job done in one transaction, if this claim still holds it (:class:`LeaseLost`
        else, and the result is dropped)."""
        if self.finish_many([(job, result)]):
            raise LeaseLost(f"job {job.kind} of {job.study}/{job.file_key} is no longer held by this worker")

    def finish_many(self, done: Sequence[tuple[Job, Any]]) -> list[Job]:
        """:meth:`finish` of several jobs in one transaction; returns those whose result was refused (their claim
        was lost). ValueError, before anything is written, if a result is not JSON-able."""
        encoded = [(job, encode_result(result)) for job, result in done]
        refused: list[Job] = []
        now = time.time()
        try:
            with self.db.transaction(write=True) as conn:
                for job, text in encoded:
                    changed = conn.execute(
                        "UPDATE jobs SET state = 'done', result = ?, reason = NULL, holder = NULL, claim_id = NULL,"
                        " expires = NULL, updated = ? WHERE id = ? AND state = 'running' AND claim_id = ?",
                        (text, now, job.id, job.claim_id),
                    )
                    if changed.rowcount != 1:
                        refused.append(job)
        finally:
            for job, _ in encoded:
                self._drop(job)
        return refused

    def store_claimed(self, entries: Sequence[tuple[int, str, str]]) -> int:
        """Store results kept by a worker that stopped before storing them (:mod:`catalog.job_journal`): each
        ``(job id, claim id, result JSON)`` whose job still runs under that claim; how many were stored."""
        stored = 0
        now = time.time()
        with self.db.transaction(write=True) as conn:
            for job_id, claim_id, text in entries:
                changed = conn.execute(
                    "UPDATE jobs SET state = 'done', result = ?, reason = NULL, holder = NULL, claim_id = NULL,"
                    " expires = NULL, updated = ? WHERE id = ? AND state = 'running' AND claim_id = ?",
                    (text, now, job_id, claim_id),
                )
                stored += changed.rowcount == 1
        return stored

    def fail(self, job: Job, reason: str, transient: bool = False) -> str:
        """The job did not complete: queue it again after ``retry_seconds`` (``transient``: without counting the
        attempt), or mark it failed with ``reason`` once its attempts are used up. Returns its new state;
        :class:`LeaseLost` if this claim no longer holds it."""
        now = time.time()
        try:
            with self.db.transaction(write=True) as conn:
                row = conn.execute(
                    "SELECT attempts FROM jobs WHERE id = ? AND state = 'running' AND claim_id = ?", (job.id, job.claim_id)
                ).fetchone()
                if row is None:
                    raise LeaseLost(f"job {job.kind} of {job.study}/{job.file_key} is no longer held by this worker")
                state = FAILED if not transient and row["attempts"] >= self.max_attempts else QUEUED
                conn.execute(
                    "UPDATE jobs SET state = ?, reason = ?, ready = ?, holder = NULL, claim_id = NULL, expires = NULL,"
                    f" updated = ?{', attempts = GREATEST(attempts - 1, 0)' if transient else ''} WHERE id = ?",
                    (state, _clip(reason), now + self.retry_seconds, now, job.id),
                )
        finally:
            self._drop(job)
        return state

    def release(self, jobs: Iterable[Job]) -> int:
        """Hand claimed jobs back untouched (queued again in their place, no attempt counted), e.g. when a worker
        stops; returns how many this claim still held."""
        jobs = list(jobs)
        released = 0
        try:
            with self.db.transaction(write=True) as conn:
                for job in jobs:
                    released += conn.execute(
                        "UPDATE jobs SET state = 'queued', attempts = GREATEST(attempts - 1, 0), holder = NULL,"
                        " claim_id = NULL, expires = NULL WHERE id = ? AND state = 'running' AND claim_id = ?",
                        (job.id, job.claim_id),
                    ).rowcount
        finally:
            for job in jobs:
                self._drop(job)
        return released

    def _hold(self, job: Job) -> None:
        with self._held_lock:
            self._held[str(job.claim_id)] = job
        self._heartbeat.hold(str(job.claim_id))

    def _drop(self, job: Job) -> None:
        with self._held_lock:
            self._held.pop(str(job.claim_id), None)
        self._heartbeat.drop(str(job.claim_id))

    def _renew(self, claim_ids: Iterable[str]) -> None:
        with self._held_lock:
            held = [self._held[c] for c in claim_ids if c in self._held]
        expires = time.time() + self.lease_seconds
        with self.db.transaction(write=True) as conn:
            for job in held:
                conn.execute(
                    "UPDATE jobs SET expires = ? WHERE id = ? AND state = 'running' AND claim_id = ?",
                    (expires, job.id, job.claim_id),
                )

    # ------------------------------------------------------------------ reading

    def job(self, kind: str, study: str, file_key: str, version: str) -> Job | None:
        with self.db.transaction() as conn:
            row = conn.execute(f"SELECT * FROM jobs WHERE {KEY}", (kind, study, file_key, version)).fetchone()
        return Job.of(row) if row is not None else None

    def result(self, kind: str, study: str, file_key: str, version: str) -> Any:
        """The result of the key's job, or None while it is not done."""
        job = self.job(kind, study, file_key, version)
        return job.result if job is not None and job.state == DONE else None

    def results(self, study: str, kind: str | None = None, version: str | None = None) -> Iterator[Job]:
        """The done jobs of ``study`` (of ``kind`` and ``version`` if given), with their results, by kind and file;
        streamed from the database."""
        query, params = "SELECT * FROM jobs WHERE study = ? AND state = 'done'", [study]
        for column, value in (("kind", kind), ("version", version)):
            if value is not None:
                query += f" AND {column} = ?"
                params.append(value)
        for row in self.db.stream(query + " ORDER BY kind, file_key, version", params):
            yield Job.of(row)

    def counts(self) -> dict[str, dict[str, int]]:
        """How many jobs of each kind are in each state (every state listed)."""
        counted: dict[str, dict[str, int]] = {}
        with self.db.transaction() as conn:
            for row in conn.execute("SELECT kind, state, count(*) AS n FROM jobs GROUP BY kind, state"):
                counted.setdefault(row["kind"], dict.fromkeys(STATES, 0))[row["state"]] = int(row["n"])
        return dict(sorted(counted.items()))

    def failures(self, limit: int = 50, kind: str | None = None) -> list[Job]:
        """Failed jobs, most recent first, with their reasons."""
        query, params = "SELECT * FROM jobs WHERE state = 'failed'", []
        if kind is not None:
            query, params = query + " AND kind = ?", [kind]
        with self.db.transaction() as conn:
            rows = conn.execute(query + " ORDER BY updated DESC LIMIT ?", (*params, limit)).fetchall()
        return [Job.of(row) for row in rows]

    def retry_failed(self, kind: str | None = None) -> int:
        """Queue failed jobs (of ``kind``) again with their attempts reset; returns how many."""
        now = time.time()
        query = "UPDATE jobs SET state = 'queued', attempts = 0, ready = ?, updated = ? WHERE state = 'failed'"
        params: list[Any] = [now, now]
        if kind is not None:
            query += " AND kind = ?"
            params.append(kind)
        with self.db.transaction(write=True) as conn:
            return conn.execute(query, params).rowcount


def _checked_key(kind: str, study: str, file_key: str, version: str) -> tuple[str, str, str, str]:
    key = (kind, study, file_key, version)
    if not all(isinstance(part, str) and part for part in key):
        raise ValueError(f"a job key needs a kind, a study, a file and a version, each a non-empty string (got {key!r})")
    return key


def _new_ids(conn: Any, count: int) -> int:
    """The first of ``count`` new job ids (inside the caller's write transaction)."""
    top = conn.execute(
        "INSERT INTO counters VALUES (?, ?) ON CONFLICT(name) DO UPDATE SET value = counters.value + excluded.value"
        " RETURNING value",
        (IDS, count),
    ).fetchone()[0]
    return int(top) - count + 1


# ---------------------------------------------------------------------------------------------------- workers


@dataclass
class Tally:
    """What a worker did: jobs done, failed for good, queued again after a failure, and lost to another worker."""

    done: int = 0
    failed: int = 0
    retried: int = 0
    lost: int = 0

    def add(self, other: Tally) -> None:
        for name in ("done", "failed", "retried", "lost"):
            setattr(self, name, getattr(self, name) + getattr(other, name))

    def __str__(self) -> str:
        return f"done {self.done}, failed {self.failed}, retried {self.retried}, lost {self.lost}"


def describe(exc: BaseException) -> str:
    """A failure as a reason to show: the error's class and message."""
    message = exc.message if isinstance(exc, CatalogError) else str(exc)
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__


class Worker:
    """Claims batches of jobs of the kinds it has handlers for, runs each handler and finishes or fails the job; the
    queue's heartbeat renews the batch's leases meanwhile. ``versions``: claim only these versions of each kind.
    Results are stored in the background while the next jobs run, at most ``unstored`` of them waiting: a worker
    killed at any moment has lost the work of at most ``unstored`` + 1 jobs, done again by the next worker (the
    jobs it claimed but had not started are taken over, not redone). With a ``journal`` folder each result is
    first kept in the worker's journal file (:mod:`catalog.job_journal`), and the next worker on this host stores
    what a killed one left there: only the job in hand is done again."""

    def __init__(
        self,
        queue: JobQueue,
        handlers: Mapping[str, Handler],
        *,
        versions: Mapping[str, str] | None = None,
        batch: int = 8,
        poll_seconds: float = 2.0,
        unstored: int = 8,
        journal: Path | None = None,
    ) -> None:
        self.queue = queue
        self.journal_folder = journal
        self._journal: job_journal.Journal | None = None
        #: results written to the journal that may not be stored yet (a batch whose storing failed)
        self._journal_dirty = False
        self.handlers = dict(handlers)
        self.versions = versions
        self.batch = max(1, batch)
        self.unstored = max(1, unstored)
        self.poll_seconds = poll_seconds
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def run_batch(self, stop: threading.Event | None = None) -> Tally | None:
        """Claim and do one batch; None if no job was ready. Results are stored while the next jobs of the batch
        run (:class:`_Finisher`), all of them by the time this returns. Jobs not started when ``stop`` is set are
        released."""
        journal = self._open_journal()
        pending = self.queue.claim(self.handlers, self.batch, versions=self.versions)
        if not pending:
            return None
        tally = Tally()
        finisher = _Finisher(self.queue, self.unstored)
        try:
            while pending and not (stop is not None and stop.is_set()):
                job = pending.pop(0)
                try:
                    outcome = self._do(job, tally)
                except BaseException:
                    pending.insert(0, job)
                    raise
                if outcome is not None:
                    if journal is not None:
                        self._journal_dirty = True
                        journal.write(job, outcome[1])
                    finisher.add(job, outcome[0])
        finally:
            try:
                tally.add(finisher.close())
                if journal is not None:
                    journal.clear()
                    self._journal_dirty = False
            finally:
                if pending:
                    self.queue.release(pending)
        return tally

    def _open_journal(self) -> job_journal.Journal | None:
        """This worker's journal (None without a journal folder), after storing what dead workers left in theirs
        and what a failed batch of this one left in its own."""
        if self.journal_folder is None:
            return None
        job_journal.salvage(self.queue, self.journal_folder)
        if self._journal is None:
            self._journal = job_journal.Journal(self.journal_folder, self.queue.holder)
        elif self._journal_dirty:
            self.queue.store_claimed(list(job_journal.entries(self._journal.path)))
            self._journal.clear()
            self._journal_dirty = False
        return self._journal

    def _do(self, job: Job, tally: Tally) -> tuple[Any, str] | None:
        """Run the job's handler: ``(result, its JSON)``, or None once its failure is recorded."""
        try:
            result = self.handlers[job.kind](job)
        except Exception as exc:  # noqa: BLE001 - the job fails with the reason; the worker goes on
            self._failed(job, describe(exc), is_transient(exc), tally)
            return None
        try:
            encoded = encode_result(result)
        except ValueError as exc:
            self._failed(job, f"its result is {exc}", False, tally)
            return None
        return result, encoded

    def _failed(self, job: Job, reason: str, transient: bool, tally: Tally) -> None:
        try:
            state = self.queue.fail(job, reason, transient=transient)
        except LeaseLost:
            tally.lost += 1
            return
        log.warning("job %s of %s/%s %s: %s", job.kind, job.study, job.file_key, state, reason)
        if state == FAILED:
            tally.failed += 1
        else:
            tally.retried += 1

    def run(self, stop: threading.Event | None = None, once: bool = False) -> Tally:
        """Do batches until ``stop`` is set (``once``: until no job is ready); an idle worker looks again every
        ``poll_seconds``."""
        stop = stop or self._stop
        total = Tally()
        while not stop.is_set():
            try:
                done = self.run_batch(stop)
            except Exception:
                if once:
                    raise
                log.exception("a batch of jobs failed (its jobs go back to the queue when their leases run out)")
                done = None
            if done is not None:
                total.add(done)
            elif once:
                break
            else:
                stop.wait(self.poll_seconds)
        return total

    def start(self) -> None:
        """Run in a background thread until :meth:`stop` (nothing to do without handlers)."""
        if self._thread is None and self.handlers:
            self._stop.clear()
            self._thread = threading.Thread(target=self.run, name="jobs", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=60)
            self._thread = None

    def close(self) -> None:
        """Stop, and close the queue (jobs still held become free at once) and the journal."""
        self.stop()
        if self._journal is not None:
            self._journal.close(keep=self._journal_dirty)  # results not stored stay for the next worker
            self._journal = None
        self.queue.close()


class _Finisher:
    """Stores the results of a batch's jobs in the background while the worker goes on with the next jobs, each
    transaction taking the results handed over since the previous one once there are half of ``most`` (or the batch
    ended); :meth:`add` waits while ``most`` results are not stored yet. So a worker killed in the middle of a batch has lost the work of at most
    ``most`` + 1 jobs (those not stored yet and the one in hand: only they are done again), and storing costs the
    batch little wall time. :meth:`close` stores the rest and gives what was stored and refused; a failed transaction
    (its jobs go back to the queue when their leases run out) is raised there, after the others are tried."""

    def __init__(self, queue: JobQueue, most: int) -> None:
        self.queue = queue
        self.most = max(1, most)
        #: results a transaction waits for (but those of the batch's end): half the most, so that the worker goes on
        #: while they are stored, and a transaction's cost (a few tenths of a millisecond) is shared
        self.group = (self.most + 1) // 2
        self.tally = Tally()
        self._waiting: list[tuple[Job, Any]] = []
        self._unstored = 0
        self._closed = False
        self._error: BaseException | None = None
        self._ready = threading.Condition()
        self._thread = threading.Thread(target=self._run, name="jobs-finisher", daemon=True)
        self._thread.start()

    def add(self, job: Job, result: Any) -> None:
        with self._ready:
            while self._unstored >= self.most:
                self._ready.wait()
            self._waiting.append((job, result))
            self._unstored += 1
            self._ready.notify_all()

    def _run(self) -> None:
        while True:
            with self._ready:
                while len(self._waiting) < self.group and not self._closed:
                    self._ready.wait()
                if not self._waiting:
                    return
                group, self._waiting = self._waiting, []
            try:
                refused = self.queue.finish_many(group)
            except BaseException as exc:  # noqa: BLE001 - raised by close(), in the worker's thread
                self._error = self._error or exc
            else:
                self.tally.done += len(group) - len(refused)
                self.tally.lost += len(refused)
            with self._ready:
                self._unstored -= len(group)
                self._ready.notify_all()

    def close(self) -> Tally:
        with self._ready:
            self._closed = True
            self._ready.notify_all()
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self.tally


def journal_folder(settings: Settings) -> Path:
    """Where this host's workers keep results until they are stored (:mod:`catalog.job_journal`)."""
    return settings.data_dir / "job-journals"


def background_worker(db: StateDB, settings: Settings, batch: int = 4) -> Worker | None:
    """A started worker thread over every registered kind at its version, for a serving process; None when no kind
    is registered."""
    known = kinds()
    if not known:
        return None
    worker = Worker(
        JobQueue.for_settings(db, settings),
        handlers(settings),
        versions={name: kind.version for name, kind in known.items()},
        batch=batch,
        poll_seconds=settings.job_poll_seconds,
        journal=journal_folder(settings),
    )
    worker.start()
    return worker


__all__ = [
    "DONE",
    "FAILED",
    "QUEUED",
    "RUNNING",
    "Enqueued",
    "Job",
    "JobQueue",
    "Kind",
    "Tally",
    "Worker",
    "background_worker",
    "handlers",
    "journal_folder",
    "kinds",
    "register",
    "unregister",
]
