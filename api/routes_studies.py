"""Study records: the paged listing, each study and every object inside it (content-negotiated), links."""
from __future__ import annotations

import json
import re

from flask import Response, render_template, request
from flask_smorest import Blueprint

from api.app import services, settings
from api.negotiate import SUFFIXES, choose
from api.records import RECORD_TYPES, load_record, page_links, render_record
from catalog import identifiers
from catalog.errors import CatalogError, NotFound

blp = Blueprint("studies", __name__, description="Study records as JSON-LD, Turtle, N-Triples, RDF/XML and HTML")
_SUFFIX = re.compile(r"^(?P<name>.+)\.(?P<suffix>" + "|".join(SUFFIXES) + r")$")


class BadParameter(CatalogError):
    status = 400
    code = "bad_parameter"


def int_arg(name: str, default: int, low: int = 0, high: int = 10_000) -> int:
    raw = request.args.get(name)
    if raw in (None, ""):
        return default
    try:
        value = int(raw)
    except ValueError:
        raise BadParameter(f"{name} must be a whole number, not {raw!r}", [{"field": name, "value": raw}]) from None
    if not low <= value <= high:
        raise BadParameter(f"{name} must be between {low} and {high}", [{"field": name, "value": raw}])
    return value


def _split_suffix(name: str) -> tuple[str, str | None]:
    match = _SUFFIX.match(name)
    return (match.group("name"), match.group("suffix")) if match else (name, None)


@blp.route("/studies")
@blp.doc(
    summary="Released studies, newest first",
    parameters=[{"name": "limit", "in": "query", "schema": {"type": "integer", "default": 50}},
                {"name": "offset", "in": "query", "schema": {"type": "integer", "default": 0}}],
)
def list_studies() -> Response:
    limit, offset = int_arg("limit", 50, 1, 1000), int_arg("offset", 0, 0, 10_000_000)
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
    body = {"items": items, "total": result.total, **page_links(result.total, limit, offset, "studies.list_studies")}
    media = choose(["application/json", "text/html"])
    if media == "text/html":
        return Response(render_template("studies.html", page=body, settings=settings(), limit=limit, offset=offset), mimetype=media)
    return Response(json.dumps(body, ensure_ascii=False), mimetype=media)


@blp.route("/studies/<string:accession>")
@blp.doc(summary="One study: JSON-LD (schema.org Dataset, Bioschemas), Turtle, N-Triples, RDF/XML or HTML")
def get_study(accession: str) -> Response:
    name, suffix = _split_suffix(accession)
    media = choose(RECORD_TYPES, suffix)
    try:
        iri = identifiers.study_iri(settings().base_url, name)
    except ValueError:
        raise NotFound(f"{name!r} is not an accession") from None
    return render_record(load_record(iri), media)


@blp.route("/studies/<string:accession>/<path:subpath>")
@blp.doc(summary="An object inside a study (component, biosample, file…), by its IRI")
def get_object(accession: str, subpath: str) -> Response:
    name, suffix = _split_suffix(subpath)
    media = choose(RECORD_TYPES, suffix)
    try:
        study = identifiers.study_iri(settings().base_url, accession)
    except ValueError:
        raise NotFound(f"{accession!r} is not an accession") from None
    return render_record(load_record(f"{study}/{name}"), media)


@blp.route("/studies/<string:accession>/links")
@blp.doc(summary="Cross-resource links of a study, outgoing and incoming")
def study_links(accession: str) -> Response:
    from api.links import study_links as collect

    media = choose(["application/json", "application/ld+json"])
    body = collect(accession, jsonld=media == "application/ld+json")
    return Response(json.dumps(body, ensure_ascii=False, indent=1), mimetype=media)
