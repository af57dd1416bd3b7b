"""The catalog's state database: SQLite in ``BIA_DATA`` (the embedded default) or PostgreSQL (``BIA_DATABASE_URL``).

Everything a site shares besides its graphs and bytes lives here: accessions, tokens, submissions and staged files,
the study lifecycle and its leases, rendered records, search documents and file-table pointers. Callers write SQL
once, in the common dialect of both engines (``?`` placeholders, ``ON CONFLICT`` upserts, ``RETURNING``,
``GREATEST``, ``IS NOT DISTINCT FROM``), and get rows that answer both ``row[0]`` and ``row["name"]``.

Writers are serialized site-wide, as SQLite serializes them on one host: a write transaction on SQLite is
``BEGIN IMMEDIATE``, on PostgreSQL it first takes one transaction-scoped advisory lock. So every read-then-write
inside a write transaction sees the state no other writer can change under it, on one node or many, and counters
(accessions, the search sequence) advance in commit order. Readers never wait.
"""

from __future__ import annotations

import abc
import functools
import os
import sqlite3
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterable, Iterator, Protocol, Sequence

from catalog.errors import CatalogError

#: the advisory lock every PostgreSQL write transaction takes (an arbitrary constant: "BIA" in ASCII)
WRITE_LOCK = 0x424941
#: seconds a statement may wait for a lock before the database counts as unavailable
WAIT_SECONDS = 60
#: seconds a request may wait for a connection to the database (an unreachable database: a 503 after this)
CONNECT_SECONDS = 5
#: seconds after a failure to reach the database during which calls fail at once (no thread waits on a dead database)
FAIL_FAST_SECONDS = 3


class DatabaseUnavailable(CatalogError):
    """The state database cannot be reached or did not answer in time."""

    status = 503
    code = "database_unavailable"
    retry_after = 5


class Cursor(Protocol):
    rowcount: int

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...

    def __iter__(self) -> Iterator[Any]: ...


class Connection(Protocol):
    """What a transaction block is handed: ``execute`` with ``?`` placeholders."""

    def execute(self, sql: str, params: Sequence[Any] = ...) -> Cursor: ...

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None: ...


class StateDB(abc.ABC):
    """A state database; :func:`open_state_db` picks the engine."""

    #: ``sqlite`` or ``postgresql``
    dialect: str
    #: whether processes on other hosts see the same state (PostgreSQL)
    shared: bool

    @abc.abstractmethod
    def transaction(self, write: bool = False) -> Any:
        """A context manager yielding a :class:`Connection` in one transaction (``write``: serialized site-wide)."""

    @abc.abstractmethod
    def stream(self, sql: str, params: Sequence[Any] = ()) -> Iterator[Any]:
        """The rows of a query, fetched in batches as the caller iterates (never all in memory)."""

    def ping(self) -> None:
        """Raise :class:`DatabaseUnavailable` unless the database answers a query."""
        with self.transaction() as db:
            db.execute("SELECT 1").fetchone()

    def close(self) -> None:
        pass


# ---------------------------------------------------------------------------------------------------- SQLite


def _greatest(*values: Any) -> Any:
    present = [v for v in values if v is not None]
    return max(present) if present else None


#: idle connections a forked process inherited: kept unclosed for the life of the process (see ``_hold_wal``)
_INHERITED: list[sqlite3.Connection] = []


