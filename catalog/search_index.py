"""Keyword search over studies: a tantivy index (BM25, phrases, fields, snippets, facets) plus a SQLite copy of the documents.

Query language (what ``/search?q=`` accepts)::

    zebrafish confocal          both words (any field)
    "light sheet"               a phrase
    kin*                        a prefix
    title:mitochondria          a word (or "phrase") in one field: accession, title, description, keywords,
    organism:"Mus musculus"     authors, organism, imaging_method, source
    actin OR tubulin            either (AND binds tighter than OR)
    -mouse   NOT mouse          exclude

Facet filters (organism, imaging_method, licence, release_year, source) are exact values passed apart from the
query. The index is derived: :meth:`SearchIndex.replace_all` rebuilds it in one commit. Layout of the folder:
``tantivy/`` (the full-text index; one writer at a time, readers see each commit whole) and ``docs.sqlite``
(each study's document, for listings and results).
"""
from __future__ import annotations

import html
import json
import re
import sqlite3
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterable, Iterator, Mapping, NamedTuple, Sequence

import tantivy

from catalog.errors import CatalogError

#: Full-text fields with their BM25 boosts.
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
SORTS = ("relevance", "newest", "oldest")
_WRITER_HEAP = 64_000_000


class SearchIndexBusy(CatalogError):
    status = 503
    code = "search_index_busy"


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


@dataclass
class Clause:
    """One word, phrase or prefix, in one field or any."""

    words: list[str]
    field: str | None = None
    prefix: bool = False


@dataclass
class ParsedQuery:
    """Positive clauses as OR-ed groups of AND-ed clauses, and excluded clauses."""

    groups: list[list[Clause]]
    excluded: list[Clause]


def words_of(text: str) -> list[str]:
    """The tokens tantivy's default tokenizer makes: alphanumeric runs, lower-cased."""
    return re.findall(r"[^\W_]+", text.lower())


#: limits that keep one query cheap: a prefix becomes a regular expression over every field, and every word a clause
MAX_PREFIX = 64
MAX_CLAUSES = 64


_OPERATORS = ("OR", "AND", "NOT")


class _Token(NamedTuple):
    """One token of a query: a word or phrase, maybe with a field and a leading ``-``."""

    negated: bool
    field: str | None
    text: str
    phrase: bool

    @property
    def operator(self) -> str | None:
        """``OR``, ``AND`` or ``NOT`` when the token is that bare word."""
        bare = not self.phrase and self.field is None and not self.negated
        return self.text if bare and self.text in _OPERATORS else None


def parse_query(q: str) -> ParsedQuery:
    """Parse the query language above; :class:`InvalidQuery` names what cannot be read."""
    groups: list[list[Clause]] = [[]]
    excluded: list[Clause] = []
    negate_next = False
    for token in _tokens(q.strip()):
        if token.operator == "NOT":
            negate_next = True
            continue
        if token.operator is not None:  # AND is the default; OR only between clauses
            if token.operator == "OR" and groups[-1]:
                groups.append([])
            continue
        clause = _clause_of(token)
        if clause is None:  # no words (``***``): a NOT before it carries over
            continue
        (excluded if token.negated or negate_next else groups[-1]).append(clause)
        negate_next = False
    clauses = sum(len(g) for g in groups) + len(excluded)
    if clauses > MAX_CLAUSES:
        raise InvalidQuery(f"the query has {clauses} words or phrases; at most {MAX_CLAUSES} are searched at once",
                           [{"field": "q", "message": "too many terms"}])
    return ParsedQuery([g for g in groups if g], excluded)


def _tokens(q: str) -> Iterator[_Token]:
    """The tokens of a (stripped) query, read one at a time: an error is raised when reading reaches it."""
    pos = 0
    while pos < len(q):
        m = _TOKEN.match(q, pos)
        if not m or m.end() == pos:
            raise InvalidQuery(f"cannot read the query at character {pos + 1}: {q[pos:pos + 20]!r}")
        pos = m.end()
        minus, fieldname, phrase, word, unbalanced = m.groups()
        if unbalanced is not None:
            raise InvalidQuery("the query has an unbalanced double quote")
        yield _Token(bool(minus), fieldname, phrase if phrase is not None else word, phrase is not None)


