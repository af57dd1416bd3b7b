"""What the public SPARQL endpoint refuses, and how it stays available: query text over the size limit (413,
unread), queries nested or chained past the limits (400), a query that crashes its worker (400) against a
worker killed from outside (503), one client's concurrent queries (429 past the per-client limit while others
are served), SERVICE targets written as pyoxigraph's parser reads them, and /health answering while big and
long queries are parsed and run. Real HTTP: a served app on a threaded WSGI server, real query workers."""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from werkzeug.serving import make_server

from api.app import create_app
from loaders.harvest import Harvester
from tests.servers.seaweedfs_server import free_ports

SAMPLES = Path(__file__).parent / "data"
ERROR_KEYS = {"code", "status", "message", "errors"}
COUNT = "SELECT (COUNT(*) AS ?n) WHERE { ?s ?p ?o }"
#: runs until the time limit on any catalog (a five-way cross join)
HEAVY = "SELECT (COUNT(*) AS ?n) WHERE { ?a ?b ?c . ?d ?e ?f . ?g ?h ?i . ?j ?k ?l . ?m ?n ?o }"
JSON = "application/sparql-results+json"


@pytest.fixture(scope="module")
def catalog(make_module_catalog):
    made = make_module_catalog(name="sparql-limits", sparql_timeout=4.0, sparql_workers=2)
    assert Harvester(made.services.archive).run("idr", [str(SAMPLES / "idr" / "idr0038-study.txt")]).loaded
    return {"services": made.services, "settings": made.settings}


