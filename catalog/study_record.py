"""The record of a resource (a study or any object inside it): one graph, the data of every renderer.

:func:`build_record` reads the triples that describe an IRI from its study's named graph — the resource and
everything reachable from it, except the (possibly millions of) files a study links to, which the file table
serves — and, for a study, adds the schema.org / Bioschemas ``Dataset`` view search engines read.
:meth:`Record.body` nests that graph into one JSON-LD document; JSON-LD, Turtle, N-Triples, RDF/XML and HTML are
all renderings of that document, so they always agree. The archive stores each released study's document when
the study changes (:mod:`catalog.record_index`), under the :func:`rendering_fingerprint` of this code.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable

from rdflib import BNode, Literal, Namespace, URIRef
from rdflib.namespace import DCTERMS, PROV, RDF, RDFS, XSD

from catalog import external_ids, identifiers
from catalog.errors import NotFound
from catalog.graph_store import GraphStore, predicate_filter
from catalog.jsonld_tree import record_jsonld
from catalog.record_graph import RecordGraph
from catalog.rembi_model import load_model
from catalog.study_summary import FBBI_GENERIC

SCHEMA = Namespace("http://schema.org/")
REMBI = Namespace("https://w3id.org/rembi/")
BIOSCHEMAS_DATASET = URIRef("https://bioschemas.org/profiles/Dataset/1.0-RELEASE")

#: edges the record does not follow: a study's files are served by the file table, not inside the record
SKIPPED_EDGES = {str(REMBI.files)}
MAX_DEPTH = 6
BATCH = 200


@dataclass
class Record:
    """What every renderer of a resource gets."""

    iri: str
    accession: str
    study_iri: str
    graph: RecordGraph
    is_study: bool

    def body(self) -> bytes:
        """The record as one nested JSON-LD document, compact UTF-8 JSON: what every renderer starts from."""
        return json.dumps(record_jsonld(self.graph, self.iri), ensure_ascii=False, separators=(",", ":")).encode("utf-8")


#: the modules whose code decides what a rendered record holds
_RENDERING_MODULES = ("study_record.py", "jsonld_tree.py", "record_graph.py")


@functools.lru_cache(maxsize=16)
def rendering_fingerprint(base_url: str, catalog_name: str) -> str:
    """What a stored record was rendered under: the base URL, the catalog name and the rendering code."""
    digest = hashlib.sha1(f"{base_url}\n{catalog_name}\n".encode("utf-8"))
    for name in _RENDERING_MODULES:
        digest.update((Path(__file__).parent / name).read_bytes())
    return digest.hexdigest()[:16]


def _term(binding: dict[str, Any]):
    kind, value = binding["type"], binding["value"]
    if kind == "uri":
        return URIRef(value)
    if kind == "bnode":
        return BNode(value)
    if "xml:lang" in binding:
        return Literal(value, lang=binding["xml:lang"])
    datatype = binding.get("datatype")
    if datatype in (None, str(XSD.string)):
        return Literal(value)
    return Literal(value, datatype=URIRef(datatype))


def _sparql_term(term) -> str:
    if isinstance(term, URIRef):
        return f"<{term}>"
    return term.n3()


def _statements(store: GraphStore, graph_iri: str, subjects: list[Any], skipped: set[str]) -> Iterable[tuple[Any, Any, Any]]:
    """Every triple of ``subjects`` in one named graph but those of ``skipped`` predicates, as rdflib terms (index
    lookups when the store is local); the store leaves the skipped ones out, however many there are."""
    lookup = getattr(store, "triples_of", None)
    if lookup is not None:
        yield from lookup(graph_iri, [str(s) for s in subjects if isinstance(s, URIRef)], exclude=skipped)
        return
    excluded = predicate_filter(skipped)
    for start in range(0, len(subjects), BATCH):
        values = " ".join(_sparql_term(n) for n in subjects[start : start + BATCH])
        for row in store.select(
            f"SELECT ?s ?p ?o WHERE {{ GRAPH <{graph_iri}> {{ VALUES ?s {{ {values} }} ?s ?p ?o{excluded} }} }}"
        ):
            yield _term(row["s"]), _term(row["p"]), _term(row["o"])


def describe(store: GraphStore, graph_iri: str, roots: Iterable[str], skipped: set[str] = SKIPPED_EDGES) -> RecordGraph:
    """The triples of ``roots`` and of every node reachable from them in one named graph (not via ``skipped``).

    Only the roots' lookups filter ``skipped`` inside the store (the edges to skip start at the study); deeper
    nodes are looked up directly and any skipped edge among theirs is dropped here.
    """
    out = RecordGraph()
    seen: set[Any] = set()
    frontier = [URIRef(r) for r in roots]
    for depth in range(MAX_DEPTH):
        frontier = [n for n in frontier if n not in seen]
        if not frontier:
            break
        seen.update(frontier)
        following = []
        for s, p, o in _statements(store, graph_iri, frontier, skipped if depth == 0 else set()):
            if str(p) in skipped:
                continue
            out.add((s, p, o))
            if not isinstance(o, Literal) and p != RDF.type and o not in seen:
                following.append(o)
        frontier = following
    return out


def build_record(
    store: GraphStore,
    base_url: str,
    iri: str,
    *,
    catalog_name: str = "BioImage Archive catalog",
    holds_files: Callable[[str], bool] = lambda accession: False,
) -> Record:
    """The record of a study or of an object inside one; :class:`NotFound` when this store does not hold it.
    ``holds_files(accession)``: whether the archive holds the study's files (see :func:`add_dataset_view`)."""
    accession = identifiers.accession_of(iri)
    if accession is None:
        raise NotFound(f"no record {iri}")
    try:
        study = identifiers.study_iri(base_url, accession)
    except ValueError:
        raise NotFound(f"no record {iri}") from None
    resource = iri.split("#", 1)[0]  # a fragment (author, grant…) is described by the record it belongs to
    graph = describe(store, study, [resource], skipped=SKIPPED_EDGES if resource == study else set())
    if not any(True for _ in graph.triples((URIRef(resource), None, None))):
        raise NotFound(f"no record {iri}")
    is_study = resource == study
    if is_study:
        add_dataset_view(graph, URIRef(study), base_url, catalog_name, downloadable=holds_files(accession))
        add_inferred_links(graph, store, URIRef(study), base_url)
    else:
        _add_images(graph, URIRef(study))  # an image's own record is a schema.org ImageObject too
    return Record(iri=resource, accession=accession, study_iri=study, graph=graph, is_study=is_study)


