"""Folders a file list lists as one entry.

Harvested: folders a harvested file list lists as one entry (``"type": "directory"``, as BioStudies lists Zarr stores and
folders of annotations) are kept: in the file table (``type`` ``directory``), in the graph (``rembi:isDirectory``)
and through a rebuild from the graph; their download and manifest URL is the folder at the source; no image job is
queued for them. Data: the synthetic ``S-BIADTEST`` study of bia-integrator's test data, whose annotation file list
holds a folder (``tests/data/harvest/biostudies/SOURCES.txt``), harvested as ``S-BIAD9001`` (BioStudies' file
server places studies by their accession's number).

Deposited: a folder listed as one entry (a path ending with ``/`` in TSV) stands for the uploads below it: they are
neither "unlisted" nor in clash with it, a listed folder with nothing uploaded below it is an error naming its line,
its size is left blank (the files below it are counted once, with theirs), its download is the file table of its
files, and the manifest lists those files, not the folder."""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import zipfile
from pathlib import Path

import pytest

from catalog.study_summary import study_files
from catalog.zarr_folders import image_file_keys
from loaders.harvest import Harvester
from loaders.image_headers.stored import ZARR_METADATA
from tests.catalog_helpers import BASE
from tests.catalog_helpers import DATA as DEPOSIT_DATA

HARVESTED = Path(__file__).parent / "data" / "harvest" / "biostudies"
FOLDER = "study_component1/ann01-05"
STUDY = "S-BIAD9001"


@pytest.fixture(scope="module")
def harvested(make_module_catalog, tmp_path_factory):
    made = make_module_catalog(name="folders")
    source = tmp_path_factory.mktemp(STUDY)
    names = ["S-BIADTEST.json", "file_list_annotations_1.json"]
    names += ["file_list_study_component_1.json", "file_list_study_component_2.json"]
    for name in names:
        shutil.copy(HARVESTED / name, source / name)
    record = json.loads((HARVESTED / "S-BIADTEST.json").read_text())
    (source / "S-BIADTEST.json").write_text(json.dumps({**record, "accno": STUDY}))
    harvester = Harvester(made.services.archive)
    summary = harvester.run("pagetab", [str(source / "S-BIADTEST.json"), str(HARVESTED / "S-BIAD1492.json")])
    assert summary.failed == [] and sorted(summary.loaded) == ["S-BIAD1492", STUDY], summary
    return made


def _rows(made, accession: str) -> dict[str, dict]:
    return {row["path"]: row for row in made.services.archive.public.files.iter_rows(accession)}


def test_a_listed_folder_is_a_row_of_type_directory_with_its_size_and_attributes(harvested):
    rows = _rows(harvested, STUDY)
    listed = json.loads((HARVESTED / "file_list_annotations_1.json").read_text())
    folder = next(entry for entry in listed if entry["type"] == "directory")
    assert folder["path"] == FOLDER
    row = rows[FOLDER]
    assert row["type"] == "directory" and row["size"] == folder["size"]
    for attribute in folder["attributes"]:
        assert row[attribute["name"]] == attribute["value"]
    assert {r["type"] for path, r in rows.items() if path != FOLDER} == {"file"}
    assert harvested.services.archive.public.files.totals(STUDY)["files"] == len(rows)


def test_the_graph_says_it_is_a_folder_and_a_rebuild_from_the_graph_keeps_it(harvested):
    study = f"{BASE}/studies/{STUDY}"
    graph = harvested.services.archive.public.graph
    found = graph.select(
        f"PREFIX rembi: <https://w3id.org/rembi/> SELECT ?path WHERE {{ GRAPH <{study}> {{ ?f rembi:isDirectory true ;"
        " rembi:path ?path } }"
    )
    assert [row["path"]["value"] for row in found] == [FOLDER]
    rebuilt = {f.path: f for f in study_files(graph, study)}
    assert rebuilt[FOLDER].directory is True and rebuilt[FOLDER].size == _rows(harvested, STUDY)[FOLDER]["size"]
    assert not any(f.directory for path, f in rebuilt.items() if path != FOLDER)
    assert rebuilt[FOLDER].table_row(study)["type"] == "directory"


