"""The remote graph store: any SPARQL 1.1 server over HTTP (Query, Update and Graph Store Protocol).

The base URL names the dataset; its endpoints follow ``oxigraph serve``: ``{base}/query``, ``{base}/update``
and ``{base}/store`` (override them with ``query_url``/``update_url``/``store_url`` for other servers, e.g.
Fuseki's ``/ds/sparql``, ``/ds/update``, ``/ds/data``). The server must treat the default graph as the union
of the named graphs (``oxigraph serve --union-default-graph``).

A graph is replaced without readers ever seeing half of it: the new data is uploaded (streamed) into a staging
graph by the Graph Store Protocol, then one update ``MOVE``s it over the study's graph. An interrupted upload
leaves only a staging graph, which :meth:`RemoteGraphStore.drop_stale_staging` removes later.

A server goes on with an update its client no longer waits for (a ``MOVE`` of 300,000 triples whose client was
killed landed 15 s later), so whether a replacement happened cannot be read from the graph while it may still be
under way. A tagged replacement is therefore decided by its caller: once ``before_commit`` has returned (the caller
recorded that it commits) the staging graph is never dropped, and :meth:`RemoteGraphStore.settle` completes it by
moving it (again): two moves of one staging graph leave the same graph, and a move of a staging graph already
moved fails without touching anything (``MOVE`` is never ``SILENT`` here: a silent move of a missing graph empties
the target).
"""
from __future__ import annotations

import time
import uuid
import warnings
from pathlib import Path
from typing import Any, Callable, Collection

import requests
from SPARQLWrapper import JSON, POST, SPARQLWrapper
from SPARQLWrapper.SPARQLExceptions import SPARQLWrapperException

from catalog.graph_store import (
    N_TRIPLES,
    Binding,
    GraphStore,
    GraphStoreError,
    GraphStoreTimeout,
    GraphStoreUnavailable,
    NotAcceptable,
)

STAGING_PREFIX = "urn:bia:staging:"
#: Staging graphs older than this are leftovers of interrupted uploads.
STALE_STAGING_SECONDS = 3600


