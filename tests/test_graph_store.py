"""The graph store interface on both implementations: embedded pyoxigraph and a real `oxigraph serve`."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from catalog.graph_store import N_TRIPLES, GraphStoreError, GraphStoreUnavailable, NotAcceptable
from catalog.graph_store_embedded import EmbeddedGraphStore
from catalog.stores import open_graph_store

G1, G2 = "https://archive.example.org/studies/S-T1", "https://archive.example.org/studies/S-T2"


def nt(graph_no: int, n: int, tag: str = "v") -> str:
    return "".join(f'<https://x.org/s{graph_no}/{i}> <https://x.org/p> "{tag}{i}" .\n' for i in range(n))


@pytest.fixture(params=["embedded", "remote"])
def store(request, tmp_path):
    location = tmp_path / "graph" if request.param == "embedded" else request.getfixturevalue("oxigraph_server").url
    opened = open_graph_store(location)
    yield opened
    opened.close()


def test_replace_drop_and_list_graphs(store, tmp_path):
    assert store.graphs() == [] and store.count() == 0 and not store.has_graph(G1)
    assert store.replace_graph(G1, nt(1, 3)) == 3
    path = tmp_path / "g2.nt"
    path.write_text(nt(2, 5))
    assert store.replace_graph(G2, path) == 5  # a file: bulk loaded / streamed
    assert store.graphs() == [G1, G2] and store.count() == 8 and store.count(G2) == 5
    assert store.replace_graph(G1, nt(1, 2, tag="new")) == 2  # replaced, not merged
    values = sorted(b["o"]["value"] for b in store.select(f"SELECT ?o WHERE {{ GRAPH <{G1}> {{ ?s ?p ?o }} }}"))
    assert values == ["new0", "new1"]
    assert b"new1" in store.get_graph(G1) and store.get_graph(G1, "text/turtle").strip()
    store.drop_graph(G1)
    store.drop_graph(G1)  # dropping twice is fine
    assert store.graphs() == [G2] and not store.has_graph(G1)


def test_default_graph_is_the_union_of_named_graphs(store):
    store.replace_graph(G1, nt(1, 2))
    store.replace_graph(G2, nt(2, 2))
    assert len(store.select("SELECT * WHERE { ?s ?p ?o }")) == 4
    assert store.ask('ASK { ?s ?p "v1" }') and not store.ask('ASK { ?s ?p "nothing" }')
    body, media = store.query_raw("SELECT ?s WHERE { ?s ?p ?o }", "text/csv", default_graph_uris=[G2])
    assert media == "text/csv" and body.decode().count("https://x.org/s2/") == 2 and b"s1/" not in body


def test_query_results_in_every_protocol_format(store):
    store.replace_graph(G1, nt(1, 2))
    for media in ("application/sparql-results+json", "application/sparql-results+xml", "text/csv", "text/tab-separated-values"):
        body, returned = store.query_raw("SELECT * WHERE { ?s ?p ?o }", media)
        assert returned == media and b"v1" in body
    body, _ = store.query_raw("ASK { ?s ?p ?o }", "application/sparql-results+json")
    assert json.loads(body)["boolean"] is True
    for media in ("text/turtle", "application/n-triples", "application/ld+json", "application/rdf+xml"):
        body, returned = store.query_raw("CONSTRUCT { ?s ?p ?o } WHERE { ?s ?p ?o }", media)
        assert returned == media and b"x.org" in body
    assert b"v0" in store.query_raw("CONSTRUCT { ?s ?p ?o } WHERE { ?s ?p ?o }", N_TRIPLES)[0]


def test_errors_are_clear(store):
    with pytest.raises(GraphStoreError):
        store.select("SELEC * WHERE { ?s ?p ?o }")
    with pytest.raises(NotAcceptable):
        store.query_raw("SELECT * WHERE { ?s ?p ?o }", "image/png")
    store.replace_graph(G1, nt(1, 2))
    with pytest.raises(GraphStoreError):
        store.replace_graph(G1, "<https://x.org/a> <https://x.org/b> this is not RDF .\n")
    assert store.count(G1) == 2  # the old graph stands
    assert store.graphs() == [G1]  # no staging leftovers visible


def test_read_only_handle_follows_published_snapshots(tmp_path):
    writer = open_graph_store(tmp_path / "g")
    reader = open_graph_store(tmp_path / "g", read_only=True)
    assert reader.count() == 0
    writer.replace_graph(G1, nt(1, 4))
    assert reader.count() == 4 and reader.graphs() == [G1]
    with pytest.raises(GraphStoreError):
        reader.update(f"DROP GRAPH <{G1}>")
    writer.close()


def test_a_second_writer_is_refused_clearly(tmp_path):
    first = open_graph_store(tmp_path / "g")
    with pytest.raises(GraphStoreUnavailable, match="open for writing by another process"):
        open_graph_store(tmp_path / "g")
    first.close()


def test_the_writer_lock_names_its_holder_and_a_probe_takes_nothing(tmp_path):
    import os

    from catalog.graph_store_embedded import writer_lock_holder

    assert writer_lock_holder(tmp_path / "g") is None and not (tmp_path / "g").exists()  # nothing created
    first = open_graph_store(tmp_path / "g")
    assert writer_lock_holder(tmp_path / "g").startswith(f"process {os.getpid()} (")
    with pytest.raises(GraphStoreUnavailable, match=f"by another process, process {os.getpid()} "):
        open_graph_store(tmp_path / "g")
    first.close()
    assert writer_lock_holder(tmp_path / "g") is None
    open_graph_store(tmp_path / "g").close()  # the probe left the lock free


def test_remote_leftover_staging_graphs_are_invisible_and_dropped(oxigraph_server):
    from catalog.graph_store_remote import STAGING_PREFIX, RemoteGraphStore

    store = RemoteGraphStore(oxigraph_server.url)
    store.replace_graph(G1, nt(1, 2))
    stale = f"{STAGING_PREFIX}1000:dead"
    store.update(f'INSERT DATA {{ GRAPH <{stale}> {{ <https://x.org/a> <https://x.org/b> "c" }} }}')
    assert store.graphs() == [G1] and store.count() == 2
    assert store.drop_stale_staging() == [stale]


def test_remote_a_staging_graph_gone_before_its_move_never_empties_the_graph(oxigraph_server):
    """``MOVE SILENT`` of a missing graph empties its target on oxigraph: a staging graph removed before its move (a
    clean-up that took it for a leftover) must fail the replacement, not leave the study empty."""
    from catalog.graph_store_remote import STAGING_PREFIX, RemoteGraphStore

    store = RemoteGraphStore(oxigraph_server.url)
    store.replace_graph(G1, nt(1, 3))

    def cleaned_up():
        for row in store.select(f'SELECT ?g WHERE {{ GRAPH ?g {{ }} FILTER(STRSTARTS(STR(?g), "{STAGING_PREFIX}")) }}'):
            store.drop_graph(row["g"]["value"])

    with pytest.raises((GraphStoreError, GraphStoreUnavailable)):
        store.replace_graph(G1, nt(1, 5, tag="new"), before_commit=cleaned_up)
    assert store.count(G1) == 3


def test_remote_settle_completes_a_cut_off_move_once(oxigraph_server):
    """A tagged replacement whose move was cut off keeps its staging graph (kept from clean-up while its work is in
    flight); settling moves it, and settling again, or the late move itself, changes nothing."""
    from catalog.graph_store_remote import RemoteGraphStore

    store = RemoteGraphStore(oxigraph_server.url)
    store.replace_graph(G1, nt(1, 3))
    moves: list[str] = []

    def cut_off(statement):
        if statement.startswith("MOVE"):
            moves.append(statement)
            raise GraphStoreUnavailable("the connection was reset")
        return RemoteGraphStore.update(store, statement)

    store.update = cut_off  # type: ignore[method-assign]
    with pytest.raises(GraphStoreUnavailable):
        store.replace_graph(G1, nt(1, 5, tag="new"), tag="commit-2")
    del store.update
    assert store.count(G1) == 3 and store.drop_stale_staging(older_than=0, keep={"commit-2"}) == []
    store.settle(G1, "commit-2")
    assert store.count(G1) == 5
    store.settle(G1, "commit-2")
    with pytest.raises((GraphStoreError, GraphStoreUnavailable)):
        store.update(moves[0])  # the late move: its staging graph is gone, the graph untouched
    assert store.count(G1) == 5 and store.graphs() == [G1]


def test_reopening_keeps_the_snapshot_unless_the_live_store_moved_on(tmp_path):
    store = EmbeddedGraphStore(tmp_path / "g")
    store.replace_graph(G1, nt(1, 4))
    published = store.version()
    store.close()
    reopened = EmbeddedGraphStore(tmp_path / "g")
    assert reopened.version() == published  # nothing changed: the same snapshot, so ETags and caches stay valid
    reopened.drop_graph(G1)
    assert reopened.version() != published
    dropped = reopened.version()
    reopened.close()
    (tmp_path / "g" / "DIRTY").write_text("a write a crash cut off before its snapshot")
    after_crash = EmbeddedGraphStore(tmp_path / "g")
    assert after_crash.version() != dropped and not (tmp_path / "g" / "DIRTY").exists()
    after_crash.close()


def test_a_journal_left_after_its_snapshot_was_published_keeps_the_replacement(tmp_path):
    store = EmbeddedGraphStore(tmp_path / "g")
    store.replace_graph(G1, nt(1, 4, tag="old"))
    before = store.version()
    store.replace_graph(G1, nt(1, 7, tag="new"))
    store.close()
    # a crash between publishing the new snapshot and removing the journal leaves the journal behind
    (tmp_path / "g" / "journal.json").write_text(json.dumps({"graph": G1, "snapshot": before}))
    reopened = EmbeddedGraphStore(tmp_path / "g")
    assert reopened.count(G1) == 7 and not (tmp_path / "g" / "journal.json").exists()
    reopened.close()


_CHILD = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from catalog.graph_store_embedded import EmbeddedGraphStore
    store = EmbeddedGraphStore(Path(sys.argv[1]))
    print("loading", flush=True)
    store.replace_graph(sys.argv[2], Path(sys.argv[3]))
    print("done", flush=True)
    """
)