def test_no_image_job_is_queued_for_a_folder(harvested):
    keys = list(image_file_keys(harvested.services.archive.public.files, STUDY))
    assert keys and f"studies/{STUDY}/{FOLDER}" not in keys
    assert all(not key.startswith(f"studies/{STUDY}/{FOLDER}") for key in keys)


def test_a_folder_downloads_and_is_listed_in_the_manifest_as_the_folder_at_its_source(harvested):
    client = harvested.app().test_client()
    table = client.get(f"/studies/{STUDY}/files?filter[type]=directory").get_json()
    assert [item["path"] for item in table["items"]] == [FOLDER]
    assert {f["value"]: f["count"] for f in table["facets"]["type"]} == {"directory": 1, "file": len(_rows(harvested, STUDY)) - 1}
    at_source = client.get(table["items"][0]["download"].replace(BASE, ""))
    assert at_source.status_code == 302 and at_source.headers["Location"].startswith("https://")
    assert at_source.headers["Location"].endswith(f"/Files/{FOLDER}/")  # a listing to recurse into
    manifest = client.get(f"/studies/{STUDY}/manifest", headers={"Accept": "application/json"}).get_json()
    entry = next(m for m in manifest if m["path"] == FOLDER)
    assert entry["type"] == "directory" and entry["url"] == at_source.headers["Location"]
    assert {m["type"] for m in manifest if m["path"] != FOLDER} == {"file"}
    assert all(not m["url"].endswith("/") for m in manifest if m["path"] != FOLDER)
    tsv = client.get(f"/studies/{STUDY}/manifest").get_data(as_text=True).splitlines()
    assert tsv[0] == "url\tpath\tsize\tmd5\tsha256\ttype"
    assert next(line for line in tsv if f"\t{FOLDER}\t" in line).endswith("\tdirectory")


def test_the_type_column_is_shown_and_faceted_by_default_only_where_folders_are_listed(harvested):
    client = harvested.app().test_client()
    with_folders = client.get(f"/studies/{STUDY}/files", headers={"Accept": "text/html"}).get_data(as_text=True)
    assert ">type</a></th>" in with_folders and "<td>directory</td>" in with_folders
    files_only = client.get("/studies/S-BIAD1492/files", headers={"Accept": "text/html"}).get_data(as_text=True)
    assert ">type</a></th>" not in files_only
    assert "type" not in client.get("/studies/S-BIAD1492/files").get_json()["facets"]
    asked = client.get("/studies/S-BIAD1492/files?columns=path,type", headers={"Accept": "text/html"})
    assert ">type</a></th>" in asked.get_data(as_text=True)  # still there when asked for
    csv_header = client.get("/studies/S-BIAD1492/files.csv").get_data(as_text=True).splitlines()[0]
    assert csv_header.startswith("path,size,format,file_id,type")  # exports hold every column


# ---------------------------------------------------------------------- deposits

UPLOADS = {
    "cells.ome.zarr/.zattrs": b'{"multiscales": []}',
    "cells.ome.zarr/0/.zarray": b"{}",
    "cells.ome.zarr/0/0.0": bytes(100),
    "notes/a.txt": b"a note",
}


def _upload_all(deposits, sub: str, owner: str) -> None:
    for path, content in UPLOADS.items():
        deposits.upload(sub, owner, path, io.BytesIO(content), size=len(content), md5=hashlib.md5(content).hexdigest())


def _listing(deposits, sub: str, owner: str, text: str) -> None:
    deposits.attach_file_list(sub, owner, "files.tsv", io.BytesIO(text.encode()))


