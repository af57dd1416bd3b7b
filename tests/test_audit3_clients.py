"""The image-streaming surface as the clients real users bring see it: every kind of OME-Zarr store (virtual, converted,
unpacked from a zip, an uploaded folder; and a harvested study's virtual store, whose chunks the app fetches from the
source archive, a local range server) served over real HTTP and read by zarr-python 3 (FsspecStore), fsspec's
HTTPFileSystem (HEAD, Range requests), ome-zarr-py's reader, fsspec's ReferenceFileSystem over the reference document,
and a plain HTTP client sending what browsers and viewers send (preflights, Range forms, conditional requests, odd
keys). Every kind answers alike: the same status codes, headers (Content-Length, Content-Range, ETag, Accept-Ranges,
CORS) for HEAD as for GET, the one error shape for every 4xx, never a 500, and the source's pixels exactly.

Problems this audit found, fixed at their root and tested here: a virtual store's metadata objects and its reference
document ignored Range (fsspec's ``cat_file(start, end)`` got the whole document as if it were the range, and
``open().seek()`` refused the server) and If-Match; a weak validator in If-Range was taken as a match (RFC 9110
13.1.5: a strong comparison); the store's root (``…/ome.zarr``, ``…/ome.zarr/``) and a method the routes do not take
were answered without CORS headers, which a browser viewer sees as a network error; a HEAD of a harvested study's
chunk fetched the chunk from its source archive.

Real pixels (tests/data/images/SOURCES.txt): the fluorescence nuclei TIFF (tiled pyramidal OME-TIFFs are assembled
from it), the skimage cell PNG, the Bio-Formats fake two-series OME-Zarr layout (zipped, and as a folder).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

import fsspec
import numpy as np
import pytest
import tifffile
import zarr
from PIL import Image

from catalog import identifiers
from tests.catalog_helpers import raw_request
from tests.test_ome_zarr import image_site, pyramid_tiff
from tests.test_ome_zarr_folder import folder_files
from tests.test_ome_zarr_harvested import PYRAMID as HARVESTED_PYRAMID
from tests.test_ome_zarr_harvested import files_path, image_path, pyramid, source  # noqa: F401 (fixtures)
from tests.test_ome_zarr_harvested import site as harvested  # noqa: F401 (a fixture)
from tests.test_ome_zarr_zip import zipped

IMAGES = Path(__file__).parent / "data" / "images"
SERIES_2 = IMAGES / "ome-zarr" / "fake-series-2.zarr"
CELL = IMAGES / "png" / "skimage_cell.png"
KINDS = ("virtual", "converted", "zip", "folder", "harvested")
ERROR_KEYS = {"code", "status", "message", "errors"}


@pytest.fixture(scope="module")
def local(make_module_catalog, tmp_path_factory):
    """A live catalog over a released study holding one image of each local kind of store, its jobs done."""
    tiff = tmp_path_factory.mktemp("audit3-clients") / "p.ome.tif"
    pyramid_tiff(tiff, repeat=2)
    files = {
        "tiled/p.ome.tif": tiff.read_bytes(),
        "png/cell.png": CELL.read_bytes(),
        "zarr/s.ome.zarr.zip": zipped(SERIES_2, top="s.ome.zarr"),
        **folder_files(SERIES_2, "folder/f.ome.zarr"),
    }
    with image_site(make_module_catalog, "audit3-clients", files) as made:
        made["tiff"] = tiff
        yield made


class Store:
    """One served image's store: where it is, a chunk key of it, and what its levels hold."""

    def __init__(self, base: str, path: str, chunk: str, levels: Callable[[], list[np.ndarray]]) -> None:
        self.base, self.path, self.chunk, self.levels = base, path, chunk, levels

    @property
    def url(self) -> str:
        return self.base + self.path + "/ome.zarr"

    def raw(self, key: str, headers: dict[str, str] | None = None, method: str = "GET") -> tuple[int, dict, bytes]:
        """``method`` of the store's ``key`` (a path as sent, unnormalised; ``""`` for the store itself)."""
        return raw(self.base, f"{self.path}/ome.zarr{key}", headers, method)


