"""The public SPARQL 1.1 endpoint (Protocol: GET, POST form, POST ``application/sparql-query``), its service
description, VoID and example queries. Read-only, time-limited, capped, SERVICE allow-listed, released data only."""

from __future__ import annotations

import hashlib
import json
import urllib.parse

from flask import Response, current_app, render_template, request
from werkzeug.exceptions import RequestEntityTooLarge

from api.context import services, settings, sparql_runner
from api.negotiate import choose
from api.openapi import HTML, JSONLD, NOT_MODIFIED, TEXT, Blueprint, errors, formats, responses
from api.schemas import SparqlArgs, SparqlExample, SparqlForm
from api.sparql_cache import etag_matches
from api.sparql_examples import EXAMPLES, examples_turtle
from api.sparql_protocol import (
    RESULT_TYPES,
    Limits,
    NotAQuery,
    QueryShape,
    ReadOnly,
    check_services,
    dataset,
    result_kind,
    scan,
)
from api.sparql_workers import Run
from catalog.config import Settings
from catalog.errors import CatalogError
from catalog.graph_changes import latest_change
from catalog.views import PUBLIC
from catalog.void_figures import Figures, VoidFigures

blp = Blueprint("sparql", __name__, description="SPARQL 1.1 query endpoint over the released studies")

CORS = {"Access-Control-Allow-Origin": "*", "Access-Control-Expose-Headers": "Content-Type, ETag, Retry-After"}
CORS_PATHS = {"/sparql", "/.well-known/void", "/.well-known/sparql-examples"}
PREFLIGHT = {
    "Access-Control-Allow-Methods": "GET, POST, OPTIONS",
    "Access-Control-Allow-Headers": "Content-Type, Accept",
    "Access-Control-Max-Age": "86400",
}
#: answers may be kept, but checked again (ETag) before each reuse: a release changes them
REVALIDATE = "public, no-cache"
SD_TYPES = ["text/turtle", "application/n-triples", "application/ld+json", "application/rdf+xml"]


class QueryTooLarge(CatalogError):
    status = 413
    code = "query_too_large"


def _too_large(limit: int) -> QueryTooLarge:
    return QueryTooLarge(
        f"the query is over the {limit:,}-byte limit of this endpoint (BIA_SPARQL_MAX_QUERY_BYTES)",
        [{"field": "query", "message": f"over {limit:,} bytes"}],
    )


def _encoded_limit(limit: int) -> int:
    """The most bytes a percent-encoded query of ``limit`` bytes (and the other parameters) can take."""
    return 3 * limit + 65536


def _decoded_params(raw: bytes, where: str, limit: int) -> dict[str, list[str]]:
    """``application/x-www-form-urlencoded`` parameters, strictly UTF-8 (a query is never guessed at); a query
    over ``limit`` bytes once decoded is :class:`QueryTooLarge`."""
    params: dict[str, list[str]] = {}
    for pair in raw.split(b"&"):
        if not pair:
            continue
        name, _, value = pair.partition(b"=")
        parts = [urllib.parse.unquote_to_bytes(part.replace(b"+", b" ")) for part in (name, value)]
        if len(parts[1]) > limit and parts[0] == b"query":
            raise _too_large(limit)
        try:
            decoded = [part.decode("utf-8") for part in parts]
        except UnicodeDecodeError as exc:
            raise NotAQuery(f"the {where} is not UTF-8 once percent-decoded ({exc.reason} at byte {exc.start})") from exc
        params.setdefault(decoded[0], []).append(decoded[1])
    return params


def _body(limit: int) -> bytes:
    """The request body, refused unread when it declares more than ``limit`` bytes, and read no further than
    that when it declares nothing (chunked)."""
    if request.content_length is not None and request.content_length > limit:
        raise _too_large(limit)
    request.max_content_length = limit + 1  # werkzeug stops a chunked body there, silently: one byte more tells
    try:
        body = request.get_data()
    except RequestEntityTooLarge as exc:
        raise _too_large(limit) from exc
    if len(body) > limit:
        raise _too_large(limit)
    return body


_READ_ONLY = "this endpoint is read-only: SPARQL Update is not accepted"


