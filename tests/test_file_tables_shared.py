"""File tables shared through the file store: a table published on one node is served by another (own folder, same
state database, same S3 bucket), never half, never stale; embedded catalogs keep serving the tables they made."""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import sqlite3
import time
from pathlib import Path

import pytest

from catalog.errors import NotFound
from catalog.file_index import FileIndex, Filter
from catalog.file_store import FILE_TABLES_PREFIX, FileStore
from catalog.file_store_local import LocalFileStore
from catalog.file_store_s3 import S3FileStore
from catalog.file_tables import TableUnavailable, file_sha256, object_key
from catalog.state_db import SqliteStateDB, StateDB
from catalog.state_schema import ensure_schema
from loaders.harvest import Harvester

HARVESTED = Path(__file__).parent / "data" / "harvest" / "biostudies"

N = 300


def rows(n: int = N, tag: str = "v1"):
    for i in range(n):
        yield {
            "path": f"plate{i % 3}/img{i:04d}.tif",
            "size": 100 + i,
            "format": "tif",
            "file_id": f"{i:06d}",
            "Plate": str(i % 3),
            "Compound": ["taxol", "DMSO"][i % 2],
            "Version": tag,
        }


@pytest.fixture
def bucket_store(request, seaweedfs_s3) -> S3FileStore:
    bucket = seaweedfs_s3.new_bucket(request.node.name)
    return S3FileStore(seaweedfs_s3.client(), bucket)


@pytest.fixture
def nodes(tmp_path: Path, state_db: StateDB, bucket_store: S3FileStore):
    """Two nodes' file indexes of the public view: folders of their own, one state database, one S3 bucket (each
    reads the pointers afresh at every call: see test_a_pointer_read_a_moment_ago_serves_its_version_whole)."""
    made = [FileIndex(tmp_path / f"node{i}" / "files", state_db, "public", bucket_store, pointer_seconds=0) for i in (1, 2)]
    yield made
    for index in made:
        index.close()


def local_tables(index: FileIndex, accession: str) -> list[Path]:
    return sorted(index.directory.glob(f"{accession}@*.sqlite"))


def table_objects(store: FileStore) -> list[str]:
    return [obj.key for obj in store.list(FILE_TABLES_PREFIX)]


def test_a_table_published_on_one_node_is_served_by_the_other(nodes, bucket_store):
    one, two = nodes
    assert one.replace_study("S-BIAD9", rows(), commit="c1") == N
    (published,) = local_tables(one, "S-BIAD9")
    digest = file_sha256(published)
    assert table_objects(bucket_store) == [object_key(digest)]
    assert bucket_store.stat(object_key(digest)).sha256 == digest

    # what the pointer answers needs no download
    assert two.has_study("S-BIAD9") and two.studies() == ["S-BIAD9"] and two.commit_of("S-BIAD9") == "c1"
    assert two.totals("S-BIAD9") == {"files": N, "bytes": sum(100 + i for i in range(N))}
    expected = {str(v) if v not in (None, "") else "(unknown)": n for v, n in one.facets("S-BIAD9", ["format"])["format"]}
    assert two.format_counts() == expected and sum(expected.values()) == N  # the catalog's statistics, too
    assert local_tables(two, "S-BIAD9") == []

    # rows, filters, facets, paging, filtered totals: from the fetched copy
    page = two.query("S-BIAD9", [Filter("Compound", "eq", "taxol")], sort=[("size", True)], limit=100)
    assert page.total == N // 2 and page.items[0]["size"] == 100 + N - 2 and page.next_cursor
    rest = two.query("S-BIAD9", [Filter("Compound", "eq", "taxol")], sort=[("size", True)], limit=100, cursor=page.next_cursor)
    assert [r["size"] for r in page.items + rest.items] == sorted((100 + i for i in range(0, N, 2)), reverse=True)[:150]
    assert dict(two.facets("S-BIAD9", ["Plate"])["Plate"]) == {0: 100, 1: 100, 2: 100}
    assert two.totals("S-BIAD9", [Filter("Plate", "eq", "1")]) == {"files": 100, "bytes": sum(100 + i for i in range(1, N, 3))}
    assert [p.name for p in local_tables(two, "S-BIAD9")] == [published.name]
    assert file_sha256(local_tables(two, "S-BIAD9")[0]) == digest


