"""The W3C SPARQL 1.1 Protocol tests that apply to a read-only endpoint, run from a copy of their manifest
(``tests/data/w3c-sparql11-protocol/``: w3c/rdf-tests, W3C test suite licence in its LICENSE.md).

Each test's requests are sent as the manifest writes them (method, path with ``/sparql/`` replaced by this
endpoint's path, headers, body in its character encoding) to the app over a catalog whose public store holds the
test's ``ut:graphData`` as named graphs; the status class, the result form and an ASK's answer are checked as the
manifest states them. The ``update_*`` tests are for endpoints that accept SPARQL Update: this one refuses it.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from rdflib import Graph, Literal, Namespace, URIRef
from rdflib.collection import Collection

from tests.catalog_helpers import BASE

HERE = Path(__file__).parent / "data" / "w3c-sparql11-protocol"
MF = Namespace("http://www.w3.org/2001/sw/DataAccess/tests/test-manifest#")
HT = Namespace("http://www.w3.org/2011/http#")
CNT = Namespace("http://www.w3.org/2011/content#")
UT = Namespace("http://www.w3.org/2009/sparql/tests/test-update#")
HTS = Namespace("http://www.w3.org/2011/http-statusCodes#")
RDFS = Namespace("http://www.w3.org/2000/01/rdf-schema#")
FORMATS = {
    "boolean": ("application/sparql-results+json", "application/sparql-results+xml", "application/json"),
    "tabular": ("application/sparql-results+json", "application/sparql-results+xml", "text/csv", "text/tab-separated-values"),
    "RDF": ("text/turtle", "application/rdf+xml", "application/n-triples", "application/ld+json"),
}

MANIFEST = Graph().parse(HERE / "manifest.ttl", publicID=(HERE / "manifest.ttl").as_uri())
ENTRIES = list(Collection(MANIFEST, next(MANIFEST.objects(None, MF.entries))))
QUERY_TESTS = [entry for entry in ENTRIES if not str(entry).rsplit("#", 1)[1].startswith("update_")]


def _requests(test: URIRef) -> list:
    return list(Collection(MANIFEST, MANIFEST.value(MANIFEST.value(test, MF.action), HT.requests)))


@pytest.fixture(scope="module")
def endpoint(make_module_catalog):
    """A catalog whose public store holds the three W3C data graphs under the names the manifest gives them."""
    catalog = make_module_catalog(name="w3c", sparql_timeout=10.0, sparql_workers=1)
    graphs = {MANIFEST.value(data, UT.graph): MANIFEST.value(data, RDFS.label) for data in MANIFEST.objects(None, UT.graphData)}
    for path, name in graphs.items():
        catalog.services.archive.public.graph.replace_graph(str(name), Path(URIRef(path).replace("file://", "")).read_bytes())
    return catalog.app().test_client()


def test_the_manifest_copy_is_complete_and_names_its_licence():
    assert len(ENTRIES) == 34 and len(QUERY_TESTS) == 27
    assert (HERE / "LICENSE.md").is_file() and "W3C" in (HERE / "SOURCES.txt").read_text()


@pytest.mark.parametrize("test", QUERY_TESTS, ids=lambda t: str(t).rsplit("#", 1)[1])
def test_w3c_protocol(endpoint, test):
    for request in _requests(test):
        headers = {
            str(MANIFEST.value(h, HT.fieldName)): str(MANIFEST.value(h, HT.fieldValue))
            for h in Collection(MANIFEST, MANIFEST.value(request, HT.headers) or URIRef(str(MF.nil)))
        }
        body = MANIFEST.value(request, HT.body)
        data = None
        if body is not None:
            data = str(MANIFEST.value(body, CNT.chars)).encode(str(MANIFEST.value(body, CNT.characterEncoding)))
        path = str(MANIFEST.value(request, HT.absolutePath)).replace("/sparql/", "/sparql", 1)
        content_type = headers.pop("content-type", None)
        response = endpoint.open(
            path, method=str(MANIFEST.value(request, HT.methodName)), data=data, headers=headers, content_type=content_type
        )
        _check(MANIFEST.value(request, HT.resp), response)


def _check(expected, response) -> None:
    classes = {str(s).rsplit("StatusCode", 1)[1] for s in MANIFEST.objects(expected, MF.expectedStatus)}
    assert f"{response.status_code // 100}xx" in classes, (response.status_code, response.data[:300])
    form = MANIFEST.value(expected, MF.expectedFormat)
    if form is None:
        return
    assert response.mimetype in FORMATS[str(form)], response.mimetype
    if str(form) == "RDF":  # (an empty graph is an answer: DESCRIBE <http://example.org/> describes nothing here)
        Graph().parse(data=response.data, format=response.mimetype)
    answer = MANIFEST.value(expected, MF.expectedBoolean)
    if answer is not None:
        assert json.loads(response.data)["boolean"] is answer.toPython()


def test_relative_iris_resolve_against_the_endpoint(endpoint):
    """``query_content_type_construct`` again, its answer read: ``<s>`` is the endpoint's IRI resolved (RFC 3986),
    and a query's own relative ``BASE`` resolves against the endpoint as well."""
    response = endpoint.post("/sparql", data="CONSTRUCT { <s> <p> 1 } WHERE {}", content_type="application/sparql-query")
    graph = Graph().parse(data=response.data, format="turtle")
    assert set(graph) == {(URIRef(f"{BASE}/s"), URIRef(f"{BASE}/p"), Literal(1))}
    response = endpoint.get(
        "/sparql",
        query_string={"query": "BASE <studies/> SELECT ?x WHERE { BIND(<S-BIAD1> AS ?x) }"},
        headers={"Accept": "application/sparql-results+json"},
    )
    assert json.loads(response.data)["results"]["bindings"][0]["x"]["value"] == f"{BASE}/studies/S-BIAD1"


