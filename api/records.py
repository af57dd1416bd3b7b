"""Records over HTTP: one :class:`catalog.study_record.Record` per resource, rendered by media type.

JSON-LD, Turtle, N-Triples, RDF/XML and HTML all come from the same record graph; HTML is drawn from the same
nested JSON-LD tree search engines read (and embeds it), so the page and the data never disagree.
"""
from __future__ import annotations

import json
from typing import Any

import hashlib
import threading
from collections import OrderedDict
from urllib.parse import urlencode

from flask import Response, current_app, render_template, request
from rdflib import URIRef
from rdflib.namespace import DCTERMS

from api.app import services, settings
from catalog.errors import NotFound, Unauthorized
from catalog.jsonld_tree import PREFIXES, record_jsonld
from catalog.study_record import Record, build_record

RECORD_TYPES = ["application/ld+json", "text/turtle", "application/n-triples", "application/rdf+xml", "text/html", "application/json"]
RDFLIB_FORMATS = {"text/turtle": "turtle", "application/n-triples": "nt", "application/rdf+xml": "xml"}
SIGNPOSTING_FORMATS = [("application/ld+json", "jsonld"), ("text/turtle", "ttl"), ("application/n-triples", "nt"), ("application/rdf+xml", "rdf")]


def request_owner() -> str | None:
    """The owner named by a bearer token, if the request carries a valid one."""
    header = request.headers.get("Authorization", "")
    if not header.lower().startswith("bearer "):
        return None
    try:
        return services().archive.registry.owner_of_token(header[7:].strip())
    except Unauthorized:
        return None


def load_record(iri: str) -> Record:
    """The released record of ``iri``, or the embargoed one when its owner asks; else :class:`NotFound`."""
    archive = services().archive
    base = settings().base_url
    try:
        return build_record(archive.public.reads, base, iri, catalog_name=settings().catalog_name)
    except ValueError:  # not an IRI the store can hold
        raise NotFound(f"no record {iri}") from None
    except NotFound:
        owner = request_owner()
        record = record_owner_view(iri, owner) if owner else None
        if record is None:
            raise
        return record


def record_owner_view(iri: str, owner: str) -> Record | None:
    from catalog import identifiers

    archive = services().archive
    accession = identifiers.accession_of(iri)
    row = archive.registry.study(accession) if accession else None
    if row is None or row.owner != owner or archive.private is None:
        return None
    try:
        return build_record(archive.private.graph, settings().base_url, iri, catalog_name=settings().catalog_name)
    except NotFound:
        return None


def script_json(data: Any) -> str:
    """JSON for an inline ``<script>``: ``<``, ``>`` and ``&`` escaped, so no value can close the element."""
    return json.dumps(data, ensure_ascii=False).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def signposting(record: Record) -> str:
    """FAIR signposting ``Link`` header of a study's landing page."""
    graph, study = record.graph, URIRef(record.study_iri)
    links = []
    doi = next((str(d) for d in graph.objects(study, URIRef("https://w3id.org/rembi/doi"))), None)
    links.append(f'<{"https://doi.org/" + doi if doi else record.study_iri}>; rel="cite-as"')
    for media, suffix in SIGNPOSTING_FORMATS:
        links.append(f'<{record.study_iri}.{suffix}>; rel="describedby"; type="{media}"')
    for licence in graph.objects(study, DCTERMS.license):
        links.append(f'<{licence}>; rel="license"')
    links.append('<https://schema.org/Dataset>; rel="type"')
    links.append('<https://schema.org/AboutPage>; rel="type"')
    links.append(f'<{record.study_iri}/download>; rel="item"; type="application/zip"')
    links.append(f'<{record.study_iri}/files>; rel="item"; type="application/json"')
    return ", ".join(links)


_CACHE_SIZE = 1024


class RecordCache:
    """Rendered released records of one app, keyed by IRI, media type and graph-store snapshot."""

    def __init__(self, size: int = _CACHE_SIZE) -> None:
        self.size = size
        self.entries: "OrderedDict[tuple, tuple[bytes, str, dict[str, str]]]" = OrderedDict()
        self.lock = threading.Lock()

    def get(self, key: tuple) -> tuple[bytes, str, dict[str, str]] | None:
        with self.lock:
            hit = self.entries.get(key)
            if hit is not None:
                self.entries.move_to_end(key)
            return hit

    def put(self, key: tuple, value: tuple[bytes, str, dict[str, str]]) -> None:
        with self.lock:
            self.entries[key] = value
            while len(self.entries) > self.size:
                self.entries.popitem(last=False)


def record_response(iri: str, media: str) -> Response:
    """The rendered record of ``iri`` — from a cache of released records keyed by the store's snapshot (a new
    commit, release or link run makes a new one), with an ETag that conditional requests are answered by."""
    version = services().archive.public.reads.version()
    if version is None or request.headers.get("Authorization") or "no-cache" in request.headers.get("Cache-Control", ""):
        return render_record(load_record(iri), media)
    key = (iri, media, version, settings().base_url)
    etag = hashlib.sha1(repr(key).encode()).hexdigest()[:20]
    if etag in request.if_none_match:
        return Response(status=304, headers={"ETag": f'"{etag}"'})
    cache: RecordCache = current_app.extensions.setdefault("bia.record_cache", RecordCache())
    hit = cache.get(key)
    if hit is None:
        response = render_record(load_record(iri), media)
        hit = (response.get_data(), response.mimetype, {k: v for k, v in response.headers.items() if k in ("Link", "Cache-Control")})
        cache.put(key, hit)
    body, mimetype, headers = hit
    return Response(body, mimetype=mimetype, headers={**headers, "ETag": f'"{etag}"'})


