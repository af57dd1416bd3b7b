"""The cost of sharing file tables through the file store (catalog.file_tables), against raw baselines in the same run.

    python -m benchmarks.file_tables_bench [--rows 100000] [--repeat 200]

Builds a screen-like table of ``--rows`` rows, then on a SeaweedFS S3 bucket and a PostgreSQL state database (both
started here, like the test fixtures) measures:

1. publishing: SHA-256 of the table, upload, pointer; against the build itself and a raw ``put`` of the same file;
2. a second node's first read: download + digest check, against the raw download;
3. a page of the table on a node that holds it: with the pointer lookup each call makes (PostgreSQL and SQLite
   state; pointers read afresh, and reused for ``POINTER_SECONDS``), against the same query on the open SQLite file.
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import sqlite3
import tempfile
import time
from pathlib import Path

from benchmarks.catalog_bench import timed, write_screen_list
from catalog.file_index import FileIndex
from catalog.file_store_s3 import S3FileStore
from catalog.file_tables import POINTER_SECONDS, file_sha256
from catalog.state_db import PostgresStateDB, SqliteStateDB, StateDB
from catalog.state_schema import ensure_schema
from tests.servers.postgres_server import fresh_schema_url, start_postgres, stop_postgres
from tests.servers.seaweedfs_server import start_seaweedfs, stop_seaweedfs

MiB = 1 << 20


def screen_rows(path: Path):
    with path.open(encoding="utf-8") as lines:
        names = next(lines).rstrip("\n").split("\t")
        for i, line in enumerate(lines):
            row = dict(zip(names, line.rstrip("\n").split("\t")))
            row["file_id"] = f"{i:08d}"
            yield row


def clock(fn) -> tuple[float, object]:
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def bench(tmp: Path, rows: int, repeat: int, store: S3FileStore, states: dict[str, StateDB]) -> None:
    listing = tmp / "screen.tsv"
    write_screen_list(listing, rows)
    postgres = states["postgresql"]

    one = FileIndex(tmp / "node1", postgres, "public", store)
    build, staged = clock(lambda: one.build_study("S-BIAD1", screen_rows(listing)))
    size = staged.path.stat().st_size
    hashing, digest = clock(lambda: file_sha256(staged.path))
    with staged.path.open("rb") as stream:
        raw_put, _ = clock(lambda: store.put("bench/raw.sqlite", stream, size=size))
    publish, _ = clock(staged.publish)
    print(f"table of {rows:,} rows: {size / MiB:,.1f} MiB, built in {build:.2f} s")
    print(
        f"publish: {publish:.2f} s (SHA-256 {hashing:.2f} s + upload + pointer) = {publish / build:.2f}x the build;"
        f" raw S3 put of the file {raw_put:.2f} s (publish / raw put {publish / raw_put:.2f}x)"
    )

    two = FileIndex(tmp / "node2", postgres, "public", store)
    fetch, _ = clock(lambda: two.query("S-BIAD1", limit=1))
    raw_get, _ = clock(lambda: hashlib.sha256(b"".join(store.open_range("bench/raw.sqlite"))).hexdigest())
    print(
        f"second node's first read (download + SHA-256 check + open): {fetch:.2f} s; raw download {raw_get:.2f} s"
        f" ({fetch / raw_get:.2f}x)"
    )

    (path,) = two.directory.glob("S-BIAD1@*.sqlite")
    raw = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    p50, p95 = timed(lambda: raw.execute("SELECT rowid, * FROM files ORDER BY rowid LIMIT 101").fetchall(), repeat)
    print(f"first page, raw SQLite query: p50 {p50:.2f} ms, p95 {p95:.2f} ms")
    for name, state in states.items():
        for seconds in (0.0, POINTER_SECONDS):
            index = FileIndex(tmp / "node2", state, "public", store, pointer_seconds=seconds)
            if name != "postgresql":
                index.tables.publish("S-BIAD1", path)  # the same table, pointed at from this state database
            q50, q95 = timed(lambda: index.query("S-BIAD1", limit=100), repeat)
            print(
                f"first page through FileIndex ({name} pointers, reused for {seconds:g} s): p50 {q50:.2f} ms,"
                f" p95 {q95:.2f} ms ({q50 / p50:.1f}x raw)"
            )
            index.close()
        l50, l95 = timed(lambda: two.tables.pointer("S-BIAD1", fresh=True), repeat)
        print(f"one pointer lookup in {name}: p50 {l50:.2f} ms, p95 {l95:.2f} ms (a file-table request makes 5)")
    one.close()
    two.close()
    assert digest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=200)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bia-ftables-bench-"))
    s3 = start_seaweedfs(tmp / "seaweedfs")
    pg = start_postgres()
    try:
        store = S3FileStore(s3.client(), s3.new_bucket("tables"))
        states: dict[str, StateDB] = {
            "postgresql": PostgresStateDB(fresh_schema_url(pg)),
            "sqlite": SqliteStateDB(tmp / "state.sqlite"),
        }
        for state in states.values():
            ensure_schema(state)
        bench(tmp, args.rows, args.repeat, store, states)
        for state in states.values():
            state.close()
    finally:
        stop_postgres(pg)
        stop_seaweedfs(s3)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
