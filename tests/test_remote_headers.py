"""Headers of files held elsewhere, read by HTTP Range requests in the sandbox: a harvested study's files at its
source archive (a local server replaying real files), and objects of an S3 file store (a real SeaweedFS)."""

from __future__ import annotations

import gzip
import io
import json
from pathlib import Path
from typing import Iterator

import pytest

from catalog.errors import is_transient
from catalog.file_store_s3 import S3FileStore
from catalog.jobs import JobQueue, Worker, handlers
from catalog.state_db import open_state_db
from loaders.image_headers import read_headers
from loaders.image_headers.job import KIND, read_harvested, readers_version, register_kind
from loaders.image_headers.pool import HeaderCaps, HeaderPool
from loaders.image_headers.remote import NoSource, NotLocated, SourceUnavailable, file_url, source_of
from loaders.image_headers.stored import read_stored
from tests.servers.range_server import RangeServer
from tests.test_header_jobs import FILES, deposit_images
from tests.servers.seaweedfs_server import SeaweedFS

IMAGES = Path(__file__).parent / "data" / "images"
HARVEST = Path(__file__).parent / "data" / "harvest" / "biostudies"
#: TIFF and MRC files without embedded OME-XML: read in at most 3 range requests each
PLAIN = ("tiff/stardist_img2d.tif", "tiff/stardist_img3d.tif", "mrc/EMD-3001.map", "mrc/EMD-3197.map", "mrc/emd_3197.map.gz")
OTHERS = ("png/skimage_cell.png", "ome-xml/example.ome.xml", "ome-xml/tubhiswt.ome.xml")


@pytest.fixture(scope="module")
def pool() -> Iterator[HeaderPool]:
    with HeaderPool(1, HeaderCaps(request_timeout=1.0)) as made:
        yield made


def facts(headers) -> dict:
    """What a read says about the file (not how it was read)."""
    found = headers.to_dict()
    return {k: v for k, v in found.items() if k not in ("source", "bytes_read", "reads")}


def fei_map() -> bytes:
    """The real FEI1 map header with its (zero) data block: a 29 MB MRC whose extended header is 786 KB."""
    header = gzip.decompress((IMAGES / "mrc" / "fei-extended.header.mrc.gz").read_bytes())
    return header + bytes(3710 * 3838 * 2)


# ---------------------------------------------------------------------- reads over HTTP


def test_remote_reads_say_what_local_reads_say_in_a_few_range_requests(pool, range_server, tmp_path):
    local = tmp_path / "fei-extended.mrc"
    local.write_bytes(fei_map())
    samples = {name: IMAGES / name for name in PLAIN + OTHERS} | {"mrc/fei-extended.mrc": local}
    for name, path in samples.items():
        url = range_server.add(f"/files/{name}", path)
        remote = pool.read_url(url)
        assert remote.status == "ok", (name, remote.reason)
        assert facts(remote) == facts(read_headers(path)), name
        requests = range_server.requests_for(f"/files/{name}")
        assert remote.reads == len(requests) and all(r and r.startswith("bytes=") for r in requests)
        assert remote.bytes_read <= max(64 << 10, path.stat().st_size if remote.reads == 1 else 3 * (64 << 10))
        if name in PLAIN or name.endswith(".mrc"):
            assert remote.reads <= 3, (name, requests)
    assert len(range_server.requests_for("/files/mrc/fei-extended.mrc")) == 1  # 64 KiB of a 29 MB map


def test_what_the_source_answers_makes_a_file_unreadable_with_the_reason(pool, range_server):
    tiff = IMAGES / "tiff" / "stardist_img2d.tif"
    stack = IMAGES / "tiff" / "stardist_img3d.tif"
    range_server.add("/files/empty.tif", b"")
    range_server.add("/files/broken.tif", tiff)
    range_server.quirks["/files/broken.tif"] = [500]
    range_server.add("/files/slow.tif", tiff)
    range_server.quirks["/files/slow.tif"] = [("slow", 3.0)]
    range_server.add("/files/whole.tif", stack)  # a server that ignores Range: fine for the first block only
    range_server.quirks["/files/whole.tif"] = ["no-range"]
    expected = {
        "missing.tif": "the source answered 404 (no such file)",
        "empty.tif": "the source answered 416",
        "broken.tif": "the source answered 500",
        "slow.tif": "timed out: no answer within 1 s",
        "whole.tif": "the source does not answer Range requests (200 to a range past the start)",
    }
    for name, reason in expected.items():
        found = pool.read_url(f"{range_server.url}/files/{name}")
        assert (found.status, found.reason) == ("unreadable", reason), name


