"""A study as a detached RO-Crate of the GIDE cross-archive search profile (``tests/data/rocrate/gide/profile.md``).

The BioImage Archive, the IDR and SSBD publish each study as such a crate so that one search spans archives. The
crate is read from the study's named graph by SPARQL: the root ``Dataset`` is the study's IRI (its landing page
here), with its title, description, release date, licence, authors (``Person``/``Organization``, ORCID iDs,
affiliations with ROR ids), this catalog as the one ``publisher``, the organisms as ``Taxon`` entities and the
biosamples as ``BioSample`` entities (``about``), the image acquisitions as ``LabProtocol`` entities with their FBbi
terms as ``DefinedTerm`` entities (``measurementMethod``), publications (``seeAlso``), grants (``funder``), the file
count and bytes (``size``) and thumbnails. :func:`profile_gaps` says which MUSTs a crate misses (a study that names
no organism has no ``Taxon``); a crate claims the profile in ``conformsTo`` only when it misses none.
"""

from __future__ import annotations

import hashlib
from typing import Any

from catalog.errors import NotFound
from catalog.gide_profile import check
from catalog.graph_store import GraphStore
from catalog.image_representations import thumbnail_url
from catalog.study_record import _ORGANISATION as ORGANISATION_NAME
from catalog.study_summary import PREFIXES

RO_CRATE = "https://w3id.org/ro/crate/1.2"
#: the profile's identity: its text at the commit the catalog follows
GIDE_PROFILE = (
    "https://github.com/BioImage-Archive/gide-search/blob/dd1909be1eb4d5aa8f15ce1ccd48a41f190f849b/"
    "resources/rocrate/example-target-detached-rocrate-v0.2/profile.md"
)
PROFILE_NAME = "GIDE search input RO-Crate profile (January 2026, v0.2)"
METADATA = "ro-crate-metadata.json"
#: the term definitions of the profile's ``gide-search-context.jsonld``, unchanged (the profile forbids changing them)
CONTEXT: list[Any] = [
    f"{RO_CRATE}/context",
    {
        "obo": "http://purl.obolibrary.org/obo/",
        "dwc": "http://rs.tdwg.org/dwc/terms/",
        "dwciri": "http://rs.tdwg.org/dwc/iri/",
        "bao": "http://www.bioassayontology.org/bao#",
        "xsd": "http://www.w3.org/2001/XMLSchema#",
        "vernacularName": {"@id": "dwc:vernacularName"},
        "scientificName": {"@id": "dwc:scientificName"},
        "hasCellLine": {"@id": "bao:BAO_0002004"},
        "measurementMethod": {"@id": "dwciri:measurementMethod"},
        "seeAlso": {"@id": "rdfs:seeAlso"},
        "BioSample": {"@id": "http://schema.org/BioSample"},
        "LabProtocol": {"@id": "http://schema.org/LabProtocol"},
        "labEquipment": {"@id": "http://schema.org/labEquipment"},
    },
]
COUNT_UNIT, BYTES_UNIT = "http://purl.obolibrary.org/obo/UO_0000189", "http://purl.obolibrary.org/obo/UO_0000233"
#: the study attributes a harvested crate's source figures are kept in (see :mod:`loaders.gide_crate`)
SOURCE_COUNT, SOURCE_BYTES, SOURCE_THUMBNAILS = "file count (at source)", "bytes (at source)", "thumbnail URL"


def _ref(iri: str) -> dict[str, str]:
    return {"@id": iri}


def _local(kind: str, *parts: str) -> str:
    return f"#{kind}-" + hashlib.sha1("|".join(parts).encode()).hexdigest()[:12]


class _Reader:
    """SPARQL over one study's named graph."""

    def __init__(self, store: GraphStore, study_iri: str) -> None:
        self.store, self.g, self.s = store, f"GRAPH <{study_iri}>", f"<{study_iri}>"

    def rows(self, select: str, where: str) -> list[dict[str, str]]:
        found = self.store.select(f"{PREFIXES}SELECT {select} WHERE {{ {self.g} {{ {where} }} }}")
        return [{k: v["value"] for k, v in row.items()} for row in found]


