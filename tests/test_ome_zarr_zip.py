"""Uploaded ``.ome.zarr.zip`` archives as images: the header readers read the OME-Zarr inside the zip in place
(plain layout, one top folder, bioformats2raw series, HCS plates, Zarr v3), the header and ``ome_zarr`` jobs of a
deposit agree on image ids, and the study's image listing, the image page and the OME-Zarr store route serve the
unpacked store, which a zarr client reads over HTTP with the source's pixels. Hostile archives (``..`` and absolute
names, bombs, truncated, encrypted) get reasons, never a 500; an embargoed study's zip is its owner's.

Zips are made here from the OME-Zarr samples in tests/data/images/ome-zarr (see tests/data/images/SOURCES.txt).
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
import pytest
import requests
import zarr

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
from tests.test_ome_zarr import image_site, open_http, result

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


def v3_image(store: Path) -> np.ndarray:
    """An NGFF 0.5 image (Zarr v3) of 100 × 80 uint16 pixels of 0.5 × 0.25 µm at ``store``; its pixels."""
    root = zarr.open_group(store, mode="w", zarr_format=3)
    axes = [{"name": n, "type": "space", "unit": "micrometer"} for n in "yx"]
    datasets = [{"path": "0", "coordinateTransformations": [{"type": "scale", "scale": [0.5, 0.25]}]}]
    root.attrs["ome"] = {"version": "0.5", "multiscales": [{"axes": axes, "datasets": datasets, "name": "v3"}]}
    array = root.create_array("0", shape=(100, 80), chunks=(50, 40), dtype="uint16", dimension_names=["y", "x"])
    array[:] = pixels = np.arange(8000, dtype="uint16").reshape(100, 80)
    return pixels


def test_a_zipped_zarr_v3_store_is_read(tmp_path):
    store = tmp_path / "v3.ome.zarr"
    v3_image(store)
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
    with image_site(make_module_catalog, "ome-zarr-zip", uploads(), {"zarr/secret.ome.zarr.zip": zipped(SERIES_2)}) as made:
        yield made


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


@pytest.mark.parametrize(
    "path, index, source",
    [
        ("zarr/series.ome.zarr.zip", 0, SERIES_2 / "0"),
        ("zarr/series.ome.zarr.zip", 1, SERIES_2 / "1"),
        ("zarr/plain.ome.zarr.zip", 0, SERIES_2 / "0"),
        ("zarr/plate.ome.zarr.zip", 0, PLATE / "A" / "1" / "0"),
        ("zarr/plate.ome.zarr.zip", 7, PLATE / "B" / "2" / "1"),
    ],
)
def test_a_zarr_client_reads_each_image_of_a_zip_at_its_own_url(site, path, index, source):
    """Every series of a bioformats2raw layout and every field of a plate: the image's ``…/ome.zarr`` is its own
    multiscales group, read from where it sits in the zip's one unpacked store."""
    group = open_http(image_url(site, site["accession"], path, index))
    assert "multiscales" in group.attrs.asdict()
    expected = zarr.open_group(str(source), mode="r")
    for dataset in expected.attrs.asdict()["multiscales"][0]["datasets"]:
        level = dataset["path"]
        served = np.asarray(group[level][:])
        assert served.shape == expected[level].shape and np.array_equal(served, expected[level][:])


def test_the_images_of_one_zip_share_one_stored_copy(site):
    done = result(site["services"], site["accession"], "zarr/plate.ome.zarr.zip").result
    images = done["images"]
    assert [i["series"] for i in images] == list(range(8)) and not done["failures"]
    assert {i["store_key"] for i in images} == {images[0]["store_key"]}
    assert [i["image_path"] for i in images][:3] == ["A/1/0", "A/1/1", "A/2/0"]
    assert {i["kind"] for i in images} == {"unpacked"} and {i["ngff_version"] for i in images} == {"0.4"}
    store = site["services"].archive.file_store
    copies = [o.key for o in store.list(f"derived/{site['accession']}/", checksums=False) if o.key.endswith("A/1/0/0/.zarray")]
    assert copies == [images[0]["store_key"] + "/A/1/0/0/.zarray"]
    series = result(site["services"], site["accession"], "zarr/series.ome.zarr.zip").result
    assert [(i["series"], i["image_path"], i["levels"]) for i in series["images"]] == [(0, "0", 2), (1, "1", 2)]


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
    for suffix in ("", "/ome.zarr/.zattrs", "/ome.zarr/0/.zarray"):  # series 0 of the layout, its level 0
        assert requests.get(url + suffix, headers={"Accept": "application/ld+json"}).status_code == 404, suffix
        assert requests.get(url + suffix, headers={**owner, "Accept": "application/ld+json"}).status_code == 200, suffix


