"""Previews and OME-Zarr of files held in an S3 file store (a real SeaweedFS server): the sandboxed workers read the
objects by HTTP Range requests to presigned URLs (no credential reaches them), the PNGs and stores go to the same
bucket under ``derived/``, and what the HTTP app serves equals what a local-folder catalog serves for the same
files, pixel for pixel: thumbnails, static views, rendered planes, converted stores, and a virtual store whose
chunks are byte ranges of the source object. An embargoed study's previews and stores stay its owner's; files that
cannot be read say why (a missing object, a byte cap).

Real pixels (tests/data/images/SOURCES.txt): the fluorescence nuclei TIFF (a tiled pyramidal OME-TIFF is assembled
from it), the EMDB map EMD-3197 (plain and gzip-compressed) and the quantitative-phase PNG.
"""

from __future__ import annotations

import io
import json
import threading
from pathlib import Path

import numpy as np
import pytest
import requests
import zarr
from PIL import Image
from werkzeug.serving import make_server

from catalog.jobs import JobQueue
from loaders.image_headers import job as header_job
from loaders.image_headers.stored import locate
from loaders.ngff import job as ome_zarr_job
from loaders.previews import job as preview_job
from loaders.previews.pool import PreviewCaps, PreviewPool
from tests.catalog_helpers import run_image_jobs, deposit_files as deposit
from tests.servers.seaweedfs_server import free_ports
from tests.test_ome_zarr import pyramid_tiff

IMAGES = Path(__file__).parent / "data" / "images"
SETTINGS = {"job_attempts": 1, "job_retry_seconds": 0.0, "ome_zarr_max_memory_mb": 768, "ome_zarr_timeout": 120.0}
#: path → (previews made, OME-Zarr kind)
EXPECTED = {
    "nuclei/img2d.tif": "converted",
    "tiled/pyramid.ome.tif": "virtual",
    "maps/EMD-3197.map": "converted",
    "maps/emd_3197.map.gz": "converted",
    "phase/cell.png": "converted",
}


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, bytes]:
    folder = tmp_path_factory.mktemp("s3-preview-files")
    pyramid_tiff(folder / "pyramid.ome.tif", repeat=3)
    return {
        "nuclei/img2d.tif": (IMAGES / "tiff" / "stardist_img2d.tif").read_bytes(),
        "tiled/pyramid.ome.tif": (folder / "pyramid.ome.tif").read_bytes(),
        "maps/EMD-3197.map": (IMAGES / "mrc" / "EMD-3197.map").read_bytes(),
        "maps/emd_3197.map.gz": (IMAGES / "mrc" / "emd_3197.map.gz").read_bytes(),
        "phase/cell.png": (IMAGES / "png" / "skimage_cell.png").read_bytes(),
    }


def s3_settings(s3, stem: str) -> dict:
    return {
        "s3_endpoint": s3.endpoint,
        "s3_bucket": s3.new_bucket(stem),
        "s3_access_key": s3.access_key,
        "s3_secret_key": s3.secret_key,
    }


def work(services) -> None:
    """Read the headers, make the previews and the OME-Zarr, apply the headers, as the background duties do."""
    run_image_jobs(services, header_job.KIND, preview_job.KIND, ome_zarr_job.KIND)


@pytest.fixture(scope="module")
def sites(make_module_catalog, seaweedfs_s3, files):
    """The same released study in a local-folder catalog and in an S3 one (plus an embargoed study in S3), every
    job done, each served over HTTP."""
    made, servers = {}, []
    for kind in ("local", "s3"):
        (port,) = free_ports(1)
        base = f"http://127.0.0.1:{port}"
        extra = s3_settings(seaweedfs_s3, "previews") if kind == "s3" else {}
        catalog = make_module_catalog(name=f"previews-{kind}", base_url=base, **SETTINGS, **extra)
        accession, token = deposit(catalog.services, files)
        embargoed = deposit(catalog.services, {"nuclei/img2d.tif": files["nuclei/img2d.tif"]}, release_date="2999-01-01")
        work(catalog.services)
        server = make_server("127.0.0.1", port, catalog.app(), threaded=True)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        made[kind] = {"catalog": catalog, "base": base, "accession": accession, "embargoed": embargoed}
    yield made
    for server in servers:
        server.shutdown()


