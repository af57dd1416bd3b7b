"""Answers to repeated public SPARQL GETs: kept per snapshot with an ETag, replayed without running the query,
dropped when a new snapshot is published; volatile queries, errors and POSTs are never kept."""

from __future__ import annotations

from pathlib import Path

import pytest

from api.sparql_cache import SparqlResultCache, etag_matches
from api.sparql_protocol import repeatable
from loaders.harvest import Harvester

SAMPLES = Path(__file__).parent / "data"
COUNT = "SELECT (COUNT(DISTINCT ?g) AS ?n) WHERE { GRAPH ?g { ?g a <https://w3id.org/rembi/Study> } }"
JSON = {"Accept": "application/sparql-results+json"}


@pytest.fixture
def served(make_catalog):
    """An app on a one-study catalog whose query runner counts the queries it really runs."""
    made = make_catalog(sparql_timeout=5.0)
    services = made.services
    harvester = Harvester(services.archive)
    assert harvester.run("idr", [str(SAMPLES / "idr" / "idr0038-study.txt")]).loaded
    services.follow()  # links built now: the server's background duties find nothing to change under the cache
    app = made.app()
    runner = app.extensions["bia.sparql"]
    ran: list[str] = []
    real_run = runner.run

    def counting_run(query, *args, **kwargs):
        ran.append(query)
        return real_run(query, *args, **kwargs)

    runner.run = counting_run
    return {"app": app, "client": app.test_client(), "ran": ran, "harvester": harvester, "services": services}


def count_of(response) -> int:
    assert response.status_code == 200, response.get_data(as_text=True)
    return int(response.get_json()["results"]["bindings"][0]["n"]["value"])


def test_a_repeated_get_is_answered_without_running_the_query(served):
    client, ran = served["client"], served["ran"]
    first = client.get("/sparql", query_string={"query": COUNT}, headers=JSON)
    second = client.get("/sparql", query_string={"query": COUNT}, headers=JSON)
    assert count_of(first) == count_of(second) == 1
    assert len(ran) == 1
    assert second.data == first.data and second.headers["ETag"] == first.headers["ETag"]
    assert second.headers["Cache-Control"] == "public, no-cache"
    assert second.headers["Access-Control-Allow-Origin"] == "*"  # the replay carries the endpoint's CORS headers
    csv = client.get("/sparql", query_string={"query": COUNT}, headers={"Accept": "text/csv"})
    assert csv.mimetype == "text/csv" and csv.headers["ETag"] != first.headers["ETag"] and len(ran) == 2
    assert served["app"].extensions["bia.sparql_cache"].stats()["hits"] == 1


def test_if_none_match_gets_304_from_the_cache_and_from_the_endpoint(served):
    client, ran = served["client"], served["ran"]
    etag = client.get("/sparql", query_string={"query": COUNT}, headers=JSON).headers["ETag"]
    again = client.get("/sparql", query_string={"query": COUNT}, headers={**JSON, "If-None-Match": etag})
    assert again.status_code == 304 and again.data == b"" and again.headers["ETag"] == etag
    assert again.headers["Access-Control-Allow-Origin"] == "*"
    served["app"].extensions["bia.sparql_cache"]._entries.clear()  # as after a restart: the endpoint checks itself
    revalidated = client.get("/sparql", query_string={"query": COUNT}, headers={**JSON, "If-None-Match": f'"x", {etag}'})
    assert revalidated.status_code == 304 and len(ran) == 1  # answered from the tag alone


def test_a_new_snapshot_drops_kept_answers(served, tmp_path):
    client, ran = served["client"], served["ran"]
    before = client.get("/sparql", query_string={"query": COUNT}, headers=JSON)
    assert count_of(before) == 1
    assert served["harvester"].run("empiar", [str(SAMPLES / "empiar" / "10934.xml")]).loaded
    after = client.get("/sparql", query_string={"query": COUNT}, headers={**JSON, "If-None-Match": before.headers["ETag"]})
    assert count_of(after) == 2 and after.headers["ETag"] != before.headers["ETag"] and len(ran) == 2
    served["services"].archive.delete_study("EMPIAR-10934")
    assert count_of(client.get("/sparql", query_string={"query": COUNT}, headers=JSON)) == 1  # a withdrawal too


@pytest.mark.parametrize(
    "query",
    [
        "SELECT (RAND() AS ?r) WHERE {}",
        "SELECT (NOW() AS ?t) WHERE {}",
        "SELECT (STRUUID() AS ?u) WHERE {}",
        "SELECT ?o WHERE { ?s ?p ?o BIND(BNODE() AS ?b) } LIMIT 1",
    ],
)
def test_volatile_queries_are_run_every_time(served, query):
    client, ran = served["client"], served["ran"]
    answers = [client.get("/sparql", query_string={"query": query}, headers=JSON) for _ in range(2)]
    assert all(a.status_code == 200 and "ETag" not in a.headers for a in answers)
    assert len(ran) == 2


def test_errors_and_posts_are_never_kept(served):
    client, ran = served["client"], served["ran"]
    broken = "SELECT ?x WHERE { ?x ?y }"
    assert [client.get("/sparql", query_string={"query": broken}, headers=JSON).status_code for _ in range(2)] == [400, 400]
    assert len(ran) == 2
    posted = [client.post("/sparql", data=COUNT, headers={**JSON, "Content-Type": "application/sparql-query"}) for _ in range(2)]
    assert [count_of(p) for p in posted] == [1, 1] and len(ran) == 4


def test_the_cache_stays_within_its_bound(served):
    app = served["app"]
    cache = SparqlResultCache(app.wsgi_app.app, served["services"].archive.public.reads.version, max_bytes=4000)
    app.wsgi_app = cache
    client = app.test_client()
    for n in range(40):
        assert (
            client.get(
                "/sparql", query_string={"query": f"SELECT ?s WHERE {{ ?s ?p ?o }} LIMIT {n + 1}"}, headers=JSON
            ).status_code
            == 200
        )
    stats = cache.stats()
    assert 0 < stats["bytes"] <= 4000 and stats["entries"] < 40
    oversized = "SELECT * WHERE { ?s ?p ?o }"  # over an eighth of the bound: served, not kept
    assert client.get("/sparql", query_string={"query": oversized}, headers=JSON).status_code == 200
    assert all(key[0].find("LIMIT") > 0 for key in cache._entries)


def test_which_queries_are_repeatable():
    assert repeatable(COUNT)
    assert repeatable('SELECT ?now ?rand WHERE { ?s <http://e/RAND(> ?now . ?s ?p "NOW()" } # UUID()')
    assert repeatable("PREFIX ex: <http://e/> SELECT ?x WHERE { ?x ex:rand ?y . ?x ex:uuid ?z }")
    assert not repeatable("SELECT (rand () AS ?r) WHERE {}")
    assert not repeatable("SELECT * WHERE { SERVICE <http://elsewhere/sparql> { ?s ?p ?o } }")


def test_etag_matching():
    assert etag_matches('W/"a-1"', 'W/"a-1"') and etag_matches('"a-1"', 'W/"a-1"') and etag_matches("*", 'W/"a-1"')
    assert etag_matches('"b", W/"a-1"', 'W/"a-1"')
    assert not etag_matches('W/"a-2"', 'W/"a-1"') and not etag_matches(None, 'W/"a-1"')
