"""A hostile audit of the OME-Zarr surfaces: uploaded ``.ome.zarr.zip`` archives (one unpacked store, every series and
plate field served at its own ``…/ome.zarr``) and OME-Zarr uploaded as folders (served in place from the study's own
files). Real catalogs, real deposits, real jobs and real HTTP (a live server; raw request lines where a client would
normalise the path).

The tests under "found" are problems the audit found, each fixed at its root: a size past 64 bits hid a study's
images (header readers now refuse sizes over 2^40 per axis), an image group named twice became two images (image
paths are now distinct), results grew without bound from shared metadata (texts and lists are now cut), the
``ome_zarr`` job read under another byte cap than the header job, and studies failing to apply stalled the rest
(tests/test_image_facts.py covers the follower's back-off). The others are hostile inputs that are handled: metadata paths and store keys that try to leave the store, Range and
conditional requests, embargo, metadata that is not JSON, nested too deep or over the byte cap, members that collide,
markup in names, a Zarr v3 folder.

Stores are made here from the samples in tests/data/images/ome-zarr (see tests/data/images/SOURCES.txt).
"""

from __future__ import annotations

import io
import json
import logging
import threading
import zipfile
from pathlib import Path

import numpy as np
import pytest
import requests
import zarr
from werkzeug.serving import make_server

from catalog import identifiers
from catalog.errors import CatalogError
from catalog.jobs import JobQueue
from loaders.image_headers.job import KIND as HEADERS
from tests.catalog_helpers import deposit_files as deposit, raw_request
from tests.servers.seaweedfs_server import free_ports
from tests.test_ome_zarr import SETTINGS, result, work
from tests.test_ome_zarr_zip import members, zipped

SAMPLES = Path(__file__).parent / "data" / "images" / "ome-zarr"
SERIES_2 = SAMPLES / "fake-series-2.zarr"
PLATE = SAMPLES / "bia_hcs.ome.zarr"
PUBLIC_NAME = "AUDIT-PUBLIC-NAME"
SECRET_NAME = "AUDIT-SECRET-NAME"
MARKUP = "<script>alert(1)</script><img src=x onerror=alert(2)>"
#: a Zarr v2 array's metadata (2-D, uint16)
ARRAY = {"zarr_format": 2, "chunks": [4, 4], "dtype": "<u2", "compressor": None, "fill_value": 0, "order": "C", "filters": None}


# ---------------------------------------------------------------------- stores made here


def tree(folder: Path) -> dict[str, bytes]:
    """``folder``'s files by path relative to it."""
    return {item.relative_to(folder).as_posix(): item.read_bytes() for item in sorted(folder.rglob("*")) if item.is_file()}


def under(prefix: str, files: dict[str, bytes]) -> dict[str, bytes]:
    return {f"{prefix}/{key}": value for key, value in files.items()}


def in_order(items: list[tuple[str, bytes]]) -> bytes:
    """A zip of ``items`` in that order (stored)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in items:
            archive.writestr(name, data)
    return buffer.getvalue()


def named(name: str, label: str | None = None) -> dict[str, bytes]:
    """Series 0 of the two-series layout as a plain image called ``name`` (its one channel labelled ``label``)."""
    files = tree(SERIES_2 / "0")
    attrs = json.loads(files[".zattrs"])
    attrs["multiscales"][0]["name"] = name
    if label is not None:
        window = {"start": 0, "end": 255, "min": 0, "max": 255}
        attrs["omero"] = {"channels": [{"label": label, "color": "FFFFFF", "window": window}]}
    files[".zattrs"] = json.dumps(attrs).encode()
    return files


def series_listed(paths: list) -> dict[str, bytes]:
    """The two-series layout whose ``OME/.zattrs`` lists ``paths`` (its OME-XML left out)."""
    files = tree(SERIES_2)
    files.pop("OME/METADATA.ome.xml")
    files["OME/.zattrs"] = json.dumps({"series": paths}).encode()
    return files


def long_named(size: int) -> bytes:
    """Series 0's attributes with a name of ``size`` characters."""
    attrs = json.loads((SERIES_2 / "0" / ".zattrs").read_bytes())
    attrs["multiscales"][0]["name"] = "N" * size
    return json.dumps(attrs).encode()


