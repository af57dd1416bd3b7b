"""Previews of every image: thumbnails and a static view made by the ``previews`` job in capped sandboxed workers,
stored under ``derived/`` and served by ``…/thumbnail.png``; planes rendered on demand by ``…/render.png`` (range
checked, cached, ETag and 304); representations in the graph (``thumbnailUrl``, ``contentUrl``); the image page
stepping through planes without JavaScript; hostile files ending as failed previews with a reason; embargo on
every new path.

Real pixels: the fluorescence nuclei TIFF, the EMDB map EMD-3197 and the quantitative-phase PNG
(tests/data/images/SOURCES.txt); a tiled pyramidal two-channel OME-TIFF assembled here from the nuclei pixels; a
PNG and a TIFF whose headers claim billions of pixels."""

from __future__ import annotations

import html as html_text
import io
import re
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image

from catalog.image_facts import ImageFacts
from catalog.jobs import JobQueue
from loaders.image_headers import job as header_job
from loaders.previews import job as preview_job
from tests.catalog_helpers import run_image_jobs, deposit_files as deposit, BASE, DATA

IMAGES = Path(__file__).parent / "data" / "images"
REMBI = "https://w3id.org/rembi/"


def pyramid(path: Path, side: int = 4096) -> None:
    """A tiled, pyramidal, two-channel OME-TIFF from the nuclei pixels (channel colours red and cyan)."""
    nuclei = tifffile.imread(IMAGES / "tiff" / "stardist_img2d.tif")
    reps = side // nuclei.shape[0]
    plane = np.tile(nuclei, (reps, reps))
    data = np.stack([plane, plane.max() - plane])
    meta = {"axes": "CYX", "Channel": {"Name": ["nuclei", "inverse"], "Color": [-16776961, 16777215]}}
    with tifffile.TiffWriter(path, bigtiff=True) as tif:
        options = {"tile": (256, 256), "compression": "zlib", "photometric": "minisblack"}
        tif.write(data, subifds=3, metadata=meta, **options)
        for level in (2, 4, 8):
            tif.write(data[:, ::level, ::level], subfiletype=1, **options)


def bomb_png() -> bytes:
    """A 40,000 x 40,000 PNG in 40 kB: its header claims 1.6 billion pixels."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    side = 40_000
    rows = zlib.compress(b"\x00" * (side + 1) * 4, 9)
    ihdr = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", rows) + chunk(b"IEND", b"")


def huge_tiff() -> bytes:
    """A TIFF whose one strip claims 200,000 x 200,000 uint16 pixels (80 GB) in a 200-byte file."""
    side = 200_000
    entries = [(256, 4, 1, side), (257, 4, 1, side), (258, 3, 1, 16), (259, 3, 1, 1), (262, 3, 1, 1)]
    entries += [(273, 4, 1, 8), (277, 3, 1, 1), (278, 4, 1, side), (279, 4, 1, side * side * 2 & 0xFFFFFFFF)]
    ifd = struct.pack("<H", len(entries)) + b"".join(
        struct.pack("<HHI", tag, kind, count) + (struct.pack("<HH", value, 0) if kind == 3 else struct.pack("<I", value))
        for tag, kind, count, value in entries
    )
    return b"II*\x00" + struct.pack("<I", 8 + 64) + b"\x00" * 64 + ifd + b"\x00\x00\x00\x00"


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, bytes]:
    folder = tmp_path_factory.mktemp("preview-files")
    pyramid(folder / "pyramid.ome.tif")
    return {
        "nuclei/img2d.tif": (IMAGES / "tiff" / "stardist_img2d.tif").read_bytes(),
        "nuclei/pyramid.ome.tif": (folder / "pyramid.ome.tif").read_bytes(),
        "maps/EMD-3197.map": (IMAGES / "mrc" / "EMD-3197.map").read_bytes(),
        "phase/cell.png": (IMAGES / "png" / "skimage_cell.png").read_bytes(),
        "hostile/bomb.png": bomb_png(),
        "hostile/huge.tif": huge_tiff(),
    }


def run_jobs(services) -> None:
    """Read the headers, make the previews, and bring the study up to date, as the background duties do."""
    run_image_jobs(services, header_job.KIND, preview_job.KIND)


def images_of(client, accession: str, headers: dict | None = None) -> dict[str, str]:
    """path → image id of each image file's first image."""
    listing = client.get(f"/studies/{accession}/images?limit=50", headers=headers or {}).get_json()
    return {item["path"]: item["images"][0]["@id"].rsplit("/", 1)[-1] for item in listing["items"] if item["images"]}