def study_crate(
    store: GraphStore, study_iri: str, accession: str, *, base_url: str, catalog_name: str, files: dict[str, int]
) -> dict[str, Any]:
    """The study's crate; ``files`` is ``{"files": n, "bytes": total}`` from the file table."""
    read = _Reader(store, study_iri)
    entities: dict[str, dict[str, Any]] = {}
    root = _root(read, study_iri, accession)
    publisher = f"{base_url.rstrip('/')}/"
    root["publisher"] = _ref(publisher)
    entities[publisher] = {"@id": publisher, "@type": "Organization", "name": catalog_name, "url": publisher}
    root["author"] = _authors(read, entities)
    root["about"] = _about(read, entities)
    root["measurementMethod"] = _methods(read, entities)
    root["seeAlso"] = _articles(read, entities)
    root["funder"] = _grants(read, entities)
    attributes = {
        r["n"]: r["v"] for r in read.rows("?n ?v", f"{read.s} rembi:attributes ?a . ?a schema:name ?n ; schema:value ?v")
    }
    root["size"] = _size(files, attributes, entities)
    thumbnails = [
        thumbnail_url(r["i"], 128) for r in read.rows("?i", f"{read.s} rembi:imageSummary/rembi:representativeImage ?i")
    ]
    thumbnails = sorted(thumbnails) or attributes.get(SOURCE_THUMBNAILS, "").split()
    if thumbnails:
        root["thumbnailUrl"] = thumbnails
    root = {k: v for k, v in root.items() if v not in ([], None, "")}
    descriptor = {"@id": METADATA, "@type": "CreativeWork", "conformsTo": _ref(RO_CRATE), "about": _ref(study_iri)}
    crate = {"@context": CONTEXT, "@graph": [descriptor, root, *entities.values()]}
    if not profile_gaps(crate):  # the claim, and the profile as the entity RO-Crate 1.2 asks a conformsTo to name
        root["conformsTo"] = _ref(GIDE_PROFILE)
        crate["@graph"].append({"@id": GIDE_PROFILE, "@type": ["CreativeWork", "Profile"], "name": PROFILE_NAME})
    return crate


def _root(read: _Reader, study_iri: str, accession: str) -> dict[str, Any]:
    found = read.rows(
        "?title ?description ?released ?license",
        f"{read.s} dcterms:title ?title . OPTIONAL {{ {read.s} dcterms:description ?description }}"
        f" OPTIONAL {{ {read.s} dcterms:available ?released }} OPTIONAL {{ {read.s} dcterms:license ?license }}",
    )
    if not found:
        raise NotFound(f"no study {study_iri} in this view")
    first = found[0]
    keywords = sorted({r["k"] for r in read.rows("?k", f"{read.s} schema:keywords ?k")})
    return {
        "@id": study_iri,
        "@type": "Dataset",
        "identifier": accession,
        "name": first.get("title", accession),
        "description": first.get("description") or first.get("title", accession),
        "datePublished": (first.get("released") or "")[:10] or None,
        "license": _ref(first["license"]) if first.get("license") else None,
        "keywords": keywords,
        "url": study_iri,
    }


def _authors(read: _Reader, entities: dict[str, dict[str, Any]]) -> list[dict[str, str]]:
    rows = read.rows(
        "?a ?name ?pos ?orcid ?email ?org ?orgname ?ror ?address",
        f"{read.s} schema:creator ?a . ?a schema:name ?name ."
        " OPTIONAL { ?a schema:position ?pos } OPTIONAL { ?a rembi:orcid ?orcid } OPTIONAL { ?a schema:email ?email }"
        " OPTIONAL { ?a schema:affiliation ?org . ?org schema:name ?orgname"
        " OPTIONAL { ?org rembi:ror ?ror } OPTIONAL { ?org rembi:address ?address } }",
    )
    rows.sort(key=lambda r: (int(r["pos"]) if r.get("pos", "").isdigit() else 1 << 30, r["name"], r.get("orgname", "")))
    authors: list[str] = []
    for row in rows:
        aid = row.get("orcid") or _local("author", row["a"])
        if aid not in entities:
            kind = "Organization" if ORGANISATION_NAME.search(row["name"]) else "Person"  # as the record types it
            entities[aid] = {"@id": aid, "@type": kind, "name": row["name"]}
            if row.get("email"):
                entities[aid]["email"] = row["email"]
            authors.append(aid)
        if row.get("orgname"):
            oid = row.get("ror") or _local("organisation", row["orgname"], row.get("address", ""))
            entities.setdefault(oid, {"@id": oid, "@type": "Organization", "name": row["orgname"]})
            if row.get("address"):
                entities[oid]["address"] = row["address"]
            affiliations = entities[aid].setdefault("affiliation", [])
            if _ref(oid) not in affiliations:
                affiliations.append(_ref(oid))
    return [_ref(a) for a in authors]


def _about(read: _Reader, entities: dict[str, dict[str, Any]]) -> list[dict[str, str]]:
    """Biosamples and, listed beside them as the profile asks, every organism they name."""
    rows = read.rows(
        "?b ?title ?entity ?o ?label",
        f"{read.s} rembi:biosamples ?b . ?b dcterms:title ?title . OPTIONAL {{ ?b rembi:biological_entity ?entity }}"
        " OPTIONAL { ?b rembi:organism ?o . OPTIONAL { ?o rdfs:label ?label } }",
    )
    about: list[dict[str, str]] = []
    taxa: list[dict[str, str]] = []
    for row in sorted(rows, key=lambda r: (r["title"], r.get("o", ""))):
        bid = _local("biosample", row["b"])
        if bid not in entities:
            entities[bid] = {
                "@id": bid,
                "@type": "BioSample",
                "name": row["title"],
                "description": row.get("entity") or row["title"],
            }
            about.append(_ref(bid))
        if row.get("o"):
            entities.setdefault(row["o"], {"@id": row["o"], "@type": "Taxon", "scientificName": row.get("label") or row["o"]})
            ranged = entities[bid].setdefault("taxonomicRange", [])
            if _ref(row["o"]) not in ranged:
                ranged.append(_ref(row["o"]))
            if _ref(row["o"]) not in taxa:
                taxa.append(_ref(row["o"]))
    return about + taxa