def plate_with_wells(wells: list[str]) -> dict[str, bytes]:
    """The HCS plate sample whose plate lists ``wells`` (no series list, so the wells are read)."""
    files = tree(PLATE)
    for key in ("OME/.zattrs", "OME/METADATA.ome.xml"):
        files.pop(key)
    attrs = json.loads(files[".zattrs"])
    attrs["plate"]["wells"] = [{"path": well, "rowIndex": 0, "columnIndex": 0} for well in wells]
    files[".zattrs"] = json.dumps(attrs).encode()
    return files


def one_image(shape: list[int]) -> dict[str, bytes]:
    """A minimal NGFF 0.4 image whose level 0 claims ``shape`` (y, x)."""
    axes = [{"name": "y", "type": "space"}, {"name": "x", "type": "space"}]
    datasets = [{"path": "0", "coordinateTransformations": [{"type": "scale", "scale": [1.0, 1.0]}]}]
    attrs = {"multiscales": [{"version": "0.4", "axes": axes, "datasets": datasets}]}
    return {
        ".zgroup": b'{"zarr_format": 2}',
        ".zattrs": json.dumps(attrs).encode(),
        "0/.zarray": json.dumps({**ARRAY, "shape": shape}).encode(),
    }


def shared_instrument(images: int, detectors: int) -> dict[str, bytes]:
    """A bioformats2raw layout of ``images`` small images whose OME-XML gives them one instrument of ``detectors``
    detectors (channels naming none: each image is said to use them all)."""
    files = {
        ".zgroup": b'{"zarr_format": 2}',
        ".zattrs": b'{"bioformats2raw.layout": 3}',
        "OME/.zgroup": b'{"zarr_format": 2}',
        "OME/.zattrs": json.dumps({"series": [str(i) for i in range(images)]}).encode(),
    }
    for i in range(images):
        files.update(under(str(i), one_image([4, 4])))
    detector = '<Detector ID="Detector:0:{j}" Model="model {j} ' + "x" * 40 + '" Manufacturer="' + "y" * 40 + '" Type="CCD"/>'
    parts = [detector.format(j=j) for j in range(detectors)]
    pixels = '<Pixels ID="Pixels:{i}" DimensionOrder="XYZCT" Type="uint16" SizeX="4" SizeY="4" SizeZ="1" SizeC="1" SizeT="1">'
    pixels += '<Channel ID="Channel:{i}:0"/><MetadataOnly/></Pixels>'
    image = '<Image ID="Image:{i}" Name="image {i}"><InstrumentRef ID="Instrument:0"/>' + pixels + "</Image>"
    xml = (
        '<?xml version="1.0" encoding="UTF-8"?><OME xmlns="http://www.openmicroscopy.org/Schemas/OME/2016-06">'
        f'<Instrument ID="Instrument:0">{"".join(parts)}</Instrument>{"".join(image.format(i=i) for i in range(images))}</OME>'
    )
    files["OME/METADATA.ome.xml"] = xml.encode()
    return files


def v3_store(folder: Path) -> np.ndarray:
    """An NGFF 0.5 (Zarr v3) image at ``folder``; its pixels."""
    root = zarr.open_group(folder, mode="w", zarr_format=3)
    axes = [{"name": n, "type": "space", "unit": "micrometer"} for n in "yx"]
    datasets = [{"path": "0", "coordinateTransformations": [{"type": "scale", "scale": [0.5, 0.25]}]}]
    root.attrs["ome"] = {"version": "0.5", "multiscales": [{"axes": axes, "datasets": datasets, "name": "v3"}]}
    pixels = np.arange(8000, dtype="uint16").reshape(100, 80)
    root.create_array("0", shape=pixels.shape, chunks=(50, 40), dtype="uint16", dimension_names=["y", "x"])[:] = pixels
    return pixels


#: image paths a store's own metadata may name that lead out of it, or are not paths; ``{other}`` is another study's
ESCAPES = {
    "up": "../../s.ome.zarr/0",
    "other-study": "../../../{other}/e/f.ome.zarr/0",
    "encoded": "%2e%2e/s.ome.zarr/0",
    "backslash": "0\\..\\1",
    "dot": "./0",
    "absolute": "/0",
    "empty-segment": "0//",
    "bidi": "\u202e0",
    "nul": "0\x00",
}