@pytest.fixture(scope="module")
def made(make_module_catalog, files):
    catalog = make_module_catalog(name="previews")
    accession, token = deposit(catalog.services, files)
    run_jobs(catalog.services)
    client = catalog.app().test_client()
    return catalog, accession, client, images_of(client, accession)


def preview_results(services, accession: str) -> dict[str, dict]:
    queue = JobQueue.for_settings(services.archive.state, services.archive.settings)
    try:
        return {j.file_key.split("/", 2)[2]: j.result for j in queue.results(accession, preview_job.KIND)}
    finally:
        queue.close()


def test_previews_are_made_for_every_image_file_in_capped_workers(made):
    catalog, accession, client, images = made
    results = preview_results(catalog.services, accession)
    for path in ("nuclei/img2d.tif", "nuclei/pyramid.ome.tif", "maps/EMD-3197.map", "phase/cell.png"):
        image = results[path]["images"][0]
        assert results[path]["status"] == "ok" and image["status"] == "ok", (path, results[path])
        assert set(image["files"]) == {"thumbnail-128", "thumbnail-256", "thumbnail-512", "view"}
    assert results["nuclei/pyramid.ome.tif"]["images"][0]["level"] == 2  # the 1024-px level, not the 4096-px one
    for size in (128, 256, 512):
        answer = client.get(f"/studies/{accession}/images/{images['nuclei/pyramid.ome.tif']}/thumbnail.png?size={size}")
        assert answer.status_code == 200 and answer.mimetype == "image/png"
        picture = Image.open(io.BytesIO(answer.data))
        assert max(picture.size) == size and picture.mode == "RGB"
    view = Image.open(
        io.BytesIO(client.get(f"/studies/{accession}/images/{images['nuclei/pyramid.ome.tif']}/thumbnail.png?size=1024").data)
    )
    red, green, blue = (np.asarray(view)[..., k].astype(float).mean() for k in range(3))
    assert abs(green - blue) < 1 and abs(red - green) > 10  # the channels in their OME colours: red and cyan
    cell = np.asarray(
        Image.open(io.BytesIO(client.get(f"/studies/{accession}/images/{images['phase/cell.png']}/thumbnail.png").data))
    )
    assert cell.shape[0] == 256 and cell.std() > 20  # the stretch spreads the phase values


def test_hostile_files_end_as_failed_previews_with_a_reason(made):
    catalog, accession, client, images = made
    results = preview_results(catalog.services, accession)
    for path in ("hostile/bomb.png", "hostile/huge.tif"):
        result = results[path]
        failed = result["status"] != "ok" or result["images"][0]["status"] == "failed"
        reason = result.get("reason") or result["images"][0].get("reason")
        assert failed and reason, (path, result)
    bomb = images.get("hostile/bomb.png") or images.get("hostile/huge.tif")
    if bomb:
        assert client.get(f"/studies/{accession}/images/{bomb}/thumbnail.png").status_code == 404
        answer = client.get(f"/studies/{accession}/images/{bomb}/render.png")
        assert answer.status_code in (404, 422) and answer.get_json()["code"] in ("not_found", "render_failed")


def test_a_plane_is_rendered_range_checked_cached_and_revalidated(made):
    catalog, accession, client, images = made
    base = f"/studies/{accession}/images/{images['maps/EMD-3197.map']}/render.png"
    first = client.get(f"{base}?z=3")
    assert first.status_code == 200 and first.mimetype == "image/png" and first.headers["ETag"]
    assert Image.open(io.BytesIO(first.data)).size == (20, 20)
    assert client.get(f"{base}?z=3").data == first.data
    assert client.get(f"{base}?z=3", headers={"If-None-Match": first.headers["ETag"]}).status_code == 304
    assert client.get(f"{base}?z=4").data != first.data
    for bad in ("z=20", "t=1", "c=1", "level=1", "z=-1", "z=x"):
        answer = client.get(f"{base}?{bad}")
        assert answer.status_code == 400 and answer.get_json()["code"] == "bad_parameter", bad
    pyramid = f"/studies/{accession}/images/{images['nuclei/pyramid.ome.tif']}/render.png"
    level = Image.open(io.BytesIO(client.get(f"{pyramid}?level=3&c=1").data))
    assert level.size == (512, 512)
    keys = [o.key for o in catalog.services.archive.file_store.list(f"derived/{accession}/")]
    assert any("/render/z3-t0-call-l0" in key for key in keys) and any("/render/z0-t0-c1-l3" in key for key in keys)


