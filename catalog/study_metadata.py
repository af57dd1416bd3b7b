"""A released study's citation metadata, read from its named graph: what DataCite and Dublin Core records say.

One reading for every citation format (:mod:`catalog.datacite`, the OAI-PMH ``oai_dc`` records of
:mod:`catalog.oai_records`): title, description, creators with ORCID iDs and affiliations with ROR ids, funders and
awards, licence, release date, organisms and imaging methods (ontology terms), keywords, publications and the
study's links to other records (the link graph, given by the caller: see :func:`linkers.study_links.study_links`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable

from catalog.graph_store import GraphStore
from catalog.study_record import _ORGANISATION as ORGANISATION_NAME  # tells a body's name from a person's
from catalog.study_record import publisher_name
from catalog.study_summary import FBBI_GENERIC, PREFIXES, imaging_methods

#: where each ontology's terms are described (DataCite ``schemeURI``)
NCBI_TAXON = ("NCBI Taxonomy", "http://purl.obolibrary.org/obo/ncbitaxon.owl")
FBBI = ("FBbi", "http://purl.obolibrary.org/obo/fbbi.owl")
#: link targets that are not records related to the study: ontology terms (subjects), people and organisations
_NOT_RECORDS = ("http://purl.obolibrary.org/obo/", "https://orcid.org/", "https://ror.org/")


@dataclass
class Affiliation:
    name: str
    ror: str | None = None


@dataclass
class Creator:
    name: str
    orcid: str | None = None
    organisation: bool = False
    affiliations: list[Affiliation] = field(default_factory=list)


@dataclass
class Funding:
    funder: str | None
    award: str | None
    statement: str | None


@dataclass
class Term:
    """A subject: an ontology term (``iri`` None: the depositor's words, no term)."""

    label: str
    iri: str | None
    scheme: tuple[str, str] | None


@dataclass
class Related:
    """A record the study relates to: its identifier, the identifier's type and the relation (RelationEnum name)."""

    identifier: str
    kind: str
    relation: str


@dataclass
class StudyMetadata:
    accession: str
    iri: str
    title: str
    description: str = ""
    doi: str | None = None
    licence: str | None = None
    released: str | None = None
    publisher: str = ""
    creators: list[Creator] = field(default_factory=list)
    funding: list[Funding] = field(default_factory=list)
    subjects: list[Term] = field(default_factory=list)
    keywords: list[str] = field(default_factory=list)
    related: list[Related] = field(default_factory=list)
    files: int = 0
    bytes: int = 0


def _v(row: dict[str, Any], key: str) -> str | None:
    return row[key]["value"] if key in row else None


def read_study_metadata(
    store: GraphStore,
    study_iri: str,
    accession: str,
    *,
    catalog_name: str,
    links: Iterable[dict[str, Any]] = (),
    files: tuple[int, int] = (0, 0),
) -> StudyMetadata | None:
    """The metadata of the study in graph ``study_iri`` of ``store`` (None: no such study there). ``links``: the
    study's outgoing links (``target``, ``relation``), ``files``: its file count and bytes."""
    g, s = f"GRAPH <{study_iri}>", f"<{study_iri}>"
    rows = store.select(
        PREFIXES + f"SELECT ?title ?description ?doi ?license ?released ?source WHERE {{ {g} {{ {s} dcterms:title ?title ."
        f" OPTIONAL {{ {s} dcterms:description ?description }} OPTIONAL {{ {s} rembi:doi ?doi }}"
        f" OPTIONAL {{ {s} dcterms:license ?license }} OPTIONAL {{ {s} dcterms:available ?released }}"
        f" OPTIONAL {{ {s} prov:wasGeneratedBy/rembi:source_resource ?source }} }} }} LIMIT 1"
    )
    if not rows:
        return None
    row = rows[0]
    meta = StudyMetadata(
        accession=accession,
        iri=study_iri,
        title=_v(row, "title") or accession,
        description=_v(row, "description") or "",
        doi=_v(row, "doi"),
        licence=_v(row, "license"),
        released=(_v(row, "released") or "")[:10] or None,
        publisher=publisher_name(_v(row, "source"), catalog_name),
        files=files[0],
        bytes=files[1],
    )
    meta.creators = _creators(store, g, s)
    meta.funding = _funding(store, g, s)
    meta.subjects = _subjects(store, g)
    meta.keywords = sorted(
        {_v(r, "k") or "" for r in store.select(PREFIXES + f"SELECT ?k WHERE {{ {g} {{ {s} schema:keywords ?k }} }}")}
    )
    meta.related = _related(store, g, s, study_iri, links)
    return meta


def _creators(store: GraphStore, g: str, s: str) -> list[Creator]:
    rows = store.select(
        PREFIXES + f"SELECT ?a ?name ?position ?orcid ?type ?affiliation ?ror WHERE {{ {g} {{ {s} schema:creator ?a ."
        " ?a schema:name ?name . OPTIONAL { ?a schema:position ?position } OPTIONAL { ?a rembi:orcid ?orcid }"
        " OPTIONAL { ?a schema:affiliation ?o . ?o schema:name ?affiliation OPTIONAL { ?o rembi:ror ?ror } } } }"
        " ORDER BY ?position ?a ?affiliation"
    )
    creators: dict[str, Creator] = {}
    for row in rows:
        creator = creators.setdefault(row["a"]["value"], Creator(_v(row, "name") or "", _v(row, "orcid")))
        affiliation = _v(row, "affiliation")
        if affiliation and all(a.name != affiliation for a in creator.affiliations):
            creator.affiliations.append(Affiliation(affiliation, _v(row, "ror")))
    for creator in creators.values():
        creator.organisation = creator.orcid is None and bool(ORGANISATION_NAME.search(creator.name))
    return list(creators.values())


def _funding(store: GraphStore, g: str, s: str) -> list[Funding]:
    rows = store.select(
        PREFIXES + f"SELECT ?funder ?award ?statement WHERE {{ {g} {{ {s} schema:funding ?f ."
        " OPTIONAL { ?f rembi:funder ?funder } OPTIONAL { ?f rembi:grant_id ?award }"
        " OPTIONAL { ?f rembi:funding_statement ?statement } } } ORDER BY ?funder ?award"
    )
    return [Funding(_v(r, "funder"), _v(r, "award"), _v(r, "statement")) for r in rows]


def _subjects(store: GraphStore, g: str) -> list[Term]:
    """Organisms (NCBI Taxonomy terms) and imaging methods (FBbi terms; the depositor's words where the term is
    FBbi's generic root)."""
    terms: dict[tuple[str, str | None], Term] = {}
    for predicate, scheme in (("rembi:organism", NCBI_TAXON), ("rembi:imagingMethod", FBBI)):
        for row in store.select(PREFIXES + f"SELECT ?o ?label WHERE {{ {g} {{ ?b {predicate} ?o . ?o rdfs:label ?label }} }}"):
            iri, label = row["o"]["value"], row["label"]["value"]
            if iri != FBBI_GENERIC:
                terms.setdefault((label, iri), Term(label, iri, scheme))
    named = {term.label for term in terms.values()}
    for written in imaging_methods(store, g):
        if written not in named and written != "imaging method":
            terms.setdefault((written, None), Term(written, None, None))
    return sorted(terms.values(), key=lambda t: (t.scheme is None, t.scheme or ("", ""), t.label))


def _related(store: GraphStore, g: str, s: str, study_iri: str, links: Iterable[dict[str, Any]]) -> list[Related]:
    """Publications (DOI, PubMed) and every link but ontology terms, people and the study itself; each relation to
    a record once (a generic ``related_to`` only where no other relation to that record is known)."""
    found: dict[tuple[str, str], list[str]] = {}
    for row in store.select(
        PREFIXES + f"SELECT ?doi ?pmid WHERE {{ {g} {{ {s} schema:citation ?p . OPTIONAL {{ ?p rembi:doi ?doi }}"
        " OPTIONAL { ?p rembi:pubmed_id ?pmid } } }"
    ):
        for value, kind in ((_v(row, "doi"), "DOI"), (_v(row, "pmid"), "PMID")):
            if value:
                found.setdefault((value, kind), []).append("supplements_publication")
    for link in links:
        target = link.get("target") or ""
        if not target or target == study_iri or target.startswith(_NOT_RECORDS):
            continue
        relations = found.setdefault(identifier_of(target), [])
        relations.append(link.get("relation") or "related_to")
    out = []
    for (identifier, kind), relations in found.items():
        specific = [r for r in dict.fromkeys(relations) if r != "related_to"]
        out += [Related(identifier, kind, relation) for relation in specific or ["related_to"]]
    return out


def identifier_of(iri: str) -> tuple[str, str]:
    """An IRI as a typed identifier: a DOI, a PubMed id, else the URL itself."""
    for prefix in ("https://doi.org/", "http://doi.org/", "http://dx.doi.org/", "https://dx.doi.org/"):
        if iri.startswith(prefix):
            return iri[len(prefix) :], "DOI"
    for prefix in ("https://identifiers.org/pubmed:", "http://identifiers.org/pubmed:", "https://pubmed.ncbi.nlm.nih.gov/"):
        if iri.startswith(prefix):
            return iri[len(prefix) :].strip("/"), "PMID"
    return iri, "URL"
