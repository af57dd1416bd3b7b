"""The plain ``GET /sparql`` answered without Flask (api/sparql_fast.py): the same bytes and headers as the endpoint
gives, every other request (and every refusal) answered by the endpoint itself, a failed query run only once."""

from __future__ import annotations

from pathlib import Path

import pytest
from werkzeug.test import Client

from loaders.harvest import Harvester
from tests.catalog_helpers import BASE

SAMPLES = Path(__file__).parent / "data"
STUDY = f"{BASE}/studies/S-BIAD1"
POINT = "SELECT ?p ?o WHERE { GRAPH ?g { ?s ?p ?o } } LIMIT 5"
#: plain GETs the fast path answers: (query string, request headers)
PLAIN = [
    ({"query": POINT}, {"Accept": "application/sparql-results+json"}),
    ({"query": POINT}, {"Accept": "application/sparql-results+xml"}),
    ({"query": POINT}, {"Accept": "text/csv"}),
    ({"query": POINT}, {"Accept": "text/tab-separated-values"}),
    ({"query": POINT}, {"Accept": "application/json"}),
    ({"query": POINT}, {}),
    ({"query": POINT, "unknown": "x"}, {"Accept": " text/csv "}),
    ({"query": "ASK { ?s ?p ?o }"}, {"Accept": "application/sparql-results+json"}),
    ({"query": "CONSTRUCT { ?s ?p ?o } WHERE { ?s ?p ?o } LIMIT 3"}, {"Accept": "text/turtle"}),
    ({"query": "DESCRIBE <relative>"}, {"Accept": "application/n-triples"}),
    ({"query": "SELECT ?s WHERE { ?s ?p ?o FILTER(RAND() < 2) } LIMIT 1"}, {}),  # volatile: no ETag
    ({"query": "SELECT * WHERE { ?s ?p ?o } LIMIT 2", "default-graph-uri": STUDY, "named-graph-uri": STUDY}, {}),
    ({"query": "SELECT ?g WHERE { GRAPH ?g { ?s ?p ?o } } LIMIT 2", "named-graph-uri": STUDY}, {"X-Forwarded-For": "10.1.1.1"}),
]
#: requests the endpoint answers itself: content negotiation, hints, conditions, bodies, refusals
FLASK_ONLY = [
    ("GET", {"query": POINT}, {"Accept": "text/html"}),
    ("GET", {"query": POINT}, {"Accept": "application/sparql-results+json;q=0.9, text/csv"}),
    ("GET", {"query": "CONSTRUCT WHERE { ?s ?p ?o }"}, {"Accept": "application/sparql-results+json"}),  # 406
    ("GET", {"query": POINT, "format": "json"}, {}),
    ("GET", {"query": POINT}, {"If-None-Match": '"x"'}),
    ("GET", {}, {"Accept": "text/turtle"}),
    ("GET", {"query": "INSERT DATA { <a> <b> <c> }"}, {}),
    ("GET", {"update": "CLEAR ALL"}, {}),
    ("GET", {"query": "SELECT * WHERE {" * 300 + "}" * 300}, {}),
    ("GET", {"query": "SELECT * WHERE { SERVICE <http://elsewhere.example/sparql> { ?s ?p ?o } }"}, {}),
    ("GET", {"query": [POINT, POINT]}, {}),
    ("HEAD", {"query": POINT}, {}),
    ("POST", {"query": POINT}, {}),
]


@pytest.fixture(scope="module")
def app_counted(make_module_catalog):
    """The fast path of an app on a one-study catalog, the Flask app behind it, and counters of both."""
    made = make_module_catalog()
    assert Harvester(made.services.archive).run("idr", [str(SAMPLES / "idr" / "idr0038-study.txt")]).loaded
    made.services.follow()
    app = made.app(trusted_proxies=1)
    fast = app.extensions["bia.sparql_fast"]
    flask_app, to_flask, ran = fast.wsgi_app, [], []

    def counting_flask(environ, start_response):
        to_flask.append(environ["PATH_INFO"])
        return flask_app(environ, start_response)

    fast.wsgi_app = counting_flask
    runner = app.extensions["bia.sparql"]
    real_run = runner.run

    def counting_run(query, *args, **kwargs):
        ran.append(query)
        return real_run(query, *args, **kwargs)

    runner.run = counting_run
    return {"fast": Client(fast), "flask": Client(flask_app), "to_flask": to_flask, "ran": ran}