def test_a_redirect_is_followed_on_the_same_host_only(pool, range_server):
    other = RangeServer().start()
    try:
        other.add("/elsewhere.tif", IMAGES / "tiff" / "stardist_img2d.tif")
        range_server.add("/files/real.tif", IMAGES / "tiff" / "stardist_img2d.tif")
        range_server.quirks["/files/moved.tif"] = [("redirect", "/files/real.tif")]
        range_server.quirks["/files/away.tif"] = [("redirect", f"{other.url}/elsewhere.tif")]
        assert pool.read_url(f"{range_server.url}/files/moved.tif").status == "ok"
        away = pool.read_url(f"{range_server.url}/files/away.tif")
        assert away.status == "unreadable" and away.reason == f"redirected to another host ({other.url}): refused"
        assert other.requests == []
    finally:
        other.stop()


def test_a_source_that_is_down_or_busy_is_an_outage_to_retry(pool, range_server):
    range_server.add("/files/busy.tif", IMAGES / "tiff" / "stardist_img2d.tif")
    range_server.quirks["/files/busy.tif"] = [503]
    with pytest.raises(SourceUnavailable, match="answered 503") as busy:
        pool.read_url(f"{range_server.url}/files/busy.tif")
    assert is_transient(busy.value)
    closed = RangeServer()  # bound, never started, then closed: its port refuses connections
    url = f"{closed.url}/x.tif"
    closed.httpd.server_close()
    with pytest.raises(SourceUnavailable, match="cannot reach") as refused:
        pool.read_url(url)
    assert is_transient(refused.value)


# ---------------------------------------------------------------------- where a harvested file is


def test_a_harvested_file_s_url_is_its_source_s_base_and_its_path():
    sources = (("biostudies", "https://files.example.org/fire/{relpath}/Files/"), ("empiar", "https://e.example.org/{number}"))
    assert source_of("S-BIAD1492") == source_of("S-BSST1") == "biostudies"
    assert source_of("EMPIAR-10934") == "empiar" and source_of("idr0004") is None
    assert (
        file_url(sources, "biostudies", "S-BIAD1492", "BBBC024/a b#1.tif")
        == "https://files.example.org/fire/S-BIAD/492/S-BIAD1492/Files/BBBC024/a%20b%231.tif"
    )
    assert file_url(sources, "biostudies", "S-BSST1", "x.tif") == "https://files.example.org/fire/S-BSST/001/S-BSST1/Files/x.tif"
    assert file_url(sources, "empiar", "EMPIAR-10934", "data/m.mrc") == "https://e.example.org/10934/data/m.mrc"
    # a path that is a URL stays a path on the configured host
    hostile = file_url(sources, "biostudies", "S-BIAD1", "https:/evil.example.org/x.tif")
    assert hostile.startswith("https://files.example.org/fire/S-BIAD/001/S-BIAD1/Files/")
    for bad in ("../../other/x.tif", "a/./b.tif", "/etc/passwd", "a//b.tif", ""):
        with pytest.raises(NotLocated):
            file_url(sources, "biostudies", "S-BIAD1", bad)
    with pytest.raises(NoSource):
        file_url((), "biostudies", "S-BIAD1", "x.tif")


def test_an_unlocatable_file_is_unreadable_and_asks_nobody(pool):
    sources = (("biostudies", "http://127.0.0.1:9/{relpath}/Files/"),)
    found = read_harvested(pool, sources, "biostudies", "S-BIAD1", "studies/S-BIAD1/a/../../b.tif")
    assert found.status == "unreadable" and "not a path inside the study's folder" in (found.reason or "")


# ---------------------------------------------------------------------- harvest --headers, reindex --headers