def raw(base: str, path: str, headers: dict[str, str] | None = None, method: str = "GET") -> tuple[int, dict, bytes]:
    """A request whose path is sent exactly as given: status, headers, body."""
    return raw_request(base, path, headers, method)


def tiff_levels(path: Path) -> list[np.ndarray]:
    with tifffile.TiffFile(path) as tif:
        return [level.asarray() for level in tif.series[0].levels]


def zarr_levels(group: Path) -> list[np.ndarray]:
    opened = zarr.open_group(str(group), mode="r")
    return [opened[d["path"]][...] for d in opened.attrs.asdict()["multiscales"][0]["datasets"]]


def png_level0() -> list[np.ndarray]:
    return [np.asarray(Image.open(CELL))]


@pytest.fixture(scope="module")
def stores(local, harvested, pyramid) -> dict[str, Store]:  # noqa: F811 (pyramid: a fixture)
    acc, base = local["accession"], local["base"]

    def at(path: str) -> str:
        return f"/studies/{acc}/images/{identifiers.image_id(acc, path, 0)}"

    return {
        "virtual": Store(base, at("tiled/p.ome.tif"), "/0/1/1", lambda: tiff_levels(local["tiff"])),
        "converted": Store(base, at("png/cell.png"), "/0/0/0", png_level0),
        "zip": Store(base, at("zarr/s.ome.zarr.zip"), "/0/0/0/0/0/0", lambda: zarr_levels(SERIES_2 / "0")),
        "folder": Store(base, at("folder/f.ome.zarr/.zattrs"), "/0/0/0/0/0/0", lambda: zarr_levels(SERIES_2 / "0")),
        "harvested": Store(harvested["base"], image_path(HARVESTED_PYRAMID), "/0/1/1", lambda: tiff_levels(pyramid)),
    }


def assert_error(status: int, headers: dict, body: bytes, expected: int | tuple[int, ...]) -> dict:
    """An answer in the one error shape, with CORS headers and a Content-Length that frames its body."""
    assert status in ((expected,) if isinstance(expected, int) else expected), (status, body[:300])
    shaped = json.loads(body)
    assert set(shaped) == ERROR_KEYS and shaped["status"] == status, shaped
    assert headers.get("Access-Control-Allow-Origin") == "*", (status, headers)
    assert int(headers["Content-Length"]) == len(body)
    return shaped


# ---------------------------------------------------------------------- real clients read the pixels


@pytest.mark.parametrize("kind", KINDS)
def test_zarr_python_finds_the_format_itself_and_reads_every_level_exactly(stores, kind):
    """zarr-python 3 with no format given asks ``zarr.json`` (a 404 on these v2 stores) and consolidated metadata
    (``.zmetadata``, a 404) before ``.zgroup``: each answer lets it go on, and every level is the source's pixels."""
    store = stores[kind]
    group = zarr.open_group(zarr.storage.FsspecStore.from_url(store.url, read_only=True), mode="r")
    assert group.metadata.zarr_format == 2
    datasets = group.attrs.asdict()["multiscales"][0]["datasets"]
    expected = store.levels()
    assert len(datasets) >= len(expected)
    for dataset, pixels in zip(datasets, expected):
        served = group[dataset["path"]][...]
        assert served.dtype == pixels.dtype and np.array_equal(served, pixels), (kind, dataset["path"])


@pytest.mark.parametrize("kind", KINDS)
def test_ome_zarr_py_reads_every_kind_as_a_multiscale_image(stores, kind):
    from ome_zarr.io import parse_url
    from ome_zarr.reader import Multiscales, Reader

    location = parse_url(stores[kind].url)
    assert location is not None, kind
    node = list(Reader(location)())[0]
    assert node.load(Multiscales) is not None
    level0 = np.asarray(node.data[0])
    assert np.array_equal(np.squeeze(level0), np.squeeze(stores[kind].levels()[0])), kind


