"""Content negotiation: a URL suffix wins, else the Accept header (werkzeug's parser), else the default."""

from __future__ import annotations

from flask import request
from werkzeug.datastructures import MIMEAccept

from catalog.errors import CatalogError

#: URL suffixes of the record and table renderers.
SUFFIXES = {
    "jsonld": "application/ld+json",
    "json": "application/json",
    "ttl": "text/turtle",
    "nt": "application/n-triples",
    "rdf": "application/rdf+xml",
    "html": "text/html",
    "csv": "text/csv",
    "tsv": "text/tab-separated-values",
    "datacite.xml": "application/vnd.datacite.datacite+xml",
}


#: ``format``/``output`` parameter values other clients send (SPARQLWrapper sends both, e.g. ``json``, ``turtle``).
FORMAT_ALIASES = {
    "xml": ("application/sparql-results+xml", "application/rdf+xml"),
    "json": ("application/sparql-results+json", "application/json", "application/ld+json"),
    "srj": ("application/sparql-results+json",),
    "srx": ("application/sparql-results+xml",),
    "turtle": ("text/turtle",),
    "n3": ("text/turtle",),
    "rdf+xml": ("application/rdf+xml",),
    "rdf": ("application/rdf+xml",),
    "json-ld": ("application/ld+json",),
    "jsonld": ("application/ld+json",),
    "nt": ("application/n-triples",),
    "ntriples": ("application/n-triples",),
    "n-triples": ("application/n-triples",),
    "csv": ("text/csv",),
    "tsv": ("text/tab-separated-values",),
    "html": ("text/html",),
}


class NotAcceptable(CatalogError):
    status = 406
    code = "not_acceptable"


def choose(offered: list[str], suffix: str | None = None) -> str:
    """The media type to answer with, among ``offered`` (first = default for ``*/*`` and no Accept)."""
    if suffix:
        media = SUFFIXES.get(suffix.lower())
        if media not in offered:
            raise NotAcceptable(f"no {suffix!r} rendering here; available: {', '.join(offered)}")
        return media
    requested = request.args.get("format") or request.args.get("output")
    if not requested and request.method == "POST" and request.mimetype != "application/sparql-query":
        requested = request.form.get("format") or request.form.get("output")
    if requested:
        candidates = FORMAT_ALIASES.get(requested.lower(), (SUFFIXES.get(requested.lower(), requested),))
        for media in candidates:
            if media in offered:
                return media
        if not request.accept_mimetypes or not _accepted(offered):  # else a hint it cannot follow: Accept decides
            raise NotAcceptable(f"format {requested!r} is not available; available: {', '.join(offered)}")
    accepted = _accepted(offered)
    if accepted is None:
        raise NotAcceptable(
            f"none of the requested media types ({request.headers.get('Accept')}) is available; available: {', '.join(offered)}"
        )
    return accepted


def _accepted(offered: list[str]) -> str | None:
    """The best of ``offered`` for the Accept header, its media-type parameters (``charset``, ``profile``…) set
    aside: each type here has one form, UTF-8 where it is text. No Accept header: the first offered."""
    if not request.accept_mimetypes:
        return offered[0]
    bare = MIMEAccept([(value.split(";", 1)[0].strip(), quality) for value, quality in request.accept_mimetypes])
    return bare.best_match(offered)
