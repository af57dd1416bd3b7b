"""Previews of uploaded ``.ome.zarr.zip`` archives: the ``previews`` job draws thumbnails and a static view of every
image of the zip (each series of a bioformats2raw layout, each field of a plate), numbered as the header readers
number them, reading the zip's checked members in place, from the lowest pyramid level that suffices and within
the sandbox's memory cap; ``…/render.png`` draws any z, t, channel and level of them; a zip read by HTTP Range
requests draws as the local one does. Hostile zips (unsafe members, bombs, corrupt or oversized chunks) end as
failed previews with reasons, never a 500; an embargoed zip's previews are its owner's.

Zips are made here from the OME-Zarr samples in tests/data/images/ome-zarr (see tests/data/images/SOURCES.txt) and
from synthetic stores written with zarr (a two-channel z-stack pyramid, a plate whose fields differ, a 16384 x 16384
single-level image).
"""

from __future__ import annotations

import base64
import io
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
import requests
import zarr
from PIL import Image

from loaders.image_headers.job import KIND as HEADERS
from loaders.image_headers.read import read_bytes, read_headers
from loaders.image_headers.sources import CountingReader, MemorySource, ZipKeys
from loaders.image_headers.stored import Located
from loaders.previews import job as preview_job
from loaders.previews.pool import PreviewCaps, PreviewPool
from loaders.previews.render import composite, previews_of, render_png
from tests.catalog_helpers import deposit_files as deposit
from tests.catalog_helpers import run_image_jobs
from tests.test_ome_zarr_zip import PLATE, REASONS, SAMPLES, SERIES_2, hostile, image_url, site, zipped  # noqa: F401

#: the synthetic z-stack: channels, z planes, and its levels' sides
CHANNELS, PLANES, SIDES = 2, 3, (2048, 1024, 512)
COLOURS = ("FF0000", "00FF00")
METADATA = (".zarray", ".zattrs", ".zgroup", ".zmetadata", "zarr.json")


def stack_plane(c: int, z: int, side: int = SIDES[0]) -> np.ndarray:
    """Channel ``c``, plane ``z`` of the synthetic z-stack's first level: gradients that differ by channel and plane."""
    yy, xx = np.mgrid[0:side, 0:side]
    return ((xx * (z + 1) + yy * (c + 2)) % 4000 + 50 * c).astype(np.uint16)


def write_image(group: zarr.Group, levels: list[np.ndarray], axes: str, chunks: tuple[int, ...], colours=()) -> None:
    """An NGFF 0.4 image (Zarr v2) into ``group``: ``levels`` as datasets "0", "1", …, its omero channel colours."""
    for index, data in enumerate(levels):
        array = group.create_array(str(index), shape=data.shape, chunks=chunks, dtype=data.dtype)
        array[...] = data
    kinds = {"t": "time", "c": "channel"}
    group.attrs["multiscales"] = [
        {
            "version": "0.4",
            "axes": [{"name": a, "type": kinds.get(a, "space")} for a in axes],
            "datasets": [{"path": str(i), "coordinateTransformations": [{"type": "scale", "scale": [1.0] * len(axes)}]}
                         for i in range(len(levels))],
        }
    ]  # fmt: skip
    if colours:
        group.attrs["omero"] = {"channels": [{"color": colour, "label": f"ch{i}"} for i, colour in enumerate(colours)]}


