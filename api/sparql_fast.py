"""The common ``/sparql`` request answered without Flask: a GET whose query string holds a query (and perhaps
``default-graph-uri``/``named-graph-uri``), asking for one result type by name (or for none).

First-time point queries are dominated by fixed costs, and Flask's request handling (request context, hooks,
response object) costs as much as the query itself. This WSGI layer sits between the result cache
(:mod:`api.sparql_cache`) and the Flask app and, for that one kind of request, runs exactly what the endpoint
runs: the same parsing and size limits, the same checks (:func:`api.routes_sparql.checked`: nesting, operators,
query form, SERVICE allow-list), the same dataset, client limits, ETag and query runner (killable workers, time
limit, result cap). It answers with the headers the app's hooks give such an answer (CORS, ``Vary``, security
headers; ``tests/test_sparql_fast.py`` holds both paths to the same bytes). Every other request, and every
request a check refuses, goes to Flask, which answers it (errors in the one error shape); a query that ran here
and failed is not run again: Flask answers its error (:data:`api.routes_sparql.RUN_FAILED`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from werkzeug.utils import get_content_type

from api.routes_sparql import (
    CORS,
    REVALIDATE,
    RUN_FAILED,
    _decoded_params,
    _encoded_limit,
    checked,
    client_of,
    result_tag,
    the_query,
)
from api.security_headers import OTHER_POLICY
from api.sparql_protocol import RESULT_TYPES, dataset
from api.sparql_workers import Run
from catalog.errors import CatalogError

WSGIApp = Callable[[dict, Callable], Iterable[bytes]]
#: the headers the app's ``after_request`` hooks add to a SPARQL result (api.app, api.routes_sparql.cors,
#: api.security_headers), in their order
HOOK_HEADERS = [
    ("Vary", "Accept"),
    *CORS.items(),
    ("X-Content-Type-Options", "nosniff"),
    ("X-Frame-Options", "DENY"),
    ("Content-Security-Policy", OTHER_POLICY),
]
#: parameters only the full endpoint reads (a format hint; an update, which it refuses)
_FOR_FLASK = ("format", "output", "update")


class SparqlFastPath:
    """WSGI middleware answering plain ``GET /sparql`` queries of ``app`` (a Flask app) itself; ``wsgi_app`` is
    what it hands every other request to."""

    def __init__(self, app: Any, wsgi_app: WSGIApp, path: str = "/sparql") -> None:
        self.wsgi_app, self.path = wsgi_app, path
        self.settings = app.extensions["bia.settings"]
        self.reads = app.extensions["bia.services"].archive.public.reads
        self.runner = app.extensions["bia.sparql"]

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        answer = self._answer(environ) if self._plain(environ) else None
        if answer is None:
            return self.wsgi_app(environ, start_response)
        media, tag, body = answer
        headers = [("Content-Type", get_content_type(media, "utf-8")), ("Content-Length", str(len(body)))]
        if tag:
            headers += [("ETag", tag), ("Cache-Control", REVALIDATE)]
        start_response("200 OK", headers + HOOK_HEADERS)
        return [body]

    def _plain(self, environ: dict) -> bool:
        """A GET of the endpoint with a query string, no body and no condition."""
        return (
            environ.get("REQUEST_METHOD") == "GET"
            and environ.get("PATH_INFO") == self.path
            and bool(environ.get("QUERY_STRING"))
            and environ.get("CONTENT_LENGTH") in (None, "", "0")
            and "HTTP_TRANSFER_ENCODING" not in environ
            and "HTTP_IF_NONE_MATCH" not in environ
        )

    def _answer(self, environ: dict) -> tuple[str, str | None, bytes] | None:
        """(media type, ETag, body) of the query, or None for Flask to answer the request."""
        config = self.settings
        limit = config.sparql_max_query_bytes
        raw = environ["QUERY_STRING"].encode("latin-1")
        if len(raw) > _encoded_limit(limit):
            return None
        try:
            params = _decoded_params(raw, "query string", limit)
            if any(name in params for name in _FOR_FLASK):
                return None
            query = the_query(params, "GET")
            if query is None:
                return None
            shape, kind, base_iri = checked(query, config)
        except CatalogError:
            return None  # Flask refuses it again, in the one error shape
        accept = environ.get("HTTP_ACCEPT", "").strip()
        offered = RESULT_TYPES[kind]
        if accept and accept not in offered:
            return None  # content negotiation (and HTML) is Flask's
        media = accept or offered[0]
        default, named = params.get("default-graph-uri", []), params.get("named-graph-uri", [])
        client = client_of(environ.get("REMOTE_ADDR"), environ.get("HTTP_X_FORWARDED_FOR", ""), config.trusted_proxies)
        tag = result_tag(self.reads.version() if shape.repeatable else None, query, default, named, media)
        asked = "application/sparql-results+json" if media == "application/json" else media
        try:
            body, returned = self.runner.run(query, asked, run=Run(dataset(shape, default, named), client, base_iri))
        except Exception as exc:  # noqa: BLE001 - Flask's error handlers answer it
            environ[RUN_FAILED] = exc
            return None
        return (media if media == "application/json" else returned), tag, body
