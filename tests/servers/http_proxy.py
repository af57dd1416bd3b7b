"""A small HTTP proxy in front of a real server, for the failures and layouts of other servers.

It forwards each request to ``target`` (``routes`` rewrite paths: a server whose endpoints are elsewhere, e.g.
Fuseki's ``/ds/sparql``, in front of ``oxigraph serve``'s ``/query``; a path not in ``routes`` is a 404), and it can
hang: after :meth:`HttpProxy.hang` (``after`` requests more), it accepts connections and reads requests but never
answers them, as a hung (not dead) server does, until :meth:`HttpProxy.recover` or :meth:`HttpProxy.close`.
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable, Iterator

import pytest
import requests

FORWARDED = ("Content-Type", "Accept")


class HttpProxy:
    """The proxy, serving on a free loopback port from a thread of its own."""

    def __init__(self, target: str, routes: dict[str, str] | None = None) -> None:
        self.target = target.rstrip("/")
        self.routes = routes
        self.requests: list[str] = []
        self._lock = threading.Lock()
        self._answer_left: int | None = None  # None: answer all
        self._released = threading.Event()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._server.daemon_threads = True
        self._server.proxy = self  # type: ignore[attr-defined]
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def hang(self, after: int = 0) -> None:
        """Answer ``after`` more requests, then none."""
        with self._lock:
            self._answer_left = after
            self._released.clear()

    def recover(self) -> None:
        """Answer again (requests left hanging get no answer: their connections are closed)."""
        with self._lock:
            self._answer_left = None
        self._released.set()

    def close(self) -> None:
        self._released.set()
        self._server.shutdown()
        self._server.server_close()

    def answers(self, path: str) -> bool:
        """Whether this request is to be answered (counted), or left hanging."""
        with self._lock:
            self.requests.append(path)
            if self._answer_left is None:
                return True
            if self._answer_left > 0:
                self._answer_left -= 1
                return True
            return False

    def wait_released(self) -> None:
        self._released.wait()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:  # quiet
        pass

    def _forward(self) -> None:
        proxy: HttpProxy = self.server.proxy  # type: ignore[attr-defined]
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        path, _, query = self.path.partition("?")
        if not proxy.answers(path):
            proxy.wait_released()
            self.close_connection = True
            return
        if proxy.routes is not None:
            if path not in proxy.routes:
                self._send(404, b"no such endpoint here\n", "text/plain")
                return
            path = proxy.routes[path]
        headers = {name: self.headers[name] for name in FORWARDED if self.headers.get(name)}
        answer = requests.request(
            self.command, f"{proxy.target}{path}" + (f"?{query}" if query else ""), data=body, headers=headers, timeout=60
        )
        self._send(answer.status_code, answer.content, answer.headers.get("Content-Type"))

    def _send(self, status: int, body: bytes, content_type: str | None) -> None:
        self.send_response(status)
        if content_type:
            self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_PUT = do_DELETE = _forward


@pytest.fixture
def http_proxy() -> Iterator[Callable[..., HttpProxy]]:
    """``http_proxy(target, routes=None)``: a :class:`HttpProxy`, closed after the test."""
    made: list[HttpProxy] = []

    def make(target: str, routes: dict[str, str] | None = None) -> HttpProxy:
        made.append(HttpProxy(target, routes))
        return made[-1]

    yield make
    for proxy in made:
        proxy.close()
