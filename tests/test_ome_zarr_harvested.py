"""OME-Zarr of a harvested study's files, whose bytes stay at the source archive: S-BIAD1492 (a real record) harvested
with file lists naming real images, served by a local range server standing for BioStudies' file server.

The ``ome_zarr`` jobs are queued as ``bia harvest --headers`` queues them and read each file by Range requests from
the source (configured hosts only); a tiled pyramidal TIFF gets a virtual store whose chunks the app fetches from the
source for each request (exactly their byte range, capped), the others converted stores kept in the file store. What
Zarr reads over HTTP equals what tifffile and mrcfile read from the files. A source that is down, fails or is too
slow is a 503, 502 or 504 in the error shape, never a 500; a job that meets a busy source is retried without spending
an attempt; an embargoed harvested study's stores are nobody's until its release (a harvested study has no owner).

Real pixels (tests/data/images/SOURCES.txt): the fluorescence nuclei TIFF (a tiled pyramidal OME-TIFF is assembled
from it), the EMDB map EMD-3001.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path

import fsspec
import mrcfile
import numpy as np
import pytest
import tifffile
from werkzeug.serving import make_server

from api.cli import _queue_headers
from catalog.jobs import JobQueue, Worker, handlers
from loaders.harvest import Harvester
from loaders.image_headers.job import KIND as HEADERS
from loaders.image_headers.job import readers_version
from loaders.image_headers.stored import is_zarr_metadata
from loaders.ngff import job as ome_zarr_job
from tests.catalog_helpers import run_image_jobs
from tests.servers.range_server import RangeServer
from tests.servers.seaweedfs_server import free_ports
from tests.test_ome_zarr import open_http, pyramid_tiff
from tests.test_remote_headers import _harvestable, _serve_study

IMAGES = Path(__file__).parent / "data" / "images"
RELEASED, EMBARGOED = "S-BIAD1492", "S-BIAD1493"
PYRAMID = "tiled/pyramid.ome.tif"
SETTINGS = {
    "job_attempts": 1,
    "job_retry_seconds": 0.0,
    "ome_zarr_max_memory_mb": 768,
    "ome_zarr_timeout": 120.0,
    "header_workers": 1,
    "header_request_timeout": 2.0,
    "background": "off",  # the tests do the jobs (the previews queued with them are left undone)
}


#: an OME-Zarr folder listed file by file, as a source archive may list one (not served: its metadata objects are
#: asked for, never a chunk; see the test below)
ZARR_FOLDER = "plates/plate.ome.zarr"
ZARR_FOLDER_KEYS = (".zattrs", ".zgroup", "A/.zgroup", "A/1/.zattrs", "A/1/0/.zattrs", "A/1/0/0/.zarray", "A/1/0/0/0/0/0/0/0")


def files_path(accession: str) -> str:
    """Where the source's file server holds a study's files (BioStudies' ``{relpath}/Files/``)."""
    return f"/fire/S-BIAD/{accession[-3:]}/{accession}/Files"


@pytest.fixture(scope="module")
def pyramid(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("harvested-pyramid") / "pyramid.ome.tif"
    pyramid_tiff(path, repeat=3)
    return path


def serving_source(pyramid: Path) -> RangeServer:
    """The source archive's file server, started: both studies' files (the real images, and the pyramid)."""
    server = RangeServer().start()
    _serve_study(server)
    for accession in (RELEASED, EMBARGOED):
        server.add(f"{files_path(accession)}/{PYRAMID}", pyramid)
    server.add(f"{files_path(EMBARGOED)}/images/img2d.tif", IMAGES / "tiff" / "stardist_img2d.tif")
    return server


@pytest.fixture(scope="module")
def source(pyramid):
    server = serving_source(pyramid)
    yield server
    server.stop()


def records(folder: Path, pyramid: Path, evil: str) -> list[Path]:
    """S-BIAD1492 as :func:`_harvestable` makes it, with the pyramid listed too; and a copy of it under embargo
    (S-BIAD1493, released in 2999)."""
    made = []
    for accession in (RELEASED, EMBARGOED):
        record = _harvestable(folder / accession, evil)
        listed = json.loads((record.parent / "bbc024_images.json").read_text())
        listed.append({"path": PYRAMID, "size": pyramid.stat().st_size, "attributes": []})
        listed += [{"path": f"{ZARR_FOLDER}/{key}", "size": 100, "attributes": []} for key in ZARR_FOLDER_KEYS]
        (record.parent / "bbc024_images.json").write_text(json.dumps(listed))
        if accession == EMBARGOED:
            tree = json.loads(record.read_text())
            tree["accno"] = EMBARGOED
            tree["attributes"] = [a for a in tree["attributes"] if a["name"] != "ReleaseDate"]
            tree["attributes"].append({"name": "ReleaseDate", "value": "2999-01-01"})
            record = record.with_name(f"{EMBARGOED}.json")
            record.write_text(json.dumps(tree))
            (record.parent / f"{RELEASED}.json").unlink()
        made.append(record)
    return made


@pytest.fixture(scope="module")
def site(make_module_catalog, source, pyramid, tmp_path_factory):
    """Both studies harvested, their header reads and OME-Zarr jobs queued as ``bia harvest --headers`` queues them
    and done, the app served over HTTP."""
    (port,) = free_ports(1)
    base = f"http://127.0.0.1:{port}"
    sources = (("biostudies", f"{source.url}/fire/{{relpath}}/Files/"),)
    made = make_module_catalog(name="ome-zarr-harvested", base_url=base, header_sources=sources, **SETTINGS)
    evil = RangeServer().start()
    try:
        found = records(tmp_path_factory.mktemp("harvested-records"), pyramid, evil.url)
        summary = Harvester(made.services.archive).run("pagetab", [str(r) for r in found])
        assert summary.loaded == [RELEASED, EMBARGOED], summary.failed
        made.services.follow()
        queued = _queue_headers(made.services, summary.loaded)
        run_image_jobs(made.services, HEADERS, ome_zarr_job.KIND)
    finally:
        evil.stop()
    assert evil.requests == []
    app = made.app()
    server = make_server("127.0.0.1", port, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield {"catalog": made, "base": base, "queued": queued, "client": app.test_client()}
    server.shutdown()


def job(site, path: str, accession: str = RELEASED):
    queue = JobQueue.for_settings(site["catalog"].services.archive.state, site["catalog"].settings)
    try:
        return queue.job(ome_zarr_job.KIND, accession, f"studies/{accession}/{path}", ome_zarr_job.job_version())
    finally:
        queue.close()


def image_path(path: str, accession: str = RELEASED) -> str:
    return f"/studies/{accession}/images/{ome_zarr_job.image_id(accession, path, 0)}"


def chunk_of(site, key: str = "0/0/0") -> tuple[str, int, int]:
    """The served path of a chunk of the pyramid's virtual store, and its offset and length in the file."""
    document = site["client"].get(f"{image_path(PYRAMID)}/ome.zarr.json").get_json()
    _url, offset, length = document["refs"][key]
    return f"{image_path(PYRAMID)}/ome.zarr/{key}", offset, length


def assert_error(answer, status: int, code: str) -> dict:
    """An answer in the one error shape, with CORS headers."""
    body = answer.get_json()
    assert answer.status_code == status, (answer.status_code, body)
    assert set(body) == {"code", "status", "message", "errors"} and (body["code"], body["status"]) == (code, status)
    assert answer.headers["Access-Control-Allow-Origin"] == "*"
    return body


# ---------------------------------------------------------------------- the jobs


def test_bia_harvest_headers_queues_the_ome_zarr_of_harvested_files(site):
    queued = site["queued"]
    # per study: 3 images, the pyramid and the OME-Zarr folder (its marker: headers and previews, read at the source;
    # no conversion) of bbc024_images, the mask of bbc024_masks
    assert (queued.jobs, queued.previews, queued.ome_zarr, queued.studies) == (12, 12, 10, [RELEASED, EMBARGOED])
    made = job(site, "images/img2d.tif")
    assert made is not None and made.payload == {"source": "biostudies"}


def test_an_ome_zarr_folder_at_the_source_gets_one_header_job_reading_only_its_metadata(site, source):
    """A store is one image file, through its marker, as for deposits (not a job per chunk); its header job asks the
    source for metadata objects only, never a chunk (here none is there: the store is unreadable, saying so), and no
    OME-Zarr job is queued for it (no store of its own is served)."""
    state = site["catalog"].services.archive.state
    queue = JobQueue.for_settings(state, site["catalog"].settings)
    try:
        marker = f"studies/{RELEASED}/{ZARR_FOLDER}/.zattrs"
        for key in ZARR_FOLDER_KEYS[1:]:
            assert queue.job(HEADERS, RELEASED, f"studies/{RELEASED}/{ZARR_FOLDER}/{key}", readers_version()) is None
        headers = queue.job(HEADERS, RELEASED, marker, readers_version())
        assert headers.state == "done" and headers.result["status"] == "unreadable", headers.result
    finally:
        queue.close()
    assert job(site, f"{ZARR_FOLDER}/.zattrs") is None
    asked = [path.removeprefix(f"{files_path(RELEASED)}/{ZARR_FOLDER}/") for path, _ in source.requests if ZARR_FOLDER in path]
    assert asked and all(is_zarr_metadata(key) for key in asked), asked


def test_a_tiled_tiff_at_the_source_gets_a_virtual_store_pointing_into_it(site, pyramid):
    done = job(site, PYRAMID)
    assert done.state == "done", done.reason
    image = done.result["images"][0]
    assert (image["kind"], image["levels"], image["source_key"]) == ("virtual", 3, f"studies/{RELEASED}/{PYRAMID}")
    assert image["source_bytes"] == pyramid.stat().st_size and image["reference_ratio"] < 0.01
    store = site["catalog"].services.archive.file_store
    assert store.stat(image["store_key"]) is not None  # the document is the archive's
    assert store.stat(f"studies/{RELEASED}/{PYRAMID}") is None  # the file is not


def test_the_virtual_store_reads_over_http_as_tifffile_reads_the_file(site, source, pyramid):
    source.requests.clear()
    group = open_http(site["base"] + image_path(PYRAMID))
    with tifffile.TiffFile(pyramid) as tif:
        for level in range(3):
            assert np.array_equal(group[str(level)][...], tif.series[0].levels[level].asarray()), level
    asked = {path for path, _ in source.requests}
    assert asked == {f"{files_path(RELEASED)}/{PYRAMID}"}  # every chunk fetched from the source, by range
    assert all(header and header.startswith("bytes=") for _, header in source.requests)


def test_a_chunk_is_exactly_its_byte_range_fetched_from_the_source(site, source, pyramid):
    path, offset, length = chunk_of(site)
    source.requests.clear()
    client = site["client"]
    answer = client.get(path)
    assert answer.status_code == 200 and answer.data == pyramid.read_bytes()[offset : offset + length]
    assert source.requests == [(f"{files_path(RELEASED)}/{PYRAMID}", f"bytes={offset}-{offset + length - 1}")]
    etag = answer.headers["ETag"]
    assert client.get(path, headers={"If-None-Match": etag}).status_code == 304
    assert len(source.requests) == 1  # the 304 asked the source nothing


def test_a_range_of_a_chunk_is_fetched_from_the_source_as_just_those_bytes(site, source, pyramid):
    path, offset, length = chunk_of(site)
    whole = pyramid.read_bytes()[offset : offset + length]
    client = site["client"]
    etag = client.get(path).headers["ETag"]
    for asked, lo, hi in (
        ("bytes=10-19", 10, 20),
        ("bytes=0-0", 0, 1),
        (f"bytes={length - 5}-", length - 5, length),
        ("bytes=-7", length - 7, length),
    ):
        source.requests.clear()
        part = client.get(path, headers={"Range": asked})
        assert part.status_code == 206 and part.data == whole[lo:hi], asked
        assert part.headers["Content-Range"] == f"bytes {lo}-{hi - 1}/{length}" and part.headers["ETag"] == etag
        assert source.requests == [(f"{files_path(RELEASED)}/{PYRAMID}", f"bytes={offset + lo}-{offset + hi - 1}")], asked
    source.requests.clear()
    outside = client.get(path, headers={"Range": f"bytes={length}-"})
    assert outside.status_code == 416 and outside.headers["Content-Range"] == f"bytes */{length}"
    assert outside.get_json()["code"] == "range_not_satisfiable" and source.requests == []  # refused before asking
    other_copy = client.get(path, headers={"Range": "bytes=0-0", "If-Range": '"not-this-one"'})
    assert other_copy.status_code == 200 and other_copy.data == whole  # If-Range for another copy: the whole chunk
    same_copy = client.get(path, headers={"Range": "bytes=0-0", "If-Range": etag})
    assert same_copy.status_code == 206 and same_copy.data == whole[:1]
    assert_error(client.get(path, headers={"If-Match": '"not-this-one"'}), 412, "precondition_failed")


def test_the_reference_document_reads_through_the_download_redirect_to_the_source(site, source, pyramid):
    document = json.loads(fsspec.open(site["base"] + image_path(PYRAMID) + "/ome.zarr.json").open().read())
    assert document["templates"]["u"].startswith(f"{site['base']}/files/{RELEASED}/")
    options = {"fo": document, "remote_protocol": "http", "remote_options": {"asynchronous": True}, "asynchronous": True}
    import zarr

    source.requests.clear()
    via_refs = zarr.open_group("reference://", storage_options=options, mode="r", zarr_format=2)
    with tifffile.TiffFile(pyramid) as tif:
        box = np.s_[300:900, 1000:1500]
        assert np.array_equal(via_refs["0"][box], tif.series[0].levels[0].asarray()[box])
    assert source.requests and all(header and header.startswith("bytes=") for _, header in source.requests)


@pytest.mark.parametrize(
    "path, local", [("images/img2d.tif", "tiff/stardist_img2d.tif"), ("maps/EMD-3001.map", "mrc/EMD-3001.map")]
)
def test_other_files_get_converted_stores_equal_to_their_pixels(site, path, local):
    done = job(site, path)
    assert done.state == "done", done.reason
    image = done.result["images"][0]
    assert image["kind"] == "converted" and image["source_bytes"] == (IMAGES / local).stat().st_size
    expected = tifffile.imread(IMAGES / local) if local.endswith(".tif") else mrcfile.read(IMAGES / local)
    level0 = open_http(site["base"] + image_path(path))["0"][...]
    assert level0.dtype == expected.dtype and np.array_equal(level0, expected)


def test_a_file_missing_at_the_source_fails_its_job_with_the_reason(site):
    failed = job(site, "masks/gone.tif")
    assert failed.state == "failed" and "404" in (failed.reason or ""), failed.reason


def test_a_busy_source_costs_the_job_no_attempt(make_catalog, source):
    path = f"{files_path(RELEASED)}/images/img3d.tif"
    source.quirks[path] = [503, None]
    catalog = make_catalog(header_sources=(("biostudies", f"{source.url}/fire/{{relpath}}/Files/"),), **SETTINGS)
    ome_zarr_job.register_kind()
    version = ome_zarr_job.job_version()
    queue = JobQueue.for_settings(catalog.services.archive.state, catalog.settings)
    try:
        key = f"studies/{RELEASED}/images/img3d.tif"
        queue.enqueue(ome_zarr_job.KIND, RELEASED, key, version, {"source": "biostudies"})
        worker = Worker(queue, handlers(catalog.settings, [ome_zarr_job.KIND]), versions={ome_zarr_job.KIND: version})
        worker.run_batch()
        waiting = queue.job(ome_zarr_job.KIND, RELEASED, key, version)
        assert waiting is not None and (waiting.state, waiting.attempts) == ("queued", 0) and "503" in (waiting.reason or "")
        while worker.run_batch():
            pass
        done = queue.job(ome_zarr_job.KIND, RELEASED, key, version)
        assert done is not None and done.state == "done" and done.result["images"][0]["kind"] == "converted"
    finally:
        queue.close()
        source.quirks.pop(path, None)


# ---------------------------------------------------------------------- a source that fails


@pytest.mark.parametrize(
    "quirk, status, code",
    [
        (503, 503, "source_unavailable"),
        (429, 503, "source_unavailable"),
        (404, 502, "source_failed"),
        (500, 502, "source_failed"),
        (("slow", 3.0), 504, "source_timeout"),
        ("no-range", 502, "source_failed"),
    ],
)
def test_a_source_that_fails_gives_a_chunk_5xx_in_the_error_shape(site, source, quirk, status, code):
    path, offset, _length = chunk_of(site, "0/1/1")  # not at the start: a whole file for a range is refused
    assert offset > 0
    source.quirks[f"{files_path(RELEASED)}/{PYRAMID}"] = [quirk]
    try:
        answer = site["client"].get(path)
    finally:
        source.quirks.clear()
    assert_error(answer, status, code)


def test_a_source_that_cannot_be_reached_is_a_503(site):
    path, _offset, _length = chunk_of(site)
    (dead,) = free_ports(1)
    app = site["catalog"].app(header_sources=(("biostudies", f"http://127.0.0.1:{dead}/fire/{{relpath}}/Files/"),))
    body = assert_error(app.test_client().get(path), 503, "source_unavailable")
    assert "cannot reach" in body["message"]


def test_a_redirect_off_the_source_host_is_refused(site, source):
    path, _offset, _length = chunk_of(site)
    evil = RangeServer().start()
    try:
        source.quirks[f"{files_path(RELEASED)}/{PYRAMID}"] = [("redirect", f"{evil.url}/elsewhere.tif")]
        body = assert_error(site["client"].get(path), 502, "source_failed")
    finally:
        source.quirks.clear()
        evil.stop()
    assert "another host" in body["message"] and evil.requests == []


def test_a_chunk_over_the_proxy_cap_is_refused_before_asking_the_source(site, source, pyramid):
    path, offset, length = chunk_of(site)
    source.requests.clear()
    capped = site["catalog"].app(ome_zarr_max_proxy_bytes=length - 1).test_client()
    body = assert_error(capped.get(path), 413, "chunk_too_large")
    assert "BIA_OME_ZARR_MAX_PROXY_BYTES" in body["message"] and "Range" in body["message"] and source.requests == []
    assert site["catalog"].app(ome_zarr_max_proxy_bytes=length).test_client().get(path).status_code == 200
    part = capped.get(path, headers={"Range": f"bytes=1-{length - 1}"})  # within the cap: fetched and served
    assert part.status_code == 206 and part.data == pyramid.read_bytes()[offset + 1 : offset + length]


# ---------------------------------------------------------------------- embargo


def test_an_embargoed_harvested_studys_stores_are_nobodys_until_release(site, pyramid):
    done = job(site, PYRAMID, EMBARGOED)
    assert done.state == "done" and done.result["images"][0]["kind"] == "virtual", done.reason
    client = site["client"]
    token, _owner = site["catalog"].token("jane")
    chunk = f"{image_path(PYRAMID, EMBARGOED)}/ome.zarr/0/0/0"
    for headers in ({}, {"Authorization": f"Bearer {token}"}):  # a harvested study has no owner
        assert_error(client.get(chunk, headers=headers), 404, "not_found")
        assert_error(client.get(f"{image_path(PYRAMID, EMBARGOED)}/ome.zarr.json", headers=headers), 404, "not_found")
    site["catalog"].services.maintenance.release("3000-01-01")
    assert job(site, PYRAMID, EMBARGOED).updated == done.updated  # not made again
    group = open_http(site["base"] + image_path(PYRAMID, EMBARGOED))
    with tifffile.TiffFile(pyramid) as tif:
        assert np.array_equal(group["2"][...], tif.series[0].levels[2].asarray())
