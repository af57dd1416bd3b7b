"""File tables: one SQLite file per study, every file-list column filterable, sortable and facetable.

A study's table is built from a stream of row dicts (``path``, ``size``, ``format``, ``file_id`` and any
file-list columns; new columns may appear at any row) into a temporary file, indexed, then swapped in with
``os.replace``: readers see the old table or the new one. Values that are canonical numbers (``12``, ``0.5``)
are stored as numbers, so numeric ranges and sorts work; everything else stays text.

Paging is keyset-based: a page's ``next_cursor`` encodes the sort value and row id of its last row, so page
10 000 of a 1.3 M-row table costs what page 1 does.

A published table is shared by every node of a site (:mod:`catalog.file_tables`): a pointer in the state database
names it by its SHA-256, the file store holds it, and each node keeps a local copy, fetched when it lacks the one
the pointer names. Whether a study has a table, its counts and the commit it was built for come from the pointer.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import os
import re
import sqlite3
import threading
import uuid
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

from catalog.errors import CatalogError, NotFound
from catalog.file_store import FileStore
from catalog.file_tables import POINTER_SECONDS, SharedTables, TablePointer, table_facts
from catalog.identifiers import check_accession
from catalog.state_db import SqliteStateDB, StateDB

#: ``type``: ``file``, or ``directory`` for a folder listed as one entry (see ``catalog.study_files.StudyFile``)
FIXED_COLUMNS = ("path", "size", "format", "file_id", "type")
#: what a table holds, counted up when that changes (2: the fixed column ``type``); tables of an older layout are
#: rebuilt from their own rows in the background (:meth:`FileIndex.upgrade`)
TABLE_LAYOUT = 2
#: Columns kept as text even when a value looks like a number.
TEXT_COLUMNS = frozenset({"path", "format", "file_id", "type"})
OPERATORS = ("eq", "ne", "prefix", "gt", "gte", "lt", "lte")
#: Columns with at most this many distinct values get their unfiltered facet counts stored at build time.
CACHED_FACET_DISTINCT = 2000
_BATCH = 20_000
_OPEN_TABLES = 64
_INT = re.compile(r"-?(?:0|[1-9][0-9]{0,17})\Z")


class UnknownColumn(CatalogError):
    status = 400
    code = "unknown_column"


class InvalidCursor(CatalogError):
    status = 400
    code = "invalid_cursor"


class InvalidFilter(CatalogError):
    status = 400
    code = "invalid_filter"


@dataclass(frozen=True)
class Filter:
    """``column op value``; several ``eq`` filters on one column mean any of the values."""

    column: str
    op: str
    value: Any


@dataclass
class Column:
    name: str
    kind: str  # "number" | "text"
    distinct: int


@dataclass
class FilePage:
    items: list[dict[str, Any]]
    total: int
    next_cursor: str | None


def typed(value: Any) -> Any:
    """A cell as stored: canonical numbers become numbers, empty becomes NULL, the rest text."""
    if value is None or isinstance(value, (int, float)) and not isinstance(value, bool):
        return value
    text = str(value)
    if text == "":
        return None
    if _INT.match(text):
        return int(text)
    if text[0].isdigit() or (text[0] == "-" and text[1:2].isdigit()):
        try:
            number = float(text)
        except ValueError:
            return text
        if repr(number) == text:
            return number
    return text


class _Table:
    """An open study table."""

    def __init__(self, path: Path, digest: str) -> None:
        self.path = path
        self.digest = digest
        self.inode = path.stat().st_ino
        self.lock = threading.RLock()
        self.db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False)
        self.columns: dict[str, tuple[str, str, int]] = {
            name: (f"c{idx}", kind, distinct)
            for idx, name, kind, distinct in self.db.execute("SELECT idx, name, kind, n_distinct FROM columns ORDER BY idx")
        }
        self.meta = dict(self.db.execute("SELECT key, value FROM meta"))
        self.total = int(self.meta.get("files", 0))
        self.bytes = int(self.meta.get("bytes", 0))

    def sql_column(self, name: str) -> str:
        if name not in self.columns:
            raise UnknownColumn(
                f"no column {name!r} in this file table; columns are: {', '.join(self.columns)}",
                [{"field": name, "message": "unknown column"}],
            )
        return self.columns[name][0]

    def close(self) -> None:
        self.db.close()


@dataclass
class StagedTable:
    """A built study table not yet visible."""

    index: "FileIndex"
    accession: str
    path: Path
    rows: int

    def publish(self) -> None:
        """Make it the study's table on every node (see :meth:`SharedTables.publish`)."""
        self.index.tables.publish(self.accession, self.path)
        self.path.unlink(missing_ok=True)
        self.index._forget(self.accession)

    def discard(self) -> None:
        self.path.unlink(missing_ok=True)


