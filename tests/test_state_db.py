"""The state database on both engines: the common dialect, rows, write serialization, and the registry's guarantees
(accessions minted once across processes, compare-and-set leases, tokens) on SQLite and on a real PostgreSQL."""

from __future__ import annotations

import multiprocessing
import socket
import time

import pytest

from catalog.registry import FINALIZING, Registry
from catalog.state_db import DatabaseUnavailable, PostgresStateDB, SqliteStateDB, to_postgres
from catalog.state_schema import ensure_schema
from catalog.errors import Unauthorized


def test_statements_are_written_once_for_both_engines():
    assert to_postgres("SELECT a FROM t WHERE b = ? AND c LIKE '%x'") == "SELECT a FROM t WHERE b = %s AND c LIKE '%%x'"


def test_rows_answer_by_position_and_by_name(state_db):
    with state_db.transaction(write=True) as db:
        db.execute("INSERT INTO meta VALUES (?, ?)", ("k", "v"))
    with state_db.transaction() as db:
        row = db.execute("SELECT name, value FROM meta WHERE name = ?", ("k",)).fetchone()
    assert (row[0], row["value"], dict(row), tuple(row)) == ("k", "v", {"name": "k", "value": "v"}, ("k", "v"))
    assert [tuple(r) for r in state_db.stream("SELECT name FROM meta WHERE name = ?", ("k",))] == [("k",)]


def test_a_failed_transaction_changes_nothing(state_db):
    with pytest.raises(RuntimeError):
        with state_db.transaction(write=True) as db:
            db.execute("INSERT INTO meta VALUES (?, ?)", ("gone", "1"))
            raise RuntimeError("boom")
    with state_db.transaction() as db:
        assert db.execute("SELECT count(*) FROM meta WHERE name = 'gone'").fetchone()[0] == 0


def test_registry_tokens_leases_and_counters(state_db):
    first, second = Registry(state_db), Registry(state_db)
    token = first.create_token("jane")
    assert second.owner_of_token(token) == "jane"
    second.revoke_tokens(owner="jane")
    with pytest.raises(Unauthorized):
        first.owner_of_token(token)
    assert first.try_lease("maintenance") and not second.try_lease("maintenance")
    first.drop_lease("maintenance")
    assert second.try_lease("maintenance")
    first.mark_followed("linker", 5)
    first.mark_followed("linker", 3)  # never moves back
    assert second.followed("linker") == 5
    sub = first.create_submission("jane")
    accession = first.begin_finalize(sub, "jane", "S-T", "2020-01-01", "A study")
    row = second.study(accession)
    assert row.state == FINALIZING and row.lease_owner == first.holder
    assert second.claim(accession) is None  # held by a live holder
    first.let_go(accession, count_attempt=False)
    assert second.claim(accession).lease_owner == second.holder
    assert first.claim(accession) is None  # compare-and-set: one taker
    first.close()
    second.close()


def _mint(url: str, count: int, queue) -> None:
    state = PostgresStateDB(url)
    registry = Registry(state)
    minted = []
    for _ in range(count):
        sub = registry.create_submission("jane")
        minted.append(registry.begin_finalize(sub, "jane", "S-BIAD", "2020-01-01", None))
    queue.put(minted)
    registry.close()
    state.close()


def test_processes_minting_at_once_never_share_an_accession(postgres_url):
    """Four processes (as on four API nodes) mint 25 accessions each against one PostgreSQL: 100 distinct ones."""
    state = PostgresStateDB(postgres_url)
    Registry(state).close()  # tables made once
    state.close()
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    workers = [context.Process(target=_mint, args=(postgres_url, 25, queue)) for _ in range(4)]
    for worker in workers:
        worker.start()
    minted = [accession for _ in workers for accession in queue.get(timeout=120)]
    for worker in workers:
        worker.join(timeout=30)
    assert len(minted) == 100 and len(set(minted)) == 100
    assert sorted(int(a.removeprefix("S-BIAD")) for a in minted) == list(range(1, 101))


def test_an_unreachable_database_is_reported_as_unavailable():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    db = PostgresStateDB(f"postgresql://bia@127.0.0.1:{port}/postgres")
    try:
        with pytest.raises(DatabaseUnavailable) as caught:
            db.ping()
        assert caught.value.status == 503
    finally:
        db.close()