def stack_store(path: Path) -> list[np.ndarray]:
    """The two-channel z-stack pyramid (axes c, z, y, x; red and green): levels of 2048, 1024 and 512 pixels a side,
    each a subsampling of the first; its levels."""
    full = np.stack([np.stack([stack_plane(c, z) for z in range(PLANES)]) for c in range(CHANNELS)])
    levels = [full[..., :: SIDES[0] // side, :: SIDES[0] // side] for side in SIDES]
    write_image(zarr.open_group(path, mode="w", zarr_format=2), levels, "czyx", (1, 1, 256, 256), COLOURS)
    return levels


def distinct_plate(path: Path) -> list[str]:
    """The sample plate with each field's pixels made its own (stripes of a period set by the field's series
    number); the fields' paths in series order."""
    shutil.copytree(PLATE, path)
    fields = [s.path for s in read_headers(PLATE).series]
    yy, xx = np.mgrid[0:64, 0:64]
    for index, field in enumerate(fields):
        array = zarr.open_array(path / str(field) / "0", mode="r+")
        array[0, 0, 0] = ((xx // (index + 2)) * 9 + yy // 4).astype(np.uint8)
    return [str(f) for f in fields]


def pixels(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)))


def decoded(made: dict, name: str = "thumbnail-128") -> np.ndarray:
    return pixels(base64.b64decode(made["pngs"][name]))


def corrupt_chunks(data: bytes) -> bytes:
    """``data`` (a zip) with every chunk's bytes replaced by a pattern of the same length that no codec decodes."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as source, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target:
        for info in source.infolist():
            content = source.read(info)
            if not info.filename.endswith(METADATA):
                content = (bytes(range(256)) * (len(content) // 256 + 1))[: len(content)]
            target.writestr(info.filename, content)
    return out.getvalue()


def declared(folder: Path, shape=(100_000, 100_000), chunks=(100_000, 100_000), dtype="uint8", axes=("y", "x")) -> bytes:
    """A zipped store of one array as its metadata declares it (no chunk written); by default each chunk is
    100,000 x 100,000 pixels (10 GB unpacked)."""
    group = zarr.open_group(folder, mode="w", zarr_format=2)
    group.create_array("0", shape=shape, chunks=chunks, dtype=dtype)
    group.attrs["multiscales"] = [{"version": "0.4", "axes": list(axes), "datasets": [{"path": "0"}]}]
    return zipped(folder)


# ---------------------------------------------------------------------- the renderer, in this process


def test_each_image_of_a_bioformats2raw_zip_and_each_field_of_a_plate_is_drawn():
    series = previews_of(io.BytesIO(zipped(SERIES_2, top="s.ome.zarr")), "ome-zarr", [0, 1, 2], name="s.ome.zarr.zip")
    assert [s["status"] for s in series] == ["ok", "ok", "failed"] and "2 images, not 3" in series[2]["reason"]
    assert series[0]["sizes"] == {"view": [512, 512], "thumbnail-128": [128, 128], "thumbnail-256": [256, 256],
                                  "thumbnail-512": [512, 512]}  # fmt: skip
    source = np.asarray(zarr.open_array(SERIES_2 / "0" / "0", mode="r")[0, 0, 0])
    view = decoded(series[0], "view")
    assert view.shape == source.shape and np.array_equal(view, composite([source], [None]))
    plate = previews_of(io.BytesIO(zipped(PLATE)), None, list(range(8)), name="p.ome.zarr.zip")
    assert all(p["status"] == "ok" and p["sizes"]["thumbnail-128"] == [64, 64] for p in plate)
    field = decoded(plate[0])
    assert field.shape == (64, 64, 3) and field.max() > field.min()  # drawn in its omero colour, 6496C8
    assert field[..., 2].max() > field[..., 0].max()


def test_a_plates_fields_are_numbered_as_the_header_readers_number_them(tmp_path):
    fields = distinct_plate(tmp_path / "plate.ome.zarr")
    data = zipped(tmp_path / "plate.ome.zarr", top="plate.ome.zarr")
    assert [s.path for s in read_bytes(data, "p.ome.zarr.zip").series] == fields
    drawn = previews_of(io.BytesIO(data), "ome-zarr", list(range(len(fields))), name="p.ome.zarr.zip")
    alone = [
        previews_of(io.BytesIO(zipped(tmp_path / "plate.ome.zarr" / f)), None, [0], name="f.ome.zarr.zip")[0] for f in fields
    ]
    for index, (made, field) in enumerate(zip(drawn, alone)):
        assert np.array_equal(decoded(made, "view"), decoded(field, "view")), fields[index]
    assert len({decoded(made, "view").tobytes() for made in drawn}) == len(fields)


def test_planes_channels_and_levels_are_read_from_the_lowest_level_that_suffices(tmp_path, monkeypatch):
    levels = stack_store(tmp_path / "stack.ome.zarr")
    data = zipped(tmp_path / "stack.ome.zarr", top="stack.ome.zarr")
    unpacked: list[str] = []
    get = ZipKeys.get
    monkeypatch.setattr(ZipKeys, "get", lambda self, key, limit: unpacked.append(key) or get(self, key, limit))
    reader = CountingReader(MemorySource(data, "stack.ome.zarr.zip"), 1 << 30)
    (made,) = previews_of(reader, "ome-zarr", [0], name="stack.ome.zarr.zip")
    assert made["status"] == "ok" and made["level"] == 1 and made["sizes"]["view"] == [1024, 1024]
    chunks = {key.split("/", 1)[0] for key in unpacked if key[0].isdigit() and not key.endswith(METADATA)}
    assert chunks == {"1"} and reader.bytes_read < len(data) / 4  # level 1 only, of the middle plane
    view = decoded(made, "view")
    expected = composite([levels[1][0, 1], levels[1][1, 1]], [(255, 0, 0), (0, 255, 0)])
    assert view.shape == (1024, 1024, 3) and np.array_equal(view, expected) and not view[..., 2].any()
    for z, c, level in ((2, 1, 2), (0, 0, 1), (1, None, 2)):
        rendered = pixels(base64.b64decode(render_png(io.BytesIO(data), "ome-zarr", 0, z, 0, c, level, name="s.ome.zarr.zip")))
        if c is None:
            wanted = composite([levels[level][0, z], levels[level][1, z]], [(255, 0, 0), (0, 255, 0)])
        else:
            wanted = composite([levels[level][c, z]], [(255, 255, 255)])
        assert np.array_equal(rendered, wanted), (z, c, level)
    with pytest.raises(Exception, match="z 3 is outside"):
        render_png(io.BytesIO(data), "ome-zarr", 0, 3, 0, None, 2, name="s.ome.zarr.zip")


def test_ngff_0_1_axes_are_implied():
    (made,) = previews_of(io.BytesIO(zipped(SAMPLES / "ome-zarr-py_v0.1.zarr")), "ome-zarr", [0], name="v.ome.zarr.zip")
    assert made["status"] == "ok" and made["sizes"]["view"] == [16, 16]
    assert decoded(made, "view").shape == (16, 16, 3)  # two channels (t, c, z, y, x implied) composited


@pytest.mark.parametrize(
    "store, reason",
    [
        ({}, "over 64 MiB each"),
        ({"shape": (400_000, 400_000), "chunks": (64, 64)}, "would read 4,2"),
        ({"shape": (64, 64), "chunks": (64, 64), "dtype": "complex64"}, "pixels of type complex64"),
        ({"shape": (2, 64, 64), "chunks": (1, 64, 64), "axes": ("x", "y", "x")}, "no axis twice"),
        ({"shape": (64, 64), "chunks": (64, 64), "axes": ("z", "x")}, "one Y, one X"),
    ],
)
def test_arrays_that_would_take_too_much_or_make_no_picture_are_refused_with_a_reason(tmp_path, store, reason):
    (made,) = previews_of(io.BytesIO(declared(tmp_path / "s.ome.zarr", **store)), "ome-zarr", [0], name="s.ome.zarr.zip")
    assert made["status"] == "failed" and reason in made["reason"], made


def test_a_chunk_over_what_one_zip_member_may_hold_is_refused_as_the_header_readers_refuse_it(tmp_path):
    group = zarr.open_group(tmp_path / "raw.ome.zarr", mode="w", zarr_format=2)
    array = group.create_array("0", shape=(4096, 4096), chunks=(4096, 4096), dtype="uint16", compressors=None)
    array[...] = np.arange(4096, dtype=np.uint16)[None, :]
    group.attrs["multiscales"] = [{"version": "0.4", "axes": ["y", "x"], "datasets": [{"path": "0"}]}]
    (made,) = previews_of(io.BytesIO(zipped(tmp_path / "raw.ome.zarr")), "ome-zarr", [0], name="r.ome.zarr.zip")
    assert made["status"] == "failed" and "over the 16,777,216 one member may" in made["reason"], made


# ---------------------------------------------------------------------- in the sandbox, local and by URL


@pytest.fixture(scope="module")
def pool():
    with PreviewPool(workers=1, caps=PreviewCaps(request_timeout=2.0)) as made:
        yield made


def test_a_16384_pixel_single_level_image_is_drawn_within_the_memory_cap(pool, tmp_path):
    side = 16384
    group = zarr.open_group(tmp_path / "big.ome.zarr", mode="w", zarr_format=2)
    array = group.create_array("0", shape=(side, side), chunks=(1024, 1024), dtype="uint8")
    row = (np.arange(side) % 251).astype(np.uint8)
    for y in range(0, side, 1024):
        array[y : y + 1024] = row[None, :] ^ (np.arange(y, y + 1024) % 7).astype(np.uint8)[:, None]
    group.attrs["multiscales"] = [{"version": "0.4", "axes": ["y", "x"], "datasets": [{"path": "0"}]}]
    path = tmp_path / "big.ome.zarr.zip"
    path.write_bytes(zipped(tmp_path / "big.ome.zarr"))
    made = pool.previews(str(path), "ome-zarr", 0)
    assert made["status"] == "ok", made.get("reason")
    assert made["sizes"]["view"] == [1024, 1024] and pixels(made["pngs"]["view"]).std() > 10
    plane = pixels(pool.render(str(path), "ome-zarr", 0, 0, 0, None, 0))
    assert plane.shape == (2048, 2048)


def test_a_zip_read_by_range_requests_draws_as_the_local_one(pool, range_server, tmp_path):
    local = tmp_path / "series.ome.zarr.zip"
    local.write_bytes(zipped(SERIES_2, top="series.ome.zarr"))
    url = range_server.add("/files/series.ome.zarr.zip", local)
    remote = Located(name="studies/S/series.ome.zarr.zip", url=url, size=local.stat().st_size)
    for index in (0, 1):
        mine, theirs = pool.previews(remote, "ome-zarr", index), pool.previews(str(local), "ome-zarr", index)
        assert mine["status"] == theirs["status"] == "ok", mine.get("reason")
        for name, png in theirs["pngs"].items():
            assert np.array_equal(pixels(mine["pngs"][name]), pixels(png)), (index, name)
    assert np.array_equal(
        pixels(pool.render(remote, "ome-zarr", 1, 0, 0, 0, 1)), pixels(pool.render(str(local), "ome-zarr", 1, 0, 0, 0, 1))
    )
    asked = range_server.requests_for("/files/series.ome.zarr.zip")
    assert asked and all(r and r.startswith("bytes=") for r in asked)
    with PreviewPool(workers=1, caps=PreviewCaps(source_bytes=2048)) as capped:  # it reads 2,970 bytes
        made = capped.previews(remote, "ome-zarr", 0)
    assert made["status"] == "failed" and "BIA_PREVIEW_MAX_SOURCE_BYTES" in made["reason"]


@pytest.mark.parametrize("path", sorted(REASONS))
def test_hostile_zips_are_failed_previews_with_the_reason(pool, tmp_path, path):
    local = tmp_path / Path(path).name
    local.write_bytes(hostile()[path])
    made = pool.previews(str(local), "ome-zarr", 0)
    assert made["status"] == "failed" and REASONS[path] in made["reason"], made


# ---------------------------------------------------------------------- through the catalog and HTTP


@pytest.fixture(scope="module")
def drawn(site, tmp_path_factory):  # noqa: F811 - the served catalog of tests/test_ome_zarr_zip.py
    """That site with a study of synthetic zips too (a z-stack pyramid, a corrupt chunk, oversized chunks), the
    header and previews jobs of every study done."""
    folder = tmp_path_factory.mktemp("zarr-zip-previews")
    levels = stack_store(folder / "stack.ome.zarr")
    stack = zipped(folder / "stack.ome.zarr", top="stack.ome.zarr")
    files = {
        "zarr/stack.ome.zarr.zip": stack,
        "zarr/corrupt.ome.zarr.zip": corrupt_chunks(stack),
        "zarr/huge-chunks.ome.zarr.zip": declared(folder / "huge.ome.zarr"),
    }
    accession, _token = deposit(site["services"], files)
    run_image_jobs(site["services"], HEADERS, preview_job.KIND)
    return {**site, "synthetic": accession, "levels": levels}


def preview_result(served, accession: str, path: str):
    from catalog.jobs import JobQueue

    services = served["services"]
    queue = JobQueue.for_settings(services.archive.state, services.archive.settings)
    try:
        return queue.job(preview_job.KIND, accession, f"studies/{accession}/{path}", preview_job.renderer_version())
    finally:
        queue.close()


@pytest.mark.parametrize("path, count, side", [("zarr/series.ome.zarr.zip", 2, 512), ("zarr/plate.ome.zarr.zip", 8, 64)])
def test_every_image_of_a_zip_gets_thumbnails_and_a_view(drawn, path, count, side):
    accession = drawn["accession"]
    done = preview_result(drawn, accession, path)
    assert done.state == "done" and done.result["status"] == "ok" and done.result["format"] == "ome-zarr", done.result
    assert [(i["index"], i["status"]) for i in done.result["images"]] == [(i, "ok") for i in range(count)]
    for index in range(count):
        for size in (128, 256, 512, 1024):
            answer = requests.get(f"{image_url(drawn, accession, path, index)}/thumbnail.png?size={size}", timeout=30)
            assert answer.status_code == 200 and answer.headers["Content-Type"] == "image/png", (index, size)
            picture = pixels(answer.content)
            assert max(picture.shape[:2]) == min(size, side) and picture.max() > picture.min(), (index, size)


def test_planes_of_a_zipped_stack_render_by_z_channel_and_level(drawn):
    base = image_url(drawn, drawn["synthetic"], "zarr/stack.ome.zarr.zip")
    levels = drawn["levels"]
    for z, c, level in ((2, 1, 2), (0, 0, 1)):
        answer = requests.get(f"{base}/render.png?z={z}&c={c}&level={level}", timeout=60)
        assert answer.status_code == 200 and answer.headers["Content-Type"] == "image/png", answer.text
        assert np.array_equal(pixels(answer.content), composite([levels[level][c, z]], [(255, 255, 255)]))
    again = requests.get(f"{base}/render.png?z=0&c=0&level=1", headers={"If-None-Match": answer.headers["ETag"]})
    assert again.status_code == 304  # kept, not drawn again
    composited = pixels(requests.get(f"{base}/render.png?z=1&level=2", timeout=60).content)
    assert composited.shape == (512, 512, 3) and not composited[..., 2].any()
    for query, field in (("z=3", "z"), ("c=2", "c"), ("level=3", "level"), ("t=1", "t")):
        refused = requests.get(f"{base}/render.png?{query}", timeout=30)
        assert refused.status_code == 400 and field in refused.json()["message"], query


def test_the_thumbnail_is_the_view_of_the_lowest_sufficient_level(drawn):
    done = preview_result(drawn, drawn["synthetic"], "zarr/stack.ome.zarr.zip")
    (image,) = done.result["images"]
    assert image["status"] == "ok" and image["level"] == 1
    assert {name: (f["width"], f["height"]) for name, f in image["files"].items()}["view"] == (1024, 1024)


@pytest.mark.parametrize(
    "path, reason", [("zarr/corrupt.ome.zarr.zip", "blosc decompression"), ("zarr/huge-chunks.ome.zarr.zip", "over 64 MiB each")]
)
def test_zips_whose_chunks_cannot_be_drawn_are_failed_previews_and_refused_renders(drawn, path, reason):
    accession = drawn["synthetic"]
    done = preview_result(drawn, accession, path)
    assert done.state == "done" and done.result["status"] == "ok", done.result
    (image,) = done.result["images"]
    assert image["status"] == "failed" and reason in image["reason"], image
    url = image_url(drawn, accession, path)
    thumbnail = requests.get(f"{url}/thumbnail.png", timeout=30)
    assert thumbnail.status_code == 404 and thumbnail.json()["message"]
    render = requests.get(f"{url}/render.png", timeout=60)
    assert render.status_code == 422 and reason in render.json()["message"], render.text


@pytest.mark.parametrize("path", sorted(REASONS))
def test_hostile_zips_get_no_previews_and_never_a_500(drawn, path):
    accession = drawn["accession"]
    done = preview_result(drawn, accession, path)
    assert done.state == "done" and done.result["status"] == "unreadable" and REASONS[path] in done.result["reason"]
    for picture in ("/thumbnail.png", "/render.png"):
        answer = requests.get(image_url(drawn, accession, path) + picture, timeout=30)
        assert answer.status_code == 404 and answer.json()["status"] == 404, picture


def test_an_embargoed_zips_previews_are_its_owners(drawn):
    accession, owner = drawn["embargoed"], {"Authorization": f"Bearer {drawn['token']}"}
    url = image_url(drawn, accession, "zarr/secret.ome.zarr.zip", 1)
    assert preview_result(drawn, accession, "zarr/secret.ome.zarr.zip").result["status"] == "ok"
    for picture in ("/thumbnail.png", "/thumbnail.png?size=1024", "/render.png?level=1"):
        assert requests.get(url + picture, timeout=30).status_code == 404, picture
        mine = requests.get(url + picture, headers=owner, timeout=60)
        assert mine.status_code == 200 and mine.headers["Cache-Control"] == "private, no-store", picture
        assert pixels(mine.content).max() > 0
