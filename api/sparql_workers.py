"""Public SPARQL queries with a time limit that really stops them.

pyoxigraph cannot cancel a query, and ``oxigraph serve --timeout-s`` does not stop one either. So, for the
embedded store, queries run in worker processes that open the newest published *snapshot* of the public graph
store read-only (nothing writes into a snapshot, so killing a worker never harms the store). A query that runs
past ``BIA_SPARQL_TIMEOUT`` gets its worker SIGKILLed and replaced; the client gets a ``query_timeout`` error and
every other request keeps being served.

With a remote public store (``BIA_PUBLIC_SPARQL_URL``) the remote server cannot be made to stop a query, so unless
``BIA_SPARQL_REPLICA=off`` the queries run in the same workers over the node's copy of the public graph
(:mod:`catalog.graph_replica`, which follows the remote store within about a second). Only while that copy has
never completed its first copy (a new node), or with the copy turned off, does a query go to the remote server,
with the time limit on the HTTP request only: the client gets ``query_timeout``, the server goes on.

A worker runs queries on a thread with a large stack, so the deepest query the pre-checks let through is far from
overflowing it; a worker that dies of a crash signal while it runs a query (the query's fault) answers
``400 query_failed``, one that dies otherwise (killed from outside) ``503``. No client (address) may have more than
``BIA_SPARQL_MAX_PER_CLIENT`` queries running or waiting at once, so one client cannot hold every worker.
"""

from __future__ import annotations

import json
import logging
import math
import select
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

from api.sparql_protocol import dataset
from catalog.config import Settings
from catalog.sandbox import ChildProcess, Pipe
from catalog.errors import CatalogError
from catalog.graph_replica import open_replica
from catalog.graph_store import (
    GraphStoreError,
    GraphStoreTimeout,
    GraphStoreUnavailable,
    NotAcceptable,
)

log = logging.getLogger(__name__)


class QueryTimeout(CatalogError):
    status = 503
    code = "query_timeout"


class WorkersBusy(CatalogError):
    status = 503
    code = "workers_busy"
    retry_after = 5


class ResultTooLarge(CatalogError):
    status = 413
    code = "result_too_large"


class QueryCrashed(CatalogError):
    status = 400
    code = "query_failed"


class TooManyQueries(CatalogError):
    status = 429
    code = "too_many_queries"

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


#: signals a worker dies of when the query it runs crashes it (a stack overflow aborts, a bad access faults)
CRASH_SIGNALS = frozenset({signal.SIGSEGV, signal.SIGABRT, signal.SIGBUS, signal.SIGILL, signal.SIGFPE})
#: the stack of the thread a worker runs queries on (reserved, not used, until a deep query needs it): pyoxigraph
#: recurses once per nesting level and operator, and a process's main thread has 8 MiB
WORKER_STACK_BYTES = 256 << 20


@dataclass(frozen=True)
class Run:
    """How to run one query: its dataset (pyoxigraph query options, see ``api.sparql_protocol.dataset``), the
    client it runs for (its address; "" counts as one client) and the base IRI its relative IRIs resolve against
    (the endpoint's: SPARQL 1.1 Query 4.1.1.1, RFC 3986 5.1.3)."""

    dataset: dict
    client: str = ""
    base_iri: str | None = None


# ---------------------------------------------------------------------- the worker process


class _Capped:
    """A write-only sink that stops the serializer once the result passes ``limit`` bytes (never buffering more)."""

    def __init__(self, limit: int) -> None:
        self.limit, self.size, self.over = limit, 0, False
        self.chunks: list[bytes] = []

    def write(self, data: bytes) -> int:
        self.size += len(data)
        if self.size > self.limit:
            self.over = True
            raise OSError("result over the size cap")
        self.chunks.append(bytes(data))
        return len(data)

    def flush(self) -> None:
        pass


def _worker_main(conn: Connection) -> None:
    """Answer requests on a thread with a :data:`WORKER_STACK_BYTES` stack until told to stop."""
    threading.stack_size(WORKER_STACK_BYTES)
    thread = threading.Thread(target=_answer_requests, args=(conn,), name="queries")
    thread.start()
    thread.join()


def _answer_requests(conn: Connection) -> None:
    """Answer (snapshot, query, accept, dataset options, max bytes) requests until told to stop (see
    :func:`_decoded` for the answer's form)."""
    import pyoxigraph as ox

    stores: dict[str, Any] = {}
    while True:
        try:
            request = conn.recv()
        except EOFError:
            return
        if request is None:
            return
        try:
            conn.send_bytes(_run_query(ox, stores, *request))
        except SyntaxError as exc:
            conn.send_bytes(_failure(400, "invalid_query", f"SPARQL syntax error: {exc}"))
        except Exception as exc:  # noqa: BLE001 - reported to the client in the error shape
            conn.send_bytes(_failure(400, "query_failed", f"the query failed: {exc}"))


