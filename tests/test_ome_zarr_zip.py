"""Uploaded ``.ome.zarr.zip`` archives as images: the header readers read the OME-Zarr inside the zip in place
(plain layout, one top folder, bioformats2raw series, HCS plates, Zarr v3), the header and ``ome_zarr`` jobs of a
deposit agree on image ids, and the study's image listing, the image page and the OME-Zarr store route serve the
unpacked store, which a zarr client reads over HTTP with the source's pixels. Hostile archives (``..`` and absolute
names, bombs, truncated, encrypted) get reasons, never a 500; an embargoed study's zip is its owner's.

Zips are made here from the OME-Zarr samples in tests/data/images/ome-zarr (see tests/data/images/SOURCES.txt).
"""

from __future__ import annotations

import io
import threading
import zipfile
from pathlib import Path

import numpy as np
import pytest
import requests
import zarr
from werkzeug.serving import make_server

from catalog import identifiers
from loaders.image_headers.read import read_bytes, read_headers, read_source
from loaders.image_headers.sources import (
    ByteCapExceeded,
    CountingReader,
    MemorySource,
    RangeSource,
    ReadAhead,
    UnreadableZip,
    ZipKeys,
    ZipLimits,
)
from tests.catalog_helpers import deposit_files as deposit
from tests.servers.seaweedfs_server import free_ports
from tests.test_ome_zarr import SETTINGS, open_http, result, work

SAMPLES = Path(__file__).parent / "data" / "images" / "ome-zarr"
SERIES_2 = SAMPLES / "fake-series-2.zarr"
PLATE = SAMPLES / "bia_hcs.ome.zarr"


def zipped(folder: Path, *, top: str | None = None, extra: dict[str, bytes] | None = None) -> bytes:
    """``folder``'s files zipped: under ``top/`` when given, else at the archive's top; ``extra`` members added."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for item in sorted(folder.rglob("*")):
            if item.is_file():
                relative = item.relative_to(folder).as_posix()
                archive.write(item, f"{top}/{relative}" if top else relative)
        for name, data in (extra or {}).items():
            archive.writestr(zipfile.ZipInfo(name), data)
    return buffer.getvalue()


def members(contents: dict[str, bytes]) -> bytes:
    """A zip of ``contents`` (name → bytes), deflated."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in contents.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def patched(data: bytes, change) -> bytes:
    """``data`` (a zip) with ``change(buffer, local_header_offset, central_entry_offset)`` applied to every member."""
    buffer = bytearray(data)
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        infos, central = archive.infolist(), archive.start_dir
    for info in infos:
        assert buffer[central : central + 4] == b"PK\x01\x02"
        change(buffer, info.header_offset, central)
        lengths = int.from_bytes(buffer[central + 28 : central + 30], "little")
        lengths += int.from_bytes(buffer[central + 30 : central + 32], "little")
        central += 46 + lengths + int.from_bytes(buffer[central + 32 : central + 34], "little")
    return bytes(buffer)


def encrypted(data: bytes) -> bytes:
    """Every member marked encrypted (general purpose flag bit 0), as a password-protected zip has it."""

    def flag(buffer: bytearray, local: int, central: int) -> None:
        buffer[local + 6] |= 1
        buffer[central + 8] |= 1

    return patched(data, flag)


def bomb(data: bytes) -> bytes:
    """Every member claiming to unpack to almost 4 GiB: a small archive that declares tens of gigabytes."""

    def claim(buffer: bytearray, local: int, central: int) -> None:
        buffer[central + 24 : central + 28] = (0xFFFFFFF0).to_bytes(4, "little")

    return patched(data, claim)