class SqliteStateDB(StateDB):
    """The embedded state database: one SQLite file (WAL mode) shared by the processes of one host."""

    dialect = "sqlite"
    shared = False

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self.path, timeout=WAIT_SECONDS)
        try:
            db.execute("PRAGMA journal_mode=WAL")
        finally:
            db.close()
        self._anchor: sqlite3.Connection | None = None
        self._anchor_pid = 0
        self._anchor_lock = threading.Lock()
        self._closed = False

    def _hold_wal(self) -> None:
        """Keep one idle connection open in this process while the handle is: the last connection to a WAL database
        to close checkpoints the WAL and deletes it, so with a connection per transaction nearly every transaction
        paid a checkpoint (three fsyncs, the WAL rebuilt: 4 ms instead of 0.3). Automatic checkpoints still keep the
        WAL short. A forked child opens its own and never closes its parent's (closing a file's descriptor drops all
        of a process's POSIX locks on it, SQLite's included)."""
        if self._closed or (self._anchor is not None and self._anchor_pid == os.getpid()):
            return
        with self._anchor_lock:
            if self._anchor is not None and self._anchor_pid != os.getpid():
                _INHERITED.append(self._anchor)
                self._anchor = None
            if self._anchor is None:
                anchor = sqlite3.connect(self.path, timeout=WAIT_SECONDS, isolation_level=None, check_same_thread=False)
                anchor.execute("SELECT count(*) FROM sqlite_master").fetchall()  # maps the WAL index; no transaction kept
                self._anchor, self._anchor_pid = anchor, os.getpid()

    def close(self) -> None:
        """Close the idle connection (the WAL is checkpointed once no other connection is open); transactions still
        work, each on its own connection."""
        with self._anchor_lock:
            self._closed = True
            anchor, self._anchor = self._anchor, None
        if anchor is not None and self._anchor_pid == os.getpid():
            anchor.close()
        elif anchor is not None:
            _INHERITED.append(anchor)

    def _connect(self) -> sqlite3.Connection:
        self._hold_wal()
        db = sqlite3.connect(self.path, timeout=WAIT_SECONDS, isolation_level=None)
        db.row_factory = sqlite3.Row
        db.create_function("GREATEST", -1, _greatest, deterministic=True)
        db.execute("PRAGMA synchronous=FULL")
        return db

    @contextmanager
    def transaction(self, write: bool = False) -> Iterator[Connection]:
        db = self._connect()
        try:
            db.execute("BEGIN IMMEDIATE" if write else "BEGIN")
            try:
                yield db  # type: ignore[misc]
            except BaseException:
                db.execute("ROLLBACK")
                raise
            else:
                db.execute("COMMIT")
        finally:
            db.close()

    def stream(self, sql: str, params: Sequence[Any] = ()) -> Iterator[Any]:
        db = self._connect()
        try:
            yield from db.execute(sql, tuple(params))
        finally:
            db.close()

    def script(self, ddl: str) -> None:
        """Run DDL statements (``CREATE ... IF NOT EXISTS``) in one go."""
        db = self._connect()
        try:
            db.executescript(ddl)
        finally:
            db.close()


# ---------------------------------------------------------------------------------------------------- PostgreSQL


@functools.lru_cache(maxsize=2048)
def to_postgres(sql: str) -> str:
    """A statement in the common dialect as psycopg takes it: ``?`` → ``%s``, a literal ``%`` doubled."""
    return sql.replace("%", "%%").replace("?", "%s")


class Row:
    """A PostgreSQL row that answers ``row[0]``, ``row["name"]``, ``dict(row)`` and unpacking, like ``sqlite3.Row``."""

    __slots__ = ("_values", "_index")

    def __init__(self, values: Sequence[Any], index: dict[str, int]) -> None:
        self._values = tuple(values)
        self._index = index

    def __getitem__(self, key: int | str) -> Any:
        return self._values[self._index[key]] if isinstance(key, str) else self._values[key]

    def keys(self) -> list[str]:
        return list(self._index)

    def __iter__(self) -> Iterator[Any]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:
        return f"Row({dict(zip(self._index, self._values))!r})"


def _row_factory(cursor: Any) -> Any:
    index = {column.name: i for i, column in enumerate(cursor.description or ())}
    return lambda values: Row(values, index)


def _numeric_loader() -> Any:
    """A loader of NUMERIC (what ``sum()`` of BIGINT gives) as ``int`` when whole, ``float`` else, as SQLite answers."""
    from psycopg.adapt import Loader

    class NumericAsNumber(Loader):
        def load(self, data: Any) -> Any:
            text = bytes(data).decode("ascii")
            return int(text) if text.lstrip("-").isdigit() else float(text)

    return NumericAsNumber