def _run_query(ox: Any, stores: dict[str, Any], snapshot: str, query: str, accept: str, options: dict, max_bytes: int) -> bytes:
    """The answer to one request: the serialized result, or why there is none."""
    if snapshot not in stores:
        stores.clear()
        stores[snapshot] = ox.Store.read_only(snapshot) if snapshot else ox.Store()
    kwargs: dict[str, Any] = dict(options)
    for option in ("default_graph", "named_graphs"):
        if option in kwargs:
            kwargs[option] = [ox.NamedNode(g) for g in kwargs[option]]
    result = stores[snapshot].query(query, **kwargs)
    if isinstance(result, ox.QueryTriples):
        fmt = ox.RdfFormat.from_media_type(accept)
    else:
        fmt = ox.QueryResultsFormat.from_media_type(accept)
    if fmt is None:
        return _failure(406, "not_acceptable", f"no serialization of this result as {accept}")
    out = _Capped(max_bytes)
    out.chunks.append(b"+" + accept.encode("ascii", "replace") + b"\n")
    try:
        result.serialize(out, format=fmt)
    except Exception:  # noqa: BLE001 - pyoxigraph wraps what the writer raised
        if out.over:
            return _failure(413, "result_too_large", f"the result is over the {max_bytes:,}-byte cap: add a LIMIT")
        raise
    return b"".join(out.chunks)


def _failure(status: int, code: str, message: str) -> bytes:
    return b"-" + json.dumps([status, code, message]).encode()


def _decoded(answer: bytes) -> tuple:
    """A worker's answer, bytes (never unpickled: what a worker sends cannot run code here): ``+`` media type,
    newline, the result; or ``-`` and a JSON [status, code, message]. As ("ok", body, media) or ("error", status,
    code, message)."""
    if answer[:1] == b"+":
        end = answer.index(b"\n")
        return "ok", answer[end + 1 :], answer[1:end].decode("ascii")
    status, code, message = json.loads(answer[1:])
    return "error", int(status), str(code), str(message)


class _Worker(ChildProcess):
    """A query worker: ``python -m api.sparql_workers`` (a fresh interpreter; no fork of the app, no
    re-import of the app's main module), talking over two pipes."""

    def __init__(self) -> None:
        super().__init__("api.sparql_workers")
        self._answers = select.poll()  # kept: Connection.poll builds a selector per call (~10 us)
        self._answers.register(self.conn.fileno(), select.POLLIN)

    def answered_within(self, seconds: float) -> bool:
        """Whether an answer (or the end of the pipe: the worker died) is there within ``seconds``."""
        return bool(self._answers.poll(math.ceil(seconds * 1000)))


# ---------------------------------------------------------------------- the runner the endpoint uses


class ClientSlots:
    """How many queries each client has running or waiting; :class:`TooManyQueries` past ``limit``."""

    def __init__(self, limit: int, retry_after: int) -> None:
        self.limit, self.retry_after = limit, retry_after
        self._held: dict[str, int] = {}
        self._lock = threading.Lock()

    @contextmanager
    def hold(self, client: str) -> Iterator[None]:
        with self._lock:
            held = self._held.get(client, 0)
            if held >= self.limit:
                raise TooManyQueries(
                    f"this client already has {held} SPARQL quer{'y' if held == 1 else 'ies'} running or waiting "
                    f"(at most {self.limit} at once); try again when one has finished",
                    self.retry_after,
                )
            self._held[client] = held + 1
        try:
            yield
        finally:
            with self._lock:
                if self._held[client] <= 1:
                    del self._held[client]
                else:
                    self._held[client] -= 1