@pytest.mark.parametrize("kind", ["virtual", "harvested"])
def test_the_reference_document_reads_through_reference_filesystem_exactly(stores, kind):
    store = stores[kind]
    document = fsspec.filesystem("http").cat_file(store.base + store.path + "/ome.zarr.json")
    options = {"fo": json.loads(document), "remote_protocol": "http", "remote_options": {"asynchronous": True}}
    group = zarr.open_group("reference://", storage_options={**options, "asynchronous": True}, mode="r", zarr_format=2)
    for level, pixels in enumerate(store.levels()):
        assert np.array_equal(group[str(level)][...], pixels), (kind, level)


# ---------------------------------------------------------------------- fsspec's HTTPFileSystem


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("key", [".zattrs", "0/.zarray", "chunk"])
def test_fsspec_reads_any_byte_range_of_any_object(stores, kind, key):
    """``cat_file(start, end)``, ``cat_ranges`` and a seekable ``open`` send Range requests; each gets exactly the
    bytes asked for, of metadata objects as of chunks, and ``info`` (a HEAD) gives the size GET serves."""
    store = stores[kind]
    url = f"{store.url}/{store.chunk.lstrip('/') if key == 'chunk' else key}"
    fs = fsspec.filesystem("http", skip_instance_cache=True)
    whole = fs.cat_file(url)
    assert fs.info(url)["size"] == len(whole) > 20
    assert fs.cat_file(url, start=5, end=15) == whole[5:15]
    assert fs.cat_file(url, start=-7) == whole[-7:]
    assert fs.cat_ranges([url, url], [0, 3], [4, 9]) == [whole[:4], whole[3:9]]
    with fs.open(url, block_size=8) as opened:
        opened.seek(10)
        assert opened.read(5) == whole[10:15]
    assert fs.exists(url) and not fs.exists(f"{store.url}/nope/.zarray")


# ---------------------------------------------------------------------- what browsers and viewers send


@pytest.mark.parametrize("kind", KINDS)
def test_a_preflight_for_range_is_allowed_on_every_object(stores, kind):
    store = stores[kind]
    ask = {"Origin": "https://viewer.example", "Access-Control-Request-Method": "GET", "Access-Control-Request-Headers": "range"}
    paths = [f"{store.path}/ome.zarr{store.chunk}", f"{store.path}/ome.zarr/.zattrs", f"{store.path}/ome.zarr.json"]
    for path in paths:
        status, headers, _ = raw(store.base, path, ask, "OPTIONS")
        assert status in (200, 204) and headers["Access-Control-Allow-Origin"] == "*", path
        assert "range" in headers["Access-Control-Allow-Headers"].lower()
        assert "GET" in headers["Access-Control-Allow-Methods"]
        exposed = headers["Access-Control-Expose-Headers"].lower()
        assert {"content-range", "content-length", "etag", "accept-ranges"} <= set(map(str.strip, exposed.split(",")))


def range_cases(size: int) -> list[tuple[str, int, tuple[int, int] | None]]:
    """(Range header, expected status, expected [lo, hi) or None for the whole object)."""
    return [
        ("bytes=0-9", 206, (0, 10)),
        ("bytes=5-", 206, (5, size)),
        ("bytes=-5", 206, (size - 5, size)),
        (f"bytes=-{size + 50}", 206, (0, size)),
        (f"bytes=0-{size + 100}", 206, (0, size)),
        (f"bytes={size - 1}-{size - 1}", 206, (size - 1, size)),
        ("bytes=0-1,4-5", 200, None),  # several ranges: the whole object (RFC 9110 allows it)
        ("bytes=abc", 200, None),  # not a range: ignored
        ("bytes=3-2", 200, None),
        ("items=0-1", 200, None),
        (f"bytes={size}-", 416, None),
        (f"bytes={size + 10}-{size + 20}", 416, None),
    ]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("key", [".zattrs", "0/.zarray", "chunk"])
