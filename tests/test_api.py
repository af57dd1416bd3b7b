"""The HTTP API through the Flask test client, on a real embedded catalog: records, SPARQL, search, files,
downloads, deposits, sitemap, statistics, and the one error shape."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import re
import threading
import time
import urllib.request
import zipfile
from pathlib import Path

import pytest
from pyld import jsonld
from rdflib import Graph
from rdflib.compare import isomorphic

from api.app import create_app
from api.services import open_services
from loaders.harvest import Harvester
from tests.catalog_helpers import BASE, DATA, file_bytes, listed_paths, make_settings, stage_sample

TESTS = Path(__file__).parent
ERROR_KEYS = {"code", "status", "message", "errors"}


@pytest.fixture(scope="module")
def catalog(make_module_catalog):
    made = make_module_catalog(name="api", sparql_timeout=3.0, sparql_workers=2)
    settings, services = made.settings, made.services
    harvester = Harvester(services.archive)
    assert harvester.run("pagetab", [str(TESTS / "data" / "harvest" / "biostudies" / "S-BIAD1492.json")]).loaded
    assert harvester.run("empiar", [str(TESTS / "data" / "empiar" / "10934.xml")]).loaded
    assert harvester.run("idr", [str(TESTS / "data" / "idr" / "idr0038-study.txt")]).loaded
    registry = services.archive.registry
    token = registry.create_token("jane")
    owner = registry.owner_of_token(token)
    released = services.deposits.finalize(stage_sample(services.deposits, owner), owner)
    embargoed = services.deposits.finalize(stage_sample(services.deposits, owner, release_date="2999-01-01"), owner)
    other_token = registry.create_token("mallory")
    services.follow()  # the link graphs, as the server's background duties would build them
    app = made.app()
    yield {
        "app": app,
        "client": app.test_client(),
        "token": token,
        "other": other_token,
        "released": released,
        "embargoed": embargoed,
        "services": services,
        "settings": settings,
    }


@pytest.fixture
def client(catalog):
    return catalog["client"]


def error_shape(response, status):
    assert response.status_code == status, response.get_data(as_text=True)
    body = response.get_json()
    assert set(body) == ERROR_KEYS and body["status"] == status
    return body


# ---------------------------------------------------------------------- basics


def test_health_openapi_and_docs(client):
    assert client.get("/health").get_json()["status"] == "ok"
    spec = client.get("/openapi.json").get_json()
    assert {"/sparql", "/search", "/studies/{accession}", "/studies/{accession}/files", "/deposits"} <= set(spec["paths"])
    docs = client.get("/docs")
    assert docs.status_code == 200 and b"/static/swagger-ui/swagger-ui-bundle.js" in docs.data
    assert client.get("/static/swagger-ui/swagger-ui-bundle.js").status_code == 200


def test_errors_share_one_shape(client):
    error_shape(client.get("/studies/S-NOPE1"), 404)
    error_shape(client.get("/studies/00/links"), 404)  # found by schemathesis: not an accession
    error_shape(client.get("/studies/S-BIAD1492/e%F1%97%97%9E%F3%94%B5%AE%3A"), 404)  # not an IRI the store can hold
    error_shape(client.get("/no/such/page"), 404)
    error_shape(client.delete("/studies"), 405)
    error_shape(client.get("/studies?limit=many"), 400)
    error_shape(client.get("/studies/S-BIAD1492", headers={"Accept": "image/png"}), 406)


# ---------------------------------------------------------------------- records


def test_listing_pages_through_released_studies(client, catalog):
    first = client.get("/studies?limit=2").get_json()
    assert first["total"] == 4 and len(first["items"]) == 2 and first["next"]
    second = client.get(first["next"].replace(BASE, "")).get_json()
    accessions = {i["accession"] for i in first["items"] + second["items"]}
    assert accessions == {"S-BIAD1492", "EMPIAR-10934", "idr0038", catalog["released"]}
    assert catalog["embargoed"] not in accessions
    assert b"S-BIAD1492" in client.get("/studies", headers={"Accept": "text/html"}).data


@pytest.mark.parametrize(
    "accept, suffix, media",
    [
        ("application/ld+json", "jsonld", "application/ld+json"),
        ("text/turtle", "ttl", "text/turtle"),
        ("application/n-triples", "nt", "application/n-triples"),
        ("application/rdf+xml", "rdf", "application/rdf+xml"),
        ("text/html", "html", "text/html"),
    ],
)
def test_record_content_negotiation(client, accept, suffix, media):
    by_header = client.get("/studies/S-BIAD1492", headers={"Accept": accept})
    by_suffix = client.get(f"/studies/S-BIAD1492.{suffix}")
    assert by_header.status_code == by_suffix.status_code == 200
    assert by_header.mimetype == by_suffix.mimetype == media
    assert 'rel="cite-as"' in by_header.headers["Link"] and 'rel="describedby"' in by_header.headers["Link"]
    assert 'rel="license"' in by_header.headers["Link"] and "https://schema.org/Dataset" in by_header.headers["Link"]
    if media != "text/html":  # the .ttl/.jsonld… document is a metadata resource: it names what it describes
        assert by_suffix.headers["Link"] == f'<{BASE}/studies/S-BIAD1492>; rel="describes"; type="text/html"'


def test_a_record_iri_without_a_preference_is_its_landing_page(client):
    for headers in ({}, {"Accept": "*/*"}, {"Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}):
        page = client.get("/studies/S-BIAD1492", headers=headers)
        assert page.mimetype == "text/html" and b'<script type="application/ld+json">' in page.data, headers
    for accept in ("application/ld+json", "application/ld+json, */*;q=0.1", "application/json"):
        assert client.get("/studies/S-BIAD1492", headers={"Accept": accept}).get_json()["identifier"], accept


def test_jsonld_expands_to_exactly_the_turtle_triples(client):
    for accession in ("S-BIAD1492", "EMPIAR-10934", "idr0038"):
        doc = client.get(f"/studies/{accession}.jsonld").get_json()
        nquads = jsonld.to_rdf(doc, {"format": "application/n-quads"})
        from_jsonld = Graph().parse(data=nquads, format="nquads")
        from_turtle = Graph().parse(data=client.get(f"/studies/{accession}.ttl").get_data(as_text=True), format="turtle")
        assert len(from_jsonld) == len(from_turtle) > 20
        assert isomorphic(from_jsonld, from_turtle)


def test_jsonld_is_a_bioschemas_dataset(client):
    doc = client.get("/studies/S-BIAD1492", headers={"Accept": "application/ld+json"}).get_json()
    types = doc["@type"] if isinstance(doc["@type"], list) else [doc["@type"]]
    assert "Dataset" in types
    for key in (
        "name",
        "description",
        "identifier",
        "url",
        "license",
        "creator",
        "datePublished",
        "keywords",
        "includedInDataCatalog",
        "isAccessibleForFree",
        "measurementTechnique",
    ):
        assert key in doc, key
    html = client.get("/studies/S-BIAD1492", headers={"Accept": "text/html"}).get_data(as_text=True)
    assert '<script type="application/ld+json">' in html and 'rel="alternate" type="text/turtle"' in html
    assert f'<link rel="canonical" href="{BASE}/studies/S-BIAD1492">' in html
    description = re.search(r'<meta name="description" content="([^"]*)">', html).group(1)
    assert 50 <= len(description) <= 303 and description.split()[0] in doc["description"]
    assert f'<link rel="canonical" href="{BASE}/studies/S-BIAD1492">' in client.get("/studies/S-BIAD1492.html").get_data(
        as_text=True
    )


def test_only_studies_whose_files_are_held_advertise_a_download(client, catalog):
    deposited = client.get(f"/studies/{catalog['released']}", headers={"Accept": "application/ld+json"})
    assert deposited.get_json()["distribution"]["contentUrl"]["@id"] == f"{BASE}/studies/{catalog['released']}/download"
    assert f'<{BASE}/studies/{catalog["released"]}/download>; rel="item"' in deposited.headers["Link"]
    zipped = client.get(f"/studies/{catalog['released']}/download")
    assert zipped.status_code == 200 and len(zipfile.ZipFile(io.BytesIO(zipped.data)).namelist()) == len(listed_paths())
    harvested = client.get("/studies/S-BIAD1492", headers={"Accept": "application/ld+json"})
    assert "distribution" not in harvested.get_json() and "/download>" not in harvested.headers["Link"]
    assert "not held by this archive" in error_shape(client.get("/studies/S-BIAD1492/download"), 404)["message"]
    page = client.get("/studies/S-BIAD1492", headers={"Accept": "text/html"}).get_data(as_text=True)
    assert "/studies/S-BIAD1492/download" not in page
    files_page = client.get("/studies/S-BIAD1492/files", headers={"Accept": "text/html"}).get_data(as_text=True)
    assert "/studies/S-BIAD1492/download" not in files_page  # no zip; each file's link leads to its source archive
    assert 'href="https://www.ebi.ac.uk/biostudies/studies/S-BIAD1492"' in page


def test_every_sub_object_iri_dereferences(client):
    graph = Graph().parse(data=client.get("/studies/S-BIAD1492.ttl").get_data(as_text=True), format="turtle")
    inside = sorted({str(s) for s in graph.subjects() if str(s).startswith(f"{BASE}/studies/S-BIAD1492/")})
    assert inside
    for iri in inside:
        path = iri.replace(BASE, "").split("#", 1)[0]
        response = client.get(path, headers={"Accept": "text/turtle"})
        assert response.status_code == 200, path
        assert Graph().parse(data=response.get_data(as_text=True), format="turtle")
    files = client.get("/studies/S-BIAD1492/files?limit=1").get_json()["items"]
    response = client.get(files[0]["@id"].replace(BASE, ""), headers={"Accept": "application/ld+json"})
    assert response.status_code == 200 and files[0]["path"] in response.get_data(as_text=True)


def test_embargoed_record_is_404_except_for_its_owner(client, catalog):
    accession = catalog["embargoed"]
    error_shape(client.get(f"/studies/{accession}"), 404)
    error_shape(client.get(f"/studies/{accession}", headers={"Authorization": f"Bearer {catalog['other']}"}), 404)
    own = client.get(
        f"/studies/{accession}", headers={"Authorization": f"Bearer {catalog['token']}", "Accept": "application/ld+json"}
    )
    assert own.status_code == 200 and own.get_json()["name"]
    assert client.get(f"/studies/{accession}/files", headers={"Authorization": f"Bearer {catalog['token']}"}).status_code == 200
    error_shape(client.get(f"/studies/{accession}/files"), 404)


# ---------------------------------------------------------------------- SPARQL

COUNT_STUDIES = (
    f'SELECT (COUNT(DISTINCT ?g) AS ?n) WHERE {{ GRAPH ?g {{ ?s ?p ?o }} FILTER(STRSTARTS(STR(?g), "{BASE}/studies/")) }}'
)


@pytest.mark.parametrize(
    "accept", ["application/sparql-results+json", "application/sparql-results+xml", "text/csv", "text/tab-separated-values"]
)
def test_sparql_select_in_every_results_format(client, accept):
    response = client.get("/sparql", query_string={"query": COUNT_STUDIES}, headers={"Accept": accept})
    assert response.status_code == 200 and response.mimetype == accept
    assert b"4" in response.data
    assert response.headers["Access-Control-Allow-Origin"] == "*"


def test_browser_sparql_clients_pass_cors_preflight_and_read_errors(client):
    preflight = client.options(
        "/sparql",
        headers={
            "Origin": "https://yasgui.example",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type",
        },
    )
    assert preflight.status_code in (200, 204) and preflight.headers["Access-Control-Allow-Origin"] == "*"
    assert "POST" in preflight.headers["Access-Control-Allow-Methods"]
    assert "content-type" in preflight.headers["Access-Control-Allow-Headers"].lower()
    for bad in ("SELEC nonsense", "INSERT DATA { <a:b> <a:b> <a:b> }"):
        error = client.post(
            "/sparql", data=bad, content_type="application/sparql-query", headers={"Origin": "https://yasgui.example"}
        )
        assert error.status_code in (400, 403) and error.headers["Access-Control-Allow-Origin"] == "*"
        error_shape(error, error.status_code)


def test_sparql_protocol_methods_and_dataset(client, catalog):
    form = client.post("/sparql", data={"query": COUNT_STUDIES}, headers={"Accept": "application/sparql-results+json"})
    direct = client.post(
        "/sparql",
        data=COUNT_STUDIES,
        content_type="application/sparql-query",
        headers={"Accept": "application/sparql-results+json"},
    )
    assert form.get_json() == direct.get_json()
    assert form.get_json()["results"]["bindings"][0]["n"]["value"] == "4"
    one = client.get(
        "/sparql",
        query_string={"query": "SELECT (COUNT(*) AS ?n) WHERE { ?s ?p ?o }", "default-graph-uri": f"{BASE}/studies/idr0038"},
        headers={"Accept": "application/sparql-results+json"},
    ).get_json()
    everything = client.get(
        "/sparql",
        query_string={"query": "SELECT (COUNT(*) AS ?n) WHERE { ?s ?p ?o }"},
        headers={"Accept": "application/sparql-results+json"},
    ).get_json()
    assert 0 < int(one["results"]["bindings"][0]["n"]["value"]) < int(everything["results"]["bindings"][0]["n"]["value"])
    ask = client.get("/sparql", query_string={"query": "ASK { ?s ?p ?o }"}, headers={"Accept": "application/sparql-results+json"})
    assert ask.get_json()["boolean"] is True


@pytest.mark.parametrize("accept", ["text/turtle", "application/ld+json", "application/n-triples", "application/rdf+xml"])
def test_sparql_construct_formats(client, accept):
    query = f"CONSTRUCT {{ ?s ?p ?o }} WHERE {{ GRAPH <{BASE}/studies/idr0038> {{ ?s ?p ?o }} }} LIMIT 5"
    response = client.get("/sparql", query_string={"query": query}, headers={"Accept": accept})
    assert response.status_code == 200 and response.mimetype == accept and response.data
    describe = client.get("/sparql", query_string={"query": f"DESCRIBE <{BASE}/studies/idr0038>"}, headers={"Accept": accept})
    assert describe.status_code == 200


def test_sparql_service_description_and_page(client):
    sd = client.get("/sparql", headers={"Accept": "text/turtle"})
    graph = Graph().parse(data=sd.get_data(as_text=True), format="turtle")
    assert any("sparql-service-description#Service" in str(o) for o in graph.objects())
    assert b"<textarea" in client.get("/sparql", headers={"Accept": "text/html"}).data


def test_sparql_is_read_only(client):
    error_shape(client.get("/sparql", query_string={"update": "DROP ALL"}), 403)
    error_shape(client.post("/sparql", data="DROP ALL", content_type="application/sparql-update"), 403)
    error_shape(client.post("/sparql", data={"update": "CLEAR ALL"}), 403)
    error_shape(client.get("/sparql", query_string={"query": "DELETE WHERE { ?s ?p ?o }"}), 403)
    error_shape(client.get("/sparql", query_string={"query": "INSERT DATA { <a:a> <a:b> <a:c> }"}), 403)
    error_shape(client.get("/sparql", query_string={"query": "SELECT * WHERE { ?s ?p"}), 400)
    assert (
        client.get("/sparql", query_string={"query": COUNT_STUDIES}, headers={"Accept": "text/csv"}).data.strip().endswith(b"4")
    )


def test_sparql_service_outside_the_allow_list_is_refused_without_a_request(client, replay_server):
    query = f"SELECT * WHERE {{ SERVICE <{replay_server.url}/sparql> {{ ?s ?p ?o }} }}"
    body = error_shape(client.get("/sparql", query_string={"query": query}), 403)
    assert body["code"] == "service_not_allowed"
    error_shape(client.get("/sparql", query_string={"query": "SELECT * WHERE { SERVICE ?x { ?s ?p ?o } }"}), 403)
    assert replay_server.requests == []


def test_a_service_target_cannot_be_hidden_by_comments_strings_or_prefix_tricks(catalog, replay_server):
    allowed = "http://127.0.0.1:9/sparql"
    app = create_app(catalog["settings"].with_(sparql_service_allowlist=(allowed,)), services=catalog["services"])
    client = app.test_client()
    decoy = f"{replay_server.url}/"
    try:
        for query in (
            f"PREFIX ex: <{decoy}>\n# PREFIX ex: <http://127.0.0.1:9/>\nSELECT * WHERE {{ SERVICE ex:sparql {{ ?s ?p ?o }} }}",
            f'PREFIX ex: <{decoy}>\nSELECT * WHERE {{ BIND("PREFIX ex: <http://127.0.0.1:9/>" AS ?x) SERVICE ex:sparql {{ ?s ?p ?o }} }}',
            "PREFIX ex: <http://127.0.0.1:9/>\nSELECT * WHERE { SERVICE ex:sparql:x { ?s ?p ?o } }",
            f"PREFIX ex: <http://127.0.0.1:9/>\nPREFIX ex: <{decoy}>\nSELECT * WHERE {{ SERVICE SILENT ex:sparql {{ ?s ?p ?o }} }}",
        ):
            assert error_shape(client.get("/sparql", query_string={"query": query}), 403)["code"] == "service_not_allowed", query
        assert replay_server.requests == []
    finally:
        app.extensions["bia.sparql"].close()


def test_the_word_service_elsewhere_is_not_a_service_call(client):
    for query in (
        "SELECT ?service WHERE { ?service a ?t } LIMIT 1",
        "PREFIX sd: <http://www.w3.org/ns/sparql-service-description#> ASK { ?x a sd:Service }",
        "PREFIX é: <http://example.org/> SELECT ?s WHERE { ?s é:service ?o } LIMIT 1",
    ):
        assert (
            client.get(
                "/sparql", query_string={"query": query}, headers={"Accept": "application/sparql-results+json"}
            ).status_code
            == 200
        ), query


def count_of(client, query, **params) -> int:
    answer = client.get("/sparql", query_string={"query": query, **params}, headers={"Accept": "application/sparql-results+json"})
    assert answer.status_code == 200, answer.get_data(as_text=True)
    return int(answer.get_json()["results"]["bindings"][0]["n"]["value"])


def test_from_clauses_and_the_protocol_dataset_are_honoured(client, catalog):
    one, other = f"{BASE}/studies/idr0038", f"{BASE}/studies/EMPIAR-10934"
    everything = count_of(client, "SELECT (COUNT(*) AS ?n) WHERE { ?s ?p ?o }")
    in_one = count_of(client, f"SELECT (COUNT(*) AS ?n) FROM <{one}> WHERE {{ ?s ?p ?o }}")
    in_other = count_of(client, f"SELECT (COUNT(*) AS ?n) FROM <{other}> WHERE {{ ?s ?p ?o }}")
    assert 0 < in_one < everything and 0 < in_other < everything
    assert count_of(client, f"SELECT (COUNT(*) AS ?n) FROM <{one}> FROM <{other}> WHERE {{ ?s ?p ?o }}") == in_one + in_other
    assert count_of(client, "SELECT (COUNT(*) AS ?n) WHERE { ?s ?p ?o }", **{"default-graph-uri": one}) == in_one
    assert count_of(client, f"SELECT (COUNT(*) AS ?n) FROM NAMED <{one}> WHERE {{ ?s ?p ?o }}") == 0  # empty default graph
    assert count_of(client, f"SELECT (COUNT(*) AS ?n) FROM NAMED <{one}> WHERE {{ GRAPH ?g {{ ?s ?p ?o }} }}") == in_one
    # the protocol names the whole dataset and wins over FROM (SPARQL 1.1 Protocol 2.1.4)
    assert count_of(client, "SELECT (COUNT(*) AS ?n) WHERE { GRAPH ?g { ?s ?p ?o } }", **{"default-graph-uri": one}) == 0
    assert count_of(client, "SELECT (COUNT(*) AS ?n) WHERE { ?s ?p ?o }", **{"named-graph-uri": one}) == 0
    assert (
        count_of(client, f"SELECT (COUNT(*) AS ?n) FROM <{one}> WHERE {{ ?s ?p ?o }}", **{"default-graph-uri": other}) == in_other
    )
    embargoed = f"{BASE}/studies/{catalog['embargoed']}"
    assert count_of(client, f"SELECT (COUNT(*) AS ?n) FROM <{embargoed}> WHERE {{ ?s ?p ?o }}") == 0


def test_malformed_protocol_requests_are_400(client):
    for response in (
        client.post("/sparql", data={"query": ""}),
        client.post("/sparql", data={"foo": "bar"}),
        client.post("/sparql", data="", content_type="application/sparql-query"),
        client.get("/sparql", query_string=[("query", COUNT_STUDIES), ("query", "ASK {}")]),
        client.get("/sparql?query=SELECT%20%28%22%E9%22%20AS%20%3Fx%29%20%7B%7D"),  # Latin-1, not UTF-8
        client.post(
            "/sparql",
            data='SELECT ("\xe9" AS ?x) {}'.encode("latin-1"),
            content_type="application/sparql-query; charset=ISO-8859-1",
        ),
    ):
        assert error_shape(response, 400)["code"] == "invalid_query"
    utf8 = client.post(
        "/sparql",
        data='SELECT ("é日本" AS ?x) {}'.encode(),
        content_type="application/sparql-query; charset=utf-8",
        headers={"Accept": "application/sparql-results+json"},
    )
    assert utf8.get_json()["results"]["bindings"][0]["x"]["value"] == "é日本"


def test_protocol_requests_are_read_as_sent_and_refused_with_a_reason(catalog, client):
    """Each way of sending a query (GET, POST direct, POST form, multipart form, parameters in the URL of a POST) and
    each way of sending one wrongly: the status, the code and the message that says what to change."""
    small = create_app(catalog["settings"].with_(sparql_max_query_bytes=1000), services=catalog["services"])
    try:
        over = {
            "status": 413,
            "code": "query_too_large",
            "message": "the query is over the 1,000-byte limit of this endpoint (BIA_SPARQL_MAX_QUERY_BYTES)",
        }
        limited = small.test_client()
        for response in (
            limited.get("/sparql?foo=" + "x" * 70_000),  # the URL is refused before it is decoded
            limited.post("/sparql", data={"query": "ASK {} #" + "x" * 1000}, content_type="multipart/form-data"),
        ):
            body = error_shape(response, 413)
            assert {k: body[k] for k in over} == over
        assert limited.post(
            "/sparql",
            data={"query": "ASK {} #" + "x" * 990},
            content_type="multipart/form-data",
            headers={"Accept": "application/sparql-results+json"},
        ).get_json() == {"head": {}, "boolean": True}
    finally:
        small.extensions["bia.sparql"].close()
    direct = "application/sparql-query"
    refused = [
        (
            client.post("/sparql", data=b"ASK {} #\xff", content_type=direct),
            400,
            "the query is not UTF-8 (invalid start byte at byte 8)",
        ),
        (
            client.post("/sparql", data="ASK {}", content_type=f"{direct}; charset=latin1"),
            400,
            "a query sent as application/sparql-query is UTF-8 (got charset=latin1)",
        ),
        (
            client.post("/sparql?query=ASK%20%7B%7D", data="ASK {}", content_type=direct),
            400,
            "send the query either as the request body or as the 'query' parameter, not both",
        ),
        (
            client.post("/sparql?query=ASK%20%7B%7D", data={"query": "ASK {}"}),
            400,
            "one query per request (2 'query' parameters were sent)",
        ),
        (
            client.post("/sparql", data={"query": ["ASK {}", "ASK {}"]}, content_type="multipart/form-data"),
            400,
            "one query per request (2 'query' parameters were sent)",
        ),
        (
            client.post("/sparql", data="ASK {}", content_type="text/plain"),
            400,
            "POST a query as application/sparql-query or as the form field 'query' (got text/plain)",
        ),
        (
            client.post("/sparql"),
            400,
            "POST a query as application/sparql-query or as the form field 'query' (got no content type)",
        ),
        (client.post("/sparql", data={"query": "  "}), 400, "the query is empty"),
        (
            client.post("/sparql", data={"foo": "bar"}),
            400,
            "no query: POST it as application/sparql-query or as the form field 'query'",
        ),
        (
            client.post("/sparql?update=x", data="ASK {}", content_type=direct),
            403,
            "this endpoint is read-only: SPARQL Update is not accepted",
        ),
        (
            client.post("/sparql", data={"update": "CLEAR ALL"}, content_type="multipart/form-data"),
            403,
            "this endpoint is read-only: SPARQL Update is not accepted",
        ),
    ]
    for response, status, message in refused:
        assert error_shape(response, status)["message"] == message

    one = f"{BASE}/studies/idr0038"
    count = "SELECT (COUNT(*) AS ?n) WHERE { ?s ?p ?o }"
    in_one = count_of(client, count, **{"default-graph-uri": one})
    json_results = {"Accept": "application/sparql-results+json"}
    for response in (
        client.post(f"/sparql?default-graph-uri={one}", data=count, content_type=direct, headers=json_results),
        client.post("/sparql", data={"query": count, "default-graph-uri": one}, headers=json_results),
        client.post(
            f"/sparql?default-graph-uri={one}", data={"query": count}, content_type="multipart/form-data", headers=json_results
        ),
    ):
        assert int(response.get_json()["results"]["bindings"][0]["n"]["value"]) == in_one
    # a format hint anywhere in the request wins over an Accept header naming one type
    for response in (
        client.get("/sparql", query_string={"query": count, "format": "csv"}, headers=json_results),
        client.post("/sparql?output=csv", data=count, content_type=direct, headers=json_results),
        client.post("/sparql", data={"query": count, "format": "csv"}, headers=json_results),
    ):
        assert response.status_code == 200 and response.mimetype == "text/csv"
    assert (
        client.get("/sparql", query_string={"query": count}, headers=json_results).mimetype == "application/sparql-results+json"
    )


@pytest.mark.parametrize(
    ("form", "accept", "expected"),
    [
        ("SELECT", "text/csv; charset=utf-8", "text/csv"),
        ("SELECT", "application/sparql-results+json;charset=utf-8", "application/sparql-results+json"),
        ("SELECT", "application/xml", "application/xml"),
        ("ASK", "text/xml", "text/xml"),
        ("CONSTRUCT", "text/turtle; charset=utf-8", "text/turtle"),
        ("CONSTRUCT", 'application/ld+json; profile="http://www.w3.org/ns/json-ld#expanded"', "application/ld+json"),
        ("CONSTRUCT", "application/trig", "application/trig"),
        ("CONSTRUCT", "text/n3", "text/n3"),
    ],
)
def test_accept_headers_with_parameters_and_generic_types(client, form, accept, expected):
    query = {"SELECT": COUNT_STUDIES, "ASK": "ASK { ?s ?p ?o }", "CONSTRUCT": "CONSTRUCT WHERE { ?s ?p ?o } LIMIT 3"}[form]
    response = client.get("/sparql", query_string={"query": query}, headers={"Accept": accept})
    assert response.status_code == 200 and response.mimetype == expected, response.get_data(as_text=True)
    if form == "CONSTRUCT" and expected != "application/ld+json":
        assert (
            len(
                Graph().parse(
                    data=response.get_data(as_text=True),
                    format={"application/trig": "trig", "text/n3": "n3"}.get(expected, "turtle"),
                )
            )
            == 3
        )


def test_ask_has_no_csv_form_and_format_hints_yield_to_accept(client):
    error_shape(client.get("/sparql", query_string={"query": "ASK { ?s ?p ?o }"}, headers={"Accept": "text/csv"}), 406)
    # SPARQLWrapper asking a SELECT "as turtle": format=turtle with Accept */*
    hinted = client.get("/sparql", query_string={"query": COUNT_STUDIES, "format": "turtle"}, headers={"Accept": "*/*"})
    assert hinted.status_code == 200 and hinted.mimetype == "application/sparql-results+json"
    error_shape(client.get("/sparql", query_string={"query": COUNT_STUDIES, "format": "turtle"}), 406)


def test_cors_on_wrong_methods_and_preflights_grant_the_asked_headers(client):
    wrong = client.put("/sparql", data="x")
    assert error_shape(wrong, 405) and wrong.headers["Access-Control-Allow-Origin"] == "*"
    preflight = client.options(
        "/sparql",
        headers={
            "Origin": "https://a.example",
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "x-requested-with, if-none-match",
        },
    )
    assert preflight.headers["Access-Control-Allow-Headers"] == "x-requested-with, if-none-match"
    answer = client.get("/sparql", query_string={"query": COUNT_STUDIES})
    assert "ETag" in answer.headers["Access-Control-Expose-Headers"]
    posted = client.post("/sparql", data={"query": COUNT_STUDIES}, headers={"If-None-Match": answer.headers["ETag"]})
    assert posted.status_code == 200 and "ETag" not in posted.headers  # conditional GETs only


def test_embargoed_data_is_invisible_to_sparql(client, catalog):
    study = f"{BASE}/studies/{catalog['embargoed']}"
    for query in (f"ASK {{ GRAPH <{study}> {{ ?s ?p ?o }} }}", f"ASK {{ <{study}> ?p ?o }}", f"ASK {{ ?s ?p <{study}> }}"):
        answer = client.get("/sparql", query_string={"query": query}, headers={"Accept": "application/sparql-results+json"})
        assert answer.get_json()["boolean"] is False
    graph = client.get("/sparql", query_string={"query": f"DESCRIBE <{study}>"}, headers={"Accept": "application/n-triples"})
    assert graph.data.strip() == b""


def test_a_long_query_is_stopped_while_others_are_served(client):
    heavy = "SELECT (COUNT(*) AS ?n) WHERE { ?a ?b ?c . ?d ?e ?f . ?g ?h ?i . ?j ?k ?l }"
    outcome = {}

    def run():
        outcome["response"] = client.get(
            "/sparql", query_string={"query": heavy}, headers={"Accept": "application/sparql-results+json"}
        )

    thread = threading.Thread(target=run)
    started = time.monotonic()
    thread.start()
    time.sleep(0.3)
    assert client.get("/health").status_code == 200
    assert client.get("/search?q=nucleus").status_code == 200
    thread.join(30)
    body = error_shape(outcome["response"], 503)
    assert body["code"] == "query_timeout" and time.monotonic() - started < 15
    after = client.get("/sparql", query_string={"query": COUNT_STUDIES}, headers={"Accept": "text/csv"})
    assert after.status_code == 200


def test_results_are_capped(catalog):
    settings = catalog["settings"].with_(sparql_max_bytes=2000)
    app = create_app(settings, services=catalog["services"])
    try:
        body = error_shape(app.test_client().get("/sparql", query_string={"query": "SELECT * WHERE { ?s ?p ?o }"}), 413)
        assert "LIMIT" in body["message"]
    finally:
        app.extensions["bia.sparql"].close()


def test_void_and_examples_and_every_example_runs(client):
    void = Graph().parse(data=client.get("/.well-known/void").get_data(as_text=True), format="turtle")
    assert any(str(p).endswith("sparqlEndpoint") for p in void.predicates())
    examples = client.get("/.well-known/sparql-examples", headers={"Accept": "application/json"}).get_json()
    Graph().parse(data=client.get("/.well-known/sparql-examples").get_data(as_text=True), format="turtle")
    assert len(examples) >= 5
    for example in examples:
        response = client.get(
            "/sparql", query_string={"query": example["query"]}, headers={"Accept": "application/sparql-results+json"}
        )
        assert response.status_code == 200, (example["id"], response.get_data(as_text=True))
    links = client.get(
        "/sparql",
        query_string={"query": next(e["query"] for e in examples if e["id"] == "emdb-links")},
        headers={"Accept": "application/sparql-results+json"},
    ).get_json()
    assert any("EMD-12602" in b["map"]["value"] for b in links["results"]["bindings"])


# ---------------------------------------------------------------------- search


def test_search_fields_facets_highlights_paging(client):
    body = client.get("/search?q=nucleus").get_json()
    assert body["total"] >= 1 and body["items"][0]["accession"] == "S-BIAD1492"
    assert "<mark>" in json.dumps(body["items"][0]["highlights"])
    assert {"organism", "imaging_method", "licence", "release_year", "source"} <= set(body["facets"])
    idr = client.get("/search", query_string={"q": "kidney", "filter[source]": "IDR"}).get_json()
    assert [i["accession"] for i in idr["items"]] == ["idr0038"]
    fielded = client.get("/search", query_string={"q": 'accession:"EMPIAR-10934"'}).get_json()
    assert [i["accession"] for i in fielded["items"]] == ["EMPIAR-10934"]
    paged = client.get("/search?q=&limit=1&sort=newest").get_json()
    assert len(paged["items"]) == 1 and paged["total"] == 4 and paged["next"]
    error_shape(client.get('/search?q="unbalanced'), 400)
    error_shape(client.get("/search?q=colour:red"), 400)
    assert b"<mark>" in client.get("/search?q=nucleus", headers={"Accept": "text/html"}).data


# ---------------------------------------------------------------------- files and downloads


def test_file_table_filters_sorts_pages_and_facets(client, catalog):
    accession = catalog["released"]
    table = client.get(
        f"/studies/{accession}/files", query_string={"filter[Compound]": "taxol", "sort": "-Concentration"}
    ).get_json()
    assert table["total"] == 2 and all(i["Compound"] == "taxol" for i in table["items"])
    values = [i["Concentration"] for i in table["items"]]
    assert values == sorted(values, reverse=True)
    assert {f["value"] for f in table["facets"]["Compound"]} >= {"taxol", "nocodazole"}
    assert table["totals"]["files"] == 2
    ranged = client.get(f"/studies/{accession}/files", query_string={"filter[Concentration][gte]": "5"}).get_json()
    assert ranged["total"] and all(i["Concentration"] >= 5 for i in ranged["items"])
    prefix = client.get(f"/studies/{accession}/files", query_string={"filter[path][prefix]": "plate1/"}).get_json()
    assert prefix["total"] == sum(1 for p in listed_paths() if p.startswith("plate1/"))
    seen, url = [], f"/studies/{accession}/files?limit=2&sort=Well"
    while url:
        page = client.get(url).get_json()
        seen += [i["path"] for i in page["items"]]
        url = page["next"].replace(BASE, "") if page["next"] else None
    assert sorted(seen) == sorted(listed_paths())
    error_shape(client.get(f"/studies/{accession}/files?filter[Colour]=red"), 400)
    error_shape(client.get(f"/studies/{accession}/files?cursor=garbage"), 400)


def test_file_table_exports(client, catalog):
    accession = catalog["released"]
    csv_text = client.get(f"/studies/{accession}/files.csv", query_string={"filter[Plate]": "1"}).get_data(as_text=True)
    lines = csv_text.strip().splitlines()
    assert lines[0].startswith("path,size,format,file_id") and lines[0].endswith("download")
    assert len(lines) - 1 == sum(1 for p in listed_paths() if p.startswith("plate1/"))
    tsv = client.get(f"/studies/{accession}/files", headers={"Accept": "text/tab-separated-values"})
    assert tsv.mimetype == "text/tab-separated-values" and "\t" in tsv.get_data(as_text=True)
    backwards = client.get(f"/studies/{accession}/files.csv", query_string={"sort": "-path"}).get_data(as_text=True)
    paths = [line.split(",")[0] for line in backwards.strip().splitlines()[1:]]
    assert paths == sorted(listed_paths(), reverse=True)
    for bad in ({"filter[nope]": "x"}, {"sort": "nope"}):
        assert error_shape(client.get(f"/studies/{accession}/files.csv", query_string=bad), 400)["code"]


def test_file_metadata_download_and_range(client, catalog):
    accession = catalog["released"]
    item = client.get(f"/studies/{accession}/files?limit=1").get_json()["items"][0]
    meta = client.get(f"/files/{accession}/{item['file_id']}").get_json()
    content = file_bytes(item["path"])
    assert meta["sha256"] == hashlib.sha256(content).hexdigest() and meta["stored"] is True
    whole = client.get(item["download"].replace(BASE, ""))
    assert whole.status_code == 200 and whole.data == content
    part = client.get(item["download"].replace(BASE, ""), headers={"Range": "bytes=10-19"})
    assert part.status_code == 206 and part.data == content[10:20]
    assert part.headers["Content-Range"] == f"bytes 10-19/{len(content)}"
    url = item["download"].replace(BASE, "")
    assert "filename*=UTF-8''" in whole.headers["Content-Disposition"]  # any file name, in any script
    everything = client.get(url, headers={"Range": f"bytes=-{len(content) + 100}"})  # a suffix past the start
    assert everything.status_code == 206 and everything.data == content
    stale = client.get(url, headers={"Range": "bytes=0-9", "If-Range": '"another-version"'})
    assert stale.status_code == 200 and stale.data == content  # If-Range: a changed file comes whole
    assert client.get(url, headers={"Range": "bytes=0-9", "If-Range": whole.headers["ETag"]}).status_code == 206
    assert client.get(url, headers={"If-None-Match": whole.headers["ETag"]}).status_code == 304
    error_shape(client.get(url, headers={"If-Match": '"another-version"'}), 412)
    outside = client.get(url, headers={"Range": f"bytes={len(content) + 5}-{len(content) + 9}"})
    assert (
        error_shape(outside, 416)["code"] == "range_not_satisfiable"
        and outside.headers["Content-Range"] == f"bytes */{len(content)}"
    )
    error_shape(client.get(f"/files/{accession}/nope"), 404)
    harvested = client.get("/studies/S-BIAD1492/files?limit=1").get_json()["items"][0]
    at_source = client.get(harvested["download"].replace(BASE, ""))  # the file where BioStudies serves it
    assert at_source.status_code == 302
    assert (
        at_source.headers["Location"] == f"https://ftp.ebi.ac.uk/biostudies/fire/S-BIAD/492/S-BIAD1492/Files/{harvested['path']}"
    )


def test_study_zip_and_manifest(client, catalog):
    accession = catalog["released"]
    response = client.get(f"/studies/{accession}/download")
    assert response.mimetype == "application/zip"
    archive = zipfile.ZipFile(io.BytesIO(response.data))
    assert sorted(archive.namelist()) == sorted(f"{accession}/{p}" for p in listed_paths())
    assert archive.read(f"{accession}/{listed_paths()[0]}") == file_bytes(listed_paths()[0])
    manifest = client.get(f"/studies/{accession}/manifest", headers={"Accept": "application/json"}).get_json()
    assert {m["path"] for m in manifest} == set(listed_paths()) and all(m["sha256"] for m in manifest)
    tsv = client.get(f"/studies/{accession}/manifest").get_data(as_text=True)
    assert tsv.startswith("url\tpath\tsize\tmd5\tsha256")


# ---------------------------------------------------------------------- deposits over HTTP


def test_deposit_lifecycle_over_http(client, catalog):
    error_shape(client.post("/deposits"), 401)
    auth = {"Authorization": f"Bearer {catalog['token']}"}
    created = client.post("/deposits", headers=auth)
    assert created.status_code == 201
    sub = created.get_json()["id"]
    error_shape(client.get(f"/deposits/{sub}", headers={"Authorization": f"Bearer {catalog['other']}"}), 404)
    for path in listed_paths():
        content = file_bytes(path)
        md5 = base64.b64encode(hashlib.md5(content).digest()).decode()
        assert client.put(f"/deposits/{sub}/files/{path}", data=content, headers={**auth, "Content-MD5": md5}).status_code == 201
    bad = client.put(f"/deposits/{sub}/files/extra.tif", data=b"abc", headers={**auth, "X-Checksum-SHA256": "0" * 64})
    assert error_shape(bad, 422)["errors"] or True
    assert (
        client.put(f"/deposits/{sub}/file-lists/files.tsv", data=(DATA / "files.tsv").read_bytes(), headers=auth).status_code
        == 201
    )
    error_shape(client.put(f"/deposits/{sub}/metadata?name=study.yaml", data=b"title: [unclosed", headers=auth), 422)
    assert (
        client.put(f"/deposits/{sub}/metadata?name=study.yaml", data=(DATA / "study.yaml").read_bytes(), headers=auth).status_code
        == 200
    )
    report = client.post(f"/deposits/{sub}/validate", headers=auth).get_json()
    assert report["valid"], report
    final = client.post(f"/deposits/{sub}/finalize", headers=auth)
    assert final.status_code == 201
    accession = final.get_json()["accession"]
    assert client.get(f"/studies/{accession}").status_code == 200
    mine = client.get("/me/studies", headers=auth).get_json()["items"]
    assert {catalog["embargoed"], accession} <= {s["accession"] for s in mine}


# ---------------------------------------------------------------------- site


def test_sitemap_stats_links_robots(client, catalog):
    released = client.get("/studies").get_json()["total"]
    sitemap = client.get("/sitemap.xml").get_data(as_text=True)
    assert sitemap.count("<url>") == released >= 4 and "<lastmod>" in sitemap and catalog["embargoed"] not in sitemap
    stats = client.get("/stats").get_json()
    assert stats["studies"] == released and stats["by_source"]["IDR"] == 1 and stats["by_file_format"]["tif"] > 0
    assert stats["growth"][-1]["cumulative"] == released
    links = client.get("/studies/EMPIAR-10934/links").get_json()
    assert any(link["target"] == "https://identifiers.org/emdb:EMD-12602" for link in links["outgoing"])
    assert b"released studies" in client.get("/", headers={"Accept": "text/html"}).data


def test_pages_for_crawlers_name_their_one_url_and_the_catalog(client):
    moved = client.get("/studies/S-BIAD1492/?x=1")
    assert moved.status_code == 308 and moved.headers["Location"].endswith("/studies/S-BIAD1492?x=1")
    error_shape(client.get("/no-such-page/"), 404)
    home = client.get("/", headers={"Accept": "text/html"}).get_data(as_text=True)
    catalog_jsonld = json.loads(re.search(r'<script type="application/ld\+json">(.*?)</script>', home, re.DOTALL).group(1))
    study = client.get("/studies/S-BIAD1492.jsonld").get_json()
    assert catalog_jsonld["@type"] == "DataCatalog" and catalog_jsonld["@id"] == study["includedInDataCatalog"]["@id"]
    for path in ("/", "/studies", "/stats", "/studies/S-BIAD1492/files"):
        page = client.get(path, headers={"Accept": "text/html"}).get_data(as_text=True)
        assert f'<link rel="canonical" href="{BASE}{path}">' in page and '<meta name="description" content="' in page, path


def test_search_refuses_queries_that_would_cost_too_much_and_reads_facet_names_in_any_case(client):
    for q in ("x" * 1000 + "*", " ".join(f"w{i}" for i in range(200))):
        assert error_shape(client.get("/search", query_string={"q": q}), 400)["code"] == "invalid_query"
    everything = client.get("/search").get_json()["total"]
    organism = next(iter(client.get("/search").get_json()["facets"]["organism"]))["value"]
    for key in ("filter[organism]", "filter[Organism]", "filter[organism][]"):
        assert client.get("/search", query_string={key: organism}).get_json()["total"] < everything, key
    error_shape(client.get("/search", query_string={"filter[organism][x]": organism}), 400)
    growth = client.get("/stats").get_json()["growth"]
    months = [g["month"] for g in growth]
    assert len(months) == len(set(months)) and growth[-1]["cumulative"] == everything

    def next_month(month: str) -> str:
        year, number = int(month[:4]), int(month[5:])
        return f"{year + number // 12:04d}-{number % 12 + 1:02d}"

    assert all(later == next_month(earlier) for earlier, later in zip(months, months[1:]))  # no month left out


def test_robots_txt_lets_crawlers_reach_every_study_but_not_endless_combinations(client):
    from protego import Protego

    robots = Protego.parse(client.get("/robots.txt").get_data(as_text=True))
    assert list(robots.sitemaps) == [f"{BASE}/sitemap.xml"]
    sitemap = client.get("/sitemap.xml").get_data(as_text=True)
    pages = re.findall(r"<loc>([^<]+)</loc>", sitemap)
    assert pages and all(robots.can_fetch(page, "Googlebot") for page in pages)
    for allowed in ("/", "/studies", "/studies/S-BIAD1492", "/studies/S-BIAD1492.jsonld", "/studies/S-BIAD1492/files"):
        assert robots.can_fetch(BASE + allowed, "Googlebot"), allowed
    for kept_out in (
        "/search?q=cell",
        "/sparql?query=ASK%7B%7D",
        "/studies/S-BIAD1492/files?sort=size",
        "/studies/S-BIAD1492/download?x=1",
        "/files/S-BIAD1492/abc/download?x=1",
        "/export.nq",
        "/deposit",
    ):
        assert not robots.can_fetch(BASE + kept_out, "Googlebot"), kept_out


# ---------------------------------------------------------------------- remote stores


def test_the_api_on_oxigraph_serve(tmp_path, oxigraph_pair):
    public, private = oxigraph_pair
    settings = make_settings(tmp_path, sparql_url=private.url, public_sparql_url=public.url, sparql_timeout=3.0)
    with open_services(settings) as services:
        assert Harvester(services.archive).run("idr", [str(TESTS / "data" / "idr" / "idr0038-study.txt")]).loaded
        app = create_app(settings, services=services)
        client = app.test_client()
        try:
            record = client.get("/studies/idr0038", headers={"Accept": "application/ld+json"})
            assert record.status_code == 200 and record.get_json()["identifier"]
            answer = client.get(
                "/sparql", query_string={"query": COUNT_STUDIES}, headers={"Accept": "application/sparql-results+json"}
            )
            assert answer.status_code == 200 and answer.get_json()["results"]["bindings"][0]["n"]["value"] == "1"
            assert "ETag" not in answer.headers  # a remote store cannot say when it changed: answers are not kept
            error_shape(client.get("/sparql", query_string={"query": "DROP ALL"}), 403)
            assert client.get("/search?q=kidney").get_json()["total"] == 1
            heavy = "SELECT (COUNT(*) AS ?n) WHERE { ?a ?b ?c . ?d ?e ?f . ?g ?h ?i . ?j ?k ?l }"  # last: the server stays busy
            body = error_shape(client.get("/sparql", query_string={"query": heavy}), 503)
            assert body["code"] == "query_timeout"
        finally:
            app.extensions["bia.sparql"].close()


def test_gunicorn_workers_serve_the_remote_mode(tmp_path, oxigraph_pair):
    """Several gunicorn worker processes on `oxigraph serve`: each answers records, search and SPARQL."""
    import os
    import subprocess
    import sys
    import urllib.request

    from tests.servers.seaweedfs_server import free_ports

    public, private = oxigraph_pair
    settings = make_settings(tmp_path, sparql_url=private.url, public_sparql_url=public.url)
    with open_services(settings) as services:
        assert Harvester(services.archive).run("idr", [str(TESTS / "data" / "idr" / "idr0038-study.txt")]).loaded
    (port,) = free_ports(1)
    env = {
        **os.environ,
        "BIA_DATA": str(settings.data_dir),
        "BIA_BASE_URL": BASE,
        "BIA_SPARQL_URL": private.url,
        "BIA_PUBLIC_SPARQL_URL": public.url,
    }
    server = subprocess.Popen(
        [str(Path(sys.executable).parent / "gunicorn"), "--workers", "3", "--bind", f"127.0.0.1:{port}", "api.app:create_app()"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        cwd=TESTS.parent,
        start_new_session=True,
    )
    try:
        deadline, pids = time.monotonic() + 60, set()
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2).read()
                break
            except OSError:
                assert server.poll() is None, server.stdout.read().decode()
                time.sleep(0.3)
        for _ in range(30):
            answer = urllib.request.urlopen(f"http://127.0.0.1:{port}/search?q=kidney", timeout=10)
            assert json.loads(answer.read())["total"] == 1
        query = urllib.parse.urlencode({"query": COUNT_STUDIES})
        csv = urllib.request.urlopen(
            urllib.request.Request(f"http://127.0.0.1:{port}/sparql?{query}", headers={"Accept": "text/csv"}), timeout=10
        )
        assert csv.read().decode().split()[1] == "1"
        ps = subprocess.run(["ps", "--ppid", str(server.pid), "-o", "pid="], capture_output=True, text=True)
        pids = {line.strip() for line in ps.stdout.splitlines() if line.strip()}
        assert len(pids) >= 3
    finally:
        os.killpg(server.pid, 9)  # the master and its workers (their own process group)
        server.wait(10)


def test_downloads_redirect_to_presigned_s3_urls(tmp_path, seaweedfs_s3):
    """With S3 storage a file download is a redirect to a presigned URL that really serves the bytes."""
    import urllib.request

    settings = make_settings(
        tmp_path,
        s3_endpoint=seaweedfs_s3.endpoint,
        s3_bucket=seaweedfs_s3.new_bucket("api"),
        s3_access_key=seaweedfs_s3.access_key,
        s3_secret_key=seaweedfs_s3.secret_key,
    )
    with open_services(settings) as services:
        owner = services.archive.registry.owner_of_token(services.archive.registry.create_token("jane"))
        accession = services.deposits.finalize(stage_sample(services.deposits, owner), owner)
        app = create_app(settings, services=services)
        try:
            client = app.test_client()
            item = client.get(f"/studies/{accession}/files?limit=1").get_json()["items"][0]
            response = client.get(item["download"].replace(BASE, ""))
            assert response.status_code == 302
            location = response.headers["Location"]
            assert "X-Amz-Signature=" in location
            assert urllib.request.urlopen(location, timeout=10).read() == file_bytes(item["path"])
            archive = zipfile.ZipFile(io.BytesIO(client.get(f"/studies/{accession}/download").data))
            assert len(archive.namelist()) == len(listed_paths())
        finally:
            app.extensions["bia.sparql"].close()


def test_public_dump_and_a_sitemap_index(client, catalog, monkeypatch):
    from rdflib import Dataset

    from api import routes_site

    import time

    store = catalog["services"].archive.public.graph
    for _ in range(40):  # background work (image headers of the demo's deposit) may change the graph meanwhile
        before = store.count()
        dump = client.get("/export.nq")
        if store.count() == before:
            break
        time.sleep(0.5)
    dataset = Dataset().parse(data=dump.get_data(as_text=True), format="nquads")
    graphs = {str(g.identifier) for g in dataset.graphs() if len(g)}
    assert f"{BASE}/studies/S-BIAD1492" in graphs and f"{BASE}/studies/{catalog['embargoed']}" not in graphs
    assert len(dump.get_data(as_text=True).strip().splitlines()) == before
    monkeypatch.setattr(routes_site, "SITEMAP_URLS", 2)
    index = client.get("/sitemap.xml").get_data(as_text=True)
    assert "<sitemapindex" in index and index.count("<sitemap>") >= 2
    page = client.get("/sitemap.xml?page=1").get_data(as_text=True)
    assert page.count("<url>") == 2
    assert client.get("/sitemap.xml?page=99").status_code == 404


def test_record_pages_cannot_be_scripted_by_their_data(tmp_path):
    """A title that tries to close the JSON-LD script element stays data."""
    import yaml

    settings = make_settings(tmp_path)
    with open_services(settings) as services:
        owner = services.archive.registry.owner_of_token(services.archive.registry.create_token("eve"))
        sub = stage_sample(services.deposits, owner)
        record = yaml.safe_load((DATA / "study.yaml").read_text())
        record["title"] = 'Cells </script><script>alert("x")</script> & more'
        services.deposits.attach_metadata(sub, owner, "study.yaml", yaml.safe_dump(record).encode())
        accession = services.deposits.finalize(sub, owner)
        app = create_app(settings, services=services)
        try:
            html = app.test_client().get(f"/studies/{accession}", headers={"Accept": "text/html"}).get_data(as_text=True)
            assert "<script>alert" not in html and "&lt;script&gt;alert" in html
            embedded = html.split('<script type="application/ld+json">', 1)[1].split("</script>", 1)[0]
            assert json.loads(embedded)["name"] == record["title"]
        finally:
            app.extensions["bia.sparql"].close()


def test_read_only_replicas_serve_beside_the_writer(tmp_path):
    """BIA_READ_ONLY: several processes can serve one embedded catalog while a writer keeps changing it."""
    settings = make_settings(tmp_path)
    with open_services(settings) as writer:
        harvester = Harvester(writer.archive)
        assert harvester.run("idr", [str(TESTS / "data" / "idr" / "idr0038-study.txt")]).loaded
        replica_settings = settings.with_(read_only=True)
        replicas = [open_services(replica_settings) for _ in range(2)]  # the graph store's writer lock is not taken
        apps = [create_app(replica_settings, services=s) for s in replicas]
        try:
            for app in apps:
                client = app.test_client()
                assert client.get("/studies/idr0038", headers={"Accept": "application/ld+json"}).status_code == 200
                assert client.get("/search?q=kidney").get_json()["total"] == 1
                answer = client.get("/sparql", query_string={"query": COUNT_STUDIES}, headers={"Accept": "text/csv"})
                assert answer.data.split()[1] == b"1"
                assert (
                    error_shape(client.post("/deposits", headers={"Authorization": "Bearer x"}), 503)["code"]
                    == "read_only_replica"
                )
            assert harvester.run("empiar", [str(TESTS / "data" / "empiar" / "10934.xml")]).loaded  # the writer goes on
            client = apps[0].test_client()
            assert client.get("/studies/EMPIAR-10934").status_code == 200  # replicas follow the new snapshot
            answer = client.get("/sparql", query_string={"query": COUNT_STUDIES}, headers={"Accept": "text/csv"})
            assert answer.data.split()[1] == b"2"
        finally:
            for app, services in zip(apps, replicas):
                app.extensions["bia.sparql"].close()
                services.close()


def test_records_are_cached_per_snapshot_with_etags(tmp_path):
    settings = make_settings(tmp_path)
    with open_services(settings) as services:
        harvester = Harvester(services.archive)
        source = tmp_path / "idr0038-study.txt"
        source.write_text((TESTS / "data" / "idr" / "idr0038-study.txt").read_text())
        assert harvester.run("idr", [str(source)]).loaded
        app = create_app(settings, services=services)
        try:
            client = app.test_client()
            first = client.get("/studies/idr0038", headers={"Accept": "application/ld+json"})
            etag = first.headers["ETag"]
            not_modified = client.get("/studies/idr0038", headers={"Accept": "application/ld+json", "If-None-Match": etag})
            assert not_modified.status_code == 304 and not_modified.headers["Cache-Control"].startswith("public")
            weakened = client.get("/studies/idr0038", headers={"Accept": "application/ld+json", "If-None-Match": f"W/{etag}"})
            assert weakened.status_code == 304  # proxies that weaken ETags still revalidate
            assert client.get("/studies/idr0038", headers={"Accept": "text/turtle", "If-None-Match": etag}).status_code == 200
            source.write_text(source.read_text().replace("Ex vivo live cell tracking", "Changed title of"))
            assert harvester.run("idr", [str(source)]).loaded
            second = client.get("/studies/idr0038", headers={"Accept": "application/ld+json", "If-None-Match": etag})
            assert second.status_code == 200 and second.headers["ETag"] != etag
            assert second.get_json()["name"].startswith("Changed title of")
        finally:
            app.extensions["bia.sparql"].close()


def test_a_federated_query_from_another_endpoint_reaches_this_one(catalog, tmp_path):
    """An integrator's own endpoint (``oxigraph serve``) joins its data with ours through ``SERVICE``; rdflib's
    SPARQLStore reads the same endpoint as a third client."""
    from rdflib.plugins.stores.sparqlstore import SPARQLStore
    from werkzeug.serving import make_server

    from tests.servers.oxigraph_server import start_oxigraph, stop_oxigraph
    from tests.servers.seaweedfs_server import free_ports

    (port,) = free_ports(1)
    server = make_server("127.0.0.1", port, catalog["app"], threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    theirs = start_oxigraph(tmp_path / "theirs")
    try:
        study = f"{BASE}/studies/idr0038"
        mine = f"<https://lab.example.org/notes/1> <http://schema.org/about> <{study}> .\n".encode()
        urllib.request.urlopen(
            urllib.request.Request(
                f"{theirs.url}/store?default", data=mine, headers={"Content-Type": "application/n-triples"}, method="POST"
            )
        ).read()
        query = (
            f"SELECT ?note ?title WHERE {{ ?note <http://schema.org/about> ?study . "
            f"SERVICE <http://127.0.0.1:{port}/sparql> {{ GRAPH ?study {{ ?study <http://purl.org/dc/terms/title> ?title }} }} }}"
        )
        request = urllib.request.Request(
            f"{theirs.url}/query",
            data=query.encode(),
            method="POST",
            headers={"Content-Type": "application/sparql-query", "Accept": "application/sparql-results+json"},
        )
        rows = json.loads(urllib.request.urlopen(request, timeout=60).read())["results"]["bindings"]
        assert [r["note"]["value"] for r in rows] == ["https://lab.example.org/notes/1"]
        assert rows[0]["title"]["value"] == catalog["client"].get("/studies/idr0038.jsonld").get_json()["name"]
        store = SPARQLStore(f"http://127.0.0.1:{port}/sparql")
        assert bool(store.query(f"ASK {{ GRAPH <{study}> {{ <{study}> ?p ?o }} }}"))
        titles = list(store.query(f"SELECT ?t WHERE {{ GRAPH <{study}> {{ <{study}> <http://purl.org/dc/terms/title> ?t }} }}"))
        assert len(titles) == 1
    finally:
        stop_oxigraph(theirs)
        server.shutdown()


def test_sparqlwrapper_as_a_client_over_real_http(catalog):
    """Another SPARQL client (SPARQLWrapper, which sends format=/output= parameters too) against a live server."""
    from SPARQLWrapper import CSV, JSON, TURTLE, XML, SPARQLWrapper
    from werkzeug.serving import make_server

    from tests.servers.seaweedfs_server import free_ports

    (port,) = free_ports(1)
    server = make_server("127.0.0.1", port, catalog["app"], threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        endpoint = SPARQLWrapper(f"http://127.0.0.1:{port}/sparql")
        endpoint.setQuery(COUNT_STUDIES)
        endpoint.setReturnFormat(JSON)
        assert int(endpoint.query().convert()["results"]["bindings"][0]["n"]["value"]) >= 4
        endpoint.setReturnFormat(XML)
        assert endpoint.query().convert().getElementsByTagName("result")
        endpoint.setReturnFormat(CSV)
        assert endpoint.query().convert().decode().startswith("n")
        endpoint.setMethod("POST")
        endpoint.setQuery(f"CONSTRUCT {{ ?s ?p ?o }} WHERE {{ GRAPH <{BASE}/studies/idr0038> {{ ?s ?p ?o }} }} LIMIT 10")
        endpoint.setReturnFormat(TURTLE)
        graph = Graph().parse(data=endpoint.query().convert(), format="turtle")
        assert len(graph) == 10
        endpoint.setReturnFormat(XML)
        assert len(endpoint.query().convert()) == 10  # RDF/XML parsed into an rdflib graph
        endpoint.setQuery("ASK { ?s ?p ?o }")
        endpoint.setReturnFormat(JSON)
        assert endpoint.query().convert()["boolean"] is True
    finally:
        server.shutdown()


def test_a_form_deposit_cut_off_by_an_outage_says_it_is_kept(tmp_path, monkeypatch):
    """The graph store stops answering during the form's finalize: the deposit is kept and completes by itself, so the
    page must say so (202), not show the form again with an error (the depositor would send it twice)."""
    from catalog.graph_store import GraphStoreUnavailable

    with open_services(make_settings(tmp_path)) as services:
        token = services.archive.registry.create_token("ada")
        app = create_app(services.archive.settings, services=services)
        try:

            def down(*args, **kwargs):
                raise GraphStoreUnavailable("the graph store is not answering")

            monkeypatch.setattr(services.archive.public.graph, "replace_graph_from", down)
            form = {
                "token": token,
                "title": "Cells from the form",
                "description": "Two images.",
                "author_name": "Ada",
                "organism": "Homo sapiens",
                "imaging_method": "confocal microscopy",
                "license": "CC0-1.0",
                "files": (io.BytesIO(b"image bytes"), "cell1.tif"),
            }
            page = app.test_client().post("/deposit", data=form, content_type="multipart/form-data")
            html = page.get_data(as_text=True)
            assert page.status_code == 202 and 'id="kept"' in html and "S-BIAD1" in html, html[-2000:]
            monkeypatch.undo()
            assert services.maintenance.recover() == ["S-BIAD1"]  # the outage over, it is stored
            assert services.archive.registry.study("S-BIAD1").state == "released"
        finally:
            app.extensions["bia.sparql"].close()