def escaping(other: str) -> dict[str, bytes]:
    files: dict[str, bytes] = {}
    for name, path in ESCAPES.items():
        store = series_listed([path.format(other=other)])
        files[f"escape/{name}.ome.zarr.zip"] = members(store)
        files.update(under(f"escape/{name}.ome.zarr", store))
    plate = plate_with_wells(["A/1"])
    well = json.loads(plate["A/1/.zattrs"])
    well["well"]["images"] = [{"path": "../../B/1/0"}]
    plate["A/1/.zattrs"] = json.dumps(well).encode()
    files["escape/field.ome.zarr.zip"] = members(plate)
    return files


def hostile_metadata() -> dict[str, bytes]:
    image = tree(SERIES_2 / "0")
    deep_level = {**tree(SERIES_2 / "0"), "1/.zarray": b"[" * 100_000 + b"]" * 100_000}
    return {
        **under("bad/not-json.ome.zarr", {".zgroup": b"{", ".zattrs": b"\xff\xfe not json"}),
        **under("bad/deep.ome.zarr", {**image, ".zattrs": b'{"a": ' + b"[" * 50_000 + b"]" * 50_000 + b"}"}),
        "bad/deep-level.ome.zarr.zip": members(deep_level),
        "bad/file-and-folder.ome.zarr.zip": in_order(list(image.items()) + [("0/0", b"a file where a folder is")]),
        "bad/markup.ome.zarr.zip": members(named(MARKUP, MARKUP)),
    }


# ---------------------------------------------------------------------- the live site