def test_every_range_form_is_answered_alike_by_every_kind_for_get_and_head(stores, kind, key):
    store = stores[kind]
    key = store.chunk if key == "chunk" else "/" + key
    status, plain, whole = store.raw(key)
    assert status == 200 and int(plain["Content-Length"]) == len(whole)
    assert plain["Accept-Ranges"] == "bytes" and plain["ETag"].startswith('"') and plain["Access-Control-Allow-Origin"] == "*"
    head = store.raw(key, method="HEAD")
    assert (head[0], head[2]) == (200, b"") and {k: head[1].get(k) for k in HEADERS} == {k: plain.get(k) for k in HEADERS}
    size = len(whole)
    for asked, expected, span in range_cases(size):
        got_status, got, body = store.raw(key, {"Range": asked})
        assert got_status == expected, (kind, key, asked, got_status, body[:200])
        if expected == 416:
            assert_error(got_status, got, body, 416)
            assert got["Content-Range"] == f"bytes */{size}"
        else:
            lo, hi = span or (0, size)
            assert body == whole[lo:hi] and int(got["Content-Length"]) == hi - lo, (kind, key, asked)
            assert got.get("Content-Range") == (f"bytes {lo}-{hi - 1}/{size}" if span else None), asked
            assert got["ETag"] == plain["ETag"] and got["Accept-Ranges"] == "bytes"
        head_status, head_headers, head_body = store.raw(key, {"Range": asked}, "HEAD")
        assert (head_status, head_body) == (got_status, b""), (kind, key, asked)
        assert {k: head_headers.get(k) for k in HEADERS} == {k: got.get(k) for k in HEADERS}, (kind, key, asked)


HEADERS = ("Content-Length", "Content-Range", "ETag", "Accept-Ranges", "Content-Type", "Access-Control-Allow-Origin")


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("key", [".zattrs", "chunk"])
def test_conditional_requests_follow_rfc_9110_on_every_kind(stores, kind, key):
    store = stores[kind]
    key = store.chunk if key == "chunk" else "/" + key
    _status, plain, whole = store.raw(key)
    etag = plain["ETag"]
    for header, value, expected in (
        ("If-None-Match", etag, 304),
        ("If-None-Match", "W/" + etag, 304),  # weak comparison
        ("If-None-Match", f'"other", {etag}', 304),
        ("If-None-Match", "*", 304),
        ("If-None-Match", '"other"', 200),
        ("If-Match", etag, 200),
        ("If-Match", "*", 200),
        ("If-Match", f'"other", {etag}', 200),
        ("If-Match", '"other"', 412),
        ("If-Match", "W/" + etag, 412),  # strong comparison: a weak tag never matches
    ):
        for method in ("GET", "HEAD"):
            status, headers, body = store.raw(key, {header: value}, method)
            assert status == expected, (kind, key, header, value, method)
            if expected == 304:
                assert body == b"" and headers["ETag"] == etag and headers["Access-Control-Allow-Origin"] == "*"
            elif expected == 412 and method == "GET":
                assert_error(status, headers, body, 412)
            elif method == "GET":
                assert body == whole
    for if_range, expected in (
        (etag, 206),
        ("W/" + etag, 200),  # If-Range compares strongly: a weak tag is another copy
        ('"other"', 200),
        ("Tue, 01 Dec 2026 00:00:00 GMT", 200),  # no Last-Modified is sent: a date never matches
    ):
        status, headers, body = store.raw(key, {"Range": "bytes=0-3", "If-Range": if_range})
        assert status == expected, (kind, key, if_range, status)
        assert body == (whole[:4] if expected == 206 else whole)


# ---------------------------------------------------------------------- odd keys and methods