#: how a cross-reference's relation shows in schema.org
_SCHEMA_RELATION = {
    "http://schema.org/sameAs": SCHEMA.sameAs,
    "http://www.w3.org/ns/prov#wasDerivedFrom": SCHEMA.isBasedOn,
}


def add_inferred_links(graph: RecordGraph, store: GraphStore, study: URIRef, base_url: str) -> None:
    """``schema:isRelatedTo`` for the study-to-study links ``bia link`` inferred (either direction)."""
    base = base_url.rstrip("/")
    rows = store.select(
        "PREFIX rembi: <https://w3id.org/rembi/> SELECT DISTINCT ?other WHERE {"
        f" GRAPH <{base}/graphs/links/inferred> {{"
        f" {{ ?l rembi:linkSource <{study}> ; rembi:linkTarget ?other }} UNION {{ ?l rembi:linkTarget <{study}> ; rembi:linkSource ?other }} }} }}"
    )
    for row in rows:
        graph.add((study, SCHEMA.isRelatedTo, URIRef(row["other"]["value"])))


_AS_WRITTEN = {"imaging method", "imaging method (as written)"}
#: words that make an author a body rather than a person (BioStudies lists both as authors, by name only)
_ORGANISATION = re.compile(
    r"\b(institute|institut|university|universit[äéy]|platform|facility|consortium|centre|center|laborator(y|ies)|"
    r"department|project|team|group|foundation|network|initiative|inc|ltd|gmbh|corporation|society|programme|program)\b",
    re.IGNORECASE,
)