def _clause_of(token: _Token) -> Clause | None:
    """The clause of a word, phrase or prefix token (None when it holds no words)."""
    text = token.text
    prefix = not token.phrase and text.endswith("*") and len(text) > 1
    words = words_of(text.rstrip("*") if prefix else text)
    if not words:
        return None
    if prefix and len(words[-1]) > MAX_PREFIX:
        raise InvalidQuery(f"a prefix search (word*) takes at most {MAX_PREFIX} characters before the *",
                           [{"field": "q", "value": text[:40] + "…", "message": "prefix too long"}])
    return Clause(words, _field(token.field), prefix)


def _field(fieldname: str | None) -> str | None:
    """The text field a ``field:`` names (aliases resolved, any case); None for none."""
    if fieldname is None:
        return None
    name = FIELD_ALIASES.get(fieldname.lower(), fieldname.lower())
    if name not in TEXT_FIELDS:
        raise InvalidQuery(
            f"unknown search field {fieldname!r}; fields are: {', '.join(TEXT_FIELDS)}",
            [{"field": "q", "message": f"unknown field {fieldname}"}],
        )
    return name


# ---------------------------------------------------------------------- the index

_DOCS_SCHEMA = """
CREATE TABLE IF NOT EXISTS docs(accession TEXT PRIMARY KEY, release_date TEXT, doc TEXT NOT NULL);
"""


def _schema() -> tantivy.Schema:
    builder = tantivy.SchemaBuilder()
    builder.add_text_field("id", stored=True, tokenizer_name="raw")
    for name in TEXT_FIELDS:
        builder.add_text_field(name, stored=name in ("title", "description"))
    for name in FACET_FIELDS:
        builder.add_text_field(f"facet_{name}", tokenizer_name="raw", fast=True)
    builder.add_integer_field("released", fast=True, indexed=True)
    return builder.build()


