"""A node's own copy of the public graph, for public SPARQL queries when the public store is a remote server.

A remote SPARQL server cannot be made to stop a query (``oxigraph serve`` goes on at 100% of a core after its client
gave up, whatever its ``--timeout-s``), so public queries run on this copy instead, in the node's query workers,
which are killed at ``BIA_SPARQL_TIMEOUT`` (:mod:`api.sparql_workers`). The copy is an embedded store
(:mod:`catalog.graph_store_embedded`) in ``BIA_DATA/replica/public``: the workers open its published snapshots
read-only, so they always see a consistent state.

One process per node follows the public store (it holds the embedded store's writer lock; the others take over when
it dies): at most every :data:`FOLLOW_INTERVAL` seconds it reads the change feed (:mod:`catalog.graph_changes`)
past the number it has applied, fetches each changed graph from the remote store (Graph Store Protocol, N-Triples,
streamed to a temporary file) and replaces it in the copy, or drops it if it is gone, publishing one snapshot per
round. A copy with no applied number, or one made from another state database (``catalog_id``), first copies every
graph, having noted the feed's number before it started, so changes made during the copy are applied after it.
``applied.json`` in the folder holds that number: queries use the copy only once it names this catalog (before, they
go to the remote server). The lag is bounded by the time a round takes and shown by :meth:`GraphReplica.status`.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import tempfile
import threading
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, Iterable, Iterator

from catalog.config import Settings
from catalog.graph_changes import EVERYTHING, changes_since, latest_change, oldest_pending
from catalog.graph_store import GraphStore, GraphStoreError, GraphStoreUnavailable
from catalog.graph_store_embedded import EmbeddedGraphStore
from catalog.state_db import StateDB
from catalog.state_schema import catalog_id

log = logging.getLogger(__name__)

#: seconds between two looks at the change feed (the follower); between two tries to take over (the others)
FOLLOW_INTERVAL = 1.0
TAKE_OVER_INTERVAL = 5.0
#: changes applied in one round (one snapshot): a long backlog is published in steps
ROUND_CHANGES = 500
#: downloads running ahead of the loading, and the threads they run on
FETCH_AHEAD = 8
FETCH_THREADS = 2
#: a lag past this many seconds is logged as a warning
LAG_WARNING = 60.0


class _Stopped(Exception):
    """The replica is being closed: the round is abandoned (and undone)."""


class GraphReplica:
    """The copy of ``source`` (the public store) in ``folder``, following the change feed of ``view`` in ``db``."""

    def __init__(
        self, folder: Path, db: StateDB, source: GraphStore, view: str = "public", interval: float = FOLLOW_INTERVAL
    ) -> None:
        self.folder, self.db, self.source, self.view, self.interval = Path(folder), db, source, view, interval
        self._store: EmbeddedGraphStore | None = None  # while this process is the follower
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._catalog: str | None = None
        self._seen: tuple[tuple[int, int, int], dict] | None = None
        self.last_error: str | None = None
        self.last_round: dict[str, Any] = {}

    # ---------------------------------------------------------------- what queries use

    @property
    def _applied_file(self) -> Path:
        return self.folder / "applied.json"

    def _applied(self) -> dict | None:
        """What ``applied.json`` says, if it names this catalog (read again only when the file changed)."""
        try:
            stat = os.stat(self._applied_file)
        except FileNotFoundError:
            return None
        key = (stat.st_ino, stat.st_mtime_ns, stat.st_size)
        if self._seen is None or self._seen[0] != key:
            try:
                self._seen = (key, json.loads(self._applied_file.read_text(encoding="utf-8")))
            except (FileNotFoundError, ValueError):
                return None
        applied = self._seen[1]
        return applied if applied.get("catalog") == self._catalog_id() else None

    def _catalog_id(self) -> str:
        if self._catalog is None:
            self._catalog = catalog_id(self.db)
        return self._catalog

    def snapshot(self) -> str | None:
        """The folder of the copy's newest snapshot, once the copy of this catalog is complete (None before)."""
        if self._applied() is None:
            return None
        try:
            current = (self.folder / "CURRENT").read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            return None
        return str(self.folder / "checkpoints" / current) if current else None

    def status(self) -> dict[str, Any]:
        """How far the copy is: ``ready`` (queries use it), the numbers ``applied`` and ``latest`` of the change
        feed, ``lag_seconds`` (age of the oldest change not applied yet), whether this process ``follows``, and the
        ``error`` of the last failed round."""
        applied = self._applied()
        seq = int(applied["seq"]) if applied else 0
        oldest = oldest_pending(self.db, self.view, seq) if applied else None
        return {
            "ready": applied is not None,
            "applied": seq,
            "latest": latest_change(self.db, self.view),
            "lag_seconds": round(max(0.0, time.time() - oldest), 3) if oldest is not None else 0.0,
            "follows": self._store is not None,
            "error": self.last_error,
        }

    # ---------------------------------------------------------------- following

    def start(self) -> "GraphReplica":
        """Follow in a background thread (this process follows if no other process of the node does)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="graph-replica", daemon=True)
            self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.follow_once()
                self.last_error = None
            except _Stopped:
                return
            except Exception as exc:  # noqa: BLE001 - the next round tries again; the error is shown in status()
                if str(exc) != self.last_error:
                    log.warning("the copy of the public graph could not catch up: %s", exc)
                self.last_error = str(exc)
            self._stop.wait(self.interval if self._store is not None else TAKE_OVER_INTERVAL)

    def follow_once(self) -> int | None:
        """One round: bring the copy up to date if this process follows it (taking over if no process does);
        returns how many graphs were changed, None if another process follows it."""
        with self._lock:
            if self._store is None:
                self._store = self._take()
                if self._store is None:
                    return None
            return self._catch_up(self._store)

    def _take(self) -> EmbeddedGraphStore | None:
        self.folder.mkdir(parents=True, exist_ok=True)
        try:
            return EmbeddedGraphStore(self.folder)
        except GraphStoreUnavailable:
            return None  # another process of this node follows

    def _catch_up(self, store: EmbeddedGraphStore) -> int:
        started = time.monotonic()
        if self._applied() is None:  # a new copy, or one of another catalog: queries go to the remote store meanwhile
            self._applied_file.unlink(missing_ok=True)
            seq = latest_change(self.db, self.view)  # before copying: what changes during the copy is applied after
            changed = self._copy_all(store)
            self._record(seq, changed, started, "copied")
            return changed
        applied = int(self._applied()["seq"])  # type: ignore[index]
        changes = changes_since(self.db, self.view, applied, limit=ROUND_CHANGES)
        if not changes:
            return 0
        graphs = list(dict.fromkeys(change.graph for change in changes))
        changed = self._copy_all(store) if EVERYTHING in graphs else store.replace_graphs(self._fetched(graphs))
        self._record(changes[-1].seq, changed, started, "followed")
        return changed

    def _copy_all(self, store: EmbeddedGraphStore) -> int:
        """Every graph of the source again, and the copy's graphs the source no longer has dropped: one snapshot."""
        remote = self.source.graphs()
        gone = sorted(set(store.graphs()) - set(remote))
        return store.replace_graphs(itertools.chain(self._fetched(remote), ((graph, None) for graph in gone)))

    def _fetched(self, graphs: Iterable[str]) -> Iterator[tuple[str, Path | None]]:
        """Each graph downloaded to a temporary file (removed once loaded), or None where the source has none; up to
        :data:`FETCH_AHEAD` downloads run ahead of the loading, on :data:`FETCH_THREADS` threads."""
        tmp = self.folder.parent / "tmp"
        tmp.mkdir(parents=True, exist_ok=True)
        ahead: deque[tuple[str, Path, Future[bool]]] = deque()
        with tempfile.TemporaryDirectory(prefix="round-", dir=tmp) as folder, ThreadPoolExecutor(FETCH_THREADS) as pool:
            try:
                for number, graph in enumerate(itertools.chain(graphs, [None] * FETCH_AHEAD)):
                    if graph is not None:
                        path = Path(folder) / f"{number}.nt"
                        ahead.append((graph, path, pool.submit(self._download, graph, path)))
                    if ahead and (graph is None or len(ahead) > FETCH_AHEAD):
                        if self._stop.is_set():
                            raise _Stopped()
                        done, path, fetched = ahead.popleft()
                        yield done, path if fetched.result() else None
                        path.unlink(missing_ok=True)
            finally:
                for _, _, fetched in ahead:
                    fetched.cancel()

    def _download(self, graph: str, path: Path) -> bool:
        """Save ``graph`` of the source in ``path``; False if the source does not have it."""
        try:
            self.source.save_graph(graph, path)
        except GraphStoreError:  # e.g. 404: gone since it changed
            if self.source.has_graph(graph):
                raise
            return False
        return True

    def _record(self, seq: int, changed: int, started: float, how: str) -> None:
        """Note in ``applied.json`` (atomically) that the copy holds every change up to ``seq``."""
        tmp = self._applied_file.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps({"catalog": self._catalog_id(), "seq": seq, "at": time.time()}), encoding="utf-8")
        os.replace(tmp, self._applied_file)
        seconds = time.monotonic() - started
        self.last_round = {"how": how, "graphs": changed, "seq": seq, "seconds": round(seconds, 3)}
        log.info("copy of the public graph %s: %d graph(s) up to change #%d in %.2f s", how, changed, seq, seconds)
        oldest = oldest_pending(self.db, self.view, seq)
        if oldest is not None and time.time() - oldest > LAG_WARNING:
            log.warning("the copy of the public graph is %.0f s behind", time.time() - oldest)

    def close(self) -> None:
        """Stop following (a round under way is abandoned and undone) and release the copy."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None
        with self._lock:
            if self._store is not None:
                self._store.close()
                self._store = None


def open_replica(settings: Settings, db: StateDB, source: GraphStore, start: bool = True) -> GraphReplica | None:
    """The node's copy of the public graph when the public store is remote and ``BIA_SPARQL_REPLICA`` is not
    ``off`` (None else), following in the background if ``start``."""
    if settings.sparql_replica == "off" or not settings.public_sparql_url:
        return None
    replica = GraphReplica(settings.data_dir / "replica" / "public", db, source)
    return replica.start() if start else replica
