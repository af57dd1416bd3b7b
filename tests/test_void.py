"""The VoID description: every figure is what a client counts with SPARQL over the endpoint, the example
resources are in the data, class and property partitions cover the data, and figures are counted once per
published state of the public graph (a new publication changes them; requests in between do not count again)."""

from __future__ import annotations

import json

import pytest
from rdflib import Graph, Namespace, URIRef

import catalog.void_figures
from linkers.discover import link_catalog
from tests.catalog_helpers import BASE

VOID = Namespace("http://rdfs.org/ns/void#")
DATASET = URIRef(f"{BASE}/.well-known/void#catalog")


@pytest.fixture(scope="module")
def demo(make_module_catalog):
    made = make_module_catalog(demo=True, name="void", sparql_timeout=10.0)
    link_catalog(made.services.archive)
    return made


def count(client, query: str) -> int:
    answer = client.get("/sparql", query_string={"query": query}, headers={"Accept": "application/sparql-results+json"})
    return int(json.loads(answer.data)["results"]["bindings"][0]["n"]["value"])


def void_of(client) -> Graph:
    return Graph().parse(data=client.get("/.well-known/void", headers={"Accept": "text/turtle"}).data, format="turtle")


def figure(void: Graph, name: str) -> int:
    return int(void.value(DATASET, VOID[name]))


def test_every_void_figure_is_what_sparql_counts(demo):
    client = demo.app().test_client()
    void = void_of(client)
    space = str(void.value(DATASET, VOID.uriSpace))
    assert space == f"{BASE}/"
    assert figure(void, "triples") == count(client, "SELECT (COUNT(*) AS ?n) { ?s ?p ?o }") > 0
    entities = f'SELECT (COUNT(DISTINCT ?s) AS ?n) {{ ?s ?p ?o FILTER(STRSTARTS(STR(?s), "{space}")) }}'
    assert figure(void, "entities") == count(client, entities) > 100
    assert figure(void, "distinctSubjects") == count(client, "SELECT (COUNT(DISTINCT ?s) AS ?n) { ?s ?p ?o }")
    assert figure(void, "distinctObjects") == count(client, "SELECT (COUNT(DISTINCT ?o) AS ?n) { ?s ?p ?o }")
    assert figure(void, "properties") == count(client, "SELECT (COUNT(DISTINCT ?p) AS ?n) { ?s ?p ?o }")
    assert figure(void, "classes") == count(client, "SELECT (COUNT(DISTINCT ?c) AS ?n) { ?s a ?c }")
    examples = list(void.objects(DATASET, VOID.exampleResource))
    assert any("/studies/" in e for e in examples) and any("/links/" in e for e in examples)
    for example in examples:
        assert count(client, f"SELECT (COUNT(*) AS ?n) {{ <{example}> ?p ?o }}") > 0, example


def test_class_and_property_partitions_count_the_data(demo):
    client = demo.app().test_client()
    void = void_of(client)
    classes = {
        void.value(p, VOID["class"]): int(void.value(p, VOID.entities)) for p in void.objects(DATASET, VOID.classPartition)
    }
    properties = {
        void.value(p, VOID.property): int(void.value(p, VOID.triples)) for p in void.objects(DATASET, VOID.propertyPartition)
    }
    assert len(classes) == figure(void, "classes") and len(properties) == figure(void, "properties")
    assert sum(properties.values()) == figure(void, "triples")
    study = URIRef("https://w3id.org/rembi/Study")
    assert classes[study] == count(client, f"SELECT (COUNT(DISTINCT ?s) AS ?n) {{ ?s a <{study}> }}") > 0
    for cls, n in list(classes.items())[:10]:
        assert n == count(client, f"SELECT (COUNT(DISTINCT ?s) AS ?n) {{ ?s a <{cls}> }}"), cls
    for prop, n in list(properties.items())[:10]:
        assert n == count(client, f"SELECT (COUNT(*) AS ?n) {{ ?s <{prop}> ?o }}"), prop


def test_figures_are_counted_once_per_publication(demo, monkeypatch):
    client = demo.app().test_client()
    counted = []
    real = catalog.void_figures.count
    monkeypatch.setattr(catalog.void_figures, "count", lambda *a: counted.append(1) or real(*a))
    before = figure(void_of(client), "triples")
    figure(void_of(client), "triples")
    assert len(counted) == 1
    demo.services.archive.public.graph.replace_graph("urn:void:test", "<urn:a> <urn:b> <urn:c> .\n")
    try:
        assert figure(void_of(client), "triples") == before + 1 and len(counted) == 2
    finally:
        demo.services.archive.public.graph.drop_graph("urn:void:test")


def test_the_service_descriptions_triples_are_the_void_figure_counted_once(demo, monkeypatch):
    """The service description at ``GET /sparql`` (asked by every client probing the endpoint) states the default
    graph's size from the same once-per-publication count, never counting the store per request."""
    client = demo.app().test_client()
    counted = []
    real = catalog.void_figures.count
    monkeypatch.setattr(catalog.void_figures, "count", lambda *a: counted.append(1) or real(*a))
    monkeypatch.setattr(type(demo.services.archive.public.reads), "count", lambda self: pytest.fail("counted per request"))
    described = []
    for _ in range(3):
        answer = client.get("/sparql", headers={"Accept": "text/turtle"})
        graph = Graph().parse(data=answer.data, format="turtle")
        described += [int(n) for n in graph.objects(None, VOID.triples)]
    assert described == [figure(void_of(client), "triples")] * 3 and len(counted) <= 1
