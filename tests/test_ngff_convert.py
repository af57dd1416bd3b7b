"""Converting pixels to OME-Zarr (loaders.ngff.convert): level 0 is the source bit for bit, each further level is
every second pixel in y and x of the one before it (whichever way the blocks run: whole rows with the levels made
as level 0 is written, or narrower blocks with each level read back), all-zero chunks are left out, the blocks
cover the image in whole chunks within the block size.

Real pixels (tests/data/images/SOURCES.txt): the fluorescence nuclei TIFF (2-D) and its 3-D stack.
"""

from __future__ import annotations

import math
from pathlib import Path

import mrcfile
import numpy as np
import pytest
import tifffile
import zarr

from loaders.ngff import convert
from loaders.ngff.pixels import MrcPixels, TiffPixels

TIFFS = Path(__file__).parent / "data" / "images" / "tiff"


def _convert_tiff(path: Path, out: Path) -> dict:
    with tifffile.TiffFile(path) as tif:
        source = TiffPixels(tif, 0)
        try:
            return convert.write_image(source, out, {"x": 5e-7, "y": 5e-7})
        finally:
            source.close()


def _reference_levels(data: np.ndarray, count: int) -> list[np.ndarray]:
    return [data[..., :: 2**k, :: 2**k] for k in range(count)]


@pytest.mark.parametrize("block_bytes", [convert.BLOCK_BYTES, 1 << 20, 64 << 10], ids=["rows", "narrow", "chunk"])
def test_each_level_is_every_second_pixel_of_the_one_above(tmp_path, monkeypatch, block_bytes):
    monkeypatch.setattr(convert, "BLOCK_BYTES", block_bytes)  # 1 MiB: a block is 2 chunks, not a whole row
    data = np.tile(tifffile.imread(TIFFS / "stardist_img2d.tif"), (5, 7))[:2500, :3333]  # odd edges, 3 chunks on
    tifffile.imwrite(tmp_path / "plain.tif", data)
    made = _convert_tiff(tmp_path / "plain.tif", tmp_path / "out.zarr")
    group = zarr.open_group(str(tmp_path / "out.zarr"), mode="r", zarr_format=2)
    assert made["levels"] == 4 and made["shapes"][-1] == [313, 417] and made["chunks"] == [512, 512]
    for index, expected in enumerate(_reference_levels(data, made["levels"])):
        level = group[str(index)]
        assert level.chunks == tuple(min(512, n) for n in expected.shape) and level.shape == expected.shape
        assert np.array_equal(level[...], expected), f"level {index}"


def test_a_volume_and_its_levels_match_the_map(tmp_path):
    stack = tifffile.imread(TIFFS / "stardist_img3d.tif").astype(np.float32)
    volume = np.tile(stack, (2, 5, 6))  # 62 × 305 × 342: z chunked by 32, y and x by 128
    mrcfile.write(str(tmp_path / "volume.mrc"), volume)
    source = MrcPixels(str(tmp_path / "volume.mrc"))
    try:
        made = convert.write_image(source, tmp_path / "out.zarr", {})
    finally:
        source.close()
    group = zarr.open_group(str(tmp_path / "out.zarr"), mode="r", zarr_format=2)
    assert made["chunks"] == [32, 128, 128] and made["levels"] == 3
    for index, expected in enumerate(_reference_levels(volume, made["levels"])):
        assert np.array_equal(group[str(index)][...], expected), f"level {index}"


def test_all_zero_chunks_are_left_out_and_negative_zero_is_kept(tmp_path):
    data = tifffile.imread(TIFFS / "stardist_img2d.tif").astype(np.float32)
    data = np.tile(data, (2, 2))  # 1024²: four 512² chunks
    data[:512, :512] = 0.0
    data[:512, 512:] = -0.0  # zero in value, not in bits: level 0 must keep the sign
    tifffile.imwrite(tmp_path / "signed.tif", data)
    _convert_tiff(tmp_path / "signed.tif", tmp_path / "out.zarr")
    level0 = zarr.open_array(str(tmp_path / "out.zarr" / "0"), mode="r", zarr_format=2)
    assert not (tmp_path / "out.zarr" / "0" / "0" / "0").exists()  # all zero: left out, read as the fill value
    assert (tmp_path / "out.zarr" / "0" / "0" / "1").exists()
    read = level0[...]
    assert read.tobytes() == data.tobytes() and np.signbit(read[:512, 512:]).all()