@pytest.mark.parametrize("kind", KINDS)
def test_odd_keys_and_methods_get_the_one_error_shape_with_cors(stores, kind):
    store = stores[kind]
    for key, expected in (
        ("", 404),  # the store itself is not an object
        ("/", 404),
        ("/.zmetadata", 404),  # no consolidated metadata: zarr goes on without it
        ("/zarr.json", 404),  # a v2 store
        ("/0/zarr.json", 404),
        ("/nope/.zarray", 404),
        ("/0/99/99/99/99/99", 404),
        ("/0/", 400),
        ("/0/.zarray/", 400),
        ("/0//.zarray", 400),
        ("/0/../0/.zarray", 400),
        ("/0/%2e%2e/.zarray", 400),
        ("/%2e%2e/%2e%2e/ome.zarr.json", 400),
        ("/" + "a" * 5000, 400),
        ("/" + "a/" * 400 + "b", (400, 404)),
        ("/0/.zarray%00", 400),
    ):
        for method in ("GET", "HEAD"):
            status, headers, body = store.raw(key, method=method)
            if method == "HEAD":
                assert body == b"" and headers.get("Access-Control-Allow-Origin") == "*", (kind, key, status)
                continue
            assert_error(status, headers, body, expected)
    for method in ("POST", "PUT", "DELETE"):
        status, headers, body = store.raw(store.chunk, {"Content-Length": "0"}, method)
        assert_error(status, headers, body, 405)


@pytest.mark.parametrize("kind", KINDS)
def test_percent_encoded_keys_name_the_same_objects(stores, kind):
    store = stores[kind]
    _status, _headers, plain = store.raw("/0/.zarray")
    for encoded in ("/%30/.zarray", "/0/%2Ezarray", "/0%2F.zarray"):
        status, _headers, body = store.raw(encoded)
        assert (status, body) == (200, plain), (kind, encoded, status)


@pytest.mark.parametrize("kind", ["converted", "zip", "folder"])
def test_a_store_without_a_reference_document_answers_its_404_in_the_shape(stores, kind):
    store = stores[kind]
    status, headers, body = raw(store.base, store.path + "/ome.zarr.json")
    assert "reference document" in assert_error(status, headers, body, 404)["message"]


def test_a_head_of_a_harvested_chunk_asks_the_source_nothing(stores, source):  # noqa: F811 (a fixture)
    store = stores["harvested"]
    _status, plain, whole = store.raw(store.chunk)
    source.requests.clear()
    for asked in ({}, {"Range": "bytes=0-9"}):
        status, headers, body = store.raw(store.chunk, asked, "HEAD")
        assert status == (206 if asked else 200) and body == b""
        assert headers["Content-Length"] == ("10" if asked else str(len(whole))) and headers["ETag"] == plain["ETag"]
    assert source.requests == []
    status, _headers, body = store.raw(store.chunk, {"Range": "bytes=0-9"})
    assert (status, body) == (206, whole[:10])
    assert source.requests and all(path == f"{files_path('S-BIAD1492')}/{HARVESTED_PYRAMID}" for path, _ in source.requests)


def test_the_reference_document_is_served_like_any_object(stores):
    """Range, If-Match and HEAD on ``…/ome.zarr.json``, as on the store's objects."""
    for kind in ("virtual", "harvested"):
        store = stores[kind]
        path = store.path + "/ome.zarr.json"
        status, plain, whole = raw(store.base, path)
        assert status == 200 and plain["Accept-Ranges"] == "bytes" and json.loads(whole)["version"] == 1
        status, headers, body = raw(store.base, path, {"Range": "bytes=0-9"})
        assert (status, body, headers["Content-Range"]) == (206, whole[:10], f"bytes 0-9/{len(whole)}"), kind
        assert raw(store.base, path, {"If-None-Match": plain["ETag"]})[0] == 304
        assert_error(*raw(store.base, path, {"If-Match": '"other"'}), 412)
        head = raw(store.base, path, method="HEAD")
        assert head[0] == 200 and {k: head[1].get(k) for k in HEADERS} == {k: plain.get(k) for k in HEADERS}