def _harvestable(folder: Path, evil: str) -> Path:
    """S-BIAD1492 (a real record) whose two file lists name real image files; the record and a file's attributes
    carry URLs of another host, which nothing may fetch."""
    folder.mkdir()
    record = json.loads((HARVEST / "S-BIAD1492.json").read_text())
    record["section"].setdefault("links", []).append({"url": f"{evil}/record-link.tif"})
    (folder / "S-BIAD1492.json").write_text(json.dumps(record))
    images = [
        {"path": "images/img2d.tif", "size": 524544, "attributes": [{"name": "source", "value": f"{evil}/img2d.tif"}]},
        {"path": "images/img3d.tif", "size": 138925, "attributes": []},
        {"path": "maps/EMD-3001.map", "size": 315084, "attributes": []},
    ]
    masks = [{"path": "masks/gone.tif", "size": 10, "attributes": []}]
    (folder / "bbc024_images.json").write_text(json.dumps(images))
    (folder / "bbc024_masks.json").write_text(json.dumps(masks))
    return folder / "S-BIAD1492.json"


def _serve_study(server: RangeServer) -> None:
    base = "/fire/S-BIAD/492/S-BIAD1492/Files"
    server.add(f"{base}/images/img2d.tif", IMAGES / "tiff" / "stardist_img2d.tif")
    server.add(f"{base}/images/img3d.tif", IMAGES / "tiff" / "stardist_img3d.tif")
    server.add(f"{base}/maps/EMD-3001.map", IMAGES / "mrc" / "EMD-3001.map")


def _results(data: Path) -> dict[str, dict]:
    db = open_state_db(None, data)
    queue = JobQueue(db)
    try:
        return {job.file_key.removeprefix("studies/S-BIAD1492/"): job.result for job in queue.results("S-BIAD1492", KIND)}
    finally:
        queue.close()
        db.close()


@pytest.fixture
def sources(range_server, monkeypatch) -> RangeServer:
    monkeypatch.setenv("BIA_HEADER_SOURCES", f"biostudies={range_server.url}/fire/{{relpath}}/Files/")
    monkeypatch.setenv("BIA_HEADER_WORKERS", "1")
    _serve_study(range_server)
    return range_server


def test_harvest_headers_reads_the_study_s_files_from_its_source_only(run, sources, tmp_path):
    evil = RangeServer().start()
    try:
        record = _harvestable(tmp_path / "S-BIAD1492", evil.url)
        harvested = run("harvest", "pagetab", str(record), "--headers")
        assert "queued 4 header reads, 4 previews and 4 OME-Zarr conversions of 1 harvested studies" in harvested.output
        assert sources.requests == []  # queued, not read yet
        assert "jobs" in run("work", "--once", "--kinds", KIND).output
        results = _results(run.data)
    finally:
        evil.stop()
    assert evil.requests == []
    assert set(results) == {"images/img2d.tif", "images/img3d.tif", "maps/EMD-3001.map", "masks/gone.tif"}
    for name, local in (("images/img2d.tif", "tiff/stardist_img2d.tif"), ("maps/EMD-3001.map", "mrc/EMD-3001.map")):
        assert results[name]["status"] == "ok" and results[name]["reads"] == 1
        assert results[name]["series"] == read_headers(IMAGES / local).to_dict()["series"]
    assert results["images/img3d.tif"]["reads"] <= 3
    assert (results["masks/gone.tif"]["status"], results["masks/gone.tif"]["reason"]) == (
        "unreadable",
        "the source answered 404 (no such file)",
    )
    assert {path.split("/Files/")[0] for path, _ in sources.requests} == {"/fire/S-BIAD/492/S-BIAD1492"}
    again = run("harvest", "pagetab", str(record), "--headers")  # unchanged: no job is queued twice
    assert "queued 0 header reads, 0 previews and 0 OME-Zarr conversions of 1 harvested studies" in again.output


def test_reindex_headers_queues_the_harvested_studies_files(run, sources, tmp_path):
    record = _harvestable(tmp_path / "S-BIAD1492", "http://127.0.0.1:9")
    run("harvest", "pagetab", str(record))
    assert _results(run.data) == {}
    queued = run("previews", "S-BIAD1492").output
    assert "queued previews of 4 file(s) of S-BIAD1492" in queued  # read from its source
    assert "queued OME-Zarr conversions of 4 file(s) of S-BIAD1492" in queued
    reindexed = run("reindex", "--headers").output
    assert "queued 4 header reads, 0 previews and 0 OME-Zarr conversions of 1 harvested studies" in reindexed
    run("work", "--once", "--kinds", KIND)
    assert _results(run.data)["images/img2d.tif"]["status"] == "ok"