def test_the_service_allow_list_sees_resolved_iris(make_catalog):
    """A relative SERVICE target is checked as the engine would call it: resolved against the query's BASE and
    the endpoint; a relative target the allow-list names once resolved is let through to the engine."""
    allowed = "http://127.0.0.1:9/sparql"
    client = make_catalog(name="w3c-service", sparql_service_allowlist=(allowed,)).app().test_client()

    def ask(query: str):
        return client.post("/sparql", data=query, content_type="application/sparql-query")

    refused = ask("SELECT * WHERE { SERVICE <sparql> { ?s ?p ?o } }")
    assert refused.status_code == 403 and refused.json["errors"][0]["value"] == f"{BASE}/sparql"
    hidden = ask("BASE <http://127.0.0.1:9/> BASE <../evil/> SELECT * WHERE { SERVICE <sparql> { ?s ?p ?o } }")
    assert hidden.status_code == 403 and hidden.json["errors"][0]["value"] == "http://127.0.0.1:9/evil/sparql"
    prefixed = ask("BASE <http://127.0.0.1:9/> PREFIX e: <> SELECT * WHERE { SERVICE e:sparql { ?s ?p ?o } }")
    let_through = ask("BASE <http://127.0.0.1:9/> SELECT * WHERE { SERVICE SILENT <sparql> { ?s ?p ?o } }")
    assert prefixed.status_code != 403 and let_through.status_code == 200, (prefixed.data, let_through.data)


def _normalisation_table() -> list[tuple[str, str]]:
    """The README's table of typed values as written and as the store answers them."""
    text = (Path(__file__).parent.parent / "README.md").read_text()
    table = text.split("Typed values, as the store keeps them.", 1)[1].split("\n\n", 2)[1]
    rows = [line.split("|")[1:3] for line in table.splitlines()[2:]]
    return [(written.strip().strip("`"), answered.strip().strip("`")) for written, answered in rows]


def test_the_readme_says_exactly_how_typed_values_are_normalised(make_catalog):
    """Each typed value of the README's table, stored in the public graph, is answered by the endpoint as the table
    says, with the same value; a string with spaces comes back exactly as written."""
    rows = _normalisation_table()
    assert len(rows) >= 20 and ('"1.0E6"^^xsd:double', '"1000000"^^xsd:double') in rows
    prefix = "@prefix xsd: <http://www.w3.org/2001/XMLSchema#> .\n"
    turtle = prefix + "".join(f"<urn:v:{i}> <urn:v:p> {written} .\n" for i, (written, _) in enumerate(rows))
    turtle += '<urn:v:s> <urn:v:p> "  spaced\\tstring " .\n'
    catalog = make_catalog(name="w3c-literals")
    catalog.services.archive.public.graph.replace_graph("urn:v:g", turtle, format="text/turtle")
    response = (
        catalog.app()
        .test_client()
        .post(
            "/sparql",
            data="CONSTRUCT WHERE { ?s ?p ?o }",
            content_type="application/sparql-query",
            headers={"Accept": "text/turtle"},
        )
    )
    answered = Graph().parse(data=response.data, format="turtle")
    for i, (written, expected) in enumerate(rows):
        want = Graph().parse(data=f"{prefix}<urn:v:{i}> <urn:v:p> {expected} .", format="turtle")
        wrote = Graph().parse(data=f"{prefix}<urn:v:{i}> <urn:v:p> {written} .", format="turtle")
        got = answered.value(URIRef(f"urn:v:{i}"), URIRef("urn:v:p"))
        assert (got, got.datatype) == (next(want.objects()), next(want.objects()).datatype), (written, got)
        assert got.eq(next(wrote.objects())) or got.language, (written, got)  # the same value
    assert str(answered.value(URIRef("urn:v:s"), URIRef("urn:v:p"))) == "  spaced\tstring "


def test_a_remote_store_resolves_against_this_endpoint_and_keeps_the_protocol_dataset(tmp_path, oxigraph_pair):
    """Without the node's copy, the query goes to the graph server: its relative IRIs still resolve against this
    endpoint (not the server's URL), and the protocol's default-graph-uri still names the dataset."""
    from api.app import create_app
    from api.services import open_services
    from tests.catalog_helpers import make_settings

    public, private = oxigraph_pair
    settings = make_settings(tmp_path, sparql_url=private.url, public_sparql_url=public.url, sparql_replica="off")
    with open_services(settings) as services:
        services.archive.public.graph.replace_graph(
            "urn:w3c:g1", "<urn:w3c:a> <http://www.w3.org/1999/02/22-rdf-syntax-ns#type> <urn:w3c:T> .\n"
        )
        app = create_app(settings, services=services)
        try:
            client = app.test_client()
            answer = client.post("/sparql", data="CONSTRUCT { <s> <p> 1 } WHERE {}", content_type="application/sparql-query")
            assert set(Graph().parse(data=answer.data, format="turtle")) == {
                (URIRef(f"{BASE}/s"), URIRef(f"{BASE}/p"), Literal(1))
            }
            asks = {
                graph: client.get(
                    "/sparql",
                    query_string={"query": "ASK { <urn:w3c:a> a ?t }", "default-graph-uri": graph},
                    headers={"Accept": "application/sparql-results+json"},
                ).json["boolean"]
                for graph in ("urn:w3c:g1", "urn:w3c:g2")
            }
            assert asks == {"urn:w3c:g1": True, "urn:w3c:g2": False}
        finally:
            app.extensions["bia.sparql"].close()