def test_a_new_version_published_on_one_node_is_what_the_other_serves(nodes, bucket_store):
    one, two = nodes
    one.replace_study("S-BIAD9", rows(tag="v1"))
    assert two.query("S-BIAD9", limit=1).items[0]["Version"] == "v1"
    (old,) = local_tables(two, "S-BIAD9")

    one.replace_study("S-BIAD9", rows(50, tag="v2"))
    assert two.totals("S-BIAD9")["files"] == 50
    page = two.query("S-BIAD9", limit=1000)
    assert page.total == 50 and {r["Version"] for r in page.items} == {"v2"}
    assert not old.exists() and len(local_tables(two, "S-BIAD9")) == 1
    # the first version's object went with its last pointer
    assert table_objects(bucket_store) == [object_key(file_sha256(local_tables(two, "S-BIAD9")[0]))]


def test_a_pointer_read_a_moment_ago_serves_its_version_whole(nodes, tmp_path, state_db, bucket_store):
    one, _ = nodes
    two = FileIndex(tmp_path / "node2" / "files", state_db, "public", bucket_store, pointer_seconds=0.5)
    one.replace_study("S-BIAD9", rows(tag="v1"))
    assert two.query("S-BIAD9", limit=1).items[0]["Version"] == "v1"
    one.replace_study("S-BIAD9", rows(50, tag="v2"))
    page = two.query("S-BIAD9", limit=1000)  # the pointer two read a moment ago: the first version, whole
    assert two.totals("S-BIAD9")["files"] == page.total == len(page.items) == N
    assert {r["Version"] for r in page.items} == {"v1"}
    time.sleep(0.6)
    assert two.totals("S-BIAD9")["files"] == two.query("S-BIAD9").total == 50
    two.close()


