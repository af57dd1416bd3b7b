"""Keyword search over studies: a tantivy index (BM25, phrases, fields, snippets, facets) over documents kept in the state database.

Query language (what ``/search?q=`` accepts)::

    zebrafish confocal          both words (any field)
    "light sheet"               a phrase
    kin*                        a prefix
    title:mitochondria          a word (or "phrase") in one field: accession, title, description, keywords,
    organism:"Mus musculus"     authors, organism, imaging_method, source
    actin OR tubulin            either (AND binds tighter than OR)
    -mouse   NOT mouse          exclude

Words are compared stemmed (English: ``tomograms`` finds ``tomogram``, ``imaging`` finds ``images``) and with accents
folded (``schrodinger`` finds ``Schrödinger``); accessions, authors and sources are folded but not stemmed. An
imaging method's name finds its other names too (``cryo-ET`` finds "cryo-electron tomography", ``SEM`` finds
"scanning electron microscopy"): :func:`catalog.method_names.method_synonyms`, applied to the query when it is
read, so that the index holds only what studies say, a new name needs no rebuild, and synonyms match titles and
descriptions as well as methods. Snippets mark the words that matched in every field, prefixes and fields included.

Facet filters (organism, imaging_method, licence, release_year, source) are exact values passed apart from the
query. Each study's document is kept in the state database (shared by every node); the full-text index in the
folder (``tantivy/``, one writer at a time, readers see each commit whole, and ``applied.json``: how far it has
followed the documents) is a local cache each node fills from them. :meth:`SearchIndex.replace_all` replaces
every document of a view at once.
"""

from __future__ import annotations

import dataclasses
import fcntl
import html
import json
import logging
import os
import re
import shutil
import sqlite3
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterable, Iterator, Mapping, NamedTuple, Sequence

import tantivy

from catalog.errors import CatalogError
from catalog.method_names import method_synonyms
from catalog.state_db import DatabaseUnavailable, StateDB
from catalog.state_schema import catalog_id

log = logging.getLogger(__name__)

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
#: the analyzers of the text fields: ``folded`` (lower case, accents folded) and ``stemmed`` (folded, then English
#: stems); words longer than 40 characters are left out, as tantivy's default analyzer does
FOLDED, STEMMED = "bia_folded", "bia_stemmed"
FIELD_ANALYZERS = {name: FOLDED if name in ("accession", "authors", "source") else STEMMED for name in TEXT_FIELDS}
FACET_FIELDS = ("organism", "imaging_method", "licence", "release_year", "source", "dimensionality", "time_series")
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
    #: what the image files' headers say: kinds of image (2D, 3D, 2D+time, 3D+time), and whether any is a time series
    dimensionalities: list[str] = field(default_factory=list)
    time_series: bool | None = None
    #: the thumbnail URL of the study's first representative image (None: no previews made)
    thumbnail: str | None = None

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
        for value in self.dimensionalities:
            yield "dimensionality", value
        if self.time_series is not None:
            yield "time_series", "yes" if self.time_series else "no"


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


def _analyzer(stem: bool) -> tantivy.TextAnalyzer:
    builder = tantivy.TextAnalyzerBuilder(tantivy.Tokenizer.simple()).filter(tantivy.Filter.remove_long(40))
    builder = builder.filter(tantivy.Filter.lowercase()).filter(tantivy.Filter.ascii_fold())
    return (builder.filter(tantivy.Filter.stemmer("english")) if stem else builder).build()


ANALYZERS = {FOLDED: _analyzer(stem=False), STEMMED: _analyzer(stem=True)}


def analyzed(fieldname: str, word: str) -> str:
    """The term a field's analyzer makes of one word (the word itself when it leaves none: a word too long)."""
    terms = ANALYZERS[FIELD_ANALYZERS[fieldname]].analyze(word)
    return terms[0] if terms else word


def prefix_forms(fieldname: str, word: str) -> list[str]:
    """What a prefix ``word*`` is compared with in a field's terms: the word folded, and its stem where the field is
    stemmed (``microscopy*`` must find the term ``microscopi``, ``tomograms*`` the term ``tomogram``)."""
    folded = ANALYZERS[FOLDED].analyze(word)
    return list(dict.fromkeys([folded[0] if folded else word, analyzed(fieldname, word)]))


