"""The public SPARQL 1.1 endpoint (Protocol: GET, POST form, POST ``application/sparql-query``), its service
description, VoID and example queries. Read-only, time-limited, capped, SERVICE allow-listed, released data only."""
from __future__ import annotations

import hashlib
import json

from flask import Response, current_app, render_template, request
from flask_smorest import Blueprint

from api.app import services, settings
from api.negotiate import choose
from api.sparql_examples import EXAMPLES, examples_turtle
from api.sparql_cache import etag_matches
from api.sparql_protocol import RESULT_TYPES, NotAQuery, ReadOnly, check_services, query_form, repeatable, result_kind

blp = Blueprint("sparql", __name__, description="SPARQL 1.1 query endpoint over the released studies")

CORS = {"Access-Control-Allow-Origin": "*", "Access-Control-Expose-Headers": "Content-Type"}
PREFLIGHT = {"Access-Control-Allow-Methods": "GET, POST, OPTIONS", "Access-Control-Allow-Headers": "Content-Type, Accept",
             "Access-Control-Max-Age": "86400"}
#: answers may be kept, but checked again (ETag) before each reuse: a release changes them
REVALIDATE = "public, no-cache"
SD_TYPES = ["text/turtle", "application/n-triples", "application/ld+json", "application/rdf+xml"]


def _query_from_request() -> tuple[str | None, list[str], list[str]]:
    if request.method == "POST":
        ctype = (request.mimetype or "").lower()
        if ctype == "application/sparql-update" or "update" in request.form:
            raise ReadOnly("this endpoint is read-only: SPARQL Update is not accepted")
        if ctype == "application/sparql-query":
            query = request.get_data(as_text=True)
        elif ctype in ("application/x-www-form-urlencoded", "multipart/form-data"):
            query = request.form.get("query")
        else:
            raise NotAQuery(
                f"POST a query as application/sparql-query or as the form field 'query' (got {ctype or 'no content type'})"
            )
        default = request.args.getlist("default-graph-uri") + request.form.getlist("default-graph-uri")
        named = request.args.getlist("named-graph-uri") + request.form.getlist("named-graph-uri")
    else:
        if "update" in request.args:
            raise ReadOnly("this endpoint is read-only: SPARQL Update is not accepted")
        query = request.args.get("query")
        default, named = request.args.getlist("default-graph-uri"), request.args.getlist("named-graph-uri")
    return query, default, named


@blp.route("/sparql", methods=["GET", "POST"])
@blp.doc(
    summary="Run a SPARQL 1.1 query",
    description="SELECT/ASK as JSON, XML, CSV or TSV; CONSTRUCT/DESCRIBE as Turtle, JSON-LD, N-Triples or RDF/XML. "
    "A GET without a query returns the service description (RDF) or the query page (HTML).",
    parameters=[
        {"name": "query", "in": "query", "schema": {"type": "string"}},
        {"name": "default-graph-uri", "in": "query", "schema": {"type": "array", "items": {"type": "string"}}},
        {"name": "named-graph-uri", "in": "query", "schema": {"type": "array", "items": {"type": "string"}}},
    ],
)
def sparql() -> Response:
    query, default, named = _query_from_request()
    if not query:
        media = choose(["text/html", *SD_TYPES])
        if media == "text/html":
            return Response(render_template("sparql.html", examples=EXAMPLES, settings=settings()), mimetype="text/html")
        return _rdf_response(_service_description(), media)
    form = query_form(query)
    check_services(query, settings().sparql_service_allowlist)
    kind = result_kind(form)
    media = choose(RESULT_TYPES[kind] + ["text/html"])
    tag = _result_tag(query, default, named, media)
    if tag and etag_matches(request.headers.get("If-None-Match"), tag):
        return Response(status=304, headers={"ETag": tag, "Cache-Control": REVALIDATE})
    response = _answer(query, default, named, kind, media)
    if tag:  # the same query on the same snapshot: the same answer (api.sparql_cache keeps it)
        response.headers.update({"ETag": tag, "Cache-Control": REVALIDATE})
    return response


