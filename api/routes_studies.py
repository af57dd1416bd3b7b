"""Study records: the paged listing, each study and every object inside it (content-negotiated), links."""

from __future__ import annotations

import json
import re
from typing import Any

from flask import Response, render_template

from api.context import services, settings
from api.negotiate import SUFFIXES, choose
from api.openapi import HTML, JSONLD, NOT_MODIFIED, TEXT, Blueprint, errors, formats, path_choice, responses
from api.records import RECORD_TYPES, RecordDocument, page_links, record_response, render_record
from api.schemas import StudyLinks, StudyList, StudyListArgs
from api.tabular import table_text
from api.citation_records import datacite_response
from catalog.datacite import MEDIA_TYPE as DATACITE
from catalog import identifiers
from catalog.errors import NotFound
from catalog.record_index import body_digest

blp = Blueprint("studies", __name__, description="Study records as JSON-LD, Turtle, N-Triples, RDF/XML and HTML")
_SUFFIX = re.compile(r"^(?P<name>.+)\.(?P<suffix>" + "|".join(map(re.escape, SUFFIXES)) + r")$")
#: a record's answer in each of its forms (HTML, the landing page, first), and when the client's copy is current
RECORD_ANSWERS = responses(
    formats(200, "text/turtle", "application/n-triples", "application/rdf+xml"),
    formats(200, "application/ld+json", "application/json", schema=JSONLD),
    {304: NOT_MODIFIED},
    errors(404, 406),
)
#: a study's forms: its record's, and its DataCite metadata (released studies)
STUDY_TYPES = [*RECORD_TYPES, DATACITE]
STUDY_ANSWERS = responses(RECORD_ANSWERS, formats(200, DATACITE))


def study_iri_or_404(accession: str) -> str:
    """The IRI of ``accession``; a 404 (not a 500) for anything that is not an accession."""
    try:
        return identifiers.study_iri(settings().base_url, accession)
    except ValueError:
        raise NotFound(f"{accession!r} is not an accession") from None


def _split_suffix(name: str) -> tuple[str, str | None]:
    match = _SUFFIX.match(name)
    return (match.group("name"), match.group("suffix")) if match else (name, None)


@blp.route("/studies")
@blp.arguments(StudyListArgs, location="query")
@blp.response(200, StudyList, description="A page of released studies (as HTML: the page for people)")
@blp.doc(
    operationId="listStudies", summary="Released studies, newest first", responses=responses(formats(200, HTML), errors(400, 406))
)
def list_studies(args: dict[str, Any]) -> Response:
    limit, offset = args["limit"], args["offset"]
    result = services().archive.public.search.search("", sort="newest", limit=limit, offset=offset, facet_fields=())
    base = settings().base_url
    items = [
        {
            "accession": h.accession,
            "url": identifiers.study_iri(base, h.accession),
            "title": h.document.title,
            "release_date": h.document.release_date,
            "source": h.document.source,
            "files": h.document.file_count,
            "bytes": h.document.total_size,
        }
        for h in result.hits
    ]
    body = {"items": items, "total": result.total, **page_links(result.total, limit, offset)}
    media = choose(["application/json", "text/html"])
    if media == "text/html":
        return Response(
            render_template("studies.html", page=body, settings=settings(), limit=limit, offset=offset), mimetype=media
        )
    return Response(json.dumps(body, ensure_ascii=False), mimetype=media)


@blp.route("/studies/<string:accession>")
@blp.response(
    200,
    TEXT,
    content_type=HTML,
    description="The study's record; HTML, its landing page, unless Accept or a suffix "
    "(.jsonld, .ttl, .nt, .rdf, .html, .datacite.xml) asks for another form",
)
@blp.doc(
    operationId="getStudy",
    summary="One study: JSON-LD (schema.org Dataset, Bioschemas), Turtle, N-Triples, RDF/XML, HTML or DataCite XML",
    responses=STUDY_ANSWERS,
)
def get_study(accession: str) -> Response:
    name, suffix = _split_suffix(accession)
    media = choose(STUDY_TYPES, suffix)
    if media == DATACITE:
        study_iri_or_404(name)
        return datacite_response(name)
    return record_response(study_iri_or_404(name), media, document=suffix is not None)


@blp.route("/studies/<string:accession>/<path:subpath>")
@blp.response(200, TEXT, content_type=HTML, description="The object's record (as for a study)")
@blp.doc(
    operationId="getStudyObject",
    summary="An object inside a study (component, biosample, file…), by its IRI",
    responses=RECORD_ANSWERS,
)
def get_object(accession: str, subpath: str) -> Response:
    name, suffix = _split_suffix(subpath)
    media = choose(RECORD_TYPES, suffix)
    return record_response(f"{study_iri_or_404(accession)}/{name}", media, document=suffix is not None)


