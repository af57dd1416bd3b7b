"""Every image gets an OME-Zarr a Python client reads over HTTP: a virtual store referencing a tiled OME-TIFF's own
bytes, converted stores of MRC maps, PNGs and TIFFs Zarr cannot read in place, an uploaded ``.ome.zarr.zip``
unpacked; each validates as NGFF 0.4 (ome-zarr-models) and reads back with ome-zarr-py; level 0 equals the source's
pixels. Hostile files fail their jobs with a reason; an embargoed study's stores appear on release, unchanged.

Real pixels (tests/data/images/SOURCES.txt): the fluorescence nuclei TIFF (a tiled pyramidal OME-TIFF is assembled
from it here), the EMDB maps, the quantitative-phase and IHC PNGs, the Bio-Formats fake two-series OME-Zarr layout.
"""

from __future__ import annotations

import io
import json
import threading
import zipfile
from contextlib import contextmanager
from pathlib import Path

import fsspec
import mrcfile
import numpy as np
import pytest
import tifffile
import zarr
from PIL import Image
from werkzeug.serving import make_server

from catalog.jobs import FAILED, JobQueue
from loaders.image_headers.job import KIND as HEADERS
from loaders.ngff import job as ome_zarr_job
from loaders.ngff.metadata import validate_group
from tests.catalog_helpers import run_image_jobs, deposit_files as deposit, serving
from tests.servers.seaweedfs_server import free_ports

IMAGES = Path(__file__).parent / "data" / "images"
NUCLEI = IMAGES / "tiff" / "stardist_img2d.tif"


def pyramid_tiff(path: Path, *, predictor: bool = False, repeat: int = 4) -> np.ndarray:
    """A tiled, zlib-compressed pyramidal OME-TIFF of the nuclei image tiled ``repeat`` × ``repeat`` (0.5 µm pixels)."""
    full = np.tile(tifffile.imread(NUCLEI), (repeat, repeat))
    options = {"tile": (256, 256), "compression": "zlib", "photometric": "minisblack", "predictor": predictor}
    meta = {"axes": "YX", "PhysicalSizeX": 0.5, "PhysicalSizeXUnit": "µm", "PhysicalSizeY": 0.5, "PhysicalSizeYUnit": "µm"}
    with tifffile.TiffWriter(path, ome=True) as writer:
        writer.write(full, subifds=2, metadata=meta, **options)
        writer.write(full[::2, ::2], subfiletype=1, **options)
        writer.write(full[::4, ::4], subfiletype=1, **options)
    return full


def huge_tiff(path: Path) -> None:
    """A small TIFF whose header claims 2^20 × 2^20 pixels."""
    tifffile.imwrite(path, np.zeros((16, 16), np.uint16))
    with tifffile.TiffFile(path, mode="r+b") as tif:
        tif.pages[0].tags["ImageWidth"].overwrite(1 << 20)
        tif.pages[0].tags["ImageLength"].overwrite(1 << 20)


