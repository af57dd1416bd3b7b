"""A local HTTP server that replays recorded responses of real APIs (BioStudies, EMPIAR, IDR) for harvest tests.

``ReplayServer(routes)`` maps a URL path to a recorded body (bytes, or a file), or to a list of responses
served one after the other (the last one repeats): e.g. a 503 then the record, to test retries. Every request
is logged in ``server.requests``. The :func:`replay_server` fixture starts one on a free loopback port.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Iterator

import pytest


@dataclass
class Response:
    """One recorded response."""

    body: bytes | Path = b""
    status: int = 200
    content_type: str = "application/json"
    headers: tuple[tuple[str, str], ...] = ()

    def payload(self) -> bytes:
        return self.body.read_bytes() if isinstance(self.body, Path) else self.body


class ReplayServer:
    """Serves ``routes`` on 127.0.0.1; unknown paths get 404."""

    def __init__(self) -> None:
        self.routes: dict[str, list[Response]] = {}
        self.requests: list[str] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                server.requests.append(self.path)
                queue = server.routes.get(self.path.split("?", 1)[0])
                response = (queue.pop(0) if len(queue) > 1 else queue[0]) if queue else Response(b"not found", 404, "text/plain")
                payload = response.payload()
                self.send_response(response.status)
                self.send_header("Content-Type", response.content_type)
                self.send_header("Content-Length", str(len(payload)))
                for name, value in response.headers:
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def add(self, path: str, *responses: Response | bytes | Path, content_type: str = "application/json") -> None:
        """Serve ``responses`` (in order; the last repeats) at ``path``."""
        self.routes[path] = [r if isinstance(r, Response) else Response(r, 200, content_type) for r in responses]

    def start(self) -> "ReplayServer":
        self.thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def replay_server() -> Iterator[ReplayServer]:
    server = ReplayServer().start()
    try:
        yield server
    finally:
        server.stop()
