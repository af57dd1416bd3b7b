"""Keyword search over studies: SQLite FTS5 with BM25 ranking, phrases, fielded queries, snippets and facets.

Query language (what ``/search?q=`` accepts)::

    zebrafish confocal          both words (any field)
    "light sheet"               a phrase
    kin*                        a prefix
    title:mitochondria          a word (or "phrase") in one field: accession, title, description, keywords,
    organism:"Mus musculus"     authors, organism, imaging_method, source
    actin OR tubulin            either (AND binds tighter than OR)
    -mouse   NOT mouse          exclude

Facet filters (organism, imaging_method, licence, release_year, source) are exact values passed apart from the
query. The index is derived: :meth:`SearchIndex.replace_all` rebuilds it in one transaction.
"""
from __future__ import annotations

import html
import json
import re
import sqlite3
import threading
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterable, Mapping, Sequence

from catalog.errors import CatalogError

#: Full-text columns, in FTS5 order, with their BM25 weights.
TEXT_FIELDS: dict[str, float] = {
    "accession": 20.0,
    "title": 6.0,
    "description": 1.0,
    "keywords": 4.0,
    "authors": 3.0,
    "organism": 3.0,
    "imaging_method": 3.0,
    "source": 1.0,
}
FIELD_ALIASES = {
    "keyword": "keywords",
    "author": "authors",
    "organisms": "organism",
    "imaging_methods": "imaging_method",
    "method": "imaging_method",
}
FACET_FIELDS = ("organism", "imaging_method", "licence", "release_year", "source")
SORTS = ("relevance", "newest", "oldest", "title", "accession")
_MARK_OPEN, _MARK_CLOSE = "\x02", "\x03"


class InvalidQuery(CatalogError):
    status = 400
    code = "invalid_query"


@dataclass
class StudyDocument:
    """What search knows about one study."""

    accession: str
    title: str
    description: str = ""
    keywords: list[str] = field(default_factory=list)
    authors: list[str] = field(default_factory=list)
    organisms: list[str] = field(default_factory=list)
    imaging_methods: list[str] = field(default_factory=list)
    licence: str | None = None
    release_date: str | None = None
    source: str | None = None
    file_count: int = 0
    total_size: int = 0

    def facet_values(self) -> Iterable[tuple[str, str]]:
        for value in self.organisms:
            yield "organism", value
        for value in self.imaging_methods:
            yield "imaging_method", value
        if self.licence:
            yield "licence", self.licence
        if self.release_date:
            yield "release_year", self.release_date[:4]
        if self.source:
            yield "source", self.source


@dataclass
class SearchHit:
    accession: str
    title: str
    score: float
    snippets: dict[str, str]
    document: StudyDocument


@dataclass
class SearchResult:
    total: int
    hits: list[SearchHit]
    facets: dict[str, list[tuple[str, int]]]


# ---------------------------------------------------------------------- query parsing

_TOKEN = re.compile(r'\s*(?:(-)?(?:([A-Za-z_]+):)?(?:"([^"]*)"|([^\s"]+))|(".*))')


def _fts_string(text: str) -> str:
    return '"' + text.replace('"', '""') + '"'


def parse_query(q: str) -> tuple[str, list[str]]:
    """The FTS5 MATCH expression of the positive clauses, and one expression per excluded clause."""
    positive: list[str] = []
    negative: list[str] = []
    pending_op = "AND"
    negate_next = False
    pos = 0
    q = q.strip()
    while pos < len(q):
        m = _TOKEN.match(q, pos)
        if not m or m.end() == pos:
            raise InvalidQuery(f"cannot read the query at character {pos + 1}: {q[pos:pos + 20]!r}")
        pos = m.end()
        minus, fieldname, phrase, word, unbalanced = m.groups()
        if unbalanced is not None:
            raise InvalidQuery("the query has an unbalanced double quote")
        if phrase is None and fieldname is None and not minus and word in ("OR", "AND", "NOT"):
            if word == "NOT":
                negate_next = True
            else:
                pending_op = word
            continue
        text = phrase if phrase is not None else word
        prefix = phrase is None and text.endswith("*") and len(text) > 1
        if prefix:
            text = text.rstrip("*")
        if not any(ch.isalnum() for ch in text):
            continue
        expr = _fts_string(text) + ("*" if prefix else "")
        if fieldname is not None:
            name = FIELD_ALIASES.get(fieldname.lower(), fieldname.lower())
            if name not in TEXT_FIELDS:
                raise InvalidQuery(
                    f"unknown search field {fieldname!r}; fields are: {', '.join(TEXT_FIELDS)}",
                    [{"field": "q", "message": f"unknown field {fieldname}"}],
                )
            expr = f"{name} : {expr}"
        if minus or negate_next:
            negative.append(expr)
        else:
            if positive:
                positive.append(pending_op)
            positive.append(expr)
        pending_op, negate_next = "AND", False
    return " ".join(positive), negative


