"""Converted OME-Zarr: a :class:`~.pixels.PixelSource` written as an NGFF 0.4 multiscale image (Zarr v2 arrays
``0``, ``1``…, ``/``-separated chunk keys, Blosc-LZ4), a block of whole chunks at a time.

Level 0 holds the source's pixels unchanged; each further level takes every second pixel in y and x of the level
before it, until the image fits in one chunk. A block is at most :data:`BLOCK_BYTES` (whole rows of chunks when
they fit, else a run of chunks along x), so converting a large image takes bounded memory. When a block spans whole
rows, the levels are made as level 0 is written (:class:`_Cascade`: under a band of rows per level held); otherwise
each level is read back from the one above.

Speed: the next block is read on a thread while this one is written; blocks are written on :data:`WRITE_THREADS`
threads (at most that many blocks waiting), each chunk encoded and stored as its own file by
:class:`~.chunk_files.ChunkFiles` (the bytes zarr would store, at a fifth of zarr-python's cost per chunk); chunks
whose bits are all zero are left out by one cheap test, as zarr leaves out chunks equal to the fill value.
"""

from __future__ import annotations

import collections
import itertools
import math
from concurrent.futures import Future
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import numpy as np

from .chunk_files import ChunkFiles, chunk_boxes
from .metadata import multiscales, validate_group
from .pixels import Box, PixelSource

#: edge of a chunk in y and x (a volume: 128, with 32 planes of z)
PLANE_CHUNK = 512
VOLUME_CHUNK = (32, 128, 128)
#: bytes of pixels read and written at once, at most (one chunk more when a single chunk is larger)
BLOCK_BYTES = 32 << 20
#: threads handing blocks to Zarr at once (Zarr encodes and stores their chunks on its own threads)
WRITE_THREADS = 2


def compressor() -> Any:
    from numcodecs import Blosc  # type: ignore[import-untyped]

    return Blosc(cname="lz4", clevel=5, shuffle=Blosc.SHUFFLE)


def chunks_for(names: Sequence[str], shape: Sequence[int], volume: bool) -> tuple[int, ...]:
    """Chunks of :data:`PLANE_CHUNK` (a volume: :data:`VOLUME_CHUNK`) in y and x, one plane of each other axis; where
    that chunk holds fewer pixels than a full one (small planes), it takes more of the other axes, the innermost
    first, up to about a full chunk's pixels: a stack of thousands of tiny planes is a few objects, not one each."""
    out = []
    for name, size in zip(names, shape):
        if name in ("y", "x"):
            edge = VOLUME_CHUNK[1] if volume and "z" in names else PLANE_CHUNK
        elif name == "z" and volume:
            edge = VOLUME_CHUNK[0]
        else:
            edge = 1
        out.append(max(1, min(size, edge)))
    full = math.prod(VOLUME_CHUNK) if volume and "z" in names else PLANE_CHUNK * PLANE_CHUNK
    for axis in reversed(range(len(names) - 2)):  # the axes before y and x, innermost first
        room = full // math.prod(out[:axis] + out[axis + 1 :])
        out[axis] = max(out[axis], min(shape[axis], room))
    return tuple(out)