def _query_from_request(limit: int) -> tuple[str | None, list[str], list[str], bool]:
    """The query, the protocol's dataset (SPARQL 1.1 Protocol 2.1: GET, POST form, POST direct) and whether a
    ``format``/``output`` hint came with them; sizes are checked before anything is read or decoded."""
    if len(request.query_string) > _encoded_limit(limit):
        raise _too_large(limit)
    params = _decoded_params(request.query_string, "query string", limit)
    if request.method == "POST":
        _add_posted_params(params, limit)
    query = the_query(params, request.method)
    hinted = "format" in params or "output" in params
    return query, params.get("default-graph-uri", []), params.get("named-graph-uri", []), hinted


def _add_posted_params(params: dict[str, list[str]], limit: int) -> None:
    """Add to ``params`` what a POST sends in its body: the query itself, or form fields."""
    ctype = (request.mimetype or "").lower()
    if ctype == "application/sparql-update":
        raise ReadOnly(_READ_ONLY)
    if ctype == "application/sparql-query":
        direct = _direct_query(limit)
        if "query" in params:
            raise NotAQuery("send the query either as the request body or as the 'query' parameter, not both")
        params["query"] = [direct]
    elif ctype == "application/x-www-form-urlencoded":
        _merge(params, _decoded_params(_body(_encoded_limit(limit)), "form body", limit))
    elif ctype == "multipart/form-data":
        _merge(params, _multipart_params(limit))
    else:
        raise NotAQuery(
            f"POST a query as application/sparql-query or as the form field 'query' (got {ctype or 'no content type'})"
        )


def _merge(params: dict[str, list[str]], more: dict[str, list[str]]) -> None:
    for name, values in more.items():
        params.setdefault(name, []).extend(values)


def _direct_query(limit: int) -> str:
    """A query sent as the body (``application/sparql-query``), which is UTF-8."""
    charset = request.mimetype_params.get("charset", "utf-8").lower()
    if charset not in ("utf-8", "utf8"):
        raise NotAQuery(f"a query sent as application/sparql-query is UTF-8 (got charset={charset})")
    try:
        return _body(limit).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise NotAQuery(f"the query is not UTF-8 ({exc.reason} at byte {exc.start})") from exc


def _multipart_params(limit: int) -> dict[str, list[str]]:
    """The fields of a ``multipart/form-data`` body, whose size is checked before werkzeug parses it."""
    _body(_encoded_limit(limit))
    params: dict[str, list[str]] = {}
    for name, values in request.form.lists():
        if name == "query" and any(len(value.encode()) > limit for value in values):
            raise _too_large(limit)
        params.setdefault(name, []).extend(values)
    return params


def the_query(params: dict[str, list[str]], method: str) -> str | None:
    """The one query the parameters of a ``method`` request hold (None for none, which only a GET may send)."""
    if "update" in params:
        raise ReadOnly(_READ_ONLY)
    queries = params.get("query", [])
    if len(queries) > 1:
        raise NotAQuery(f"one query per request ({len(queries)} 'query' parameters were sent)")
    if queries and not queries[0].strip():
        raise NotAQuery("the query is empty")
    if method == "POST" and not queries:
        raise NotAQuery("no query: POST it as application/sparql-query or as the form field 'query'")
    return queries[0] if queries else None


def _media(offered: list[str], hinted: bool) -> str:
    """:func:`api.negotiate.choose`, without parsing the request again in the common case: no format hint and
    an ``Accept`` of one bare media type offered here (or none)."""
    accept = request.headers.get("Accept", "").strip()
    if not hinted and (accept in offered or not accept):
        return accept or offered[0]
    return choose(offered)


def client_address() -> str:
    """Who sent the request (see :func:`client_of`)."""
    return client_of(request.remote_addr, ",".join(request.headers.getlist("X-Forwarded-For")), settings().trusted_proxies)


def client_of(remote_addr: str | None, forwarded_for: str, hops: int) -> str:
    """The connection's address, or, behind ``hops`` (``BIA_TRUSTED_PROXIES``) proxies, the ``X-Forwarded-For``
    entry the outermost trusted proxy appended (what a client writes there itself is ignored)."""
    if hops > 0:
        forwarded = [a.strip() for a in forwarded_for.split(",") if a.strip()]
        if len(forwarded) >= hops:
            return forwarded[-hops]
    return remote_addr or ""