#: where a file index made without a state database keeps its pointers (in its own folder)
OWN_POINTERS = ".file-tables.sqlite"


class FileIndex:
    """The file tables of one catalog view: pointers in ``state`` (rows of ``view``), tables in ``store`` (see
    :mod:`catalog.file_tables`), local copies in ``directory``. Without a state database the index keeps its
    pointers in its folder (a catalog of its own, for tools and benchmarks)."""

    def __init__(
        self,
        directory: Path,
        state: StateDB | None = None,
        view: str = "public",
        store: FileStore | None = None,
        pointer_seconds: float = POINTER_SECONDS,
    ) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self._own_state = state is None
        if state is None:
            from catalog.state_schema import ensure_schema

            state = SqliteStateDB(self.directory / OWN_POINTERS)
            ensure_schema(state)
        self.tables = SharedTables(self.directory, state, view, store, pointer_seconds)
        self._open: OrderedDict[str, _Table] = OrderedDict()
        self._lock = threading.Lock()
        self.tables.adopt_legacy(_is_accession)

    def _check(self, accession: str) -> str:
        if not _is_accession(accession):
            raise NotFound(f"no file table for {accession!r}")
        return accession

    def _pointer(self, accession: str, fresh: bool = False) -> TablePointer | None:
        return self.tables.pointer(self._check(accession), fresh)

    # ---------------------------------------------------------------- building

    def replace_study(self, accession: str, rows: Iterable[dict[str, Any]], commit: str | None = None) -> int:
        """Build the study's table from ``rows`` (streamed) and publish it; returns the row count."""
        staged = self.build_study(accession, rows, commit=commit)
        staged.publish()
        return staged.rows

    def build_study(self, accession: str, rows: Iterable[dict[str, Any]], commit: str | None = None) -> "StagedTable":
        """Build the study's table beside the live one; it replaces it when :meth:`StagedTable.publish` is called.

        With a ``commit`` id the finished table is kept as ``.<accession>.<commit>.ready`` (and says which commit it
        belongs to), so recovery on this node can publish it after a crash instead of building it again."""
        self._check(accession)
        tmp = self.directory / f".{accession}.{uuid.uuid4().hex}.tmp"
        try:
            count = _build(tmp, rows, {"commit": commit} if commit else {})
            if commit:
                ready = self._ready_path(accession, commit)
                os.replace(tmp, ready)
                tmp = ready
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return StagedTable(self, accession, tmp, count)

    def _ready_path(self, accession: str, commit: str) -> Path:
        return self.directory / f".{self._check(accession)}.{commit}.ready"

    def ready_table(self, accession: str, commit: str) -> "StagedTable | None":
        """The finished, unpublished table built for ``commit`` on this node (None if there is none)."""
        path = self._ready_path(accession, commit)
        return StagedTable(self, accession, path, -1) if path.exists() else None

    def outdated(self) -> list[str]:
        """The studies whose table was built with an older :data:`TABLE_LAYOUT`."""
        return self.tables.older_than(TABLE_LAYOUT)

    def upgrade(self, accession: str) -> bool:
        """Rebuild the study's table, if it is of an older layout, from its own rows as this layout has them (a table
        from before layout 2 lists no folder: each row is a file, and a file-list column ``type`` is kept as ``type
        (file list)``); published only in place of the table it was read from. Whether it was rebuilt."""
        pointer = self._pointer(accession, fresh=True)
        if pointer is None:
            return False
        path, _ = self.tables.local(accession, fresh=True)
        if int(table_facts(path).get("layout", 1)) >= TABLE_LAYOUT:
            return False

        def upgraded() -> Iterator[dict[str, Any]]:
            for row in self.iter_rows(accession):
                if "type" in row:
                    row["type (file list)"] = row.pop("type")
                yield {**row, "type": "file"}

        tmp = self.directory / f".{accession}.{uuid.uuid4().hex}.tmp"
        try:
            _build(tmp, upgraded(), {"commit": pointer.commit} if pointer.commit else {})
            self.tables.publish(accession, tmp, instead_of=pointer.digest)
        except NotFound:
            return False
        finally:
            tmp.unlink(missing_ok=True)
            self._forget(accession)
        return True

    def commit_of(self, accession: str) -> str | None:
        """The commit the study's published table was built for (None: unknown, or no table); read now, for
        recovery."""
        pointer = self._pointer(accession, fresh=True)
        return pointer.commit if pointer else None

    def discard_staged(self, accession: str) -> None:
        """Remove tables built for the study and never published (left by failed or interrupted commits)."""
        for leftover in self.directory.glob(f".{accession}.*"):
            if leftover.suffix in (".tmp", ".ready"):
                leftover.unlink(missing_ok=True)

    def delete_study(self, accession: str) -> None:
        self.tables.remove(self._check(accession))
        self._forget(accession)

    def has_study(self, accession: str) -> bool:
        return _is_accession(accession) and self._pointer(accession) is not None

    def studies(self) -> list[str]:
        return self.tables.accessions()

    def format_counts(self) -> dict[str, int]:
        """Files of every study by format, summed (from the pointers: no table is fetched), most frequent first."""
        counts, missing = self.tables.formats()
        for accession in missing:
            for value, n in self.facets(accession, ["format"], limit=1000).get("format", []):
                name = str(value) if value not in (None, "") else "(unknown)"
                counts[name] = counts.get(name, 0) + n
        return dict(sorted(counts.items(), key=lambda kv: -kv[1]))

    def _forget(self, accession: str) -> None:
        with self._lock:
            table = self._open.pop(accession, None)
        if table is not None:
            table.close()

    def _table(self, accession: str) -> _Table:
        """The study's published table, open (fetched first if this node lacks it)."""
        for attempt in range(3):
            path, pointer = self.tables.local(self._check(accession), fresh=attempt > 0)
            try:
                return self._opened(accession, path, pointer.digest)
            except (FileNotFoundError, sqlite3.OperationalError):
                if attempt == 2:  # replaced by a newer publish between the lookup and the open: look again
                    raise
        raise AssertionError("unreachable")

    def _opened(self, accession: str, path: Path, digest: str) -> _Table:
        inode = path.stat().st_ino
        with self._lock:
            table = self._open.get(accession)
            if table is not None and table.inode == inode and table.digest == digest:
                self._open.move_to_end(accession)
                return table
            if table is not None:
                table.close()
                del self._open[accession]
            table = _Table(path, digest)
            self._open[accession] = table
            while len(self._open) > _OPEN_TABLES:
                self._open.popitem(last=False)[1].close()
            return table

    def close(self) -> None:
        with self._lock:
            for table in self._open.values():
                table.close()
            self._open.clear()
        if self._own_state:
            self.tables.state.close()

    # ---------------------------------------------------------------- reading

    def columns(self, accession: str) -> list[Column]:
        table = self._table(accession)
        return [Column(name, kind, distinct) for name, (_, kind, distinct) in table.columns.items()]

    def _where(
        self, table: _Table, filters: Sequence[Filter], skip_column: str | None = None, as_value: bool = False
    ) -> tuple[str, list]:
        """SQL condition and parameters; ``as_value`` writes every column as ``value`` (for ``facet_cache``)."""
        clauses, params = [], []
        equal: dict[str, list[Any]] = {}
        for f in filters:
            if f.op not in OPERATORS:
                raise InvalidFilter(f"unknown filter operator {f.op!r}; use one of {', '.join(OPERATORS)}")
            column = "value" if as_value else table.sql_column(f.column)
            if f.column == skip_column:
                continue
            value = str(f.value) if f.column in TEXT_COLUMNS else typed(f.value)
            kind = table.columns[f.column][1]
            if f.op in ("gt", "gte", "lt", "lte") and kind == "number" and not isinstance(value, (int, float)):
                raise InvalidFilter(
                    f"column {f.column!r} holds numbers; {f.value!r} is not one",
                    [{"field": f.column, "message": "not a number"}],
                )
            if f.op == "eq":
                equal.setdefault(column, []).append(value)
            elif f.op == "ne":
                clauses.append(f"({column} IS NULL OR {column} != ?)")
                params.append(value)
            elif f.op == "prefix":
                text = str(f.value)
                clauses.append(f"({column} >= ? AND {column} < ?)")
                params.extend([text, text + "\U0010ffff"])
            else:
                clauses.append(f"{column} {dict(gt='>', gte='>=', lt='<', lte='<=')[f.op]} ?")
                params.append(value)
        for column, values in equal.items():
            if values == [None]:
                clauses.append(f"{column} IS NULL")
            else:
                clauses.append(f"{column} IN ({', '.join('?' * len(values))})")
                params.extend(values)
        return " AND ".join(clauses) or "1", params

    def query(
        self,
        accession: str,
        filters: Sequence[Filter] = (),
        sort: Sequence[tuple[str, bool]] = (),
        limit: int = 100,
        cursor: str | None = None,
    ) -> FilePage:
        """One page of the filtered, sorted table; ``sort`` is ``[(column, descending)]`` (one column)."""
        table = self._table(accession)
        if len(sort) > 1:
            raise InvalidFilter("sort on one column at a time")
        where, params = self._where(table, filters)
        column, descending = (table.sql_column(sort[0][0]), bool(sort[0][1])) if sort else ("rowid", False)
        keyset, known_total = "1", None
        keyset_params: list[Any] = []
        signature = _query_signature(accession, filters, sort)
        if cursor:
            last_value, last_id, known_total = _decode_cursor(cursor, signature)
            keyset, keyset_params = _after(column, descending, last_value, last_id)
        direction = "DESC" if descending else "ASC"
        order = f"{column} {direction}, rowid {direction}" if column != "rowid" else f"rowid {direction}"
        names = list(table.columns)
        select = ", ".join(table.columns[n][0] for n in names)
        with table.lock:
            rows = table.db.execute(
                f"SELECT rowid, {column}, {select} FROM files WHERE {where} AND {keyset} ORDER BY {order} LIMIT ?",
                [*params, *keyset_params, limit + 1],
            ).fetchall()
            if where == "1":
                total = table.total
            elif known_total is not None:  # later pages carry the count the first page made
                total = known_total
            elif (cached := self._cached_totals(table, filters)) is not None:
                total = cached[0]
            else:
                source = self._count_source(table, filters)
                total = table.db.execute(f"SELECT COUNT(*) FROM {source} WHERE {where}", params).fetchone()[0]
        more = len(rows) > limit
        rows = rows[:limit]
        items = [{n: v for n, v in zip(names, row[2:]) if v is not None} for row in rows]
        next_cursor = _encode_cursor(rows[-1][1], rows[-1][0], total, signature) if more and rows else None
        return FilePage(items, total, next_cursor)

    def facets(
        self, accession: str, columns: Sequence[str], filters: Sequence[Filter] = (), limit: int = 50
    ) -> dict[str, list[tuple[Any, int]]]:
        """Value counts per column over the rows matching the filters on the *other* columns (a column named twice
        is counted once: each count may read the whole table)."""
        table = self._table(accession)
        out: dict[str, list[tuple[Any, int]]] = {}
        for name in dict.fromkeys(columns):
            column = table.sql_column(name)
            where, params = self._where(table, filters, skip_column=name)
            with table.lock:
                if where == "1" and table.columns[name][2] <= CACHED_FACET_DISTINCT:
                    rows = table.db.execute(
                        "SELECT value, n FROM facet_cache WHERE col = ? ORDER BY n DESC, value LIMIT ?", (name, limit)
                    ).fetchall()
                else:
                    rows = table.db.execute(
                        f"SELECT {column} AS v, COUNT(*) AS n FROM files WHERE {where} AND {column} IS NOT NULL"
                        " GROUP BY v ORDER BY n DESC, v LIMIT ?",
                        [*params, limit],
                    ).fetchall()
            out[name] = [(v, n) for v, n in rows]
        return out

    def _count_source(self, table: _Table, filters: Sequence[Filter]) -> str:
        """How to read rows for a count over several filtered columns: through the index of the most selective
        filter (estimated from the stored facet counts), or one sequential scan; random row lookups through an
        unselective index cost ten times a scan."""
        columns = {f.column for f in filters}
        if len(columns) < 2:
            return "files"
        best: tuple[float, str] | None = None
        for column in columns:
            if column not in table.columns or table.columns[column][2] > CACHED_FACET_DISTINCT:
                continue
            mine = [f for f in filters if f.column == column]
            where, params = self._where(table, mine, as_value=True)
            with table.lock:
                (estimate,) = table.db.execute(
                    f"SELECT TOTAL(n) FROM facet_cache WHERE col = ? AND {where}", [column, *params]
                ).fetchone()
            if best is None or estimate < best[0]:
                best = (estimate, table.columns[column][0])
        if best is not None and best[0] < 0.3 * max(1, table.total):
            return f"files INDEXED BY i{best[1][1:]}"
        return "files NOT INDEXED"

    @staticmethod
    def _cached_totals(table: _Table, filters: Sequence[Filter]) -> tuple[int, int] | None:
        """Counts of a filter that is equality on one column with stored facet counts (the common case)."""
        if not filters or any(f.op != "eq" for f in filters) or len({f.column for f in filters}) != 1:
            return None
        column = filters[0].column
        if column not in table.columns or table.columns[column][2] > CACHED_FACET_DISTINCT:
            return None
        values = list(dict.fromkeys(str(f.value) if column in TEXT_COLUMNS else typed(f.value) for f in filters))
        if None in values:
            return None
        with table.lock:
            n, size = table.db.execute(
                f"SELECT TOTAL(n), TOTAL(bytes) FROM facet_cache WHERE col = ? AND value IN ({', '.join('?' * len(values))})",
                [column, *values],
            ).fetchone()
        return int(n), int(size)

    def totals(self, accession: str, filters: Sequence[Filter] = ()) -> dict[str, int]:
        """Files and bytes of the rows matching the filters (of the whole table: from its pointer)."""
        if not filters:
            pointer = self._pointer(accession)
            if pointer is None:
                raise NotFound(f"no file table for study {accession}")
            return {"files": pointer.files, "bytes": pointer.bytes}
        table = self._table(accession)
        where, params = self._where(table, filters)
        if where == "1":
            return {"files": table.total, "bytes": table.bytes}
        cached = self._cached_totals(table, filters)
        if cached is not None:
            return {"files": cached[0], "bytes": cached[1]}
        source = self._count_source(table, filters)
        with table.lock:
            n, size = table.db.execute(f"SELECT COUNT(*), TOTAL(c1) FROM {source} WHERE {where}", params).fetchone()
        return {"files": n, "bytes": int(size)}

    def iter_rows(
        self, accession: str, filters: Sequence[Filter] = (), batch: int = 5000, sort: Sequence[tuple[str, bool]] = ()
    ) -> Iterator[dict[str, Any]]:
        """Every matching row in table order, or ``sort``'s (streamed by keyset pages)."""
        cursor = None
        while True:
            page = self.query(accession, filters, sort, limit=batch, cursor=cursor)
            yield from page.items
            if not page.next_cursor:
                return
            cursor = page.next_cursor

    def get(self, accession: str, file_id: str) -> dict[str, Any] | None:
        """One row by its ``file_id``."""
        page = self.query(accession, [Filter("file_id", "eq", file_id)], limit=1)
        return page.items[0] if page.items else None


