"""The raw baseline of the API benchmark: a bare Flask app that answers a study as JSON-LD straight from
pyoxigraph (one CONSTRUCT over the study's named graph, pyoxigraph's own JSON-LD writer), nothing else.

    BARE_STORE=<snapshot folder> BARE_BASE=<base url> gunicorn -w 2 'benchmarks.bare_app:create_app()'
"""

from __future__ import annotations

import os
from pathlib import Path

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


def in_process_query(environ: dict, start_response) -> list[bytes]:
    """The floor of any Python-served SPARQL endpoint: the query of ``?query=`` run in the serving process itself
    on the public graph store (no framework, no checks, no worker process), its results written by pyoxigraph.

    BARE_STORE=<graph store folder> granian --interface wsgi 'benchmarks.bare_app:in_process_query'
    """
    import urllib.parse

    global _STORE
    if _STORE is None:
        from catalog.graph_store_embedded import EmbeddedGraphStore

        _STORE = EmbeddedGraphStore(Path(os.environ["BARE_STORE"]), read_only=True)._reader()
    query = urllib.parse.parse_qs(environ.get("QUERY_STRING", "")).get("query", ["ASK {}"])[0]
    results = _STORE.query(query)
    body = results.serialize(format=ox.QueryResultsFormat.JSON)
    start_response("200 OK", [("Content-Type", "application/sparql-results+json"), ("Content-Length", str(len(body)))])
    return [body]


_STORE: ox.Store | None = None