def blocks(shape: Sequence[int], chunks: Sequence[int], itemsize: int) -> Iterator[Box]:
    """Boxes of whole chunks covering ``shape``, in C order (a front-to-back pass over the source), each at most
    :data:`BLOCK_BYTES` (or one chunk): as many chunks along x as fit; when whole rows of chunks fit, as many rows
    of chunks as fit; one chunk in every other axis."""
    chunk_bytes = math.prod(chunks) * itemsize
    along_x = max(1, BLOCK_BYTES // max(1, chunk_bytes)) * chunks[-1]
    steps = [*chunks[:-1], along_x]
    if len(shape) > 1 and along_x >= shape[-1]:
        row_bytes = math.prod(chunks[:-1]) * shape[-1] * itemsize  # one row of chunks, all of x
        steps[-2] = max(1, BLOCK_BYTES // max(1, row_bytes)) * chunks[-2]
    ranges = [range(0, size, step) for size, step in zip(shape, steps)]
    for corner in itertools.product(*ranges):
        yield tuple(slice(start, min(start + step, size)) for start, step, size in zip(corner, steps, shape))


def write_image(source: PixelSource, folder: Path, sizes: Mapping[str, float | None], name: str | None = None) -> dict[str, Any]:
    """Write ``source`` as an OME-Zarr image in ``folder`` (created); returns its levels, shapes, chunks and
    NGFF version, after validating the store."""
    import zarr

    group = zarr.open_group(str(folder), mode="w", zarr_format=2)
    dtype = np.dtype(source.dtype.str)  # numpy's own type of that name: Zarr knows int64 but not 'q' (tifffile's)
    chunks = chunks_for(source.names, source.shape, source.volume)
    shapes = [tuple(source.shape)]
    while max(shapes[-1][-2:]) > max(chunks[-2:]):
        shapes.append((*shapes[-1][:-2], *((size + 1) // 2 for size in shapes[-1][-2:])))
    levels = [  # every level chunked as level 0 in the axes before y and x (the levels are made band by band of those)
        _array(group, str(i), shape, (*chunks[:-2], *chunks_for(source.names, shape, source.volume)[-2:]), dtype, source.names)
        for i, shape in enumerate(shapes)
    ]
    files = [ChunkFiles(level) for level in levels]
    boxes = list(blocks(source.shape, chunks, dtype.itemsize))
    with _Writes() as writes:
        if boxes and boxes[0][-1].stop >= source.shape[-1]:
            pyramid = _Cascade(files, writes)  # whole rows at a time: each level is made from the one above
            for box, data in _prefetched(source, boxes):
                pyramid.push(0, box, data)
        else:
            for box, data in _prefetched(source, boxes):
                writes.put(files[0], box, data)
            for previous, level in zip(levels, files[1:]):
                writes.drain()  # the level above is read back
                for box in blocks(level.shape, level.chunks, dtype.itemsize):
                    wide = (*box[:-2], *(slice(s.start * 2, s.stop * 2) for s in box[-2:]))
                    writes.put(level, box, np.ascontiguousarray(np.asarray(previous[wide])[..., ::2, ::2]))
    group.attrs.update(multiscales(source.names, shapes, sizes, name=name))
    version = validate_group(zarr.open_group(str(folder), mode="r", zarr_format=2))
    return {"levels": len(shapes), "shapes": [list(s) for s in shapes], "chunks": list(chunks), "ngff_version": version}


class _Cascade:
    """Writes bands of whole rows to a level and passes their every second pixel in y and x down: held until they
    make whole rows of the next level's chunks (or its last rows), then written there (so no level is read back;
    per level, less than one band of the next level's chunk height is held)."""

    def __init__(self, levels: list[ChunkFiles], writes: _Writes) -> None:
        self.levels, self.writes = levels, writes
        #: per level: rows of the next level made but not yet written, by the band's other axes: (first row, rows)
        self.pending: list[dict[tuple, tuple[int, np.ndarray]]] = [{} for _ in levels]

    def push(self, index: int, box: Box, data: np.ndarray) -> None:
        self.writes.put(self.levels[index], box, data)
        if index + 1 >= len(self.levels):
            return
        start, below = box[-2].start, self.levels[index + 1]
        down = np.ascontiguousarray(data[..., start % 2 :: 2, ::2])  # the rows of this band that are even overall
        outer = tuple((s.start, s.stop) for s in box[:-2])
        first, held = self.pending[index].pop(outer, ((start + 1) // 2, down[..., :0, :]))
        held = np.concatenate([held, down], axis=-2) if held.shape[-2] else down
        rows, step = held.shape[-2], below.chunks[-2]
        ready = rows if first + rows >= below.shape[-2] else rows // step * step
        if ready:
            self.push(index + 1, (*box[:-2], slice(first, first + ready), slice(0, held.shape[-1])), held[..., :ready, :])
            first, held = first + ready, held[..., ready:, :]
        if held.shape[-2]:
            self.pending[index][outer] = (first, held)


def _array(group: Any, name: str, shape: Sequence[int], chunks: Sequence[int], dtype: np.dtype, names: Sequence[str]) -> Any:
    return group.create_array(
        name,
        shape=tuple(shape),
        chunks=tuple(chunks),
        dtype=dtype,
        compressors=compressor(),
        fill_value=0,
        chunk_key_encoding={"name": "v2", "separator": "/"},
        attributes={"_ARRAY_DIMENSIONS": list(names)},
    )


class _Writes:
    """Blocks stored on :data:`WRITE_THREADS` threads while the next ones are read and reduced; at most
    :data:`BLOCK_BYTES` × :data:`WRITE_THREADS` of pixels wait (the oldest write is waited for past that)."""

    def __init__(self) -> None:
        from concurrent.futures import ThreadPoolExecutor

        self._pool = ThreadPoolExecutor(WRITE_THREADS, thread_name_prefix="ngff-write")
        self._pending: collections.deque[tuple[Future, int]] = collections.deque()
        self._bytes = 0

    def put(self, files: ChunkFiles, box: Box, data: np.ndarray) -> None:
        self._pending.append((self._pool.submit(_write, files, box, data), data.nbytes))
        self._bytes += data.nbytes
        while self._bytes > BLOCK_BYTES * WRITE_THREADS:
            self._wait_oldest()

    def drain(self) -> None:
        while self._pending:
            self._wait_oldest()

    def _wait_oldest(self) -> None:
        future, size = self._pending.popleft()
        self._bytes -= size
        future.result()

    def __enter__(self) -> _Writes:
        return self

    def __exit__(self, kind: object, *rest: object) -> None:
        try:
            if kind is None:
                self.drain()
        finally:
            self._pool.shutdown(wait=True, cancel_futures=True)


def _prefetched(source: PixelSource, boxes: Sequence[Box]) -> Iterator[tuple[Box, np.ndarray]]:
    """Each box with its pixels, the next box read on a thread while this one is written (two blocks held)."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1, thread_name_prefix="ngff-read") as reader:
        ahead = reader.submit(source.read, boxes[0]) if boxes else None
        for index, box in enumerate(boxes):
            assert ahead is not None
            data = ahead.result()
            ahead = reader.submit(source.read, boxes[index + 1]) if index + 1 < len(boxes) else None
            yield box, data


def _write(files: ChunkFiles, box: Box, data: np.ndarray) -> None:
    """Store the chunks of ``data`` (``box`` starting on chunk boundaries), leaving out those whose bits are all
    zero (the fill value), as zarr does, but keeping ``-0.0``."""
    for part in chunk_boxes(box, files.chunks):
        block = data[tuple(slice(p.start - s.start, p.stop - s.start) for p, s in zip(part, box))]
        if _has_bits(block):
            files.write(part, block)


def _has_bits(block: np.ndarray) -> bool:
    """Whether any bit of ``block`` is set (a float ``-0.0`` or NaN counts; zero does not)."""
    if block.dtype.kind == "b":
        return bool(block.any())
    if block.dtype.itemsize in (1, 2, 4, 8):  # the largest unsigned value of the same bits is 0 only for all zero
        return bool(block.view(np.dtype(f"u{block.dtype.itemsize}")).max(initial=0) != 0)
    return bool(np.ascontiguousarray(block).view(np.uint8).max(initial=0) != 0)
