"""Records over HTTP: one JSON-LD document per resource, rendered by media type.

A record is the nested JSON-LD document :meth:`catalog.study_record.Record.body` builds from the record graph.
A released study's document is rendered when the study changes and read from the view's record index
(:mod:`catalog.record_index`); any other record (an object inside a study, a study its owner sees before its
release, a study whose stored document is stale) is built on request by the same code. Turtle, N-Triples and
RDF/XML are that document parsed back into triples (pyoxigraph), and HTML draws the same tree (and embeds it),
so every format of a record says the same thing.
"""

from __future__ import annotations

import functools
import hashlib
import json
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import pyoxigraph as ox
from flask import Response, current_app, render_template, request
from werkzeug.http import http_date

from api.context import services, settings
from api.image_page import plane_browser
from catalog import identifiers
from catalog.errors import NotFound, Unauthorized
from catalog.jsonld_tree import PREFIXES, expand_iri
from catalog.record_index import StoredRecord, body_digest
from catalog.study_record import build_record, rendering_fingerprint
from catalog.views import PRIVATE

#: a record's forms; the first answers ``*/*`` and no Accept: the landing page, as DOI landing pages and linked-data
#: IRIs answer (RDF clients ask for their form, and ``describedby`` links name each one by its suffix)
RECORD_TYPES = [
    "text/html",
    "application/ld+json",
    "text/turtle",
    "application/n-triples",
    "application/rdf+xml",
    "application/json",
]
RDF_FORMATS = {
    "text/turtle": ox.RdfFormat.TURTLE,
    "application/n-triples": ox.RdfFormat.N_TRIPLES,
    "application/rdf+xml": ox.RdfFormat.RDF_XML,
}
RDF_PREFIXES = {**PREFIXES, "schema": "http://schema.org/"}
SIGNPOSTING_FORMATS = [
    ("application/ld+json", "jsonld"),
    ("text/turtle", "ttl"),
    ("application/n-triples", "nt"),
    ("application/rdf+xml", "rdf"),
]


@dataclass
class RecordDocument:
    """What every renderer of a record gets: its JSON-LD document (compact UTF-8 JSON) and whose it is."""

    iri: str
    accession: str
    study_iri: str
    is_study: bool
    body: bytes
    digest: str
    #: False for a study shown to its owner before its release
    released: bool = True
    #: when a stored rendering last changed (seconds since the epoch); None for one built on request
    modified: float | None = None

    @classmethod
    def stored(cls, row: StoredRecord, accession: str, *, released: bool = True) -> "RecordDocument":
        """The document of a study as its record index keeps it."""
        return cls(row.iri, accession, row.iri, True, row.body, row.digest, released, modified=row.changed)

    @functools.cached_property
    def tree(self) -> dict[str, Any]:
        return json.loads(self.body)

    @property
    def root(self) -> dict[str, Any]:
        """The node of the resource itself."""
        return self.tree["@graph"][0] if "@graph" in self.tree else self.tree


def request_owner() -> str | None:
    """The owner named by a bearer token, if the request carries a valid one."""
    header = request.headers.get("Authorization", "")
    if not header.lower().startswith("bearer "):
        return None
    try:
        return services().archive.registry.owner_of_token(header[7:].strip())
    except Unauthorized:
        return None


def stored_document(iri: str) -> RecordDocument | None:
    """The document of a released study as rendered at its last change, if it is stored and current."""
    accession = identifiers.accession_of(iri)
    base = settings().base_url
    try:
        if accession is None or iri != identifiers.study_iri(base, accession):
            return None
    except ValueError:
        return None
    stored = services().archive.public.records.get(iri, rendering_fingerprint(base, settings().catalog_name))
    if stored is None:
        return None
    return RecordDocument.stored(stored, accession)


def build_document(iri: str) -> RecordDocument:
    """The document of ``iri`` built from the graph store: the released record, or the embargoed one when its
    owner asks; else :class:`NotFound`."""
    archive, base, name = services().archive, settings().base_url, settings().catalog_name
    released = True
    try:
        record = build_record(archive.public.reads, base, iri, catalog_name=name, holds_files=archive.holds_files)
    except ValueError:  # not an IRI the store can hold
        raise NotFound(f"no record {iri}") from None
    except NotFound:
        owner = request_owner()
        accession = identifiers.accession_of(iri)
        row = archive.registry.study(accession) if accession else None
        if owner is None or row is None or row.owner != owner or archive.private is None:
            raise
        stored = archive.private.records.get(iri, rendering_fingerprint(base, name))
        if stored is not None:
            return RecordDocument.stored(stored, row.accession, released=False)
        record = build_record(
            archive.private.graph,
            base,
            iri,
            catalog_name=name,
            holds_files=lambda accession: archive.holds_files(accession, PRIVATE),
        )
        released = False
    body = record.body()
    return RecordDocument(record.iri, record.accession, record.study_iri, record.is_study, body, body_digest(body), released)


