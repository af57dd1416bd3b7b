"""The graph store interface: one named graph per study, in an embedded Oxigraph or a remote SPARQL 1.1 server.

Every implementation gives the same guarantees:

* :meth:`GraphStore.replace_graph` swaps a whole named graph; a reader sees the old graph or the new one, and a
  crash (even ``kill -9``) in the middle leaves the old one (or none, if there was none);
* queries see the union of the named graphs as their default graph (studies live only in named graphs);
* errors the caller can cause are :class:`GraphStoreError` (HTTP 400/406), a store that cannot be reached is
  :class:`GraphStoreUnavailable` (503).

:func:`catalog.stores.open_graph_store` picks the implementation from the location: a folder path opens the embedded store
(:mod:`catalog.graph_store_embedded`), an ``http(s)://`` URL the remote one (:mod:`catalog.graph_store_remote`).
"""

from __future__ import annotations

import abc
import os
import tempfile
from pathlib import Path
from typing import Callable, Iterable, TextIO, TypeVar

from catalog.errors import CatalogError

N_TRIPLES = "application/n-triples"
#: Binding dicts as in the SPARQL 1.1 Query Results JSON Format: ``{"var": {"type": "uri", "value": ...}}``.
Binding = dict[str, dict[str, str]]
T = TypeVar("T")


class GraphStoreError(CatalogError):
    """A query or update the store rejected (syntax, unsupported feature)."""

    status = 400
    code = "invalid_query"


class NotAcceptable(GraphStoreError):
    """No serialization of the result in the requested media type."""

    status = 406
    code = "not_acceptable"


class GraphStoreUnavailable(CatalogError):
    """The store cannot be reached or is held by another process."""

    status = 503
    code = "graph_store_unavailable"


class GraphStoreTimeout(GraphStoreUnavailable):
    """A request to a remote store ran past its time limit."""

    code = "graph_store_timeout"


class GraphStore(abc.ABC):
    """A set of named graphs with SPARQL 1.1 query and update."""

    #: whether :meth:`committed_tag` knows the tag of every committed replacement (atomically with the data)
    keeps_tags = False

    # ---------------------------------------------------------------- graphs

    @abc.abstractmethod
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
        """Replace the named graph ``graph`` with ``data`` (a file, or serialized RDF); ``before_commit`` runs once the
        data is in the store and before the replacement becomes visible; ``tag`` names the replacement (see
        :meth:`replace_graph_from`).

        Returns the graph's triple count (``-1`` when ``count`` is false: counting a huge graph takes seconds).
        """

    def replace_graph_from(
        self,
        graph: str,
        produce: Callable[[TextIO], T],
        tmp_dir: Path | None = None,
        *,
        tag: str | None = None,
        before_commit: Callable[[], None] | None = None,
    ) -> T:
        """Replace ``graph`` with the N-Triples ``produce(out)`` writes (streamed); returns what ``produce`` returns.

        ``before_commit`` runs once the data is ready, before the replacement becomes visible; ``tag`` names this
        replacement for :meth:`committed_tag`, or, on stores that cannot keep it atomically with the data, for
        :meth:`settle`."""
        fd, name = tempfile.mkstemp(prefix="graph-", suffix=".nt", dir=tmp_dir)
        path = Path(name)
        try:
            with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as out:
                result = produce(out)
            self.replace_graph(graph, path, count=False, before_commit=before_commit, tag=tag)
        finally:
            path.unlink(missing_ok=True)
        return result

    @abc.abstractmethod
    def drop_graph(self, graph: str) -> None:
        """Remove a named graph (no error if it does not exist)."""

    @abc.abstractmethod
    def has_graph(self, graph: str) -> bool:
        """Whether the named graph exists (holds at least one triple)."""

    @abc.abstractmethod
    def graphs(self) -> list[str]:
        """The IRIs of every named graph."""

    @abc.abstractmethod
    def get_graph(self, graph: str, format: str = N_TRIPLES) -> bytes:
        """One named graph, serialized in the media type ``format``."""

    def committed_tag(self, graph: str) -> str | None:
        """The ``tag`` of the last replacement of ``graph`` that was committed (None: not known)."""
        return None

    def settle(self, graph: str, tag: str) -> None:
        """Complete the replacement of ``graph`` tagged ``tag`` whose ``before_commit`` ran (its data all in the
        store) if the process doing it was cut off before it became visible; idempotent. Stores whose replacement is
        atomic with its commit point (:attr:`keeps_tags`) have nothing to do."""

    def version(self) -> str | None:
        """An identifier of the store's current state that changes with every change (None: not known, e.g.
        a remote server): what caches of rendered records are keyed by."""
        return None

    def save_graph(self, graph: str, target: Path, format: str = N_TRIPLES) -> None:
        """Write one named graph to a file (implementations stream it rather than hold it in memory)."""
        target.write_bytes(self.get_graph(graph, format))

    def count(self, graph: str | None = None) -> int:
        """Triples in one named graph, or quads in all of them."""
        where = f"GRAPH <{graph}> {{ ?s ?p ?o }}" if graph else "GRAPH ?g { ?s ?p ?o }"
        rows = self.select(f"SELECT (COUNT(*) AS ?n) WHERE {{ {where} }}")
        return int(rows[0]["n"]["value"]) if rows else 0

    # ---------------------------------------------------------------- SPARQL

    @abc.abstractmethod
    def select(self, query: str) -> list[Binding]:
        """The solutions of a SELECT query as SPARQL-JSON bindings (unbound variables are absent)."""

    @abc.abstractmethod
    def ask(self, query: str) -> bool:
        """The answer of an ASK query."""

    @abc.abstractmethod
    def query_raw(
        self,
        query: str,
        accept: str,
        default_graph_uris: tuple[str, ...] | list[str] = (),
        named_graph_uris: tuple[str, ...] | list[str] = (),
    ) -> tuple[bytes, str]:
        """Run any query form and serialize its result in the media type ``accept``; returns (body, media type).

        ``default_graph_uris``/``named_graph_uris`` are the SPARQL protocol's dataset parameters; without them
        the default graph is the union of all named graphs.
        """

    @abc.abstractmethod
    def update(self, update: str, *, graph: str | None = None) -> None:
        """Run a SPARQL 1.1 Update (atomically); ``graph``: the one named graph it changes, when only one."""

    # ---------------------------------------------------------------- lifecycle

    def close(self) -> None:
        """Release the store."""

    def __enter__(self) -> "GraphStore":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def predicate_filter(excluded: Iterable[str]) -> str:
    """A SPARQL ``FILTER`` leaving the ``?p`` predicates ``excluded`` out (empty when there are none)."""
    iris = ", ".join(f"<{p}>" for p in sorted(excluded))
    return f" FILTER(?p NOT IN ({iris}))" if iris else ""
