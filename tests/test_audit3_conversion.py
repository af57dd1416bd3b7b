"""A hostile depositor's audit of image conversion (every image gets an OME-Zarr): TIFFs, MRC maps and PNGs made to
stress the converted and virtual stores are deposited, their jobs run, and their stores read back over HTTP with
zarr. Each file either gets stores whose level 0 is exactly what tifffile, mrcfile or Pillow read (the same values,
bit for bit, axes in NGFF order) and whose every further level is every second pixel in y and x of the one above,
or its job fails (or its image is listed as a failure) with a reason that says why.

Found by this audit and fixed at the root (each has a case below that failed before):

- a big-endian TIFF stored as one uncompressed plane was served byte-swapped: the rows were read in this machine's
  byte order (tifffile names the type in native order), ``pixels.TiffPixels``;
- a tiled TIFF of more than one page (a z-stack, an OME-TIFF hyperstack) failed its job: the checks for a virtual
  store asked its frames (``TiffFrame``) what only its key frame knows, ``virtual._check_tiled``;
- a 64-bit integer TIFF failed: tifffile names its type ``q``/``Q``, which Zarr does not match, ``convert.write_image``;
- a tiled bilevel (1-bit) TIFF failed instead of being converted: tifffile's reference writer refused it with a
  ValueError the virtual path did not take as "not referenceable", ``virtual``;
- a tiled TIFF whose "pyramid" is not its image reduced (a level larger than level 0, of another type, of another
  shape) was served as its store's levels, or failed NGFF validation: such files are now converted from level 0,
  ``virtual._check_pyramid``;
- a plain multi-page TIFF (tifffile's sequence of pages, axes ``IYX``) failed: "axis 'I' has no NGFF name"; it is
  z now, as the previews take it, ``metadata.AXES``;
- a tiled TIFF with a tile past the end of the file got a virtual store whose chunk was missing (zeros to a Zarr
  client, where tifffile fails): references are checked against the file's size, ``virtual._check_within``; and a
  codec's own error (``zlib.error``) failed the file's other images too;
- the images of a file past the 64 made were left out without a word: one failure entry now names them;
- a stack of tiny planes was a file per plane (chunks of one plane in every axis but y and x): 5,000 frames of 2 × 2
  pixels (850 kB) became 5,000 objects to store; chunks now take more planes until they hold about a full chunk's
  pixels, ``convert.chunks_for`` (``test_a_stack_of_tiny_planes_is_a_few_objects``);
- a tiled TIFF of tiny tiles made a reference document the server parses for each chunk request (1 M references:
  39 MB of JSON, 260 MB parsed, 1.4–3.4 s; documents over 32 MB are not kept parsed): past 500,000 references the
  image is converted instead, ``virtual.MAX_REFERENCES``;
- one image of a file its codec fails on (a series of corrupt deflated strips) failed the whole file's job, ``worker.make_stores``.

Real pixels (tests/data/images/SOURCES.txt): the fluorescence nuclei TIFF and its 3-D stack, the EMDB map EMD-3001;
every file here is made from them at test time.
"""

from __future__ import annotations

import gzip
import io
import struct
import tempfile
import zlib
from pathlib import Path
from typing import Callable

import mrcfile
import numpy as np
import pytest
import tifffile
import zarr
from PIL import Image

from catalog.jobs import FAILED
from tests.test_ome_zarr import image_site, open_http, result

IMAGES = Path(__file__).parent / "data" / "images"
NUCLEI = tifffile.imread(IMAGES / "tiff" / "stardist_img2d.tif")  # 512 × 512 uint16
STACK = tifffile.imread(IMAGES / "tiff" / "stardist_img3d.tif")  # 31 × 61 × 57 uint16
MAP = mrcfile.read(str(IMAGES / "mrc" / "EMD-3001.map"))  # 25 × 43 × 73 float32
RGB = np.stack([NUCLEI, NUCLEI[::-1], NUCLEI[:, ::-1]], -1)
GRID = np.tile(NUCLEI, (3, 3))

Writer = Callable[[Path], None]


def tiff(data: np.ndarray, **options) -> Writer:
    return lambda path: tifffile.imwrite(path, data, **options)