@blp.route("/links.<string:fmt>", parameters=[path_choice("fmt", "jsonld", "tsv")])
@blp.response(
    200, JSONLD, content_type="application/ld+json", description="Every link (fmt=jsonld), or a table of them (fmt=tsv)"
)
@blp.doc(
    operationId="getLinkGraph",
    summary="The whole link graph (asserted and inferred links with their evidence) as JSON-LD or TSV",
    responses=responses(formats(200, "text/tab-separated-values"), errors(404)),
)
def link_graph(fmt: str) -> Response:
    from linkers.discover import asserted_graph, inferred_graph
    from linkers.link_export import link_graph_document

    if fmt not in ("jsonld", "tsv"):
        raise NotFound(f"no link graph as {fmt!r}; use links.jsonld or links.tsv")
    store = services().archive.public.reads
    base = settings().base_url
    if fmt == "jsonld":  # the link graphs themselves (every triple, IRIs as IRIs)
        doc = link_graph_document(store, base)
        return Response(json.dumps(doc, ensure_ascii=False, indent=1), mimetype="application/ld+json")
    rows = store.select(
        "PREFIX rembi: <https://w3id.org/rembi/> SELECT ?link ?source ?target ?relation ?inferred"
        ' (GROUP_CONCAT(?e; separator=" | ") AS ?evidence) WHERE {'
        f" VALUES ?g {{ <{asserted_graph(base)}> <{inferred_graph(base)}> }} GRAPH ?g {{ ?link a rembi:Link ;"
        " rembi:linkSource ?source ; rembi:linkTarget ?target ; rembi:relation ?relation ; rembi:inferred ?inferred ."
        " OPTIONAL { ?link rembi:evidence ?e } } } GROUP BY ?link ?source ?target ?relation ?inferred ORDER BY ?source ?target"
    )
    model = services().archive.model
    public = {node["@id"] for node in link_graph_document(store, base)["@graph"]}  # (links to hidden studies left out)
    links: list[dict[str, str]] = [
        {k: row[k]["value"] for k in ("link", "source", "target", "relation", "inferred", "evidence") if k in row}
        for row in rows
        if row["link"]["value"] in public
    ]
    for link in links:
        link["relation"] = model.enum_name("RelationEnum", link["relation"]) or link["relation"]
    columns = ("source", "relation", "target", "inferred", "evidence")
    lines = [columns, *([link.get(k, "") for k in columns] for link in links)]
    return Response("".join(table_text(lines, "\t")), mimetype="text/tab-separated-values")


_LINK_NAME = re.compile(r"[0-9A-Za-z_-]{1,128}")


@blp.route("/links/<string:name>")
@blp.response(200, TEXT, content_type=HTML, description="The link's record (as for a study object)")
@blp.doc(
    operationId="getLink",
    summary="One cross-resource link (source, relation, target, evidence): JSON-LD, Turtle, N-Triples, RDF/XML or HTML",
    responses=RECORD_ANSWERS,
)
def get_link(name: str) -> Response:
    from linkers.link_export import link_document

    name, suffix = _split_suffix(name)
    media = choose(RECORD_TYPES, suffix)
    base = settings().base_url
    iri = f"{base}/links/{name}"
    found = link_document(services().archive.public.reads, base, iri) if _LINK_NAME.fullmatch(name) else None
    if found is None:
        raise NotFound(f"no link {iri}")
    body = json.dumps(found, ensure_ascii=False).encode("utf-8")
    source = found.get("linkSource", {}).get("@id", "") if isinstance(found.get("linkSource"), dict) else ""
    doc = RecordDocument(iri, identifiers.accession_of(source) or "", iri, False, body, body_digest(body))
    return render_record(doc, media, document=suffix is not None)


@blp.route("/studies/<string:accession>/links")
@blp.response(200, StudyLinks)
@blp.doc(
    operationId="getStudyLinks",
    summary="Cross-resource links of a study, outgoing and incoming",
    responses=responses(formats(200, "application/ld+json", schema=JSONLD), errors(404, 406)),
)
def study_links(accession: str) -> Response:
    from linkers.study_links import study_links as collect

    media = choose(["application/json", "application/ld+json"])
    study_iri_or_404(accession)
    body = collect(services().archive, accession, jsonld=media == "application/ld+json")
    return Response(json.dumps(body, ensure_ascii=False, indent=1), mimetype=media)
