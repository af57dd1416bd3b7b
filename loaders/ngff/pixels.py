"""Pixels of a file, read a block at a time in NGFF axis order: a TIFF series, an MRC map (plain or gzipped), a
PNG. Each source says its axes (NGFF names, already in NGFF order), shape and dtype, and answers ``read(box)`` with
the pixels of a box (a tuple of slices, one per axis) exactly as the file holds them (only the axes reordered).

Memory: a TIFF is read through tifffile's Zarr view of its tiles or strips (only those a box touches are decoded),
or, for an uncompressed contiguous plane, by seeking to the rows a box needs; an MRC map by reading the rows of a
box from the file (a gzipped one is decompressed as a stream, front to back); a PNG cannot be read in parts, so it
is decoded whole, behind Pillow's decompression-bomb guard.
"""

from __future__ import annotations

import gzip
import os
from typing import Any, BinaryIO, Protocol, Sequence, cast

import numpy as np

from .metadata import NotNgff, ngff_axes, sorted_axes

Box = tuple[slice, ...]


class Unconvertible(ValueError):
    """The file's pixels cannot be read as an image (the reason says why)."""


class PixelSource(Protocol):
    names: list[str]
    shape: tuple[int, ...]
    dtype: np.dtype
    #: whether z is a sampled space axis (a volume: chunked in z too) rather than a stack of planes
    volume: bool

    def read(self, box: Box) -> np.ndarray: ...

    def close(self) -> None: ...