def image_base(site: dict, path: str, accession: str | None = None) -> str:
    accession = accession or site["accession"]
    return f"{site['base']}/studies/{accession}/images/{ome_zarr_job.image_id(accession, path, 0)}"


def job_result(site: dict, kind: str, path: str, accession: str | None = None):
    return job_of(site["catalog"].services, kind, accession or site["accession"], path)


def job_of(services, kind: str, accession: str, path: str):
    queue = JobQueue.for_settings(services.archive.state, services.archive.settings)
    try:
        version = {preview_job.KIND: preview_job.renderer_version(), ome_zarr_job.KIND: ome_zarr_job.job_version()}[kind]
        return queue.job(kind, accession, f"studies/{accession}/{path}", version)
    finally:
        queue.close()


def pixels(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)))


def test_the_stores_are_what_the_test_says(sites):
    assert type(sites["s3"]["catalog"].services.archive.file_store).__name__ == "S3FileStore"
    assert type(sites["local"]["catalog"].services.archive.file_store).__name__ == "LocalFileStore"


@pytest.mark.parametrize("path", sorted(EXPECTED))
def test_thumbnails_and_views_of_s3_files_equal_the_local_ones(sites, path):
    local, s3 = sites["local"], sites["s3"]
    done = job_result(s3, preview_job.KIND, path)
    assert done.state == "done" and done.result["status"] == "ok", done.result
    assert done.result["images"][0]["status"] == "ok", done.result
    keys = [f["key"] for f in done.result["images"][0]["files"].values()]
    store = s3["catalog"].services.archive.file_store
    assert all(key.startswith(f"derived/{s3['accession']}/") and store.stat(key) is not None for key in keys)
    for size in (128, 256, 512, 1024):
        mine = requests.get(f"{image_base(s3, path)}/thumbnail.png?size={size}", timeout=30)
        theirs = requests.get(f"{image_base(local, path)}/thumbnail.png?size={size}", timeout=30)
        assert mine.status_code == theirs.status_code == 200 and mine.headers["Content-Type"] == "image/png"
        assert np.array_equal(pixels(mine.content), pixels(theirs.content)), (path, size)


@pytest.mark.parametrize(
    "path, query",
    [("maps/EMD-3197.map", "z=3"), ("maps/emd_3197.map.gz", "z=7"), ("tiled/pyramid.ome.tif", "level=2&c=0")],
)
def test_planes_of_s3_files_render_as_the_local_ones(sites, path, query):
    local, s3 = sites["local"], sites["s3"]
    mine = requests.get(f"{image_base(s3, path)}/render.png?{query}", timeout=60)
    theirs = requests.get(f"{image_base(local, path)}/render.png?{query}", timeout=60)
    assert mine.status_code == theirs.status_code == 200, mine.text
    assert np.array_equal(pixels(mine.content), pixels(theirs.content))
    again = requests.get(f"{image_base(s3, path)}/render.png?{query}", headers={"If-None-Match": mine.headers["ETag"]})
    assert again.status_code == 304  # kept in the bucket, not drawn again


def open_http(url: str):
    return zarr.open_group(zarr.storage.FsspecStore.from_url(url + "/ome.zarr", read_only=True), mode="r", zarr_format=2)


@pytest.mark.parametrize("path", sorted(EXPECTED))
def test_ome_zarr_of_s3_files_is_served_and_equals_the_local_one(sites, path):
    local, s3 = sites["local"], sites["s3"]
    done, theirs = job_result(s3, ome_zarr_job.KIND, path), job_result(local, ome_zarr_job.KIND, path)
    assert done.state == "done", done.reason
    assert done.result["kind"] == theirs.result["kind"] == EXPECTED[path]
    for key in ("levels", "ngff_version", "image_id"):
        assert done.result[key] == theirs.result[key], key
    mine_group, their_group = open_http(image_base(s3, path)), open_http(image_base(local, path))
    assert mine_group.attrs.asdict() == their_group.attrs.asdict()
    for level in range(done.result["levels"]):
        assert np.array_equal(mine_group[str(level)][...], their_group[str(level)][...]), (path, level)