@pytest.mark.parametrize("seed", range(4))
def test_kill_during_replace_leaves_the_old_graph_or_the_new_one(tmp_path, seed):
    old_n, new_n = 1000, 200_000
    store = EmbeddedGraphStore(tmp_path / "g")
    store.replace_graph(G1, nt(1, old_n, tag="old"))
    store.replace_graph(G2, nt(2, 10))
    store.close()
    del store
    big = tmp_path / "big.nt"
    big.write_text(nt(1, new_n, tag="new"))
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD, str(tmp_path / "g"), G1, str(big)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).parent.parent,
    )
    assert child.stdout.readline().strip() == "loading"
    rng = random.Random(seed)
    try:
        child.wait(timeout=rng.uniform(0.0, 1.5))
    except subprocess.TimeoutExpired:
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
    reopened = EmbeddedGraphStore(tmp_path / "g")
    assert reopened.count(G1) in (old_n, new_n)
    tags = {b["o"]["value"][:3] for b in reopened.select(f"SELECT ?o WHERE {{ GRAPH <{G1}> {{ ?s ?p ?o }} }}")}
    assert tags in ({"old"}, {"new"})
    assert reopened.count(G2) == 10
    assert not (tmp_path / "g" / "journal.json").exists()
    reader = open_graph_store(tmp_path / "g", read_only=True)
    assert reader.count(G1) == reopened.count(G1)
    reopened.close()