def _is_accession(accession: str) -> bool:
    try:
        check_accession(accession)
    except ValueError:
        return False
    return True


# ---------------------------------------------------------------------- keyset cursors


def _query_signature(accession: str, filters: Sequence[Filter], sort: Sequence[tuple[str, bool]]) -> str:
    """What a cursor continues: its study, filters and sort (a cursor used with others would page wrongly)."""
    query = [accession, sorted([f.column, f.op, str(f.value)] for f in filters), [[c, bool(d)] for c, d in sort]]
    return hashlib.sha256(json.dumps(query).encode()).hexdigest()[:12]


def _encode_cursor(value: Any, rowid: int, total: int, signature: str) -> str:
    data = json.dumps([value, rowid, total, signature], separators=(",", ":"))
    return base64.urlsafe_b64encode(data.encode()).decode().rstrip("=")


_SQLITE_INT = range(-(2**63), 2**63)


def _storable(value: Any) -> bool:
    """Whether ``value`` is a cell value this table could hold (what a cursor it issued can carry)."""
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return value in _SQLITE_INT
    return value is None or isinstance(value, str) or isinstance(value, float) and math.isfinite(value)


def _decode_cursor(cursor: str, signature: str) -> tuple[Any, int, int | None]:
    try:
        value, rowid, total, issued_for = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        if not (
            _storable(value)
            and isinstance(rowid, int)
            and isinstance(total, int)
            and _storable(rowid)
            and total in _SQLITE_INT
            and total >= 0
        ):
            raise ValueError
    except (ValueError, TypeError) as exc:
        raise InvalidCursor("the cursor is not one this table issued; start again without it") from exc
    if issued_for != signature:
        raise InvalidCursor("the cursor belongs to another query (study, filters or sort); start again without it")
    return value, rowid, total


