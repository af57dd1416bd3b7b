"""Cross-resource links of the released catalog: asserted ones normalised, inferred ones discovered.

``bia link`` (and every harvest or release) rebuilds two named graphs in the *public* graph store, so links
can only ever involve released studies:

* ``{base}/graphs/links/asserted``: what the studies themselves say, each as a :class:`Link` to the one IRI
  :mod:`catalog.external_ids` gives an identifier (however a record wrote it): cross-references, publications
  (DOI, PubMed), authors (ORCID), affiliations (ROR), organisms (NCBITaxon) and imaging methods (FBbi); a
  cross-reference to a study of this catalog points at its catalog IRI;
* ``{base}/graphs/links/inferred``: what follows from reading them together: the reverse of every
  study-to-study reference (EMPIAR → BioImage Archive and back, correlative pairs included), identifiers of
  catalog studies mentioned in another study's text, two studies citing one publication, and (weaker) two
  studies sharing an ORCID author. Each states its evidence.

Every link is also written as a direct triple ``<source> <relation> <target>``, so SPARQL can follow links in
both directions without the link nodes. Link IRIs are hashes of what they say: a rerun gives the same graphs.
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Iterable

from catalog import external_ids, identifiers
from catalog import ntriples as nt
from catalog.graph_store import GraphStore
from catalog.rembi_model import RembiModel, load_model

REMBI = "https://w3id.org/rembi/"
PREFIXES = (
    "PREFIX rembi: <https://w3id.org/rembi/>\nPREFIX schema: <http://schema.org/>\n"
    "PREFIX dcterms: <http://purl.org/dc/terms/>\nPREFIX rdfs: <http://www.w3.org/2000/01/rdf-schema#>\n"
)
#: The relation a reverse link gets.
INVERSE = {
    "same_specimen_imaged": "same_specimen_imaged",
    "derived_from": "source_of",
    "source_of": "derived_from",
    "same_as": "same_as",
    "references_map": "related_to",
    "supplements_publication": "related_to",
    "related_to": "related_to",
}


def asserted_graph(base_url: str) -> str:
    return f"{base_url.rstrip('/')}/graphs/links/asserted"


def inferred_graph(base_url: str) -> str:
    return f"{base_url.rstrip('/')}/graphs/links/inferred"


@dataclass(frozen=True)
class Link:
    source: str
    target: str
    relation: str  # a RelationEnum name
    resource: str | None = None
    accession: str | None = None
    inferred: bool = False
    evidence: tuple[str, ...] = field(default_factory=tuple)


@dataclass
class LinkReport:
    asserted: int = 0
    inferred: int = 0
    studies: int = 0
    by_kind: dict[str, int] = field(default_factory=dict)


def _rows(store: GraphStore, query: str) -> list[dict[str, str]]:
    return [{k: v["value"] for k, v in row.items()} for row in store.select(PREFIXES + query)]


def canonical_target(resource: str | None, accession: str | None, target: str) -> tuple[str, str | None]:
    """(IRI, accession) of a cross-reference's target as the catalog stores identifiers: from its resource and
    accession, else from the target IRI itself (any URL of a known resource); other targets as written."""
    kind = external_ids.kind_named(resource)
    found = (kind.name, accession) if kind and external_ids.accession(kind.name, accession) else external_ids.recognise(target)
    if found is None:
        return target, accession
    return str(external_ids.iri(*found)), external_ids.accession(*found)


def cross_reference_rows(store: GraphStore, study: str | None = None) -> list[dict[str, str]]:
    """The cross-references studies assert (of one study, or of all): study, target, relation, resource, accession."""
    values = f"VALUES ?study {{ <{study}> }}" if study else ""
    return _rows(
        store,
        f"""SELECT ?study ?target ?relation ?resource ?accession WHERE {{ {values} GRAPH ?study {{
        ?study rembi:cross_references ?x . ?x rembi:target ?target .
        OPTIONAL {{ ?x rembi:relation ?relation }} OPTIONAL {{ ?x rembi:resource ?resource }}
        OPTIONAL {{ ?x rembi:target_accession ?accession }} }} }}""",
    )


class Discovery:
    """One run of link discovery over a public graph store."""

    def __init__(self, store: GraphStore, base_url: str, model: RembiModel | None = None) -> None:
        self.store = store
        self.base = base_url.rstrip("/")
        self.model = model or load_model()
        self.studies: dict[str, str] = {}  # accession -> study IRI
        self.report = LinkReport()

    # ---------------------------------------------------------------- reading

    def _catalog_studies(self) -> None:
        prefix = f"{self.base}/studies/"
        for graph in self.store.graphs():
            if graph.startswith(prefix) and "/" not in graph[len(prefix) :]:
                self.studies[graph[len(prefix) :]] = graph
        self.report.studies = len(self.studies)

    def _in_catalog(self, resource: str | None, accession: str | None) -> str | None:
        if not accession:
            return None
        kind = external_ids.kind_named(resource)
        for candidate in (accession, external_ids.accession(kind.name, accession) if kind else None):
            if candidate in self.studies:
                return self.studies[candidate]
        return None

    def asserted(self) -> list[Link]:
        links = self._cross_references() + self._publications()
        for row in _rows(
            self.store,
            """SELECT DISTINCT ?study ?orcid WHERE { GRAPH ?study { ?study schema:creator ?a . ?a rembi:orcid ?orcid } }""",
        ):
            links += self._identified(row["study"], "ORCID", row["orcid"], "related_to", "author ORCID")
        for row in _rows(
            self.store,
            """SELECT DISTINCT ?study ?ror WHERE { GRAPH ?study { ?study schema:creator ?a .
            ?a schema:affiliation ?o . ?o rembi:ror ?ror } }""",
        ):
            links += self._identified(row["study"], "ROR", row["ror"], "related_to", "affiliation ROR")
        for predicate, resource in (("rembi:organism", "NCBITaxon"), ("rembi:imagingMethod", "FBbi")):
            for row in _rows(
                self.store,
                f"SELECT DISTINCT ?study ?term WHERE {{ GRAPH ?study {{ ?s {predicate} ?term . FILTER(isIRI(?term)) }} }}",
            ):
                links.append(
                    Link(
                        row["study"],
                        row["term"],
                        "related_to",
                        resource,
                        row["term"].rsplit("/", 1)[-1],
                        False,
                        (f"{resource} term",),
                    )
                )
        return [link for link in links if link.source in self.studies.values()]

    def _cross_references(self) -> list[Link]:
        """The studies' cross-references, to a study of this catalog where they name one, else to the target's IRI."""
        links = []
        relation_names = {iri: name for name, iri in self.model.enums.get("RelationEnum", {}).items()}
        resource_names = {iri: name for name, iri in self.model.enums.get("ResourceEnum", {}).items()}
        for row in cross_reference_rows(self.store):
            resource = resource_names.get(row.get("resource", ""), row.get("resource"))
            relation = relation_names.get(row.get("relation", ""), "related_to")
            target, accession = canonical_target(resource, row.get("accession"), row["target"])
            target = self._in_catalog(resource, accession) or target
            links.append(Link(row["study"], target, relation, resource, accession, False, ("cross-reference",)))
        return links

    def _publications(self) -> list[Link]:
        links = []
        for row in _rows(
            self.store,
            """SELECT ?study ?doi ?pmid WHERE { GRAPH ?study { ?study schema:citation ?p .
            OPTIONAL { ?p rembi:doi ?doi } OPTIONAL { ?p rembi:pubmed_id ?pmid } } }""",
        ):
            for kind, key, evidence in (("DOI", "doi", "publication DOI"), ("PubMed", "pmid", "publication PubMed ID")):
                if row.get(key):
                    links += self._identified(row["study"], kind, row[key], "supplements_publication", evidence)
        return links

    @staticmethod
    def _identified(study: str, kind: str, written: str, relation: str, evidence: str) -> list[Link]:
        """A link to an identifier's IRI (none if it is not one of ``kind``)."""
        iri = external_ids.iri(kind, written)
        return [Link(study, iri, relation, kind, external_ids.accession(kind, written), False, (evidence,))] if iri else []

    def inferred(self, asserted: list[Link]) -> list[Link]:
        found: dict[tuple[str, str, str], set[str]] = defaultdict(set)

        def add(source: str, target: str, relation: str, evidence: str) -> None:
            if source != target:
                found[(source, target, relation)].add(evidence)

        catalog_iris = set(self.studies.values())
        accession_of = {iri: acc for acc, iri in self.studies.items()}
        # the reverse of every study-to-study reference (EMPIAR <-> BioImage Archive, correlative pairs too)
        for link in asserted:
            if link.target in catalog_iris and link.evidence == ("cross-reference",):
                add(
                    link.target,
                    link.source,
                    INVERSE.get(link.relation, "related_to"),
                    f"{accession_of[link.source]} references {accession_of[link.target]} ({link.relation})",
                )
        # identifiers of catalog studies written in another study's text
        for row in _rows(
            self.store,
            """SELECT ?study ?text WHERE { GRAPH ?study { ?s ?p ?text .
            FILTER(isLiteral(?text) && !CONTAINS(STR(?s), "/files/") && REGEX(STR(?text), "EMPIAR-[0-9]|idr[0-9]{4}|S-[A-Z]+[0-9]", "i")) } }""",
        ):
            if row["study"] not in accession_of:
                continue  # the link graphs themselves
            for resource, accession in external_ids.mentions(row["text"]):
                target = self._in_catalog(resource, accession)
                if target and target != row["study"]:
                    add(row["study"], target, "related_to", f"{accession_of[row['study']]} mentions {accession}")
        # two studies citing one publication; two studies sharing an author (weaker)
        for kind, relation, label in (
            ("DOI", "related_to", "both cite"),
            ("PubMed", "related_to", "both cite PubMed"),
            ("ORCID", "related_to", "shared author ORCID"),
        ):
            by_target: dict[str, set[str]] = defaultdict(set)
            for link in asserted:
                if link.resource == kind:
                    by_target[link.target].add(link.source)
            for target, sources in by_target.items():
                for a, b in itertools.permutations(sorted(sources), 2):
                    add(a, b, relation, f"{label} {target}")
        return [Link(s, t, r, None, accession_of.get(t), True, tuple(sorted(e))) for (s, t, r), e in sorted(found.items())]

    # ---------------------------------------------------------------- writing

    def _ntriples(self, links: Iterable[Link]) -> str:
        relation_iris = self.model.enums.get("RelationEnum", {})
        resource_iris = self.model.enums.get("ResourceEnum", {})
        out = []
        for link in links:
            node = nt.iri(f"{self.base}/links/{identifiers.digest(link.source, link.relation, link.target, link.inferred)}")
            relation = relation_iris.get(link.relation) or relation_iris["related_to"]
            source, target = nt.iri(link.source), nt.iri(link.target)
            out.append(nt.triple(node, nt.RDF_TYPE, nt.iri(REMBI + "Link")))
            out.append(nt.triple(node, nt.iri(REMBI + "linkSource"), source))
            out.append(nt.triple(node, nt.iri(REMBI + "linkTarget"), target))
            out.append(nt.triple(node, nt.iri(REMBI + "relation"), nt.iri(relation)))
            out.append(
                nt.triple(
                    node,
                    nt.iri(REMBI + "inferred"),
                    nt.literal("true" if link.inferred else "false", "http://www.w3.org/2001/XMLSchema#boolean"),
                )
            )
            if link.resource and link.resource in resource_iris:
                out.append(nt.triple(node, nt.iri(REMBI + "resource"), nt.iri(resource_iris[link.resource])))
            if link.accession:
                out.append(nt.triple(node, nt.iri(REMBI + "target_accession"), nt.literal(link.accession)))
            for evidence in link.evidence:
                out.append(nt.triple(node, nt.iri(REMBI + "evidence"), nt.literal(evidence)))
            out.append(nt.triple(source, nt.iri(relation), target))  # the direct edge, for SPARQL both ways
        return "".join(out)

    def run(self) -> LinkReport:
        self._catalog_studies()
        asserted = self.asserted()
        inferred = self.inferred(asserted)
        self.report.asserted, self.report.inferred = len(asserted), len(inferred)
        kinds: dict[str, int] = defaultdict(int)
        for link in asserted + inferred:
            kinds[("inferred " if link.inferred else "asserted ") + link.relation] += 1
        self.report.by_kind = dict(sorted(kinds.items()))
        for graph, links in ((asserted_graph(self.base), asserted), (inferred_graph(self.base), inferred)):
            data = self._ntriples(links)
            if data:
                self.store.replace_graph(graph, data, count=False)
            else:
                self.store.drop_graph(graph)
        return self.report