def test_a_deposited_folder_stands_for_the_uploads_below_it(make_catalog):
    made = make_catalog(name="deposited-folders")
    services = made.services
    registry, deposits = services.archive.registry, services.deposits
    owner = registry.owner_of_token(registry.create_token("jane"))
    sub = deposits.create(owner)
    _upload_all(deposits, sub, owner)
    deposits.attach_metadata(sub, owner, "study.yaml", (DEPOSIT_DATA / "study.yaml").read_bytes())
    _listing(deposits, sub, owner, "path\tKind\ncells.ome.zarr/\tzarr store\nnotes/a.txt\tnote\nempty/\tnothing here\n")
    report = deposits.validate(sub, owner)
    assert [(e["line"], e["value"], e["message"]) for e in report["errors"]] == [
        (4, "empty", "listed in a file list but not uploaded")
    ], report["errors"]
    assert report["files"]["unlisted"] == 0 and not [w for w in report["warnings"] if w.get("field") == "path"]

    _listing(deposits, sub, owner, "path\tKind\ncells.ome.zarr/\tzarr store\nnotes/a.txt\tnote\n")
    assert deposits.validate(sub, owner)["valid"]
    accession = deposits.finalize(sub, owner)
    rows = {row["path"]: row for row in services.archive.public.files.iter_rows(accession)}
    folder = rows.pop("cells.ome.zarr")
    assert folder["type"] == "directory" and folder.get("size") is None and folder["Kind"] == "zarr store"
    totals = services.archive.public.files.totals(accession)
    assert totals["bytes"] == sum(len(c) for c in UPLOADS.values())  # the files below it are counted once
    assert sorted(rows) == sorted(UPLOADS) and {r["type"] for r in rows.values()} == {"file"}
    keys = list(image_file_keys(services.archive.public.files, accession))
    assert f"studies/{accession}/cells.ome.zarr/.zattrs" in keys and f"studies/{accession}/cells.ome.zarr" not in keys

    client = made.app().test_client()
    download = client.get(f"/files/{accession}/{folder['file_id']}/download")
    assert download.status_code == 303
    inside = client.get(download.headers["Location"].replace(BASE, "")).get_json()
    assert sorted(item["path"] for item in inside["items"]) == sorted(p for p in UPLOADS if p.startswith("cells.ome.zarr/"))
    manifest = client.get(f"/studies/{accession}/manifest", headers={"Accept": "application/json"}).get_json()
    assert sorted(m["path"] for m in manifest) == sorted(UPLOADS) and {m["type"] for m in manifest} == {"file"}
    # the archive holds the study's files though its first row (by path) is the folder, which has no bytes
    zipped = zipfile.ZipFile(io.BytesIO(client.get(f"/studies/{accession}/download").data))
    assert sorted(zipped.namelist()) == sorted(f"{accession}/{p}" for p in UPLOADS)


def test_a_listed_folder_is_not_a_file_where_a_folder_is_needed_but_a_listed_file_still_is(make_catalog):
    services = make_catalog(name="folder-clash").services
    registry, deposits = services.archive.registry, services.deposits
    owner = registry.owner_of_token(registry.create_token("jane"))
    sub = deposits.create(owner)
    _upload_all(deposits, sub, owner)
    _listing(deposits, sub, owner, "path\tKind\ncells.ome.zarr/\tzarr store\nnotes\tnot a folder\n")
    messages = [(e.get("value"), e["message"]) for e in deposits.validate(sub, owner)["errors"]]
    assert not any(value == "cells.ome.zarr" for value, _ in messages), messages
    assert any(value == "notes" and "is a file where a folder is needed" in message for value, message in messages), messages
    # a folder listed where a file was uploaded would hide that file from the study's table
    _listing(deposits, sub, owner, "path\tKind\ncells.ome.zarr/\tzarr store\nnotes/a.txt/\ta folder?\n")
    errors = [e for e in deposits.validate(sub, owner)["errors"] if e["field"] == "path"]
    assert [(e["line"], e["value"]) for e in errors] == [(3, "notes/a.txt")], errors
    assert "is listed as a folder, but it was uploaded as a file" in errors[0]["message"]