def _produce(n: int, tag: str, fail_after: int | None = None):
    def produce(out):
        for i in range(n):
            if fail_after is not None and i == fail_after:
                raise RuntimeError("the source failed half-way")
            out.write(f'<https://x.org/s1/{i}> <https://x.org/p> "{tag}{i}" .\n')
        return n

    return produce


def test_a_replacement_failing_in_process_keeps_the_old_graph_its_tag_and_a_usable_store(tmp_path):
    store = EmbeddedGraphStore(tmp_path / "g")
    store.replace_graph_from(G1, _produce(50, "old"), tag="commit-1")
    store.replace_graph(G2, nt(2, 3))
    with pytest.raises(RuntimeError, match="half-way"):
        store.replace_graph_from(G1, _produce(5000, "new", fail_after=4000), tag="commit-2")
    assert store.count(G1) == 50 and store.count(G2) == 3
    assert store.committed_tag(G1) == "commit-1"

    def refuse() -> None:
        raise RuntimeError("the file table could not be built")

    with pytest.raises(RuntimeError, match="file table"):
        store.replace_graph_from(G1, _produce(70, "newer"), tag="commit-3", before_commit=refuse)
    assert store.count(G1) == 50 and store.committed_tag(G1) == "commit-1"
    store.replace_graph_from(G1, _produce(60, "newest"), tag="commit-4")
    assert store.count(G1) == 60 and store.committed_tag(G1) == "commit-4"
    assert [p.name for p in (tmp_path / "g").glob("live*") if p.is_dir()] == [(tmp_path / "g" / "LIVE").read_text()]
    store.close()
    reopened = EmbeddedGraphStore(tmp_path / "g")
    assert reopened.count(G1) == 60 and reopened.count(G2) == 3 and reopened.committed_tag(G1) == "commit-4"
    reopened.close()