def script_json(data: Any) -> str:
    """JSON for an inline ``<script>``: ``<``, ``>`` and ``&`` escaped, so no value can close the element."""
    return json.dumps(data, ensure_ascii=False).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _values(node: dict[str, Any], key: str) -> list[Any]:
    value = node.get(key)
    return [] if value is None else value if isinstance(value, list) else [value]


def _plain(value: Any) -> str:
    return str(value.get("@id") or value.get("@value")) if isinstance(value, dict) else str(value)


def signposting(doc: RecordDocument) -> str:
    """FAIR signposting ``Link`` header of a study's landing page."""
    root = doc.root
    doi = next((_plain(d) for d in _values(root, "rembi:doi")), None)
    links = [f'<{"https://doi.org/" + doi if doi else doc.study_iri}>; rel="cite-as"']
    for media, suffix in SIGNPOSTING_FORMATS:
        links.append(f'<{doc.study_iri}.{suffix}>; rel="describedby"; type="{media}"')
    # the study as a detached RO-Crate for cross-archive search (GIDE profile; RO-Crate 1.2 "Retrieving an RO-Crate")
    links.append(
        f'<{doc.study_iri}/ro-crate-metadata.json>; rel="describedby"; type="application/ld+json"; profile="https://w3id.org/ro/crate"'
    )
    for licence in _values(root, "license"):
        links.append(f'<{expand_iri(_plain(licence))}>; rel="license"')
    links.append('<https://schema.org/Dataset>; rel="type"')
    links.append('<https://schema.org/AboutPage>; rel="type"')
    if _values(root, "distribution"):
        links.append(f'<{doc.study_iri}/download>; rel="item"; type="application/zip"')
    links.append(f'<{doc.study_iri}/files>; rel="item"; type="application/json"')
    return ", ".join(links)


_CACHE_SIZE = 1024
#: how long shared caches may keep a released record before checking its ETag again
PUBLIC_RECORD = "public, max-age=300"


class RecordCache:
    """Rendered released records of one app, keyed by IRI, media type and what the record was built from."""

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


def record_response(iri: str, media: str, document: bool = False) -> Response:
    """The rendered record of ``iri``, with an ETag that conditional requests are answered by.

    A released study's stored document is tagged by its digest; a record built on request by the graph-store
    snapshot it was built from (a new commit, release or link run makes a new one). Renderings are kept in a
    per-app cache under that tag (``Cache-Control: no-cache`` renders again); an owner's view is never cached.
    ``document``: asked by a suffix (``.jsonld``…): a metadata document, which signposts what it describes.
    """
    stored = stored_document(iri)
    if stored is not None:
        tag: str | None = stored.digest
    else:
        version = services().archive.public.reads.version()
        tag = None if version is None or request.headers.get("Authorization") else f"{version}|{settings().base_url}"
    if tag is None:
        return render_record(build_document(iri), media, document)
    variant = request.query_string.decode("latin-1") if media == "text/html" else ""  # an image page's plane
    etag = hashlib.sha1(f"{iri}|{media}|{tag}|{variant}".encode("utf-8")).hexdigest()[:20]
    validators = {"ETag": f'"{etag}"'}
    if stored is not None and stored.modified is not None:
        validators["Last-Modified"] = http_date(stored.modified)
    if request.if_none_match.contains_weak(etag) or _not_modified_since(stored):  # RFC 9110: weak comparison
        return Response(status=304, headers={**validators, "Cache-Control": PUBLIC_RECORD})
    cache: RecordCache = current_app.extensions.setdefault("bia.record_cache", RecordCache())
    key = (iri, media, tag, document, variant)
    hit = None if "no-cache" in request.headers.get("Cache-Control", "") else cache.get(key)
    if hit is None:
        response = render_record(stored or build_document(iri), media, document)
        hit = (
            response.get_data(),
            response.mimetype or media,
            {k: v for k, v in response.headers.items() if k in ("Link", "Cache-Control")},
        )
        cache.put(key, hit)
    body, mimetype, headers = hit
    return Response(body, mimetype=mimetype, headers={**headers, **validators})