class SearchIndex:
    """The search index of one catalog view, in a folder."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        (self.path / "tantivy").mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._schema = _schema()
        self._index = tantivy.Index(self._schema, path=str(self.path / "tantivy"), reuse=True)
        self._seen_commit = -1
        self._db = sqlite3.connect(str(self.path / "docs.sqlite"), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(_DOCS_SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # ---------------------------------------------------------------- writing

    def _document(self, doc: StudyDocument) -> tantivy.Document:
        fields: dict[str, object] = {
            "id": doc.accession,
            "accession": doc.accession,
            "title": doc.title,
            "description": doc.description,
            "keywords": "\n".join(doc.keywords),
            "authors": "\n".join(doc.authors),
            "organism": "\n".join(doc.organisms),
            "imaging_method": "\n".join(doc.imaging_methods),
            "source": doc.source or "",
            "released": int((doc.release_date or "0000-00-00")[:10].replace("-", "") or 0),
        }
        document = tantivy.Document(**fields)
        for name, value in dict.fromkeys(doc.facet_values()):
            document.add_text(f"facet_{name}", value)
        return document

    def _write(self, docs: Iterable[StudyDocument], delete: Iterable[str] = (), everything: bool = False) -> int:
        """Apply changes to both stores: SQLite in one transaction, tantivy in one commit."""
        n = 0
        with self._lock:
            writer = self._open_writer()
            self._db.execute("BEGIN IMMEDIATE")
            try:
                if everything:
                    writer.delete_all_documents()
                    self._db.execute("DELETE FROM docs")
                for accession in delete:
                    writer.delete_documents("id", accession)
                    self._db.execute("DELETE FROM docs WHERE accession = ?", (accession,))
                for doc in docs:
                    writer.delete_documents("id", doc.accession)
                    writer.add_document(self._document(doc))
                    self._db.execute(
                        "INSERT OR REPLACE INTO docs VALUES (?, ?, ?)",
                        (doc.accession, doc.release_date, json.dumps(asdict(doc))),
                    )
                    n += 1
                writer.commit()
                self._db.execute("COMMIT")
            except BaseException:
                writer.rollback()
                self._db.execute("ROLLBACK")
                raise
            finally:
                writer.wait_merging_threads()
            self._index.reload()
        return n

    def _open_writer(self, wait: float = 60.0) -> tantivy.IndexWriter:
        """The index's writer; another process holding it (a commit in flight) is waited for, then reported."""
        deadline = time.monotonic() + wait
        while True:
            try:
                return self._index.writer(_WRITER_HEAP, 1)
            except ValueError as exc:
                if "lock" not in str(exc).lower() or time.monotonic() > deadline:
                    raise SearchIndexBusy(f"the search index in {self.path} is being written by another process: {exc}") from exc
                time.sleep(0.05)

    def upsert(self, doc: StudyDocument) -> None:
        self._write([doc])

    def delete(self, accession: str) -> None:
        self._write([], delete=[accession])

    def replace_all(self, docs: Iterable[StudyDocument]) -> int:
        """Rebuild the whole index from ``docs`` (readers see the old or the new)."""
        return self._write(docs, everything=True)

    # ---------------------------------------------------------------- reading

    def count(self) -> int:
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM docs").fetchone()[0]

    def get(self, accession: str) -> StudyDocument | None:
        with self._lock:
            row = self._db.execute("SELECT doc FROM docs WHERE accession = ?", (accession,)).fetchone()
        return StudyDocument(**json.loads(row[0])) if row else None

    def release_months(self) -> list[tuple[str, int]]:
        """(YYYY-MM, studies released that month), oldest first."""
        with self._lock:
            return self._db.execute(
                "SELECT substr(release_date, 1, 7) AS m, COUNT(*) FROM docs WHERE release_date IS NOT NULL GROUP BY m ORDER BY m"
            ).fetchall()

    def accessions(self) -> list[str]:
        with self._lock:
            return [r[0] for r in self._db.execute("SELECT accession FROM docs ORDER BY accession")]

    def _searcher(self) -> tantivy.Searcher:
        """A searcher on the newest commit, including commits made through other handles or processes."""
        try:
            stamp = (self.path / "tantivy" / "meta.json").stat().st_mtime_ns
        except FileNotFoundError:
            stamp = 0
        if stamp != self._seen_commit:
            self._index.reload()
            self._seen_commit = stamp
        return self._index.searcher()

    def _clause(self, clause: Clause) -> tantivy.Query:
        fields = [clause.field] if clause.field else list(TEXT_FIELDS)
        phrase: list[str | tuple[int, str]] = list(clause.words)
        parts = []
        for name in fields:
            if clause.prefix and len(clause.words) == 1:
                query = tantivy.Query.regex_query(self._schema, name, re.escape(clause.words[0]) + ".*")
            elif clause.prefix:
                query = tantivy.Query.phrase_prefix_query(self._schema, name, phrase)
            elif len(clause.words) == 1:
                query = tantivy.Query.term_query(self._schema, name, clause.words[0])
            else:
                query = tantivy.Query.phrase_query(self._schema, name, phrase)
            parts.append(tantivy.Query.boost_query(query, TEXT_FIELDS[name]) if not clause.field else query)
        return parts[0] if len(parts) == 1 else tantivy.Query.boolean_query([(tantivy.Occur.Should, p) for p in parts])

    def _query(self, parsed: ParsedQuery, filters: Mapping[str, Sequence[str]] | None) -> tantivy.Query:
        must: list[tuple[tantivy.Occur, tantivy.Query]] = []
        if parsed.groups:
            groups = [
                tantivy.Query.boolean_query([(tantivy.Occur.Must, self._clause(c)) for c in group])
                if len(group) > 1
                else self._clause(group[0])
                for group in parsed.groups
            ]
            must.append(
                (tantivy.Occur.Must, groups[0] if len(groups) == 1 else tantivy.Query.boolean_query([(tantivy.Occur.Should, g) for g in groups]))
            )
        else:
            must.append((tantivy.Occur.Must, tantivy.Query.all_query()))
        for clause in parsed.excluded:
            must.append((tantivy.Occur.MustNot, self._clause(clause)))
        for name, values in (filters or {}).items():
            values = [values] if isinstance(values, str) else list(values)
            if values:
                terms = [tantivy.Query.term_query(self._schema, f"facet_{name}", v) for v in values]
                must.append(
                    (tantivy.Occur.Must, terms[0] if len(terms) == 1 else tantivy.Query.boolean_query([(tantivy.Occur.Should, t) for t in terms]))
                )
        return must[0][1] if len(must) == 1 else tantivy.Query.boolean_query(must)

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
        if limit < 0 or offset < 0:
            raise InvalidQuery("limit and offset must not be negative")
        parsed = parse_query(q or "")
        query = self._query(parsed, filters)
        searcher = self._searcher()
        if sort == "relevance" and not parsed.groups:
            sort = "newest"
        by_date = sort != "relevance"
        result = searcher.search(
            query, max(limit, 1), count=True, offset=offset, order_by_field="released" if by_date else None,
            order=tantivy.Order.Asc if sort == "oldest" else tantivy.Order.Desc,
        )
        hits = self._hits(searcher, query, result.hits[:limit], scored=sort == "relevance", snippets=bool(parsed.groups))
        facets: dict[str, list[tuple[str, int]]] = {}
        if facet_fields:
            spec = {name: {"terms": {"field": f"facet_{name}", "size": facet_limit}} for name in facet_fields}
            aggregated = searcher.aggregate(query, spec)
            for name in facet_fields:
                buckets = aggregated.get(name, {}).get("buckets", [])
                facets[name] = sorted(((b["key"], b["doc_count"]) for b in buckets), key=lambda kv: (-kv[1], kv[0]))
        # tantivy's stub omits SearchResult.count, which the extension sets when ``count=True``
        return SearchResult(total=result.count or 0, hits=hits, facets=facets)  # type: ignore[attr-defined]

    def _hits(self, searcher, query, found, scored: bool, snippets: bool) -> list[SearchHit]:
        generators = {}
        if snippets and found:
            for name in ("title", "description"):
                generators[name] = tantivy.SnippetGenerator.create(searcher, query, self._schema, name)
                generators[name].set_max_num_chars(240)
        accessions, scores, stored = [], [], []
        for score, address in found:
            document = searcher.doc(address)
            accessions.append(document["id"][0])
            scores.append(float(score) if scored else 0.0)
            stored.append(document)
        with self._lock:
            marks = ", ".join("?" * len(accessions))
            docs = dict(self._db.execute(f"SELECT accession, doc FROM docs WHERE accession IN ({marks})", accessions).fetchall()) if accessions else {}
        hits = []
        for accession, score, document in zip(accessions, scores, stored):
            if accession not in docs:
                continue  # deleted between the two reads
            doc = StudyDocument(**json.loads(docs[accession]))
            marked = {}
            for name, generator in generators.items():
                snippet = generator.snippet_from_doc(document)
                if snippet.highlighted():
                    marked[name] = _marked(snippet)
            hits.append(SearchHit(accession, doc.title, score, marked, doc))
        return hits


def _marked(snippet) -> str:
    """A snippet as HTML: the text escaped, the matched words in ``<mark>``."""
    text = snippet.fragment().encode("utf-8")  # highlight ranges are byte offsets

    def piece(start: int, end: int | None = None) -> str:
        return html.escape(text[start:end].decode("utf-8", "replace"))

    out, last = [], 0
    for span in sorted(snippet.highlighted(), key=lambda r: r.start):
        out.append(piece(last, span.start))
        out.append("<mark>" + piece(span.start, span.end) + "</mark>")
        last = span.end
    out.append(piece(last))
    return "".join(out)