def _method_as_written(graph: RecordGraph, node: Any) -> str | None:
    """The imaging method as the depositor wrote it, kept as an attribute of ``node`` when no FBbi term matched."""
    for attribute in graph.objects(node, REMBI.attributes):
        if any(str(name).lower() in _AS_WRITTEN for name in graph.objects(attribute, SCHEMA.name)):
            return next((str(v) for v in graph.objects(attribute, SCHEMA.value)), None)
    return None


def _as_is(value: Any) -> Any:
    return value


def _doi_iri(doi: Any) -> URIRef:
    return URIRef(f"https://doi.org/{doi}")


def _day(released: Any) -> Literal:
    return Literal(str(released)[:10], datatype=XSD.date)


#: the study's statements the view restates, in this order: (REMBI predicate, schema.org predicate, how the value reads)
_RESTATED: tuple[tuple[URIRef, URIRef, Callable[[Any], Any]], ...] = (
    (DCTERMS.title, SCHEMA.name, _as_is),
    (DCTERMS.description, SCHEMA.description, _as_is),
    (DCTERMS.identifier, SCHEMA.identifier, _as_is),
    (REMBI.doi, SCHEMA.identifier, _doi_iri),
    (DCTERMS.license, SCHEMA.license, _as_is),
    (DCTERMS.available, SCHEMA.datePublished, _day),
)


def add_dataset_view(graph: RecordGraph, study: URIRef, base_url: str, catalog_name: str, downloadable: bool = False) -> None:
    """Add the schema.org ``Dataset`` (Bioschemas Dataset profile) statements derived from the REMBI ones;
    ``downloadable``: the archive holds the study's files, so its zip is a ``DataDownload`` (a harvested record
    lists files whose bytes are elsewhere, and advertises no download here)."""
    graph.add((study, RDF.type, SCHEMA.Dataset))
    graph.add((study, DCTERMS.conformsTo, BIOSCHEMAS_DATASET))
    graph.add((study, SCHEMA.url, study))
    graph.add((study, SCHEMA.isAccessibleForFree, Literal(True)))
    for rembi, schema, restate in _RESTATED:
        for value in graph.objects(study, rembi):
            graph.add((study, schema, restate(value)))
    _add_provenance(graph, study, base_url, catalog_name)
    _add_creators(graph, study)
    _add_funding(graph, study)
    _add_citations(graph, study)
    _add_cross_references(graph, study)
    methods = _add_techniques(graph, study)
    if next(iter(graph.objects(study, SCHEMA.keywords)), None) is None:  # required by Bioschemas: what it is about
        _add_keywords(graph, study, methods)
    if downloadable:
        _add_download(graph, study)
    _add_images(graph, study)
    for summary in list(graph.objects(study, REMBI.imageSummary)):
        for image in list(graph.objects(summary, REMBI.representativeImage)):
            for url in list(graph.objects(image, SCHEMA.thumbnailUrl)):
                graph.add((study, SCHEMA.thumbnailUrl, url))
    _add_catalog(graph, study, base_url, catalog_name)


#: UN/CEFACT common code of the pixel, the unit of an ImageObject's width and height
PIXEL_UNIT = "E37"


#: the representation whose URL is an image's ``thumbnailUrl``, and the one whose URL is its ``contentUrl``
_SHOWN_THUMBNAIL, _CONTENT = "#representation-thumbnail-256", "#representation-uploaded-file"


