"""OME-Zarr of images (issue 17): conversion throughput, reference-document size, region reads over HTTP.

    python -m benchmarks.ome_zarr_bench [--repeat 16] [--reads 50] [--only conversion|served]

From the real nuclei image tiled ``--repeat`` × ``--repeat`` (uint16):

- conversion: an untiled, uncompressed TIFF converted by :func:`loaders.ngff.convert.write_image` (level 0 block by
  block and the pyramid read back from the store), in a sandboxed worker capped at 512 MiB (the way the job runs it),
  against a raw Zarr write of the same array already in memory (``zarr.create_array`` with the same chunks and codec,
  ``array[:] = data``, level 0 only) in the same run, each the best of five; the ratio is raw seconds / conversion
  seconds (≥ 0.7 wanted); dirty pages are flushed before each timed run (else the kernel throttles whichever
  run comes after a large write, and the ratio measures the disk's writeback). Beside it, the floor: level 0's
  chunks encoded with the same codec and written as files on two threads, with nothing read and no pyramid (what
  the converter does for level 0, without zarr-python's per-chunk machinery); and the worker's peak resident
  memory and the machine's load average;
- reference document: a tiled (256², zlib), 3-level pyramidal OME-TIFF of the same pixels referenced in place;
  the document's size against the file's;
- region reads: a catalog serving both (werkzeug, threaded, on a free port); random 512 × 512 regions of level 0 read
  with ``zarr`` over HTTP from the virtual and the converted store; p50 and p95 latency.
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import statistics
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
NUCLEI = ROOT / "tests" / "data" / "images" / "tiff" / "stardist_img2d.tif"


def _clean_start() -> None:
    """Flush dirty pages, so that no write of an earlier run waits to be flushed during the next timed one."""
    os.sync()


def _raw_write(data: np.ndarray, folder: Path, chunks: tuple[int, ...]) -> float:
    import zarr

    from loaders.ngff.convert import compressor

    _clean_start()
    start = time.perf_counter()
    array = zarr.create_array(
        str(folder), shape=data.shape, chunks=chunks, dtype=data.dtype, compressors=compressor(), zarr_format=2, fill_value=0
    )
    array[:] = data
    return time.perf_counter() - start


def _chunk_files_write(data: np.ndarray, folder: Path, chunks: tuple[int, ...]) -> float:
    """Seconds to store ``data``'s chunks as files the way the converter does (two threads), nothing else."""
    from concurrent.futures import ThreadPoolExecutor

    import zarr

    from loaders.ngff.chunk_files import ChunkFiles, chunk_boxes
    from loaders.ngff.convert import compressor

    _clean_start()
    start = time.perf_counter()
    array = zarr.create_array(
        str(folder),
        shape=data.shape,
        chunks=chunks,
        dtype=data.dtype,
        compressors=compressor(),
        zarr_format=2,
        fill_value=0,
        chunk_key_encoding={"name": "v2", "separator": "/"},
    )
    files = ChunkFiles(array)
    boxes = list(chunk_boxes(tuple(slice(0, n) for n in data.shape), chunks))
    with ThreadPoolExecutor(2) as pool:
        list(pool.map(lambda box: files.write(box, data[box]), boxes))
    return time.perf_counter() - start


def _convert_in_sandbox(path: Path, out: Path, tries: int = 5) -> tuple[float, dict, int]:
    """Best seconds of ``tries`` conversions of ``path`` in a warmed worker, its answer, the worker's peak RSS."""
    from catalog.sandbox import Limits, SandboxPool

    with SandboxPool(
        1, Limits(seconds=600, memory_bytes=512 << 20, max_file_bytes=None), preload=("loaders.ngff.worker",)
    ) as pool:
        pool.call("loaders.ngff.worker:make_stores", str(NUCLEI), str(out / "warm"), "warm.tif", "warm", {})
        times = []
        for i in range(tries):
            _clean_start()
            start = time.perf_counter()
            made = pool.call("loaders.ngff.worker:make_stores", str(path), str(out / f"big{i}"), path.name, "big", {})
            times.append(time.perf_counter() - start)
            shutil.rmtree(out / f"big{i}")
        return min(times), made, pool.call("loaders.ngff.worker:peak_memory")