def test_an_image_of_a_zip_that_is_not_valid_ngff_gets_no_store_and_the_others_do(tmp_path):
    import json
    import shutil

    from loaders.ngff.worker import make_stores

    broken = tmp_path / "series.zarr"
    shutil.copytree(SERIES_2, broken)
    attrs = json.loads((broken / "1" / ".zattrs").read_text())
    attrs["multiscales"][0]["datasets"][0]["coordinateTransformations"][0]["scale"] = [1.0, 1.0]  # 2 of 5 axes
    (broken / "1" / ".zattrs").write_text(json.dumps(attrs))
    (tmp_path / "s.ome.zarr.zip").write_bytes(zipped(broken))
    made = make_stores(str(tmp_path / "s.ome.zarr.zip"), str(tmp_path / "out"), "s.ome.zarr.zip", "k", {})
    assert made["status"] == "ok" and [i["series"] for i in made["images"]] == [0]
    assert [f["series"] for f in made["failures"]] == [1] and "not valid NGFF 0.4" in made["failures"][0]["reason"]


@pytest.mark.parametrize("path", ["../outside", "/etc", "A/../../x"])
def test_an_image_path_that_leaves_the_unpacked_store_is_refused(tmp_path, path):
    from loaders.ngff.unpack import Unpacked
    from loaders.ngff.worker import _unpacked_image

    with pytest.raises(ValueError, match="its path in the store"):
        _unpacked_image(tmp_path, {"index": 0, "path": path}, Unpacked("", 1, 1))


def test_a_zipped_ngff_0_5_store_is_unpacked_and_validated_as_0_5(tmp_path):
    from loaders.ngff.worker import make_stores

    store = tmp_path / "v3.ome.zarr"
    pixels = v3_image(store)
    (tmp_path / "v3.ome.zarr.zip").write_bytes(zipped(store, top="v3.ome.zarr"))
    made = make_stores(str(tmp_path / "v3.ome.zarr.zip"), str(tmp_path / "out"), "v3.ome.zarr.zip", "k", {})
    assert made["status"] == "ok", made
    (image,) = made["images"]
    assert (image["ngff_version"], image["levels"], image["image_path"], image["root"]) == ("0.5", 1, "", "v3.ome.zarr")
    unpacked = zarr.open_group(str(tmp_path / "out" / "0" / "ome.zarr" / "v3.ome.zarr"), mode="r")
    assert np.array_equal(unpacked["0"][:], pixels)


def test_the_result_cache_keeps_what_fits_its_byte_cap():
    from loaders.ngff.results import ResultCache

    cache = ResultCache(size=10, max_bytes=100)
    for name in "abcd":
        cache.put(("S", name), (1, 0.0), {"name": name}, 30)
    assert cache.get(("S", "a"), (1, 0.0)) is None and cache.get(("S", "d"), (1, 0.0)) == {"name": "d"}  # 90 of 100
    assert cache.get(("S", "d"), (2, 0.0)) is None  # the job was done again since
    cache.put(("S", "huge"), (1, 0.0), {}, 101)
    assert cache.get(("S", "huge"), (1, 0.0)) is None and cache.get(("S", "b"), (1, 0.0)) == {"name": "b"}


def test_reference_documents_are_kept_within_a_byte_cap_and_parsed_once(tmp_path):
    """Found by an audit: parsed reference documents (about nine times their JSON) were kept by count only, and
    requests arriving together each parsed the same document."""
    import json as json_module
    import threading

    from catalog.file_store_local import LocalFileStore
    from loaders.ngff.served import Documents

    store = LocalFileStore(tmp_path / "files")
    for name, refs in (("a", 10), ("b", 10), ("big", 4000)):
        data = json_module.dumps({"refs": {f"0/{i}": ["{{u}}", i, 1] for i in range(refs)}, "templates": {"u": "k"}}).encode()
        store.put(f"d/{name}.json", io.BytesIO(data), size=len(data))
    docs = Documents(store, cached=8, max_bytes=2000)
    opened = []
    real = store.open_range
    store.open_range = lambda key, *a, **k: opened.append(key) or real(key, *a, **k)  # type: ignore[method-assign]
    threads = [threading.Thread(target=docs.get, args=("d/a.json",)) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert opened == ["d/a.json"]  # parsed once for eight requests
    docs.get("d/big.json")
    docs.get("d/big.json")
    assert opened.count("d/big.json") == 2  # over the byte cap: used, not kept
    docs.get("d/b.json")
    assert docs._bytes <= 2000 and len(docs._docs) == 2
