"""FAIR signposting (signposting.org, level 2) of a study: the typed links of its landing page, the same links as
an RFC 9264 linkset (``application/linkset+json`` and ``application/linkset``), and the links of its files back to
it. One list of :class:`Signpost` feeds the ``Link`` header, the HTML ``<link>`` tags and the linkset, so they agree.

A study's ``item`` links name its content where it is served: the files this archive holds (their downloads and
the zip of the study), or, for a harvested study, the files at the source archive's file server
(``BIA_HEADER_SOURCES``). A study may list millions of files: the header names at most :data:`HEADER_ITEMS`, the
linkset at most :data:`LINKSET_ITEMS`, and the file table (``/studies/{acc}/files``) lists them all.
"""

from __future__ import annotations

import json
import mimetypes
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterable

from api.context import services, settings
from catalog import identifiers
from catalog.jsonld_tree import expand_iri
from loaders.image_headers.remote import NotLocated, file_url, source_of

if TYPE_CHECKING:
    from api.records import RecordDocument

#: file ``item`` links in a landing page's ``Link`` header, and in its linkset
HEADER_ITEMS = 10
LINKSET_ITEMS = 1000
LINKSET_JSON = "application/linkset+json"
LINKSET_TEXT = "application/linkset"
#: a study's metadata documents (``describedby``), by media type and URL suffix
SIGNPOSTING_FORMATS = [
    ("application/ld+json", "jsonld"),
    ("text/turtle", "ttl"),
    ("application/n-triples", "nt"),
    ("application/rdf+xml", "rdf"),
]


def values_of(node: dict[str, Any], key: str) -> list[Any]:
    """A JSON-LD node's values of ``key`` as a list."""
    value = node.get(key)
    return [] if value is None else value if isinstance(value, list) else [value]


def plain_value(value: Any) -> str:
    """A JSON-LD value (an ``@id`` or ``@value`` object, or a plain value) as a string."""
    return str(value.get("@id") or value.get("@value")) if isinstance(value, dict) else str(value)


#: the profile a detached RO-Crate's describedby link names
RO_CRATE_PROFILE = "https://w3id.org/ro/crate"


@dataclass(frozen=True)
class Signpost:
    """One typed link from a context resource (by default the landing page)."""

    rel: str
    href: str
    type: str | None = None
    #: the profile the target conforms to (RFC 6906), e.g. RO-Crate's
    profile: str | None = None

    def header(self, anchor: str | None = None) -> str:
        parts = [f"<{self.href}>"]
        if anchor is not None:
            parts.append(f'anchor="{anchor}"')
        parts.append(f'rel="{self.rel}"')
        if self.type:
            parts.append(f'type="{self.type}"')
        if self.profile:
            parts.append(f'profile="{self.profile}"')
        return "; ".join(parts)


def link_header(signposts: Iterable[Signpost]) -> str:
    return ", ".join(s.header() for s in signposts)


def landing_signposts(doc: "RecordDocument", items: int = HEADER_ITEMS) -> list[Signpost]:
    """The signposts of a study's landing page: its identifier, authors, metadata, type, licence, content (at most
    ``items`` file links) and its linkset."""
    root = doc.root
    doi = next((plain_value(d) for d in values_of(root, "rembi:doi")), None)
    links = [Signpost("cite-as", "https://doi.org/" + doi if doi else doc.study_iri)]
    links += [Signpost("author", orcid) for orcid in author_orcids(root)]
    links += [Signpost("describedby", f"{doc.study_iri}.{suffix}", media) for media, suffix in SIGNPOSTING_FORMATS]
    # the study as a detached RO-Crate for cross-archive search (GIDE profile; RO-Crate 1.2 "Retrieving an RO-Crate")
    links.append(Signpost("describedby", f"{doc.study_iri}/ro-crate-metadata.json", "application/ld+json", RO_CRATE_PROFILE))
    links += [Signpost("license", expand_iri(plain_value(licence))) for licence in values_of(root, "license")]
    links += [Signpost("type", "https://schema.org/Dataset"), Signpost("type", "https://schema.org/AboutPage")]
    links += study_items(doc, items)
    links += [Signpost("linkset", f"{doc.study_iri}/linkset", media) for media in (LINKSET_JSON, LINKSET_TEXT)]
    return links


