"""Public SPARQL over a remote public store runs on the node's own copy of the public graph, where the time limit
really stops a query: the change feed every write to the public store records, the follower that keeps the copy up
to date (new node, changes, withdrawals, changes made during the first copy), and a runaway query that is answered
``query_timeout`` while ``oxigraph serve`` is left idle (with the copy turned off, it is left running the query)."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pyoxigraph as ox
import pytest

from api.app import create_app
from api.services import open_services
from catalog.graph_changes import EVERYTHING, RecordedGraphStore, changes_since, latest_change
from catalog.graph_replica import GraphReplica
from catalog.graph_store_remote import RemoteGraphStore
from loaders.harvest import Harvester
from tests.catalog_helpers import make_settings

TESTS = Path(__file__).parent
IDR = TESTS / "data" / "idr"
G1, G2, G3 = "https://example.org/graphs/1", "https://example.org/graphs/2", "https://example.org/graphs/3"
JSON = "application/sparql-results+json"
RUNAWAY = "SELECT (COUNT(*) AS ?n) WHERE { ?a ?b ?c . ?d ?e ?f . ?g ?h ?i . ?j ?k ?l }"


def nt(*objects: str, subject: str = "https://example.org/s") -> str:
    return "".join(f'<{subject}> <https://example.org/p> "{o}" .\n' for o in objects)


def replica_graphs(replica: GraphReplica) -> dict[str, set[str]]:
    """What the copy's newest snapshot holds: each graph's literal objects."""
    snapshot = replica.snapshot()
    assert snapshot is not None, "the copy is not complete"
    store = ox.Store.read_only(snapshot)
    held: dict[str, set[str]] = {}
    for quad in store:
        held.setdefault(quad.graph_name.value, set()).add(quad.object.value)
    return held


# ---------------------------------------------------------------------- the feed and the follower


def test_the_copy_follows_every_write_to_the_public_store(tmp_path, state_db, oxigraph_server):
    remote = RemoteGraphStore(oxigraph_server.url)
    public = RecordedGraphStore(remote, state_db, "public")
    public.replace_graph(G1, nt("one"))
    public.replace_graph(G2, nt("two"))
    replica = GraphReplica(tmp_path / "replica" / "public", state_db, remote)
    try:
        assert replica.snapshot() is None and not replica.status()["ready"]  # queries go to the remote store
        assert replica.follow_once() == 2  # a new node copies everything
        assert replica_graphs(replica) == {G1: {"one"}, G2: {"two"}}
        assert replica.status() == {"ready": True, "applied": 2, "latest": 2, "lag_seconds": 0.0, "follows": True, "error": None}

        public.replace_graph(G1, nt("one, changed"))  # a changed study
        public.drop_graph(G2)  # a withdrawn one
        public.replace_graph_from(G3, lambda out: out.write(nt("three")))
        status = replica.status()
        assert status["applied"] == 2 and status["latest"] == 5 and status["lag_seconds"] > 0
        assert replica.follow_once() == 3
        assert replica_graphs(replica) == {G1: {"one, changed"}, G3: {"three"}}
        assert replica.follow_once() == 0 and replica.status()["lag_seconds"] == 0.0

        remote.replace_graph(G2, nt("written behind the feed's back"))
        public.update(f'INSERT DATA {{ GRAPH <{G3}> {{ <https://example.org/s> <https://example.org/p> "3b" }} }}')
        assert [c.graph for c in changes_since(state_db, "public", 5)] == [EVERYTHING]  # any graph: copy all again
        replica.follow_once()
        assert replica_graphs(replica) == {G1: {"one, changed"}, G2: {"written behind the feed's back"}, G3: {"three", "3b"}}
    finally:
        replica.close()


def test_staging_graphs_of_the_public_store_never_reach_the_copy(tmp_path, state_db, oxigraph_server):
    """An upload the public store holds in a staging graph before its commit (or one a crash left there) is not
    public: the copy public queries run on never holds it, whatever the server's union default graph shows."""
    from catalog.graph_store_remote import STAGING_PREFIX

    remote = RemoteGraphStore(oxigraph_server.url)
    public = RecordedGraphStore(remote, state_db, "public")
    public.replace_graph(G1, nt("one"))
    remote.replace_graph(f"{STAGING_PREFIX}1:abc", nt("half-loaded, never committed"))  # as a cut-off commit leaves it
    replica = GraphReplica(tmp_path / "replica" / "public", state_db, remote)
    try:
        replica.follow_once()
        assert replica_graphs(replica) == {G1: {"one"}}
    finally:
        replica.close()