def _marked(text: str) -> str:
    return html.escape(text).replace(_MARK_OPEN, "<mark>").replace(_MARK_CLOSE, "</mark>")


# ---------------------------------------------------------------------- the index

_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS docs(
    id INTEGER PRIMARY KEY, accession TEXT UNIQUE NOT NULL, release_date TEXT, title TEXT, doc TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS docs_release ON docs(release_date, accession);
CREATE VIRTUAL TABLE IF NOT EXISTS fts USING fts5({", ".join(TEXT_FIELDS)}, tokenize="unicode61 remove_diacritics 2");
CREATE TABLE IF NOT EXISTS facets(doc_id INTEGER NOT NULL, field TEXT NOT NULL, value TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS facets_doc ON facets(doc_id, field, value);
CREATE INDEX IF NOT EXISTS facets_value ON facets(field, value, doc_id);
"""


class SearchIndex:
    """The search index of one catalog view, in a SQLite file."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._db = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        self._facet_cache: dict[tuple, dict[str, list[tuple[str, int]]]] = {}

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # ---------------------------------------------------------------- writing

    def _insert(self, doc: StudyDocument) -> None:
        db = self._db
        old = db.execute("SELECT id FROM docs WHERE accession = ?", (doc.accession,)).fetchone()
        if old:
            self._remove(old[0])
        cur = db.execute(
            "INSERT INTO docs(accession, release_date, title, doc) VALUES (?, ?, ?, ?)",
            (doc.accession, doc.release_date, doc.title.lower(), json.dumps(asdict(doc))),
        )
        doc_id = cur.lastrowid
        db.execute(
            f"INSERT INTO fts(rowid, {', '.join(TEXT_FIELDS)}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                doc_id,
                doc.accession,
                doc.title,
                doc.description,
                "\n".join(doc.keywords),
                "\n".join(doc.authors),
                "\n".join(doc.organisms),
                "\n".join(doc.imaging_methods),
                doc.source or "",
            ),
        )
        db.executemany(
            "INSERT INTO facets(doc_id, field, value) VALUES (?, ?, ?)",
            [(doc_id, f, v) for f, v in dict.fromkeys(doc.facet_values())],
        )

    def _remove(self, doc_id: int) -> None:
        self._db.execute("DELETE FROM fts WHERE rowid = ?", (doc_id,))
        self._db.execute("DELETE FROM facets WHERE doc_id = ?", (doc_id,))
        self._db.execute("DELETE FROM docs WHERE id = ?", (doc_id,))

    def upsert(self, doc: StudyDocument) -> None:
        self.upsert_many([doc])

    def upsert_many(self, docs: Iterable[StudyDocument]) -> int:
        n = 0
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                for doc in docs:
                    self._insert(doc)
                    n += 1
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return n

    def delete(self, accession: str) -> None:
        with self._lock:
            row = self._db.execute("SELECT id FROM docs WHERE accession = ?", (accession,)).fetchone()
            if row:
                self._db.execute("BEGIN IMMEDIATE")
                self._remove(row[0])
                self._db.execute("COMMIT")

    def replace_all(self, docs: Iterable[StudyDocument]) -> int:
        """Rebuild the whole index from ``docs`` in one transaction (readers see the old or the new)."""
        n = 0
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                for table in ("docs", "fts", "facets"):
                    self._db.execute(f"DELETE FROM {table}")
                for doc in docs:
                    self._insert(doc)
                    n += 1
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("INSERT INTO fts(fts) VALUES ('optimize')")
        return n

    # ---------------------------------------------------------------- reading

    def count(self) -> int:
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM docs").fetchone()[0]

    def get(self, accession: str) -> StudyDocument | None:
        with self._lock:
            row = self._db.execute("SELECT doc FROM docs WHERE accession = ?", (accession,)).fetchone()
        return StudyDocument(**json.loads(row[0])) if row else None

    def accessions(self) -> list[str]:
        with self._lock:
            return [r[0] for r in self._db.execute("SELECT accession FROM docs ORDER BY accession")]

    def search(
        self,
        q: str = "",
        filters: Mapping[str, Sequence[str]] | None = None,
        sort: str = "relevance",
        limit: int = 20,
        offset: int = 0,
        facet_fields: Sequence[str] = FACET_FIELDS,
        facet_limit: int = 20,
    ) -> SearchResult:
        """Studies matching ``q`` and the facet ``filters``; facet counts over all matches."""
        if sort not in SORTS:
            raise InvalidQuery(f"unknown sort {sort!r}; choose one of {', '.join(SORTS)}")
        for name in list(filters or {}) + list(facet_fields):
            if name not in FACET_FIELDS:
                raise InvalidQuery(f"unknown facet {name!r}; facets are: {', '.join(FACET_FIELDS)}")
        match, excluded = parse_query(q or "")
        # the matching ids: FTS matches (or every study), minus exclusions, within the facet filters
        extra, extra_params = [], []
        for expr in excluded:
            extra.append("{id} NOT IN (SELECT rowid FROM fts WHERE fts MATCH ?)")
            extra_params.append(expr)
        for name, values in (filters or {}).items():
            values = [values] if isinstance(values, str) else list(values)
            if values:
                marks = ", ".join("?" * len(values))
                extra.append(f"{{id}} IN (SELECT doc_id FROM facets WHERE field = ? AND value IN ({marks}))")
                extra_params.extend([name, *values])
        if match:
            ids = "SELECT rowid FROM fts WHERE fts MATCH ?" + "".join(" AND " + e.format(id="rowid") for e in extra)
            ids_params = [match, *extra_params]
        else:
            ids = "SELECT id FROM docs" + (" WHERE " + " AND ".join(e.format(id="id") for e in extra) if extra else "")
            ids_params = list(extra_params)
        with self._lock:
            try:
                total = self._db.execute(f"SELECT COUNT(*) FROM ({ids})", ids_params).fetchone()[0]
                hits = self._hits(match, extra, extra_params, ids, ids_params, sort, limit, offset) if limit > 0 else []
                facets = self._facets(ids, ids_params, tuple(facet_fields), facet_limit) if facet_fields else {}
            except sqlite3.OperationalError as exc:
                raise InvalidQuery(f"cannot run the query: {exc}") from exc
        return SearchResult(total=total, hits=hits, facets=facets)

    def _hits(
        self, match: str, extra: list[str], extra_params: list, ids: str, ids_params: list, sort: str, limit: int, offset: int
    ) -> list[SearchHit]:
        if sort == "relevance" and not match:
            sort = "newest"
        order = {
            "newest": "d.release_date DESC, d.accession",
            "oldest": "d.release_date ASC, d.accession",
            "title": "d.title, d.accession",
            "accession": "d.accession",
            "relevance": "score, d.accession",
        }[sort]
        weights = ", ".join(str(w) for w in TEXT_FIELDS.values())
        if match:
            sql = (
                f"SELECT d.accession, d.doc, bm25(fts, {weights}) AS score,"
                f" snippet(fts, 1, '{_MARK_OPEN}', '{_MARK_CLOSE}', '…', 16),"
                f" snippet(fts, 2, '{_MARK_OPEN}', '{_MARK_CLOSE}', '…', 24)"
                " FROM fts JOIN docs d ON d.id = fts.rowid WHERE fts MATCH ?"
                + "".join(" AND " + e.format(id="fts.rowid") for e in extra)
                + f" ORDER BY {order} LIMIT ? OFFSET ?"
            )
            rows = self._db.execute(sql, [match, *extra_params, limit, offset]).fetchall()
        else:
            sql = f"SELECT d.accession, d.doc, 0.0, NULL, NULL FROM docs d WHERE d.id IN ({ids}) ORDER BY {order} LIMIT ? OFFSET ?"
            rows = self._db.execute(sql, [*ids_params, limit, offset]).fetchall()
        hits = []
        for accession, doc_json, score, title_snippet, description_snippet in rows:
            doc = StudyDocument(**json.loads(doc_json))
            snippets = {}
            if title_snippet and _MARK_OPEN in title_snippet:
                snippets["title"] = _marked(title_snippet)
            if description_snippet and _MARK_OPEN in description_snippet:
                snippets["description"] = _marked(description_snippet)
            hits.append(SearchHit(accession, doc.title, -float(score) if score else 0.0, snippets, doc))
        return hits

    def _facets(self, ids: str, ids_params: list, fields: tuple[str, ...], limit: int) -> dict[str, list[tuple[str, int]]]:
        """Value counts per facet field over the matching ids, in one pass; cached until the index changes."""
        version = self._db.execute("PRAGMA data_version").fetchone()[0], self._db.total_changes
        key = (version, ids, tuple(ids_params), fields, limit)
        cached = self._facet_cache.get(key)
        if cached is not None:
            return cached
        marks = ", ".join("?" * len(fields))
        rows = self._db.execute(
            f"SELECT field, value, COUNT(*) AS n FROM facets WHERE field IN ({marks}) AND doc_id IN ({ids})"
            " GROUP BY field, value",
            [*fields, *ids_params],
        ).fetchall()
        out: dict[str, list[tuple[str, int]]] = {name: [] for name in fields}
        for name, value, n in rows:
            out[name].append((value, n))
        for name in out:
            out[name] = sorted(out[name], key=lambda item: (-item[1], item[0]))[:limit]
        if len(self._facet_cache) > 256:
            self._facet_cache.clear()
        self._facet_cache[key] = out
        return out