_TOKEN = re.compile(r'\s*(?:(-)?(?:([A-Za-z_]+):)?(?:"([^"]*)"|([^\s"]+))|(".*))')


@dataclass
class Clause:
    """One word, phrase or prefix, in one field or any."""

    words: list[str]
    field: str | None = None
    prefix: bool = False
    #: other names of the same imaging method, each searched as a phrase beside the words
    synonyms: list[list[str]] = dataclasses.field(default_factory=list)
    #: the words were typed apart: each must be found, anywhere (else they are one phrase)
    loose: bool = False


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
        raise InvalidQuery(
            f"the query has {clauses} words or phrases; at most {MAX_CLAUSES} are searched at once",
            [{"field": "q", "message": "too many terms"}],
        )
    return ParsedQuery([g for g in groups if g], excluded)


def _tokens(q: str) -> Iterator[_Token]:
    """The tokens of a (stripped) query, read one at a time: an error is raised when reading reaches it."""
    pos = 0
    while pos < len(q):
        m = _TOKEN.match(q, pos)
        if not m or m.end() == pos:
            raise InvalidQuery(f"cannot read the query at character {pos + 1}: {q[pos : pos + 20]!r}")
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
        raise InvalidQuery(
            f"a prefix search (word*) takes at most {MAX_PREFIX} characters before the *",
            [{"field": "q", "value": text[:40] + "…", "message": "prefix too long"}],
        )
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


#: the longest imaging-method name looked for among a query's words
MAX_NAME_WORDS = 8


def with_synonyms(parsed: ParsedQuery) -> ParsedQuery:
    """The query with each imaging-method name in it (one word, a phrase, or words typed in a row) searched under
    every name of that method too (:func:`catalog.method_names.method_synonyms`)."""
    return ParsedQuery([_group_with_synonyms(g) for g in parsed.groups], [_with_synonyms([c], 0)[0] for c in parsed.excluded])


def _group_with_synonyms(group: list[Clause]) -> list[Clause]:
    found, i = [], 0
    while i < len(group):
        clause, i = _with_synonyms(group, i)
        found.append(clause)
    return found


def _with_synonyms(group: list[Clause], start: int) -> tuple[Clause, int]:
    """The clause at ``start``, or the longest run of clauses from there that names a method, with that method's
    other names; and where the next clause starts."""
    table, first = method_synonyms(), group[start]
    words: list[str] = []
    best: tuple[int, list[str]] | None = None
    for end in range(start, min(len(group), start + MAX_NAME_WORDS)):
        clause = group[end]
        if clause.prefix or clause.field != first.field or clause.synonyms:
            break
        words = words + clause.words
        if " ".join(words) in table:
            best = (end, list(words))
    if best is None:
        return first, start + 1
    end, words = best
    names = [n.split() for n in _fewest_phrases(table[" ".join(words)]) if n.split() != words]
    return Clause(words, first.field, synonyms=names, loose=end > start), end + 1


def _fewest_phrases(names: Sequence[str]) -> list[str]:
    """The names that hold none of the others (``confocal`` finds every "... confocal ..." name already)."""
    return [n for n in names if not any(o != n and f" {o} " in f" {n} " for o in names)]


# ---------------------------------------------------------------------- the index

#: the layout of the local index; an index of another layout is rebuilt from the state database
#: (4: stemmed and accent-folded text fields)
LOCAL_LAYOUT = 4
#: the longest snippet of a field
SNIPPET_CHARS = 240
#: at most this many of the terms a prefix finds in a field are marked in snippets (all of them match)
PREFIX_MARKS = 64
#: seconds between two looks at the state database for documents another process or node wrote
FOLLOW_INTERVAL = 0.5


def _schema() -> tantivy.Schema:
    builder = tantivy.SchemaBuilder()
    builder.add_text_field("id", stored=True, tokenizer_name="raw")
    for name in TEXT_FIELDS:
        builder.add_text_field(name, stored=name in ("title", "description"), tokenizer_name=FIELD_ANALYZERS[name])
    for name in FACET_FIELDS:
        builder.add_text_field(f"facet_{name}", tokenizer_name="raw", fast=True)
    builder.add_integer_field("released", fast=True, indexed=True)
    builder.add_bytes_field("doc", stored=True, indexed=False)
    return builder.build()