def _answer(query: str, default: list[str], named: list[str], kind: str, media: str) -> Response:
    runner = current_app.extensions["bia.sparql"]
    if media == "text/html":  # people: the results as a table (or the graph as Turtle)
        if kind == "graph":
            body, _ = runner.run(query, "text/turtle", default, named)
            return Response(render_template("sparql_results.html", query=query, boolean=None, variables=["turtle"],
                                            rows=[{"turtle": {"type": "literal", "value": body.decode()}}], settings=settings()),
                            mimetype="text/html")
        body, _ = runner.run(query, "application/sparql-results+json", default, named)
        data = json.loads(body)
        return Response(render_template("sparql_results.html", query=query, boolean=data.get("boolean"),
                                        variables=data.get("head", {}).get("vars", []),
                                        rows=data.get("results", {}).get("bindings", []), settings=settings()),
                        mimetype="text/html")
    asked = "application/sparql-results+json" if media == "application/json" else media
    body, returned = runner.run(query, asked, default, named)
    return Response(body, mimetype=media if media == "application/json" else returned)


def _result_tag(query: str, default: list[str], named: list[str], media: str) -> str | None:
    """An ETag for a query whose answer depends only on the published snapshot it reads (None otherwise, and
    for a remote store, which cannot say when it changed)."""
    if not repeatable(query):
        return None
    version = services().archive.public.reads.version()
    if version is None:
        return None
    digest = hashlib.sha256("\0".join([query, *default, "", *named, "", media]).encode()).hexdigest()[:24]
    return f'W/"{version}-{digest}"'


@blp.after_request
def cors(response: Response) -> Response:
    """Every answer of the endpoint (errors and preflights too) readable by browser SPARQL clients elsewhere."""
    response.headers.update(CORS)
    if request.method == "OPTIONS":
        response.headers.update(PREFLIGHT)
    return response


def _rdf_response(turtle: str, media: str) -> Response:
    if media == "text/turtle":
        return Response(turtle, mimetype=media)
    from rdflib import Graph

    graph = Graph().parse(data=turtle, format="turtle")
    fmt = {"application/n-triples": "nt", "application/ld+json": "json-ld", "application/rdf+xml": "xml"}[media]
    return Response(graph.serialize(format=fmt), mimetype=media)


def _service_description() -> str:
    base = settings().base_url
    results = "\n".join(f"    sd:resultFormat <{iri}> ;" for iri in (
        "http://www.w3.org/ns/formats/SPARQL_Results_JSON", "http://www.w3.org/ns/formats/SPARQL_Results_XML",
        "http://www.w3.org/ns/formats/SPARQL_Results_CSV", "http://www.w3.org/ns/formats/SPARQL_Results_TSV",
        "http://www.w3.org/ns/formats/Turtle", "http://www.w3.org/ns/formats/JSON-LD",
        "http://www.w3.org/ns/formats/N-Triples", "http://www.w3.org/ns/formats/RDF_XML",
    ))
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
        sd:defaultGraph [ a sd:Graph ; void:triples {services().archive.public.reads.count()} ]
    ] .
"""


@blp.route("/.well-known/void")
@blp.doc(summary="VoID description of the public dataset")
def void() -> Response:
    base = settings().base_url
    archive = services().archive
    studies = archive.public.search.count()
    turtle = f"""@prefix void: <http://rdfs.org/ns/void#> .
@prefix dcterms: <http://purl.org/dc/terms/> .
@prefix foaf: <http://xmlns.com/foaf/0.1/> .

<{base}/.well-known/void#catalog> a void:Dataset ;
    dcterms:title "{settings().catalog_name}" ;
    dcterms:description "REMBI metadata of released bioimaging studies; one named graph per study." ;
    foaf:homepage <{base}/> ;
    void:sparqlEndpoint <{base}/sparql> ;
    void:uriSpace "{base}/studies/" ;
    void:exampleResource <{base}/studies> ;
    void:triples {archive.public.reads.count()} ;
    void:entities {studies} ;
    void:vocabulary <https://w3id.org/rembi/> , <http://schema.org/> , <http://purl.org/dc/terms/> , <http://www.w3.org/ns/prov#> ;
    void:dataDump <{base}/export.nq> .
"""
    return _rdf_response(turtle, choose(SD_TYPES))


@blp.route("/.well-known/sparql-examples")
@blp.doc(summary="Example SPARQL queries (SHACL SPARQLExecutable, as SIB's sparql-examples)")
def sparql_examples() -> Response:
    media = choose([*SD_TYPES, "application/json"])
    if media == "application/json":
        return Response(
            json.dumps([{"id": e.id, "title": e.title, "query": e.query} for e in EXAMPLES], indent=1),
            mimetype="application/json",
        )
    return _rdf_response(examples_turtle(settings().base_url), media)