SPARQL_DESCRIPTION = (
    "SELECT/ASK as JSON, XML, CSV or TSV; CONSTRUCT/DESCRIBE as Turtle, JSON-LD, N-Triples or RDF/XML; "
    "HTML shows either as a table. Read-only, time-limited, capped; released studies only."
)
#: the answers of a query: results (SELECT, ASK) or a graph (CONSTRUCT, DESCRIBE) in the form asked for
SPARQL_ANSWERS = responses(
    formats(
        200,
        "application/sparql-results+json",
        "application/json",
        schema={"type": "object", "description": "SPARQL 1.1 Query Results JSON"},
    ),
    formats(
        200,
        "application/sparql-results+xml",
        "text/csv",
        "text/tab-separated-values",
        "text/turtle",
        "application/n-triples",
        "application/rdf+xml",
    ),
    formats(200, "application/ld+json", schema=JSONLD),
    errors(400, 403, 406, 413, 429, 503),
)


@blp.route("/sparql", methods=["GET"])
@blp.response(
    200,
    TEXT,
    content_type=HTML,
    description="The query's answer in the form asked for; without a query, the query "
    "page (HTML) or the service description (RDF)",
)
@blp.doc(
    operationId="sparqlQuery",
    summary="Run a SPARQL 1.1 query (or, without one, describe the endpoint)",
    description=SPARQL_DESCRIPTION,
    parameters=[{"in": "query", "schema": SparqlArgs}],
    responses=responses(SPARQL_ANSWERS, {304: NOT_MODIFIED}),
)
def sparql() -> Response:
    return _sparql()


@blp.route("/sparql", methods=["POST"])
@blp.response(200, TEXT, content_type=HTML, description="The query's answer in the form asked for")
@blp.doc(
    operationId="sparqlQueryPost",
    summary="Run a SPARQL 1.1 query sent in the request body",
    description=SPARQL_DESCRIPTION,
    requestBody={
        "required": True,
        "content": {
            "application/sparql-query": {"schema": {"type": "string", "description": "The query itself, UTF-8"}},
            "application/x-www-form-urlencoded": {"schema": SparqlForm},
            "multipart/form-data": {"schema": SparqlForm},
        },
    },
    responses=SPARQL_ANSWERS,
)
def sparql_post() -> Response:
    return _sparql()


def _sparql() -> Response:
    config = settings()
    query, default, named, hinted = _query_from_request(config.sparql_max_query_bytes)
    if not query:
        media = choose(["text/html", *SD_TYPES])
        if media == "text/html":
            return Response(render_template("sparql.html", examples=EXAMPLES, settings=config), mimetype="text/html")
        return _rdf_response(_service_description(), media)
    shape, kind, base_iri = checked(query, config)
    media = _media(RESULT_TYPES[kind] + ["text/html"], hinted)
    tag = _result_tag(query, shape, default, named, media) if request.method in ("GET", "HEAD") else None
    if (
        tag
        and request.headers.get("If-None-Match", "").strip() != "*"
        and etag_matches(request.headers.get("If-None-Match"), tag)
    ):
        return Response(status=304, headers={"ETag": tag, "Cache-Control": REVALIDATE})
    response = _answer(query, Run(dataset(shape, default, named), client_address(), base_iri), kind, media)
    if tag:  # the same query on the same snapshot: the same answer (api.sparql_cache keeps it)
        response.headers.update({"ETag": tag, "Cache-Control": REVALIDATE})
    return response


def checked(query: str, config: Settings) -> tuple[QueryShape, str, str]:
    """The query's shape, its result kind and the base IRI of its relative IRIs (the endpoint's own IRI), once
    the checks passed: its size and nesting, its form (a query, not an update) and every SERVICE it calls."""
    shape = scan(query, Limits(config.sparql_max_depth, config.sparql_max_operators))
    kind = result_kind(shape.form)
    base_iri = f"{config.base_url}/sparql"
    check_services(shape, config.sparql_service_allowlist, base_iri)
    return shape, kind, base_iri