def test_a_write_that_failed_is_recorded_too(tmp_path, state_db, oxigraph_server):
    """A remote server goes on with an update its client gave up on: a failed write may have landed."""
    public = RecordedGraphStore(RemoteGraphStore(oxigraph_server.url), state_db, "public")
    with pytest.raises(Exception):
        public.replace_graph(G1, "this is not N-Triples")
    assert [c.graph for c in changes_since(state_db, "public", 0)] == [G1]


def test_changes_made_during_the_first_copy_are_applied_after_it(tmp_path, state_db, oxigraph_server):
    remote = RemoteGraphStore(oxigraph_server.url)
    public = RecordedGraphStore(remote, state_db, "public")
    for graph, value in ((G1, "one"), (G2, "two")):
        public.replace_graph(graph, nt(value))

    class ChangesWhileCopied(RemoteGraphStore):
        """The source, where G1 changes (through the feed) just after the copy fetched it."""

        def save_graph(self, graph: str, target: Path, format: str = "application/n-triples") -> None:
            super().save_graph(graph, target, format)
            if graph == G1 and latest_change(state_db, "public") == 2:
                public.replace_graph(G1, nt("one, changed during the copy"))

    replica = GraphReplica(tmp_path / "replica", state_db, ChangesWhileCopied(oxigraph_server.url))
    try:
        replica.follow_once()
        assert replica_graphs(replica)[G1] == {"one"} and replica.status()["applied"] == 2
        replica.follow_once()
        assert replica_graphs(replica)[G1] == {"one, changed during the copy"}
    finally:
        replica.close()


def test_a_copy_made_from_another_catalog_is_copied_again(tmp_path, state_db, oxigraph_server):
    remote = RemoteGraphStore(oxigraph_server.url)
    RecordedGraphStore(remote, state_db, "public").replace_graph(G1, nt("one"))
    folder = tmp_path / "replica"
    replica = GraphReplica(folder, state_db, remote)
    try:
        replica.follow_once()
        replica.close()
        remote.drop_graph(G1)  # another catalog (another state database) on another server
        remote.replace_graph(G2, nt("two"))
        (folder / "applied.json").write_text(json.dumps({"catalog": "another", "seq": 99}))
        replica = GraphReplica(folder, state_db, remote)
        assert replica.snapshot() is None  # not this catalog's copy: queries go to the remote store until copied
        replica.follow_once()
        assert replica_graphs(replica) == {G2: {"two"}}
    finally:
        replica.close()


def test_one_process_of_a_node_follows(tmp_path, state_db, oxigraph_server):
    remote = RemoteGraphStore(oxigraph_server.url)
    RecordedGraphStore(remote, state_db, "public").replace_graph(G1, nt("one"))
    first = GraphReplica(tmp_path / "replica", state_db, remote)
    second = GraphReplica(tmp_path / "replica", state_db, remote)
    try:
        assert first.follow_once() == 1
        assert second.follow_once() is None  # the first follows; the second reads the same copy
        assert second.snapshot() == first.snapshot() and second.status()["ready"]
        first.close()
        assert second.follow_once() == 0 and second.status()["follows"]  # it took over
    finally:
        first.close()
        second.close()


# ---------------------------------------------------------------------- two nodes of a site


def wait_for(check, timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.1)


def titles(client) -> dict[str, str]:
    query = "PREFIX dc: <http://purl.org/dc/terms/> SELECT ?s ?t WHERE { ?s dc:title ?t }"
    answer = client.get("/sparql", query_string={"query": query}, headers={"Accept": JSON})
    assert answer.status_code == 200, answer.get_data(as_text=True)
    return {row["s"]["value"].rsplit("/", 1)[-1]: row["t"]["value"] for row in answer.get_json()["results"]["bindings"]}


