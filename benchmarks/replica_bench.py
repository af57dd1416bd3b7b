"""The node's copy of the public graph (catalog.graph_replica): how long a new node takes to copy the public store,
and how far behind the store the copy follows.

    python -m benchmarks.replica_bench [--graphs 1000] [--triples-per-graph 200] [--changes 20]

1. ``oxigraph serve`` is filled with ``--graphs`` named graphs of ``--triples-per-graph`` triples (written through
   the change feed's recorder, over a SQLite state database);
2. first copy: a new replica copies every graph (one GSP GET per graph, one snapshot); the baseline, measured in the
   same run, is the raw floor: the whole dataset fetched as N-Quads in one GET and bulk-loaded into a fresh
   pyoxigraph store;
3. follow lag: with the replica following in its background thread (every second), ``--changes`` graphs are
   replaced one by one at random moments; for each, the time from the write's return until the replica's
   snapshot holds it.
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from pathlib import Path

import pyoxigraph as ox
import requests

from catalog.graph_changes import RecordedGraphStore, latest_change
from catalog.graph_replica import GraphReplica
from catalog.graph_store_remote import RemoteGraphStore
from catalog.state_db import SqliteStateDB
from catalog.state_schema import ensure_schema
from tests.servers.oxigraph_server import start_oxigraph, stop_oxigraph

GRAPH = "https://bench.example.org/studies/S-{:06d}"


def study(index: int, triples: int, version: int = 0) -> str:
    subject = f"<https://bench.example.org/studies/S-{index:06d}>"
    return "".join(
        f'{subject} <https://bench.example.org/p{i % 17}> "value {i} of {index}, version {version}" .\n' for i in range(triples)
    )


def fill(public: RecordedGraphStore, graphs: int, triples: int) -> float:
    started = time.perf_counter()
    for index in range(graphs):
        public.replace_graph(GRAPH.format(index), study(index, triples), count=False)
    return time.perf_counter() - started


def first_copy(folder: Path, db, remote: RemoteGraphStore) -> float:
    replica = GraphReplica(folder, db, remote)
    try:
        started = time.perf_counter()
        replica.follow_once()
        return time.perf_counter() - started
    finally:
        replica.close()


def raw_copy(folder: Path, url: str) -> float:
    """The floor: one GET of the whole dataset as N-Quads, one bulk load."""
    started = time.perf_counter()
    dump = folder / "dump.nq"
    with requests.get(f"{url}/store", headers={"Accept": "application/n-quads"}, stream=True, timeout=600) as answer:
        answer.raise_for_status()
        with dump.open("wb") as out:
            for chunk in answer.iter_content(1 << 20):
                out.write(chunk)
    store = ox.Store(str(folder / "raw"))
    store.bulk_load(path=str(dump), format=ox.RdfFormat.N_QUADS)
    store.flush()
    return time.perf_counter() - started


def follow_lag(
    folder: Path, db, public: RecordedGraphStore, remote: RemoteGraphStore, graphs: int, triples: int, changes: int
) -> list[float]:
    replica = GraphReplica(folder, db, remote).start()
    lags = []
    try:
        while not replica.status()["ready"]:
            time.sleep(0.05)
        for version in range(1, changes + 1):
            time.sleep(random.uniform(0.0, 1.5))
            index = random.randrange(graphs)
            public.replace_graph(GRAPH.format(index), study(index, triples, version), count=False)
            written, seq = time.perf_counter(), latest_change(db, "public")
            while replica.status()["applied"] < seq:
                time.sleep(0.01)
            lags.append(time.perf_counter() - written)
    finally:
        replica.close()
    return lags


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--graphs", type=int, default=1000)
    parser.add_argument("--triples-per-graph", type=int, default=200)
    parser.add_argument("--changes", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="replica-bench-") as tmp:
        folder = Path(tmp)
        server = start_oxigraph(folder / "oxigraph")
        db = SqliteStateDB(folder / "state.sqlite")
        ensure_schema(db)
        try:
            remote = RemoteGraphStore(server.url)
            public = RecordedGraphStore(remote, db, "public")
            total = args.graphs * args.triples_per_graph
            seconds = fill(public, args.graphs, args.triples_per_graph)
            print(f"filled oxigraph serve: {args.graphs} graphs, {total:,} triples in {seconds:.1f} s")
            copy = first_copy(folder / "replica" / "public", db, remote)
            raw = raw_copy(folder, server.url)
            print(f"first copy of a new node: {copy:.2f} s ({total / copy:,.0f} triples/s, {args.graphs / copy:,.0f} graphs/s)")
            print(f"raw floor (one N-Quads GET + bulk_load): {raw:.2f} s ({total / raw:,.0f} triples/s); ratio {copy / raw:.1f}x")
            lags = follow_lag(
                folder / "replica" / "public", db, public, remote, args.graphs, args.triples_per_graph, args.changes
            )
            print(
                f"follow lag over {len(lags)} changes: p50 {statistics.median(lags):.2f} s, max {max(lags):.2f} s (interval 1 s)"
            )
        finally:
            db.close()
            stop_oxigraph(server)


if __name__ == "__main__":
    main()