class _Reordered:
    """Axes of a source in its own order mapped to NGFF order."""

    def _order(self, letters: str, shape: Sequence[int]) -> None:
        try:
            own = ngff_axes(letters)
        except NotNgff as exc:
            raise Unconvertible(str(exc)) from exc
        self.names = sorted_axes(own)
        self._perm = [own.index(name) for name in self.names]  # NGFF axis i is source axis perm[i]
        self.shape = tuple(int(shape[p]) for p in self._perm)

    def _source_box(self, box: Box) -> Box:
        inverse = [self._perm.index(i) for i in range(len(self._perm))]
        return tuple(box[inverse[i]] for i in range(len(box)))

    def _to_ngff(self, block: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(block.transpose(self._perm))


class TiffPixels(_Reordered):
    """Level 0 of a TIFF series."""

    volume = False

    def __init__(self, tif: Any, index: int) -> None:
        series = tif.series[index]
        self._order(series.axes, series.shape)
        self.dtype = np.dtype(series.dtype)
        #: the pixels as the file stores them: tifffile names the type in this machine's byte order, whatever the file's
        self._stored = self.dtype.newbyteorder(tif.byteorder)
        self._plane = _contiguous_plane(series)
        self._fd = os.open(tif.filehandle.path, os.O_RDONLY) if self._plane else -1
        self._zarr = None if self._plane else _tiff_zarr(series)

    def read(self, box: Box) -> np.ndarray:
        inner = self._source_box(box)
        block = self._read_rows(inner) if self._zarr is None else np.asarray(self._zarr[inner])
        return self._to_ngff(block)

    def _read_rows(self, inner: Box) -> np.ndarray:
        assert self._plane is not None
        offset, shape = self._plane  # a 2-D plane (rows, columns[, samples]) stored row after row
        rows, rest = inner[0], inner[1:]
        row_bytes = int(np.prod(shape[1:])) * self.dtype.itemsize
        start, stop = rows.start or 0, shape[0] if rows.stop is None else rows.stop
        data = os.pread(self._fd, (stop - start) * row_bytes, offset + start * row_bytes)
        if len(data) != (stop - start) * row_bytes:
            raise Unconvertible("the file ends inside its pixel data (truncated)")
        block = np.frombuffer(data, self._stored).reshape((stop - start, *shape[1:]))
        return block[(slice(None),) + tuple(rest)].astype(self.dtype, copy=False)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


def _contiguous_plane(series: Any) -> tuple[int, tuple[int, ...]] | None:
    """(offset, shape) of a series that is one uncompressed plane stored contiguously, else None."""
    if len(series.pages) != 1 or series.pages[0] is None:
        return None
    page = series.pages[0]
    if page.compression != 1 or not page.is_contiguous:
        return None
    if tuple(series.shape) != tuple(page.shape) or len(page.shape) not in (2, 3) or page.planarconfig != 1:
        return None
    return int(page.dataoffsets[0]), tuple(int(s) for s in page.shape)


def _tiff_zarr(series: Any) -> Any:
    import zarr

    return zarr.open_array(series.aszarr(level=0), mode="r", zarr_format=2)


class MrcPixels:
    """An MRC map's data block as (z, y, x) or (y, x); the header's axis permutation is kept as stored."""

    names: list[str]
    volume = True

    def __init__(self, path: str) -> None:
        import mrcfile  # type: ignore[import-untyped]
        from mrcfile.utils import data_dtype_from_header, data_shape_from_header  # type: ignore[import-untyped]

        self._gzipped = _is_gzip(path)
        try:
            with mrcfile.open(path, header_only=True, permissive=False) as mrc:
                header = mrc.header
                dtype = np.dtype(data_dtype_from_header(header))
                shape = tuple(int(s) for s in data_shape_from_header(header))
                self._offset = header.nbytes + int(header.nsymbt)
        except Exception as exc:  # noqa: BLE001 - mrcfile raises ValueError and friends for a bad header
            raise Unconvertible(f"not a readable MRC map: {exc}") from exc
        if len(shape) not in (2, 3) or min(shape) < 1:
            raise Unconvertible(f"MRC data of shape {shape} is not an image or a volume")
        self.names = ["z", "y", "x"][-len(shape) :]
        self.shape, self.dtype = shape, dtype
        self._stream: BinaryIO = cast(BinaryIO, gzip.open(path, "rb") if self._gzipped else open(path, "rb"))  # noqa: SIM115
        if not self._gzipped and os.fstat(self._stream.fileno()).st_size < self._offset + self._nbytes():
            self._stream.close()
            raise Unconvertible(
                f"the file ends inside its data block (truncated): {self._offset + self._nbytes():,} bytes needed"
            )

    def _nbytes(self) -> int:
        return int(np.prod(self.shape)) * self.dtype.itemsize

    def read(self, box: Box) -> np.ndarray:
        planes = box[0] if len(self.shape) == 3 else slice(0, 1)
        rows, columns = box[-2], box[-1]
        ny, nx = self.shape[-2:]
        row_bytes = nx * self.dtype.itemsize
        out = []
        for z in range(planes.start or 0, planes.stop if planes.stop is not None else self.shape[0]):
            start = self._offset + (z * ny + (rows.start or 0)) * row_bytes
            count = ((rows.stop if rows.stop is not None else ny) - (rows.start or 0)) * row_bytes
            self._stream.seek(start)
            data = self._stream.read(count)
            if len(data) != count:
                raise Unconvertible("the file ends inside its data block (truncated)")
            out.append(np.frombuffer(data, self.dtype).reshape(-1, nx)[:, columns])
        block = np.stack(out)
        return block if len(self.shape) == 3 else block[0]

    def close(self) -> None:
        self._stream.close()


def _is_gzip(path: str) -> bool:
    with open(path, "rb") as handle:
        return handle.read(2) == b"\x1f\x8b"


class PngPixels(_Reordered):
    """A PNG (or any single-frame image Pillow reads), decoded whole behind the decompression-bomb guard."""

    volume = False

    def __init__(self, path: str) -> None:
        import warnings

        from PIL import Image

        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            try:
                with Image.open(path) as image:
                    image.load()
                    pixels = np.asarray(image)
            except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
                raise Unconvertible(f"refused by the decompression-bomb guard: {exc}") from exc
            except (OSError, SyntaxError, ValueError) as exc:
                raise Unconvertible(f"not a readable image: {exc}") from exc
        self._pixels = pixels
        self._order("YX" if pixels.ndim == 2 else "YXS", pixels.shape)
        self.dtype = pixels.dtype

    def read(self, box: Box) -> np.ndarray:
        return self._to_ngff(self._pixels[self._source_box(box)])

    def close(self) -> None:
        self._pixels = np.empty(0)
