"""Audit of folders a file list lists as one entry (commit ad6d2d0): the bugs it found, each fixed since.

Deposits are made through ``catalog.deposits`` as a depositor would (upload, file lists, metadata, validate,
finalize) and read back through the Flask test client, as in ``tests/test_listed_folders.py``."""

from __future__ import annotations

import hashlib
import io
import sqlite3
import zipfile

import pytest

import catalog.file_index as file_index
from catalog.deposits import _listed_clashes
from catalog.file_paths import clash_key
from tests.catalog_helpers import DATA

#: the fixed columns of a file table built before commit ad6d2d0 (no ``type``)
OLD_FIXED_COLUMNS = ("path", "size", "format", "file_id")


def _submission(services, uploads: dict[str, bytes], lists: dict[str, str]) -> tuple[str, str]:
    """An open submission of ``uploads`` (path → bytes) with the sample metadata and ``lists`` (name → text)."""
    registry, deposits = services.archive.registry, services.deposits
    owner = registry.owner_of_token(registry.create_token("jane"))
    sub = deposits.create(owner)
    for path, content in uploads.items():
        deposits.upload(sub, owner, path, io.BytesIO(content), size=len(content), md5=hashlib.md5(content).hexdigest())
    deposits.attach_metadata(sub, owner, "study.yaml", (DATA / "study.yaml").read_bytes())
    for name, text in lists.items():
        deposits.attach_file_list(sub, owner, name, io.BytesIO(text.encode()))
    return sub, owner


def _deposit(services, uploads: dict[str, bytes], listing: str) -> str:
    sub, owner = _submission(services, uploads, {"files.tsv": listing})
    return services.deposits.finalize(sub, owner)


def _as_built_before_folders(services, accession: str, rows: list[dict]) -> None:
    """Rebuild the study's public file table as the code before ad6d2d0 built it (no fixed ``type`` column, no
    layout)."""
    saved = file_index.FIXED_COLUMNS, file_index.TABLE_LAYOUT
    file_index.FIXED_COLUMNS, file_index.TABLE_LAYOUT = OLD_FIXED_COLUMNS, 1
    try:
        services.archive.public.files.replace_study(accession, rows)
    finally:
        file_index.FIXED_COLUMNS, file_index.TABLE_LAYOUT = saved


def test_the_bytes_below_a_deposited_folder_are_counted_once(make_catalog):
    made = make_catalog(name="audit-folder-totals")
    uploads = {"a/b/x.txt": b"x" * 10, "a/y.txt": b"y" * 5}
    accession = _deposit(made.services, uploads, "path\tKind\na/\tfolder\na/b/\tinner folder\na/y.txt\tnote\n")
    total = sum(len(content) for content in uploads.values())
    body = made.app().test_client().get(f"/studies/{accession}/files").get_json()
    assert body["totals"]["bytes"] == total  # 40: 15 (a) + 10 (a/b) + 15 (the files)


def test_a_folder_size_the_uploads_below_it_contradict_is_reported(make_catalog):
    services = make_catalog(name="audit-folder-size").services
    uploads = {"cells.ome.zarr/.zattrs": b"{}", "cells.ome.zarr/0/0": bytes(100)}
    sub, owner = _submission(services, uploads, {"files.tsv": "path\tsize\ncells.ome.zarr/\t999999\n"})
    report = services.deposits.validate(sub, owner)
    assert [(e.get("value"), e.get("field")) for e in report["errors"]] == [("cells.ome.zarr", "size")], report


def test_a_folder_and_a_file_of_one_path_in_two_file_lists_is_an_error(make_catalog):
    services = make_catalog(name="audit-folder-two-lists").services
    lists = {"one.tsv": "path\tKind\na/\tfolder\n", "two.tsv": "path\tKind\na/x.txt\tfile\na\tnot a folder\n"}
    sub, owner = _submission(services, {"a/x.txt": b"x"}, lists)
    report = services.deposits.validate(sub, owner)
    assert not report["valid"] and any(e.get("value") == "a" for e in report["errors"]), report


def test_a_file_list_column_named_type_is_kept(make_catalog):
    made = make_catalog(name="audit-folder-type-column")
    accession = _deposit(
        made.services, {"img.tif": b"i" * 8, "mask.tif": b"m" * 8}, "path\ttype\nimg.tif\timage\nmask.tif\tlabel\n"
    )
    csv = made.app().test_client().get(f"/studies/{accession}/files.csv").get_data(as_text=True)
    assert "image" in csv and "label" in csv, csv