@pytest.mark.parametrize(
    ("shape", "chunks"),
    [((8192, 8192), (512, 512)), ((5000, 40000), (512, 512)), ((3, 700, 900), (1, 512, 512)), ((62, 305, 342), (32, 128, 128))],
)
def test_blocks_cover_the_image_in_whole_chunks_within_the_block_size(shape, chunks):
    boxes = list(convert.blocks(shape, chunks, 2))
    covered = np.zeros(shape, dtype=np.uint8)
    for box in boxes:
        covered[box] += 1
        size = math.prod(s.stop - s.start for s in box) * 2
        assert size <= max(convert.BLOCK_BYTES, math.prod(chunks) * 2)
        assert all(s.start % edge == 0 for s, edge in zip(box, chunks))
        assert all(s.stop % edge == 0 or s.stop == n for s, edge, n in zip(box, chunks, shape))
    assert (covered == 1).all()


class _Pixels:
    """Pixels held in memory, as a :class:`~loaders.ngff.pixels.PixelSource` (axes already in NGFF order)."""

    def __init__(self, data: np.ndarray, names: list[str], volume: bool = False) -> None:
        self.data, self.names, self.volume = data, names, volume
        self.shape, self.dtype = data.shape, data.dtype

    def read(self, box):
        return np.ascontiguousarray(self.data[box])

    def close(self) -> None:
        pass


@pytest.mark.parametrize("seed", range(12))
def test_random_images_convert_to_exactly_their_pixels_at_every_level(tmp_path, monkeypatch, seed):
    """Shapes on and off the chunk grid, every dtype the readers give (byte order included), planes, stacks and
    volumes, blocks of whole rows, of a few chunks and of one chunk, runs of all-zero chunks: every level reads
    back as every second pixel of the one above."""
    rng = np.random.default_rng(seed)
    monkeypatch.setattr(convert, "PLANE_CHUNK", int(rng.choice([16, 32])))
    monkeypatch.setattr(convert, "VOLUME_CHUNK", (4, 16, 16))
    monkeypatch.setattr(convert, "BLOCK_BYTES", int(rng.choice([1 << 20, 4096, 256])))
    dtype = np.dtype(str(rng.choice(["|u1", "<u2", ">u2", "<i4", ">f4", "<f8", "|b1", "<c8"])))
    layout = int(rng.integers(0, 3))
    names, volume = [(["y", "x"], False), (["c", "z", "y", "x"], False), (["z", "y", "x"], True)][layout]
    shape = tuple(int(n) for n in rng.integers(1, 80, size=len(names)))
    if len(names) > 2:
        shape = (*(min(n, 9) for n in shape[:-2]), *shape[-2:])
    data = (rng.integers(0, 5, size=shape) * rng.integers(0, 2, size=shape)).astype(dtype)
    data[..., : shape[-2] // 2, :] = 0  # whole chunks of zero: left out, read back as the fill value
    made = convert.write_image(_Pixels(data, names, volume), tmp_path / "out.zarr", {})
    group = zarr.open_group(str(tmp_path / "out.zarr"), mode="r", zarr_format=2)
    for index, expected in enumerate(_reference_levels(data, made["levels"])):
        level = group[str(index)][...]
        assert level.dtype == dtype and level.shape == expected.shape, (index, level.dtype, level.shape)
        assert level.tobytes() == np.ascontiguousarray(expected).tobytes(), f"level {index} of {shape} {dtype} {names}"