@pytest.fixture
def served(app_counted):
    """:func:`app_counted` with its counters at zero."""
    app_counted["to_flask"].clear()
    app_counted["ran"].clear()
    return app_counted


def _same(one, other) -> None:
    assert one.status == other.status
    assert one.headers.to_wsgi_list() == other.headers.to_wsgi_list()
    assert one.get_data() == other.get_data()


@pytest.mark.parametrize(("params", "headers"), PLAIN)
def test_a_plain_get_is_answered_without_flask_as_flask_answers_it(served, params, headers):
    fast = served["fast"].get("/sparql", query_string=params, headers=headers)
    assert fast.status_code == 200, fast.get_data(as_text=True)
    assert served["to_flask"] == [] and len(served["ran"]) == 1
    _same(fast, served["flask"].get("/sparql", query_string=params, headers=headers))
    assert ("ETag" in fast.headers) == ("RAND" not in params["query"])


@pytest.mark.parametrize(("method", "params", "headers"), FLASK_ONLY)
def test_every_other_request_is_the_endpoints(served, method, params, headers):
    fast = served["fast"].open("/sparql", method=method, query_string=params, headers=headers)
    assert served["to_flask"] == ["/sparql"]
    _same(fast, served["flask"].open("/sparql", method=method, query_string=params, headers=headers))


def test_a_query_that_fails_in_its_worker_runs_once_and_gets_the_error_shape(served):
    broken = "SELECT ?s WHERE { ?s ?p }"  # passes the checks, not the parser
    fast = served["fast"].get("/sparql", query_string={"query": broken})
    assert fast.status_code == 400 and fast.get_json()["code"] == "invalid_query"
    assert served["ran"] == [broken] and served["to_flask"] == ["/sparql"]
    _same(fast, served["flask"].get("/sparql", query_string={"query": broken}))


def test_the_app_answers_plain_gets_on_the_fast_path(make_catalog):
    app = make_catalog(demo=True).app()
    client = app.test_client()
    answer = client.get("/sparql", query_string={"query": POINT}, headers={"Accept": "text/csv"})
    assert answer.status_code == 200 and answer.headers["X-Frame-Options"] == "DENY"
    assert isinstance(app.wsgi_app, type(app.extensions["bia.sparql_cache"]))  # the cache stays in front of it
    assert app.extensions["bia.sparql_cache"].app is app.extensions["bia.sparql_fast"]


#: calls of :func:`_ran` (what unpickling :class:`_Evil` would make)
RAN: list[str] = []


def _ran(what: str) -> None:
    RAN.append(what)


class _Evil:
    """What a worker taken over could send if answers were unpickled: unpickling it calls a function of its choice."""

    def __reduce__(self):
        return (_ran, ("code chosen by the worker",))


def test_a_workers_answer_is_read_as_bytes_never_unpickled(make_catalog):
    import os
    import pickle
    import subprocess
    import sys

    from api.sparql_workers import QueryRunner
    from catalog.graph_store import GraphStoreUnavailable
    from catalog.sandbox import Pipe

    made = make_catalog()
    runner = QueryRunner(made.services.archive, made.settings)
    to_fake_r, to_fake_w = os.pipe()
    from_fake_r, from_fake_w = os.pipe()

    class FakeWorker:  # a worker process that answers with a pickle
        process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
        conn = Pipe(from_fake_r, to_fake_w)

        def alive(self):
            return True

        def answered_within(self, seconds):
            return self.conn.poll(seconds)

        def kill(self):
            self.process.kill()
            self.process.wait()

    fake_end = Pipe(to_fake_r, from_fake_w)  # (kept open: the request goes there)
    fake_end.send_bytes(pickle.dumps(("ok", _Evil(), "text/csv")))
    runner._idle.append(FakeWorker())
    with pytest.raises(GraphStoreUnavailable):
        runner.run("SELECT * WHERE { ?s ?p ?o }", "text/csv")
    assert RAN == [] and FakeWorker.process.poll() is not None  # nothing ran; the worker was killed
    runner.close()
    fake_end.close()