# ---------------------------------------------------------------------- a harvested Zarr store, read at its source

IMAGES = Path(__file__).parent / "data" / "images" / "ome-zarr"
#: real OME-Zarr layouts (tests/data/images/SOURCES.txt): a bioformats2raw plate of 8 fields, 2 bioformats2raw series
STORES = {"plate/bia_hcs.ome.zarr": IMAGES / "bia_hcs.ome.zarr", "series/fake-series-2.zarr": IMAGES / "fake-series-2.zarr"}
ZARR_STUDY = "S-BIAD9002"


@pytest.fixture(scope="module")
def zarr_site(make_module_catalog, tmp_path_factory):
    """``ZARR_STUDY`` harvested with a file list that lists each of :data:`STORES` as one folder (as BioStudies
    lists them), the stores served by a source archive's file server, the header reads queued as ``bia harvest
    --headers`` queues them and done."""
    from api.cli import _queue_headers
    from loaders.image_headers.job import KIND as HEADERS
    from loaders.previews.job import KIND as PREVIEWS
    from tests.catalog_helpers import run_image_jobs
    from tests.servers.range_server import RangeServer

    source = RangeServer().start()
    files = f"/fire/S-BIAD/002/{ZARR_STUDY}/Files"
    for folder, local in STORES.items():
        for path in local.rglob("*"):
            if path.is_file():
                source.add(f"{files}/{folder}/{path.relative_to(local).as_posix()}", path)
    sources = (("biostudies", f"{source.url}/fire/{{relpath}}/Files/"),)
    made = make_module_catalog(name="zarr-folders", header_sources=sources, header_workers=1, background="off")
    record = tmp_path_factory.mktemp("zarr-record")
    study = json.loads((HARVESTED / "S-BIADTEST.json").read_text())
    (record / "S-BIADTEST.json").write_text(json.dumps({**study, "accno": ZARR_STUDY}))
    listed = [{"path": folder, "size": 1000, "type": "directory", "attributes": []} for folder in STORES]
    for name in ("file_list_annotations_1.json", "file_list_study_component_2.json"):
        (record / name).write_text("[]")
    (record / "file_list_study_component_1.json").write_text(json.dumps(listed))
    summary = Harvester(made.services.archive).run("pagetab", [str(record / "S-BIADTEST.json")])
    assert summary.loaded == [ZARR_STUDY], summary.failed
    made.services.follow()
    queued = _queue_headers(made.services, [ZARR_STUDY])
    run_image_jobs(made.services, HEADERS)
    for_headers = list(source.requests)
    source.requests.clear()
    run_image_jobs(made.services, PREVIEWS)
    for_previews = list(source.requests)
    yield {
        "catalog": made,
        "source": source,
        "queued": queued,
        "files": files,
        "for_headers": for_headers,
        "for_previews": for_previews,
    }
    source.stop()


def test_a_harvested_zarr_folder_is_read_at_its_source_as_the_same_store_read_here(zarr_site):
    from catalog.jobs import JobQueue
    from loaders.image_headers import read_headers
    from loaders.image_headers.job import KIND as HEADERS
    from loaders.image_headers.job import readers_version
    from loaders.image_headers.stored import is_zarr_metadata

    made = zarr_site["catalog"]
    assert (zarr_site["queued"].jobs, zarr_site["queued"].previews, zarr_site["queued"].ome_zarr) == (2, 2, 0)
    queue = JobQueue.for_settings(made.services.archive.state, made.settings)
    try:
        for folder, local in STORES.items():
            done = queue.job(HEADERS, ZARR_STUDY, f"studies/{ZARR_STUDY}/{folder}", readers_version())
            assert done is not None and done.state == "done" and done.result["status"] == "ok", done and done.result
            here = json.loads(json.dumps(read_headers(local).to_dict()))  # as the job stores it
            ignored = ("source", "bytes_read", "reads")
            assert {k: v for k, v in done.result.items() if k not in ignored} == {
                k: v for k, v in here.items() if k not in ignored
            }, folder
    finally:
        queue.close()
    asked = [path for path, _ in zarr_site["for_headers"]]
    assert asked and all(is_zarr_metadata(path.rsplit(".zarr/", 1)[1]) for path in asked), asked  # never a chunk
    rows = _rows(made, ZARR_STUDY)
    plate = rows["plate/bia_hcs.ome.zarr"]
    assert plate["type"] == "directory" and plate["image.status"] == "ok" and plate["image.series"] == 8, plate
    assert rows["series/fake-series-2.zarr"]["image.size_x"] == 512