def tagged(data: np.ndarray, tags: dict[str, object], page: int = 0, **options) -> Writer:
    """A TIFF of ``data`` whose tags are then overwritten (a hostile header)."""

    def write(path: Path) -> None:
        tifffile.imwrite(path, data, **options)
        with tifffile.TiffFile(path, mode="r+b") as tif:
            for name, value in tags.items():
                tif.pages[page].tags[name].overwrite(value)

    return write


def pillow(image: Image.Image, **options) -> Writer:
    return lambda path: image.save(path, format="TIFF" if path.suffix == ".tif" else None, **options)


def mrc(data: np.ndarray, *, stack: bool = False, gzipped: bool = False) -> Writer:
    def write(path: Path) -> None:
        with mrcfile.new(str(path), overwrite=True, compression="gzip" if gzipped else None) as out:
            out.set_data(data)
            if stack:
                out.set_image_stack()

    return write


def cut(writer: Writer, keep: int) -> Writer:
    """``writer``'s file cut to its first ``keep`` bytes."""

    def write(path: Path) -> None:
        writer(path)
        path.write_bytes(path.read_bytes()[:keep])

    return write


def ome_series(path: Path) -> None:
    """An OME-TIFF of three series: a plane, a z-stack, an RGB image."""
    with tifffile.TiffWriter(path, ome=True) as writer:
        writer.write(NUCLEI, metadata={"axes": "YX"})
        writer.write(STACK[:5], metadata={"axes": "ZYX"})
        writer.write(RGB, photometric="rgb", metadata={"axes": "YXS"})


def pyramid(*levels: np.ndarray) -> Writer:
    """A tiled OME-TIFF whose pyramid (sub-IFDs) is ``levels[1:]``, whatever they hold."""

    def write(path: Path) -> None:
        options = {"tile": (256, 256), "compression": "zlib", "photometric": "minisblack"}
        with tifffile.TiffWriter(path, ome=True) as writer:
            writer.write(levels[0], subifds=len(levels) - 1, metadata={"axes": "YX"}, **options)
            for level in levels[1:]:
                writer.write(level, subfiletype=1, **options)

    return write


def pages(planes: np.ndarray, **options) -> Writer:
    """A plain multi-page TIFF, one page per plane (tifffile reads it as a sequence of pages: axes ``IYX``)."""

    def write(path: Path) -> None:
        with tifffile.TiffWriter(path) as writer:
            for plane in planes:
                writer.write(plane, metadata=None, **options)

    return write


def tile_moved(offset: int, **options) -> Writer:
    """A tiled TIFF whose second tile's offset points past the end of the file."""

    def write(path: Path) -> None:
        tifffile.imwrite(path, NUCLEI, tile=(256, 256), **options)
        with tifffile.TiffFile(path, mode="r+b") as tif:
            offsets = list(tif.pages[0].tags["TileOffsets"].value)
            offsets[1] = offset
            tif.pages[0].tags["TileOffsets"].overwrite(offsets)

    return write


def many_images(path: Path) -> None:
    """70 images of distinct shapes in one TIFF (one series each)."""
    with tifffile.TiffWriter(path) as writer:
        for index in range(70):
            writer.write(np.full((4, 4 + index), index + 1, np.uint8))


def one_series_corrupt(path: Path) -> None:
    """Two series; the second's deflated strips are garbage past their first bytes (its codec fails on them)."""
    with tifffile.TiffWriter(path) as writer:
        writer.write(NUCLEI)
        writer.write(NUCLEI >> 4, compression="zlib", rowsperstrip=NUCLEI.shape[0])
    with tifffile.TiffFile(path) as tif:
        offset, count = tif.pages[1].dataoffsets[0], tif.pages[1].databytecounts[0]
    with path.open("r+b") as handle:
        handle.seek(offset + 8)
        handle.write(b"\xff" * (count - 16))


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_claiming(width: int, height: int, rows: int) -> Writer:
    """A grey PNG whose header says ``width`` × ``height`` with ``rows`` rows of zeros compressed (a bomb)."""

    def write(path: Path) -> None:
        packer = zlib.compressobj(9)
        row = b"\0" * (width + 1)
        data = b"".join(packer.compress(row) for _ in range(rows)) + packer.flush()
        header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
        path.write_bytes(b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header) + png_chunk(b"IDAT", data) + png_chunk(b"IEND", b""))

    return write


