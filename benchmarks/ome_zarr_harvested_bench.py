"""OME-Zarr of a harvested file (issue 17): a virtual store's chunks fetched by the catalog from the file's source for
each request, against the same byte ranges asked of the source directly, in the same run.

    python -m benchmarks.ome_zarr_harvested_bench [--repeat 8] [--rounds 3]

A tiled (256², zlib), 3-level pyramidal OME-TIFF of the real nuclei image tiled ``--repeat`` × ``--repeat`` is listed
by a harvested copy of S-BIAD1492 (the tests' record) and served by a local range server standing for BioStudies'
file server; the ``ome_zarr`` job makes its virtual store and a catalog serves it (werkzeug, threaded, free port).
Level 0 is read whole, best of ``--rounds``:

- proxied: with ``zarr`` over HTTP at ``…/ome.zarr`` (each chunk fetched by the catalog from the source);
- references: ``…/ome.zarr.json`` with fsspec's reference filesystem (each chunk from the file's download URL, which
  redirects to the source);
- direct: the reference document with its template set to the file's URL at the source (zarr, fsspec): no catalog;
- raw: each chunk's byte range asked of the source directly (``requests``, 8 threads), nothing decoded;
- raw proxied: each chunk's key asked of the catalog (``requests``, 8 threads), nothing decoded;
- metadata: as many requests of the store's ``.zattrs`` (inline in the document: the same route, no source fetch).

Prints seconds, MB/s of chunk bytes, and the ratios direct / proxied (what the catalog costs a Zarr client), raw /
raw proxied (what it costs per chunk request) and metadata / raw proxied (the share of that cost that is the route's
own lookups, not the fetch from the source). Everything is on loopback: a real source adds its
round-trip time to every chunk the catalog fetches (the references path pays it too, plus a redirect).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path


def _site(folder: Path, repeat: int):
    """The harvested study, its jobs done, served; returns (base URL, image path, source server, pyramid, closer)."""
    from werkzeug.serving import make_server

    from api.app import create_app
    from api.cli import _queue_headers
    from api.services import open_services
    from catalog.config import Settings
    from loaders.harvest import Harvester
    from loaders.image_headers.job import KIND as HEADERS
    from loaders.ngff import job as ome_zarr_job
    from tests.catalog_helpers import run_image_jobs
    from tests.servers.range_server import RangeServer
    from tests.servers.seaweedfs_server import free_ports
    from tests.test_ome_zarr import pyramid_tiff
    from tests.test_remote_headers import _harvestable, _serve_study

    pyramid = folder / "pyramid.ome.tif"
    pyramid_tiff(pyramid, repeat=repeat)
    source = RangeServer().start()
    _serve_study(source)
    source.add("/fire/S-BIAD/492/S-BIAD1492/Files/tiled/pyramid.ome.tif", pyramid)
    record = _harvestable(folder / "record", "http://127.0.0.1:9")
    listed = json.loads((record.parent / "bbc024_images.json").read_text())
    (record.parent / "bbc024_images.json").write_text(json.dumps([*listed, {"path": "tiled/pyramid.ome.tif", "size": 1}]))
    (port,) = free_ports(1)
    base = f"http://127.0.0.1:{port}"
    settings = Settings.from_env(
        {},
        data_dir=folder / "data",
        base_url=base,
        header_sources=(("biostudies", f"{source.url}/fire/{{relpath}}/Files/"),),
        background="off",
        header_workers=1,
        ome_zarr_max_memory_mb=768,
    )
    services = open_services(settings)
    Harvester(services.archive).run("pagetab", [str(record)])
    services.follow()
    _queue_headers(services, ["S-BIAD1492"])
    run_image_jobs(services, HEADERS, ome_zarr_job.KIND)
    app = create_app(settings, services=services)
    server = make_server("127.0.0.1", port, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    image = f"{base}/studies/S-BIAD1492/images/{ome_zarr_job.image_id('S-BIAD1492', 'tiled/pyramid.ome.tif', 0)}"

    def close() -> None:
        server.shutdown()
        app.extensions["bia.sparql"].close()
        services.close()
        source.stop()

    return image, source, pyramid, close


def _best(rounds: int, read) -> float:
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        read()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    import fsspec
    import numpy as np
    import requests
    import tifffile
    import zarr

    with tempfile.TemporaryDirectory(prefix="bia-harvested-zarr-") as tmp:
        image, source, pyramid, close = _site(Path(tmp), args.repeat)
        try:
            document = json.loads(fsspec.open(image + "/ome.zarr.json").open().read())
            level0 = {k: v for k, v in document["refs"].items() if k.startswith("0/") and isinstance(v, list)}
            keys, chunks = list(level0), list(level0.values())
            total = sum(length for _u, _o, length in chunks)
            url = f"{source.url}/fire/S-BIAD/492/S-BIAD1492/Files/tiled/pyramid.ome.tif"
            expected = tifffile.imread(pyramid)
            print(f"level 0: {expected.shape} {expected.dtype}, {len(chunks)} chunks, {total / 1e6:.2f} MB of chunk bytes")

            def proxied() -> None:
                store = zarr.storage.FsspecStore.from_url(image + "/ome.zarr", read_only=True)
                assert np.array_equal(zarr.open_group(store, mode="r", zarr_format=2)["0"][...], expected)

            def references() -> None:
                options = {"fo": document, "remote_protocol": "http", "remote_options": {"asynchronous": True}}
                group = zarr.open_group(
                    "reference://", storage_options={**options, "asynchronous": True}, mode="r", zarr_format=2
                )
                assert np.array_equal(group["0"][...], expected)

            def direct() -> None:
                at_source = {**document, "templates": {**document["templates"], "u": url}}
                options = {"fo": at_source, "remote_protocol": "http", "remote_options": {"asynchronous": True}}
                group = zarr.open_group(
                    "reference://", storage_options={**options, "asynchronous": True}, mode="r", zarr_format=2
                )
                assert np.array_equal(group["0"][...], expected)

            local = threading.local()

            def get(target: str, headers: dict[str, str]) -> int:
                session = getattr(local, "session", None) or requests.Session()
                local.session = session
                answer = session.get(target, headers=headers)
                answer.raise_for_status()
                return len(answer.content)

            def raw() -> None:
                ranges = [{"Range": f"bytes={offset}-{offset + length - 1}"} for _u, offset, length in chunks]
                with ThreadPoolExecutor(8) as pool:
                    assert sum(pool.map(lambda headers: get(url, headers), ranges)) == total

            def raw_proxied() -> None:
                with ThreadPoolExecutor(8) as pool:
                    assert sum(pool.map(lambda key: get(f"{image}/ome.zarr/{key}", {}), keys)) == total

            def metadata() -> None:
                with ThreadPoolExecutor(8) as pool:
                    assert all(pool.map(lambda _key: get(f"{image}/ome.zarr/.zattrs", {}), keys))

            reads = {
                "direct": direct,
                "proxied": proxied,
                "references": references,
                "raw": raw,
                "raw proxied": raw_proxied,
                "metadata": metadata,
            }
            figures = {name: _best(args.rounds, read) for name, read in reads.items()}
        finally:
            close()
    for name, seconds in figures.items():
        print(f"{name:>10}: {seconds * 1000:8.1f} ms  {total / seconds / 1e6:7.1f} MB/s")
    print(f"ratio direct / proxied: {figures['direct'] / figures['proxied']:.2f}")
    print(f"ratio raw / raw proxied: {figures['raw'] / figures['raw proxied']:.2f}")
    print(f"ratio metadata / raw proxied: {figures['metadata'] / figures['raw proxied']:.2f}")


if __name__ == "__main__":
    main()