def serve(made, port: int):
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = make_server("127.0.0.1", port, made.app(), threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.fixture(scope="module")
def site(make_module_catalog, tmp_path_factory):
    """One catalog: an embargoed study (a zip and a folder), a released study of hostile and plain stores, a study
    of stores that list one image twice and one whose metadata is repeated for every image; every job done."""
    (port,) = free_ports(1)
    base = f"http://127.0.0.1:{port}"
    made = make_module_catalog(name="ome-zarr-audit", base_url=base, **SETTINGS)
    services = made.services
    secret = {"e/s.ome.zarr.zip": members(named(SECRET_NAME)), **under("e/f.ome.zarr", tree(SERIES_2))}
    secret.update(under("e/named.ome.zarr", named(SECRET_NAME)))
    embargoed, token = deposit(services, secret, release_date="2999-01-01")
    v3 = tmp_path_factory.mktemp("v3") / "v3.ome.zarr"
    pixels = v3_store(v3)
    files = {
        "s.ome.zarr.zip": zipped(SERIES_2, top="s.ome.zarr"),
        **under("s.ome.zarr", tree(SERIES_2)),
        "s.ome.zarr/secret.txt": b"a file of the folder, outside every image group",
        "public.ome.zarr.zip": members(named(PUBLIC_NAME)),
        **under("v3.ome.zarr", tree(v3)),
        **escaping(embargoed),
        **hostile_metadata(),
    }
    accession, _token = deposit(services, files)
    repeated, _ = deposit(
        services,
        {
            "series-twice.ome.zarr.zip": members(series_listed(["0", "1", "0", "1", "0", "1"])),
            "wells-twice.ome.zarr.zip": members(plate_with_wells(["A/1", "A/2", "B/1", "B/2"] * 2)),
        },
    )
    amplified, _ = deposit(
        services,
        {
            "instrument.ome.zarr.zip": members(shared_instrument(100, 1000)),
            "name.ome.zarr.zip": members({**series_listed(["0"] * 60), "0/.zattrs": long_named(600_000)}),
        },
    )
    work(services)
    other, _ = made.token("mallory")
    server = serve(made, port)
    yield {
        "base": base,
        "services": services,
        "accession": accession,
        "embargoed": embargoed,
        "token": token,
        "other": other,
        "repeated": repeated,
        "amplified": amplified,
        "v3": pixels,
    }
    server.shutdown()


def image_url(site, accession: str, path: str, index: int = 0) -> str:
    return f"{site['base']}/studies/{accession}/images/{identifiers.image_id(accession, path, index)}"


def raw(site, path: str, headers: dict[str, str] | None = None, method: str = "GET") -> tuple[int, dict, bytes]:
    """A request whose path is sent exactly as given (no client normalisation)."""
    return raw_request(site["base"], path, headers, method)


def listing(site, accession: str, headers: dict | None = None) -> requests.Response:
    return requests.get(f"{site['base']}/studies/{accession}/images?limit=100", headers=headers or {})


def header_result_bytes(services, accession: str, path: str) -> int:
    with services.archive.state.transaction() as conn:
        row = conn.execute(
            "SELECT length(result) AS n FROM jobs WHERE study = ? AND file_key = ? AND kind = ? AND state = 'done'",
            (accession, f"studies/{accession}/{path}", HEADERS),
        ).fetchone()
    return int(row["n"])


# ---------------------------------------------------------------------- held: paths out of the store


@pytest.mark.parametrize("kind", ["zip", "folder"])
@pytest.mark.parametrize("name", sorted(ESCAPES))
def test_image_paths_in_the_metadata_that_leave_the_store_serve_nothing(site, name, kind):
    """A series list naming ``..``, another store of the study, another study's embargoed folder, an encoded or
    backslashed climb, ``/``, ``//``, a bidi character or a NUL: the file's job fails with a reason and nothing is
    served for it, never a 500."""
    accession = site["accession"]
    path = f"escape/{name}.ome.zarr.zip" if kind == "zip" else f"escape/{name}.ome.zarr/.zattrs"
    done = result(site["services"], accession, path)
    assert done.state == "failed" and done.reason, (done.state, done.result)
    item = next(i for i in listing(site, accession).json()["items"] if i["path"] == path)
    assert item["status"] in ("ok", "unreadable")
    for suffix in ("/ome.zarr/.zattrs", "/ome.zarr/0/.zarray", "/ome.zarr/0/0/0/0/0/0"):
        answer = requests.get(image_url(site, accession, path) + suffix)
        assert answer.status_code == 404 and answer.json()["status"] == 404, suffix


def test_a_plate_field_whose_path_climbs_out_of_its_well_serves_nothing(site):
    done = result(site["services"], site["accession"], "escape/field.ome.zarr.zip")
    assert done.state == "failed" and done.reason
    assert requests.get(image_url(site, site["accession"], "escape/field.ome.zarr.zip") + "/ome.zarr/.zattrs").status_code == 404


#: store keys sent as they are written here (percent-escapes decoded by the server only)
ESCAPING_KEYS = [
    "..",
    "../.zattrs",
    "%2e%2e/.zattrs",
    "%2E%2E%2F.zattrs",
    "..%2f..%2f..%2fsecret.txt",
    "0/../../secret.txt",
    ".%2e/secret.txt",
    "../secret.txt",
    "../../s.ome.zarr/secret.txt",
    "%252e%252e/secret.txt",
    "%C0%AE%C0%AE/secret.txt",
    "0%00",
    "%00",
    "0%5c.zarray",
    "0\\.zarray",
    "0//.zarray",
    "0/./.zarray",
    "a" * 600,
    "a/" * 3000,
    "%E2%80%AE0/.zarray",
    "%EF%BC%8F",
    "%ff%fe",
    "0/.zarray%20",
]


@pytest.mark.parametrize("path", ["s.ome.zarr.zip", "s.ome.zarr/.zattrs"])
def test_store_keys_that_try_to_escape_get_4xx_with_cors(site, path):
    """Series 1 of the layout (``image_path`` ``1``), unpacked from a zip and in place in a folder that also holds
    ``secret.txt`` at its top: no key reaches outside the image's group."""
    url = image_url(site, site["accession"], path, 1).removeprefix(site["base"]) + "/ome.zarr/"
    status, _headers, body = raw(site, url + ".zattrs")
    assert status == 200 and "multiscales" in json.loads(body)
    for key in ESCAPING_KEYS:
        status, headers, body = raw(site, url + key)
        assert status in (400, 404), (key, status)
        assert json.loads(body)["status"] == status and headers["Access-Control-Allow-Origin"] == "*", key
        assert b"outside every image group" not in body


@pytest.mark.parametrize("path", ["s.ome.zarr.zip", "s.ome.zarr/.zattrs"])
def test_range_and_conditional_requests_on_zip_and_folder_stores(site, path):
    chunk_url = image_url(site, site["accession"], path, 1).removeprefix(site["base"]) + "/ome.zarr/0/0/0/0/0/0"
    status, headers, whole = raw(site, chunk_url)
    assert status == 200 and len(whole) == int(headers["Content-Length"]) > 10
    etag, size = headers["ETag"], len(whole)
    status, headers, part = raw(site, chunk_url, {"Range": "bytes=2-9"})
    assert status == 206 and part == whole[2:10] and headers["Content-Range"] == f"bytes 2-9/{size}"
    status, headers, _ = raw(site, chunk_url, {"Range": "bytes=99999999999999999999999-"})
    assert status == 416 and headers["Content-Range"] == f"bytes */{size}"
    for malformed in ("bytes=5-2", "bytes=abc", "bytes=-0", "bytes=" + ",".join(["0-0"] * 2000)):
        status, _headers, body = raw(site, chunk_url, {"Range": malformed})
        assert status in (200, 206, 416) and len(body) <= size, malformed  # never more than the object
    assert raw(site, chunk_url, {"If-None-Match": etag})[0] == 304
    assert raw(site, chunk_url, {"If-Match": '"not-this-one"'})[0] == 412
    assert raw(site, chunk_url, {"If-None-Match": '"' + "a" * 6000 + '"'})[0] == 200
    assert raw(site, chunk_url, method="HEAD")[0] == 200
    assert raw(site, chunk_url, method="POST")[0] == 405


# ---------------------------------------------------------------------- held: embargo


EMBARGOED = [("e/s.ome.zarr.zip", 0), ("e/f.ome.zarr/.zattrs", 1), ("e/named.ome.zarr/.zattrs", 0)]


@pytest.mark.parametrize("path, index", EMBARGOED)
def test_embargoed_zip_and_folder_images_are_the_owners_only(site, path, index):
    accession = site["embargoed"]
    url = image_url(site, accession, path, index)
    strangers = [{}, {"Authorization": f"Bearer {site['other']}"}, {"Authorization": "Bearer not-a-token"}]
    owner = {"Authorization": f"Bearer {site['token']}"}
    for suffix in ("", "/ome.zarr/.zattrs", "/ome.zarr/0/.zarray", "/ome.zarr.json", "/thumbnail.png", "/render.png"):
        for who in strangers:
            answer = requests.get(url + suffix, headers={**who, "Accept": "application/ld+json"})
            assert answer.status_code == 404, (suffix, who)
            assert SECRET_NAME not in answer.text
    for suffix in ("", "/ome.zarr/.zattrs", "/ome.zarr/0/.zarray"):
        assert requests.get(url + suffix, headers={**owner, "Accept": "application/ld+json"}).status_code == 200, suffix
    for who in strangers:
        assert listing(site, accession, who).status_code == 404


def test_an_embargoed_stores_names_reach_no_public_search_or_query(site):
    query = 'SELECT DISTINCT ?o WHERE { GRAPH ?g { ?s ?p ?o FILTER(CONTAINS(STR(?o), "AUDIT-")) } }'
    found = requests.get(
        f"{site['base']}/sparql", params={"query": query}, headers={"Accept": "application/sparql-results+json"}
    ).json()
    values = [row["o"]["value"] for row in found["results"]["bindings"]]
    assert any(PUBLIC_NAME in value for value in values)  # the public study's name is found: the query works
    assert not any(SECRET_NAME in value for value in values)
    searched = requests.get(f"{site['base']}/search", params={"q": SECRET_NAME}, headers={"Accept": "application/json"})
    assert searched.status_code == 200 and searched.json()["total"] == 0
    studies = requests.get(f"{site['base']}/studies?limit=100", headers={"Accept": "application/json"})
    assert studies.status_code == 200 and SECRET_NAME not in studies.text and site["embargoed"] not in studies.text


# ---------------------------------------------------------------------- held: hostile metadata


@pytest.mark.parametrize(
    "path, reason",
    [
        ("bad/not-json.ome.zarr/.zattrs", "JSONDecodeError"),
        ("bad/deep.ome.zarr/.zattrs", "nested too deep"),
        ("bad/deep-level.ome.zarr.zip", "recursion"),
        ("bad/file-and-folder.ome.zarr.zip", "FileExistsError"),
    ],
)
def test_hostile_metadata_and_members_fail_the_job_with_a_reason_never_a_500(site, path, reason):
    accession = site["accession"]
    done = result(site["services"], accession, path)
    assert done.state == "failed" and reason in (done.reason or ""), done.reason
    url = image_url(site, accession, path)
    for suffix, accept in (("", "application/ld+json"), ("", "text/html"), ("/ome.zarr/.zattrs", "application/json")):
        assert requests.get(url + suffix, headers={"Accept": accept}).status_code < 500, suffix
    pages = (("", "text/html"), ("", "application/ld+json"), ("/files", "text/html"), ("/images", "application/json"))
    for page, accept in pages:
        assert requests.get(f"{site['base']}/studies/{accession}{page}", headers={"Accept": accept}).status_code == 200


def test_markup_in_a_zips_names_is_escaped_on_the_pages(site):
    accession = site["accession"]
    url = image_url(site, accession, "bad/markup.ome.zarr.zip")
    for page in (url, f"{site['base']}/studies/{accession}", f"{site['base']}/studies/{accession}/files"):
        answer = requests.get(page, headers={"Accept": "text/html"})
        assert answer.status_code == 200 and "<script>alert(1)" not in answer.text and "<img src=x" not in answer.text
    answer = listing(site, accession)
    assert answer.headers["Content-Type"].startswith("application/json")
    assert answer.headers.get("X-Content-Type-Options") == "nosniff"


def test_a_zarr_v3_folder_is_served_in_place_and_reads_back(site):
    accession = site["accession"]
    done = result(site["services"], accession, "v3.ome.zarr/zarr.json")
    assert done.state == "done" and [(i["kind"], i["ngff_version"]) for i in done.result["images"]] == [("in_place", "0.5")]
    url = image_url(site, accession, "v3.ome.zarr/zarr.json") + "/ome.zarr"
    group = zarr.open_group(zarr.storage.FsspecStore.from_url(url, read_only=True), mode="r", zarr_format=3)
    assert np.array_equal(group["0"][:], site["v3"])


def test_a_file_where_a_store_folder_would_be_is_refused_at_upload(make_catalog):
    services = make_catalog(**SETTINGS).services
    with pytest.raises(CatalogError, match="needs a folder where there is already a file"):
        deposit(services, {"x.ome.zarr": b"a file", **under("x.ome.zarr", tree(SERIES_2))})


# ---------------------------------------------------------------------- found: repeated images, outsized results


def test_an_image_group_named_twice_is_one_image(site):
    accession = site["repeated"]
    items = {item["path"]: item for item in listing(site, accession).json()["items"]}
    counts = {path: len(items[path]["images"]) for path in ("series-twice.ome.zarr.zip", "wells-twice.ome.zarr.zip")}
    paths = [i["image_path"] for i in result(site["services"], accession, "series-twice.ome.zarr.zip").result["images"]]
    assert counts == {"series-twice.ome.zarr.zip": 2, "wells-twice.ome.zarr.zip": 8} and len(paths) == len(set(paths))


@pytest.mark.parametrize("path", ["instrument.ome.zarr.zip", "name.ome.zarr.zip"])
def test_a_header_result_is_bounded_by_what_was_read(site, path):
    accession = site["amplified"]
    item = next(i for i in listing(site, accession).json()["items"] if i["path"] == path)
    assert item["status"] == "ok" and item["images"]
    assert header_result_bytes(site["services"], accession, path) < 2 << 20


# ---------------------------------------------------------------------- found: sizes past 64 bits


@pytest.fixture(scope="module")
def poisoned(make_module_catalog):
    """Twenty studies, each with an image claiming 2^64 rows (the first with a good zip beside it, the second with a
    good folder beside a folder that claims as much), applied; then a good study deposited after them, applied."""
    made = make_module_catalog(name="ome-zarr-audit-poisoned", **SETTINGS)
    services = made.services
    huge = one_image([1 << 64, 4])
    first, _ = deposit(services, {"huge.ome.zarr.zip": members(huge), "good.ome.zarr.zip": zipped(SERIES_2 / "0")})
    second, _ = deposit(services, {**under("huge.ome.zarr", huge), **under("good.ome.zarr", tree(SERIES_2 / "0"))})
    for _ in range(18):
        deposit(services, {"huge.ome.zarr.zip": members(huge)})
    logging.disable(logging.ERROR)  # each failed application logs its traceback
    try:
        work(services)
        later, _ = deposit(services, {"good.ome.zarr.zip": zipped(SERIES_2 / "0")})
        work(services)
    finally:
        logging.disable(logging.NOTSET)
    yield {"services": services, "client": made.app().test_client(), "zip": first, "folder": second, "later": later}


@pytest.mark.parametrize("kind", ["zip", "folder"])
def test_a_size_past_64_bits_does_not_hide_the_studys_other_images(poisoned, kind):
    accession = poisoned[kind]
    path = "good.ome.zarr.zip" if kind == "zip" else "good.ome.zarr/.zattrs"
    assert result(poisoned["services"], accession, path).state == "done"
    url = f"/studies/{accession}/images/{identifiers.image_id(accession, path, 0)}/ome.zarr/.zattrs"
    assert poisoned["client"].get(url).status_code == 200


def test_studies_that_fail_to_apply_do_not_stall_later_studies(poisoned):
    accession = poisoned["later"]
    assert result(poisoned["services"], accession, "good.ome.zarr.zip").state == "done"
    url = f"/studies/{accession}/images/{identifiers.image_id(accession, 'good.ome.zarr.zip', 0)}/ome.zarr/.zattrs"
    assert poisoned["client"].get(url).status_code == 200


# ---------------------------------------------------------------------- found: the byte cap the job reads under


@pytest.mark.parametrize("kind", ["zip", "folder"])
def test_the_ome_zarr_job_reads_under_the_catalogs_header_byte_cap(make_catalog, kind):
    made = make_catalog(header_max_bytes=1 << 20, **SETTINGS)
    files = tree(SERIES_2 / "0")
    files[".zattrs"] = b'{"padding": "' + b" " * (3 << 20) + b'", ' + files[".zattrs"].lstrip()[1:]
    path = "big.ome.zarr.zip" if kind == "zip" else "big.ome.zarr/.zattrs"
    upload = {path: members(files)} if kind == "zip" else under("big.ome.zarr", files)
    accession, _ = deposit(made.services, upload)
    work(made.services)
    queue = JobQueue.for_settings(made.services.archive.state, made.services.archive.settings)
    try:
        headers = queue.job(HEADERS, accession, f"studies/{accession}/{path}", _header_version())
    finally:
        queue.close()
    assert headers.result["status"] == "unreadable" and "byte cap" in headers.result["reason"]
    assert result(made.services, accession, path).state == "failed"


def _header_version() -> str:
    from catalog.jobs import kinds

    return kinds()[HEADERS].version


def test_a_file_of_many_images_is_listed_a_hundred_images_at_a_time(make_catalog):
    """Found by the audit: the listing paged by file, so five zips of 10,000 images made a 12 MB page. Each file now
    lists at most 100 of its images, with ``image_count`` and a ``more_images`` link to the next ones."""
    from tests.catalog_helpers import run_image_jobs

    layout = {".zgroup": b'{"zarr_format": 2}', ".zattrs": b'{"bioformats2raw.layout": 3}'}
    for number in range(230):
        layout.update(under(str(number), one_image([2, 2])))
    made = make_catalog(**SETTINGS)
    accession, _ = deposit(made.services, {"many.ome.zarr.zip": members(layout), "one.ome.zarr.zip": zipped(SERIES_2 / "0")})
    run_image_jobs(made.services, HEADERS)
    client = made.app().test_client()
    first = client.get(f"/studies/{accession}/images").get_json()
    many = next(item for item in first["items"] if item["path"] == "many.ome.zarr.zip")
    assert (many["image_count"], len(many["images"])) == (230, 100) and many["more_images"]
    one = next(item for item in first["items"] if item["path"] == "one.ome.zarr.zip")
    assert (one["image_count"], len(one["images"]), one["more_images"]) == (1, 1, None)
    seen = [image["index"] for image in many["images"]]
    link = many["more_images"]
    while link:
        page = client.get(link.removeprefix(made.settings.base_url)).get_json()
        (item,) = page["items"]
        seen += [image["index"] for image in item["images"]]
        link = item["more_images"]
    assert seen == list(range(230))