#: where :mod:`api.sparql_fast` leaves the error of a query it ran for a request it then hands to Flask
RUN_FAILED = "bia.sparql.run_failed"


def _answer(query: str, run: Run, kind: str, media: str) -> Response:
    failed = request.environ.pop(RUN_FAILED, None)
    if failed is not None:  # this request's query already ran (api.sparql_fast) and failed: answer that, once
        raise failed
    runner = sparql_runner()
    if media == "text/html":  # people: the results as a table (or the graph as Turtle)
        if kind == "graph":
            body, _ = runner.run(query, "text/turtle", run=run)
            return Response(
                render_template(
                    "sparql_results.html",
                    query=query,
                    boolean=None,
                    variables=["turtle"],
                    rows=[{"turtle": {"type": "literal", "value": body.decode()}}],
                    settings=settings(),
                ),
                mimetype="text/html",
            )
        body, _ = runner.run(query, "application/sparql-results+json", run=run)
        data = json.loads(body)
        return Response(
            render_template(
                "sparql_results.html",
                query=query,
                boolean=data.get("boolean"),
                variables=data.get("head", {}).get("vars", []),
                rows=data.get("results", {}).get("bindings", []),
                settings=settings(),
            ),
            mimetype="text/html",
        )
    asked = "application/sparql-results+json" if media == "application/json" else media
    body, returned = runner.run(query, asked, run=run)
    return Response(body, mimetype=media if media == "application/json" else returned)


def _result_tag(query: str, shape: QueryShape, default: list[str], named: list[str], media: str) -> str | None:
    """An ETag for a query whose answer depends only on the published snapshot it reads (None otherwise, and
    for a remote store, which cannot say when it changed)."""
    return result_tag(services().archive.public.reads.version() if shape.repeatable else None, query, default, named, media)


def result_tag(version: str | None, query: str, default: list[str], named: list[str], media: str) -> str | None:
    """The ETag of a repeatable query's answer on snapshot ``version`` (None: no version, no tag)."""
    if version is None:
        return None
    digest = hashlib.sha256("\0".join([query, *default, "", *named, "", media]).encode()).hexdigest()[:24]
    return f'W/"{version}-{digest}"'


@blp.after_app_request
def cors(response: Response) -> Response:
    """Every answer of the endpoint (errors, preflights and wrong methods too) readable by browser SPARQL clients
    elsewhere; a preflight is granted the request headers it asks for."""
    if request.path not in CORS_PATHS:
        return response
    response.headers.update(CORS)
    if request.method == "OPTIONS":
        response.headers.update(PREFLIGHT)
        asked = request.headers.get("Access-Control-Request-Headers")
        if asked:
            response.headers["Access-Control-Allow-Headers"] = asked
    return response


def _rdf_response(turtle: str, media: str) -> Response:
    if media == "text/turtle":
        return Response(turtle, mimetype=media)
    from rdflib import Graph

    graph = Graph().parse(data=turtle, format="turtle")
    fmt = {"application/n-triples": "nt", "application/ld+json": "json-ld", "application/rdf+xml": "xml"}[media]
    return Response(graph.serialize(format=fmt), mimetype=media)


def _service_description() -> str:
    base, triples = settings().base_url, _void_figures().counts["triples"]
    results = "\n".join(
        f"    sd:resultFormat <{iri}> ;"
        for iri in (
            "http://www.w3.org/ns/formats/SPARQL_Results_JSON",
            "http://www.w3.org/ns/formats/SPARQL_Results_XML",
            "http://www.w3.org/ns/formats/SPARQL_Results_CSV",
            "http://www.w3.org/ns/formats/SPARQL_Results_TSV",
            "http://www.w3.org/ns/formats/Turtle",
            "http://www.w3.org/ns/formats/JSON-LD",
            "http://www.w3.org/ns/formats/N-Triples",
            "http://www.w3.org/ns/formats/RDF_XML",
        )
    )
    return f"""@prefix sd: <http://www.w3.org/ns/sparql-service-description#> .
@prefix void: <http://rdfs.org/ns/void#> .
@prefix dcterms: <http://purl.org/dc/terms/> .

<{base}/sparql> a sd:Service ;
    sd:endpoint <{base}/sparql> ;
    sd:supportedLanguage sd:SPARQL11Query ;
{results}
    sd:feature sd:UnionDefaultGraph , sd:BasicFederatedQuery ;
    dcterms:title "{settings().catalog_name} SPARQL endpoint (read-only, released studies)" ;
    sd:defaultDataset [
        a sd:Dataset ;
        sd:defaultGraph [ a sd:Graph ; void:triples {triples} ]
    ] .
"""


