"""The change feed of a remote graph store: which named graph changed, numbered in commit order, in the state database.

Every node may keep a local copy of the public graph (:mod:`catalog.graph_replica`); it learns what to fetch again
from this feed. :class:`RecordedGraphStore` wraps the store writers use and records each graph a write touched
(``replace_graph``, ``replace_graph_from``, ``drop_graph``, ``settle``) once the write returned. The feed keeps one
row per graph (its latest change), so it never grows past the number of graphs; numbers come from one counter taken
under the site-wide write lock, so they follow commit order and a follower that has applied up to ``n`` never misses
a change numbered below ``n`` that commits later. ``update()`` may touch any graph: it records :data:`EVERYTHING`.

A write that raised is recorded too: a remote server goes on with an update its client stopped waiting for, so it
may have landed (a needless entry costs a follower one download).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any, Callable, NamedTuple, TextIO, TypeVar

from catalog.graph_store import N_TRIPLES, Binding, GraphStore
from catalog.state_db import StateDB

log = logging.getLogger(__name__)
T = TypeVar("T")

#: the graph of an entry meaning "any graph may have changed": followers copy everything again
EVERYTHING = ""


def _counter(view: str) -> str:
    return f"~graph:{view}"


class Change(NamedTuple):
    """One entry of the feed: the latest change of ``graph`` got number ``seq`` at ``changed`` (Unix time)."""

    seq: int
    graph: str
    changed: float


def record_change(db: StateDB, view: str, graph: str) -> int:
    """Record that ``graph`` of ``view`` changed; returns its number."""
    with db.transaction(write=True) as conn:
        conn.execute("INSERT INTO counters VALUES (?, 0) ON CONFLICT(name) DO NOTHING", (_counter(view),))
        seq = int(conn.execute("SELECT value FROM counters WHERE name = ?", (_counter(view),)).fetchone()[0]) + 1
        conn.execute("UPDATE counters SET value = ? WHERE name = ?", (seq, _counter(view)))
        conn.execute(
            "INSERT INTO graph_changes (view, graph, seq, changed) VALUES (?, ?, ?, ?)"
            " ON CONFLICT(view, graph) DO UPDATE SET seq = excluded.seq, changed = excluded.changed",
            (view, graph, seq, time.time()),
        )
    return seq


def latest_change(db: StateDB, view: str) -> int:
    """The number of the newest change of ``view`` (0: none yet)."""
    with db.transaction() as conn:
        found = conn.execute("SELECT max(seq) FROM graph_changes WHERE view = ?", (view,)).fetchone()[0]
    return int(found or 0)


def changes_since(db: StateDB, view: str, seq: int, limit: int = 1000) -> list[Change]:
    """The changes of ``view`` numbered after ``seq``, oldest first, at most ``limit``."""
    with db.transaction() as conn:
        rows = conn.execute(
            f"SELECT seq, graph, changed FROM graph_changes WHERE view = ? AND seq > ? ORDER BY seq LIMIT {int(limit)}",
            (view, seq),
        ).fetchall()
    return [Change(int(row[0]), str(row[1]), float(row[2])) for row in rows]


def oldest_pending(db: StateDB, view: str, seq: int) -> float | None:
    """When the oldest change numbered after ``seq`` was recorded (None: there is none)."""
    with db.transaction() as conn:
        found = conn.execute("SELECT min(changed) FROM graph_changes WHERE view = ? AND seq > ?", (view, seq)).fetchone()[0]
    return None if found is None else float(found)


class RecordedGraphStore(GraphStore):
    """A graph store whose writes are recorded in the change feed of ``view``; everything else is the inner store's."""

    def __init__(self, inner: GraphStore, db: StateDB, view: str) -> None:
        self.inner, self.db, self.view = inner, db, view
        self.keeps_tags = inner.keeps_tags

    def __getattr__(self, name: str) -> Any:  # what only the inner store has (drop_stale_staging, query_url…)
        return getattr(self.inner, name)

    def _recorded(self, graph: str, write: Callable[[], T]) -> T:
        try:
            result = write()
        except BaseException:
            try:
                record_change(self.db, self.view, graph)
            except Exception:  # noqa: BLE001 - the write's own error is the one to report
                log.warning("could not record a change of %s after a failed write", graph, exc_info=True)
            raise
        record_change(self.db, self.view, graph)
        return result

    # ---------------------------------------------------------------- writes (recorded)

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
        return self._recorded(graph, lambda: self.inner.replace_graph(graph, data, format, count, before_commit, tag=tag))

    def replace_graph_from(
        self,
        graph: str,
        produce: Callable[[TextIO], T],
        tmp_dir: Path | None = None,
        *,
        tag: str | None = None,
        before_commit: Callable[[], None] | None = None,
    ) -> T:
        return self._recorded(
            graph, lambda: self.inner.replace_graph_from(graph, produce, tmp_dir, tag=tag, before_commit=before_commit)
        )

    def drop_graph(self, graph: str) -> None:
        self._recorded(graph, lambda: self.inner.drop_graph(graph))

    def settle(self, graph: str, tag: str) -> None:
        self._recorded(graph, lambda: self.inner.settle(graph, tag))

    def update(self, update: str, *, graph: str | None = None) -> None:
        self._recorded(graph or EVERYTHING, lambda: self.inner.update(update, graph=graph))

    # ---------------------------------------------------------------- reads (the inner store's)

    def has_graph(self, graph: str) -> bool:
        return self.inner.has_graph(graph)

    def graphs(self) -> list[str]:
        return self.inner.graphs()

    def get_graph(self, graph: str, format: str = N_TRIPLES) -> bytes:
        return self.inner.get_graph(graph, format)

    def save_graph(self, graph: str, target: Path, format: str = N_TRIPLES) -> None:
        self.inner.save_graph(graph, target, format)

    def committed_tag(self, graph: str) -> str | None:
        return self.inner.committed_tag(graph)

    def version(self) -> str | None:
        return self.inner.version()

    def count(self, graph: str | None = None) -> int:
        return self.inner.count(graph)

    def select(self, query: str) -> list[Binding]:
        return self.inner.select(query)

    def ask(self, query: str) -> bool:
        return self.inner.ask(query)

    def query_raw(self, query, accept, default_graph_uris=(), named_graph_uris=()) -> tuple[bytes, str]:
        return self.inner.query_raw(query, accept, default_graph_uris, named_graph_uris)

    def close(self) -> None:
        self.inner.close()
