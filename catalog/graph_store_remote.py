"""The remote graph store: any SPARQL 1.1 server over HTTP (Query, Update and Graph Store Protocol).

The base URL names the dataset; its endpoints are paths under it (:class:`RemoteOptions`), by default those of
``oxigraph serve``: ``{base}/query``, ``{base}/update`` and ``{base}/store`` (Fuseki: ``/sparql``, ``/update``,
``/data``). The server must treat the default graph as the union of the named graphs
(``oxigraph serve --union-default-graph``).

Every call has a connect timeout and a read timeout: short for reads (queries, graph downloads: what request
threads wait on), long for writes (updates, uploads, bulk copies). A server that accepts connections but does not
answer (hung, not dead) costs a call its read timeout and then a 503 (:class:`GraphStoreTimeout`); for
``retry_seconds`` after that every call fails at once with a 503 (``Retry-After``), but one that tries the server
again, so a hung server cannot hold every request thread of a node.

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

import threading
import time
import uuid
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable, Collection

import requests
from urllib3.exceptions import ReadTimeoutError

from catalog.config import Settings
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


@dataclass(frozen=True)
class RemoteOptions:
    """Where a remote store's endpoints are under its base URL, and how long its calls may wait (seconds)."""

    query_path: str = "/query"
    update_path: str = "/update"
    store_path: str = "/store"
    connect_timeout: float = 5.0
    #: the longest wait for the next bytes of a read (query, graph download)
    read_timeout: float = 30.0
    #: the longest wait for an answer to a write (update, upload, bulk copy)
    write_timeout: float = 600.0
    #: how long calls fail at once after a call timed out (0: never)
    retry_seconds: float = 10.0

    @classmethod
    def from_settings(cls, settings: Settings) -> "RemoteOptions":
        return cls(
            query_path=settings.sparql_query_path,
            update_path=settings.sparql_update_path,
            store_path=settings.sparql_store_path,
            connect_timeout=settings.sparql_connect_timeout,
            read_timeout=settings.sparql_read_timeout,
            write_timeout=settings.sparql_write_timeout,
            retry_seconds=settings.sparql_retry_seconds,
        )


def endpoint(base_url: str, path: str) -> str:
    """``path`` under ``base_url`` (one ``/`` between them); a full ``http(s)://`` URL stands as it is."""
    if path.startswith(("http://", "https://")):
        return path
    return f"{base_url.rstrip('/')}/{path.lstrip('/')}"


