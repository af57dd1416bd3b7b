"""An OME-Zarr uploaded as a folder of files (``x.ome.zarr/.zattrs``, ``x.ome.zarr/0/0/0/0/0``, …) is one image file:
its root metadata file stands for the store, so one header read finds every image (each series of a bioformats2raw
layout, each field of an HCS plate), the files inside get no job of their own, and each image is served where it
lies, from the study's own files, at its ``…/ome.zarr`` (nothing copied). A folder named ``.zarr`` without Zarr
metadata stays a folder of plain files. Embargo holds for the stores as for any file.

Real layouts (tests/data/images/SOURCES.txt): the Bio-Formats fake two-series layout and the BioImage Archive's HCS
plate test store (synthetic pixels).
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import requests
import zarr

from catalog import zarr_folders
from catalog.jobs import JobQueue
from loaders.image_headers.job import KIND as HEADERS
from tests.test_ome_zarr import image_site, open_http, result

SAMPLES = Path(__file__).parent / "data" / "images" / "ome-zarr"
SERIES_2 = SAMPLES / "fake-series-2.zarr"
PLATE = SAMPLES / "bia_hcs.ome.zarr"
NUCLEI = Path(__file__).parent / "data" / "images" / "tiff" / "stardist_img2d.tif"


def folder_files(folder: Path, under: str) -> dict[str, bytes]:
    return {
        f"{under}/{item.relative_to(folder).as_posix()}": item.read_bytes()
        for item in sorted(folder.rglob("*"))
        if item.is_file()
    }


def uploads() -> dict[str, bytes]:
    return {
        **folder_files(SERIES_2, "zarr/series.ome.zarr"),
        **folder_files(PLATE, "plates/hcs.ome.zarr"),
        "plain/img2d.tif": NUCLEI.read_bytes(),
        "notes/old.zarr/readme.txt": b"not a store: no Zarr metadata at its top",
    }


@pytest.fixture(scope="module")
def site(make_module_catalog):
    with image_site(make_module_catalog, "ome-zarr-folder", uploads(), folder_files(SERIES_2, "secret.ome.zarr")) as made:
        yield made


def image_url(site, accession: str, path: str, index: int = 0) -> str:
    from catalog import identifiers

    return f"{site['base']}/studies/{accession}/images/{identifiers.image_id(accession, path, index)}"


def test_job_paths_keep_one_marker_per_store_and_every_file_outside_stores():
    paths = ["a.tif", "x.ome.zarr/.zattrs", "x.ome.zarr/.zgroup", "x.ome.zarr/0/.zattrs", "x.ome.zarr/0/0/0/0/0/0"]
    paths += ["v3.zarr/zarr.json", "both.zarr/.zattrs", "both.zarr/zarr.json", "in/y.ZARR/.zattrs", "plain.zarr/readme.txt"]
    paths += [".zarr/.zattrs", "outer.zarr/inner.zarr/.zattrs"]
    assert sorted(zarr_folders.job_paths(paths, zarr_folders.markers(paths))) == sorted(
        ["a.tif", ".zarr/.zattrs", "x.ome.zarr/.zattrs", "v3.zarr/zarr.json", "both.zarr/zarr.json", "in/y.ZARR/.zattrs"]
        + ["plain.zarr/readme.txt", "outer.zarr/inner.zarr/.zattrs"]
    )
    assert (
        zarr_folders.shown("x.ome.zarr/.zattrs") == "x.ome.zarr"
        and zarr_folders.shown("x.ome.zarr/0/.zattrs") == "x.ome.zarr/0/.zattrs"
    )


def test_one_header_read_per_store_and_none_for_the_files_inside(site):
    services, accession = site["services"], site["accession"]
    queue = JobQueue.for_settings(services.archive.state, services.archive.settings)
    try:
        with services.archive.state.transaction() as conn:
            keys = {
                r["file_key"]
                for r in conn.execute("SELECT file_key FROM jobs WHERE study = ? AND kind = ?", (accession, HEADERS))
            }
    finally:
        queue.close()
    prefix = f"studies/{accession}/"
    assert {k.removeprefix(prefix) for k in keys} == {
        "zarr/series.ome.zarr/.zattrs",
        "plates/hcs.ome.zarr/.zattrs",
        "plain/img2d.tif",
        "notes/old.zarr/readme.txt",
    }


def test_the_listing_shows_each_store_with_all_its_images(site):
    items = requests.get(f"{site['base']}/studies/{site['accession']}/images?limit=50").json()["items"]
    by_path = {item["path"]: item for item in items}
    series = by_path["zarr/series.ome.zarr/.zattrs"]
    assert series["format"] == "ome-zarr" and [(i["index"], i["size_x"]) for i in series["images"]] == [(0, 512), (1, 512)]
    assert len(by_path["plates/hcs.ome.zarr/.zattrs"]["images"]) == 8
    assert by_path["notes/old.zarr/readme.txt"]["status"] != "ok"


@pytest.mark.parametrize(
    "path, index, source",
    [
        ("zarr/series.ome.zarr/.zattrs", 0, SERIES_2 / "0"),
        ("zarr/series.ome.zarr/.zattrs", 1, SERIES_2 / "1"),
        ("plates/hcs.ome.zarr/.zattrs", 3, PLATE / "A" / "2" / "1"),
    ],
)
def test_a_zarr_client_reads_each_image_where_it_lies(site, path, index, source):
    group = open_http(image_url(site, site["accession"], path, index))
    expected = zarr.open_group(str(source), mode="r")
    assert group.attrs.asdict()["multiscales"] == expected.attrs.asdict()["multiscales"]
    for dataset in expected.attrs.asdict()["multiscales"][0]["datasets"]:
        assert np.array_equal(np.asarray(group[dataset["path"]][:]), expected[dataset["path"]][:])


def test_nothing_is_copied_and_the_graph_says_uploaded_ome_zarr(site):
    services, accession = site["services"], site["accession"]
    done = result(services, accession, "zarr/series.ome.zarr/.zattrs")
    assert done.state == "done", done.reason
    images = done.result["images"]
    assert [(i["kind"], i["image_path"], i["store_key"]) for i in images] == [
        ("in_place", "0", f"studies/{accession}/zarr/series.ome.zarr"),
        ("in_place", "1", f"studies/{accession}/zarr/series.ome.zarr"),
    ]
    store = services.archive.file_store
    assert not [
        o.key for o in store.list(f"derived/{accession}/", checksums=False) if "/ome.zarr/" in o.key and "series" in o.key
    ]
    record = requests.get(
        image_url(site, accession, "zarr/series.ome.zarr/.zattrs", 1), headers={"Accept": "application/ld+json"}
    )
    assert record.status_code == 200
    assert "uploaded_ome_zarr" in record.text and "zarr/series.ome.zarr [" in record.text


def test_an_embargoed_store_is_its_owners(site):
    accession, owner = site["embargoed"], {"Authorization": f"Bearer {site['token']}"}
    url = image_url(site, accession, "secret.ome.zarr/.zattrs", 1)
    for suffix in ("", "/ome.zarr/.zattrs", "/ome.zarr/0/.zarray"):
        assert requests.get(url + suffix, headers={"Accept": "application/ld+json"}).status_code == 404, suffix
        assert requests.get(url + suffix, headers={**owner, "Accept": "application/ld+json"}).status_code == 200, suffix


# ---------------------------------------------------------------------- in an S3 file store (a real SeaweedFS)


@pytest.fixture(scope="module")
def s3_site(make_module_catalog, seaweedfs_s3):
    from tests.test_previews_s3 import s3_settings

    files = folder_files(SERIES_2, "zarr/series.ome.zarr")
    settings = {**s3_settings(seaweedfs_s3, "zarrfolder"), "background": "off"}  # jobs run by the tests only
    with image_site(make_module_catalog, "ome-zarr-folder-s3", files, **settings) as made:
        yield made


def test_a_store_in_s3_is_read_from_its_metadata_objects_and_served_from_the_bucket(s3_site):
    accession = s3_site["accession"]
    done = result(s3_site["services"], accession, "zarr/series.ome.zarr/.zattrs")
    assert done.state == "done", done.reason
    assert [(i["kind"], i["image_path"]) for i in done.result["images"]] == [("in_place", "0"), ("in_place", "1")]
    url = image_url(s3_site, accession, "zarr/series.ome.zarr/.zattrs", 1)
    chunk = requests.get(url + "/ome.zarr/0/0/0/0/0/0", allow_redirects=False)
    assert chunk.status_code == 302 and "X-Amz-Signature" in chunk.headers["Location"]
    group = open_http(url)
    expected = zarr.open_group(str(SERIES_2 / "1"), mode="r")
    assert np.array_equal(np.asarray(group["1"][:]), expected["1"][:])


# ---------------------------------------------------------------------- previews, drawn from the folder's own files


def pixels(data: bytes) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(data)))


@pytest.fixture(scope="module")
def drawn(site):
    from loaders.previews import job as preview_job
    from tests.catalog_helpers import run_image_jobs

    run_image_jobs(site["services"], preview_job.KIND)
    return site


@pytest.mark.parametrize("path, count, side", [("zarr/series.ome.zarr/.zattrs", 2, 512), ("plates/hcs.ome.zarr/.zattrs", 8, 64)])
def test_every_image_of_a_folder_store_gets_thumbnails(drawn, path, count, side):
    for index in range(count):
        answer = requests.get(f"{image_url(drawn, drawn['accession'], path, index)}/thumbnail.png?size=128", timeout=30)
        assert answer.status_code == 200 and answer.headers["Content-Type"] == "image/png", (index, answer.text)
        picture = pixels(answer.content)
        assert max(picture.shape[:2]) == min(128, side) and picture.max() > picture.min()


def test_a_plane_of_a_folder_store_renders_from_the_level_asked(drawn):
    url = image_url(drawn, drawn["accession"], "zarr/series.ome.zarr/.zattrs", 1)
    answer = requests.get(f"{url}/render.png?level=1", timeout=30)
    assert answer.status_code == 200, answer.text
    source = zarr.open_group(str(SERIES_2 / "1"), mode="r")["1"][0, 0, 0]
    from loaders.previews.render import composite

    assert np.array_equal(pixels(answer.content), composite([np.asarray(source)], [None]))
    assert requests.get(f"{url}/render.png?level=2", timeout=30).status_code == 400


def test_an_embargoed_folder_stores_thumbnails_are_its_owners(drawn):
    url = image_url(drawn, drawn["embargoed"], "secret.ome.zarr/.zattrs", 0) + "/thumbnail.png"
    assert requests.get(url, timeout=30).status_code == 404
    assert requests.get(url, headers={"Authorization": f"Bearer {drawn['token']}"}, timeout=30).status_code == 200


def test_a_folder_store_in_s3_is_drawn_from_the_objects_the_drawing_asks_for(s3_site, monkeypatch):
    """The worker holds no credential and a store is many objects: the caller copies what the worker asks for, round
    by round (the metadata on the way to the image, then the chunks of the plane drawn), and lists nothing."""
    from loaders.previews import job as preview_job
    from loaders.previews.render import composite
    from tests.catalog_helpers import run_image_jobs

    store = s3_site["services"].archive.file_store
    listed: list[str] = []
    real_list = store.list
    monkeypatch.setattr(store, "list", lambda prefix="", **kw: listed.append(prefix) or real_list(prefix, **kw))
    run_image_jobs(s3_site["services"], preview_job.KIND)
    accession, path = s3_site["accession"], "zarr/series.ome.zarr/.zattrs"
    done = finished(s3_site["services"], preview_job.KIND, preview_job.renderer_version(), accession, path)
    assert done.result["status"] == "ok" and [i["status"] for i in done.result["images"]] == ["ok", "ok"], done.result
    for index in (0, 1):
        answer = requests.get(f"{image_url(s3_site, accession, path, index)}/thumbnail.png?size=256", timeout=30)
        assert answer.status_code == 200 and max(pixels(answer.content).shape[:2]) == 256
    rendered = requests.get(f"{image_url(s3_site, accession, path, 1)}/render.png?level=0", timeout=60)
    assert rendered.status_code == 200, rendered.text
    source = np.asarray(zarr.open_group(str(SERIES_2 / "1"), mode="r")["0"][0, 0, 0])
    assert np.array_equal(pixels(rendered.content), composite([source], [None]))
    assert not [prefix for prefix in listed if "series.ome.zarr" in prefix]


def finished(services, kind: str, version: str, accession: str, path: str, seconds: float = 60.0):
    """The job of ``kind`` for a file, once it has ended (the served app's background worker may hold it)."""
    import time

    queue = JobQueue.for_settings(services.archive.state, services.archive.settings)
    try:
        deadline = time.monotonic() + seconds
        while True:
            job = queue.job(kind, accession, f"studies/{accession}/{path}", version)
            if job.state in ("done", "failed") or time.monotonic() > deadline:
                return job
            time.sleep(0.2)
    finally:
        queue.close()


def test_copying_a_folders_metadata_from_s3_is_capped_in_objects_and_bytes(s3_site, monkeypatch, tmp_path):
    from loaders.image_headers import stored

    store = s3_site["services"].archive.file_store
    folder = f"studies/{s3_site['accession']}/zarr/series.ome.zarr"
    assert stored.copy_zarr_metadata(store, folder, tmp_path / "all", 1 << 20) is None
    copied = sorted(p.relative_to(tmp_path / "all").as_posix() for p in (tmp_path / "all").rglob("*") if p.is_file())
    assert "OME/METADATA.ome.xml" in copied and "0/0/.zarray" in copied and not any(c.endswith("/0/0/0/0") for c in copied)
    assert "byte cap" in (stored.copy_zarr_metadata(store, folder, tmp_path / "bytes", 100) or "")
    monkeypatch.setattr(stored, "MAX_METADATA_OBJECTS", 3)
    assert "more than 3 metadata objects" in (stored.copy_zarr_metadata(store, folder, tmp_path / "count", 1 << 20) or "")