def author_orcids(root: dict[str, Any]) -> list[str]:
    """The ORCID iDs of a study's creators, in author order."""
    creators = [c for c in values_of(root, "creator") if isinstance(c, dict)]
    creators.sort(key=_position)
    found = [plain_value(o) for c in creators for o in values_of(c, "rembi:orcid")]
    return [o if o.startswith("http") else f"https://orcid.org/{o}" for o in dict.fromkeys(found)]


def _position(creator: dict[str, Any]) -> int:
    position = creator.get("position")
    return position if isinstance(position, int) else 0


def study_items(doc: "RecordDocument", limit: int) -> list[Signpost]:
    """The study's content: the zip and file downloads of a study this archive holds, else its files at the source
    archive (none when no file server of the source is known); at most ``limit`` files."""
    archive = services().archive
    view = archive.public if doc.released else archive.private
    if view is None or not view.files.has_study(doc.accession):
        rows: list[dict[str, Any]] = []
    else:
        rows = view.files.query(doc.accession, limit=limit).items
    base = settings().base_url
    if values_of(doc.root, "distribution"):  # the archive holds the bytes
        items = [Signpost("item", f"{doc.study_iri}/download", "application/zip")]
        items += [Signpost("item", f"{base}/files/{doc.accession}/{r['file_id']}/download", _media(r["path"])) for r in rows]
        return items
    source = source_of(doc.accession)
    if source is None:
        return []
    items = []
    for row in rows:
        try:
            items.append(
                Signpost("item", file_url(settings().header_sources, source, doc.accession, row["path"]), _media(row["path"]))
            )
        except NotLocated:
            continue
    return items


def _media(path: str) -> str:
    return mimetypes.guess_type(path, strict=False)[0] or "application/octet-stream"


def linkset_contexts(doc: "RecordDocument") -> list[tuple[str, list[Signpost]]]:
    """The linkset of a study: its landing page's links (up to :data:`LINKSET_ITEMS` items), and each metadata
    document and item linked back to the landing page (``describes``, ``collection``)."""
    landing = [s for s in landing_signposts(doc, LINKSET_ITEMS) if s.rel != "linkset"]
    contexts = [(doc.study_iri, landing)]
    for s in landing:
        if s.rel == "describedby":
            contexts.append((s.href, [Signpost("describes", doc.study_iri, "text/html")]))
        elif s.rel == "item":
            contexts.append((s.href, [Signpost("collection", doc.study_iri, "text/html")]))
    return contexts


def linkset_json(contexts: list[tuple[str, list[Signpost]]]) -> str:
    """RFC 9264 section 4.2: one object per context, each relation a list of targets."""
    out = []
    for anchor, links in contexts:
        entry: dict[str, Any] = {"anchor": anchor}
        for s in links:
            target = {"href": s.href, **({"type": s.type} if s.type else {})}
            entry.setdefault(s.rel, []).append(target)
        out.append(entry)
    return json.dumps({"linkset": out}, ensure_ascii=False)


def linkset_text(contexts: list[tuple[str, list[Signpost]]]) -> str:
    """RFC 9264 section 4.1: links in the ``Link`` header syntax, each with its anchor, one per line."""
    return ",\n".join(s.header(anchor) for anchor, links in contexts for s in links) + "\n"


def collection_link(accession: str) -> str:
    """The ``Link`` of a study's download back to its landing page."""
    return Signpost("collection", identifiers.study_iri(settings().base_url, accession), "text/html").header()
