"""Chunk files written by :class:`loaders.ngff.chunk_files.ChunkFiles` are byte for byte those zarr writes for the same
array (edge chunks padded, byte order kept, every dtype the converter meets), and anything else is refused."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import zarr

from loaders.ngff.chunk_files import ChunkFiles, chunk_boxes
from loaders.ngff.convert import compressor


def _create(folder: Path, shape, chunks, dtype, **extra):
    options = {"compressors": compressor(), "chunk_key_encoding": {"name": "v2", "separator": "/"}, **extra}
    return zarr.create_array(
        str(folder),
        shape=shape,
        chunks=chunks,
        dtype=dtype,
        fill_value=0,
        zarr_format=2,
        config={"write_empty_chunks": True},
        **options,
    )


def _files(folder: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(folder)): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and not p.name.startswith(".")
    }


def _chunk_boxes(shape, chunks):
    return chunk_boxes(tuple(slice(0, n) for n in shape), chunks)


CASES = {
    "uint16 plane, edges on both axes": ((1000, 1300), (512, 512), "<u2"),
    "big-endian uint16": ((700, 600), (512, 512), ">u2"),
    "float32 with NaN and -0.0": ((300, 530), (256, 256), "<f4"),
    "bool": ((70, 90), (64, 64), "|b1"),
    "int8 channels": ((3, 130, 140), (1, 128, 128), "|i1"),
    "uint8 volume": ((40, 300, 260), (32, 128, 128), "|u1"),
    "float64 time and channels": ((2, 2, 5, 70, 65), (1, 1, 1, 64, 64), "<f8"),
}


@pytest.mark.parametrize("shape, chunks, dtype", CASES.values(), ids=CASES.keys())
def test_chunk_files_are_the_bytes_zarr_writes(tmp_path, shape, chunks, dtype):
    rng = np.random.default_rng(7)
    data = (rng.integers(0, 200, size=shape) % 7).astype(dtype)  # runs of repeats: blosc finds something to shorten
    if data.dtype.kind == "f":
        data.flat[::97] = np.nan
        data.flat[5::101] = -0.0
    _create(tmp_path / "by-zarr", shape, chunks, dtype)[...] = data
    files = ChunkFiles(_create(tmp_path / "by-hand", shape, chunks, dtype))
    for box in _chunk_boxes(shape, chunks):
        files.write(box, data[box])
    written = _files(tmp_path / "by-hand")
    assert written == _files(tmp_path / "by-zarr") and len(written) == len(list(_chunk_boxes(shape, chunks)))
    back = zarr.open_array(str(tmp_path / "by-hand"), mode="r")[...]
    assert back.dtype == np.dtype(dtype) and np.array_equal(back, data, equal_nan=data.dtype.kind == "f")


@pytest.mark.parametrize(
    "box",
    [
        (slice(0, 512), slice(100, 612)),  # off the grid
        (slice(0, 256), slice(0, 512)),  # half a chunk inside the array (padding would overwrite pixels)
        (slice(512, 1000), slice(0, 1024)),  # two chunks
    ],
)
def test_anything_but_one_whole_chunk_is_refused(tmp_path, box):
    files = ChunkFiles(_create(tmp_path / "a", (1000, 1300), (512, 512), "<u2"))
    with pytest.raises(ValueError, match="not one whole chunk"):
        files.write(box, np.zeros(tuple(s.stop - s.start for s in box), "<u2"))
    assert _files(tmp_path / "a") == {}


def test_arrays_it_cannot_write_like_zarr_are_refused(tmp_path):
    from numcodecs import Delta  # type: ignore[import-untyped]

    with pytest.raises(ValueError, match="without filters"):
        ChunkFiles(_create(tmp_path / "filtered", (10, 10), (5, 5), "<u2", filters=[Delta(dtype="<u2")]))
    with pytest.raises(ValueError, match="without filters"):
        ChunkFiles(_create(tmp_path / "dots", (10, 10), (5, 5), "<u2", chunk_key_encoding={"name": "v2", "separator": "."}))
    v3 = zarr.create_array(str(tmp_path / "v3"), shape=(10, 10), chunks=(5, 5), dtype="<u2", zarr_format=3)
    with pytest.raises(ValueError, match="Zarr v2 arrays in a local folder"):
        ChunkFiles(v3)
    with pytest.raises(ValueError, match="Zarr v2 arrays in a local folder"):
        ChunkFiles(zarr.create_array(zarr.storage.MemoryStore(), shape=(10, 10), chunks=(5, 5), dtype="<u2", zarr_format=2))