def test_images_carry_thumbnail_and_content_urls_and_the_study_its_representatives(made):
    catalog, accession, client, images = made
    ident = images["nuclei/img2d.tif"]
    record = client.get(f"/studies/{accession}/images/{ident}", headers={"Accept": "application/ld+json"}).get_data(as_text=True)
    assert f"{BASE}/studies/{accession}/images/{ident}/thumbnail.png?size=256" in record
    assert "thumbnailUrl" in record and "contentUrl" in record and f"{BASE}/files/{accession}/" in record
    assert "ImageRepresentation" in record and "static_view" in record
    study = client.get(f"/studies/{accession}", headers={"Accept": "application/ld+json"}).get_json()
    shown = study["thumbnailUrl"] if isinstance(study["thumbnailUrl"], list) else [study["thumbnailUrl"]]
    urls = [url["@id"] if isinstance(url, dict) else url for url in shown]
    assert 1 <= len(urls) <= 4 and all(url.endswith("thumbnail.png?size=256") for url in urls)


def test_the_image_page_steps_through_planes_by_plain_links(made):
    catalog, accession, client, images = made
    page = client.get(f"/studies/{accession}/images/{images['maps/EMD-3197.map']}", headers={"Accept": "text/html"})
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and "render.png?z=10" in html  # the central plane first
    following = re.search(r'<a href="([^"]+)"[^>]*rel="next"[^>]*>', html)
    assert following and "z=11" in following[1]
    stepped = client.get(html_text.unescape(following[1]).replace(BASE, ""), headers={"Accept": "text/html"}).get_data(
        as_text=True
    )
    assert "render.png?z=11" in stepped
    assert f"{BASE}/studies/{accession}/images/{images['maps/EMD-3197.map']}/ome.zarr" in html
    for viewer in ("napari", "vizarr", "neuroglancer"):
        assert viewer in html


def test_the_study_page_shows_a_gallery_of_representative_images(made):
    catalog, accession, client, images = made
    html = client.get(f"/studies/{accession}", headers={"Accept": "text/html"}).get_data(as_text=True)
    gallery = html[html.index('<ul class="gallery">') :]
    gallery = gallery[: gallery.index("</ul>")]
    shown = re.findall(r'<img src="([^"]+)"', gallery)
    assert (
        1 <= len(shown) <= 4 and f"{BASE}/studies/{accession}/images/{images['nuclei/img2d.tif']}/thumbnail.png?size=256" in shown
    )


def test_search_results_carry_a_thumbnail(made):
    catalog, accession, client, images = made
    found = client.get("/search", headers={"Accept": "application/json"}).get_json()
    hit = next(item for item in found["items"] if item["accession"] == accession)
    assert hit["thumbnail"].startswith(f"{BASE}/studies/{accession}/images/") and hit["thumbnail"].endswith("size=128")
    html = client.get("/search", headers={"Accept": "text/html"}).get_data(as_text=True)
    assert f'<img src="{hit["thumbnail"]}"' in html


def test_the_file_table_shows_thumbnails(made):
    catalog, accession, client, images = made
    html = client.get(f"/studies/{accession}/files", headers={"Accept": "text/html"}).get_data(as_text=True)
    assert f"/images/{images['nuclei/img2d.tif']}/thumbnail.png?size=128" in html
    assert f"/images/{images['hostile/bomb.png']}/thumbnail.png" not in html if "hostile/bomb.png" in images else True


def test_previews_stay_behind_the_embargo_and_appear_on_release_without_rendering(make_catalog, files):
    catalog = make_catalog()
    services = catalog.services
    small = {k: files[k] for k in ("nuclei/img2d.tif", "maps/EMD-3197.map")}
    accession, token = deposit(services, small, release_date="2999-01-01")
    run_jobs(services)
    client = catalog.app().test_client()
    owner = {"Authorization": f"Bearer {token}"}
    images = images_of(client, accession, owner)
    ident = images["maps/EMD-3197.map"]
    paths = [f"/studies/{accession}/images/{ident}/thumbnail.png", f"/studies/{accession}/images/{ident}/render.png?z=2"]
    for path in paths:
        assert client.get(path).status_code == 404, path
        mine = client.get(path, headers=owner)
        assert mine.status_code == 200 and mine.headers["Cache-Control"] == "private, no-store", path

    # previews only: OME-Zarr jobs queued at the commit may still run in a background worker meanwhile
    def drawn() -> dict[str, str]:
        return {o.key: o.md5 for o in services.archive.file_store.list("derived/") if "/ome.zarr" not in o.key}

    before = drawn()
    services.archive.release_due(today="2999-01-02")
    for path in paths:
        assert client.get(path).status_code == 200, path
    assert drawn() == before  # nothing drawn again


