"""The demo catalog has something to download: a deposit of real image files (served, previewed and read as OME-Zarr
by the serving process's job worker), and harvested studies whose file links lead to where their source archive
serves the files, never to a 404 here."""

from __future__ import annotations

import hashlib
import json
import time
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import quote

import pytest

from api.cli import load_demo
from api.demo_loader import DEMO_OWNER, DEPOSIT, deposit_title
from catalog.jobs import JobQueue
from tests.catalog_helpers import BASE

ROOT = Path(__file__).parent.parent
FILES = DEPOSIT / "files"
#: the first 16 hex digits of the sha256 of the shared samples the demo copied (../shared/samples/images/SOURCES.txt)
SAMPLE_SHA256 = {
    "nuclei/nuclei.tif": "f9ccc1571b92c861",
    "nuclei/nuclei_labels.tif": "59ad5e820b7982ca",
    "histology/colonic_glands_ihc.png": "f8dd1aa387ddd1f4",
    "em/EMD-3197.map": "351d5090d4c56eb5",
}
BIOSTUDIES_FILES = "https://ftp.ebi.ac.uk/biostudies/fire/{relpath}/Files/"


@pytest.fixture(scope="module")
def demo(make_module_catalog):
    made = make_module_catalog(name="demo", demo=True)
    app = made.app(background="off")  # the queued jobs stay queued here; test_served_demo_* lets a worker do them
    row = next(r for r in made.services.archive.registry.studies(owner=DEMO_OWNER))
    return {"catalog": made, "client": app.test_client(), "accession": row.accession}


def test_demo_deposits_a_study_of_real_image_files(demo):
    client, accession = demo["client"], demo["accession"]
    record = client.get(f"/studies/{accession}", headers={"Accept": "application/ld+json"}).get_json()
    assert record["name"] == deposit_title() and "distribution" in record
    table = client.get(f"/studies/{accession}/files?limit=100").get_json()
    assert sorted(item["path"] for item in table["items"]) == sorted(SAMPLE_SHA256)
    columns = {column["name"] for column in table["columns"]}
    assert {"description", "channel", "stain", "condition", "label mask of"} <= columns
    masks = client.get(f"/studies/{accession}/files", query_string={"filter[label mask of]": "nuclei/nuclei.tif"}).get_json()
    assert [item["path"] for item in masks["items"]] == ["nuclei/nuclei_labels.tif"]
    stained = client.get(f"/studies/{accession}/files", query_string={"filter[stain][prefix]": "DAB"}).get_json()
    assert [item["path"] for item in stained["items"]] == ["histology/colonic_glands_ihc.png"]
    for item in table["items"]:
        body = client.get(item["download"].replace(BASE, "")).data
        assert body == (FILES / item["path"]).read_bytes()
        assert hashlib.sha256(body).hexdigest().startswith(SAMPLE_SHA256[item["path"]])


def test_the_demo_deposit_queues_headers_previews_and_ome_zarr(demo):
    services = demo["catalog"].services
    queue = JobQueue.for_settings(services.archive.state, services.archive.settings)
    counts = queue.counts()
    for kind in ("image_headers", "previews", "ome_zarr"):
        assert sum(counts.get(kind, {}).values()) >= len(SAMPLE_SHA256), (kind, counts)


def test_loading_the_demo_again_changes_nothing(demo):
    services = demo["catalog"].services
    again = load_demo(services)
    assert again.startswith("demo studies: 0 loaded") and " 0 failed" in again and demo["accession"] in again
    assert [row.accession for row in services.archive.registry.studies(owner=DEMO_OWNER)] == [demo["accession"]]


def test_a_harvested_file_downloads_from_its_source_archive(demo):
    client = demo["client"]
    for accession, relpath in (("S-BIAD1492", "S-BIAD/492/S-BIAD1492"), ("S-TEST123", "S-TEST/123/S-TEST123")):
        base = BIOSTUDIES_FILES.format(relpath=relpath)
        items = client.get(f"/studies/{accession}/files?limit=100").get_json()["items"]
        assert items
        for item in items:
            answer = client.get(item["download"].replace(BASE, ""))
            assert answer.status_code == 302 and answer.headers["Location"] == base + quote(item["path"]), item
        manifest = client.get(f"/studies/{accession}/manifest", headers={"Accept": "application/json"}).get_json()
        assert sorted(entry["url"] for entry in manifest) == sorted(base + quote(item["path"]) for item in items)
        tsv = client.get(f"/studies/{accession}/manifest").get_data(as_text=True).splitlines()
        assert tsv[0].split("\t") == ["url", "path", "size", "md5", "sha256", "type"] and all(
            line.startswith(base) for line in tsv[1:]
        )
        page = client.get(f"/studies/{accession}/files", headers={"Accept": "text/html"}).get_data(as_text=True)
        assert f"/files/{accession}/" in page and "/download" in page  # each row links to its file at the source


