"""Readiness (``/ready``): whether this node can serve, checked against what it serves from.

``/health`` is liveness: it answers whatever the stores do. ``/ready`` asks each of them: the state database, both
graph servers (a cheap ``ASK {}`` with a short timeout) and the file store (S3: the bucket answers a HEAD; a local
folder: a file can be written in it). The checks run side by side within ``BIA_READY_TIMEOUT`` seconds in all.

A check that does not answer is not started again while it runs: however often ``/ready`` is asked, a hung store
holds one thread per check, and each later ``/ready`` waits on that same check (within its own time cap).
"""

from __future__ import annotations

import tempfile
import threading
import time
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any, Callable

from catalog.errors import CatalogError
from catalog.file_store import FileStore
from catalog.file_store_local import LocalFileStore
from catalog.graph_store import GraphStore

Check = Callable[[], None]


class NotReady(CatalogError):
    """A store this node serves from does not answer."""

    status = 503
    code = "not_ready"
    retry_after = 5


class Readiness:
    """Named checks, run concurrently within ``timeout`` seconds in all."""

    def __init__(self, checks: dict[str, Check], timeout: float) -> None:
        self.checks = checks
        self.timeout = timeout
        self._lock = threading.Lock()
        self._running: dict[str, tuple[Future, float]] = {}

    def _start(self, name: str) -> tuple[Future, float]:
        """The check ``name`` under way (the one still running from an earlier call, or a new one) and when it
        started."""
        with self._lock:
            running = self._running.get(name)
            if running is not None and not running[0].done():
                return running
            future: Future = Future()
            started = time.monotonic()
            self._running[name] = (future, started)
        threading.Thread(target=_run, args=(self.checks[name], future), name=f"ready-{name}", daemon=True).start()
        return future, started

    def run(self) -> dict[str, dict[str, Any]]:
        """Each check's ``status`` (``ok``, ``failed``, ``timeout``), ``seconds`` and, if it failed, ``message``."""
        deadline = time.monotonic() + self.timeout
        under_way = {name: self._start(name) for name in self.checks}
        results = {}
        for name, (future, started) in under_way.items():
            try:
                future.result(timeout=max(0.0, deadline - time.monotonic()))
                results[name] = {"status": "ok", "seconds": round(time.monotonic() - started, 4)}
            except FutureTimeout:
                results[name] = {
                    "status": "timeout",
                    "seconds": round(time.monotonic() - started, 4),
                    "message": f"no answer within {self.timeout:g} s",
                }
            except Exception as exc:  # noqa: BLE001 - reported, whatever the store raised
                results[name] = {
                    "status": "failed",
                    "seconds": round(time.monotonic() - started, 4),
                    "message": getattr(exc, "message", None) or f"{type(exc).__name__}: {exc}",
                }
        return results

    def answer(self) -> dict[str, Any]:
        """``{"status": "ready", "checks": ...}``, or :class:`NotReady` naming each check that failed."""
        checks = self.run()
        failed = {name: result for name, result in checks.items() if result["status"] != "ok"}
        if failed:
            raise NotReady(
                "not ready: " + "; ".join(f"{name}: {result['message']}" for name, result in failed.items()),
                [{"check": name, "message": "ok", **result} for name, result in checks.items()],
            )
        return {"status": "ready", "checks": checks}


def _run(check: Check, future: Future) -> None:
    try:
        check()
    except BaseException as exc:  # noqa: BLE001 - handed to whoever waits
        future.set_exception(exc)
    else:
        future.set_result(None)


def graph_check(store: GraphStore, timeout: float) -> Check:
    """Ask the store ``ASK {}`` (a remote one with ``timeout`` as its read timeout)."""
    ping = getattr(store, "ping", None)

    def ask() -> None:
        if ping is not None:
            ping(timeout)
        else:
            store.ask("ASK {}")

    return ask


def file_store_check(store: FileStore) -> Check:
    """S3: the bucket answers; a local folder: a file can be written in it."""
    ping = getattr(store, "ping", None)
    if ping is not None:
        return ping
    if isinstance(store, LocalFileStore):

        def writable() -> None:
            with tempfile.TemporaryFile(dir=store.root, prefix=".bia-ready-") as probe:
                probe.write(b"ready")
                probe.flush()

        return writable
    return lambda: None


#: seconds the node's copy of the public graph may lag behind the public store before the node is not ready
REPLICA_MAX_LAG = 300.0


def replica_check(replica: Any) -> Check:
    """The node's copy of the public graph (remote mode) is not ready while it lags more than
    :data:`REPLICA_MAX_LAG` behind: its answers would be stale (before its first copy, queries go to the server)."""

    def check() -> None:
        status = replica.status()
        if status["lag_seconds"] > REPLICA_MAX_LAG:
            raise NotReady(
                f"the copy of the public graph is {status['lag_seconds']:.0f} s behind"
                + (f" ({status['error']})" if status.get("error") else "")
            )

    return check


def node_readiness(services: Any, timeout: float, replica: Any = None) -> Readiness:
    """The checks of a node serving ``services``' archive (and its copy of the public graph, if it keeps one)."""
    archive = services.archive

    def database() -> None:
        archive.registry.ping()

    checks: dict[str, Check] = {"database": database, "graph_public": graph_check(archive.public.graph, timeout)}
    if archive.private is not None:
        checks["graph_private"] = graph_check(archive.private.graph, timeout)
    checks["files"] = file_store_check(archive.file_store)
    if replica is not None:
        checks["sparql_replica"] = replica_check(replica)
    return Readiness(checks, timeout)