def hostile() -> dict[str, bytes]:
    plain = zipped(SERIES_2, top="x.ome.zarr")
    return {
        "hostile/slip.ome.zarr.zip": zipped(SERIES_2, extra={"../../outside.txt": b"escaped"}),
        "hostile/absolute.ome.zarr.zip": zipped(SERIES_2, extra={"/etc/cron.d/evil": b"escaped"}),
        "hostile/bomb.ome.zarr.zip": bomb(plain),
        "hostile/truncated.ome.zarr.zip": plain[: len(plain) // 2],
        "hostile/encrypted.ome.zarr.zip": encrypted(plain),
        "hostile/huge-attributes.ome.zarr.zip": members(
            {".zgroup": b'{"zarr_format": 2}', ".zattrs": b"{" + b" " * (20 << 20) + b"}"}
        ),
    }


REASONS = {
    "hostile/slip.ome.zarr.zip": "'..' segment",
    "hostile/absolute.ome.zarr.zip": "an absolute path",
    "hostile/bomb.ome.zarr.zip": "declare more than",
    "hostile/truncated.ome.zarr.zip": "not a readable zip archive",
    "hostile/encrypted.ome.zarr.zip": "is encrypted",
    "hostile/huge-attributes.ome.zarr.zip": "one member may",
}


# ---------------------------------------------------------------------- the reader


@pytest.mark.parametrize("top", [None, "image.ome.zarr"])
@pytest.mark.parametrize("sample", [SERIES_2, SERIES_2 / "0", PLATE, SAMPLES / "ome-zarr-py_v0.1.zarr"])
def test_a_zipped_store_reads_like_the_folder(sample, top):
    from_zip = read_bytes(zipped(sample, top=top), "upload.ome.zarr.zip")
    from_folder = read_headers(sample)
    assert from_zip.status == "ok" and from_zip.format == "ome-zarr", from_zip.reason
    assert from_zip.series == from_folder.series and from_zip.series
    assert from_zip.bytes_read > 0 and from_zip.reads > 0


def test_a_zipped_plate_lists_its_fields_and_a_bioformats2raw_zip_its_series():
    plate = read_bytes(zipped(PLATE, top="plate.ome.zarr"), "plate.ome.zarr.zip")
    assert [s.path for s in plate.series][:3] == ["A/1/0", "A/1/1", "A/2/0"] and len(plate.series) == 8
    assert plate.series[0].instrument is not None  # from OME/METADATA.ome.xml inside the zip
    series = read_bytes(zipped(SERIES_2), "s.ome.zarr.zip")
    assert [(s.path, s.size_x, s.pyramid_levels) for s in series.series] == [("0", 512, 2), ("1", 512, 2)]


def test_a_zipped_zarr_v3_store_is_read(tmp_path):
    store = tmp_path / "v3.ome.zarr"
    root = zarr.open_group(store, mode="w", zarr_format=3)
    axes = [{"name": n, "type": "space", "unit": "micrometer"} for n in "yx"]
    datasets = [{"path": "0", "coordinateTransformations": [{"type": "scale", "scale": [0.5, 0.25]}]}]
    root.attrs["ome"] = {"version": "0.5", "multiscales": [{"axes": axes, "datasets": datasets, "name": "v3"}]}
    root.create_array("0", shape=(100, 80), chunks=(50, 40), dtype="uint16")
    (series,) = read_bytes(zipped(store, top="v3.ome.zarr"), "v3.ome.zarr.zip").series
    assert (series.name, series.axes, series.size_y, series.size_x) == ("v3", "YX", 100, 80)
    assert series.physical_size_x.si == pytest.approx(0.25e-6)


def test_a_zip_read_by_ranges_reads_like_the_folder_in_a_few_requests():
    data = zipped(PLATE, top="plate.ome.zarr")
    asked: list[tuple[int, int]] = []

    def fetch(offset: int, length: int) -> bytes:
        asked.append((offset, length))
        return data[offset : offset + length]

    remote = read_source(ReadAhead(RangeSource(fetch, len(data), "https://files.example/plate.ome.zarr.zip")))
    assert remote.status == "ok" and remote.series == read_headers(PLATE).series
    assert len(asked) <= 4 and remote.bytes_read < len(data)


@pytest.mark.parametrize("path", sorted(REASONS))
def test_hostile_zips_are_unreadable_with_a_reason(path):
    headers = read_bytes(hostile()[path], path)
    assert headers.status == "unreadable" and REASONS[path] in (headers.reason or ""), headers.reason
    assert not headers.series


def test_other_zips_and_non_zips_are_told_apart():
    assert read_bytes(zipped(SERIES_2), "archive.zip").status == "unsupported"
    not_zip = read_bytes(b"not a zip at all", "a.ome.zarr.zip")
    assert not_zip.status == "unreadable" and "not a readable zip archive" in (not_zip.reason or "")
    empty = read_bytes(members({"README.txt": b"hi"}), "e.ome.zarr.zip")
    assert empty.status == "unreadable" and "holds no Zarr store" in (empty.reason or "")


def test_zip_keys_cap_members_and_member_size_and_count_compressed_bytes():
    data = zipped(SERIES_2, top="t.ome.zarr")
    with pytest.raises(UnreadableZip, match="more than the 3 allowed"):
        ZipKeys(CountingReader(MemorySource(data), 1 << 20), "t", ZipLimits(max_members=3))
    reader = CountingReader(MemorySource(data), 1 << 20)
    keys = ZipKeys(reader, "t", ZipLimits(max_member=100))
    assert keys.get("nope", 1000) is None and keys.get(".zgroup", 1000) == (SERIES_2 / ".zgroup").read_bytes()
    with pytest.raises(UnreadableZip, match="one member may"):
        keys.get("OME/METADATA.ome.xml", 10_000)
    with pytest.raises(ByteCapExceeded):
        ZipKeys(reader, "t").get("OME/METADATA.ome.xml", 10)
    small = CountingReader(MemorySource(data), 1100)
    with pytest.raises(ByteCapExceeded):
        ZipKeys(small, "t")  # the central directory alone is over this cap
    assert small.over_cap and small.bytes_read <= 1100


# ---------------------------------------------------------------------- through the catalog and HTTP


def uploads() -> dict[str, bytes]:
    return {
        "zarr/series.ome.zarr.zip": zipped(SERIES_2, top="series.ome.zarr"),
        "zarr/plain.ome.zarr.zip": zipped(SERIES_2 / "0"),
        "zarr/plate.ome.zarr.zip": zipped(PLATE, top="plate.ome.zarr"),
        **hostile(),
    }


@pytest.fixture(scope="module")
def site(make_module_catalog):
    """A live server over a released study of zips and an embargoed one, their jobs done."""
    (port,) = free_ports(1)
    base = f"http://127.0.0.1:{port}"
    made = make_module_catalog(name="ome-zarr-zip", base_url=base, **SETTINGS)
    accession, _token = deposit(made.services, uploads())
    embargoed, token = deposit(made.services, {"zarr/secret.ome.zarr.zip": zipped(SERIES_2)}, release_date="2999-01-01")
    work(made.services)
    server = make_server("127.0.0.1", port, made.app(), threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield {"base": base, "accession": accession, "embargoed": embargoed, "token": token, "services": made.services}
    server.shutdown()


def listing(site, accession: str, headers: dict | None = None) -> requests.Response:
    return requests.get(f"{site['base']}/studies/{accession}/images?limit=50", headers=headers or {})


def image_url(site, accession: str, path: str, index: int = 0) -> str:
    return f"{site['base']}/studies/{accession}/images/{identifiers.image_id(accession, path, index)}"


def test_the_listing_shows_each_zip_with_its_images_under_the_ids_the_store_has(site):
    accession = site["accession"]
    items = {item["path"]: item for item in listing(site, accession).json()["items"]}
    series = items["zarr/series.ome.zarr.zip"]
    assert series["status"] == "ok" and series["format"] == "ome-zarr"
    assert [(i["index"], i["size_x"], i["size_y"]) for i in series["images"]] == [(0, 512, 512), (1, 512, 512)]
    assert series["images"][0]["@id"] == image_url(site, accession, "zarr/series.ome.zarr.zip")
    assert len(items["zarr/plate.ome.zarr.zip"]["images"]) == 8
    stored = result(site["services"], accession, "zarr/series.ome.zarr.zip").result
    assert stored["image_id"] == series["images"][0]["@id"].rsplit("/", 1)[-1]


def test_the_image_page_answers_and_points_at_the_store(site):
    url = image_url(site, site["accession"], "zarr/series.ome.zarr.zip")
    page = requests.get(url, headers={"Accept": "text/html"})
    assert page.status_code == 200 and f"{url}/ome.zarr" in page.text
    record = requests.get(url, headers={"Accept": "application/ld+json"})
    assert record.status_code == 200 and "zarr/series.ome.zarr.zip" in record.text
    from tests.catalog_helpers import run_image_jobs

    run_image_jobs(site["services"], "previews")  # thumbnails are the previews job's; render.png draws on demand
    for picture in ("/thumbnail.png", "/render.png"):
        answer = requests.get(url + picture)
        assert answer.status_code == 200 and answer.content.startswith(b"\x89PNG\r\n\x1a\n"), picture


@pytest.mark.parametrize("path, image", [("zarr/series.ome.zarr.zip", "0"), ("zarr/plain.ome.zarr.zip", "")])
def test_a_zarr_client_reads_the_served_store_with_the_source_pixels(site, path, image):
    root = open_http(image_url(site, site["accession"], path))
    group = root[image] if image else root
    source = zarr.open_group(str(SERIES_2 / "0"), mode="r")
    for level in ("0", "1"):
        served = np.asarray(group[level][:])
        assert served.shape == source[level].shape and np.array_equal(served, source[level][:])
    assert "multiscales" in group.attrs.asdict()


@pytest.mark.parametrize("path", sorted(REASONS))
def test_hostile_zips_get_reasons_in_the_listing_and_never_a_500(site, path):
    accession = site["accession"]
    item = next(i for i in listing(site, accession).json()["items"] if i["path"] == path)
    assert item["status"] == "unreadable" and REASONS[path] in (item["reason"] or ""), item
    assert not item["images"]
    done = result(site["services"], accession, path)
    assert done.state == "failed" and done.reason
    answer = requests.get(image_url(site, accession, path) + "/ome.zarr/.zattrs")
    assert answer.status_code == 404 and answer.json()["status"] == 404
    store = site["services"].archive.file_store
    assert not any("outside" in obj.key or "cron" in obj.key for obj in store.list("", checksums=False))


def test_an_embargoed_zip_is_its_owners(site):
    accession, owner = site["embargoed"], {"Authorization": f"Bearer {site['token']}"}
    url = image_url(site, accession, "zarr/secret.ome.zarr.zip")
    assert listing(site, accession).status_code == 404
    assert [i["path"] for i in listing(site, accession, owner).json()["items"]] == ["zarr/secret.ome.zarr.zip"]
    for suffix in ("", "/ome.zarr/.zattrs", "/ome.zarr/0/0/.zarray"):
        assert requests.get(url + suffix, headers={"Accept": "application/ld+json"}).status_code == 404, suffix
        assert requests.get(url + suffix, headers={**owner, "Accept": "application/ld+json"}).status_code == 200, suffix