def test_a_harvested_file_without_a_known_file_server_is_a_clear_404(demo):
    client = demo["catalog"].app(background="off", header_sources=()).test_client()
    item = client.get("/studies/S-BIAD1492/files?limit=1").get_json()["items"][0]
    answer = client.get(item["download"].replace(BASE, ""))
    assert answer.status_code == 404 and "nor located at its source" in answer.get_json()["message"]
    manifest = client.get("/studies/S-BIAD1492/manifest", headers={"Accept": "application/json"}).get_json()
    assert manifest and all(entry["url"] is None for entry in manifest)


def test_harvested_study_pages_link_to_the_files_at_their_source(demo):
    client = demo["client"]
    for accession, url, name in (
        ("EMPIAR-10934", "https://www.ebi.ac.uk/empiar/EMPIAR-10934", "EMPIAR"),
        ("idr0004", "https://idr.openmicroscopy.org/search/?query=Name:idr0004", "IDR"),
        ("S-BIAD1492", "https://www.ebi.ac.uk/biostudies/studies/S-BIAD1492", "BioStudies"),
    ):
        page = client.get(f"/studies/{accession}", headers={"Accept": "text/html"}).get_data(as_text=True)
        assert f'id="files-at-source" href="{url}">The files at {name}</a>' in page, accession
        assert "Browse the 0 files" not in page
    deposited = client.get(f"/studies/{demo['accession']}", headers={"Accept": "text/html"}).get_data(as_text=True)
    assert "files-at-source" not in deposited and "Browse the 4 files" in deposited


def _get(url: str, timeout: float = 10) -> tuple[int, bytes, str]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as answer:
            return answer.status, answer.read(), answer.headers.get("Content-Type", "")
    except urllib.error.HTTPError as error:
        return error.code, error.read(), error.headers.get("Content-Type", "")


def _until(check, seconds: float, what: str):
    deadline = time.monotonic() + seconds
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {seconds:g} s")
        time.sleep(0.5)


def test_served_demo_makes_previews_and_ome_zarr_of_its_deposit(tmp_path):
    """`bia serve --demo`: the serving process's job worker reads the deposit's headers, draws its previews and
    writes its OME-Zarr stores; the files download byte for byte."""
    from tests.servers.demo_server import start_demo_server

    server, port = start_demo_server(tmp_path / "data")
    site = f"http://127.0.0.1:{port}"
    try:

        def started() -> bool:
            if server.poll() is not None:
                raise AssertionError(server.stdout.read() if server.stdout else "the server ended")
            return _up(site)

        _until(started, 120, "an answer to /health")
        table = json.loads(_get(site + "/studies/S-BIAD1/files?limit=100")[1])
        for item in table["items"]:
            status, body, _ = _get(item["download"].replace(f"http://localhost:{port}", site))
            assert status == 200 and body == (FILES / item["path"]).read_bytes()

        def read_images():
            items = json.loads(_get(site + "/studies/S-BIAD1/images")[1])["items"]
            done = len(items) == len(SAMPLE_SHA256) and all(i["images"] and i["images"][0]["@id"] for i in items)
            return items if done else None

        items = _until(read_images, 180, "the headers of the demo's files read")
        by_path = {item["path"]: item for item in items}
        assert (by_path["em/EMD-3197.map"]["images"][0]["size_z"], by_path["nuclei/nuclei.tif"]["images"][0]["size_x"]) == (
            20,
            512,
        )
        for item in items:
            image = item["images"][0]["@id"].replace(f"http://localhost:{port}", site)
            thumbnail = _until(lambda: _ok(image + "/thumbnail.png"), 180, f"the thumbnail of {item['path']}")
            assert thumbnail[2] == "image/png" and thumbnail[1].startswith(b"\x89PNG")
            attrs = _until(lambda: _ok(image + "/ome.zarr/.zattrs"), 180, f"the OME-Zarr of {item['path']}")
            assert "multiscales" in json.loads(attrs[1])
    finally:
        server.kill()
        server.wait(10)


def _up(site: str) -> bool:
    try:
        urllib.request.urlopen(site + "/health", timeout=2).close()
        return True
    except OSError:
        return False


def _ok(url: str):
    found = _get(url)
    return found if found[0] == 200 else None
