"""The MUSTs of the GIDE search input profile (``tests/data/rocrate/gide/profile.md``, January 2026), each a check.

:data:`MUSTS` lists every requirement with the profile's words; :func:`check` runs them on a crate as JSON (the
profile's requirements "apply to both the json field names as well as the RDF graph"; the crate's context defines
the names as the profile's context does) and returns what fails, naming the entity and the property.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any, Callable, Iterator

#: the profile's own context terms; a crate MUST NOT point them at other IRIs
CONTEXT_TERMS = {
    "vernacularName": "dwc:vernacularName",
    "scientificName": "dwc:scientificName",
    "hasCellLine": "bao:BAO_0002004",
    "measurementMethod": "dwciri:measurementMethod",
    "BioSample": "http://schema.org/BioSample",
    "LabProtocol": "http://schema.org/LabProtocol",
    "labEquipment": "http://schema.org/labEquipment",
}
_ABSOLUTE = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:[^\s]+$")
_WEB = re.compile(r"^https?://[^\s/]+")
UNITS = {"http://purl.obolibrary.org/obo/UO_0000189": "file count", "http://purl.obolibrary.org/obo/UO_0000233": "bytes"}


class Crate:
    """A crate's entities by ``@id``, its descriptor and root."""

    def __init__(self, doc: dict[str, Any]) -> None:
        self.doc = doc
        graph = doc.get("@graph") if isinstance(doc, dict) else None
        self.graph: list[dict[str, Any]] = [n for n in graph if isinstance(n, dict)] if isinstance(graph, list) else []
        self.nodes = {str(n.get("@id")): n for n in self.graph}
        self.descriptors = [n for n in self.graph if str(n.get("@id", "")).endswith("ro-crate-metadata.json")]
        about = self.descriptors[0].get("about") if len(self.descriptors) == 1 else None
        about = about[0] if isinstance(about, list) and len(about) == 1 else about
        self.root_id = str(about.get("@id")) if isinstance(about, dict) else ""
        self.root: dict[str, Any] = self.nodes.get(self.root_id, {})

    def linked(self, node: dict[str, Any], prop: str) -> list[dict[str, Any]]:
        return [self.nodes.get(str(r.get("@id")), {"@id": r.get("@id")}) for r in refs(node.get(prop))]


def refs(value: Any) -> list[dict[str, Any]]:
    values = value if isinstance(value, list) else [] if value is None else [value]
    return [v for v in values if isinstance(v, dict)]


def types_of(node: dict[str, Any]) -> set[str]:
    value = node.get("@type") or []
    return {value} if isinstance(value, str) else {str(v) for v in value}


def single_text(node: dict[str, Any], prop: str) -> bool:
    value = node.get(prop)
    return isinstance(value, str) and bool(value.strip())


Check = Callable[[Crate], Iterator[str]]


def _descriptor(c: Crate) -> Iterator[str]:
    if len(c.descriptors) != 1:
        yield f"@graph: {len(c.descriptors)} metadata descriptors (exactly one)"
        return
    d = c.descriptors[0]
    version = re.match(r"^https://w3id\.org/ro/crate/(\d+)\.(\d+)", str((d.get("conformsTo") or {}).get("@id", "")))
    if not version or (int(version.group(1)), int(version.group(2))) < (1, 2):
        yield f"{d.get('@id')} conformsTo: not RO-Crate 1.2 or later"
    if "CreativeWork" not in types_of(d):
        yield f"{d.get('@id')} @type: not CreativeWork"


def _root(c: Crate) -> Iterator[str]:
    if not c.root:
        yield f"{c.descriptors[0].get('@id') if c.descriptors else 'descriptor'} about: no root data entity"
    elif "Dataset" not in types_of(c.root):
        yield f"{c.root_id} @type: does not include Dataset"
    if not _WEB.match(c.root_id):
        yield f"{c.root_id or '(root)'} @id: not an absolute URL"


def _context(c: Crate) -> Iterator[str]:
    context = c.doc.get("@context")
    parts = context if isinstance(context, list) else [context]
    versions = [re.match(r"^https://w3id\.org/ro/crate/(\d+)\.(\d+)/context$", p) for p in parts if isinstance(p, str)]
    if not any(v and (int(v.group(1)), int(v.group(2))) >= (1, 2) for v in versions):
        yield "@context: not the RO-Crate 1.2 (or later) context"
    for part in (p for p in parts if isinstance(p, dict)):
        for term, iri in CONTEXT_TERMS.items():
            given = part.get(term)
            given = given.get("@id") if isinstance(given, dict) else given
            if given is not None and given != iri:
                yield f"@context {term}: points at {given!r}, not {iri!r}"


def _dataset(c: Crate) -> Iterator[str]:
    for prop in ("name", "description"):
        if not single_text(c.root, prop):
            yield f"{c.root_id} {prop}: missing or not one text"
    published = c.root.get("datePublished")
    try:
        dt.date.fromisoformat(str(published)[:10]) if isinstance(published, str) else None
    except ValueError:
        published = None
    if not isinstance(published, str):
        yield f"{c.root_id} datePublished: not one ISO 8601 date string"
    licence = c.root.get("license")
    if not (single_text(c.root, "license") or (isinstance(licence, dict) and licence.get("@id"))):
        yield f"{c.root_id} license: missing or not one"
    if isinstance(c.root.get("identifier"), list):
        yield f"{c.root_id} identifier: more than one"
    for url in c.root.get("thumbnailUrl") or []:
        if not isinstance(url, str) or not _WEB.match(url):
            yield f"{c.root_id} thumbnailUrl: {url!r} is not a URL"