def test_studies_committed_on_one_node_are_queried_on_another(tmp_path, postgres_url, oxigraph_pair, seaweedfs_s3, monkeypatch):
    public, private = oxigraph_pair
    shared = {
        "database_url": postgres_url,
        "sparql_url": private.url,
        "public_sparql_url": public.url,
        "s3_endpoint": seaweedfs_s3.endpoint,
        "s3_bucket": seaweedfs_s3.new_bucket("replica"),
        "s3_access_key": seaweedfs_s3.access_key,
        "s3_secret_key": seaweedfs_s3.secret_key,
    }
    with open_services(make_settings(tmp_path / "a", **shared)) as a:
        harvest = Harvester(a.archive)
        assert harvest.run("idr", [str(IDR / "idr0038-study.txt"), str(IDR / "idr0004-study.txt")]).loaded == [
            "idr0038",
            "idr0004",
        ]
        b_settings = make_settings(tmp_path / "b", **shared)
        with open_services(b_settings) as b:
            app = create_app(b_settings, services=b)
            runner = app.extensions["bia.sparql"]
            try:
                assert wait_for(lambda: runner.replica.status()["ready"])
                seen = titles(app.test_client())
                assert set(seen) >= {"idr0038", "idr0004"}
                assert runner._snapshot().startswith(str(tmp_path / "b" / "data" / "replica" / "public"))

                changed = tmp_path / "idr0038-study.txt"
                changed.write_text(
                    (IDR / "idr0038-study.txt")
                    .read_text()
                    .replace("Study Title\tEx vivo live cell tracking", "Study Title\tChanged: live cell tracking")
                )
                assert harvest.run("idr", [str(changed)]).loaded == ["idr0038"]
                assert wait_for(lambda: titles(app.test_client()).get("idr0038", "").startswith("Changed:"))
                a.archive.withdraw("idr0004")
                assert wait_for(lambda: "idr0004" not in titles(app.test_client()))
                assert runner.replica.status()["lag_seconds"] < 5
                ready = app.test_client().get("/ready").get_json()
                assert ready["checks"]["sparql_replica"]["status"] == "ok"
                from api import readiness

                monkeypatch.setattr(readiness, "REPLICA_MAX_LAG", -1.0)  # as if it had fallen far behind
                app.extensions.pop("bia.readiness", None)
                stale = app.test_client().get("/ready")
                assert stale.status_code == 503 and "sparql_replica" in stale.get_json()["message"]
            finally:
                runner.close()


# ---------------------------------------------------------------------- the point: a runaway query is stopped


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (``/proc/<pid>/stat``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def busy_after(pid: int, seconds: float = 1.0) -> float:
    """The share of a core ``pid`` used over the next ``seconds``."""
    before = cpu_seconds(pid)
    time.sleep(seconds)
    return (cpu_seconds(pid) - before) / seconds


def test_a_runaway_query_stops_and_leaves_the_graph_server_idle(tmp_path, oxigraph_pair):
    public, private = oxigraph_pair
    settings = make_settings(tmp_path, sparql_url=private.url, public_sparql_url=public.url, sparql_timeout=2.0)
    with open_services(settings) as services:
        assert Harvester(services.archive).run("idr", [str(IDR / "idr0038-study.txt")]).loaded
        assert services.archive.public.graph.count() > 100  # a cross product of four patterns runs for hours

        app = create_app(settings, services=services)
        try:
            assert wait_for(lambda: app.extensions["bia.sparql"].replica.status()["ready"])
            started = time.monotonic()
            answer = app.test_client().get("/sparql", query_string={"query": RUNAWAY}, headers={"Accept": JSON})
            assert answer.status_code == 503 and answer.get_json()["code"] == "query_timeout"
            assert time.monotonic() - started < 10
            assert busy_after(public.process.pid) < 0.1  # the graph server never saw it
            assert services.archive.public.graph.count() > 100  # and answers at once
        finally:
            app.extensions["bia.sparql"].close()

        off = create_app(settings.with_(sparql_replica="off"), services=services)
        try:  # what holds without the copy: the client is answered, the server goes on
            answer = off.test_client().get("/sparql", query_string={"query": RUNAWAY}, headers={"Accept": JSON})
            assert answer.status_code == 503 and answer.get_json()["code"] == "query_timeout"
            assert busy_after(public.process.pid, seconds=2.0) > 0.1  # (a core's share on a loaded machine)
        finally:
            off.extensions["bia.sparql"].close()


def test_an_update_of_one_graph_is_recorded_for_that_graph_only(tmp_path, state_db, oxigraph_server):
    """Image headers change a study's graph by a SPARQL Update naming it: the copy fetches that graph, not all."""
    remote = RemoteGraphStore(oxigraph_server.url)
    public = RecordedGraphStore(remote, state_db, "public")
    public.replace_graph(G1, nt("one"))
    public.replace_graph(G2, nt("two"))
    replica = GraphReplica(tmp_path / "replica" / "public", state_db, remote)
    try:
        replica.follow_once()
        seq = latest_change(state_db, "public")
        public.update(f'INSERT DATA {{ GRAPH <{G2}> {{ <https://example.org/s> <https://example.org/p> "2b" }} }}', graph=G2)
        assert [change.graph for change in changes_since(state_db, "public", seq)] == [G2]
        assert replica.follow_once() == 1
        assert replica_graphs(replica) == {G1: {"one"}, G2: {"two", "2b"}}
    finally:
        replica.close()
