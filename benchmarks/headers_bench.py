"""Header reads per second per core and bytes read per file, on local TIFF and MRC files, against the raw libraries.

    python -m benchmarks.headers_bench [--copies 200] [--rounds 3] [--dir FOLDER]

Copies the real TIFF and MRC samples of ``tests/data/images`` (and a plain full-size FEI/EPU map rebuilt from the
stored header, an ImageJ TIFF and a tiled pyramidal OME-TIFF written from the real pixels) ``--copies`` times each,
then reads every copy

- with the raw library: ``tifffile.TiffFile(path)`` taking ``series[0].shape`` and the first page's compression,
  and ``mrcfile.open(path, header_only=True)`` taking ``nx`` and ``voxel_size``;
- with :func:`loaders.image_headers.read_headers` in this process;
- through :class:`~loaders.image_headers.pool.HeaderPool`: one sandboxed worker (per core: the parent's work of
  sending paths and decoding answers is on the other core) and one per core;

and prints headers/s (per core for the single-threaded runs), the ratio to the raw library, and the bytes each read
takes (the raw libraries' bytes counted through the same counting file object). Targets (issue 16): ≥ 300 headers/s
per core, ≤ 64 KiB per TIFF/MRC without embedded OME-XML.
"""

from __future__ import annotations

import argparse
import gzip
import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

IMAGES = Path(__file__).resolve().parent.parent / "tests" / "data" / "images"


def build_corpus(folder: Path, copies: int) -> dict[str, list[Path]]:
    """``copies`` copies of each sample, by kind (``tiff`` or ``mrc``)."""
    import numpy as np
    import tifffile

    originals = folder / "originals"
    originals.mkdir(parents=True)
    for name in ("tiff/stardist_img2d.tif", "tiff/stardist_img3d.tif", "mrc/EMD-3197.map", "mrc/EMD-3001.map"):
        shutil.copy(IMAGES / name, originals / Path(name).name)
    header = gzip.decompress((IMAGES / "mrc" / "fei-extended.header.mrc.gz").read_bytes())
    with (originals / "fei-extended.mrc").open("wb") as handle:
        handle.write(header)
        handle.truncate(len(header) + 3710 * 3838 * 2)  # the data block, sparse
    pixels = tifffile.imread(IMAGES / "tiff" / "stardist_img2d.tif")
    tifffile.imwrite(
        originals / "imagej.tif", np.stack([pixels] * 4), imagej=True, resolution=(4.0, 4.0), metadata={"unit": "um"}
    )
    with tifffile.TiffWriter(originals / "pyramid.ome.tif") as writer:
        writer.write(pixels, subifds=2, tile=(128, 128), compression="zlib", metadata={"PhysicalSizeX": 0.5})
        for step in (2, 4):
            writer.write(pixels[::step, ::step], subfiletype=1, tile=(128, 128), compression="zlib")
    corpus: dict[str, list[Path]] = {"tiff": [], "mrc": []}
    for original in sorted(originals.iterdir()):
        kind = "tiff" if original.suffix == ".tif" else "mrc"
        for copy in range(copies):
            target = folder / kind / f"{copy:05d}-{original.name}"
            target.parent.mkdir(exist_ok=True)
            if original.name == "fei-extended.mrc":
                with target.open("wb") as handle:
                    handle.write(header)
                    handle.truncate(original.stat().st_size)
            else:
                shutil.copy(original, target)
            corpus[kind].append(target)
    return corpus


def raw_tiff(path: Path) -> object:
    import tifffile

    with tifffile.TiffFile(path) as tif:
        return tif.series[0].shape, tif.pages.first.compression


def raw_mrc(path: Path) -> object:
    import mrcfile

    with mrcfile.open(path, header_only=True) as mrc:
        return int(mrc.header.nx), mrc.voxel_size


def raw_bytes(path: Path, kind: str) -> int:
    """Bytes the raw library reads from ``path``, counted by the readers' counting file object."""
    import mrcfile.mrcinterpreter
    import tifffile

    from loaders.image_headers.sources import CountingReader, FileSource

    with FileSource(path) as source:
        reader = CountingReader(source, 1 << 40, head=0)
        if kind == "tiff":
            with tifffile.TiffFile(reader, name=path.name) as tif:  # type: ignore[arg-type]
                tif.series[0].shape
        else:
            mrcfile.mrcinterpreter.MrcInterpreter(reader, header_only=True)
        return reader.bytes_read


def rate(read: Callable[[Path], object], paths: list[Path], rounds: int) -> float:
    """Best reads per second over ``rounds`` passes."""
    best = 0.0
    for _ in range(rounds):
        start = time.perf_counter()
        for path in paths:
            read(path)
        best = max(best, len(paths) / (time.perf_counter() - start))
    return best


def pool_rate(paths: list[Path], workers: int, rounds: int) -> tuple[float, list]:
    from loaders.image_headers.pool import HeaderPool

    best, results = 0.0, []
    with HeaderPool(workers) as pool:
        list(pool.read_many(paths[: workers * 4]))  # start the workers
        for _ in range(rounds):
            start = time.perf_counter()
            results = list(pool.read_many(paths))
            best = max(best, len(paths) / (time.perf_counter() - start))
    return best, results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--copies", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--dir", type=Path, help="Folder for the corpus (default: a temporary one).")
    args = parser.parse_args()
    from loaders.image_headers import read_headers

    folder = Path(tempfile.mkdtemp(dir=args.dir, prefix="headers-bench-"))
    try:
        corpus = build_corpus(folder, args.copies)
        cores = os.cpu_count() or 1
        print(
            f"{sum(map(len, corpus.values()))} files ({args.copies} copies of each sample); {cores} cores; best of {args.rounds}"
        )
        for kind, raw in (("tiff", raw_tiff), ("mrc", raw_mrc)):
            paths = corpus[kind]
            raw_rate, ours = rate(raw, paths, args.rounds), rate(read_headers, paths, args.rounds)
            one, results = pool_rate(paths, 1, args.rounds)
            every, _ = pool_rate(paths, cores, args.rounds)
            print(f"\n{kind.upper()} ({len(paths)} files)")
            print(f"  raw library, in process        {raw_rate:8.0f} headers/s per core")
            print(f"  read_headers, in process       {ours:8.0f} headers/s per core   ({ours / raw_rate:.2f} x raw)")
            print(f"  sandbox pool, 1 worker         {one:8.0f} headers/s per core   ({one / raw_rate:.2f} x raw)")
            print(f"  sandbox pool, {cores} workers        {every:8.0f} headers/s in all ({every / cores:.0f} per core)")
            assert all(r.status == "ok" for r in results), [r.reason for r in results if r.status != "ok"][:3]
            print("  bytes read per file (ours / raw library):")
            for path in sorted({p.name.split("-", 1)[1]: p for p in paths}.values(), key=lambda p: p.name):
                found = read_headers(path)
                print(
                    f"    {path.name.split('-', 1)[1]:22} {found.bytes_read:8,} in {found.reads:3} reads / {raw_bytes(path, kind):9,}"
                )
            sizes = [r.bytes_read for r in results]
            print(f"  max {max(sizes):,} B, mean {statistics.mean(sizes):,.0f} B (target ≤ 65,536)")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