def inferred_neighbours(store: GraphStore, base_url: str) -> dict[str, set[str]]:
    """Each study's inferred links, either direction (what its record's ``schema:isRelatedTo`` lists)."""
    found: dict[str, set[str]] = defaultdict(set)
    for row in _rows(
        store, f"SELECT ?a ?b WHERE {{ GRAPH <{inferred_graph(base_url)}> {{ ?l rembi:linkSource ?a ; rembi:linkTarget ?b }} }}"
    ):
        found[row["a"]].add(row["b"])
        found[row["b"]].add(row["a"])
    return found


#: the name under which the registry remembers the changes the link graphs were built after
FOLLOWER = "links"


def link_if_changed(archive: Any) -> LinkReport | None:
    """Rebuild the link graphs if any study was committed, released or withdrawn (by any process) since they were
    last built; None if nothing changed."""
    if archive.registry.followed(FOLLOWER) >= archive.registry.changes():
        return None
    return link_catalog(archive)


def link_catalog(archive: Any) -> LinkReport:
    """Rebuild the link graphs of an archive's public view, and the records of the studies whose links changed."""
    changes = archive.registry.changes()  # what this run catches up with (a change during it: one more run later)
    store, base = archive.public.graph, archive.settings.base_url
    before = inferred_neighbours(store, base)
    report = Discovery(store, base, archive.model).run()
    after = inferred_neighbours(store, base)
    changed = sorted(s for s in before.keys() | after.keys() if before.get(s) != after.get(s))
    archive.render_records(a for a in map(identifiers.accession_of, changed) if a)
    archive.registry.mark_followed(FOLLOWER, changes)
    return report