class QueryRunner:
    """Runs public SPARQL queries within the time limit, on the embedded snapshot or the remote public store."""

    def __init__(self, archive: Any, settings: Settings) -> None:
        self.settings = settings
        self.archive = archive
        self._remote = None
        if settings.public_sparql_url:
            from catalog.graph_store_remote import RemoteGraphStore

            self._remote = RemoteGraphStore.from_settings(
                settings.public_sparql_url, settings, read_timeout=settings.sparql_timeout
            )
        # remote mode: queries run on the node's copy of the public graph once it is complete (catalog.graph_replica)
        self.replica = open_replica(settings, archive.state, archive.public.graph)
        self._idle: list[_Worker] = []
        self._lock = threading.Lock()
        workers = max(1, settings.sparql_workers)
        self._slots = threading.BoundedSemaphore(workers)
        per_client = settings.sparql_max_per_client or max(1, workers - 1)
        self.clients = ClientSlots(per_client, retry_after=max(1, round(min(settings.sparql_timeout, 5))))

    def _snapshot(self) -> str | None:
        """The snapshot queries run on ("": an empty store; None: none, the query goes to the remote server)."""
        if self._remote is not None:
            return self.replica.snapshot() if self.replica is not None else None
        graph = self.archive.public.graph
        path = graph.checkpoint_path() if hasattr(graph, "checkpoint_path") else None
        return str(path) if path else ""

    def _take(self) -> _Worker:
        with self._lock:
            while self._idle:
                worker = self._idle.pop()
                if worker.alive():
                    return worker
                worker.kill()
        return _Worker()

    def _give_back(self, worker: _Worker) -> None:
        with self._lock:
            self._idle.append(worker)

    def run(self, query: str, accept: str, default_graphs=(), named_graphs=(), *, run: Run | None = None) -> tuple[bytes, str]:
        """The serialized result (bytes, media type); errors are :class:`CatalogError` subclasses. ``run`` gives
        the dataset (else read from the query and the graphs given) and the client."""
        run = run or Run(dataset(query, list(default_graphs), list(named_graphs)))
        with self.clients.hold(run.client):
            snapshot = self._snapshot()
            if snapshot is None:
                return self._run_remote(query, accept, run)
            if not self._slots.acquire(timeout=self.settings.sparql_timeout):
                raise WorkersBusy(f"every query worker was busy for {self.settings.sparql_timeout:g} s; try again shortly")
            options = {**run.dataset, "base_iri": run.base_iri} if run.base_iri else run.dataset
            try:
                answer = self._run_in_worker((snapshot, query, accept, options, self.settings.sparql_max_bytes))
            finally:
                self._slots.release()
        if answer[0] == "ok":
            return answer[1], answer[2]
        _, status, code, message = answer
        error = {406: NotAcceptable, 413: ResultTooLarge}.get(status, GraphStoreError)(message)
        error.status, error.code = status, code
        raise error

    def _run_remote(self, query: str, accept: str, run: Run) -> tuple[bytes, str]:
        """The remote server's answer: its dataset is the protocol's (or the query's, or the server's union), and
        the query's relative IRIs resolve against this endpoint, not the server (a ``BASE`` put before the query,
        on its first line so that the server's line numbers stay right)."""
        if run.base_iri:
            query = f"BASE <{run.base_iri}> {query}"
        default, named = run.dataset.get("default_graph", ()), run.dataset.get("named_graphs", ())
        try:
            body, media = self._remote.query_raw(query, accept, default, named)  # type: ignore[union-attr]
        except GraphStoreTimeout as exc:
            if exc.retry_after:  # the server hung on an earlier call: not asked now
                raise
            raise QueryTimeout(f"the query ran longer than {self.settings.sparql_timeout:g} s and was stopped") from exc
        if len(body) > self.settings.sparql_max_bytes:
            raise ResultTooLarge(f"the result is over the {self.settings.sparql_max_bytes:,}-byte cap: add a LIMIT")
        return body, media

    def _run_in_worker(self, request: tuple) -> tuple:
        """The worker's answer to ``request``; the worker is killed at the time limit, and its death explained."""
        worker = self._take()
        try:
            worker.conn.send(request)
            if not worker.answered_within(self.settings.sparql_timeout):
                log.warning("SPARQL query over %s s: worker %s killed", self.settings.sparql_timeout, worker.process.pid)
                worker.kill()
                raise QueryTimeout(
                    f"the query ran longer than {self.settings.sparql_timeout:g} s and was stopped; narrow it or add a LIMIT"
                )
            answer = _decoded(worker.conn.recv_bytes(self.settings.sparql_max_bytes + 65536))
        except (EOFError, OSError, ValueError) as exc:  # ValueError: an answer not in the workers' form
            raise self._died(worker, exc) from exc
        self._give_back(worker)
        return answer

    def _died(self, worker: _Worker, exc: BaseException) -> CatalogError:
        """Why a worker stopped answering: a crash signal means the query crashed it (400), else it failed (503)."""
        try:
            code = worker.process.wait(timeout=2)
        except subprocess.TimeoutExpired:
            code = None
        worker.kill()
        if code is not None and code < 0 and -code in CRASH_SIGNALS:
            name = signal.Signals(-code).name
            log.warning("SPARQL query crashed worker %s (%s)", worker.process.pid, name)
            return QueryCrashed(
                f"the query failed: it crashed the query engine ({name}); simplify it",
                [{"field": "query", "message": f"the worker died of {name}"}],
            )
        return GraphStoreUnavailable(f"the query worker failed: {exc or 'it exited'} (exit status {code})")

    def close(self) -> None:
        if self.replica is not None:
            self.replica.close()
        with self._lock:
            for worker in self._idle:
                try:
                    worker.conn.send(None)
                except OSError:
                    pass
                worker.kill()
            self._idle.clear()


if __name__ == "__main__":  # a worker process: python -m api.sparql_workers READ_FD WRITE_FD
    _worker_main(Pipe(int(sys.argv[1]), int(sys.argv[2])))  # type: ignore[arg-type]