def _not_modified_since(stored: RecordDocument | None) -> bool:
    """``If-Modified-Since`` answered (only when the request has no ``If-None-Match``, which takes precedence)."""
    since = request.if_modified_since
    if stored is None or stored.modified is None or since is None or request.if_none_match:
        return False
    return int(stored.modified) <= since.timestamp()


def render_record(doc: RecordDocument, media: str, document: bool = False) -> Response:
    if media in RDF_FORMATS:
        triples = ox.parse(doc.body, format=ox.RdfFormat.JSON_LD)
        response = Response(ox.serialize(triples, format=RDF_FORMATS[media], prefixes=RDF_PREFIXES), mimetype=media)
    elif media == "text/html" and doc.is_study and "@graph" not in doc.tree:
        response = Response(render_study_page(doc), mimetype="text/html")
    elif media == "text/html":
        response = Response(
            render_template(
                "record.html",
                record=doc,
                tree=doc.tree,
                jsonld=script_json(doc.tree),
                settings=settings(),
                formats=SIGNPOSTING_FORMATS,
                planes=plane_browser(doc.iri),
            ),
            mimetype="text/html",
        )
    else:
        response = Response(doc.body, mimetype=media)
    if doc.is_study and document and media != "text/html":  # FAIR signposting: a metadata resource names its landing page
        response.headers["Link"] = f'<{doc.study_iri}>; rel="describes"; type="text/html"'
    elif doc.is_study:
        response.headers["Link"] = signposting(doc)
    response.headers["Cache-Control"] = PUBLIC_RECORD if doc.released else "private, no-store"
    return response


def canonical_url() -> str:
    """This page's one URL for search engines: under the base URL, without an ``.html`` suffix or format hints."""
    path = request.path.removesuffix(".html")
    args = [(k, v) for k, v in request.args.items(multi=True) if k not in ("format", "output")]
    return f"{settings().base_url}{path}" + (f"?{urlencode(args)}" if args else "")


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


def citation_text(tree: dict[str, Any], record: RecordDocument) -> str:
    authors = tree.get("creator") or []
    authors = authors if isinstance(authors, list) else [authors]
    names = [
        a.get("name", "")
        for a in sorted(authors, key=lambda a: a.get("position", 0) if isinstance(a.get("position"), int) else 0)
    ]
    released = tree.get("datePublished")
    year = str((released.get("@value") if isinstance(released, dict) else released) or "")[:4]
    doi = tree.get("rembi:doi")
    where = f"https://doi.org/{doi}" if doi else record.study_iri
    who = ", ".join(n for n in names if n) or "Anonymous"
    return f"{who} ({year}). {tree.get('name', record.accession)}. {settings().catalog_name}, {record.accession}. {where}"


def render_study_page(record: RecordDocument) -> str:
    """The study page: the same record, drawn as readable REMBI sections."""
    tree = record.tree
    links = []
    try:
        from linkers.study_links import study_links

        found = study_links(services().archive, record.accession)
        links = [
            {"relation": link["relation"], "other": link["target"], "direction": "outgoing", "evidence": link["evidence"]}
            for link in found["outgoing"]
            if link.get("resource") not in ("NCBITaxon", "FBbi")
        ]
        links += [
            {"relation": link["relation"], "other": link["source"], "direction": "incoming", "evidence": link["evidence"]}
            for link in found["incoming"]
        ]
    except NotFound:
        pass  # an embargoed study (shown to its owner) has no links yet
    signposts = [
        {"rel": rel.split('"')[1], "href": href.strip("<> "), "type": None}
        for href, rel in (part.split(";", 1) for part in signposting(record).split(", <"))
    ]
    files = services().archive.registry.study(record.accession)
    return render_template(
        "study.html",
        record=record,
        tree=tree,
        jsonld=script_json(tree),
        settings=settings(),
        formats=SIGNPOSTING_FORMATS,
        sections=STUDY_SECTIONS,
        titles=_titles(tree, {}),
        links=links,
        citation=citation_text(tree, record),
        file_count=files.file_count if files else 0,
        signposts=signposts,
    )


def page_links(total: int, limit: int, offset: int) -> dict[str, str | None]:
    def link(new_offset: int) -> str:
        return self_url(limit=limit, offset=new_offset)

    return {
        "next": link(offset + limit) if offset + limit < total else None,
        "previous": link(max(0, offset - limit)) if offset > 0 else None,
    }
