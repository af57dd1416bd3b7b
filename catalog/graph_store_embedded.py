"""The embedded graph store: pyoxigraph in a folder, crash-safe whole-graph replacement, published snapshots.

Layout of the folder::

    WRITER.lock       held (flock) by the one writer process for as long as it has the store open
    LIVE              the name of the folder holding the read-write RocksDB store (``live`` if absent)
    live…/            that store; other ``live…`` folders are leftovers of restores, removed at open
    journal.json      present only while a graph is being replaced: which graph, the snapshot before it, its tag
    checkpoints/<id>  snapshots made by ``Store.backup`` (hard links, ~1 ms) after every change
    CURRENT           the id of the newest snapshot
    tags/<hash>       the tag (commit id) of the last completed replacement of each graph

``replace_graph`` publishes any unpublished change, writes the journal, drops the graph, bulk-loads the new data
(fast, not transactional), publishes a snapshot (**the commit point**: ``CURRENT`` renamed) and removes the
journal. Before the commit point the live store differs from the journal's snapshot only by this replacement, so
undoing an interrupted one is putting that snapshot back as the live store: a new checkpoint of it (hard links,
milliseconds) in a new folder, then ``LIVE`` renamed to name it. Its cost does not grow with the size of the graph,
and a restore that is itself interrupted starts again from the journal at the next open (each step is idempotent).

Read-only handles (``read_only=True``, for public read paths and query workers) answer from the newest
snapshot and move to a newer one when ``CURRENT`` changes, so they never see a graph half-replaced.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import shutil
import threading
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, TextIO, TypeVar

import pyoxigraph as ox
from rdflib import BNode, Literal, URIRef

from catalog.graph_store import (
    N_TRIPLES,
    Binding,
    GraphStore,
    GraphStoreError,
    GraphStoreUnavailable,
    NotAcceptable,
    predicate_filter,
)

log = logging.getLogger(__name__)
T = TypeVar("T")

#: Snapshots kept besides the newest: at least this many, and any younger than ``KEEP_SECONDS``.
KEEP_SNAPSHOTS = 3
KEEP_SECONDS = 300.0
_XSD_STRING = "http://www.w3.org/2001/XMLSchema#string"
#: files larger than this are bulk-loaded by :meth:`EmbeddedGraphStore.replace_graphs` (smaller: one transaction)
BULK_LOAD_BYTES = 8 << 20
#: the graph the journal names for a replacement of several graphs at once (no such graph is ever written)
_BATCH = "urn:bia:batch"
_RDF_LANG_STRING = "http://www.w3.org/1999/02/22-rdf-syntax-ns#langString"


def term_json(term: Any) -> dict[str, str]:
    """A pyoxigraph term in the SPARQL 1.1 Query Results JSON form."""
    if isinstance(term, ox.NamedNode):
        return {"type": "uri", "value": term.value}
    if isinstance(term, ox.BlankNode):
        return {"type": "bnode", "value": term.value}
    if isinstance(term, ox.Literal):
        out = {"type": "literal", "value": term.value}
        if term.language:
            out["xml:lang"] = term.language
        elif term.datatype.value not in (_XSD_STRING, _RDF_LANG_STRING):
            out["datatype"] = term.datatype.value
        return out
    return {"type": "triple", "value": str(term)}


def _rdflib(term: Any, iris: dict[str, Any] | None = None) -> Any:
    """A pyoxigraph term as the rdflib term of the same value (``iris``: a cache of converted IRIs)."""
    if isinstance(term, ox.NamedNode):
        if iris is None:
            return URIRef(term.value)
        value = term.value
        found = iris.get(value)
        if found is None:
            found = iris[value] = URIRef(value)
        return found
    if isinstance(term, ox.BlankNode):
        return BNode(term.value)
    if term.language:
        return Literal(term.value, lang=term.language)
    datatype = term.datatype.value
    return Literal(term.value) if datatype == _XSD_STRING else Literal(term.value, datatype=URIRef(datatype))


def rdf_format(media_type: str) -> ox.RdfFormat:
    fmt = ox.RdfFormat.from_media_type(media_type.split(";")[0].strip())
    if fmt is None:
        raise NotAcceptable(f"no RDF serialization for {media_type!r}")
    return fmt


def _fsync_write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", encoding="utf-8") as out:
        out.write(text)
        out.flush()
        os.fsync(out.fileno())
    os.replace(tmp, path)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def _fsync_dir(folder: Path) -> None:
    dir_fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def _unblock(fifo: Path) -> None:
    """Let a producer blocked on opening or writing a pipe whose reader is gone fail instead of hanging."""
    try:
        fd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
        os.close(fd)
    except OSError:
        pass


def _process_description() -> str:
    """``process 1234 (bia serve --port 5000)``: this process, as the holder of a writer lock names it."""
    try:
        argv = [a.decode() for a in Path("/proc/self/cmdline").read_bytes().split(b"\0") if a]
        command = " ".join([Path(a).name if n < 2 else a for n, a in enumerate(argv)])
    except (OSError, UnicodeDecodeError):
        command = ""
    return f"process {os.getpid()}" + (f" ({command[:200]})" if command else "")


def writer_lock_holder(path: Path) -> str | None:
    """Who holds the writer lock of the embedded store in ``path`` (``process 1234 (bia serve …)``), or None when
    no process does (a free lock is taken and let go at once; nothing is created)."""
    lock = Path(path) / "WRITER.lock"
    try:
        fd = os.open(lock, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError:
            return os.pread(fd, 1024, 0).decode("utf-8", "replace").strip() or "another process"
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


class EmbeddedGraphStore(GraphStore):
    """pyoxigraph in ``path``: the writer (default) or a read-only snapshot follower."""

    keeps_tags = True

    def __init__(self, path: Path, read_only: bool = False) -> None:
        self.path = Path(path)
        self.read_only = read_only
        self._lock = threading.RLock()
        self._checkpoints = self.path / "checkpoints"
        self._current_file = self.path / "CURRENT"
        self._journal = self.path / "journal.json"
        self._dirty = self.path / "DIRTY"  # the live store has changes no snapshot has yet
        self._tags = self.path / "tags"
        self._live_pointer = self.path / "LIVE"
        self._stale_live: list[Path] = []
        self._snapshot_id: str | None = None
        self._current_seen: tuple[int, int, int] | None = None
        self._current_cached: str | None = None
        self._store: ox.Store | None = None
        self._writer_lock: int | None = None
        if read_only:
            self._follow()
            return
        self.path.mkdir(parents=True, exist_ok=True)
        self._checkpoints.mkdir(exist_ok=True)
        self._tags.mkdir(exist_ok=True)
        self._take_writer_lock()
        try:
            self._recover()
            try:
                self._store = ox.Store(str(self._live_dir()))
            except OSError as exc:
                raise GraphStoreUnavailable(f"the graph store in {self.path} cannot be opened: {exc}") from exc
            current = self._current_id()
            if current is None or self._dirty.exists() or not (self._checkpoints / current).exists():
                self._publish()  # else the newest snapshot is the live store: its id (ETags, caches) stays
        except BaseException:
            self._release_writer_lock()
            raise

    def _take_writer_lock(self) -> None:
        fd = os.open(self.path / "WRITER.lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            holder = writer_lock_holder(self.path)
            raise GraphStoreUnavailable(
                f"the graph store in {self.path} is open for writing by another process"
                + (f", {holder}" if holder else "")
                + f" ({exc}); stop it "
                "(e.g. `bia serve`) or use its HTTP API, or configure a remote SPARQL store"
            ) from exc
        os.ftruncate(fd, 0)  # who holds it, for the message another process gets (see writer_lock_holder)
        os.pwrite(fd, _process_description().encode("utf-8", "replace"), 0)
        self._writer_lock = fd

    def _release_writer_lock(self) -> None:
        if self._writer_lock is not None:
            os.close(self._writer_lock)  # closing the descriptor drops the flock
            self._writer_lock = None

    # ---------------------------------------------------------------- snapshots

    def _current_id(self) -> str | None:
        """The newest snapshot's id. ``CURRENT`` is replaced by a rename on every publish, so its inode and
        mtime say whether it changed: one ``stat`` per call instead of a read (every read path asks)."""
        try:
            stat = os.stat(self._current_file)
        except FileNotFoundError:
            return None
        seen = (stat.st_ino, stat.st_mtime_ns, stat.st_size)
        if seen != self._current_seen:
            try:
                current = self._current_file.read_text(encoding="utf-8").strip() or None
            except FileNotFoundError:
                return None
            self._current_seen, self._current_cached = seen, current
        return self._current_cached

    def _follow(self) -> ox.Store:
        """(Read-only) the store of the newest published snapshot."""
        current = self._current_id()
        if self._store is None or current != self._snapshot_id:
            with self._lock:
                if current is None:
                    self._store = ox.Store()  # nothing published yet: an empty catalog
                else:
                    self._store = ox.Store.read_only(str(self._checkpoints / current))
                self._snapshot_id = current
        return self._store

    def _reader(self) -> ox.Store:
        return self._follow() if self.read_only else self._writer()

    def _writer(self) -> ox.Store:
        if self.read_only or self._store is None:
            raise GraphStoreError("this graph store handle is read-only")
        return self._store

    def _publish(self) -> str:
        """Snapshot the live store, point ``CURRENT`` at it and prune old snapshots."""
        store = self._writer()
        store.flush()
        snapshot = f"{time.time_ns():020d}"
        store.backup(str(self._checkpoints / snapshot))
        _fsync_write(self._current_file, snapshot)
        self._dirty.unlink(missing_ok=True)
        self._prune(keep=snapshot)
        while self._stale_live:  # folders of live stores an undo replaced (their handles are gone by now)
            shutil.rmtree(self._stale_live.pop(), ignore_errors=True)
        return snapshot

    def _mark_dirty(self) -> None:
        if not self._dirty.exists():
            _fsync_write(self._dirty, "the live store has changes no snapshot has yet\n")

    def _prune(self, keep: str) -> None:
        names = sorted((p.name for p in self._checkpoints.iterdir() if p.is_dir()), reverse=True)
        now = time.time_ns()
        for name in names[KEEP_SNAPSHOTS + 1 :]:
            if name == keep or not name.isdigit() or now - int(name) < KEEP_SECONDS * 1e9:
                continue
            shutil.rmtree(self._checkpoints / name, ignore_errors=True)

    def triples_of(self, graph: str, subjects: list[str], exclude: Iterable[str] = ()) -> Iterator[tuple[Any, Any, Any]]:
        """The triples of ``subjects`` in ``graph`` as rdflib terms, by direct index lookups (no query parsing).

        ``exclude``: predicates left out inside the store, for a subject with a huge fan-out of them (a study's
        ``rembi:files``): one filtered scan in Rust, not a Python object per skipped triple.
        """
        store, name = self._reader(), ox.NamedNode(graph)
        iris: dict[str, Any] = {}
        excluded = predicate_filter(exclude)
        for subject in subjects:
            s = URIRef(subject)
            try:
                node = ox.NamedNode(subject)
            except ValueError:  # not an IRI (e.g. a mangled URL): nothing is said about it
                continue
            if excluded:
                rows = _solutions(store.query(f"SELECT ?p ?o WHERE {{ GRAPH {name} {{ {node} ?p ?o{excluded} }} }}"))
                for row in rows:
                    yield s, _rdflib(row[0], iris), _rdflib(row[1], iris)
                continue
            for quad in store.quads_for_pattern(node, None, None, name):
                yield s, _rdflib(quad.predicate, iris), _rdflib(quad.object, iris)

    def version(self) -> str | None:
        if self.read_only:
            self._follow()
            return self._snapshot_id
        return self._current_id()

    def checkpoint_path(self) -> Path | None:
        """The folder of the newest published snapshot (what query workers open read-only)."""
        current = self._current_id()
        return self._checkpoints / current if current else None

    # ---------------------------------------------------------------- crash safety

    def _live_dir(self) -> Path:
        """The folder of the read-write store that ``LIVE`` names."""
        try:
            name = self._live_pointer.read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            name = ""
        return self.path / (name or "live")

    def _recover(self, remove_leftovers: bool = True) -> None:
        """(Writer, live store closed) finish or undo what a crash interrupted: a replacement that did not reach its
        commit point (undone by restoring the snapshot the journal names), or one that did (its tag kept); then
        remove the leftovers of restores."""
        if self._journal.exists():
            entry = json.loads(self._journal.read_text(encoding="utf-8"))
            graph, snapshot = entry["graph"], entry.get("snapshot")
            pending = self._tag_file(graph, pending=True)
            if self._current_id() != snapshot:  # a snapshot was published after the journal: it completed
                if pending.exists() or entry.get("tag") is None:
                    self._keep_tag(graph, entry.get("tag"))
            else:
                log.warning("undoing an interrupted replacement of %s: restoring snapshot %s", graph, snapshot)
                self._restore(snapshot)
                pending.unlink(missing_ok=True)
                self._dirty.unlink(missing_ok=True)
            self._journal.unlink()
        if not remove_leftovers:
            return
        live = self._live_dir()
        for folder in self.path.glob("live*"):
            if folder.is_dir() and folder != live:
                shutil.rmtree(folder, ignore_errors=True)

    def _restore(self, snapshot: str | None) -> None:
        """Make the snapshot (or, with none, an empty store) the live store: a checkpoint of it in a new folder,
        then ``LIVE`` pointed at that folder (the step that counts)."""
        folder = self.path / f"live-{time.time_ns()}"
        if snapshot and (self._checkpoints / snapshot).exists():
            old = ox.Store.read_only(str(self._checkpoints / snapshot))
            old.backup(str(folder))  # hard links to the snapshot's immutable files
            del old
        else:  # nothing was published before: the store was empty
            ox.Store(str(folder)).flush()
        _fsync_dir(folder)
        self._stale_live.append(self._live_dir())
        _fsync_write(self._live_pointer, folder.name)

    def _tag_file(self, graph: str, pending: bool = False) -> Path:
        name = hashlib.sha256(graph.encode("utf-8")).hexdigest()[:40]
        return self._tags / (name + (".pending" if pending else ""))

    def committed_tag(self, graph: str) -> str | None:
        """The tag given to the last replacement of ``graph`` that reached its commit point (None: none known)."""
        try:
            return self._tag_file(graph).read_text(encoding="utf-8").strip() or None
        except FileNotFoundError:
            return None

    # ---------------------------------------------------------------- graphs

    @contextlib.contextmanager
    def _replacing(
        self, graph: str, tag: str | None = None, before_commit: Callable[[], None] | None = None
    ) -> Iterator[ox.Store]:
        """Journal, drop the old graph, let the caller load the new one, publish (the commit point); undo it all if
        anything fails before that. ``before_commit`` runs once the data is loaded; ``tag`` is what
        :meth:`committed_tag` answers for the graph once this replacement is committed."""
        with self._lock:
            store = self._writer()
            if self._dirty.exists():  # the journal's snapshot must be exactly the live store before this change
                self._publish()
            before, pending = self._current_id(), self._tag_file(graph, pending=True)
            _fsync_write(self._journal, json.dumps({"graph": graph, "snapshot": before, "tag": tag}))
            self._mark_dirty()
            try:
                if store.contains_named_graph(ox.NamedNode(graph)):
                    store.remove_graph(ox.NamedNode(graph))
                yield store
                store.flush()
                if before_commit is not None:
                    before_commit()
                if tag is not None:
                    _fsync_write(pending, tag)
                self._publish()  # the commit point
            except BaseException:
                if self._current_id() == before:
                    del store
                    self._undo()
                raise
            self._keep_tag(graph, tag)
            self._journal.unlink()

    def _keep_tag(self, graph: str, tag: str | None) -> None:
        """After a committed replacement: its tag becomes the graph's (none: the graph's old tag no longer holds)."""
        if tag is not None:
            os.replace(self._tag_file(graph, pending=True), self._tag_file(graph))
        else:
            self._tag_file(graph).unlink(missing_ok=True)

    def _undo(self) -> None:
        """Undo a replacement that failed in this process: restore the live store from the journal's snapshot in a
        new folder and reopen it there (the old handle closes once nothing refers to it; its folder goes later)."""
        self._store = None
        self._recover(remove_leftovers=False)
        self._store = ox.Store(str(self._live_dir()))

    def replace_graph(
        self,
        graph: str,
        data: Path | bytes | str,
        format: str = N_TRIPLES,
        count: bool = True,
        before_commit: Callable[[], None] | None = None,
        *,
        tag: str | None = None,
    ) -> int:
        fmt = rdf_format(format)
        name = ox.NamedNode(graph)
        try:
            with self._replacing(graph, tag, before_commit) as store:
                if isinstance(data, Path):
                    store.bulk_load(path=str(data), format=fmt, to_graph=name)
                else:
                    store.load(data.encode("utf-8") if isinstance(data, str) else data, format=fmt, to_graph=name)
        except SyntaxError as exc:
            raise GraphStoreError(f"the data for {graph} is not valid {format}: {exc}") from exc
        return self._count_graph(self._writer(), graph) if count else -1

    def replace_graph_from(
        self,
        graph: str,
        produce: Callable[[TextIO], T],
        tmp_dir: Path | None = None,
        *,
        tag: str | None = None,
        before_commit: Callable[[], None] | None = None,
    ) -> T:
        """Bulk-load N-Triples while ``produce`` writes them, through a pipe: generating and loading overlap."""
        name = ox.NamedNode(graph)
        with tempfile.TemporaryDirectory(prefix="load-", dir=tmp_dir) as folder:
            fifo = Path(folder) / "graph.nt"
            os.mkfifo(fifo)
            outcome: dict[str, Any] = {}

            def run() -> None:
                try:
                    with open(fifo, "w", encoding="utf-8", newline="\n") as out:
                        outcome["result"] = produce(out)
                except BaseException as exc:  # noqa: BLE001 - handed to the loading thread
                    outcome["error"] = exc

            writer = threading.Thread(target=run, name="nt-producer", daemon=True)
            try:
                with self._replacing(graph, tag, before_commit) as store:
                    writer.start()
                    try:
                        store.bulk_load(path=str(fifo), format=ox.RdfFormat.N_TRIPLES, to_graph=name)
                    except BaseException:
                        _unblock(fifo)
                        raise
                    finally:
                        writer.join()
                    if "error" in outcome:
                        raise outcome["error"]
            except SyntaxError as exc:
                raise GraphStoreError(f"the data for {graph} is not valid N-Triples: {exc}") from exc
        return outcome["result"]

    def replace_graphs(self, changes: Iterable[tuple[str, Path | None]]) -> int:
        """Replace several named graphs, each with a file of N-Triples (``None``: drop it), made visible together by
        one snapshot (the commit point); a failure or crash before it leaves every graph as it was. ``changes`` may
        be a generator (e.g. downloading each file when it is asked for). Returns how many graphs were changed."""
        done: list[str] = []
        with self._replacing(_BATCH) as store:
            for graph, path in changes:
                name = ox.NamedNode(graph)
                if store.contains_named_graph(name):
                    store.remove_graph(name)
                if path is not None:  # a bulk load costs ~20 ms whatever the size: small graphs load in a transaction
                    load = store.bulk_load if path.stat().st_size > BULK_LOAD_BYTES else store.load
                    load(path=str(path), format=ox.RdfFormat.N_TRIPLES, to_graph=name)
                done.append(graph)
        for graph in done:  # replaced without a tag: an old tag no longer holds
            self._tag_file(graph).unlink(missing_ok=True)
        return len(done)

    def drop_graph(self, graph: str) -> None:
        name = ox.NamedNode(graph)
        with self._lock:
            store = self._writer()
            if store.contains_named_graph(name):
                self._mark_dirty()
                store.remove_graph(name)
                self._publish()
            self._tag_file(graph).unlink(missing_ok=True)

    def has_graph(self, graph: str) -> bool:
        store = self._reader()
        name = ox.NamedNode(graph)
        return store.contains_named_graph(name) and any(True for _ in store.quads_for_pattern(None, None, None, name))

    def graphs(self) -> list[str]:
        return sorted(g.value for g in self._reader().named_graphs() if isinstance(g, ox.NamedNode))

    def get_graph(self, graph: str, format: str = N_TRIPLES) -> bytes:
        return _written(self._reader().dump(format=rdf_format(format), from_graph=ox.NamedNode(graph)))

    def count(self, graph: str | None = None) -> int:
        store = self._reader()
        return len(store) if graph is None else self._count_graph(store, graph)

    @staticmethod
    def _count_graph(store: ox.Store, graph: str) -> int:
        result = _solutions(store.query(f"SELECT (COUNT(*) AS ?n) WHERE {{ GRAPH <{graph}> {{ ?s ?p ?o }} }}"))
        return int(next(iter(result))["n"].value)

    # ---------------------------------------------------------------- SPARQL

    def _query(self, query: str, default_graph_uris=(), named_graph_uris=()) -> Any:
        kwargs: dict[str, Any] = {}
        if default_graph_uris:
            kwargs["default_graph"] = [ox.NamedNode(g) for g in default_graph_uris]
        else:
            kwargs["use_default_graph_as_union"] = True
        if named_graph_uris:
            kwargs["named_graphs"] = [ox.NamedNode(g) for g in named_graph_uris]
        try:
            return self._reader().query(query, **kwargs)
        except SyntaxError as exc:
            raise GraphStoreError(f"SPARQL syntax error: {exc}") from exc
        except (OSError, ValueError) as exc:
            raise GraphStoreError(f"query failed: {exc}") from exc

    def select(self, query: str) -> list[Binding]:
        result = self._query(query)
        if not isinstance(result, ox.QuerySolutions):
            raise GraphStoreError("not a SELECT query")
        names = [v.value for v in result.variables]
        return [{n: term_json(s[n]) for n in names if s[n] is not None} for s in result]

    def ask(self, query: str) -> bool:
        result = self._query(query)
        if not isinstance(result, ox.QueryBoolean):
            raise GraphStoreError("not an ASK query")
        return bool(result)

    def query_raw(self, query, accept, default_graph_uris=(), named_graph_uris=()) -> tuple[bytes, str]:
        result = self._query(query, default_graph_uris, named_graph_uris)
        media = accept.split(";")[0].strip()
        if isinstance(result, ox.QueryTriples):
            return _written(result.serialize(format=rdf_format(media))), media
        fmt = ox.QueryResultsFormat.from_media_type(media)
        if fmt is None:
            raise NotAcceptable(f"no SPARQL results serialization for {accept!r}")
        return _written(result.serialize(format=fmt)), media

    def update(self, update: str, *, graph: str | None = None) -> None:
        with self._lock:
            self._mark_dirty()
            try:
                self._writer().update(update)
            except SyntaxError as exc:
                raise GraphStoreError(f"SPARQL Update syntax error: {exc}") from exc
            self._publish()

    def save_graph(self, graph: str, target: Path, format: str = N_TRIPLES) -> None:
        self._reader().dump(str(target), format=rdf_format(format), from_graph=ox.NamedNode(graph))

    def close(self) -> None:
        with self._lock:
            if self._store is not None and not self.read_only:
                self._store.flush()
            self._store = None
            self._release_writer_lock()


def _solutions(result: ox.QuerySolutions | ox.QueryBoolean | ox.QueryTriples) -> ox.QuerySolutions:
    """The rows of a SELECT query this module wrote (pyoxigraph types every query's result as the union)."""
    if not isinstance(result, ox.QuerySolutions):
        raise GraphStoreError(f"expected SELECT rows, got {type(result).__name__}")
    return result


def _written(data: bytes | None) -> bytes:
    """What pyoxigraph's ``dump``/``serialize`` return without an ``output`` (typed ``bytes | None`` for both cases)."""
    if data is None:
        raise GraphStoreError("the store wrote to no buffer")
    return data