def _after(column: str, descending: bool, value: Any, rowid: int) -> tuple[str, list]:
    """Rows strictly after (value, rowid) in the order ``column [DESC], rowid [DESC]`` (NULLs sort lowest)."""
    if column == "rowid":
        return ("rowid < ?" if descending else "rowid > ?"), [rowid]
    if not descending:
        if value is None:
            return f"(({column} IS NULL AND rowid > ?) OR {column} IS NOT NULL)", [rowid]
        return f"({column} > ? OR ({column} = ? AND rowid > ?))", [value, value, rowid]
    if value is None:
        return f"({column} IS NULL AND rowid < ?)", [rowid]
    return f"({column} < ? OR ({column} = ? AND rowid < ?) OR {column} IS NULL)", [value, value, rowid]


# ---------------------------------------------------------------------- building


def _build(path: Path, rows: Iterable[dict[str, Any]], meta: dict[str, Any] | None = None) -> int:
    db = sqlite3.connect(str(path), isolation_level=None)
    try:
        db.execute("PRAGMA journal_mode=OFF")
        db.execute("PRAGMA synchronous=OFF")
        db.execute("PRAGMA cache_size=-200000")
        db.execute("CREATE TABLE meta(key TEXT PRIMARY KEY, value)")
        db.execute("CREATE TABLE columns(idx INTEGER PRIMARY KEY, name TEXT UNIQUE NOT NULL, kind TEXT, n_distinct INTEGER)")
        db.execute("CREATE TABLE facet_cache(col TEXT NOT NULL, value, n INTEGER NOT NULL, bytes INTEGER NOT NULL)")
        db.execute(f"CREATE TABLE files({', '.join(f'c{i}' for i in range(len(FIXED_COLUMNS)))})")
        names: dict[str, int] = {name: i for i, name in enumerate(FIXED_COLUMNS)}
        numeric: dict[str, bool] = {name: True for name in names}
        count = total_bytes = 0
        batch: list[list[Any]] = []
        width = len(names)

        def flush() -> None:
            if batch:
                marks = ", ".join("?" * width)
                db.executemany(
                    f"INSERT INTO files({', '.join(f'c{i}' for i in range(width))}) VALUES ({marks})",
                    [r + [None] * (width - len(r)) for r in batch],
                )
                batch.clear()

        db.execute("BEGIN")
        for row in rows:
            values: list[Any] = [None] * width
            for key, raw in row.items():
                idx = names.get(key)
                if idx is None:
                    flush()
                    idx = names[key] = width
                    db.execute(f"ALTER TABLE files ADD COLUMN c{idx}")
                    numeric[key] = True
                    width += 1
                    values.append(None)
                value = (str(raw) if raw is not None else None) if key in TEXT_COLUMNS else typed(raw)
                if value is not None and numeric[key] and not isinstance(value, (int, float)):
                    numeric[key] = False
                values[idx] = value
            if isinstance(values[1], (int, float)):
                total_bytes += int(values[1])
            batch.append(values)
            count += 1
            if len(batch) >= _BATCH:
                flush()
        flush()
        db.execute("COMMIT")
        db.execute("BEGIN")
        for name, idx in names.items():
            # the size rides along in every index, so totals of a filtered table never touch the rows
            db.execute(f"CREATE INDEX i{idx} ON files(c{idx}, c1)" if idx != 1 else "CREATE INDEX i1 ON files(c1)")
            distinct = db.execute(f"SELECT COUNT(DISTINCT c{idx}) FROM files").fetchone()[0]
            kind = "number" if numeric[name] and distinct else "text"
            db.execute("INSERT INTO columns VALUES (?, ?, ?, ?)", (idx, name, kind, distinct))
            if distinct <= CACHED_FACET_DISTINCT:
                db.execute(
                    f"INSERT INTO facet_cache SELECT ?, c{idx}, COUNT(*), TOTAL(c1) FROM files WHERE c{idx} IS NOT NULL GROUP BY c{idx}",
                    (name,),
                )
        db.execute("CREATE INDEX facet_cache_col ON facet_cache(col, n)")
        db.execute("CREATE INDEX facet_cache_value ON facet_cache(col, value)")
        facts = [("files", count), ("bytes", total_bytes), ("layout", TABLE_LAYOUT), *(meta or {}).items()]
        db.executemany("INSERT INTO meta VALUES (?, ?)", facts)
        db.execute("COMMIT")
        db.execute("ANALYZE")
    finally:
        db.close()
    with path.open("rb") as handle:
        os.fsync(handle.fileno())
    return count