@pytest.mark.parametrize("damage", ["truncated", "altered"])
def test_a_damaged_object_is_refused_not_served(nodes, bucket_store, damage):
    one, two = nodes
    one.replace_study("S-BIAD9", rows(tag="v1"))
    assert two.query("S-BIAD9", limit=1).items[0]["Version"] == "v1"
    one.replace_study("S-BIAD9", rows(tag="v2"))
    key = table_objects(bucket_store)[0]
    good = b"".join(bucket_store.open_range(key))
    bad = good[: len(good) // 2] if damage == "truncated" else good[:-100] + bytes(100)
    bucket_store.client.put_object(bucket_store.bucket, key, io.BytesIO(bad), len(bad))

    with pytest.raises(TableUnavailable) as refused:
        two.query("S-BIAD9", limit=1)
    assert refused.value.status == 503 and "damaged" in refused.value.message
    # neither half of the new version nor the old one is served, and no download is left behind
    with pytest.raises(TableUnavailable):
        two.facets("S-BIAD9", ["Version"])
    assert [p.name for p in two.directory.iterdir() if "fetching" in p.name] == []
    assert all(file_sha256(p) != hashlib.sha256(bad).hexdigest() for p in local_tables(two, "S-BIAD9"))

    one.replace_study("S-BIAD9", rows(tag="v2"))  # publishing the version again repairs its object
    assert two.query("S-BIAD9", limit=1).items[0]["Version"] == "v2"


def test_a_table_deleted_on_one_node_is_gone_from_the_other(nodes, bucket_store):
    one, two = nodes
    one.replace_study("S-BIAD9", rows())
    one.replace_study("S-BIAD8", rows(10))
    assert two.query("S-BIAD9", limit=1).items and local_tables(two, "S-BIAD9")

    one.delete_study("S-BIAD9")
    assert not two.has_study("S-BIAD9") and two.studies() == ["S-BIAD8"] and two.commit_of("S-BIAD9") is None
    with pytest.raises(NotFound):
        two.query("S-BIAD9")
    with pytest.raises(NotFound):
        two.totals("S-BIAD9")
    assert local_tables(two, "S-BIAD9") == []
    assert len(table_objects(bucket_store)) == 1  # S-BIAD8's


def test_an_object_two_pointers_name_stays_until_the_last_goes(nodes, bucket_store):
    one, two = nodes
    one.replace_study("S-BIAD1", [])
    one.replace_study("S-BIAD2", [])  # the same (empty) table: one object
    assert len(table_objects(bucket_store)) == 1
    one.delete_study("S-BIAD1")
    assert two.query("S-BIAD2").total == 0
    one.delete_study("S-BIAD2")
    assert table_objects(bucket_store) == []


def test_objects_no_pointer_names_are_swept(nodes, bucket_store):
    one, two = nodes
    one.replace_study("S-BIAD9", rows())
    (kept,) = table_objects(bucket_store)
    orphan = object_key("0" * 64)  # a publish cut off between its upload and its pointer
    bucket_store.put(orphan, io.BytesIO(b"table"))
    assert two.tables.sweep_objects() == 1
    assert table_objects(bucket_store) == [kept] and two.query("S-BIAD9").total == N


def test_a_lost_local_folder_is_fetched_again(nodes):
    one, two = nodes
    one.replace_study("S-BIAD9", rows())
    assert two.query("S-BIAD9", [Filter("Plate", "eq", 2)]).total == 100
    shutil.rmtree(two.directory)
    assert two.query("S-BIAD9", [Filter("Plate", "eq", 2)]).total == 100
    assert len(local_tables(two, "S-BIAD9")) == 1


def test_a_pointer_to_an_object_the_store_lost_is_a_clear_503(nodes, bucket_store):
    one, two = nodes
    one.replace_study("S-BIAD9", rows())
    (key,) = table_objects(bucket_store)
    bucket_store.delete(key)
    with pytest.raises(TableUnavailable) as lost:
        two.query("S-BIAD9")
    assert lost.value.status == 503 and key in lost.value.message and "bia reindex" in lost.value.message
    assert two.totals("S-BIAD9")["files"] == N  # what the pointer knows is still answered
    assert one.query("S-BIAD9", limit=1).items  # the publisher still holds its copy


def test_recovery_on_another_node_builds_the_table_it_lacks(nodes):
    """A commit's table built (``.ready``) on one node only: a node recovering the commit finds no ready table of
    its own and no pointer of that commit, so it builds the table again (Archive._finish_commit)."""
    one, two = nodes
    staged = one.build_study("S-BIAD9", rows(), commit="c7")
    assert one.ready_table("S-BIAD9", "c7") is not None
    assert two.ready_table("S-BIAD9", "c7") is None and two.commit_of("S-BIAD9") != "c7"
    two.replace_study("S-BIAD9", rows(), commit="c7")
    assert one.commit_of("S-BIAD9") == "c7" and one.query("S-BIAD9").total == N
    staged.publish()  # the first node's late publish of the same commit changes nothing
    assert two.query("S-BIAD9").total == N and two.commit_of("S-BIAD9") == "c7"


# ---------------------------------------------------------------------- embedded catalogs


def test_an_embedded_catalog_points_at_its_own_folder(tmp_path):
    state_db = SqliteStateDB(tmp_path / "registry.sqlite")
    ensure_schema(state_db)
    store = LocalFileStore(tmp_path / "files")
    index = FileIndex(tmp_path / "index", state_db, "public", store)  # a pointer is read again when its table went
    index.replace_study("S-BIAD9", rows())
    assert table_objects(store) == []  # no copy: the pointer names the table in the folder
    with state_db.transaction() as conn:
        assert conn.execute("SELECT object_key, files FROM file_tables").fetchall()[0][:] == ("", N)
    other_process = FileIndex(tmp_path / "index", state_db, "public", store)
    assert other_process.query("S-BIAD9", [Filter("Compound", "eq", "DMSO")]).total == N // 2
    index.replace_study("S-BIAD9", rows(5))
    assert other_process.query("S-BIAD9").total == 5 and len(local_tables(index, "S-BIAD9")) == 1
    for table in local_tables(index, "S-BIAD9"):
        table.unlink()
    with pytest.raises(TableUnavailable):
        other_process.query("S-BIAD9")
    index.delete_study("S-BIAD9")
    with pytest.raises(NotFound):
        other_process.query("S-BIAD9")
    index.close()
    other_process.close()


def test_tables_made_before_pointers_are_adopted(tmp_path, state_db, bucket_store):
    folder = tmp_path / "index"
    legacy = FileIndex(tmp_path / "build")
    legacy.replace_study("S-BIAD9", rows())
    folder.mkdir()
    shutil.copy(local_tables(legacy, "S-BIAD9")[0], folder / "S-BIAD9.sqlite")  # the old layout
    shutil.copy(local_tables(legacy, "S-BIAD9")[0], folder / "S-BIAD7.sqlite")
    legacy.close()
    with state_db.transaction(write=True) as conn:  # S-BIAD7 got a table of the new kind meanwhile
        conn.execute(
            "INSERT INTO file_tables (view, accession, commit_id, object_key, digest, files, bytes)"
            " VALUES ('public', 'S-BIAD7', NULL, '', 'x', 0, 0)"
        )
    store = bucket_store if state_db.shared else LocalFileStore(tmp_path / "files")

    index = FileIndex(folder, state_db, "public", store)
    assert index.studies() == ["S-BIAD7", "S-BIAD9"] and index.totals("S-BIAD9")["files"] == N
    assert index.query("S-BIAD9", [Filter("Plate", "eq", 0)]).total == 100
    assert not (folder / "S-BIAD9.sqlite").exists() and not (folder / "S-BIAD7.sqlite").exists()
    assert index.commit_of("S-BIAD9") is None
    index.close()


def test_a_file_index_of_its_own_keeps_working(tmp_path):
    """Tools and benchmarks open a folder without a state database: its pointers live in the folder."""
    first = FileIndex(tmp_path / "files")
    first.replace_study("S-BIAD9", rows())
    second = FileIndex(tmp_path / "files")
    assert second.studies() == ["S-BIAD9"] and second.query("S-BIAD9").total == N
    first.close()
    second.close()
    assert sqlite3.connect(tmp_path / "files" / ".file-tables.sqlite").execute("SELECT count(*) FROM file_tables").fetchone() == (
        1,
    )


# ---------------------------------------------------------------------- two archives


def test_a_study_committed_on_one_node_is_served_with_its_table_by_the_other(
    tmp_path, make_catalog, postgres_url, oxigraph_pair, seaweedfs_s3
):
    accession = "S-BIAD1492"
    public, private = oxigraph_pair
    shared = dict(
        database_url=postgres_url,
        sparql_url=private.url,
        public_sparql_url=public.url,
        s3_endpoint=seaweedfs_s3.endpoint,
        s3_bucket=seaweedfs_s3.new_bucket("nodes"),
        s3_access_key=seaweedfs_s3.access_key,
        s3_secret_key=seaweedfs_s3.secret_key,
    )
    one, two = make_catalog(name="node1", **shared), make_catalog(name="node2", **shared)
    folder = tmp_path / accession
    folder.mkdir()
    for name in (f"{accession}.json", "bbc024_images.json", "bbc024_masks.json"):
        shutil.copy(HARVESTED / name, folder / name)
    assert Harvester(one.services.archive).run("pagetab", [str(folder / f"{accession}.json")]).loaded == [accession]
    listed = {
        row["path"]: row
        for name in ("bbc024_images.json", "bbc024_masks.json")
        for row in json.loads((HARVESTED / name).read_text())
    }

    client = two.app().test_client()
    answer = client.get(f"/studies/{accession}/files", query_string={"sort": "-size", "limit": 5, "facets": "format"})
    assert answer.status_code == 200, answer.get_json()
    body = answer.get_json()
    assert body["totals"]["files"] == len(listed) and len(body["items"]) == 5
    assert [row["size"] for row in body["items"]] == sorted((r["size"] for r in listed.values()), reverse=True)[:5]
    assert sum(f["count"] for f in body["facets"]["format"]) == len(listed)
    files = two.folder / "data" / "index" / "public" / "files"
    assert len(list(files.glob(f"{accession}@*.sqlite"))) == 1

    # recovery of that commit on the second node, which never built its table: built again from the graph
    archive = two.services.archive
    archive._finish_commit(archive.public, accession, "recovered-commit")
    assert one.services.archive.public.files.commit_of(accession) == "recovered-commit"
    assert one.services.archive.public.files.totals(accession)["files"] == len(listed)

    # a pointer to an object the store lost: a clear 503 in the error shape
    store = archive.file_store
    for obj in list(store.list(FILE_TABLES_PREFIX)):
        store.delete(obj.key)
    for table in files.glob(f"{accession}@*.sqlite"):
        table.unlink()
    lost = client.get(f"/studies/{accession}/files")
    assert lost.status_code == 503 and lost.get_json()["code"] == "file_table_unavailable"
