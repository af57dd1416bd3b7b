"""A local HTTP file server that answers Range requests, replaying real files as a source archive's file server does.

``RangeServer()`` serves ``server.files`` (URL path → bytes or a local file) on a free loopback port, HTTP/1.1 with
kept-alive connections, one thread per connection: ``Range: bytes=a-b`` (or ``a-``, ``-n``) gets 206 with
``Content-Range``, a range past the end 416, no range 200 with the whole file, an unknown path 404. Every request is
logged in ``server.requests`` as ``(path, range header)``. ``server.quirks[path]`` changes what a path answers, one
quirk per request in order (the last repeats): None (none), a status (``503``), ``("redirect", location)``, ``("slow",
seconds)`` (wait before answering), ``"no-range"`` (the whole file, whatever the range). The :func:`range_server`
fixture starts one and stops it after the test.
"""

from __future__ import annotations

import re
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Iterator

import pytest


class RangeServer:
    def __init__(self) -> None:
        self.files: dict[str, bytes | Path] = {}
        self.quirks: dict[str, list[Any]] = {}
        self.requests: list[tuple[str, str | None]] = []
        self._lock = threading.Lock()
        self.httpd = _Server(("127.0.0.1", 0), _Handler)
        self.httpd.daemon_threads = True
        self.httpd.range_server = self  # type: ignore[attr-defined]
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def start(self) -> "RangeServer":
        self.thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def add(self, path: str, content: bytes | Path) -> str:
        """Serve ``content`` at ``path``; returns its URL."""
        self.files[path] = content
        return self.url + path

    def requests_for(self, path: str) -> list[str | None]:
        with self._lock:
            return [r for p, r in self.requests if p == path]

    def _log(self, path: str, range_header: str | None) -> Any:
        """Log a request; the quirk it gets (None: none)."""
        with self._lock:
            self.requests.append((path, range_header))
            queue = self.quirks.get(path)
            if not queue:
                return None
            return queue.pop(0) if len(queue) > 1 else queue[0]


class _Server(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that closed its connection (a reset, e.g. after giving up waiting) is no error worth printing."""
        if not isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    #: headers and body are two writes: without TCP_NODELAY the body waits for the client's delayed ACK (40 ms)
    disable_nagle_algorithm = True

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        server: RangeServer = self.server.range_server  # type: ignore[attr-defined]
        path = self.path.split("?", 1)[0]
        quirk = server._log(path, self.headers.get("Range"))
        if isinstance(quirk, tuple) and quirk[0] == "slow":
            time.sleep(quirk[1])
        elif isinstance(quirk, tuple) and quirk[0] == "redirect":
            return self._send(302, b"", [("Location", quirk[1])])
        elif isinstance(quirk, int):
            return self._send(quirk, b"quirk\n")
        content = server.files.get(path)
        if content is None:
            return self._send(404, b"not found\n")
        size = content.stat().st_size if isinstance(content, Path) else len(content)
        wanted = None if quirk == "no-range" else _range(self.headers.get("Range"), size)
        if wanted is None:
            return self._send(200, _slice(content, 0, size))
        if wanted == "unsatisfiable":
            return self._send(416, b"", [("Content-Range", f"bytes */{size}")])
        start, end = wanted
        self._send(206, _slice(content, start, end + 1), [("Content-Range", f"bytes {start}-{end}/{size}")])

    def _send(self, status: int, body: bytes, headers: list[tuple[str, str]] = ()) -> None:  # type: ignore[assignment]
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(len(body)))
            for name, value in headers:
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):  # the client took what it wanted, or gave up waiting, and closed
            self.close_connection = True


def _slice(content: bytes | Path, start: int, stop: int) -> bytes:
    """Bytes ``start`` to ``stop`` (exclusive) of the content (of a file: only those are read)."""
    if isinstance(content, bytes):
        return content[start:stop]
    with content.open("rb") as handle:
        handle.seek(start)
        return handle.read(stop - start)


def _range(header: str | None, size: int) -> tuple[int, int] | str | None:
    """The (start, end) of a single-range header, ``"unsatisfiable"``, or None (no usable header: the whole file)."""
    found = re.fullmatch(r"bytes=(\d*)-(\d*)", (header or "").strip())
    if not found or found.group(1) == found.group(2) == "":
        return None
    if found.group(1) == "":
        start, end = max(0, size - int(found.group(2))), size - 1
    else:
        start = int(found.group(1))
        end = min(size - 1, int(found.group(2))) if found.group(2) else size - 1
    return "unsatisfiable" if start >= size or end < start else (start, end)


@pytest.fixture
def range_server() -> Iterator[RangeServer]:
    server = RangeServer().start()
    try:
        yield server
    finally:
        server.stop()