class _Backoff:
    """After a call timed out, calls fail at once for ``seconds`` (the server hangs: waiting on it again would hold
    another thread for the whole timeout); then one call at a time tries the server until one is answered."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._lock = threading.Lock()
        self._until = 0.0  # calls before this time fail at once
        self._tripped = False

    def admit(self, url: str, timeout: float) -> None:
        """Let a call that may wait ``timeout`` seconds through, or raise :class:`GraphStoreTimeout`."""
        with self._lock:
            if not self._tripped:
                return
            now = time.monotonic()
            if now < self._until:
                wait = max(1, round(self._until - now))
                error = GraphStoreTimeout(f"the SPARQL server at {url} did not answer in time; it is asked again in {wait} s")
                error.retry_after = wait
                raise error
            self._until = now + timeout  # this call tries it; the others fail at once meanwhile

    def clear(self) -> None:
        """The server answered (or failed at once): calls go through again."""
        if self._tripped:
            with self._lock:
                self._tripped, self._until = False, 0.0

    def timed_out(self) -> None:
        if self.seconds > 0:
            with self._lock:
                self._tripped, self._until = True, time.monotonic() + self.seconds


def _timed_out(exc: requests.RequestException) -> bool:
    """Whether a call failed by waiting too long (to connect, or for the next bytes of a body being read)."""
    return isinstance(exc, requests.Timeout) or any(isinstance(arg, ReadTimeoutError) for arg in exc.args)


class RemoteGraphStore(GraphStore):
    """A SPARQL 1.1 server at ``base_url``."""

    def __init__(self, base_url: str, options: RemoteOptions | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.options = options = options or RemoteOptions()
        self.query_url = endpoint(base_url, options.query_path)
        self.update_url = endpoint(base_url, options.update_path)
        self.store_url = endpoint(base_url, options.store_path)
        self._backoff = _Backoff(options.retry_seconds)
        self._http = requests.Session()

    @classmethod
    def from_settings(cls, base_url: str, settings: Settings, **changes: Any) -> "RemoteGraphStore":
        """The store at ``base_url`` with the endpoint paths and time limits of ``settings`` (``changes``: some of
        them otherwise, e.g. the public SPARQL endpoint's read timeout)."""
        return cls(base_url, replace(RemoteOptions.from_settings(settings), **changes))

    # ---------------------------------------------------------------- HTTP

    def _request(
        self, method: str, url: str, *, write: bool = False, read_timeout: float | None = None, **kwargs: Any
    ) -> requests.Response:
        """One call; ``write``: with the write timeout, else the read timeout (or ``read_timeout``)."""
        options = self.options
        wait = read_timeout or (options.write_timeout if write else options.read_timeout)
        self._backoff.admit(url, options.connect_timeout + wait)
        try:
            response = self._http.request(method, url, timeout=(options.connect_timeout, wait), **kwargs)
        except requests.RequestException as exc:
            if not _timed_out(exc):
                self._backoff.clear()  # refused or reset at once: no thread waits on it
                raise GraphStoreUnavailable(f"the SPARQL server at {url} cannot be reached: {exc}") from exc
            if self._backoff.seconds > 0 and self._hangs():
                self._backoff.timed_out()
            else:  # a slow query on a server that answers: the others go on
                self._backoff.clear()
            limit = options.connect_timeout if isinstance(exc, requests.ConnectTimeout) else wait
            raise GraphStoreTimeout(f"the SPARQL server at {url} did not answer within {limit:g} s") from exc
        self._backoff.clear()
        if response.status_code >= 500:
            raise GraphStoreUnavailable(f"the SPARQL server at {url} failed: {response.status_code} {response.text[:300]}")
        if response.status_code == 406:
            raise NotAcceptable(f"the SPARQL server cannot serialize as {kwargs.get('headers', {}).get('Accept')}")
        if response.status_code >= 400:
            raise GraphStoreError(f"the SPARQL server refused the request: {response.text[:500].strip()}")
        return response

    def _hangs(self) -> bool:
        """Whether the server leaves even ``ASK {}`` unanswered for the connect timeout (after a call timed out:
        a hung server, not a slow query)."""
        wait = self.options.connect_timeout
        try:
            self._http.post(
                self.query_url, data=b"ASK {}", timeout=(wait, wait), headers={"Content-Type": "application/sparql-query"}
            )
        except requests.RequestException as exc:
            return _timed_out(exc)
        return False

    def ping(self, timeout: float | None = None) -> None:
        """Ask the query endpoint ``ASK {}`` with a short read timeout (the connect timeout, or ``timeout``);
        raises :class:`GraphStoreUnavailable` (or its timeout) when it does not answer."""
        wait = timeout or self.options.connect_timeout
        response = self._request(
            "POST",
            self.query_url,
            read_timeout=wait,
            data=b"ASK {}",
            headers={"Content-Type": "application/sparql-query", "Accept": "application/sparql-results+json"},
        )
        if "boolean" not in self._decode(response):
            raise GraphStoreUnavailable(f"the SPARQL server at {self.query_url} did not answer an ASK query")

    def _graph_params(self, graph: str) -> dict[str, str]:
        return {"graph": graph}

    # ---------------------------------------------------------------- graphs

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
        staging = f"{STAGING_PREFIX}{time.time_ns()}:{tag or uuid.uuid4().hex}"
        headers = {"Content-Type": format}
        try:
            if isinstance(data, Path):
                with data.open("rb") as body:
                    self._request(
                        "PUT", self.store_url, write=True, params=self._graph_params(staging), data=body, headers=headers
                    )
            else:
                body_bytes = data.encode("utf-8") if isinstance(data, str) else data
                self._request(
                    "PUT", self.store_url, write=True, params=self._graph_params(staging), data=body_bytes, headers=headers
                )
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
        rows = self.select(
            f'SELECT ?g WHERE {{ GRAPH ?g {{ }} FILTER(STRSTARTS(STR(?g), "{STAGING_PREFIX}") && STRENDS(STR(?g), ":{tag}")) }}'
        )
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
        """Stream one graph to ``target`` (a bulk copy: the write timeout)."""
        with (
            self._request(
                "GET", self.store_url, write=True, params=self._graph_params(graph), headers={"Accept": format}, stream=True
            ) as response,
            target.open("wb") as out,
        ):
            try:
                for chunk in response.iter_content(1 << 20):
                    out.write(chunk)
            except requests.RequestException as exc:
                raise GraphStoreUnavailable(f"the SPARQL server at {self.store_url} broke off {graph}: {exc}") from exc

    def count(self, graph: str | None = None) -> int:
        where = (
            f"GRAPH <{graph}> {{ ?s ?p ?o }}"
            if graph
            else (f'GRAPH ?g {{ ?s ?p ?o }} FILTER(!STRSTARTS(STR(?g), "{STAGING_PREFIX}"))')
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

    def _json(self, query: str) -> dict[str, Any]:
        """A SELECT's or ASK's results (SPARQL 1.1 Query Results JSON), with the read timeout."""
        response = self._request(
            "POST",
            self.query_url,
            data=query.encode("utf-8"),
            headers={"Content-Type": "application/sparql-query", "Accept": "application/sparql-results+json"},
        )
        return self._decode(response)

    def _decode(self, response: requests.Response) -> dict[str, Any]:
        try:
            result = response.json()
        except ValueError as exc:  # cut off, or not JSON: the server failed, not the query
            raise GraphStoreUnavailable(f"the SPARQL server at {self.query_url} sent no JSON results: {exc}") from exc
        if not isinstance(result, dict):
            raise GraphStoreUnavailable(f"the SPARQL server at {self.query_url} sent no JSON results")
        return result

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

    def update(self, update: str, *, graph: str | None = None) -> None:
        self._request(
            "POST",
            self.update_url,
            write=True,
            data=update.encode("utf-8"),
            headers={"Content-Type": "application/sparql-update"},
        )

    def close(self) -> None:
        self._http.close()
