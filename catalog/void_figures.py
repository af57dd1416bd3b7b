"""The figures of the public dataset's VoID description, counted once per published state of the public graph.

Every figure is a count over the dataset the SPARQL endpoint answers from (the union of the public named
graphs), with the queries :data:`QUERIES` names, so a client can count the same with SPARQL and get the same
number: triples, distinct subjects and objects, entities (IRIs in the ``void:uriSpace`` that are described, i.e.
subjects), classes and properties, a class partition per ``rdf:type`` (its instances) and a property partition
per predicate (its triples). The example resources are real subjects of the data (the first study and the first
link, in IRI order). :class:`VoidFigures` keeps the last count under the store's version (the snapshot, or the
number of the last change of a remote store), so a new count is made once after each change, never per request.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Callable

from catalog.graph_store import GraphStore

RDF_TYPE = "http://www.w3.org/1999/02/22-rdf-syntax-ns#type"


def queries(uri_space: str) -> dict[str, str]:
    """The SPARQL query of each figure (each answers one row with ``?n``), over the endpoint's default graph."""
    inside = f'FILTER(isIRI(?s) && STRSTARTS(STR(?s), "{uri_space}"))'
    return {
        "triples": "SELECT (COUNT(*) AS ?n) WHERE { ?s ?p ?o }",
        "distinctSubjects": "SELECT (COUNT(DISTINCT ?s) AS ?n) WHERE { ?s ?p ?o }",
        "distinctObjects": "SELECT (COUNT(DISTINCT ?o) AS ?n) WHERE { ?s ?p ?o }",
        "entities": f"SELECT (COUNT(DISTINCT ?s) AS ?n) WHERE {{ ?s ?p ?o {inside} }}",
        "classes": f"SELECT (COUNT(DISTINCT ?c) AS ?n) WHERE {{ ?s <{RDF_TYPE}> ?c }}",
        "properties": "SELECT (COUNT(DISTINCT ?p) AS ?n) WHERE { ?s ?p ?o }",
    }


def partition_queries() -> dict[str, str]:
    """Per class its instances (``?x``, ``?n``), per property its triples."""
    return {
        "classPartition": f"SELECT ?x (COUNT(DISTINCT ?s) AS ?n) WHERE {{ ?s <{RDF_TYPE}> ?x }} GROUP BY ?x ORDER BY ?x",
        "propertyPartition": "SELECT ?x (COUNT(*) AS ?n) WHERE { ?s ?p ?o BIND(?p AS ?x) } GROUP BY ?x ORDER BY ?x",
    }


def example_query(prefix: str) -> str:
    """The first described IRI (in IRI order) starting with ``prefix``."""
    return f'SELECT ?s WHERE {{ ?s ?p ?o FILTER(isIRI(?s) && STRSTARTS(STR(?s), "{prefix}")) }} ORDER BY ?s LIMIT 1'


@dataclass(frozen=True)
class Figures:
    """What :func:`count` found."""

    counts: dict[str, int]
    #: (class IRI, instances) and (property IRI, triples), in IRI order
    classes: list[tuple[str, int]] = field(default_factory=list)
    properties: list[tuple[str, int]] = field(default_factory=list)
    examples: list[str] = field(default_factory=list)


def count(store: GraphStore, base_url: str) -> Figures:
    """Count every figure of the VoID of ``store`` (whose IRIs live under ``{base_url}/``)."""
    counts = {name: int(store.select(query)[0]["n"]["value"]) for name, query in queries(f"{base_url}/").items()}
    parts = {
        name: [(row["x"]["value"], int(row["n"]["value"])) for row in store.select(query) if "x" in row]
        for name, query in partition_queries().items()
    }
    examples = [
        row["s"]["value"] for prefix in ("/studies/", "/links/") for row in store.select(example_query(base_url + prefix))
    ]
    return Figures(counts, parts["classPartition"], parts["propertyPartition"], examples)


class VoidFigures:
    """The figures of the last published state, counted again when the state ``version()`` names changes (one
    count at a time: requests arriving meanwhile wait for it)."""

    def __init__(self, version: Callable[[], object]) -> None:
        self._version = version
        self._lock = threading.Lock()
        self._held: tuple[object, Figures] | None = None

    def get(self, store: GraphStore, base_url: str) -> Figures:
        with self._lock:
            version = (self._version(), base_url)
            if self._held is None or self._held[0] != version or version[0] is None:
                self._held = (version, count(store, base_url))
            return self._held[1]