def _add_images(graph: RecordGraph, study: URIRef) -> None:
    """Each image an ``ImageObject`` of the study, with its name, width and height (pixels), encoding format, its
    file's download URL (``contentUrl``) and its thumbnail's (``thumbnailUrl``); the study's representative images'
    thumbnails are the study's ``thumbnailUrl``."""
    for image, _, _ in list(graph.triples((None, RDF.type, REMBI.Image))):
        graph.add((image, RDF.type, SCHEMA.ImageObject))
        graph.add((image, SCHEMA.isPartOf, study))
        for representation in list(graph.objects(image, REMBI.representation)):
            for url in list(graph.objects(representation, SCHEMA.contentUrl)):
                if str(representation).endswith(_SHOWN_THUMBNAIL):
                    graph.add((image, SCHEMA.thumbnailUrl, url))
                elif str(representation).endswith(_CONTENT):
                    graph.add((image, SCHEMA.contentUrl, url))
        for title in graph.objects(image, DCTERMS.title):
            graph.add((image, SCHEMA.name, title))
        for fmt in graph.objects(image, REMBI.imageFormat):
            graph.add((image, SCHEMA.encodingFormat, fmt))
        for size, dimension in ((REMBI.sizeX, SCHEMA.width), (REMBI.sizeY, SCHEMA.height)):
            for value in graph.objects(image, size):
                measure = URIRef(f"{image}#{dimension.split('/')[-1]}")
                graph.add((image, dimension, measure))
                graph.add((measure, RDF.type, SCHEMA.QuantitativeValue))
                graph.add((measure, SCHEMA.value, value))
                graph.add((measure, SCHEMA.unitCode, Literal(PIXEL_UNIT)))


def publisher_name(source_resource: str | None, catalog_name: str) -> str:
    """Who publishes a study's record: the resource it came from (a ``ResourceEnum`` value's title; this archive's
    own deposits say BioImage Archive), else this catalog."""
    return (load_model().value_title(source_resource) if source_resource else None) or catalog_name


def _add_provenance(graph: RecordGraph, study: URIRef, base_url: str, catalog_name: str) -> None:
    """What the record's provenance says: ``version`` (the study's version in this catalog), ``dateModified`` (when
    it was last deposited or harvested, or its release if that came later), ``publisher`` (the resource it came
    from) and ``sameAs`` the record at that resource."""
    activity = graph.value(study, PROV.wasGeneratedBy)
    source = graph.value(activity, REMBI.source_resource) if activity is not None else None
    if activity is not None:
        for version in graph.objects(activity, REMBI.record_version):
            graph.add((study, SCHEMA.version, version))
        changed, released = graph.value(activity, PROV.endedAtTime), graph.value(study, DCTERMS.available)
        if changed is not None:
            later = released is not None and str(released)[:10] > str(changed)[:10]
            graph.add((study, SCHEMA.dateModified, _day(released) if later else changed))
    publisher = URIRef(str(source)) if source is not None else URIRef(f"{base_url.rstrip('/')}/#publisher")
    graph.add((study, SCHEMA.publisher, publisher))
    graph.add((publisher, RDF.type, SCHEMA.Organization))
    graph.add((publisher, SCHEMA.name, Literal(publisher_name(str(source) if source is not None else None, catalog_name))))
    if activity is not None and source is not None:
        kind = external_ids.kind_named(load_model().enum_name("ResourceEnum", str(source)))
        same = external_ids.iri(kind.name, graph.value(activity, REMBI.source_accession)) if kind else None
        if same and same != str(study):
            graph.add((study, SCHEMA.sameAs, URIRef(same)))


def _add_funding(graph: RecordGraph, study: URIRef) -> None:
    """Each grant a ``MonetaryGrant`` with its identifier, and its funder an ``Organization``, the study's
    ``funder`` too."""
    for grant in list(graph.objects(study, SCHEMA.funding)):
        graph.add((grant, RDF.type, SCHEMA.MonetaryGrant))
        for award in graph.objects(grant, REMBI.grant_id):
            graph.add((grant, SCHEMA.identifier, award))
        for name in graph.objects(grant, REMBI.funder):
            funder = URIRef(f"{grant}-funder")
            graph.add((grant, SCHEMA.funder, funder))
            graph.add((study, SCHEMA.funder, funder))
            graph.add((funder, RDF.type, SCHEMA.Organization))
            graph.add((funder, SCHEMA.name, name))