def _configure(conn: Any) -> None:
    """Session settings of every pooled connection (the URL's own ``options`` stay in force), and numbers loaded
    as the embedded engine gives them."""
    conn.adapters.register_loader("numeric", _numeric_loader())
    conn.execute(f"SET lock_timeout = {WAIT_SECONDS * 1000}")
    conn.execute("SET idle_in_transaction_session_timeout = 600000")


class _PgConnection:
    """A psycopg connection seen through the common dialect."""

    def __init__(self, conn: Any) -> None:
        self._conn = conn

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        return self._conn.execute(to_postgres(sql), tuple(params))

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        with self._conn.cursor() as cursor:
            cursor.executemany(to_postgres(sql), [tuple(r) for r in rows])


class PostgresStateDB(StateDB):
    """The state database of a site whose API runs on several machines: one PostgreSQL database."""

    dialect = "postgresql"
    shared = True

    def __init__(self, url: str, pool_size: int = 8) -> None:
        self.url = url
        self.pool_size = pool_size
        self._pool: Any = None
        self._pid = 0
        self._lock = threading.Lock()
        self._down_until = 0.0
        self._down_reason = ""

    def _connections(self) -> Any:
        """The connection pool of this process (a forked worker opens its own)."""
        if self._pool is None or self._pid != os.getpid():
            with self._lock:
                if self._pool is None or self._pid != os.getpid():
                    from psycopg_pool import ConnectionPool

                    self._pool = ConnectionPool(
                        self.url,
                        min_size=1,
                        max_size=self.pool_size,
                        open=True,
                        timeout=CONNECT_SECONDS,
                        kwargs={"autocommit": True, "row_factory": _row_factory, "connect_timeout": 5},
                        configure=_configure,
                    )
                    self._pid = os.getpid()
        return self._pool

    @contextmanager
    def transaction(self, write: bool = False) -> Iterator[Connection]:
        import psycopg
        from psycopg_pool import PoolTimeout

        if time.monotonic() < self._down_until:
            raise DatabaseUnavailable(f"the state database is unavailable: {self._down_reason}")
        try:
            with self._connections().connection() as conn, conn.transaction():
                if write:
                    conn.execute("SELECT pg_advisory_xact_lock(%s)", (WRITE_LOCK,))
                yield _PgConnection(conn)
        except (psycopg.OperationalError, PoolTimeout) as exc:
            self._down_reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            if getattr(exc, "sqlstate", None) is None:  # unreachable (not a lock wait or a cancelled statement)
                self._down_until = time.monotonic() + FAIL_FAST_SECONDS
            raise DatabaseUnavailable(f"the state database is unavailable: {self._down_reason}") from exc

    def stream(self, sql: str, params: Sequence[Any] = ()) -> Iterator[Any]:
        with self._connections().connection() as conn, conn.transaction():
            with conn.cursor(name="bia_stream") as cursor:
                cursor.itersize = 2000
                cursor.execute(to_postgres(sql), tuple(params))
                yield from cursor

    def close(self) -> None:
        if self._pool is not None and self._pid == os.getpid():
            self._pool.close()
        self._pool = None


def open_state_db(database_url: str | None, data_dir: Path) -> StateDB:
    """PostgreSQL when ``database_url`` (``postgresql://…``) is given, else ``data_dir/registry.sqlite``."""
    if database_url:
        if not database_url.startswith(("postgresql://", "postgres://")):
            raise ValueError(f"BIA_DATABASE_URL={database_url!r} is not a postgresql:// URL")
        return PostgresStateDB(database_url)
    return SqliteStateDB(Path(data_dir) / "registry.sqlite")


__all__ = ["DatabaseUnavailable", "PostgresStateDB", "Row", "SqliteStateDB", "StateDB", "open_state_db", "to_postgres"]
