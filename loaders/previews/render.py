"""Rendering one plane of an image as an 8-bit PNG, from the smallest pyramid level that is big enough, by chunked
reads (a block of rows at a time), so that a file of any size renders within a small memory cap.

Formats: TIFF and OME-TIFF (tifffile: each series' levels read through ``aszarr``), MRC maps (the plane's rows read
from the file at their offset; gzip-compressed maps only when small), PNG and JPEG (Pillow, with its
decompression-bomb guard turned into an error), OME-Zarr zipped into an ``.ome.zarr.zip`` (zarr over the archive's
checked members, a chunk at a time; each image of its layout as the header readers number them). Channels are
stretched one by one between robust percentiles and composited in their OME colours (or a default palette); RGB
images are shown as they are.

A file is a local path or a seekable binary file object (a file held in S3 or by a source archive, read by HTTP
Range requests through :func:`loaders.image_headers.remote.open_url`); ``name`` tells the format when the object
has no path. This runs in a sandboxed worker (:mod:`loaders.previews.pool`) on files from anyone: it raises
:class:`PreviewError` with a reason for anything it will not render.
"""

from __future__ import annotations

import base64
import io
import os
import warnings
from dataclasses import dataclass, field
from typing import IO, TYPE_CHECKING, Any, Iterator, Union

import numpy as np

if TYPE_CHECKING:
    from loaders.image_headers.remote import HttpKeys
    from loaders.image_headers.sources import DemandKeys

#: thumbnail sizes (longest side, pixels) and the static view's
THUMBNAIL_SIZES = (128, 256, 512)
VIEW_SIZE = 1024
#: the largest side of a rendered plane (a full level bigger than this is shrunk)
MAX_RENDER_SIDE = 2048
#: channels composited at most
MAX_CHANNELS = 4
#: percentiles of the contrast stretch
LOW, HIGH = 0.5, 99.8
#: bytes of pixels read per block (rows of a level at a time)
BLOCK_BYTES = 32 << 20
#: most pixels Pillow opens (its bomb guard errors at twice this)
MAX_PIL_PIXELS = 64_000_000
#: largest gzip-compressed MRC map decompressed whole, and what it may unzip to
MAX_GZIP_BYTES = 64 << 20
MAX_GUNZIPPED_BYTES = 256 << 20
#: OME-Zarr: levels opened at most, bytes one chunk's pixels may take, chunks one plane's read may touch
MAX_ZARR_LEVELS = 32
MAX_CHUNK_BYTES = 64 << 20
MAX_CHUNK_READS = 100_000
#: bytes an ``.ome.zarr.zip`` drawing may read (of the archive, and unpacked) when the caller gives no cap
MAX_ZARR_BYTES = 2 << 30
#: zlib level of the PNGs (speed over a few per cent of size)
PNG_LEVEL = 3
#: colours of channels whose file names none (1, 2, 3 or 4 channels)
PALETTES = {
    1: [(255, 255, 255)],
    2: [(0, 255, 0), (255, 0, 255)],
    3: [(255, 0, 0), (0, 255, 0), (0, 0, 255)],
    4: [(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0)],
}
_Z_AXES = "ZQIR"
#: a file to draw: a local path, or a seekable binary file object
File = Union[str, IO[bytes]]
#: what the OME-Zarr image and the entry points take besides: a store copied piecemeal (an OME-Zarr folder in S3)
Drawable = Union[str, IO[bytes], "DemandKeys", "HttpKeys"]


class PreviewError(ValueError):
    """An image this renderer will not draw, and why."""


@dataclass
class Plane:
    """Where a plane is: series, z, t, the channels to show (None: the first few), and the pyramid level."""

    series: int = 0
    z: int | None = None
    t: int = 0
    c: int | None = None
    level: int | None = None


@dataclass
class Source:
    """One opened image: its levels' shapes (YX), its axes and its channels' colours."""

    axes: str
    shapes: list[tuple[int, int]]
    sizes: dict[str, int]
    colours: list[tuple[int, int, int] | None] = field(default_factory=list)
    rgb: bool = False


def encode_png(rgb: np.ndarray) -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.fromarray(rgb).save(out, format="PNG", optimize=False, compress_level=PNG_LEVEL)
    return out.getvalue()


# ---------------------------------------------------------------------------------------------------- stretching


