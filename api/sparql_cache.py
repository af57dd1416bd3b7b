"""Answers to repeated public SPARQL GETs, kept per process until the public graph store publishes a snapshot.

Public queries read a published snapshot, which never changes, so the same query (same query string, same
``Accept``) gets the same answer until the next snapshot. This WSGI layer sits in front of the Flask app, as a
reverse-proxy cache would: it keeps the complete answers (status, headers, body) the endpoint marked cacheable
with an ``ETag`` (deterministic queries without ``SERVICE``; see ``api.routes_sparql``), replays them without
running Flask or the query, and answers a matching ``If-None-Match`` with ``304``. A new snapshot (a release,
a new version of a study, a withdrawal) empties it, so it never serves what the store no longer says.
The cache is bounded in bytes and drops the least recently used answers first.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable
from typing import Any

from werkzeug.http import parse_etags, unquote_etag

WSGIApp = Callable[[dict, Callable], Iterable[bytes]]
#: headers a 304 repeats (RFC 9110 15.4.5), plus CORS so browser clients can read it
_NOT_MODIFIED_HEADERS = {"etag", "cache-control", "vary", "access-control-allow-origin", "access-control-expose-headers"}


class _Answer:
    __slots__ = ("body", "etag", "headers", "status")

    def __init__(self, status: str, headers: list[tuple[str, str]], body: bytes) -> None:
        self.status, self.headers, self.body = status, headers, body
        self.etag = next((v for k, v in headers if k.lower() == "etag"), None)


def etag_matches(if_none_match: str | None, etag: str) -> bool:
    """Whether an ``If-None-Match`` header names ``etag`` (weak comparison, ``*`` included; werkzeug parses it)."""
    return parse_etags(if_none_match).contains_weak(unquote_etag(etag)[0])


class SparqlResultCache:
    """WSGI middleware caching cacheable ``GET {path}`` answers of ``app`` under the store's ``version()``."""

    def __init__(self, app: WSGIApp, version: Callable[[], str | None], max_bytes: int, path: str = "/sparql") -> None:
        self.app, self.version, self.max_bytes, self.path = app, version, max_bytes, path
        self.max_entry = max(1, max_bytes // 8)  # one huge answer never evicts everything else
        self._entries: OrderedDict[tuple[str, str], _Answer] = OrderedDict()
        self._size = 0
        self._of_version: str | None = None
        self._lock = threading.Lock()
        self.hits = self.misses = 0

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        if environ.get("REQUEST_METHOD") != "GET" or environ.get("PATH_INFO") != self.path or not environ.get("QUERY_STRING"):
            return self.app(environ, start_response)
        version = self.version()
        if version is None:  # a store that cannot say when it changed (remote): nothing is kept
            return self.app(environ, start_response)
        key = (environ["QUERY_STRING"], environ.get("HTTP_ACCEPT", ""))
        with self._lock:
            if version != self._of_version:
                self._entries.clear()
                self._size, self._of_version = 0, version
            answer = self._entries.get(key)
            if answer is not None:
                self._entries.move_to_end(key)
                self.hits += 1
            else:
                self.misses += 1
        if answer is not None:
            return self._replay(answer, environ, start_response)
        return self._run_and_keep(key, version, environ, start_response)

    def _replay(self, answer: _Answer, environ: dict, start_response: Callable) -> Iterable[bytes]:
        if answer.etag and etag_matches(environ.get("HTTP_IF_NONE_MATCH"), answer.etag):
            start_response("304 Not Modified", [(k, v) for k, v in answer.headers if k.lower() in _NOT_MODIFIED_HEADERS])
            return []
        start_response(answer.status, list(answer.headers))
        return [answer.body]

    def _run_and_keep(self, key: tuple[str, str], version: str, environ: dict, start_response: Callable) -> Iterable[bytes]:
        seen: dict[str, Any] = {}

        def capture(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Callable:
            seen["status"], seen["headers"] = status, headers
            return start_response(status, headers, exc_info)

        result = self.app(environ, capture)
        headers = seen.get("headers") or []
        if not seen.get("status", "").startswith("200") or not any(k.lower() == "etag" for k, _ in headers):
            return result  # errors and non-deterministic queries pass through untouched
        try:
            body = b"".join(result)
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()
        if len(body) <= self.max_entry:
            self._keep(key, version, _Answer(seen["status"], list(headers), body))
        return [body]

    def _keep(self, key: tuple[str, str], version: str, answer: _Answer) -> None:
        with self._lock:
            if version != self._of_version or key in self._entries:
                return  # a newer snapshot was published meanwhile, or another thread kept it first
            self._entries[key] = answer
            self._size += len(answer.body)
            while self._size > self.max_bytes and self._entries:
                _, dropped = self._entries.popitem(last=False)
                self._size -= len(dropped.body)

    def stats(self) -> dict[str, int]:
        with self._lock:
            return {"entries": len(self._entries), "bytes": self._size, "hits": self.hits, "misses": self.misses}