def render_record(record: Record, media: str) -> Response:
    if media in RDFLIB_FORMATS:
        graph = record.graph.to_rdflib()
        for prefix, namespace in PREFIXES.items():
            graph.bind(prefix, namespace)
        graph.bind("schema", "http://schema.org/")
        response = Response(graph.serialize(format=RDFLIB_FORMATS[media]), mimetype=media)
    else:
        tree = record_jsonld(record.graph, record.iri)
        if media == "text/html" and record.is_study and "@graph" not in tree:
            response = Response(render_study_page(record, tree), mimetype="text/html")
        elif media == "text/html":
            response = Response(
                render_template("record.html", record=record, tree=tree, jsonld=script_json(tree),
                                settings=settings(), formats=SIGNPOSTING_FORMATS),
                mimetype="text/html",
            )
        else:
            response = Response(json.dumps(tree, ensure_ascii=False, separators=(",", ":")), mimetype=media)
    if record.is_study:
        response.headers["Link"] = signposting(record)
    if request_owner() is None:
        response.headers["Cache-Control"] = "public, max-age=300"
    return response


def self_url(**changes: Any) -> str:
    """This request's URL under the catalog's base URL, with some query parameters changed (None removes one)."""
    args = {k: request.args.getlist(k) for k in request.args}
    for key, value in changes.items():
        if value is None:
            args.pop(key, None)
        else:
            args[key] = [str(value)]
    query = urlencode([(k, v) for k, values in args.items() for v in values])
    return f"{settings().base_url}{request.path}" + (f"?{query}" if query else "")


STUDY_SECTIONS = [
    ("hasPart", "Study components"),
    ("rembi:biosamples", "Biosamples"),
    ("rembi:specimens", "Specimens"),
    ("rembi:image_acquisitions", "Image acquisition"),
    ("rembi:image_correlations", "Image correlation"),
    ("rembi:image_analyses", "Image analysis"),
    ("rembi:annotation_methods", "Annotations"),
]


def _titles(node: Any, out: dict[str, str]) -> dict[str, str]:
    """IRI → a readable name, for every node of a JSON-LD tree (associations show names, not hashes)."""
    if isinstance(node, dict):
        name = node.get("dcterms:title") or node.get("name") or node.get("rdfs:label")
        if "@id" in node and isinstance(name, str):
            out.setdefault(node["@id"], name)
        for value in node.values():
            _titles(value, out)
    elif isinstance(node, list):
        for item in node:
            _titles(item, out)
    return out


def citation_text(tree: dict[str, Any], record: Record) -> str:
    authors = tree.get("creator") or []
    authors = authors if isinstance(authors, list) else [authors]
    names = [a.get("name", "") for a in sorted(authors, key=lambda a: a.get("position", 0) if isinstance(a.get("position"), int) else 0)]
    released = tree.get("datePublished")
    year = (released.get("@value") if isinstance(released, dict) else str(released or ""))[:4]
    doi = tree.get("rembi:doi")
    where = f"https://doi.org/{doi}" if doi else record.study_iri
    who = ", ".join(n for n in names if n) or "Anonymous"
    return f"{who} ({year}). {tree.get('name', record.accession)}. {settings().catalog_name}, {record.accession}. {where}"


def render_study_page(record: Record, tree: dict[str, Any]) -> str:
    """The study page: the same record, drawn as readable REMBI sections."""
    links = []
    try:
        from api.links import study_links

        found = study_links(record.accession)
        links = [{"relation": link["relation"], "other": link["target"], "direction": "outgoing", "evidence": link["evidence"]}
                 for link in found["outgoing"] if link.get("resource") not in ("NCBITaxon", "FBbi")]
        links += [{"relation": link["relation"], "other": link["source"], "direction": "incoming", "evidence": link["evidence"]}
                  for link in found["incoming"]]
    except NotFound:
        pass  # an embargoed study (shown to its owner) has no links yet
    signposts = [{"rel": rel.split('"')[1], "href": href.strip("<> "), "type": None}
                 for href, rel in (part.split(";", 1) for part in signposting(record).split(", <"))]
    files = services().archive.registry.study(record.accession)
    return render_template(
        "study.html", record=record, tree=tree, jsonld=script_json(tree), settings=settings(),
        formats=SIGNPOSTING_FORMATS, sections=STUDY_SECTIONS, titles=_titles(tree, {}), links=links,
        citation=citation_text(tree, record), file_count=files.file_count if files else 0, signposts=signposts,
    )


def page_links(total: int, limit: int, offset: int) -> dict[str, str | None]:
    def link(new_offset: int) -> str:
        return self_url(limit=limit, offset=new_offset)

    return {
        "next": link(offset + limit) if offset + limit < total else None,
        "previous": link(max(0, offset - limit)) if offset > 0 else None,
    }