def test_a_node_with_embedded_stores_is_refused_beside_another_on_one_database(tmp_path, postgres_url):
    """Graphs and files kept in one node's BIA_DATA cannot serve a site: a second node (another BIA_DATA) over the
    same database is refused with a message naming where the catalog keeps them, instead of writing studies apart."""
    from api.services import open_services
    from catalog.remembered import CatalogMismatch
    from tests.catalog_helpers import make_settings

    with open_services(make_settings(tmp_path / "one", database_url=postgres_url)):
        pass
    with pytest.raises(CatalogMismatch, match="BIA_DATA of .*one"):
        open_services(make_settings(tmp_path / "two", database_url=postgres_url))
    with open_services(make_settings(tmp_path / "one", database_url=postgres_url)):  # the node itself opens again
        pass


def test_a_database_outage_leaves_health_answering_and_requests_get_503(tmp_path):
    """The database stops under a serving node: liveness still answers (from the node's own index), readiness names
    the database, listings and searches are answered from the node's index as it was, and requests that need the
    database get 503 in the error shape, never a 500."""
    from api.app import create_app
    from api.services import open_services
    from tests.catalog_helpers import make_settings
    from tests.servers.postgres_server import start_postgres, stop_postgres

    server = start_postgres()  # a cluster of its own, to stop
    try:
        settings = make_settings(tmp_path, database_url=server.url)
        with open_services(settings) as services:
            app = create_app(settings, services=services)
            client = app.test_client()
            try:
                assert client.get("/studies").status_code == 200 and client.get("/ready").status_code == 200
                stop_postgres(server)
                assert client.get("/health").status_code == 200
                ready = client.get("/ready")
                assert ready.status_code == 503 and "database" in ready.get_json()["message"]
                time.sleep(0.6)  # past the search index's look at the database
                for path in ("/studies", "/search?q=x"):
                    assert client.get(path, headers={"Accept": "application/json"}).status_code == 200, path
                for answer in (
                    client.get("/stats", headers={"Accept": "application/json"}),
                    client.post("/deposits", headers={"Authorization": "Bearer bia_x"}),
                ):
                    assert answer.status_code == 503, answer.status_code
                    assert answer.get_json()["code"] == "database_unavailable"
            finally:
                app.extensions["bia.sparql"].close()
    finally:
        stop_postgres(server)


def test_an_embedded_database_keeps_its_wal_between_transactions_until_closed(tmp_path):
    """A transaction's connection closing is not the last one: no checkpoint and WAL rebuilt per transaction."""
    db = SqliteStateDB(tmp_path / "state.sqlite")
    ensure_schema(db)
    wal = tmp_path / "state.sqlite-wal"
    for n in range(3):
        with db.transaction(write=True) as conn:
            conn.execute("INSERT INTO counters VALUES (?, ?)", (f"c{n}", n))
        assert wal.exists() and wal.stat().st_size > 0
    with db.transaction() as conn:
        assert [row["value"] for row in conn.execute("SELECT value FROM counters WHERE name LIKE 'c%' ORDER BY name")] == [
            0,
            1,
            2,
        ]
    db.close()
    assert not wal.exists()  # the last connection closed: checkpointed and removed
    with db.transaction() as conn:  # a closed handle still answers, a connection per transaction
        assert conn.execute("SELECT count(*) FROM counters WHERE name LIKE 'c%'").fetchone()[0] == 3


def test_a_forked_child_uses_its_own_idle_connection_and_leaves_its_parent_s(tmp_path):
    import os

    db = SqliteStateDB(tmp_path / "state.sqlite")
    ensure_schema(db)
    with db.transaction(write=True) as conn:
        conn.execute("INSERT INTO counters VALUES ('parent', 1)")
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child reports through its exit status
        try:
            with db.transaction(write=True) as conn:
                conn.execute("INSERT INTO counters VALUES ('child', 2)")
            db.close()
            os._exit(0)
        except BaseException:
            os._exit(1)
    assert os.waitpid(pid, 0)[1] == 0
    with db.transaction(write=True) as conn:
        conn.execute("UPDATE counters SET value = value + 10 WHERE name = 'child'")
        assert conn.execute("SELECT value FROM counters WHERE name = 'child'").fetchone()[0] == 12
    db.close()