def _taxa(c: Crate) -> Iterator[str]:
    taxa = [n for n in c.linked(c.root, "about") if "Taxon" in types_of(n)]
    if not taxa:
        yield f"{c.root_id} about: no Taxon"
    for taxon in taxa:
        if not single_text(taxon, "scientificName"):
            yield f"{taxon.get('@id')} scientificName: missing"


def _imaging_methods(c: Crate) -> Iterator[str]:
    if not [n for n in c.linked(c.root, "measurementMethod") if "DefinedTerm" in types_of(n)]:
        yield f"{c.root_id} measurementMethod: no DefinedTerm"


def _authors(c: Crate) -> Iterator[str]:
    authors = c.linked(c.root, "author")
    if not [a for a in authors if "Person" in types_of(a)]:
        yield f"{c.root_id} author: no Person"
    for author in authors:
        if not {"Person", "Organization"} & types_of(author):
            yield f"{author.get('@id')} @type: an author neither Person nor Organization"
        if not single_text(author, "name"):
            yield f"{author.get('@id')} name: missing"


def _publisher(c: Crate) -> Iterator[str]:
    publishers = c.linked(c.root, "publisher")
    if len(publishers) != 1 or "Organization" not in types_of(publishers[0]):
        yield f"{c.root_id} publisher: not exactly one Organization"
    elif not single_text(publishers[0], "name"):
        yield f"{publishers[0].get('@id')} name: missing"


def _explicit(c: Crate) -> Iterator[str]:
    """Terms and taxa reached through a biosample or a protocol are also linked from the root directly."""
    about = {str(r.get("@id")) for r in refs(c.root.get("about"))}
    methods = {str(r.get("@id")) for r in refs(c.root.get("measurementMethod"))}
    for node in (c.nodes.get(i, {}) for i in about):
        for prop in ("taxonomicRange", "hasCellLine"):
            for ref in refs(node.get(prop)):
                if str(ref.get("@id")) not in about:
                    yield f"{c.root_id} about: lacks {ref.get('@id')} that {node.get('@id')} {prop} names"
    for node in (c.nodes.get(i, {}) for i in methods):
        for ref in refs(node.get("measurementTechnique")):
            if str(ref.get("@id")) not in methods:
                yield f"{c.root_id} measurementMethod: lacks {ref.get('@id')} that {node.get('@id')} names"


def _entities(c: Crate) -> Iterator[str]:
    for node in c.graph:
        nid, kinds = node.get("@id"), types_of(node)
        if "DefinedTerm" in kinds and not _ABSOLUTE.match(str(nid)):
            yield f"{nid} @id: a DefinedTerm's @id is not an absolute URI"
        required = {
            "DefinedTerm": ("name",),
            "BioSample": ("name", "description"),
            "LabProtocol": ("name", "description"),
            "Organization": ("name",),
            "Grant": ("name",),
            "ScholarlyArticle": ("name",),
            "QuantitativeValue": ("unitCode", "unitText"),
        }
        for kind in kinds & required.keys():
            for prop in required[kind]:
                if not single_text(node, prop):
                    yield f"{nid} {prop}: missing"
        if "ScholarlyArticle" in kinds and "datePublished" in node and not re.match(r"^\d{4}", str(node["datePublished"])):
            yield f"{nid} datePublished: not an ISO 8601 date"
    for value in c.linked(c.root, "size"):
        if "QuantitativeValue" not in types_of(value):
            yield f"{value.get('@id')} @type: not QuantitativeValue"
        if value.get("value") is None:
            yield f"{value.get('@id')} value: missing"
        unit = value.get("unitCode")
        if unit in UNITS and value.get("unitText") != UNITS[unit]:
            yield f"{value.get('@id')} unitText: {value.get('unitText')!r} where {unit} needs {UNITS[unit]!r}"


#: every MUST of the profile: (the profile's words, the check)
MUSTS: list[tuple[str, Check]] = [
    ("Contain a self-describing RO-Crate Metadata Descriptor", _descriptor),
    ("Exactly one root dataset entity of type _Dataset_", _root),
    ("has an @id that is an absolute url", _root),
    ("Use the context term definitions in gide-search-context.jsonld", _context),
    ("_MUST NOT_ be changed to point at new IRIs", _context),
    ("One or more Taxon objects", _taxa),
    ("One or more Imaging Method objects, of type _DefinedTerm_", _imaging_methods),
    ("One or more Authors, of type _Person_", _authors),
    ("Exactly one Publisher object", _publisher),
    ("MUST be single string value in ISO 8601 date format", _dataset),
    ("MUST also be included explicitly", _explicit),
    ("MUST be an absolute URI to documentation about the term", _entities),
    ("MUST use the unitCode", _entities),
]


def check(doc: dict[str, Any]) -> list[str]:
    """Every failure of ``doc`` against the profile's MUSTs (empty: it conforms)."""
    crate = Crate(doc)
    seen: set[Check] = set()
    found: list[str] = []
    for _words, rule in MUSTS:
        if rule not in seen:
            seen.add(rule)
            found += [f for f in rule(crate) if f not in found]
    return found