def test_filter_on_type_over_a_table_built_before_folders_were_kept(make_catalog):
    made = make_catalog(name="audit-folder-old-filter")
    accession = _deposit(made.services, {"a/x.txt": b"x", "b.txt": b"b"}, "path\tKind\na/x.txt\tk\nb.txt\tk\n")
    rows = [{k: v for k, v in r.items() if k != "type"} for r in made.services.archive.public.files.iter_rows(accession)]
    _as_built_before_folders(made.services, accession, rows)
    client = made.app().test_client()
    before = client.get(f"/studies/{accession}/files?filter[type][eq]=directory")  # a clear 400 until it is rebuilt
    assert before.status_code == 400 and before.get_json()["code"] == "unknown_column"
    assert made.services.maintenance.run_once().tables == 1  # the background duties rebuild it in the new layout
    assert made.services.maintenance.run_once().tables == 0
    folders = client.get(f"/studies/{accession}/files?filter[type][eq]=directory")
    assert folders.status_code == 200 and folders.get_json()["items"] == [], folders.get_json()
    files = client.get(f"/studies/{accession}/files?filter[type]=file").get_json()
    assert sorted(item["path"] for item in files["items"]) == ["a/x.txt", "b.txt"]


def test_a_deposit_whose_old_table_has_a_type_column_of_its_own_still_downloads(make_catalog):
    made = make_catalog(name="audit-folder-old-type")
    accession = _deposit(made.services, {"a/x.txt": b"x", "b.txt": b"b"}, "path\tKind\na/x.txt\tk\nb.txt\tk\n")
    rows = [{**r, "type": "image"} for r in made.services.archive.public.files.iter_rows(accession)]
    _as_built_before_folders(made.services, accession, rows)
    client = made.app().test_client()
    response = client.get(f"/studies/{accession}/download")
    assert response.status_code == 200, response.get_data(as_text=True)
    assert sorted(zipfile.ZipFile(io.BytesIO(response.data)).namelist()) == [f"{accession}/a/x.txt", f"{accession}/b.txt"]
    # rebuilt in the new layout, the file list's own column is kept under another name
    assert made.services.archive.upgrade_file_tables() == 1
    rows = list(made.services.archive.public.files.iter_rows(accession))
    assert {(r["type"], r["type (file list)"]) for r in rows} == {("file", "image")}


def test_the_listed_clash_checks_stay_linear_in_the_listed_files():
    """Counted in SQLite virtual-machine steps (deterministic), over the tables ``Deposits._cross_check`` builds."""
    rows = 2000
    db = sqlite3.connect(":memory:")
    db.execute("ATTACH ':memory:' AS reg")
    db.execute(
        "CREATE TABLE reg.staged_files (submission_id TEXT, path TEXT, size INTEGER, md5 TEXT, sha256 TEXT,"
        " fold_key TEXT, PRIMARY KEY (submission_id, path))"
    )
    db.execute("CREATE INDEX reg.staged_clash ON staged_files(submission_id, fold_key)")
    db.execute(
        "CREATE TABLE listed (path TEXT PRIMARY KEY, file TEXT, line INTEGER, size INTEGER, md5 TEXT, fold TEXT, dir INTEGER)"
    )
    paths = [f"plate{i % 200:03d}/img{i:06d}.tif" for i in range(rows)]
    db.executemany(
        "INSERT INTO listed VALUES (?, ?, ?, ?, ?, ?, ?)",
        [(p, "files.tsv", i, 1, None, clash_key(p), 0) for i, p in enumerate(paths)],
    )
    db.executemany(
        "INSERT INTO reg.staged_files VALUES (?, ?, ?, ?, ?, ?)", [("sub", p, 1, None, None, clash_key(p)) for p in paths]
    )
    db.execute("CREATE INDEX listed_fold ON listed(fold)")
    steps = [0]

    def count() -> None:
        steps[0] += 100

    db.set_progress_handler(count, 100)
    assert _listed_clashes(db, "sub") == []
    assert steps[0] / rows < 1000, f"{steps[0] / rows:.0f} SQLite steps per listed file"


def test_a_table_is_rebuilt_only_in_place_of_the_one_it_was_read_from(make_catalog, tmp_path):
    """The background rebuild publishes by compare-and-set on the table it read: a version published meanwhile
    (a new commit of the study) is kept, and a study removed meanwhile stays removed."""
    made = make_catalog(name="audit-folder-cas")
    accession = _deposit(made.services, {"a.txt": b"a"}, "path\tKind\na.txt\tk\n")
    files = made.services.archive.public.files
    current = files.tables.pointer(accession, fresh=True)
    built = tmp_path / "other.sqlite"
    file_index._build(built, [{"path": "other.txt", "size": 1, "file_id": "x", "format": "txt", "type": "file"}])
    kept = files.tables.publish(accession, built, instead_of="0" * 64)
    assert kept.digest == current.digest and files.tables.pointer(accession, fresh=True).digest == current.digest
    files.delete_study(accession)
    with pytest.raises(file_index.NotFound):
        files.tables.publish(accession, built, instead_of=current.digest)
    assert files.tables.pointer(accession, fresh=True) is None