HYPERSTACK = np.arange(2 * 3 * 4 * 50 * 60, dtype=np.uint16).reshape(2, 3, 4, 50, 60)
IMAGEJ = np.stack([np.stack([STACK[:4]] * 2, 1)] * 3).astype(np.uint16)  # T3 Z4 C2 Y61 X57
BILEVEL = NUCLEI > NUCLEI.mean()
INT8 = (NUCLEI.astype(np.int16) - 128).clip(-128, 127).astype(np.int8)
GREY8 = (NUCLEI >> 4).astype(np.uint8)

#: files that must convert (or be referenced) to exactly their pixels
EXACT: dict[str, Writer] = {
    # found: served wrong, or failed
    "found/big-endian.tif": tiff(NUCLEI.astype(">u2"), byteorder=">"),
    "found/big-endian-float.tif": tiff((NUCLEI / 7).astype(">f4"), byteorder=">"),
    "found/big-endian-rgb.tif": tiff(RGB.astype(">u2"), byteorder=">", photometric="rgb"),
    "found/tiled-stack.tif": tiff(STACK, tile=(32, 32)),
    "found/tiled-hyperstack.ome.tif": tiff(HYPERSTACK, ome=True, metadata={"axes": "TCZYX"}, tile=(32, 32)),
    "found/int64.tif": tiff(NUCLEI.astype(np.int64) - 30000),
    "found/uint64.tif": tiff(NUCLEI.astype(np.uint64) << 40),
    "found/tiled-bilevel.tif": tiff(BILEVEL, tile=(256, 256)),
    "found/page-sequence.tif": pages(STACK[:6]),
    "found/page-sequence-tiled.tif": pages(STACK[:6], tile=(32, 32), compression="zlib"),
    "found/pyramid-level-larger.ome.tif": pyramid(NUCLEI, GRID[:1024, :1024]),
    "found/pyramid-level-of-floats.ome.tif": pyramid(NUCLEI, (NUCLEI[::2, ::2] / 3).astype(np.float32)),
    "found/pyramid-level-of-another-shape.ome.tif": pyramid(NUCLEI, NUCLEI[:100, :400]),
    "found/pyramid-level-as-large.ome.tif": pyramid(NUCLEI, NUCLEI.T),
    # held: TIFF sample types and layouts
    "tiff/big-endian-tiled.tif": tiff(NUCLEI.astype(">u2"), byteorder=">", tile=(256, 256), compression="zlib"),
    "tiff/float16.tif": tiff(NUCLEI.astype(np.float16)),
    "tiff/float16-tiled.tif": tiff(NUCLEI.astype(np.float16), tile=(256, 256)),
    "tiff/complex64.tif": tiff((NUCLEI + 1j * NUCLEI[::-1]).astype(np.complex64)),
    "tiff/int8.tif": tiff(INT8),
    "tiff/int8-tiled.tif": tiff(INT8, tile=(256, 256)),
    "tiff/bilevel.tif": tiff(BILEVEL),
    "tiff/bilevel-pillow.tif": pillow(Image.fromarray(BILEVEL)),
    "tiff/float64-nan.tif": tiff(np.where(NUCLEI > 3000, np.nan, -(NUCLEI / 3)).astype(np.float64)),
    "tiff/rgb.tif": tiff(RGB, photometric="rgb"),
    "tiff/rgb-planar.tif": tiff(np.moveaxis(RGB, -1, 0), photometric="rgb", planarconfig="separate"),
    "tiff/rgb-planar-tiled.tif": tiff(np.moveaxis(RGB, -1, 0), photometric="rgb", planarconfig="separate", tile=(256, 256)),
    "tiff/rgb-tiled.tif": tiff(RGB, photometric="rgb", tile=(256, 256)),
    "tiff/rgba.tif": tiff(np.dstack([RGB, NUCLEI.T]), photometric="rgb", extrasamples=[2]),
    "tiff/four-samples.tif": tiff(np.dstack([RGB, NUCLEI.T]), photometric="minisblack", planarconfig="contig"),
    "tiff/imagej-tzcyx.tif": tiff(IMAGEJ, imagej=True, metadata={"axes": "TZCYX"}),
    "tiff/ome-tczyx.ome.tif": tiff(HYPERSTACK, ome=True, metadata={"axes": "TCZYX"}),
    "tiff/ome-series.ome.tif": ome_series,
    "tiff/one-pixel.tif": tiff(NUCLEI[:1, :1]),
    "tiff/one-row.tif": tiff(GRID[:1, :1100]),
    "tiff/one-column.tif": tiff(GRID[:1100, :1]),
    "tiff/on-grid.tif": tiff(GRID[:1024, :512]),
    "tiff/one-past-grid.tif": tiff(GRID[:513, :1025]),
    "tiff/one-short-of-grid.tif": tiff(GRID[:511, :1023]),
    "tiff/deflate-strips.tif": tiff(NUCLEI, compression="zlib"),
    "tiff/packbits.tif": pillow(Image.fromarray(GREY8), compression="packbits"),
    "tiff/adobe-deflate.tif": pillow(Image.fromarray(GREY8), compression="tiff_adobe_deflate"),
    "tiff/odd-rows-per-strip.tif": tiff(GRID[:1000, :700], rowsperstrip=7),
    "tiff/odd-rows-per-strip-deflate.tif": tiff(GRID[:1000, :700], rowsperstrip=7, compression="zlib"),
    "tiff/predictor.tif": tiff(NUCLEI, compression="zlib", predictor=True),
    "tiff/predictor-tiled.tif": tiff(NUCLEI, compression="zlib", predictor=True, tile=(256, 256)),
    "tiff/one-strip-count-halved.tif": tagged(NUCLEI, {"StripByteCounts": NUCLEI.nbytes // 2}),
    "tiff/miniswhite.tif": tiff(NUCLEI, photometric="miniswhite"),
    "tiff/zero-chunks.tif": tiff(np.where(np.arange(1024)[:, None] < 512, GRID[:1024, :1024], 0).astype(np.uint16)),
    "tiff/negative-zero-chunks.tif": tiff(np.where(np.arange(1024)[:, None] < 512, GRID[:1024, :1024], -0.0).astype(np.float32)),
    "tiff/all-zero.tif": tiff(np.zeros((600, 700), np.float32)),
    "tiff/narrow-planes-stack.tif": tiff(np.tile(STACK, (2, 10, 2))[:40, :600, :100], metadata={"axes": "ZYX"}),
    "found/tiny-frames.ome.tif": tiff(np.resize(NUCLEI, (5000, 2, 2)) | 1, ome=True, metadata={"axes": "TYX"}),
    "found/needle.mrc": mrc(np.resize(MAP, (20000, 1, 2)) + 1),
    # held: MRC modes and layouts
    "mrc/mode0-int8.mrc": mrc((MAP * 10).clip(-128, 127).astype(np.int8)),
    "mrc/mode1-int16.mrc": mrc((MAP * 1000).astype(np.int16)),
    "mrc/mode2-float32.mrc": mrc(MAP),
    "mrc/mode4-complex64.mrc": mrc((MAP + 1j * MAP[::-1]).astype(np.complex64)),
    "mrc/mode6-uint16.mrc": mrc(NUCLEI[None]),
    "mrc/mode12-float16.mrc": mrc(MAP.astype(np.float16)),
    "mrc/big-endian.mrc": mrc(MAP.astype(">f4")),
    "mrc/plane.mrc": mrc((GRID[:700, :600]).astype(np.int16)),
    "mrc/stack.mrcs": mrc(np.stack([NUCLEI, NUCLEI[::-1], NUCLEI.T]).astype(np.int16), stack=True),
    "mrc/gzipped.mrc.gz": mrc(MAP, gzipped=True),
    "mrc/volume-levels.mrc": mrc(np.tile(MAP, (2, 7, 4))[:40]),
    # held: PNG and JPEG modes
    "png/grey16.png": pillow(Image.fromarray(GRID[:600, :700])),
    "png/grey8.png": pillow(Image.fromarray(GREY8)),
    "png/palette.png": pillow(Image.fromarray(GREY8).convert("P")),
    "png/rgba.png": pillow(Image.fromarray(np.dstack([GREY8, GREY8[::-1], GREY8.T, 255 - GREY8]), "RGBA")),
    "png/grey-alpha.png": pillow(Image.fromarray(np.dstack([GREY8, GREY8.T]), "LA")),
    "png/bilevel.png": pillow(Image.fromarray(BILEVEL)),
    "png/odd.png": pillow(Image.fromarray(GREY8[:333, :501])),
    "png/photo.jpg": pillow(Image.fromarray(GREY8)),
}

#: files whose job must fail, with what its reason says
REFUSED: dict[str, tuple[Writer, str]] = {
    "bad/huge-claim.tif": (
        tagged(np.zeros((16, 16), np.uint16), {"ImageWidth": 1 << 20, "ImageLength": 1 << 20}),
        "pixels, more than",
    ),
    "bad/big-claim-tiny-file.tif": (
        tagged(np.zeros((16, 16), np.uint16), {"ImageWidth": 60000, "ImageLength": 60000}),
        "truncated",
    ),
    "bad/big-claim-deflate.tif": (
        tagged(np.zeros((16, 16), np.uint16), {"ImageWidth": 60000, "ImageLength": 60000}, compression="zlib"),
        "corrupted strip",
    ),
    "bad/cut-in-pixels.tif": (cut(tiff(NUCLEI), 3000), "truncated"),
    "bad/strips-past-the-end.tif": (tagged(NUCLEI, {"StripOffsets": 10**9}), "truncated"),
    "bad/strip-count-halved.tif": (
        lambda p: tagged(NUCLEI, {"StripByteCounts": _halved_third(NUCLEI, 64)}, rowsperstrip=64)(p),
        "corrupted strip",
    ),
    "bad/tile-past-the-end.tif": (tile_moved(10**7), "corrupted tile"),
    "bad/tile-past-the-end-deflate.tif": (tile_moved(10**7, compression="zlib"), "DeflateError"),
    "bad/truncated.mrc": (cut(mrc(MAP), 1024 + 100), "truncated"),
    "bad/truncated.mrc.gz": (lambda p: p.write_bytes(gzip.compress(_mrc_bytes(MAP)[: 1024 + 100])), "truncated"),
    "bad/huge-claim.mrc": (lambda p: p.write_bytes(_mrc_claiming(100_000, 100_000, 100_000)), "pixels, more than"),
    "bad/big-claim.mrc.gz": (lambda p: p.write_bytes(gzip.compress(_mrc_claiming(60_000, 60_000, 1))), "truncated"),
    "bad/bomb.png": (png_claiming(20_000, 20_000, 20_000), "decompression bomb"),
    "bad/claim.png": (png_claiming(1 << 30, 1 << 30, 1), "decompression bomb"),
    "bad/truncated.png": (cut(pillow(Image.fromarray(NUCLEI)), 3000), "truncated"),
}

#: files tifffile decodes only with the imagecodecs package (an install requirement of the `images` extra)
CODECS: dict[str, Writer] = {
    "codec/lzw.tif": pillow(Image.fromarray(GREY8), compression="tiff_lzw"),
    "codec/lzw-16bit.tif": pillow(Image.fromarray(NUCLEI), compression="tiff_lzw"),
    "codec/jpeg.tif": pillow(Image.fromarray(GREY8), compression="jpeg"),
    "codec/group4.tif": pillow(Image.fromarray(BILEVEL), compression="group4"),
}


#: files with several images, some of which get no store
MIXED: dict[str, Writer] = {"mixed/one-corrupt-series.tif": one_series_corrupt, "mixed/70-images.tif": many_images}


def _halved_third(data: np.ndarray, rows: int) -> list[int]:
    counts = [rows * data.shape[1] * data.itemsize] * (data.shape[0] // rows)
    counts[3] //= 2
    return counts


def _mrc_bytes(data: np.ndarray) -> bytes:
    with tempfile.TemporaryDirectory() as folder:
        mrc(data)(Path(folder) / "map.mrc")
        return (Path(folder) / "map.mrc").read_bytes()


def _mrc_claiming(nx: int, ny: int, nz: int) -> bytes:
    """An MRC map's header (and a few hundred bytes) saying ``nx`` × ``ny`` × ``nz`` float32 voxels."""
    head = bytearray(_mrc_bytes(MAP)[: 1024 + 400])
    head[0:12] = struct.pack("<3i", nx, ny, nz)
    return bytes(head)


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, bytes]:
    folder = tmp_path_factory.mktemp("audit3-sources")
    made = {}
    for path, writer in {**EXACT, **{k: w for k, (w, _) in REFUSED.items()}, **CODECS, **MIXED}.items():
        local = folder / path.replace("/", "__")
        writer(local)
        made[path] = local.read_bytes()
    return made


@pytest.fixture(scope="module")
def site(make_module_catalog, files):
    with image_site(make_module_catalog, "audit3-conversion", files) as made:
        yield made


def expected_images(path: str, content: bytes, scratch: Path) -> list[np.ndarray]:
    """Each image of the file as its own library reads it, axes in NGFF order (t, c, z, y, x; samples are c)."""
    if path.endswith((".mrc", ".mrcs", ".mrc.gz")):
        local = scratch / Path(path).name
        local.write_bytes(content)
        return [mrcfile.read(str(local))]
    if path.endswith((".png", ".jpg")):
        pixels = np.asarray(Image.open(io.BytesIO(content)))
        return [pixels if pixels.ndim == 2 else np.moveaxis(pixels, -1, 0)]
    with tifffile.TiffFile(io.BytesIO(content)) as tif:
        return [_ngff_order(series.asarray(), series.axes) for series in tif.series]


def _ngff_order(data: np.ndarray, letters: str) -> np.ndarray:
    names = [{"S": "c", "Q": "z", "I": "z"}.get(letter, letter.lower()) for letter in letters]  # as the header readers name them
    return np.transpose(data, sorted(range(len(names)), key=lambda i: "tczyx".index(names[i])))


def assert_exact(served, expected: np.ndarray, levels: int) -> None:
    """Level 0 holds ``expected``'s values bit for bit (in whatever byte order the store declares), each further
    level every second pixel in y and x of the one above."""
    above = served["0"][...]
    assert above.shape == expected.shape and above.dtype.newbyteorder("=") == expected.dtype.newbyteorder("=")
    native = expected.dtype.newbyteorder("=")
    assert above.astype(native).tobytes() == expected.astype(native).tobytes()
    for level in range(1, levels):
        below = served[str(level)][...]
        assert below.astype(native).tobytes() == np.ascontiguousarray(above[..., ::2, ::2]).astype(native).tobytes(), level
        above = below


def image_url(site, path: str, index: int) -> str:
    from loaders.ngff import job as ome_zarr_job

    ident = ome_zarr_job.image_id(site["accession"], path, index)
    return f"{site['base']}/studies/{site['accession']}/images/{ident}"


def check_stores(site, files, tmp_path, path: str) -> None:
    done = result(site["services"], site["accession"], path)
    assert done.state == "done", done.reason
    expected = expected_images(path, files[path], tmp_path)
    assert not done.result["failures"] and len(done.result["images"]) == len(expected)
    for image, pixels in zip(done.result["images"], expected):
        assert_exact(open_http(image_url(site, path, image["series"])), pixels, image["levels"])


@pytest.mark.parametrize("path", sorted(EXACT))
def test_a_stored_image_is_exactly_its_pixels_at_every_level(site, files, tmp_path, path):
    check_stores(site, files, tmp_path, path)


@pytest.mark.parametrize("path", sorted(REFUSED))
def test_a_hostile_file_fails_its_job_with_a_reason(site, path):
    done = result(site["services"], site["accession"], path)
    assert done.state == FAILED, done.result
    assert REFUSED[path][1] in (done.reason or ""), done.reason
    ident = image_url(site, path, 0).rsplit("/", 1)[-1]
    assert not list(site["services"].archive.file_store.list(f"derived/{site['accession']}/{ident}/"))


@pytest.mark.parametrize("path", sorted(CODECS))
def test_a_tiff_of_another_codec_is_exactly_its_pixels(site, files, tmp_path, path):
    done = result(site["services"], site["accession"], path)
    assert done.state == "done", done.reason
    check_stores(site, files, tmp_path, path)


def test_an_image_its_codec_fails_on_leaves_the_files_other_images_their_stores(site, files, tmp_path):
    path = "mixed/one-corrupt-series.tif"
    done = result(site["services"], site["accession"], path)
    assert done.state == "done", done.reason
    assert [image["series"] for image in done.result["images"]] == [0]
    assert [failure["series"] for failure in done.result["failures"]] == [1]
    assert "DeflateError" in done.result["failures"][0]["reason"]
    assert_exact(open_http(image_url(site, path, 0)), NUCLEI, done.result["images"][0]["levels"])


def test_images_past_the_cap_of_a_file_are_named_as_a_failure(site):
    done = result(site["services"], site["accession"], "mixed/70-images.tif")
    assert done.state == "done", done.reason
    assert [image["series"] for image in done.result["images"]] == list(range(64))
    (failure,) = done.result["failures"]
    assert failure["series"] == 64 and "6 images" in failure["reason"] and "at most 64" in failure["reason"]


@pytest.mark.parametrize("path", ["found/tiny-frames.ome.tif", "found/needle.mrc"])
def test_a_stack_of_tiny_planes_is_a_few_objects(site, path):
    done = result(site["services"], site["accession"], path)
    assert done.state == "done", done.reason
    image = done.result["images"][0]
    objects = list(site["services"].archive.file_store.list(image["store_key"] + "/", checksums=False))
    assert len(objects) <= 8, [obj.key for obj in objects]  # .zgroup, .zattrs, 0/.zarray, 0/.zattrs, a chunk or two


@pytest.mark.parametrize("block_bytes", [32 << 20, 200 << 10], ids=["rows", "narrow"])
def test_planes_grouped_in_a_chunk_keep_every_level_exact(tmp_path, monkeypatch, block_bytes):
    from loaders.ngff import convert
    from loaders.ngff.pixels import TiffPixels

    monkeypatch.setattr(convert, "BLOCK_BYTES", block_bytes)  # 200 kiB: blocks narrower than a row, levels read back
    data = np.tile(STACK, (2, 2, 20))[:45, :100, :1100]  # planes of 100 × 1100: 5 planes a chunk, 3 levels
    tifffile.imwrite(tmp_path / "stack.tif", data, metadata={"axes": "ZYX"})
    with tifffile.TiffFile(tmp_path / "stack.tif") as tif:
        source = TiffPixels(tif, 0)
        try:
            made = convert.write_image(source, tmp_path / "out.zarr", {})
        finally:
            source.close()
    group = zarr.open_group(str(tmp_path / "out.zarr"), mode="r", zarr_format=2)
    assert made["chunks"] == [5, 100, 512] and made["levels"] == 3 and group["2"].chunks == (5, 25, 275)
    assert_exact(group, data, made["levels"])


def test_a_tiff_of_more_tiles_than_a_document_holds_is_converted(tmp_path, monkeypatch):
    """A reference document is parsed by the server for its chunks' requests (about 260 bytes a reference): a TIFF of
    tiny tiles past :data:`~loaders.ngff.virtual.MAX_REFERENCES` is converted instead (here the cap is lowered; the
    worker's image step is called in this process, without the worker's Zarr thread set-up, which would close the
    event loop other tests' HTTP clients hold)."""
    from loaders.ngff import virtual, worker

    monkeypatch.setattr(virtual, "MAX_REFERENCES", 63)
    tifffile.imwrite(tmp_path / "tiny-tiles.tif", NUCLEI, tile=(64, 64), compression="zlib")  # 64 tiles
    image = worker._one(str(tmp_path / "tiny-tiles.tif"), "k", "tiff", {"index": 0}, tmp_path / "out", {})
    assert image["kind"] == "converted" and "more than the 63" in image["not_virtual"]
    assert_exact(zarr.open_group(str(tmp_path / "out" / "ome.zarr"), mode="r"), NUCLEI, image["levels"])
    monkeypatch.setattr(virtual, "MAX_REFERENCES", 64)
    again = worker._one(str(tmp_path / "tiny-tiles.tif"), "k", "tiff", {"index": 0}, tmp_path / "again", {})
    assert again["kind"] == "virtual"