def zipped(folder: Path, *, slip: bool = False) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for item in sorted(folder.rglob("*")):
            if item.is_file():
                archive.write(item, f"{folder.name}/{item.relative_to(folder).as_posix()}")
        if slip:
            archive.writestr("../../outside.txt", b"escaped")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, bytes]:
    folder = tmp_path_factory.mktemp("ome-zarr-sources")
    pyramid_tiff(folder / "pyramid.ome.tif")
    pyramid_tiff(folder / "predictor.ome.tif", predictor=True, repeat=1)
    huge_tiff(folder / "huge.tif")
    emd = (IMAGES / "mrc" / "EMD-3001.map").read_bytes()
    return {
        "tiled/pyramid.ome.tif": (folder / "pyramid.ome.tif").read_bytes(),
        "tiled/predictor.ome.tif": (folder / "predictor.ome.tif").read_bytes(),
        "plain/img2d.tif": NUCLEI.read_bytes(),
        "maps/EMD-3001.map": emd,
        "maps/emd_3197.map.gz": (IMAGES / "mrc" / "emd_3197.map.gz").read_bytes(),
        "png/skimage_cell.png": (IMAGES / "png" / "skimage_cell.png").read_bytes(),
        "png/skimage_ihc.png": (IMAGES / "png" / "skimage_ihc.png").read_bytes(),
        "zarr/fake-series-2.ome.zarr.zip": zipped(IMAGES / "ome-zarr" / "fake-series-2.zarr"),
        "hostile/slip.ome.zarr.zip": zipped(IMAGES / "ome-zarr" / "fake-series-2.zarr", slip=True),
        "hostile/huge.tif": (folder / "huge.tif").read_bytes(),
        "hostile/truncated.map": emd[: len(emd) // 2],
    }


def work(services) -> None:
    """Read the headers, make the OME-Zarr, apply the headers (the image index)."""
    run_image_jobs(services, HEADERS, ome_zarr_job.KIND)


def result(services, accession: str, path: str):
    queue = JobQueue.for_settings(services.archive.state, services.archive.settings)
    try:
        return queue.job(ome_zarr_job.KIND, accession, f"studies/{accession}/{path}", ome_zarr_job.job_version())
    finally:
        queue.close()


SETTINGS = {"job_attempts": 1, "job_retry_seconds": 0.0, "ome_zarr_max_memory_mb": 768, "ome_zarr_timeout": 120.0}


@contextmanager
def image_site(make_module_catalog, name: str, released: dict[str, bytes], embargoed: dict[str, bytes] | None = None, **extra):
    """A live server over a released study of ``released`` files (and an embargoed one of ``embargoed``), the header
    and OME-Zarr jobs done: ``{"base", "accession", "embargoed", "token", "services"}``."""
    (port,) = free_ports(1)
    made = make_module_catalog(name=name, base_url=f"http://127.0.0.1:{port}", **SETTINGS, **extra)
    accession, _token = deposit(made.services, released)
    secret, token = deposit(made.services, embargoed, release_date="2999-01-01") if embargoed else (None, None)
    work(made.services)
    with serving(made.app(), port) as base:
        yield {"base": base, "accession": accession, "embargoed": secret, "token": token, "services": made.services}


@pytest.fixture(scope="module")
def site(make_module_catalog, files):
    """A live server over a released study of every kind of image, its jobs done."""
    (port,) = free_ports(1)
    base = f"http://127.0.0.1:{port}"
    made = make_module_catalog(name="ome-zarr", base_url=base, **SETTINGS)
    accession, _token = deposit(made.services, files)
    work(made.services)
    server = make_server("127.0.0.1", port, made.app(), threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield {"base": base, "accession": accession, "services": made.services, "settings": made.settings}
    server.shutdown()


def image_url(site, path: str, index: int = 0) -> str:
    ident = ome_zarr_job.image_id(site["accession"], path, index)
    return f"{site['base']}/studies/{site['accession']}/images/{ident}"


def open_http(url: str):
    return zarr.open_group(zarr.storage.FsspecStore.from_url(url + "/ome.zarr", read_only=True), mode="r", zarr_format=2)


def test_virtual_store_references_the_tiff_and_reads_like_tifffile_over_http(site, files):
    done = result(site["services"], site["accession"], "tiled/pyramid.ome.tif")
    assert done.state == "done", done.reason
    image = done.result["images"][0]
    assert image["kind"] == done.result["kind"] == "virtual" and image["levels"] == 3
    assert image["size_bytes"] <= 0.01 * len(files["tiled/pyramid.ome.tif"])
    url = image_url(site, "tiled/pyramid.ome.tif")
    document = json.loads(fsspec.open(url + "/ome.zarr.json").open().read())
    assert document["templates"]["u"].startswith(site["base"] + "/files/")
    options = {"fo": document, "remote_protocol": "http", "remote_options": {"asynchronous": True}, "asynchronous": True}
    via_refs = zarr.open_group("reference://", storage_options=options, mode="r", zarr_format=2)
    plain = open_http(url)
    with tifffile.TiffFile(io.BytesIO(files["tiled/pyramid.ome.tif"])) as tif:
        for level, box in ((0, np.s_[300:900, 1000:1700]), (1, np.s_[0:1024, 500:700]), (2, np.s_[:, :])):
            expected = tif.series[0].levels[level].asarray()[box]
            assert np.array_equal(plain[str(level)][box], expected), level
            assert np.array_equal(via_refs[str(level)][box], expected), level
    scale = plain.attrs["multiscales"][0]["datasets"][0]["coordinateTransformations"][0]["scale"]
    axes = plain.attrs["multiscales"][0]["axes"]
    assert scale == [0.5, 0.5] and axes[-1] == {"name": "x", "type": "space", "unit": "micrometer"}
    validate_group(plain)


@pytest.mark.parametrize(
    "path, read, scale",
    [
        ("plain/img2d.tif", lambda b: tifffile.imread(io.BytesIO(b)), None),
        ("tiled/predictor.ome.tif", lambda b: tifffile.imread(io.BytesIO(b)), [0.5, 0.5]),
        ("maps/EMD-3001.map", None, None),
        ("maps/emd_3197.map.gz", None, None),
        ("png/skimage_cell.png", lambda b: np.asarray(Image.open(io.BytesIO(b))), None),
        ("png/skimage_ihc.png", lambda b: np.moveaxis(np.asarray(Image.open(io.BytesIO(b))), -1, 0), None),
    ],
)
def test_converted_store_level_0_is_the_source_pixels(site, files, tmp_path, path, read, scale):
    done = result(site["services"], site["accession"], path)
    assert done.state == "done", done.reason
    image = done.result["images"][0]
    assert image["kind"] == "converted" and image["store_key"].endswith("/ome.zarr")
    if path.endswith((".map", ".map.gz")):
        local = tmp_path / Path(path).name
        local.write_bytes(files[path])
        expected = mrcfile.read(local)
    else:
        expected = read(files[path])
    group = open_http(image_url(site, path))
    level0 = group["0"][...]
    assert level0.dtype == expected.dtype and np.array_equal(level0, expected)
    validate_group(group)
    if scale:
        assert group.attrs["multiscales"][0]["datasets"][0]["coordinateTransformations"][0]["scale"] == scale
    if path == "maps/EMD-3001.map":
        axes = group.attrs["multiscales"][0]["axes"]
        assert [a["unit"] for a in axes] == ["angstrom"] * 3
        assert group.attrs["multiscales"][0]["datasets"][0]["coordinateTransformations"][0]["scale"][0] == pytest.approx(0.3925)


def test_ome_zarr_py_reads_the_served_stores(site):
    from ome_zarr.io import parse_url
    from ome_zarr.reader import Reader

    for path in ("tiled/pyramid.ome.tif", "maps/EMD-3001.map", "png/skimage_ihc.png"):
        location = parse_url(image_url(site, path) + "/ome.zarr")
        assert location is not None, path
        nodes = list(Reader(location)())
        assert nodes and len(nodes[0].data) == result(site["services"], site["accession"], path).result["levels"], path


def test_an_uploaded_ome_zarr_zip_is_unpacked_and_validates(site):
    done = result(site["services"], site["accession"], "zarr/fake-series-2.ome.zarr.zip")
    assert done.state == "done", done.reason
    image = done.result["images"][0]
    assert image["kind"] == "unpacked" and image["image_path"] == "0" and image["levels"] == 2
    store = site["services"].archive.file_store
    keys = {obj.key.removeprefix(image["store_key"] + "/") for obj in store.list(image["store_key"] + "/")}
    assert {".zattrs", "0/.zattrs", "0/0/.zarray", "OME/METADATA.ome.xml"} <= keys
    assert not any(".." in key for key in keys)


@pytest.mark.parametrize(
    "path, reason",
    [
        ("hostile/slip.ome.zarr.zip", "'..' segment"),
        ("hostile/huge.tif", "pixels, more than"),
        ("hostile/truncated.map", "truncated"),
    ],
)
def test_hostile_files_fail_their_job_with_a_reason(site, path, reason):
    done = result(site["services"], site["accession"], path)
    assert done.state == FAILED and reason in (done.reason or ""), done.reason
    assert "ConversionFailed" in done.reason
    store = site["services"].archive.file_store
    assert not any("outside" in obj.key for obj in store.list("", checksums=False))


def test_keys_are_checked_and_answers_carry_cors_etag_and_ranges(site):
    url = image_url(site, "tiled/pyramid.ome.tif")
    import requests

    chunk = requests.get(url + "/ome.zarr/0/1/2")
    assert chunk.status_code == 200 and chunk.headers["Access-Control-Allow-Origin"] == "*"
    etag = chunk.headers["ETag"]
    assert requests.get(url + "/ome.zarr/0/1/2", headers={"If-None-Match": etag}).status_code == 304
    part = requests.get(url + "/ome.zarr/0/1/2", headers={"Range": "bytes=2-9"})
    assert part.status_code == 206 and part.content == chunk.content[2:10]
    meta = requests.get(url + "/ome.zarr/.zattrs")
    assert meta.headers["Content-Type"] == "application/json" and "multiscales" in meta.json()
    for key, status in (("0/99/99", 404), ("nope/.zarray", 404), ("0/%2E%2E/x", 400), ("a" * 600, 400)):
        answer = requests.get(f"{url}/ome.zarr/{key}")
        assert answer.status_code == status, key
        assert answer.json()["status"] == status and answer.headers["Access-Control-Allow-Origin"] == "*"
    converted = image_url(site, "plain/img2d.tif")
    assert requests.get(converted + "/ome.zarr.json").status_code == 404
    obj = requests.get(converted + "/ome.zarr/0/.zarray")
    assert obj.status_code == 200 and obj.json()["shape"] == [512, 512]
    assert requests.get(converted + "/ome.zarr/0/.zarray", headers={"If-None-Match": obj.headers["ETag"]}).status_code == 304
    preflight = requests.options(
        url + "/ome.zarr/0/0/0", headers={"Origin": "https://vizarr.example", "Access-Control-Request-Method": "GET"}
    )
    assert preflight.status_code == 200 and "Range" in preflight.headers["Access-Control-Allow-Headers"]


def test_embargoed_stores_are_the_owners_until_release_and_need_no_new_work(make_catalog, files):
    catalog = make_catalog(**SETTINGS)
    services = catalog.services
    wanted = {k: files[k] for k in ("tiled/pyramid.ome.tif", "png/skimage_cell.png")}
    accession, token = deposit(services, wanted, release_date="2999-01-01")
    work(services)
    client = catalog.app().test_client()
    owner = {"Authorization": f"Bearer {token}"}
    paths = []
    for path, kind in (("tiled/pyramid.ome.tif", "virtual"), ("png/skimage_cell.png", "converted")):
        done = result(services, accession, path)
        assert done.state == "done" and done.result["kind"] == kind
        base = f"/studies/{accession}/images/{ome_zarr_job.image_id(accession, path, 0)}"
        paths += [f"{base}/ome.zarr/.zattrs", f"{base}/ome.zarr/0/.zarray", f"{base}/ome.zarr/0/0/0"]
        if kind == "virtual":
            paths.append(f"{base}/ome.zarr.json")
    before = {p: result(services, accession, p).updated for p in wanted}
    for path in paths:
        assert client.get(path).status_code == 404, path
        assert client.get(path, headers=owner).status_code == 200, path
    services.archive.release_due(today="2999-01-02")
    work(services)
    for path in paths:
        assert client.get(path).status_code == 200, path
    assert {p: result(services, accession, p).updated for p in wanted} == before  # nothing was made again