def test_bia_previews_queues_the_work(run, tmp_path, files):
    folder = tmp_path / "files"
    (folder / "nuclei").mkdir(parents=True)
    (folder / "nuclei" / "img2d.tif").write_bytes(files["nuclei/img2d.tif"])
    listing = tmp_path / "files.tsv"
    listing.write_text("path\tKind\nnuclei/img2d.tif\tdata\n")
    token = run("token", "create", "jane").output.strip().splitlines()[-1]
    accession = run("deposit", str(DATA / "study.yaml"), "--file-list", str(listing), "--files", str(folder), "--token", token)
    accession = accession.output.strip().splitlines()[-1]
    again = run("previews", accession)
    assert "queued previews of 0 file(s)" in again.output  # queued on commit, with the header reads: nothing twice
    from catalog.state_db import open_state_db

    db = open_state_db(None, run.data)
    try:
        queue = JobQueue(db)
        assert queue.counts()[preview_job.KIND]["queued"] == 1
        with db.transaction(write=True) as conn:
            conn.execute("DELETE FROM jobs WHERE kind = ?", (preview_job.KIND,))
        queue.close()
    finally:
        db.close()
    assert "queued previews of 1 file(s)" in run("previews", accession).output
    missing = run("previews", "S-NOPE1", ok=False)
    assert missing.exit_code != 0 and "S-NOPE1" in missing.output


def test_the_ome_zarr_jobs_results_become_representations(make_catalog, files):
    """The agreed shape of an ``ome_zarr`` result (catalog/image_representations.py) reaches the image's record."""
    catalog = make_catalog()
    services = catalog.services
    accession, _ = deposit(services, {"nuclei/img2d.tif": files["nuclei/img2d.tif"]})
    run_jobs(services)
    queue = JobQueue.for_settings(services.archive.state, services.archive.settings)
    try:
        queue.enqueue("ome_zarr", accession, f"studies/{accession}/nuclei/img2d.tif", "test-1")
        (job,) = queue.claim(["ome_zarr"])
        queue.finish(job, {"status": "ok", "images": [{"index": 0, "kind": "virtual", "ngff_version": "0.4", "levels": 1}]})
    finally:
        queue.close()
    ImageFacts(services.archive).follow()
    client = catalog.app().test_client()
    ident = images_of(client, accession)["nuclei/img2d.tif"]
    record = client.get(f"/studies/{accession}/images/{ident}", headers={"Accept": "application/ld+json"}).get_data(as_text=True)
    assert "virtual_ome_zarr" in record and '"0.4"' in record
    assert f"{BASE}/studies/{accession}/images/{ident}/ome.zarr" in record


def test_each_image_of_a_file_gets_its_own_ome_zarr_representation():
    """The ome_zarr job numbers a file's images ``series`` (previews say ``index``): image 1's store is image 1's,
    and an unpacked .ome.zarr.zip is an ``unpacked_ome_zarr``."""
    from catalog.image_representations import OME_ZARR_KIND, representations

    made = {
        "status": "ok",
        "images": [
            {"series": 0, "kind": "converted", "image_id": "a", "store_key": "derived/S-1/a/ome.zarr", "levels": 2},
            {"series": 1, "kind": "unpacked", "image_id": "b", "store_key": "derived/S-1/b/ome.zarr", "levels": 3},
        ],
    }

    def kinds(index: int) -> list[tuple[str, int | None]]:
        found = representations("S-1", "https://a.example/i", "https://a.example/f", "tiff", 10, index, {OME_ZARR_KIND: made})
        return [(slots["representation_kind"], slots.get("pyramid_levels")) for _name, slots in found]

    assert kinds(0) == [("uploaded_file", None), ("converted_ome_zarr", 2)]
    assert kinds(1) == [("uploaded_file", None), ("unpacked_ome_zarr", 3)]