def test_a_crash_before_the_commit_point_is_undone_at_open_and_an_interrupted_undo_resumes(tmp_path):
    import pyoxigraph as ox

    folder = tmp_path / "g"
    store = EmbeddedGraphStore(folder)
    store.replace_graph_from(G1, _produce(40, "old"), tag="commit-1")
    store.replace_graph(G2, nt(2, 3))
    before = store.version()
    store.close()
    # what a kill -9 half-way through a replacement leaves: the journal, a pending tag, the graph half-loaded...
    (folder / "journal.json").write_text(json.dumps({"graph": G1, "snapshot": before, "tag": "commit-2"}))
    store.close()
    (folder / "tags").joinpath(next(p.name for p in (folder / "tags").iterdir()) + ".pending").write_text("commit-2")
    live = ox.Store(str(folder / "live"))
    live.remove_graph(ox.NamedNode(G1))
    live.extend(
        [
            ox.Quad(ox.NamedNode(f"https://x.org/n{i}"), ox.NamedNode("https://x.org/p"), ox.Literal("new"), ox.NamedNode(G1))
            for i in range(9)
        ]
    )
    live.flush()
    del live
    # ... and an earlier undo that was itself killed while copying the snapshot
    (folder / "live-123").mkdir()
    (folder / "live-123" / "000001.sst").write_bytes(b"half a copy")
    reopened = EmbeddedGraphStore(folder)
    assert reopened.count(G1) == 40 and reopened.count(G2) == 3
    assert reopened.committed_tag(G1) == "commit-1" and reopened.version() == before
    assert not (folder / "journal.json").exists() and not list((folder / "tags").glob("*.pending"))
    assert sorted(p.name for p in folder.glob("live*") if p.is_dir()) == [(folder / "LIVE").read_text()]
    reopened.replace_graph(G2, nt(2, 4))  # the restored store takes writes
    reopened.close()
    again = EmbeddedGraphStore(folder)
    assert again.count(G1) == 40 and again.count(G2) == 4
    again.close()
