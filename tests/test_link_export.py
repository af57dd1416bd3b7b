"""``/links.jsonld`` is the link graphs (isomorphic to a SPARQL CONSTRUCT over them), every link IRI
dereferences like other records, and links touching a study that is not public never show."""

from __future__ import annotations

import json

import pytest
from rdflib import Graph, URIRef
from rdflib.compare import isomorphic, to_isomorphic

from linkers.discover import asserted_graph, inferred_graph, link_catalog
from tests.catalog_helpers import BASE

REMBI = "https://w3id.org/rembi/"
CONSTRUCT = f"CONSTRUCT {{ ?s ?p ?o }} WHERE {{ VALUES ?g {{ <{asserted_graph(BASE)}> <{inferred_graph(BASE)}> }} GRAPH ?g {{ ?s ?p ?o }} }}"


@pytest.fixture(scope="module")
def demo(make_module_catalog):
    made = make_module_catalog(demo=True, name="link-export", sparql_timeout=10.0)
    link_catalog(made.services.archive)
    return made


def constructed(client) -> Graph:
    answer = client.get("/sparql", query_string={"query": CONSTRUCT}, headers={"Accept": "application/n-triples"})
    return Graph().parse(data=answer.data, format="nt")


def exported(client) -> Graph:
    return Graph().parse(data=client.get("/links.jsonld").data, format="json-ld")


def test_the_export_is_the_link_graphs(demo):
    client = demo.app().test_client()
    graph, links = constructed(client), exported(client)
    assert len(graph) > 100
    assert isomorphic(graph, links), sorted(set(to_isomorphic(graph)) ^ set(to_isomorphic(links)))[:5]
    relation = URIRef(REMBI + "relation")
    assert all(isinstance(o, URIRef) for o in links.objects(None, relation))
    assert any(True for _ in links.objects(None, URIRef(REMBI + "target_accession")))
    doc = json.loads(client.get("/links.jsonld").data)
    assert len(doc["@graph"]) == len(set(graph.subjects(URIRef(REMBI + "linkSource"), None)))


def test_every_link_iri_dereferences(demo):
    client = demo.app().test_client()
    links = exported(client)
    nodes = sorted(set(links.subjects(URIRef(REMBI + "linkSource"), None)))
    for node in nodes[:25]:
        path = str(node).removeprefix(BASE)
        own = Graph()
        for triple in links.triples((node, None, None)):
            own.add(triple)
        source, relation, target = (links.value(node, URIRef(REMBI + k)) for k in ("linkSource", "relation", "linkTarget"))
        own.add((source, relation, target))
        for suffix, form in (("jsonld", "json-ld"), ("ttl", "turtle"), ("nt", "nt"), ("rdf", "xml")):
            answer = client.get(f"{path}.{suffix}")
            assert answer.status_code == 200, (path, suffix)
            assert isomorphic(Graph().parse(data=answer.data, format=form), own), (path, suffix)
        negotiated = client.get(path, headers={"Accept": "text/turtle"})
        assert negotiated.mimetype == "text/turtle" and isomorphic(Graph().parse(data=negotiated.data, format="turtle"), own)
        page = client.get(path, headers={"Accept": "text/html"})
        assert page.status_code == 200 and str(target).encode() in page.data
    assert client.get("/links/0000000000000000").status_code == 404
    assert client.get("/links/not%20a%20link").status_code == 404


def test_links_touching_a_study_no_longer_public_never_show(demo):
    """A withdrawn study's links stay in the link graphs until the next link run: they are not served meanwhile."""
    client = demo.app().test_client()
    links = exported(client)
    study = next(s for s in links.objects(None, URIRef(REMBI + "linkSource")) if str(s).startswith(f"{BASE}/studies/"))
    touching = sorted(set(links.subjects(URIRef(REMBI + "linkSource"), study)))
    assert touching
    demo.services.archive.withdraw(str(study).rsplit("/", 1)[1])
    assert constructed(client).value(touching[0], URIRef(REMBI + "linkSource")) == study  # (the graphs lag behind)
    after = exported(client)
    assert all(study not in (s, o) for s, _, o in after)
    assert len(after) > 0
    for node in touching:
        assert client.get(str(node).removeprefix(BASE) + ".jsonld").status_code == 404
    tsv = client.get("/links.tsv").get_data(as_text=True)
    assert str(study) not in tsv