def test_converted_objects_redirect_to_the_bucket_and_virtual_chunks_stream_from_the_source_object(sites, files):
    s3 = sites["s3"]
    converted = image_base(s3, "nuclei/img2d.tif")
    answer = requests.get(f"{converted}/ome.zarr/0/.zarray", allow_redirects=False, timeout=30)
    assert answer.status_code == 302 and "X-Amz-Signature=" in answer.headers["Location"]
    assert answer.headers["Access-Control-Allow-Origin"] == "*"
    assert requests.get(answer.headers["Location"], timeout=30).json()["shape"] == [512, 512]
    virtual = image_base(s3, "tiled/pyramid.ome.tif")
    document = requests.get(f"{virtual}/ome.zarr.json", timeout=30).json()
    assert document["templates"]["u"].startswith(s3["base"] + "/files/")
    _url, offset, length = document["refs"]["0/1/2"]
    chunk = requests.get(f"{virtual}/ome.zarr/0/1/2", timeout=30)
    assert chunk.status_code == 200 and chunk.headers["Access-Control-Allow-Origin"] == "*"
    assert chunk.content == files["tiled/pyramid.ome.tif"][offset : offset + length]
    part = requests.get(f"{virtual}/ome.zarr/0/1/2", headers={"Range": "bytes=2-9"}, timeout=30)
    assert part.status_code == 206 and part.content == chunk.content[2:10]
    listing = {o.key for o in s3["catalog"].services.archive.file_store.list(f"derived/{s3['accession']}/")}
    assert any(key.endswith("/ome.zarr.json") for key in listing) and any("/ome.zarr/0/" in key for key in listing)


def test_an_embargoed_s3_studys_previews_and_stores_are_its_owners(sites):
    s3 = sites["s3"]
    accession, token = s3["embargoed"]
    base = image_base(s3, "nuclei/img2d.tif", accession)
    owner = {"Authorization": f"Bearer {token}"}
    assert job_result(s3, preview_job.KIND, "nuclei/img2d.tif", accession).result["status"] == "ok"
    for path in ("/thumbnail.png", "/thumbnail.png?size=1024", "/render.png?z=0", "/ome.zarr/.zattrs"):
        assert requests.get(base + path, timeout=30).status_code == 404, path
        mine = requests.get(base + path, headers=owner, timeout=30)
        assert mine.status_code == 200, path
    thumbnail = requests.get(base + "/thumbnail.png", headers=owner, timeout=30)
    assert thumbnail.headers["Cache-Control"] == "private, no-store"


def test_workers_get_presigned_urls_never_the_keys(sites, seaweedfs_s3):
    s3 = sites["s3"]
    store = s3["catalog"].services.archive.file_store
    calls: list[str] = []
    with PreviewPool(workers=1, caps=PreviewCaps()) as pool:
        real = pool.sandbox.call

        def recorded(target, *args):
            calls.append(json.dumps(args))
            return real(target, *args)

        pool.sandbox.call = recorded  # type: ignore[method-assign]
        key = f"studies/{s3['accession']}/phase/cell.png"
        job = type("Job", (), {"study": s3["accession"], "file_key": key, "payload": None})()
        result = preview_job.make_previews(pool, store, s3["base"], job)  # type: ignore[arg-type]
    assert result["status"] == "ok" and calls
    assert all("X-Amz-Signature=" in call for call in calls)
    assert not any(seaweedfs_s3.secret_key in call for call in calls)


def test_s3_files_that_cannot_be_read_say_why(sites):
    s3 = sites["s3"]
    catalog = s3["catalog"]
    store = catalog.services.archive.file_store
    with PreviewPool(workers=1, caps=PreviewCaps()) as pool:
        job = type("Job", (), {"study": s3["accession"], "file_key": f"studies/{s3['accession']}/gone.tif", "payload": None})()
        gone = preview_job.make_previews(pool, store, s3["base"], job)  # type: ignore[arg-type]
    assert gone["status"] == "unreadable" and "not in the file store" in gone["reason"]
    capped = catalog.app(preview_max_source_bytes=64 << 10).test_client()
    path = f"/studies/{s3['accession']}/images/{ome_zarr_job.image_id(s3['accession'], 'tiled/pyramid.ome.tif', 0)}"
    answer = capped.get(f"{path}/render.png?level=0")
    assert answer.status_code == 422 and "BIA_PREVIEW_MAX_SOURCE_BYTES" in answer.get_json()["message"]
    sandbox = ome_zarr_job.sandbox_for(catalog.settings)
    try:
        caps = {**ome_zarr_job.caps_of(catalog.settings), "max_source_bytes": 1000}
        with pytest.raises(ome_zarr_job.ConversionFailed, match="BIA_OME_ZARR_MAX_SOURCE_BYTES"):
            ome_zarr_job.make(sandbox, store, s3["accession"], f"studies/{s3['accession']}/nuclei/img2d.tif", caps)
    finally:
        sandbox.close()
    assert locate(store, f"studies/{s3['accession']}/nuclei/img2d.tif").url is not None