def stretch(values: np.ndarray) -> np.ndarray:
    """``values`` scaled to 0..1 between robust percentiles (NaNs and infinities as the low end)."""
    data = values.astype(np.float32, copy=False)
    floating = np.issubdtype(values.dtype, np.floating)
    finite = data[np.isfinite(data)] if floating else data.ravel()
    if finite.size == 0:
        return np.zeros(data.shape, np.float32)
    sample = finite[:: max(1, finite.size // 250_000)]
    low, high = (float(v) for v in np.percentile(sample, (LOW, HIGH)))
    if high <= low:
        low, high = float(sample.min()), float(sample.max())
    if high <= low:
        return np.zeros(data.shape, np.float32)
    if floating:
        data = np.nan_to_num(data, nan=low, posinf=high, neginf=low)
    scaled = (data - low) * (1.0 / (high - low))
    return np.clip(scaled, 0.0, 1.0, out=scaled)


def composite(channels: list[np.ndarray], colours: list[tuple[int, int, int] | None]) -> np.ndarray:
    """Stretched channels added in their colours: an RGB uint8 image (a grey one, 2-D, for one white channel)."""
    palette = PALETTES[min(len(channels), MAX_CHANNELS)]
    if len(channels) == 1 and (not colours or colours[0] in (None, (255, 255, 255))):
        return (stretch(channels[0]) * 255 + 0.5).astype(np.uint8)
    named = [c for c in colours[: len(channels)] if c is not None]
    if len(channels) > 1 and (len(named) < len(channels) or len(set(named)) == 1):
        colours = list(palette)  # a file naming one colour for all channels (often white) says nothing
    rgb = np.zeros((*channels[0].shape, 3), np.float32)
    for index, plane in enumerate(channels):
        named_colour = colours[index] if index < len(colours) else None
        colour = named_colour if named_colour is not None else palette[index]
        scaled = stretch(plane)
        for k in range(3):
            if colour[k]:
                rgb[..., k] += scaled * (colour[k] / 255.0)
    return (np.clip(rgb, 0.0, 1.0) * 255 + 0.5).astype(np.uint8)


def fit(rgb: np.ndarray, side: int) -> np.ndarray:
    """``rgb`` (or a grey 2-D image) shrunk (area average, Pillow) so its longest side is at most ``side``."""
    from PIL import Image

    height, width = rgb.shape[:2]
    if max(height, width) <= side:
        return rgb
    scale = side / max(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return np.asarray(Image.fromarray(rgb).resize(size, Image.Resampling.BOX))


# ---------------------------------------------------------------------------------------------------- reading


def _blocks(shape: tuple[int, int], itemsize: int, step: int) -> Iterator[tuple[int, int]]:
    """Row ranges whose every ``step``-th row (``width`` pixels kept of each) make about BLOCK_BYTES."""
    height, width = shape
    rows = max(step, (BLOCK_BYTES // max(1, width * itemsize)) * step)
    for start in range(0, height, rows):
        yield start, min(height, start + rows)


def _step(shape: tuple[int, int], side: int) -> int:
    """Every how many rows and columns :func:`_strided` reads a plane of ``shape`` drawn ``side`` pixels wide."""
    return max(1, max(shape) // (2 * side)) if max(shape) > 2 * side else 1


def _strided(read_rows: Any, shape: tuple[int, int], itemsize: int, side: int) -> np.ndarray:
    """The plane of ``shape`` read a block of rows at a time and subsampled so that its longest side is about
    ``side`` (at least twice; the caller shrinks it with area averaging): ``read_rows(y0, y1, step)`` gives every
    ``step``-th row and column of rows ``y0..y1``."""
    step = _step(shape, side)
    width = -(-shape[1] // step)
    parts = []
    for y0, y1 in _blocks((shape[0], width), itemsize, step):
        parts.append(np.ascontiguousarray(read_rows(y0, y1, step)))
    return np.concatenate(parts, axis=0)


def _pick_level(shapes: list[tuple[int, int]], side: int) -> int:
    """The smallest level whose longest side is at least ``side`` (else the largest)."""
    for index in range(len(shapes) - 1, -1, -1):
        if max(shapes[index]) >= side:
            return index
    return 0


class TiffImage:
    """A series of a TIFF file read through tifffile's zarr view of each level."""

    def __init__(self, file: File, series: int) -> None:
        import tifffile

        # a stream is one file: its OME-XML may not name others to open
        self.tif = tifffile.TiffFile(file) if isinstance(file, str) else tifffile.TiffFile(file, _multifile=False)
        if series >= len(self.tif.series):
            raise PreviewError(f"the file has {len(self.tif.series)} series, not {series + 1}")
        self.series = self.tif.series[series]
        axes = self.series.axes
        self.levels = self.series.levels
        shapes = [self._yx(level.shape, axes) for level in self.levels]
        sizes = {a: int(n) for a, n in zip(axes, self.series.shape)}
        rgb = "S" in axes and sizes["S"] in (3, 4) and self.series.dtype == np.uint8
        self.source = Source(axes, shapes, sizes, self._colours(series), rgb)

    @staticmethod
    def _yx(shape: tuple[int, ...], axes: str) -> tuple[int, int]:
        if "Y" not in axes or "X" not in axes:
            raise PreviewError(f"no Y and X axes in {axes!r}")
        return int(shape[axes.index("Y")]), int(shape[axes.index("X")])

    def _colours(self, series: int) -> list[tuple[int, int, int] | None]:
        if not self.tif.is_ome or not self.tif.ome_metadata:
            return []
        try:
            from loaders.image_headers.ome_xml import parse

            image = parse(self.tif.ome_metadata.encode())
            channels = image.images[series].pixels.channels
            return [c.color.as_rgb_tuple(alpha=False) if c.color is not None else None for c in channels]
        except Exception:  # noqa: BLE001 - colours are a nicety: the default palette is used
            return []

    def read(self, level: int, index: dict[str, int | slice], side: int) -> np.ndarray:
        """The plane at ``index`` (non-YX axes) of ``level``, subsampled towards ``side``: (Y, X) or (Y, X, S)."""
        import zarr

        store = self.series.aszarr(level=level)
        try:
            array = zarr.open_array(store, mode="r")
            axes = self.source.axes
            selection = tuple(index.get(a, 0) if a not in "YXS" else slice(None) for a in axes)
            kept = [a for a in axes if a in "YXS"]
            shape = self.source.shapes[level]
            y = axes.index("Y")

            x = axes.index("X")

            def rows(y0: int, y1: int, step: int) -> np.ndarray:
                picked = tuple(
                    slice(y0, y1, step) if i == y else slice(None, None, step) if i == x else s for i, s in enumerate(selection)
                )
                return np.moveaxis(np.asarray(array[picked]), [kept.index("Y"), kept.index("X")], [0, 1])

            return _strided(rows, shape, self.series.dtype.itemsize * max(1, self.source.sizes.get("S", 1)), side)
        finally:
            store.close()

    def close(self) -> None:
        self.tif.close()


class MrcImage:
    """An MRC map: its planes (sections) read from the file at their offsets (a gzip-compressed map whole, when
    small)."""

    def __init__(self, file: File, name: str) -> None:
        from mrcfile import utils  # type: ignore[import-untyped]
        from mrcfile.mrcinterpreter import MrcInterpreter  # type: ignore[import-untyped]

        self._own = isinstance(file, str)
        self.handle: IO[bytes] = open(file, "rb") if isinstance(file, str) else file
        self.data: np.ndarray | None = None
        if name.lower().endswith(".gz"):
            mrc = MrcInterpreter(iostream=io.BytesIO(self._gunzipped()), permissive=True)
            if mrc.data is None:
                raise PreviewError("the map's data ends before its header says")
            self.data = np.asarray(mrc.data)
        else:
            self.handle.seek(0)
            mrc = MrcInterpreter(iostream=self.handle, permissive=True, header_only=True)
        header = mrc.header
        if header is None:
            raise PreviewError("not an MRC map (no header)")
        self.dtype = utils.data_dtype_from_header(header)
        self.shape = utils.data_shape_from_header(header)
        self.offset = header.nbytes + int(header.nsymbt)
        nz, ny, nx = (1, *self.shape) if len(self.shape) == 2 else self.shape[-3:]
        self.nz = int(nz)
        self.source = Source("ZYX", [(int(ny), int(nx))], {"Z": self.nz, "Y": int(ny), "X": int(nx)})

    def _gunzipped(self) -> bytes:
        import gzip

        size = self.handle.seek(0, io.SEEK_END)
        if size > MAX_GZIP_BYTES:
            raise PreviewError("gzip-compressed maps over 64 MiB are not rendered")
        self.handle.seek(0)
        with gzip.GzipFile(fileobj=io.BytesIO(self.handle.read(size))) as unzipped:
            data = unzipped.read(MAX_GUNZIPPED_BYTES + 1)
        if len(data) > MAX_GUNZIPPED_BYTES:
            raise PreviewError(f"the map unzips to more than {MAX_GUNZIPPED_BYTES >> 20} MiB")
        return data

    def read(self, level: int, index: dict[str, int | slice], side: int) -> np.ndarray:
        at = index.get("Z", 0)
        z = at if isinstance(at, int) else 0
        ny, nx = self.source.shapes[0]
        if self.data is not None:
            plane = self.data.reshape(self.nz, ny, nx)[z]
            return _strided(lambda y0, y1, step: plane[y0:y1:step, ::step], (ny, nx), self.dtype.itemsize, side)
        start = self.offset + z * ny * nx * self.dtype.itemsize
        row_bytes = nx * self.dtype.itemsize

        def line(row: int, count: int) -> np.ndarray:
            self.handle.seek(start + row * row_bytes)
            data = self.handle.read(count * row_bytes)
            if len(data) != count * row_bytes:
                raise PreviewError("the map's data ends before its header says")
            return np.frombuffer(data, dtype=self.dtype).reshape(count, nx)

        def rows(y0: int, y1: int, step: int) -> np.ndarray:
            if step == 1:
                return line(y0, y1 - y0)
            return np.concatenate([line(row, 1)[:, ::step] for row in range(y0, y1, step)])

        return _strided(rows, (ny, nx), self.dtype.itemsize, side)

    def close(self) -> None:
        self.data = None
        if self._own:
            self.handle.close()


class PillowImage:
    """A PNG or JPEG, opened by Pillow with its decompression-bomb guard as an error."""

    def __init__(self, file: File) -> None:
        from PIL import Image

        Image.MAX_IMAGE_PIXELS = MAX_PIL_PIXELS
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            try:
                self.image = Image.open(file)
                width, height = self.image.size
            except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
                raise PreviewError(f"refused by the decompression-bomb guard: {exc}") from exc
        if width * height > MAX_PIL_PIXELS:
            raise PreviewError(f"{width} x {height} pixels is over the {MAX_PIL_PIXELS:,}-pixel cap")
        rgb = self.image.mode in ("RGB", "RGBA", "P", "CMYK", "YCbCr", "LA", "PA")
        sizes = {"Y": height, "X": width, **({"S": 3} if rgb else {})}
        self.source = Source("YXS" if rgb else "YX", [(height, width)], sizes, rgb=rgb)

    def read(self, level: int, index: dict[str, int | slice], side: int) -> np.ndarray:
        image = self.image
        if image.format == "JPEG":
            image.draft(image.mode, (side, side))
        try:
            image.load()
        except OSError as exc:
            raise PreviewError(f"the image cannot be decoded: {exc}") from exc
        if self.source.rgb:
            return np.asarray(image.convert("RGB"))
        if image.mode not in ("L", "I", "F", "I;16", "I;16B", "1"):
            return np.asarray(image.convert("L"))
        return np.asarray(image)

    def close(self) -> None:
        self.image.close()


class ZarrImage:
    """An image of an OME-Zarr store zipped into one archive (an ``.ome.zarr.zip``), held as a local folder (a
    store uploaded as a folder of files, :mod:`catalog.zarr_folders`) or copied as the drawing asks
    (:class:`~loaders.image_headers.sources.DemandKeys`): image ``series`` of the store's layout as the header
    readers number them (:func:`loaders.image_headers.ome_zarr.image_paths`: a plain image, bioformats2raw series, a
    plate's fields), its levels the multiscale's datasets. Pixels are read through zarr; a zip's members are checked
    and capped as the header readers check them (:class:`~loaders.image_headers.sources.ZipKeys`, 16 MiB a member),
    the bytes read counted against ``cap``; one chunk at a time, of at most :data:`MAX_CHUNK_BYTES` of pixels."""

    def __init__(self, file: Drawable, series: int, name: str, cap: int | None = None) -> None:
        from loaders.image_headers import ome_zarr
        from loaders.image_headers.remote import HttpKeys
        from loaders.image_headers.sources import CountingKeys, DemandKeys, DirectoryKeys, UnreadableZip, ZipKeys

        self.zipped: Any = None
        self._source: Any = None
        try:
            if isinstance(file, (DemandKeys, HttpKeys)):  # a store held elsewhere: copied as asked, or read at its URL
                keys: Any = file
            elif isinstance(file, str) and os.path.isdir(file):  # a store uploaded as a folder of files
                keys = DirectoryKeys(file)
            else:
                self.reader, self._source = _counting(file, name, cap or MAX_ZARR_BYTES)
                keys = self.zipped = ZipKeys(self.reader, name)
            self.store = ome_zarr.key_store(CountingKeys(keys, cap or MAX_ZARR_BYTES), chunks=True)
            self._open(series)
        except UnreadableZip as exc:
            self.close()
            raise PreviewError(str(exc)) from None
        except BaseException:
            self.close()
            raise

    def _open(self, series: int) -> None:
        import zarr

        from catalog.file_paths import path_problem
        from loaders.image_headers import ome_zarr

        paths = ome_zarr.image_paths(self.store, [])
        if paths is None:
            raise PreviewError("the archive's Zarr store has no OME-Zarr metadata")
        if not 0 <= series < len(paths):
            raise PreviewError(f"the store has {len(paths)} images, not {series + 1}")
        path = paths[series]
        attributes = ome_zarr.ome_attributes(zarr.open_group(self.store, path=path, mode="r"))
        multiscale = (attributes.get("multiscales") or [{}])[0]
        datasets = multiscale.get("datasets") or []
        if not datasets:
            raise PreviewError(f"image {path or '/'} names no levels (multiscales datasets)")
        for dataset in datasets[:MAX_ZARR_LEVELS]:
            level = str(dataset.get("path", "")) if isinstance(dataset, dict) else ""
            if path_problem(level):
                raise PreviewError(f"a level's path {level[:100]!r} is not a plain path inside the store")
        #: where each level's array is in the store
        self.level_paths = ["/".join(filter(None, (path, str(d["path"])))) for d in datasets[:MAX_ZARR_LEVELS]]
        self.levels = [zarr.open_array(self.store, path=level, mode="r") for level in self.level_paths]
        axes = ome_zarr.axis_letters(ome_zarr.axes_of(multiscale, self.levels[0].ndim))
        self._check(axes)
        y, x = axes.index("Y"), axes.index("X")
        shapes = [(int(level.shape[y]), int(level.shape[x])) for level in self.levels]
        sizes = {a: int(n) for a, n in zip(axes, self.levels[0].shape)}
        self.source = Source(axes, shapes, sizes, _omero_colours(attributes))

    def _check(self, axes: str) -> None:
        if len(set(axes)) != len(axes) or "Y" not in axes or "X" not in axes:
            raise PreviewError(f"axes {axes!r}: one Y, one X and no axis twice are needed")
        for level in self.levels:
            if level.ndim != len(axes):
                raise PreviewError(f"a level of {level.ndim} dimensions does not fit the axes {axes!r}")
            dtype = np.dtype(level.dtype)
            if not (np.issubdtype(dtype, np.number) or dtype == np.bool_) or np.issubdtype(dtype, np.complexfloating):
                raise PreviewError(f"pixels of type {dtype} are not drawn")
            if int(np.prod(level.chunks, dtype=np.float64)) * dtype.itemsize > MAX_CHUNK_BYTES:
                raise PreviewError(f"chunks of {level.chunks} {dtype} pixels are over {MAX_CHUNK_BYTES >> 20} MiB each")

    def read(self, level: int, index: dict[str, int | slice], side: int) -> np.ndarray:
        """The plane at ``index`` (non-YX axes, as numbered at the first level) of ``level``, towards ``side``."""
        import zarr

        array, axes = self.levels[level], self.source.axes
        selection: list[int | slice] = [self._at(array, i, a, index) for i, a in enumerate(axes)]
        y, x = axes.index("Y"), axes.index("X")
        shape = self.source.shapes[level]
        self._check_reads(array.chunks[y], array.chunks[x], shape, side)

        def rows(y0: int, y1: int, step: int) -> np.ndarray:
            selection[y], selection[x] = slice(y0, y1, step), slice(None, None, step)
            data = np.asarray(array[tuple(selection)])
            return data if y < x else data.T

        from loaders.image_headers.sources import UnreadableZip

        try:
            with zarr.config.set({"async.concurrency": 1}):  # one chunk in memory at a time
                return _strided(rows, shape, np.dtype(array.dtype).itemsize, side)
        except UnreadableZip as exc:
            raise PreviewError(str(exc)) from None

    def _at(self, array: Any, axis: int, letter: str, index: dict[str, int | slice]) -> int | slice:
        """Where ``array`` (a level) is read along ``axis``: all of Y and X; elsewhere the index asked for at the
        first level, scaled to this level (a level may shrink Z too)."""
        if letter in "YX":
            return slice(None)
        asked = index.get(letter, 0)
        at = asked if isinstance(asked, int) else 0
        full = int(self.levels[0].shape[axis])
        if not 0 <= at < full:
            raise PreviewError(f"{letter.lower()} {at} is outside the image (0 to {full - 1})")
        return min(int(array.shape[axis]) - 1, at * int(array.shape[axis]) // full)

    @staticmethod
    def _check_reads(chunk_y: int, chunk_x: int, shape: tuple[int, int], side: int) -> None:
        step = _step(shape, side)
        rows = min(-(-shape[0] // max(1, chunk_y)), -(-shape[0] // step))
        columns = min(-(-shape[1] // max(1, chunk_x)), -(-shape[1] // step))
        if rows * columns > MAX_CHUNK_READS:
            raise PreviewError(f"drawing this level would read {rows * columns:,} chunks, over {MAX_CHUNK_READS:,}")

    def close(self) -> None:
        if self.zipped is not None:
            self.zipped.close()
        if self._source is not None:
            self._source.close()


def _counting(file: File, name: str, cap: int) -> tuple[Any, Any]:
    """A :class:`~loaders.image_headers.sources.CountingReader` over ``file`` (one already: as it is) and the local
    file source it opened (None when it opened none)."""
    from loaders.image_headers.sources import CountingReader, FileSource, RangeSource

    if isinstance(file, CountingReader):
        return file, None
    if isinstance(file, str):
        local = FileSource(file)
        local.name = name
        try:
            return CountingReader(local, cap), local
        except BaseException:
            local.close()
            raise
    handle = file

    def read_at(offset: int, length: int) -> bytes:
        handle.seek(offset)
        return handle.read(length)

    return CountingReader(RangeSource(read_at, handle.seek(0, io.SEEK_END), name), cap), None


def _omero_colours(attributes: dict) -> list[tuple[int, int, int] | None]:
    """The channels' colours of an image's ``omero`` metadata (hex ``RRGGBB``; None where a channel names none)."""
    omero = attributes.get("omero")
    channels = omero.get("channels") if isinstance(omero, dict) else None
    if not isinstance(channels, list):
        return []
    return [_hex_colour(c.get("color")) if isinstance(c, dict) else None for c in channels]


def _hex_colour(text: Any) -> tuple[int, int, int] | None:
    value = str(text or "").removeprefix("#")
    if len(value) != 6:
        return None
    try:
        number = int(value, 16)
    except ValueError:
        return None
    return (number >> 16) & 255, (number >> 8) & 255, number & 255


def open_image(file: Drawable, fmt: str | None, series: int, name: str | None = None, cap: int | None = None) -> Any:
    """An opened image of ``file`` (called ``name``, default its path) by the format its headers named (or its
    name); ``cap``: the bytes an ``.ome.zarr.zip`` may give up (default :data:`MAX_ZARR_BYTES`)."""
    from loaders.image_headers.read import ZARR_ZIP_SUFFIX
    from loaders.image_headers.remote import HttpKeys
    from loaders.image_headers.sources import DemandKeys

    kind = (fmt or "").lower()
    lower = (name or (file if isinstance(file, str) else "")).lower()
    folder = isinstance(file, str) and os.path.isdir(file)
    if isinstance(file, (DemandKeys, HttpKeys)) or kind == "ome-zarr" or lower.endswith(ZARR_ZIP_SUFFIX) or folder:
        return ZarrImage(file, series, name or str(file), cap)
    if "tiff" in kind or lower.endswith((".tif", ".tiff")):
        return TiffImage(file, series)
    if "mrc" in kind or lower.endswith((".mrc", ".map", ".mrcs", ".rec", ".st", ".map.gz", ".mrc.gz")):
        return MrcImage(file, lower)
    if kind in ("png", "jpeg", "jpg") or lower.endswith((".png", ".jpg", ".jpeg")):
        return PillowImage(file)
    raise PreviewError(f"previews of {fmt or 'this format'} are not made")


# ---------------------------------------------------------------------------------------------------- planes


def _index(source: Source, plane: Plane) -> dict[str, int | slice]:
    sizes = source.sizes
    z_axis = next((a for a in _Z_AXES if a in source.axes), None)
    index: dict[str, int | slice] = {}
    if z_axis is not None:
        index[z_axis] = sizes[z_axis] // 2 if plane.z is None else plane.z
    if "T" in sizes:
        index["T"] = plane.t
    return index


def _channels(source: Source, plane: Plane) -> list[int]:
    count = source.sizes.get("C", 1)
    if plane.c is not None:
        return [plane.c]
    return list(range(min(count, MAX_CHANNELS if count <= MAX_CHANNELS else 3)))


def render(image: Any, plane: Plane, side: int) -> np.ndarray:
    """The RGB uint8 picture of ``plane``, its longest side at most ``side``."""
    source: Source = image.source
    level = _pick_level(source.shapes, side) if plane.level is None else plane.level
    if not 0 <= level < len(source.shapes):
        raise PreviewError(f"level {level} is not one of the image's {len(source.shapes)} levels")
    index = _index(source, plane)
    if source.rgb:
        rgb = image.read(level, index, side)
        return fit(np.ascontiguousarray(rgb[..., :3]), side)
    picked = []
    for channel in _channels(source, plane):
        if "C" in source.sizes:
            index = {**index, "C": channel}
        data = image.read(level, index, side)
        picked.append(data if data.ndim == 2 else data[..., 0])
    colours = [source.colours[c] if c < len(source.colours) else None for c in _channels(source, plane)]
    if plane.c is not None:
        colours = [(255, 255, 255)]
    return fit(composite(picked, colours), side)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def previews_of(
    file: Drawable, fmt: str | None, series: list[int], name: str | None = None, cap: int | None = None
) -> list[dict[str, Any]]:
    """Thumbnails and the static view of each of ``series`` of ``file`` (called ``name``; ``cap``: as
    :func:`open_image` takes it): per series ``{"index", "status", "reason"?, "level", "pngs": {name: base64 PNG},
    "sizes": {name: [width, height]}}``."""
    out = []
    for index in series:
        try:
            out.append({"index": index, "status": "ok", **_previews(file, fmt, index, name, cap)})
        except PreviewError as exc:
            out.append({"index": index, "status": "failed", "reason": str(exc)})
        except (MemoryError, SystemError):
            raise
        except Exception as exc:  # noqa: BLE001 - any library failure on a hostile file is a failed preview
            out.append({"index": index, "status": "failed", "reason": f"{type(exc).__name__}: {str(exc)[:300]}"})
    return out


def _previews(file: Drawable, fmt: str | None, series: int, name: str | None, cap: int | None) -> dict[str, Any]:
    image = open_image(file, fmt, series, name, cap)
    try:
        level = _pick_level(image.source.shapes, VIEW_SIZE)
        view = render(image, Plane(series=series, level=level), VIEW_SIZE)
    finally:
        image.close()
    pngs = {"view": view}
    for size in THUMBNAIL_SIZES:
        pngs[f"thumbnail-{size}"] = fit(view, size)
    return {
        "level": level,
        "pngs": {name: _b64(encode_png(rgb)) for name, rgb in pngs.items()},
        "sizes": {name: [int(rgb.shape[1]), int(rgb.shape[0])] for name, rgb in pngs.items()},
    }


def render_png(
    file: Drawable,
    fmt: str | None,
    series: int,
    z: int,
    t: int,
    c: int | None,
    level: int,
    name: str | None = None,
    cap: int | None = None,
) -> str:
    """One plane at one level, as a base64 PNG (the longest side at most :data:`MAX_RENDER_SIDE`)."""
    image = open_image(file, fmt, series, name, cap)
    try:
        rgb = render(image, Plane(series=series, z=z, t=t, c=c, level=level), MAX_RENDER_SIDE)
    finally:
        image.close()
    return _b64(encode_png(rgb))
