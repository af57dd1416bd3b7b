"""Converted OME-Zarr: a :class:`~.pixels.PixelSource` written as an NGFF 0.4 multiscale image (Zarr v2 arrays
``0``, ``1``…, ``/``-separated chunk keys, Blosc-LZ4), a block of whole chunks at a time.

Level 0 holds the source's pixels unchanged; each further level takes every second pixel in y and x of the level
before it, until the image fits in one chunk. A block is at most :data:`BLOCK_BYTES` (a run of chunks along x), so
converting a large image takes bounded memory. When a block spans whole rows, the levels are made as level 0 is
written (:class:`_Cascade`: two bands of rows per level held); otherwise each level is read back from the one above.
"""

from __future__ import annotations

import itertools
import math
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import numpy as np

from .metadata import multiscales, validate_group
from .pixels import Box, PixelSource

#: edge of a chunk in y and x (a volume: 128, with 32 planes of z)
PLANE_CHUNK = 512
VOLUME_CHUNK = (32, 128, 128)
#: bytes of pixels read and written at once, at most (one chunk more when a single chunk is larger)
BLOCK_BYTES = 32 << 20


def compressor() -> Any:
    from numcodecs import Blosc  # type: ignore[import-untyped]

    return Blosc(cname="lz4", clevel=5, shuffle=Blosc.SHUFFLE)


def chunks_for(names: Sequence[str], shape: Sequence[int], volume: bool) -> tuple[int, ...]:
    out = []
    for name, size in zip(names, shape):
        if name in ("y", "x"):
            edge = VOLUME_CHUNK[1] if volume and "z" in names else PLANE_CHUNK
        elif name == "z" and volume:
            edge = VOLUME_CHUNK[0]
        else:
            edge = 1
        out.append(max(1, min(size, edge)))
    return tuple(out)


def blocks(shape: Sequence[int], chunks: Sequence[int], itemsize: int) -> Iterator[Box]:
    """Boxes of whole chunks covering ``shape``: one chunk in every axis but x, as many along x as fit in
    :data:`BLOCK_BYTES`; in C order (a front-to-back pass over the source)."""
    chunk_bytes = math.prod(chunks) * itemsize
    along_x = max(1, BLOCK_BYTES // max(1, chunk_bytes)) * chunks[-1]
    steps = [*chunks[:-1], along_x]
    ranges = [range(0, size, step) for size, step in zip(shape, steps)]
    for corner in itertools.product(*ranges):
        yield tuple(slice(start, min(start + step, size)) for start, step, size in zip(corner, steps, shape))


def write_image(source: PixelSource, folder: Path, sizes: Mapping[str, float | None], name: str | None = None) -> dict[str, Any]:
    """Write ``source`` as an OME-Zarr image in ``folder`` (created); returns its levels, shapes, chunks and
    NGFF version, after validating the store."""
    import zarr

    group = zarr.open_group(str(folder), mode="w", zarr_format=2)
    chunks = chunks_for(source.names, source.shape, source.volume)
    shapes = [tuple(source.shape)]
    while max(shapes[-1][-2:]) > max(chunks[-2:]):
        shapes.append((*shapes[-1][:-2], *((size + 1) // 2 for size in shapes[-1][-2:])))
    levels = [
        _array(group, str(i), shape, chunks_for(source.names, shape, source.volume), source.dtype, source.names)
        for i, shape in enumerate(shapes)
    ]
    boxes = list(itertools.islice(blocks(source.shape, chunks, source.dtype.itemsize), 1))
    if boxes and boxes[0][-1].stop >= source.shape[-1]:
        pyramid = _Cascade(levels)  # whole rows at a time: each level is made from the one above as it is written
        for box in blocks(source.shape, chunks, source.dtype.itemsize):
            pyramid.push(0, box, source.read(box))
    else:
        for box in blocks(source.shape, chunks, source.dtype.itemsize):
            levels[0][box] = source.read(box)
        for previous, level in zip(levels, levels[1:]):
            for box in blocks(level.shape, level.chunks, source.dtype.itemsize):
                wide = (*box[:-2], *(slice(s.start * 2, s.stop * 2) for s in box[-2:]))
                level[box] = np.asarray(previous[wide])[..., ::2, ::2]
    group.attrs.update(multiscales(source.names, shapes, sizes, name=name))
    version = validate_group(zarr.open_group(str(folder), mode="r", zarr_format=2))
    return {"levels": len(shapes), "shapes": [list(s) for s in shapes], "chunks": list(chunks), "ngff_version": version}


class _Cascade:
    """Writes bands of whole rows to a level and, once two bands' worth of rows of the next level's chunk height
    are in, their every second pixel in y and x to the next level (so no level is read back)."""

    def __init__(self, levels: list[Any]) -> None:
        self.levels = levels
        #: per level: rows received but not yet passed down, by the band's other axes: (first row, rows)
        self.pending: list[dict[tuple, tuple[int, np.ndarray]]] = [{} for _ in levels]

    def push(self, index: int, box: Box, data: np.ndarray) -> None:
        self.levels[index][box] = data
        if index + 1 >= len(self.levels):
            return
        outer = tuple((s.start, s.stop) for s in box[:-2])
        first, held = self.pending[index].pop(outer, (box[-2].start, data[..., :0, :]))
        held = np.concatenate([held, data], axis=-2) if held.shape[-2] else data
        step = 2 * self.levels[index + 1].chunks[-2]
        height = self.levels[index].shape[-2]
        while held.shape[-2] >= step or (held.shape[-2] and first + held.shape[-2] >= height):
            take = min(step, held.shape[-2])
            down = np.ascontiguousarray(held[..., :take:2, ::2])
            lower = (*box[:-2], slice(first // 2, first // 2 + down.shape[-2]), slice(0, down.shape[-1]))
            self.push(index + 1, lower, down)
            first, held = first + take, held[..., take:, :]
        if held.shape[-2]:
            self.pending[index][outer] = (first, held)


def _array(group: Any, name: str, shape: Sequence[int], chunks: Sequence[int], dtype: np.dtype, names: Sequence[str]) -> Any:
    array = group.create_array(
        name,
        shape=tuple(shape),
        chunks=tuple(chunks),
        dtype=dtype,
        compressors=compressor(),
        fill_value=0,
        chunk_key_encoding={"name": "v2", "separator": "/"},
    )
    array.attrs["_ARRAY_DIMENSIONS"] = list(names)
    return array