class RemoteGraphStore(GraphStore):
    """A SPARQL 1.1 server at ``base_url``."""

    def __init__(
        self,
        base_url: str,
        *,
        query_url: str | None = None,
        update_url: str | None = None,
        store_url: str | None = None,
        timeout: float = 600.0,
    ) -> None:
        base = base_url.rstrip("/")
        self.query_url = query_url or f"{base}/query"
        self.update_url = update_url or f"{base}/update"
        self.store_url = store_url or f"{base}/store"
        self.timeout = timeout
        self._http = requests.Session()

    # ---------------------------------------------------------------- HTTP

    def _request(self, method: str, url: str, **kwargs: Any) -> requests.Response:
        try:
            response = self._http.request(method, url, timeout=self.timeout, **kwargs)
        except requests.Timeout as exc:
            raise GraphStoreTimeout(f"the SPARQL server at {url} did not answer within {self.timeout:g} s") from exc
        except requests.RequestException as exc:
            raise GraphStoreUnavailable(f"the SPARQL server at {url} cannot be reached: {exc}") from exc
        if response.status_code >= 500:
            raise GraphStoreUnavailable(f"the SPARQL server at {url} failed: {response.status_code} {response.text[:300]}")
        if response.status_code == 406:
            raise NotAcceptable(f"the SPARQL server cannot serialize as {kwargs.get('headers', {}).get('Accept')}")
        if response.status_code >= 400:
            raise GraphStoreError(f"the SPARQL server refused the request: {response.text[:500].strip()}")
        return response

    def _graph_params(self, graph: str) -> dict[str, str]:
        return {"graph": graph}

    # ---------------------------------------------------------------- graphs

    def replace_graph(self, graph: str, data: Path | bytes | str, format: str = N_TRIPLES, count: bool = True,
                      before_commit: Callable[[], None] | None = None, *, tag: str | None = None) -> int:
        staging = f"{STAGING_PREFIX}{time.time_ns()}:{tag or uuid.uuid4().hex}"
        headers = {"Content-Type": format}
        try:
            if isinstance(data, Path):
                with data.open("rb") as body:
                    self._request("PUT", self.store_url, params=self._graph_params(staging), data=body, headers=headers)
            else:
                body_bytes = data.encode("utf-8") if isinstance(data, str) else data
                self._request("PUT", self.store_url, params=self._graph_params(staging), data=body_bytes, headers=headers)
            if before_commit is not None:
                before_commit()
        except BaseException:
            self._drop_quietly(staging)
            raise
        try:
            self.update(f"MOVE GRAPH <{staging}> TO GRAPH <{graph}>")
        except BaseException:
            if tag is None:  # untagged work is done again whole by whoever retries it
                self._drop_quietly(staging)
            raise  # a tagged move may have landed, or land still: its staging graph stays for settle()
        return self.count(graph) if count else -1

    def settle(self, graph: str, tag: str) -> None:
        """Move the staging graph of the replacement tagged ``tag`` over ``graph`` if it is still there."""
        for staging in self._staging_graphs(tag):
            try:
                self.update(f"MOVE GRAPH <{staging}> TO GRAPH <{graph}>")
            except (GraphStoreError, GraphStoreUnavailable):  # oxigraph answers a missing source with a 500
                if staging in self._staging_graphs(tag):
                    raise
                # moved meanwhile (by the update its cut-off client had sent): nothing else was touched

    def _staging_graphs(self, tag: str) -> list[str]:
        """The staging graphs of a tagged replacement (named graphs listed from the store's index, not its data)."""
        rows = self.select(f'SELECT ?g WHERE {{ GRAPH ?g {{ }} FILTER(STRSTARTS(STR(?g), "{STAGING_PREFIX}")'
                           f' && STRENDS(STR(?g), ":{tag}")) }}')
        return [row["g"]["value"] for row in rows]

    def _drop_quietly(self, staging: str) -> None:
        try:
            self.update(f"DROP SILENT GRAPH <{staging}>")
        except GraphStoreUnavailable:
            pass  # drop_stale_staging removes it later

    def drop_graph(self, graph: str) -> None:
        self.update(f"DROP SILENT GRAPH <{graph}>")

    def has_graph(self, graph: str) -> bool:
        return self.ask(f"ASK {{ GRAPH <{graph}> {{ ?s ?p ?o }} }}")

    def graphs(self) -> list[str]:
        rows = self.select(
            f'SELECT DISTINCT ?g WHERE {{ GRAPH ?g {{ ?s ?p ?o }} FILTER(!STRSTARTS(STR(?g), "{STAGING_PREFIX}")) }}'
        )
        return sorted(r["g"]["value"] for r in rows)

    def get_graph(self, graph: str, format: str = N_TRIPLES) -> bytes:
        if not self.has_graph(graph):
            return b""
        return self._request("GET", self.store_url, params=self._graph_params(graph), headers={"Accept": format}).content

    def save_graph(self, graph: str, target: Path, format: str = N_TRIPLES) -> None:
        with self._request(
            "GET", self.store_url, params=self._graph_params(graph), headers={"Accept": format}, stream=True
        ) as response, target.open("wb") as out:
            for chunk in response.iter_content(1 << 20):
                out.write(chunk)

    def count(self, graph: str | None = None) -> int:
        where = f"GRAPH <{graph}> {{ ?s ?p ?o }}" if graph else (
            f'GRAPH ?g {{ ?s ?p ?o }} FILTER(!STRSTARTS(STR(?g), "{STAGING_PREFIX}"))'
        )
        rows = self.select(f"SELECT (COUNT(*) AS ?n) WHERE {{ {where} }}")
        return int(rows[0]["n"]["value"]) if rows else 0

    def drop_stale_staging(self, older_than: float = STALE_STAGING_SECONDS, keep: Collection[str] = ()) -> list[str]:
        """Drop staging graphs left by uploads interrupted more than ``older_than`` seconds ago, but those of the
        tagged replacements in ``keep`` (work in flight, which :meth:`settle` may still complete)."""
        rows = self.select(
            f'SELECT DISTINCT ?g WHERE {{ GRAPH ?g {{ ?s ?p ?o }} FILTER(STRSTARTS(STR(?g), "{STAGING_PREFIX}")) }}'
        )
        dropped = []
        now = time.time_ns()
        for row in rows:
            graph = row["g"]["value"]
            stamp, _, tag = graph[len(STAGING_PREFIX) :].partition(":")
            if stamp.isdigit() and now - int(stamp) >= older_than * 1e9 and tag not in keep:
                self.drop_graph(graph)
                dropped.append(graph)
        return dropped

    # ---------------------------------------------------------------- SPARQL

    def _wrapper(self, query: str) -> SPARQLWrapper:
        sparql = SPARQLWrapper(self.query_url)
        sparql.setMethod(POST)
        sparql.setReturnFormat(JSON)
        sparql.setTimeout(int(self.timeout))
        sparql.setQuery(query)
        return sparql

    def _json(self, query: str) -> dict[str, Any]:
        try:
            with warnings.catch_warnings():  # SPARQLWrapper warns about query forms it cannot guess
                warnings.simplefilter("ignore", RuntimeWarning)
                return self._wrapper(query).query().convert()  # type: ignore[return-value]
        except SPARQLWrapperException as exc:
            raise GraphStoreError(f"the SPARQL server rejected the query: {exc}") from exc
        except OSError as exc:
            raise GraphStoreUnavailable(f"the SPARQL server at {self.query_url} cannot be reached: {exc}") from exc

    def select(self, query: str) -> list[Binding]:
        result = self._json(query)
        if "results" not in result:
            raise GraphStoreError("not a SELECT query")
        return list(result["results"]["bindings"])

    def ask(self, query: str) -> bool:
        result = self._json(query)
        if "boolean" not in result:
            raise GraphStoreError("not an ASK query")
        return bool(result["boolean"])

    def query_raw(self, query, accept, default_graph_uris=(), named_graph_uris=()) -> tuple[bytes, str]:
        params = [("default-graph-uri", g) for g in default_graph_uris] + [("named-graph-uri", g) for g in named_graph_uris]
        response = self._request(
            "POST",
            self.query_url,
            params=params,
            data=query.encode("utf-8"),
            headers={"Content-Type": "application/sparql-query", "Accept": accept},
        )
        return response.content, response.headers.get("Content-Type", accept).split(";")[0].strip()

    def update(self, update: str) -> None:
        self._request(
            "POST", self.update_url, data=update.encode("utf-8"), headers={"Content-Type": "application/sparql-update"}
        )

    def close(self) -> None:
        self._http.close()