def test_what_a_store_at_the_source_names_outside_it_is_never_asked_for_and_requests_are_capped(zarr_site):
    from loaders.image_headers.read import read_keys
    from loaders.image_headers.remote import HttpKeys, read_zarr_url_in_worker

    source, files = zarr_site["source"], zarr_site["files"]
    evil = b'{"multiscales": [{"version": "0.4", "axes": [{"name": "y"}, {"name": "x"}], "datasets": [{"path": "../../x"}]}]}'
    source.add(f"{files}/evil.zarr/.zattrs", evil)
    source.add(f"{files}/evil.zarr/.zgroup", b'{"zarr_format": 2}')
    source.requests.clear()
    result = read_keys(HttpKeys(f"{source.url}{files}/evil.zarr/", "evil.zarr", timeout=2.0), "evil.zarr")
    assert result.status == "unreadable"
    assert all(path.startswith(f"{files}/evil.zarr/") and ".." not in path for path, _ in source.requests)
    nothing = read_zarr_url_in_worker(f"{source.url}{files}/nothing.zarr/", "nothing.zarr", 1 << 20, 2.0)["headers"]
    assert nothing["status"] == "unreadable" and nothing["reason"].startswith("no Zarr store there"), nothing
    capped = HttpKeys(f"{source.url}{files}/plate/bia_hcs.ome.zarr/", "plate", timeout=2.0, max_objects=5)
    result = read_keys(capped, "plate")
    assert result.status == "unreadable" and "more than 5 requests" in (result.reason or ""), result.reason
    assert capped.asked == 5 and capped.requests == 5


def test_a_harvested_zarr_folder_is_drawn_from_its_source_as_the_same_store_is_drawn_here(zarr_site):
    """The previews of each image of a store at the source are the PNGs the renderer draws from the same store held
    here; only the chunks of the level drawn are fetched, each once per image."""
    import base64

    from catalog.jobs import JobQueue
    from loaders.previews.job import KIND as PREVIEWS
    from loaders.previews.job import renderer_version
    from loaders.previews.render import previews_of

    made = zarr_site["catalog"]
    file_store = made.services.archive.file_store
    queue = JobQueue.for_settings(made.services.archive.state, made.settings)
    try:
        for folder, local in STORES.items():
            done = queue.job(PREVIEWS, ZARR_STUDY, f"studies/{ZARR_STUDY}/{folder}", renderer_version())
            assert done is not None and done.state == "done" and done.result["status"] == "ok", done and done.result
            images = done.result["images"]
            assert [image["status"] for image in images] == ["ok"] * len(images) and images, images
            for image in images:
                here = previews_of(str(local), "ome-zarr", [image["index"]])[0]
                for name, stored in image["files"].items():
                    kept = b"".join(file_store.open_range(stored["key"]))
                    assert kept == base64.b64decode(here["pngs"][name]), (folder, image["index"], name)
    finally:
        queue.close()
    chunks = [path for path, _ in zarr_site["for_previews"] if not path.endswith(ZARR_METADATA)]
    assert chunks and len(chunks) == len(set(chunks))  # the chunks drawn, each fetched once