class SearchIndex:
    """The search index of one catalog view: its documents in the state database, a tantivy index in a folder.

    The documents are the truth, shared by every node; each write gives the documents it changes (and a tombstone
    for each it removes) the next number of one sequence. The tantivy index is a local cache that follows that
    sequence: before answering, a node applies what it has not seen yet (a new node, or one whose folder was
    lost, starts from zero), so queries, boosts, snippets and facets are tantivy's on every node.
    """

    def __init__(self, path: Path, db: StateDB, view: str) -> None:
        self.path = Path(path)
        self.db = db
        self.view = view
        #: the database's own name: a local index built from another database is not this one's
        self._catalog = catalog_id(db)
        self._lock = threading.RLock()
        self._schema = _schema()
        self._seen_commit = -1
        self._looked = 0.0
        self._follower: threading.Thread | None = None
        self._stop = threading.Event()
        self._import_legacy_documents()
        self._index = self._open_local()

    def close(self) -> None:
        self.stop_following()

    # ---------------------------------------------------------------- the local cache

    def follow_in_background(self, interval: float = FOLLOW_INTERVAL) -> None:
        """Follow the documents every ``interval`` seconds in a thread, so the node's index fills and stays current
        without waiting for a search (a new node becomes complete by itself; ``/health`` counts what it has)."""
        if self._follower is not None:
            return
        self._stop.clear()

        def run() -> None:
            while not self._stop.wait(interval):
                try:
                    self.follow()
                except Exception:  # noqa: BLE001 - logged; the next round tries again
                    log.exception("following the search documents of the %s view failed", self.view)

        self._follower = threading.Thread(target=run, name=f"search-follower-{self.view}", daemon=True)
        self._follower.start()

    def stop_following(self) -> None:
        if self._follower is not None:
            self._stop.set()
            self._follower.join(timeout=10)
            self._follower = None

    @property
    def _state_file(self) -> Path:
        return self.path / "applied.json"

    def _applied(self) -> dict:
        try:
            return json.loads(self._state_file.read_text(encoding="utf-8"))
        except (FileNotFoundError, ValueError):
            return {}

    def _open_local(self) -> tantivy.Index:
        """The local index, emptied first if it was built from another database or in another layout (under a file
        lock, so that processes of one node opening it together agree)."""
        folder = self.path / "tantivy"
        self.path.mkdir(parents=True, exist_ok=True)
        with open(self.path / ".open.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            applied = self._applied()
            if (applied.get("catalog"), applied.get("view"), applied.get("layout")) != (
                self._catalog,
                self.view,
                LOCAL_LAYOUT,
            ):
                shutil.rmtree(folder, ignore_errors=True)
                self._stamp(0)
            folder.mkdir(parents=True, exist_ok=True)
            index = tantivy.Index(self._schema, path=str(folder), reuse=True)
        for name, analyzer in ANALYZERS.items():
            index.register_tokenizer(name, analyzer)
        return index

    def _stamp(self, seq: int) -> None:
        """Record how far the local index has followed the documents."""
        tmp = self._state_file.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(
            json.dumps({"catalog": self._catalog, "view": self.view, "layout": LOCAL_LAYOUT, "seq": seq}), encoding="utf-8"
        )
        os.replace(tmp, self._state_file)

    def follow(self, force: bool = False) -> int:
        """Apply to the local index the documents written since it last caught up; returns how many. Looks at most
        every :data:`FOLLOW_INTERVAL` seconds unless ``force``; another process of this node already catching up is
        left to it."""
        now = time.monotonic()
        if not force and now - self._looked < FOLLOW_INTERVAL:
            return 0
        self._looked = now
        with self._lock:
            try:
                with self.db.transaction() as db:
                    latest = db.execute("SELECT max(seq) FROM search_docs WHERE view = ?", (self.view,)).fetchone()[0]
            except DatabaseUnavailable as exc:
                if force:
                    raise
                log.warning("search answers from this node's index as it was: %s", exc)  # a database outage
                return 0
            if latest is None or latest <= self._applied().get("seq", 0):
                return 0
            try:
                writer = self._open_writer(wait=30.0 if force else 0.0)
            except SearchIndexBusy:
                return 0
            return self._apply(writer)

    def _apply(self, writer: tantivy.IndexWriter) -> int:
        applied, n = self._applied().get("seq", 0), 0
        try:
            for accession, doc, seq in self.db.stream(
                "SELECT accession, doc, seq FROM search_docs WHERE view = ? AND seq > ? ORDER BY seq", (self.view, applied)
            ):
                writer.delete_documents("id", accession)
                if doc is not None:
                    writer.add_document(self._document(StudyDocument(**json.loads(doc)), doc))
                applied, n = seq, n + 1
            writer.commit()
        except BaseException:
            writer.rollback()
            raise
        finally:
            writer.wait_merging_threads()
        self._stamp(applied)
        self._index.reload()
        return n

    def _import_legacy_documents(self) -> None:
        """Documents an embedded catalog kept beside its index before they moved to the state database."""
        legacy = self.path / "docs.sqlite"
        if not legacy.exists():
            return
        old = sqlite3.connect(str(legacy))
        try:
            docs = [StudyDocument(**json.loads(row[0])) for row in old.execute("SELECT doc FROM docs")]
        finally:
            old.close()
        with self.db.transaction() as db:
            known = db.execute("SELECT count(*) FROM search_docs WHERE view = ?", (self.view,)).fetchone()[0]
        if not known:
            self._store(docs)
        for suffix in ("", "-wal", "-shm"):
            Path(str(legacy) + suffix).unlink(missing_ok=True)

    # ---------------------------------------------------------------- writing

    def _document(self, doc: StudyDocument, stored: str) -> tantivy.Document:
        fields: dict[str, object] = {
            "id": doc.accession,
            **_texts(doc),
            "released": int((doc.release_date or "0000-00-00")[:10].replace("-", "") or 0),
            "doc": stored.encode("utf-8"),
        }
        document = tantivy.Document(**fields)
        for name, value in dict.fromkeys(doc.facet_values()):
            document.add_text(f"facet_{name}", value)
        return document

    def _store(self, docs: Iterable[StudyDocument], delete: Iterable[str] = (), everything: bool = False) -> int:
        """Write documents (and tombstones) to the state database in one transaction, numbered in commit order."""
        n = 0
        with self.db.transaction(write=True) as db:
            seq = _next_seq(db) + 1  # tombstones take the first new number, documents the ones after it
            if everything:
                db.execute(
                    "UPDATE search_docs SET doc = NULL, release_date = NULL, seq = ? WHERE view = ? AND doc IS NOT NULL",
                    (seq, self.view),
                )
            for accession in delete:
                db.execute(
                    "UPDATE search_docs SET doc = NULL, release_date = NULL, seq = ? WHERE view = ? AND accession = ?"
                    " AND doc IS NOT NULL",
                    (seq, self.view, accession),
                )
            for doc in docs:
                seq += 1
                db.execute(
                    "INSERT INTO search_docs (view, accession, release_date, doc, seq) VALUES (?, ?, ?, ?, ?)"
                    " ON CONFLICT(view, accession) DO UPDATE SET release_date = excluded.release_date,"
                    " doc = excluded.doc, seq = excluded.seq",
                    (self.view, doc.accession, doc.release_date, json.dumps(asdict(doc)), seq),
                )
                n += 1
            db.execute("UPDATE counters SET value = ? WHERE name = ?", (seq, SEQUENCE))
        return n

    def _write(self, docs: Iterable[StudyDocument], delete: Iterable[str] = (), everything: bool = False) -> int:
        """Change the documents, then bring this node's index up to date with them."""
        n = self._store(docs, delete, everything)
        self.follow(force=True)
        return n

    def _open_writer(self, wait: float = 60.0) -> tantivy.IndexWriter:
        """The index's writer; another process holding it is waited for up to ``wait`` seconds, then reported."""
        deadline = time.monotonic() + wait
        while True:
            try:
                return self._index.writer(_WRITER_HEAP, 1)
            except ValueError as exc:
                if "lock" not in str(exc).lower() or time.monotonic() >= deadline:
                    raise SearchIndexBusy(f"the search index in {self.path} is being written by another process: {exc}") from exc
                time.sleep(0.05)

    def upsert(self, doc: StudyDocument) -> None:
        self._write([doc])

    def delete(self, accession: str) -> None:
        self._write([], delete=[accession])

    def replace_all(self, docs: Iterable[StudyDocument]) -> int:
        """Replace every document of the view with ``docs`` (readers see the old or the new)."""
        return self._write(docs, everything=True)

    # ---------------------------------------------------------------- reading

    def count(self) -> int:
        with self.db.transaction() as db:
            return db.execute("SELECT COUNT(*) FROM search_docs WHERE view = ? AND doc IS NOT NULL", (self.view,)).fetchone()[0]

    def local_count(self) -> int:
        """Documents in this node's index, as far as it has followed (asks no database: for liveness checks)."""
        return int(self._searcher().num_docs)

    def get(self, accession: str) -> StudyDocument | None:
        with self.db.transaction() as db:
            row = db.execute("SELECT doc FROM search_docs WHERE view = ? AND accession = ?", (self.view, accession)).fetchone()
        return StudyDocument(**json.loads(row[0])) if row and row[0] else None

    def release_months(self) -> list[tuple[str, int]]:
        """(YYYY-MM, studies released that month), oldest first."""
        with self.db.transaction() as db:
            return [
                (r[0], r[1])
                for r in db.execute(
                    "SELECT substr(release_date, 1, 7) AS m, COUNT(*) FROM search_docs WHERE view = ? AND doc IS NOT NULL"
                    " AND release_date IS NOT NULL GROUP BY substr(release_date, 1, 7) ORDER BY m",
                    (self.view,),
                )
            ]

    def accessions(self) -> list[str]:
        with self.db.transaction() as db:
            return [
                r[0]
                for r in db.execute(
                    "SELECT accession FROM search_docs WHERE view = ? AND doc IS NOT NULL ORDER BY accession", (self.view,)
                )
            ]

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

    def _clause(self, clause: Clause, searcher: tantivy.Searcher | None = None) -> tantivy.Query:
        """A clause's query; with a ``searcher``, the query snippets are marked by (a prefix as the terms it finds)."""
        if clause.loose:
            base = _all([self._in_fields(Clause([word], clause.field), searcher) for word in clause.words])
        else:
            base = self._in_fields(clause, searcher)
        others = [self._in_fields(Clause(words, clause.field), searcher) for words in clause.synonyms]
        return _any([base, *others])

    def _in_fields(self, clause: Clause, searcher: tantivy.Searcher | None) -> tantivy.Query:
        if clause.field:
            return self._in_field(clause.field, clause, searcher)
        return _any(
            [tantivy.Query.boost_query(self._in_field(name, clause, searcher), boost) for name, boost in TEXT_FIELDS.items()]
        )

    def _in_field(self, name: str, clause: Clause, searcher: tantivy.Searcher | None) -> tantivy.Query:
        *words, last = clause.words
        terms: list[str | tuple[int, str]] = [analyzed(name, w) for w in words]
        if clause.prefix and searcher is not None:
            found = [
                t for form in prefix_forms(name, last) for t, _n in searcher.terms_with_prefix(name, form, limit=PREFIX_MARKS)
            ]
            return _any([tantivy.Query.term_query(self._schema, name, t) for t in [*terms, *found]])
        if clause.prefix and not words:
            pattern = "(?:" + "|".join(re.escape(f) for f in prefix_forms(name, last)) + ").*"
            return tantivy.Query.regex_query(self._schema, name, pattern)
        if clause.prefix:
            return tantivy.Query.phrase_prefix_query(self._schema, name, [*terms, os.path.commonprefix(prefix_forms(name, last))])
        if not words:
            return tantivy.Query.term_query(self._schema, name, analyzed(name, last))
        return tantivy.Query.phrase_query(self._schema, name, [*terms, analyzed(name, last)])

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
                (
                    tantivy.Occur.Must,
                    groups[0] if len(groups) == 1 else tantivy.Query.boolean_query([(tantivy.Occur.Should, g) for g in groups]),
                )
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
                    (
                        tantivy.Occur.Must,
                        terms[0] if len(terms) == 1 else tantivy.Query.boolean_query([(tantivy.Occur.Should, t) for t in terms]),
                    )
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
        parsed = with_synonyms(parse_query(q or ""))
        query = self._query(parsed, filters)
        self.follow()
        searcher = self._searcher()
        if sort == "relevance" and not parsed.groups:
            sort = "newest"
        by_date = sort != "relevance"
        result = searcher.search(
            query,
            max(limit, 1),
            count=True,
            offset=offset,
            order_by_field="released" if by_date else None,
            order=tantivy.Order.Asc if sort == "oldest" else tantivy.Order.Desc,
        )
        hits = self._hits(searcher, parsed, result.hits[:limit], scored=sort == "relevance")
        facets: dict[str, list[tuple[str, int]]] = {}
        if facet_fields:
            spec = {name: {"terms": {"field": f"facet_{name}", "size": facet_limit}} for name in facet_fields}
            aggregated = searcher.aggregate(query, spec)
            for name in facet_fields:
                buckets = aggregated.get(name, {}).get("buckets", [])
                facets[name] = sorted(((b["key"], b["doc_count"]) for b in buckets), key=lambda kv: (-kv[1], kv[0]))
        # tantivy's stub omits SearchResult.count, which the extension sets when ``count=True``
        return SearchResult(total=result.count or 0, hits=hits, facets=facets)  # type: ignore[attr-defined]

    def _hits(self, searcher: tantivy.Searcher, parsed: ParsedQuery, found, scored: bool) -> list[SearchHit]:
        generators = self._snippet_generators(searcher, parsed) if found else {}
        hits = []
        for score, address in found:
            document = searcher.doc(address)
            doc = StudyDocument(**json.loads(bytes(document["doc"][0]).decode("utf-8")))
            texts = tantivy.Document(**_texts(doc))
            marked = {}
            for name, generator in generators.items():
                snippet = generator.snippet_from_doc(texts)
                if snippet.highlighted():
                    marked[name] = _marked(snippet)
            hits.append(SearchHit(doc.accession, doc.title, float(score) if scored else 0.0, marked, doc))
        return hits

    def _snippet_generators(self, searcher: tantivy.Searcher, parsed: ParsedQuery) -> dict[str, tantivy.SnippetGenerator]:
        """A snippet generator for each field the query's words may be found in (all but the accession, which
        every hit shows whole), marking the words found: prefixes as the terms they found, synonyms too."""
        clauses = [c for group in parsed.groups for c in group]
        if not clauses:
            return {}
        named = {c.field for c in clauses}
        fields = [n for n in TEXT_FIELDS if n != "accession" and (None in named or n in named)]
        query = _any([self._clause(c, searcher) for c in clauses])
        generators = {}
        for name in fields:
            generators[name] = tantivy.SnippetGenerator.create(searcher, query, self._schema, name)
            generators[name].set_max_num_chars(SNIPPET_CHARS)
        return generators


def _texts(doc: StudyDocument) -> dict[str, str]:
    """The text of each full-text field of a study (the values of a list one a line)."""
    return {
        "accession": doc.accession,
        "title": doc.title,
        "description": doc.description,
        "keywords": "\n".join(doc.keywords),
        "authors": "\n".join(doc.authors),
        "organism": "\n".join(doc.organisms),
        "imaging_method": "\n".join(doc.imaging_methods),
        "source": doc.source or "",
    }


def _any(queries: list[tantivy.Query]) -> tantivy.Query:
    if not queries:
        return tantivy.Query.empty_query()
    return queries[0] if len(queries) == 1 else tantivy.Query.boolean_query([(tantivy.Occur.Should, q) for q in queries])


def _all(queries: list[tantivy.Query]) -> tantivy.Query:
    return queries[0] if len(queries) == 1 else tantivy.Query.boolean_query([(tantivy.Occur.Must, q) for q in queries])


def _marked(snippet) -> str:
    """A snippet as HTML: the text escaped, the matched words in ``<mark>``."""
    text = snippet.fragment().encode("utf-8")  # highlight ranges are byte offsets

    def piece(start: int, end: int | None = None) -> str:
        return html.escape(text[start:end].decode("utf-8", "replace")).replace("\n", "; ")

    out, last = [], 0
    for span in sorted(snippet.highlighted(), key=lambda r: r.start):
        out.append(piece(last, span.start))
        out.append("<mark>" + piece(span.start, span.end) + "</mark>")
        last = span.end
    out.append(piece(last))
    return "".join(out)


#: the counter that numbers search documents in commit order
SEQUENCE = "~search"


def _next_seq(db) -> int:
    """The last number given out (the caller holds the write lock, and stores the new last number)."""
    db.execute("INSERT INTO counters VALUES (?, 0) ON CONFLICT(name) DO NOTHING", (SEQUENCE,))
    return int(db.execute("SELECT value FROM counters WHERE name = ?", (SEQUENCE,)).fetchone()[0])
