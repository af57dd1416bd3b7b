"""Throughput of the file store: raw disk copy (baseline), local put, S3 put, S3 download.

    cd /work/main && /work/venv/bin/python -m benchmarks.file_store_bench [MiB] [--dir FOLDER] [--part-size MiB]

Writes a file of random bytes, then times each path and prints MiB/s and the ratio to the raw copy.
The S3 figures use a SeaweedFS server started like the test fixture's, in the same folder.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Callable

from catalog.file_store_local import LocalFileStore
from catalog.file_store_s3 import S3FileStore
from tests.servers.seaweedfs_server import start_seaweedfs, stop_seaweedfs

MiB = 1 << 20


def write_random_file(path: Path, mib: int) -> None:
    with open(path, "wb") as out:
        for _ in range(mib):
            out.write(os.urandom(MiB))
        out.flush()
        os.fsync(out.fileno())


def raw_copy(src: Path, dst: Path) -> None:
    """The baseline: a plain file copy, synced to disk like a local put."""
    with open(src, "rb") as reader, open(dst, "wb") as writer:
        shutil.copyfileobj(reader, writer, MiB)
        writer.flush()
        os.fsync(writer.fileno())


def timed(action: Callable[[], object]) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def download(store: S3FileStore, key: str, dst: Path) -> None:
    with open(dst, "wb") as out:
        for chunk in store.open_range(key):
            out.write(chunk)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mib", nargs="?", type=int, default=256, help="file size in MiB (default 256)")
    parser.add_argument("--dir", type=Path, default=None, help="work folder (default: a temporary one)")
    parser.add_argument(
        "--part-size",
        type=int,
        default=16,
        help="S3 upload part size in MiB (default 16)",
    )
    parser.add_argument("--parallel", type=int, default=2, help="S3 parts uploaded at once (default 2)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(dir=args.dir, prefix="file-store-bench-") as tmp:
        work = Path(tmp)
        src = work / "source.bin"
        write_random_file(src, args.mib)
        size = src.stat().st_size
        results: list[tuple[str, float]] = []

        copies = sorted(timed(lambda: raw_copy(src, work / "copy.bin")) for _ in range(3))
        results.append(("raw disk copy (baseline, median of 3)", copies[1]))
        (work / "copy.bin").unlink()

        local = LocalFileStore(work / "files")
        with open(src, "rb") as stream:
            results.append(
                (
                    "local put (md5+sha256, fsync, link)",
                    timed(lambda: local.put("bench/a.bin", stream, size=size)),
                )
            )
        with open(src, "rb") as stream:
            results.append(
                (
                    "local put, unknown size",
                    timed(lambda: local.put("bench/b.bin", stream)),
                )
            )

        server = start_seaweedfs(work / "seaweedfs")
        try:
            store = S3FileStore(
                server.client(),
                server.new_bucket("bench"),
                part_size=args.part_size * MiB,
                parallel_uploads=args.parallel,
            )
            with open(src, "rb") as stream:
                results.append(
                    (
                        "S3 put (upload to temp key + copy)",
                        timed(lambda: store.put("bench/a.bin", stream, size=size)),
                    )
                )
            with open(src, "rb") as stream:
                results.append(
                    (
                        "S3 put, unknown size",
                        timed(lambda: store.put("bench/b.bin", stream)),
                    )
                )
            with open(src, "rb") as stream:
                results.append(
                    (
                        "S3 raw upload (minio put_object only)",
                        timed(
                            lambda: store.client.put_object(
                                store.bucket,
                                "raw.bin",
                                stream,
                                size,
                                part_size=args.part_size * MiB,
                            )
                        ),
                    )
                )
            results.append(
                (
                    "S3 server-side copy (move)",
                    timed(lambda: store.move("bench/b.bin", "bench/c.bin")),
                )
            )
            results.append(
                (
                    "S3 download to file",
                    timed(lambda: download(store, "bench/a.bin", work / "down.bin")),
                )
            )
            assert (work / "down.bin").stat().st_size == size
        finally:
            stop_seaweedfs(server)

    baseline = size / MiB / results[0][1]
    print(f"file size: {size / MiB:.0f} MiB, {os.cpu_count()} CPUs, S3 parts of {args.part_size} MiB x {args.parallel}")
    print(f"raw copies: {', '.join(f'{size / MiB / t:.0f}' for t in copies)} MiB/s")
    print(f"{'path':45} {'seconds':>8} {'MiB/s':>8} {'x raw':>6}")
    for name, seconds in results:
        rate = size / MiB / seconds
        print(f"{name:45} {seconds:8.2f} {rate:8.1f} {rate / baseline:6.2f}")


if __name__ == "__main__":
    main()