def _add_creators(graph: RecordGraph, study: URIRef) -> None:
    """Each author typed a ``Person``, or an ``Organization`` when its name is a body's."""
    for author in graph.objects(study, SCHEMA.creator):
        names = [str(n) for n in graph.objects(author, SCHEMA.name)]
        organisation = any(_ORGANISATION.search(n) for n in names)
        graph.add((author, RDF.type, SCHEMA.Organization if organisation else SCHEMA.Person))


def _add_citations(graph: RecordGraph, study: URIRef) -> None:
    """Each publication a ``ScholarlyArticle`` with its title and DOI."""
    for publication in graph.objects(study, SCHEMA.citation):
        graph.add((publication, RDF.type, SCHEMA.ScholarlyArticle))
        for title in graph.objects(publication, DCTERMS.title):
            graph.add((publication, SCHEMA.name, title))
        for doi in graph.objects(publication, REMBI.doi):
            graph.add((publication, SCHEMA.sameAs, _doi_iri(doi)))


def _add_cross_references(graph: RecordGraph, study: URIRef) -> None:
    """Each cross-reference's target, under the schema.org relation of its own (``isRelatedTo`` by default)."""
    for xref in graph.objects(study, REMBI.cross_references):
        relation = graph.value(xref, REMBI.relation)
        for target in graph.objects(xref, REMBI.target):
            graph.add((study, _SCHEMA_RELATION.get(str(relation), SCHEMA.isRelatedTo), URIRef(str(target))))


def _add_techniques(graph: RecordGraph, study: URIRef) -> set[str]:
    """Each imaging method as a ``measurementTechnique`` (a ``DefinedTerm``, or the depositor's words where the term
    is FBbi's generic root); returns the methods' names."""
    methods: set[str] = set()
    for node, _p, term in list(graph.triples((None, REMBI.imagingMethod, None))):
        written = _method_as_written(graph, node) if str(term) == FBBI_GENERIC else None
        if written:  # FBbi's generic root says nothing: the depositor's words name the technique
            graph.add((study, SCHEMA.measurementTechnique, Literal(written)))
            methods.add(written)
            continue
        graph.add((study, SCHEMA.measurementTechnique, term))
        graph.add((term, RDF.type, SCHEMA.DefinedTerm))
        for label in graph.objects(term, RDFS.label):
            graph.add((term, SCHEMA.name, label))
            methods.add(str(label))
    return methods


def _add_keywords(graph: RecordGraph, study: URIRef, methods: set[str]) -> None:
    """Keywords for a study without any: its imaging methods (but the generic one), then its organisms."""
    organisms = {str(label) for term in graph.objects(None, REMBI.organism) for label in graph.objects(term, RDFS.label)}
    for keyword in sorted(methods - {"imaging method"}) + sorted(organisms):
        graph.add((study, SCHEMA.keywords, Literal(keyword)))


def _add_download(graph: RecordGraph, study: URIRef) -> None:
    """The study's zip as a ``DataDownload``."""
    download = URIRef(f"{study}#download")
    graph.add((study, SCHEMA.distribution, download))
    graph.add((download, RDF.type, SCHEMA.DataDownload))
    graph.add((download, SCHEMA.contentUrl, URIRef(f"{study}/download")))
    graph.add((download, SCHEMA.encodingFormat, Literal("application/zip")))


def _add_catalog(graph: RecordGraph, study: URIRef, base_url: str, catalog_name: str) -> None:
    """The ``DataCatalog`` the study is part of: this catalog."""
    catalog = URIRef(f"{base_url.rstrip('/')}/#catalog")
    graph.add((study, SCHEMA.includedInDataCatalog, catalog))
    graph.add((catalog, RDF.type, SCHEMA.DataCatalog))
    graph.add((catalog, SCHEMA.name, Literal(catalog_name)))
    graph.add((catalog, SCHEMA.url, URIRef(f"{base_url.rstrip('/')}/")))