def conversion(repeat: int, folder: Path) -> None:
    import tifffile

    from loaders.ngff.convert import chunks_for

    data = np.tile(tifffile.imread(NUCLEI), (repeat, repeat))
    path = folder / "big.tif"
    tifffile.imwrite(path, data)
    mib = data.nbytes / 2**20
    chunks = chunks_for(["y", "x"], data.shape, False)
    raw = min(_raw_write(data, folder / f"raw{i}", chunks) for i in range(5))
    floor = min(_chunk_files_write(data, folder / f"floor{i}", chunks) for i in range(5))
    del data
    seconds, made, peak = _convert_in_sandbox(path, folder / "converted")
    assert made["status"] == "ok", made
    print(
        f"conversion of {repeat * 512}x{repeat * 512} uint16 ({mib:.0f} MiB), {made['images'][0]['levels']} levels, worker capped at 512 MiB"
    )
    print(
        f"  converted: {seconds:.2f} s = {mib / seconds:.0f} MiB/s; raw zarr write of level 0: {raw:.2f} s = {mib / raw:.0f} MiB/s"
    )
    print(f"  throughput ratio (raw s / converted s): {raw / seconds:.2f}x (target >= 0.7x)")
    print(
        f"  floor: level 0's chunks encoded and written as files, nothing read, no pyramid: {floor:.2f} s = {mib / floor:.0f} MiB/s; converted / floor: {seconds / floor:.2f}x the time"
    )
    load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
    print(f"  worker peak RSS: {peak / 2**20:.0f} MiB; load average (1, 5, 15 min): {load} on {os.cpu_count()} CPUs")


def _pyramid(data: np.ndarray, path: Path) -> None:
    import tifffile

    options = {"tile": (256, 256), "compression": "zlib", "photometric": "minisblack"}
    with tifffile.TiffWriter(path, ome=True) as writer:
        writer.write(data, subifds=2, metadata={"axes": "YX", "PhysicalSizeX": 0.5, "PhysicalSizeY": 0.5}, **options)
        writer.write(data[::2, ::2], subfiletype=1, **options)
        writer.write(data[::4, ::4], subfiletype=1, **options)


def served(repeat: int, reads: int, folder: Path) -> None:
    import tifffile
    import zarr
    from werkzeug.serving import make_server

    from tests.catalog_helpers import make_settings
    from tests.servers.seaweedfs_server import free_ports
    from tests.test_ome_zarr import deposit, work

    data = np.tile(tifffile.imread(NUCLEI), (repeat, repeat))
    _pyramid(data, folder / "pyramid.ome.tif")
    plain = io.BytesIO()
    tifffile.imwrite(plain, data[:4096, :4096])
    files = {"tiled/pyramid.ome.tif": (folder / "pyramid.ome.tif").read_bytes(), "plain/big.tif": plain.getvalue()}
    (port,) = free_ports(1)
    base = f"http://127.0.0.1:{port}"
    from api.app import create_app
    from api.services import open_services

    settings = make_settings(folder / "catalog", base_url=base, job_attempts=1, ome_zarr_timeout=600.0)
    with open_services(settings) as services:
        accession, _ = deposit(services, files)
        start = time.perf_counter()
        work(services)
        print(f"jobs (headers, OME-Zarr of 2 files, applying): {time.perf_counter() - start:.1f} s")
        from loaders.ngff.job import image_id
        from loaders.ngff.results import image_store

        virtual = image_store(
            services.archive.state,
            accession,
            f"studies/{accession}/tiled/pyramid.ome.tif",
            image_id(accession, "tiled/pyramid.ome.tif", 0),
        )
        size = len(files["tiled/pyramid.ome.tif"])
        print(
            f"reference document: {virtual['size_bytes']:,} B for a {size:,} B pyramidal OME-TIFF = {100 * virtual['size_bytes'] / size:.3f} % (target <= 1 %)"
        )
        server = make_server("127.0.0.1", port, create_app(settings, services=services), threaded=True)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        try:
            for path in ("tiled/pyramid.ome.tif", "plain/big.tif"):
                url = f"{base}/studies/{accession}/images/{image_id(accession, path, 0)}/ome.zarr"
                group = zarr.open_group(zarr.storage.FsspecStore.from_url(url, read_only=True), mode="r", zarr_format=2)
                level = group["0"]
                rng = np.random.default_rng(7)
                times = []
                for _ in range(reads):
                    y, x = (int(rng.integers(0, s - 512)) for s in level.shape)
                    start = time.perf_counter()
                    level[y : y + 512, x : x + 512]
                    times.append(time.perf_counter() - start)
                p95 = statistics.quantiles(times, n=20)[-1]
                kind = "virtual" if path.startswith("tiled") else "converted"
                print(
                    f"512x512 region of level 0 over HTTP ({kind}, {reads} reads): p50 {1000 * statistics.median(times):.1f} ms, p95 {1000 * p95:.1f} ms"
                )
        finally:
            server.shutdown()


def main() -> None:
    import logging

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=16, help="the nuclei image tiled N x N (16: 8192 x 8192)")
    parser.add_argument("--reads", type=int, default=50)
    parser.add_argument("--only", choices=("conversion", "served"), help="run one part only")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="ome-zarr-bench-"))
    try:
        if args.only != "served":
            conversion(args.repeat, folder)
        if args.only != "conversion":
            served(args.repeat, args.reads, folder)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
