"""The raw baseline of the API benchmark: a bare Flask app that answers a study as JSON-LD straight from
pyoxigraph (one CONSTRUCT over the study's named graph, pyoxigraph's own JSON-LD writer), nothing else.

    BARE_STORE=<snapshot folder> BARE_BASE=<base url> gunicorn -w 2 'benchmarks.bare_app:create_app()'
"""

from __future__ import annotations

import os

import pyoxigraph as ox
from flask import Flask, Response


def create_app() -> Flask:
    app = Flask(__name__)
    store = ox.Store.read_only(os.environ["BARE_STORE"])
    base = os.environ["BARE_BASE"].rstrip("/")

    @app.get("/studies/<accession>")
    def study(accession: str) -> Response:
        graph = f"{base}/studies/{accession}"
        result = store.query(f"CONSTRUCT {{ ?s ?p ?o }} WHERE {{ GRAPH <{graph}> {{ ?s ?p ?o }} }}")
        return Response(result.serialize(format=ox.RdfFormat.JSON_LD), mimetype="application/ld+json")

    return app


def empty_answer(environ: dict, start_response) -> list[bytes]:
    """The floor of the HTTP stack: a WSGI callable answering every request with a fixed empty SPARQL result.

    gunicorn -w 2 'benchmarks.bare_app:empty_answer'
    """
    body = b'{"head":{"vars":["p","o"]},"results":{"bindings":[]}}'
    start_response("200 OK", [("Content-Type", "application/sparql-results+json"), ("Content-Length", str(len(body)))])
    return [body]