@contextmanager
def served(catalog, **changes) -> Iterator[tuple[int, object]]:
    """The app (settings changed by ``changes``) under werkzeug's threaded server on a free port."""
    app = create_app(catalog["settings"].with_(**changes), services=catalog["services"])
    (port,) = free_ports(1)
    server = make_server("127.0.0.1", port, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield port, app
    finally:
        server.shutdown()
        app.extensions["bia.sparql"].close()


def request(
    port: int,
    method: str,
    path: str,
    body: bytes | None = None,
    headers: dict | None = None,
    source: str = "127.0.0.1",
    timeout: float = 60,
) -> tuple[int, dict, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout, source_address=(source, 0))
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        conn.close()


def post_query(port: int, query: str, **kwargs) -> tuple[int, dict, bytes]:
    headers = {"Content-Type": "application/sparql-query", "Accept": JSON, **kwargs.pop("headers", {})}
    return request(port, "POST", "/sparql", query.encode(), headers, **kwargs)


def error_of(answer: tuple[int, dict, bytes], status: int) -> dict:
    code, _, body = answer
    assert code == status, body[:500]
    shape = json.loads(body)
    assert set(shape) == ERROR_KEYS and shape["status"] == status
    return shape


# ---------------------------------------------------------------------- 413: query text over the limit


def test_query_text_over_the_limit_is_413_in_the_error_shape(catalog):
    limit = 1 << 20  # the default
    with served(catalog) as (port, _):
        at_limit = "SELECT * WHERE { ?s ?p ?o } LIMIT 1 #" + "x" * (limit - 37)
        assert len(at_limit.encode()) == limit
        assert post_query(port, at_limit)[0] == 200
        over = at_limit + "x"
        for answer in (
            post_query(port, over),
            request(
                port,
                "POST",
                "/sparql",
                urllib.parse.urlencode({"query": over}).encode(),
                {"Content-Type": "application/x-www-form-urlencoded"},
            ),
        ):
            assert error_of(answer, 413)["code"] == "query_too_large"
    with served(catalog, sparql_max_query_bytes=10_000) as (port, _):  # URLs: werkzeug's server reads 64 KiB at most
        over = "SELECT * WHERE { ?s ?p ?o } #" + "x" * 10_000
        for answer in (
            request(port, "GET", "/sparql?" + urllib.parse.urlencode({"query": over})),
            request(port, "GET", "/sparql?" + urllib.parse.urlencode({"query": "ASK {} #" + "é" * 5000})),  # bytes count
        ):
            assert error_of(answer, 413)["code"] == "query_too_large"
        assert request(port, "GET", "/sparql?" + urllib.parse.urlencode({"query": "ASK {} #" + "é" * 4990}))[0] == 200


def test_a_body_declared_over_the_limit_is_refused_unread(catalog):
    """A client announcing 30 MB gets its 413 at once: the endpoint does not wait for (or read) the body."""
    with served(catalog, sparql_max_query_bytes=1000) as (port, _):
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(
                b"POST /sparql HTTP/1.1\r\nHost: x\r\nContent-Type: application/sparql-query\r\n"
                b"Content-Length: 30000000\r\nConnection: close\r\n\r\nSELECT"
            )
            reply = b""
            while chunk := sock.recv(65536):
                reply += chunk
        head, _, body = reply.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 413"), head
        assert json.loads(body)["code"] == "query_too_large"


def test_a_chunked_body_over_the_limit_is_413_not_cut(catalog):
    """A body sent without a length (chunked) is read up to the limit only, and refused past it: never cut to a
    shorter query that would run."""

    def chunked(port: int, body: bytes) -> tuple[int, bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        try:
            conn.request(
                "POST",
                "/sparql",
                body=(body[i : i + 300] for i in range(0, len(body), 300)),
                encode_chunked=True,
                headers={"Content-Type": "application/sparql-query", "Accept": JSON, "Transfer-Encoding": "chunked"},
            )
            response = conn.getresponse()
            return response.status, response.read()
        finally:
            conn.close()

    with served(catalog, sparql_max_query_bytes=1000) as (port, _):
        assert chunked(port, b"ASK {} #" + b"x" * 900)[0] == 200
        status, body = chunked(port, b"ASK {} #" + b"x" * 5000)
        assert status == 413 and json.loads(body)["code"] == "query_too_large"


# ---------------------------------------------------------------------- 400: too deep, too many operators


@pytest.mark.parametrize(
    "query",
    [
        "SELECT * WHERE " + "{" * 10_000 + " ?s ?p ?o " + "}" * 10_000,
        "SELECT * WHERE { FILTER(" + "(" * 10_000 + "1" + ")" * 10_000 + ") }",
        "SELECT * WHERE { ?s ?p ?o " + "OPTIONAL { ?s ?p ?o " * 10_000 + "}" * 10_000 + "}",
        "SELECT * WHERE { " + " UNION ".join(["{ ?s ?p ?o }"] * 20_000) + " }",
        "SELECT (" + " + ".join(["1"] * 20_000) + " AS ?x) {}",
        "SELECT * WHERE { FILTER(?a<" + "(" * 10_000 + "1" + ")" * 10_000 + "&&1>?b) }",  # '<…>' that is no IRI
    ],
    ids=["braces", "parentheses", "optionals", "unions", "operators", "inside-a-false-iri"],
)
def test_queries_too_deep_or_too_long_are_400_not_a_crashed_worker(catalog, query):
    with served(catalog) as (port, _):
        shape = error_of(post_query(port, query), 400)
        assert shape["code"] == "query_too_complex"
        assert post_query(port, COUNT)[0] == 200


def test_a_query_that_crashes_its_worker_is_400_and_a_worker_killed_otherwise_is_503(catalog):
    """Past limits raised out of the way, 200,000 nested groups overflow even the workers' large stack: the
    query's fault (400). A worker SIGKILLed while it runs a query is the service's failure (503)."""
    deep = "SELECT * WHERE " + "{" * 200_000 + " ?s ?p ?o " + "}" * 200_000
    with served(catalog, sparql_max_depth=10**7) as (port, _):
        shape = error_of(post_query(port, deep), 400)
        assert shape["code"] == "query_failed" and "crashed" in shape["message"]
        assert post_query(port, COUNT)[0] == 200
        outcome = {}
        thread = threading.Thread(target=lambda: outcome.setdefault("answer", post_query(port, HEAVY)))
        thread.start()
        time.sleep(1.0)
        for pid in worker_pids():
            os.kill(pid, signal.SIGKILL)
        thread.join(30)
        assert error_of(outcome["answer"], 503)["code"] == "graph_store_unavailable"
        assert post_query(port, COUNT)[0] == 200


def worker_pids() -> list[int]:
    """The query worker processes this test process started."""
    ps = subprocess.run(["ps", "--ppid", str(os.getpid()), "-o", "pid=,args="], capture_output=True, text=True, check=True)
    return [int(line.split()[0]) for line in ps.stdout.splitlines() if "api.sparql_workers" in line]


# ---------------------------------------------------------------------- 429: one client's concurrent queries


def test_one_client_cannot_take_every_worker(catalog):
    """Two workers: a client running one runaway query gets 429 (Retry-After, error shape) for the next one,
    while another client (another address) is answered."""
    with served(catalog) as (port, _):
        outcome = {}
        first = threading.Thread(target=lambda: outcome.setdefault("first", post_query(port, HEAVY, source="127.0.0.2")))
        first.start()
        time.sleep(0.5)
        second = post_query(port, HEAVY, source="127.0.0.2")
        assert error_of(second, 429)["code"] == "too_many_queries"
        assert int(second[1]["Retry-After"]) > 0
        assert second[1]["Access-Control-Allow-Origin"] == "*"
        assert post_query(port, COUNT, source="127.0.0.3")[0] == 200
        first.join(30)
        assert error_of(outcome["first"], 503)["code"] == "query_timeout"
        assert post_query(port, COUNT, source="127.0.0.2")[0] == 200  # its slot is free again


def test_x_forwarded_for_counts_only_behind_trusted_proxies(catalog):
    def busy_then_second(port: int, first_hop: str, second_hop: str) -> int:
        outcome = {}
        first = threading.Thread(
            target=lambda: outcome.setdefault(
                "first", post_query(port, HEAVY, headers={"X-Forwarded-For": f"{first_hop}, 10.0.0.9"})
            )
        )
        first.start()
        time.sleep(0.5)
        second = post_query(port, COUNT, headers={"X-Forwarded-For": f"{second_hop}, 10.0.0.9"})
        first.join(30)
        return second[0]

    with served(catalog) as (port, _):  # no proxy trusted: the header is the client's own word, ignored
        assert busy_then_second(port, "198.51.100.1", "198.51.100.2") == 429
    with served(catalog, trusted_proxies=1) as (port, _):  # the proxy's entry (the last) names the client
        assert busy_then_second(port, "198.51.100.1", "198.51.100.2") == 429  # both came through 10.0.0.9
    with served(catalog, trusted_proxies=2) as (port, _):
        assert busy_then_second(port, "198.51.100.1", "198.51.100.2") == 200


# ---------------------------------------------------------------------- /health while queries are parsed and run


def test_health_answers_while_big_and_long_queries_are_parsed_and_run(catalog):
    big = 'SELECT * WHERE { ?s ?p "' + "x" * 1_000_000 + '" } LIMIT 1'
    huge = 'SELECT * WHERE { ?s ?p "' + "x" * 8_000_000 + '" } LIMIT 1'
    with served(catalog) as (port, _):
        stop_at = time.monotonic() + 6
        answers: list[int] = []

        def keep_posting(query: str, source: str) -> None:
            while time.monotonic() < stop_at:
                answers.append(post_query(port, query, source=source)[0])

        senders = [
            threading.Thread(target=keep_posting, args=(q, s))
            for q, s in ((big, "127.0.0.2"), (huge, "127.0.0.3"), (HEAVY, "127.0.0.4"))
        ]
        for sender in senders:
            sender.start()
        time.sleep(0.3)
        slowest = 0.0
        while time.monotonic() < stop_at:
            started = time.monotonic()
            assert request(port, "GET", "/health", timeout=10)[0] == 200
            slowest = max(slowest, time.monotonic() - started)
            time.sleep(0.05)
        for sender in senders:
            sender.join(30)
        assert slowest < 1.0, f"/health took {slowest:.2f} s"
        assert {200, 413, 503} <= set(answers)  # the big one answered, the huge one refused, the long one stopped


# ---------------------------------------------------------------------- SERVICE as pyoxigraph's parser reads it


class Recorder:
    """A loopback HTTP server that records every request (any method) and answers 404."""

    def __init__(self) -> None:
        self.requests: list[str] = []
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def _record(self) -> None:
                recorder.requests.append(f"{self.command} {self.path}")
                self.send_response(404)
                self.send_header("Content-Length", "0")
                self.end_headers()

            do_GET = do_POST = _record

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()


def test_service_targets_are_read_as_the_parser_reads_them(catalog):
    """pyoxigraph's parser reads SERVICE and PREFIX at the start of a word (``SERVICEex:s``, ``PREFIX:<…>``):
    such targets are checked against the allow-list too, and never called."""
    recorder = Recorder()
    decoy = f"{recorder.url}/"
    allowed = "http://127.0.0.1:9/sparql"
    try:
        with served(catalog, sparql_service_allowlist=(allowed,)) as (port, _):
            for query in (
                f"PREFIX ex: <{decoy}> SELECT * WHERE {{ SERVICEex:sparql {{ ?s ?p ?o }} }}",
                f"PREFIX : <http://127.0.0.1:9/> PREFIX:<{decoy}> SELECT * WHERE {{ SERVICE :sparql {{ ?s ?p ?o }} }}",
                f"PREFIX ex: <{decoy}> SELECT * WHERE {{ SERVICE SILENTex:sparql {{ ?s ?p ?o }} }}",
                f"SELECT * WHERE {{ SERVICESILENT <{decoy}sparql> {{ ?s ?p ?o }} }}",
                f"SELECT * WHERE {{ service#comment\n<{decoy}sparql>{{ ?s ?p ?o }} }}",
                f"SELECT * WHERE {{ # a comment ends at a carriage return\rSERVICE <{decoy}sparql> {{ ?s ?p ?o }} }}",
                # a word PREFIX… after the prologue declares nothing (here it is a predicate): ex: stays the decoy
                f"PREFIX ex: <{decoy}> SELECT * WHERE {{ ?s prefixex: <http://127.0.0.1:9/> . SERVICE ex:sparql {{ ?s ?p ?o }}}}",
            ):
                assert error_of(post_query(port, query), 403)["code"] == "service_not_allowed", query
            assert recorder.requests == []
            legit = "PREFIX service: <http://example.org/> SELECT * WHERE { service:x ?p ?o } LIMIT 1"
            assert post_query(port, legit)[0] == 200
    finally:
        recorder.httpd.shutdown()


def test_prefixes_named_from_or_service_are_only_prefixes(catalog):
    """``from:title`` in a pattern is no FROM clause (the default graph stays the union of the studies), and
    ``service:x ?p ?o`` no SERVICE call."""
    with served(catalog) as (port, _):
        for prefix in ("dc", "from", "service"):
            query = f"PREFIX {prefix}: <http://purl.org/dc/terms/> SELECT (COUNT(*) AS ?n) WHERE {{ ?s {prefix}:title ?o }}"
            status, _, body = post_query(port, query)
            assert status == 200 and int(json.loads(body)["results"]["bindings"][0]["n"]["value"]) > 0, (prefix, body)


def test_an_unterminated_string_is_400(catalog):
    with served(catalog) as (port, _):
        shape = error_of(post_query(port, 'SELECT * WHERE { ?s ?p "open\n } '), 400)
        assert shape["code"] == "invalid_query" and "line 1" in shape["message"]


# ---------------------------------------------------------------------- the documented production server


def test_granian_serves_a_read_only_replica_with_the_limits(catalog):
    """The production command of the README (granian, WSGI, the app factory) on a replica of this catalog."""
    (port,) = free_ports(1)
    settings = catalog["settings"]
    env = {
        **os.environ,
        "BIA_DATA": str(settings.data_dir),
        "BIA_BASE_URL": settings.base_url,
        "BIA_READ_ONLY": "1",
        "BIA_SPARQL_MAX_QUERY_BYTES": "1000",
    }
    command = [
        str(Path(sys.executable).parent / "granian"),
        "--interface",
        "wsgi",
        "--factory",
        "--workers",
        "2",
        "--blocking-threads",
        "4",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--no-access-log",
        "api.app:create_app",
    ]
    server = subprocess.Popen(
        command,
        env=env,
        cwd=Path(__file__).parent.parent,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                assert request(port, "GET", "/health", timeout=2)[0] == 200
                break
            except OSError:
                assert server.poll() is None and time.monotonic() < deadline
                time.sleep(0.3)
        status, _, body = post_query(port, COUNT)
        assert status == 200 and int(json.loads(body)["results"]["bindings"][0]["n"]["value"]) > 0
        assert error_of(post_query(port, COUNT + " #" + "x" * 1000), 413)["code"] == "query_too_large"
    finally:
        os.killpg(server.pid, signal.SIGKILL)
        server.wait(10)