# ---------------------------------------------------------------------- harvested studies' files, at their source


def test_a_harvested_studys_images_are_drawn_from_its_source_by_range_requests(run, range_server, monkeypatch, tmp_path):
    """S-BIAD1492 harvested (its file lists naming real images), its files served by a local range server standing
    for BioStudies' file server: previews and planes are drawn from there, only there, and equal local drawings."""
    from api.app import create_app
    from api.services import open_services
    from catalog.config import Settings
    from tests.catalog_helpers import BASE
    from tests.servers.range_server import RangeServer
    from tests.test_remote_headers import _harvestable, _serve_study

    sources = f"biostudies={range_server.url}/fire/{{relpath}}/Files/"
    monkeypatch.setenv("BIA_HEADER_SOURCES", sources)
    monkeypatch.setenv("BIA_HEADER_WORKERS", "1")
    _serve_study(range_server)
    evil = RangeServer().start()
    try:
        harvested = run("harvest", "pagetab", str(_harvestable(tmp_path / "S-BIAD1492", evil.url)), "--headers")
        assert "queued 4 header reads, 4 previews and 4 OME-Zarr conversions" in harvested.output  # the .tif and .map files
        run("work", "--once", "--kinds", header_job.KIND)
        settings = Settings.from_env(None, data_dir=run.data, base_url=BASE, preview_workers=1)
        with open_services(settings) as services:
            queue = JobQueue.for_settings(services.archive.state, settings)
            try:
                assert preview_job.enqueue_harvested(queue, services.archive, ["S-BIAD1492"]) == 0  # queued already
            finally:
                queue.close()
            work(services)
            app = create_app(settings, services=services)
            try:
                client = app.test_client()
                results = {
                    j: job_of(services, preview_job.KIND, "S-BIAD1492", j)
                    for j in ("images/img2d.tif", "maps/EMD-3001.map", "masks/gone.tif")
                }
                assert results["images/img2d.tif"].result["images"][0]["status"] == "ok", results["images/img2d.tif"].result
                assert results["maps/EMD-3001.map"].result["images"][0]["status"] == "ok"
                assert results["masks/gone.tif"].result["status"] == "unreadable"
                assert "404" in results["masks/gone.tif"].result["reason"]
                base = f"/studies/S-BIAD1492/images/{ome_zarr_job.image_id('S-BIAD1492', 'images/img2d.tif', 0)}"
                served = client.get(f"{base}/thumbnail.png?size=256")
                assert served.status_code == 200
                with PreviewPool(workers=1) as pool:
                    local = pool.previews(str(IMAGES / "tiff" / "stardist_img2d.tif"), "tiff", 0)["pngs"]["thumbnail-256"]
                    plane = pool.render(str(IMAGES / "mrc" / "EMD-3001.map"), "mrc", 0, 5, 0, None, 0)
                assert np.array_equal(pixels(served.data), pixels(local))
                map_base = f"/studies/S-BIAD1492/images/{ome_zarr_job.image_id('S-BIAD1492', 'maps/EMD-3001.map', 0)}"
                rendered = client.get(f"{map_base}/render.png?z=5")
                assert rendered.status_code == 200 and np.array_equal(pixels(rendered.data), pixels(plane))
            finally:
                app.extensions["bia.sparql"].close()
    finally:
        evil.stop()
    assert evil.requests == []
    asked = {path for path, _ in range_server.requests}
    assert all(path.startswith("/fire/S-BIAD/492/S-BIAD1492/Files/") for path in asked)
    assert all(header and header.startswith("bytes=") for _, header in range_server.requests)