SD_ANSWERS = responses(
    formats(200, "application/n-triples", "application/rdf+xml"), formats(200, "application/ld+json", schema=JSONLD), errors(406)
)


@blp.route("/.well-known/void")
@blp.response(200, TEXT, content_type="text/turtle")
@blp.doc(operationId="getVoid", summary="VoID description of the public dataset", responses=SD_ANSWERS)
def void() -> Response:
    return _rdf_response(void_turtle(), choose(SD_TYPES))


def _void_figures() -> Figures:
    """The figures of the published public graph, counted once per published state (see catalog.void_figures)."""
    archive = services().archive
    held = current_app.extensions.get("bia.void")
    if held is None:

        def version() -> object:  # a remote store has no snapshot: the number of its last change stands for it
            return archive.public.reads.version() or f"change-{latest_change(archive.state, PUBLIC)}"

        held = current_app.extensions.setdefault("bia.void", VoidFigures(version))
    return held.get(archive.public.reads, settings().base_url)


def void_turtle() -> str:
    """The VoID description: every figure counted over the data the endpoint answers from."""
    base = settings().base_url
    figures = _void_figures()
    counts = "".join(f"    void:{name} {value} ;\n" for name, value in figures.counts.items())
    examples = " , ".join(f"<{iri}>" for iri in figures.examples)
    classes = " , ".join(f"[ void:class <{iri}> ; void:entities {n} ]" for iri, n in figures.classes)
    properties = " , ".join(f"[ void:property <{iri}> ; void:triples {n} ]" for iri, n in figures.properties)
    return f"""@prefix void: <http://rdfs.org/ns/void#> .
@prefix dcterms: <http://purl.org/dc/terms/> .
@prefix foaf: <http://xmlns.com/foaf/0.1/> .

<{base}/.well-known/void#catalog> a void:Dataset ;
    dcterms:title "{settings().catalog_name}" ;
    dcterms:description "REMBI metadata of released bioimaging studies; one named graph per study, and the link graphs. Figures count the union of the public graphs (the SPARQL endpoint's default graph); entities are the IRIs under the uriSpace that are subjects." ;
    foaf:homepage <{base}/> ;
    void:sparqlEndpoint <{base}/sparql> ;
    void:uriSpace "{base}/" ;
{counts}{f"    void:exampleResource {examples} ;{chr(10)}" if examples else ""}{f"    void:classPartition {classes} ;{chr(10)}" if classes else ""}{f"    void:propertyPartition {properties} ;{chr(10)}" if properties else ""}    void:vocabulary <https://w3id.org/rembi/> , <http://schema.org/> , <http://purl.org/dc/terms/> , <http://www.w3.org/ns/prov#> ;
    void:dataDump <{base}/export.nq> .
"""


@blp.route("/.well-known/sparql-examples")
@blp.response(200, TEXT, content_type="text/turtle")
@blp.doc(
    operationId="getSparqlExamples",
    summary="Example SPARQL queries (SHACL SPARQLExecutable, as SIB's sparql-examples)",
    responses=responses(SD_ANSWERS, formats(200, "application/json", schema={"type": "array", "items": SparqlExample})),
)
def sparql_examples() -> Response:
    media = choose([*SD_TYPES, "application/json"])
    if media == "application/json":
        return Response(
            json.dumps([{"id": e.id, "title": e.title, "query": e.query} for e in EXAMPLES], indent=1),
            mimetype="application/json",
        )
    return _rdf_response(examples_turtle(settings().base_url), media)
