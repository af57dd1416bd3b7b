"""A serving process fetching a window of a harvested study's file for a request it answers with those bytes (a
chunk of the file's virtual OME-Zarr): one Range request made as the workers make theirs (:class:`~.remote.HttpRanges`:
configured hosts only, redirects on the same host only, the same timeout), all of it, headers included, within the
timeout (a watchdog cuts the connection then), at most :data:`SERVING_FETCHES` at once per process, and the error a
client gets when it fails: :class:`~.remote.SourceUnavailable` (503), :class:`SourceTimeout` (504) or
:class:`SourceBadAnswer` (502)."""

from __future__ import annotations

import threading
from typing import Any

from catalog.errors import CatalogError

from .remote import HttpRanges, SourceDown, SourceFailed, SourceTimedOut, SourceUnavailable

#: kept-alive connections to one source a serving process holds (for the chunks it fetches for requests)
SERVING_CONNECTIONS = 16


class SourceBadAnswer(CatalogError):
    """The source archive's file server answered a request for a file's bytes with an error, a redirect elsewhere
    or bytes other than those asked for."""

    status = 502
    code = "source_failed"


class SourceTimeout(CatalogError):
    """The source archive's file server did not answer in time (``BIA_HEADER_REQUEST_TIMEOUT``)."""

    status = 504
    code = "source_timeout"


_SERVING_HTTP: Any = None
_SERVING_LOCK = threading.Lock()
#: fetches from sources a serving process makes at once, at most (a request waits :data:`SLOT_WAIT` s for one)
SERVING_FETCHES = 4
SLOT_WAIT = 1.0
_SLOTS = threading.BoundedSemaphore(SERVING_FETCHES)
#: per request thread, where its fetch keeps the connection it uses (so that a watchdog can cut it at the deadline)
_IN_USE = threading.local()


def _serving_http() -> Any:
    """One connection pool per serving process, for its request threads (kept-alive connections to each source);
    its connections say which request thread uses them (:data:`_IN_USE`)."""
    global _SERVING_HTTP
    with _SERVING_LOCK:
        if _SERVING_HTTP is None:
            import urllib3
            from urllib3.connection import HTTPConnection, HTTPSConnection

            class Watched(HTTPConnection):
                def request(self, *args: Any, **kwargs: Any) -> None:
                    _watch(self)
                    super().request(*args, **kwargs)

            class WatchedTLS(HTTPSConnection):
                def request(self, *args: Any, **kwargs: Any) -> None:
                    _watch(self)
                    super().request(*args, **kwargs)

            manager = urllib3.PoolManager(num_pools=8, maxsize=SERVING_CONNECTIONS, retries=False)
            manager.pool_classes_by_scheme = {
                "http": type("WatchedPool", (urllib3.HTTPConnectionPool,), {"ConnectionCls": Watched}),
                "https": type("WatchedTLSPool", (urllib3.HTTPSConnectionPool,), {"ConnectionCls": WatchedTLS}),
            }
            _SERVING_HTTP = manager
        return _SERVING_HTTP


def _watch(connection: Any) -> None:
    """Note the connection this thread's fetch sends its request on."""
    held = getattr(_IN_USE, "held", None)
    if held is not None:
        held["connection"] = connection


def _cut(held: dict[str, Any], fired: threading.Event) -> None:
    """The watchdog: close the connection a request thread waits on (its headers or body arriving too slowly)."""
    import socket

    fired.set()
    sock = getattr(held.get("connection"), "sock", None)
    if sock is not None:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


def fetch_window(url: str, name: str, offset: int, length: int, *, timeout: float, size: int | None = None) -> bytes:
    """Exactly ``length`` bytes at ``offset`` of the file at ``url`` (one Range request, redirects on the same host
    only, all of it, headers included, within ``timeout`` seconds: a watchdog cuts the connection then), for a
    request the catalog answers with them (a virtual store's chunk of a harvested file); ``size``: the file's size
    when its store was made (a file of another size has changed: 502). The caller caps ``length``. At most
    :data:`SERVING_FETCHES` fetches run at once per process, so a slow source cannot hold every request thread.
    Raises :class:`SourceUnavailable` (503: refused, reset, busy, no fetch slot), :class:`SourceTimeout` (504) or
    :class:`SourceBadAnswer` (502: an error answer, a redirect elsewhere, fewer bytes than asked, a changed file)."""
    if not _SLOTS.acquire(timeout=SLOT_WAIT):
        raise SourceUnavailable(f"the source of {name} is slow to answer: {SERVING_FETCHES} fetches from sources wait already")
    fired, held = threading.Event(), dict[str, Any]()
    _IN_USE.held = held
    watchdog = threading.Timer(timeout, _cut, (held, fired))
    watchdog.daemon = True
    watchdog.start()
    try:
        ranges = HttpRanges(url, name, size, timeout=timeout, cap=length, http=_serving_http())
        data = ranges.read(offset, length)
    except (SourceDown, SourceFailed) as exc:
        if fired.is_set():
            raise SourceTimeout(f"the source of {name} timed out: no whole answer within {timeout:g} s") from None
        if isinstance(exc, SourceDown):
            raise SourceUnavailable(f"the source of {name} is down: {exc}") from None
        if isinstance(exc, SourceTimedOut):
            raise SourceTimeout(f"the source of {name} {exc}") from None
        raise SourceBadAnswer(f"the source of {name} failed: {exc}") from None
    finally:
        watchdog.cancel()
        _IN_USE.held = None
        _SLOTS.release()
    if len(data) != length and fired.is_set():
        raise SourceTimeout(f"the source of {name} timed out: no whole answer within {timeout:g} s")
    if len(data) != length:
        raise SourceBadAnswer(f"the source of {name} sent {len(data):,} of the {length:,} bytes at {offset:,}")
    return data
