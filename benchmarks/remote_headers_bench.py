"""Header reads over HTTP Range requests against local reads of the same files, in the same run.

    python -m benchmarks.remote_headers_bench [--copies 50] [--rounds 3] [--dir FOLDER]

Builds the corpus of :mod:`benchmarks.headers_bench` (the real TIFF and MRC samples, a full-size FEI map rebuilt from
its real header, an ImageJ TIFF and a tiled pyramidal OME-TIFF), serves it from a local HTTP server that answers
Range requests (``tests/servers/range_server.py``, in this process), and reads every file

- locally: :meth:`HeaderPool.read_many` (sandboxed workers reading the paths);
- remotely: :meth:`HeaderPool.read_url` (sandboxed workers making the Range requests), one worker, then one per core;

and prints headers/s, the ratio remote/local, and per sample the range requests and bytes fetched against the bytes
the local read took. Target (issue 16): ≤ 3 range requests per TIFF/MRC without embedded OME-XML. A real source adds
its round-trip time per request (e.g. 3 requests × 30 ms), which this loopback server does not.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from benchmarks.headers_bench import build_corpus


def local_rate(paths: list[Path], rounds: int) -> float:
    from loaders.image_headers.pool import HeaderPool

    best = 0.0
    with HeaderPool(1) as pool:
        list(pool.read_many(paths[:4]))
        for _ in range(rounds):
            start = time.perf_counter()
            results = list(pool.read_many(paths))
            best = max(best, len(paths) / (time.perf_counter() - start))
    assert all(r.status == "ok" for r in results), [r.reason for r in results if r.status != "ok"][:3]
    return best


def remote_rate(urls: list[str], workers: int, rounds: int) -> tuple[float, list]:
    from loaders.image_headers.pool import HeaderPool

    best, results = 0.0, []
    with HeaderPool(workers) as pool, ThreadPoolExecutor(workers) as threads:
        list(threads.map(pool.read_url, urls[: workers * 4]))
        for _ in range(rounds):
            start = time.perf_counter()
            results = list(threads.map(pool.read_url, urls))
            best = max(best, len(urls) / (time.perf_counter() - start))
    assert all(r.status == "ok" for r in results), [r.reason for r in results if r.status != "ok"][:3]
    return best, results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--copies", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--dir", type=Path, help="Folder for the corpus (default: a temporary one).")
    args = parser.parse_args()
    from loaders.image_headers import read_headers
    from tests.servers.range_server import RangeServer

    folder = Path(tempfile.mkdtemp(dir=args.dir, prefix="remote-headers-bench-"))
    server = RangeServer().start()
    try:
        corpus = build_corpus(folder, args.copies)
        cores = os.cpu_count() or 1
        print(
            f"{sum(map(len, corpus.values()))} files ({args.copies} copies of each sample); {cores} cores; best of {args.rounds}"
        )
        for kind, paths in corpus.items():
            urls = [server.add(f"/{kind}/{path.name}", path) for path in paths]
            local = local_rate(paths, args.rounds)
            one, results = remote_rate(urls, 1, args.rounds)
            every, _ = remote_rate(urls, cores, args.rounds)
            print(f"\n{kind.upper()} ({len(paths)} files)")
            print(f"  local paths, 1 sandbox worker      {local:7.0f} headers/s")
            print(f"  HTTP Range, 1 sandbox worker       {one:7.0f} headers/s   ({one / local:.2f} x local)")
            print(f"  HTTP Range, {cores} sandbox workers      {every:7.0f} headers/s")
            print("  per sample: range requests, bytes fetched / bytes the local read took")
            seen: dict[str, object] = {}
            for path, found in zip(paths, results):
                sample = path.name.split("-", 1)[1]
                if sample not in seen:
                    seen[sample] = found
                    print(
                        f"    {sample:22} {found.reads:2} requests {found.bytes_read:9,} B / {read_headers(path).bytes_read:9,} B"
                    )
            requests = [r.reads for r in results]
            fetched = [r.bytes_read for r in results]
            print(f"  requests per file: max {max(requests)}, mean {statistics.mean(requests):.2f} (target ≤ 3)")
            print(f"  bytes per file: max {max(fetched):,}, mean {statistics.mean(fetched):,.0f}")
    finally:
        server.stop()
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