def _methods(read: _Reader, entities: dict[str, dict[str, Any]]) -> list[dict[str, str]]:
    """Image acquisitions as lab protocols and, beside them, every imaging-method term they use."""
    rows = read.rows(
        "?a ?title ?params ?instrument ?m ?label",
        f"{read.s} rembi:image_acquisitions ?a . ?a dcterms:title ?title . OPTIONAL {{ ?a rembi:acquisition_parameters ?params }}"
        " OPTIONAL { ?a rembi:imaging_instrument ?instrument }"
        " OPTIONAL { ?a rembi:imagingMethod ?m . OPTIONAL { ?m rdfs:label ?label } }",
    )
    protocols: list[dict[str, str]] = []
    terms: list[dict[str, str]] = []
    for row in sorted(rows, key=lambda r: (r["title"], r.get("m", ""))):
        pid = _local("acquisition", row["a"])
        if pid not in entities:
            protocol = {
                "@id": pid,
                "@type": "LabProtocol",
                "name": row["title"],
                "description": row.get("params") or row["title"],
            }
            if row.get("instrument"):
                protocol["labEquipment"] = row["instrument"]
            entities[pid] = protocol
            protocols.append(_ref(pid))
        if row.get("m"):
            entities.setdefault(row["m"], {"@id": row["m"], "@type": "DefinedTerm", "name": row.get("label") or row["m"]})
            techniques = entities[pid].setdefault("measurementTechnique", [])
            if _ref(row["m"]) not in techniques:
                techniques.append(_ref(row["m"]))
            if _ref(row["m"]) not in terms:
                terms.append(_ref(row["m"]))
    return protocols + terms


def _articles(read: _Reader, entities: dict[str, dict[str, Any]]) -> list[dict[str, str]]:
    rows = read.rows(
        "?p ?title ?doi ?year",
        f"{read.s} schema:citation ?p . OPTIONAL {{ ?p dcterms:title ?title }} OPTIONAL {{ ?p rembi:doi ?doi }}"
        " OPTIONAL { ?p rembi:year ?year }",
    )
    found = []
    for row in sorted(rows, key=lambda r: r.get("title", "")):
        aid = f"https://doi.org/{row['doi']}" if row.get("doi") else _local("publication", row["p"])
        article = {"@id": aid, "@type": "ScholarlyArticle", "name": row.get("title") or aid}
        if row.get("year"):
            article["datePublished"] = row["year"]
        entities.setdefault(aid, article)
        found.append(_ref(aid))
    return found


def _grants(read: _Reader, entities: dict[str, dict[str, Any]]) -> list[dict[str, str]]:
    rows = read.rows(
        "?f ?funder ?grant ?statement",
        f"{read.s} schema:funding ?f . OPTIONAL {{ ?f rembi:funder ?funder }} OPTIONAL {{ ?f rembi:grant_id ?grant }}"
        " OPTIONAL { ?f rembi:funding_statement ?statement }",
    )
    found = []
    for row in sorted(rows, key=lambda r: (r.get("funder", ""), r.get("grant", ""))):
        gid = _local("grant", row["f"])
        grant = {"@id": gid, "@type": "Grant", "name": row.get("funder") or row.get("statement") or row.get("grant", "")}
        if row.get("grant"):
            grant["identifier"] = row["grant"]
        entities[gid] = grant
        found.append(_ref(gid))
    return found


def _size(files: dict[str, int], attributes: dict[str, str], entities: dict[str, dict[str, Any]]) -> list[dict[str, str]]:
    """File count and bytes: of the files held here, else as the study's source stated them."""
    count, total = files.get("files", 0), files.get("bytes", 0)
    if not count and attributes.get(SOURCE_COUNT, "").isdigit():
        count, total = int(attributes[SOURCE_COUNT]), int(attributes.get(SOURCE_BYTES, "0") or 0)
    if not count:
        return []
    found = []
    for vid, value, unit, unit_text in (
        ("#file-count", count, COUNT_UNIT, "file count"),
        ("#total-size", total, BYTES_UNIT, "bytes"),
    ):
        entities[vid] = {"@id": vid, "@type": "QuantitativeValue", "value": value, "unitCode": unit, "unitText": unit_text}
        found.append(_ref(vid))
    return found


def profile_gaps(crate: dict[str, Any]) -> list[str]:
    """The profile's MUSTs a crate misses, each naming the entity and the property (empty: it conforms)."""
    return check(crate)