def test_a_busy_source_costs_the_job_no_attempt(make_catalog, range_server, tmp_path):
    _serve_study(range_server)
    path = "/fire/S-BIAD/492/S-BIAD1492/Files/images/img2d.tif"
    range_server.quirks[path] = [503, None]
    register_kind()
    catalog = make_catalog(
        folder=tmp_path / "catalog",
        header_sources=(("biostudies", f"{range_server.url}/fire/{{relpath}}/Files/"),),
        header_workers=1,
        job_retry_seconds=0.0,
    )
    settings = catalog.services.archive.settings
    queue = JobQueue.for_settings(catalog.services.archive.state, settings)
    try:
        key = "studies/S-BIAD1492/images/img2d.tif"
        queue.enqueue(KIND, "S-BIAD1492", key, readers_version(), {"source": "biostudies"})
        worker = Worker(queue, handlers(settings, [KIND]), versions={KIND: readers_version()})
        worker.run_batch()
        job = queue.job(KIND, "S-BIAD1492", key, readers_version())
        assert job is not None and (job.state, job.attempts) == ("queued", 0) and "503" in (job.reason or "")
        while worker.run_batch():
            pass
        assert queue.result(KIND, "S-BIAD1492", key, readers_version())["status"] == "ok"
    finally:
        queue.close()


# ---------------------------------------------------------------------- S3 file stores


@pytest.fixture
def s3_store(request: pytest.FixtureRequest) -> S3FileStore:
    server: SeaweedFS = request.getfixturevalue("seaweedfs_s3")
    bucket = server.new_bucket("headers")
    request.addfinalizer(lambda: server.client().remove_bucket(bucket))
    return S3FileStore(server.client(), bucket)


def test_objects_in_s3_are_read_by_range_requests_in_the_sandbox(pool, s3_store, tmp_path):
    local = tmp_path / "fei-extended.mrc"
    local.write_bytes(fei_map())
    samples = {name: IMAGES / name for name in PLAIN + ("png/skimage_cell.png",)} | {"mrc/fei-extended.mrc": local}
    try:
        for name, path in samples.items():
            s3_store.put(f"studies/S-BIAD9/{name}", io.BytesIO(path.read_bytes()), size=path.stat().st_size)
            found = read_stored(pool, s3_store, f"studies/S-BIAD9/{name}")
            assert found.status == "ok", (name, found.reason)
            assert found.source == f"studies/S-BIAD9/{name}"  # not the presigned URL
            assert facts(found) == facts(read_headers(path)), name
            assert found.reads <= 3
        assert read_stored(pool, s3_store, "studies/S-BIAD9/mrc/fei-extended.mrc").bytes_read == 64 << 10
        missing = read_stored(pool, s3_store, "studies/S-BIAD9/nope.tif")
        assert (missing.status, missing.reason) == ("unreadable", "studies/S-BIAD9/nope.tif is not in the file store")
    finally:
        s3_store.delete_prefix("studies/")


def test_a_deposit_s_images_in_s3_get_their_headers_read_by_the_job_queue(request, tmp_path):
    s3: SeaweedFS = request.getfixturevalue("seaweedfs_s3")
    bucket = s3.new_bucket("header-jobs")
    make_catalog = request.getfixturevalue("make_catalog")  # after the server, so closed before it stops
    services = make_catalog(
        folder=tmp_path / "catalog",
        s3_endpoint=s3.endpoint,
        s3_bucket=bucket,
        s3_access_key=s3.access_key,
        s3_secret_key=s3.secret_key,
        header_workers=1,
    ).services
    register_kind()
    accession = deposit_images(services)
    settings = services.archive.settings
    queue = JobQueue.for_settings(services.archive.state, settings)
    try:
        worker = Worker(queue, handlers(settings, [KIND]), versions={KIND: readers_version()})
        while worker.run_batch():
            pass
        done = {job.file_key.removeprefix(f"studies/{accession}/"): job.result for job in queue.results(accession, KIND)}
    finally:
        queue.close()
    assert set(done) == set(FILES)
    for path, local in FILES.items():
        assert done[path]["status"] == "ok" and done[path]["reads"] <= 3
        assert done[path]["source"] == f"studies/{accession}/{path}"
        assert done[path]["series"] == read_headers(local).to_dict()["series"]
