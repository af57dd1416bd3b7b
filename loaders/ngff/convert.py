"""Converted OME-Zarr: a :class:`~.pixels.PixelSource` written as an NGFF 0.4 multiscale image (Zarr v2 arrays
``0``, ``1``…, ``/``-separated chunk keys, Blosc-LZ4), a block of whole chunks at a time.

Level 0 holds the source's pixels unchanged; each further level takes every second pixel in y and x of the level
before it (read back from the store, so no level is ever held whole), until the image fits in one chunk. A block is
at most :data:`BLOCK_BYTES` (a run of chunks along x), so converting a large image takes bounded memory.
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
    level = _array(group, "0", source.shape, chunks, source.dtype, source.names)
    for box in blocks(source.shape, chunks, source.dtype.itemsize):
        level[box] = source.read(box)
    shapes = [source.shape]
    while max(shapes[-1][-2:]) > max(chunks[-2:]):
        previous = level
        shape = (*shapes[-1][:-2], *((size + 1) // 2 for size in shapes[-1][-2:]))
        level = _array(group, str(len(shapes)), shape, chunks_for(source.names, shape, source.volume), source.dtype, source.names)
        for box in blocks(shape, level.chunks, source.dtype.itemsize):
            wide = (*box[:-2], *(slice(s.start * 2, s.stop * 2) for s in box[-2:]))
            level[box] = np.asarray(previous[wide])[..., ::2, ::2]
        shapes.append(shape)
    group.attrs.update(multiscales(source.names, shapes, sizes, name=name))
    version = validate_group(zarr.open_group(str(folder), mode="r", zarr_format=2))
    return {"levels": len(shapes), "shapes": [list(s) for s in shapes], "chunks": list(chunks), "ngff_version": version}


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
