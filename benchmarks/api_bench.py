"""HTTP API benchmarks, each against a raw baseline measured in the same run.

    python -m benchmarks.api_bench [--seconds 10] [--clients 8] [--download-mib 256]

1. record GETs (JSON-LD of a study) through 2 gunicorn worker processes (read-only replicas of an embedded catalog)
   against a bare Flask + pyoxigraph handler with 2 workers on the same snapshot: requests/s and p99
   (target: >= 0.7x its throughput). Three ways: from the per-app cache; with ``Cache-Control: no-cache`` (the
   record rendered when its study changed, read from the record index: what a crawler's first visit gets); and
   built from the graph store on every request (a replica whose catalog name differs, so no stored rendering
   is current);
2. ``/sparql`` point queries against ``oxigraph serve`` holding the same data: latency p50/p99 (target <= 1.5x),
   for repeated queries (answered from the per-process result cache) and first-time ones (each query text new,
   so each one runs), under gunicorn (sync and gthread workers) and granian in the same run, with the floor of
   each server (a fixed body) and of oxigraph serve (``ASK {}``); ``--only-sparql`` runs this part alone;
3. a file download through the API (redirect to a presigned SeaweedFS URL) against a direct S3 GET of the same
   object: MiB/s (target >= 0.9x).
"""

from __future__ import annotations

import argparse
import http.client
import io
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from pathlib import Path

from catalog.config import Settings

ROOT = Path(__file__).resolve().parent.parent
TESTS = ROOT / "tests"


def free_port() -> int:
    from tests.servers.seaweedfs_server import free_ports

    return free_ports(1)[0]


def gunicorn(app: str, port: int, env: dict[str, str], workers: int = 2, threads: int = 1) -> subprocess.Popen:
    """``app`` under gunicorn: sync workers (no keep-alive) by default, gthread workers with ``threads`` > 1."""
    command = (
        [
            str(Path(sys.executable).parent / "gunicorn"),
            "--workers",
            str(workers),
            "--bind",
            f"127.0.0.1:{port}",
            "--log-level",
            "warning",
        ]
        + (["--threads", str(threads)] if threads > 1 else [])
        + [app]
    )
    return _started(subprocess.Popen(command, env={**os.environ, **env}, cwd=ROOT, start_new_session=True), app, port)


def granian(app: str, port: int, env: dict[str, str], workers: int = 2, threads: int = 4) -> subprocess.Popen:
    """``app`` (``module:factory()`` as for gunicorn, or ``module:callable``) under granian's WSGI interface."""
    target, factory = (app[:-2], True) if app.endswith("()") else (app, False)
    command = (
        [
            str(Path(sys.executable).parent / "granian"),
            "--interface",
            "wsgi",
            "--workers",
            str(workers),
            "--blocking-threads",
            str(threads),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "warning",
            "--no-access-log",
        ]
        + (["--factory"] if factory else [])
        + [target]
    )
    return _started(subprocess.Popen(command, env={**os.environ, **env}, cwd=ROOT, start_new_session=True), app, port)


#: the WSGI servers the SPARQL benchmark compares, each as (launcher, keyword arguments)
SERVERS = {
    "gunicorn sync": (gunicorn, {}),
    "gunicorn gthread": (gunicorn, {"threads": 4}),
    "granian": (granian, {"threads": 4}),
}


def _started(process: subprocess.Popen, app: str, port: int) -> subprocess.Popen:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1)
            return process
        except urllib.error.HTTPError:
            return process  # answers (the bare app has no /health)
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"{app} did not start")


def stop(process: subprocess.Popen) -> None:
    os.killpg(process.pid, 9)
    process.wait(10)


def load(port: int, paths: list[str], seconds: float, clients: int, headers: dict[str, str]) -> tuple[float, float, float]:
    """(requests/s, p50 ms, p99 ms) of ``clients`` keep-alive clients cycling through ``paths``."""
    latencies: list[float] = []
    lock = threading.Lock()
    stop_at = time.monotonic() + seconds

    def client(offset: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        mine, i = [], offset
        while time.monotonic() < stop_at:
            start = time.perf_counter()
            conn.request("GET", paths[i % len(paths)], headers=headers)
            response = conn.getresponse()
            response.read()
            if response.status != 200:
                raise RuntimeError(f"{paths[i % len(paths)]}: {response.status}")
            mine.append((time.perf_counter() - start) * 1000)
            i += 1
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    started = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - started
    ordered = sorted(latencies)
    return len(latencies) / elapsed, statistics.median(ordered), ordered[int(0.99 * (len(ordered) - 1))]


def build_catalog(tmp: Path, base: str) -> tuple[Settings, list[str]]:
    from api.cli import load_demo
    from api.services import open_services

    settings = Settings.from_env({}, data_dir=tmp / "data", base_url=base)
    with open_services(settings) as services:
        print(load_demo(services))
        accessions = services.archive.public.search.accessions()
    return settings, accessions


def bench_records(tmp: Path, seconds: float, clients: int) -> None:
    port, bare_port = free_port(), free_port()
    base = f"http://127.0.0.1:{port}"
    settings, accessions = build_catalog(tmp, base)
    from catalog.graph_store_embedded import EmbeddedGraphStore

    snapshot = EmbeddedGraphStore(settings.data_dir / "graph" / "public", read_only=True).checkpoint_path()
    ours = gunicorn(
        "api.app:create_app()", port, {"BIA_DATA": str(settings.data_dir), "BIA_BASE_URL": base, "BIA_READ_ONLY": "1"}
    )
    bare = gunicorn("benchmarks.bare_app:create_app()", bare_port, {"BARE_STORE": str(snapshot), "BARE_BASE": base})
    try:
        paths = [f"/studies/{a}" for a in accessions]
        accept = {"Accept": "application/ld+json"}
        load(port, paths, 2, clients, accept)  # warm up
        load(bare_port, paths, 2, clients, accept)
        ours_rps, ours_p50, ours_p99 = load(port, paths, seconds, clients, accept)
        cold_rps, cold_p50, cold_p99 = load(port, paths, seconds, clients, {**accept, "Cache-Control": "no-cache"})
        bare_rps, bare_p50, bare_p99 = load(bare_port, paths, seconds, clients, accept)
    finally:
        stop(ours)
        stop(bare)
    live = gunicorn(
        "api.app:create_app()",
        port,
        {
            "BIA_DATA": str(settings.data_dir),
            "BIA_BASE_URL": base,
            "BIA_READ_ONLY": "1",
            "BIA_CATALOG_NAME": "Renamed catalog (no stored rendering is current)",
        },
    )
    try:
        load(port, paths, 2, clients, accept)
        live_rps, live_p50, live_p99 = load(port, paths, seconds, clients, {**accept, "Cache-Control": "no-cache"})
    finally:
        stop(live)
    print(f"record GET (JSON-LD, {len(paths)} studies, {clients} clients, 2 workers each):")
    print(f"  API cached     {ours_rps:8.0f} req/s  p50 {ours_p50:6.2f} ms  p99 {ours_p99:6.2f} ms  (per-app cache)")
    print(
        f"  API no-cache   {cold_rps:8.0f} req/s  p50 {cold_p50:6.2f} ms  p99 {cold_p99:6.2f} ms  (stored rendering, record index)"
    )
    print(
        f"  API built      {live_rps:8.0f} req/s  p50 {live_p50:6.2f} ms  p99 {live_p99:6.2f} ms  (built from the graph store per request)"
    )
    print(f"  bare baseline  {bare_rps:8.0f} req/s  p50 {bare_p50:6.2f} ms  p99 {bare_p99:6.2f} ms")
    print(
        f"  -> throughput ratio {ours_rps / bare_rps:.2f}x cached, {cold_rps / bare_rps:.2f}x no-cache, "
        f"{live_rps / bare_rps:.2f}x built per request (target >= 0.7x)"
    )
    bench_sparql(tmp, settings, accessions)


def bench_sparql(tmp: Path, settings: Settings, accessions: list[str], seconds: float = 5) -> None:
    """Point queries, repeated and first-time, under each WSGI server of :data:`SERVERS` against ``oxigraph serve``
    on the same data, with each server's floor (a WSGI callable answering a fixed body)."""
    from catalog.archive import as_nquads
    from catalog.graph_store_embedded import EmbeddedGraphStore
    from tests.servers.oxigraph_server import start_oxigraph, stop_oxigraph

    reader = EmbeddedGraphStore(settings.data_dir / "graph" / "public", read_only=True)
    dump = b"".join(as_nquads(reader, g) for g in reader.graphs())
    server = start_oxigraph(tmp / "oxigraph-bench")
    try:
        request = urllib.request.Request(
            f"{server.url}/store", data=dump, headers={"Content-Type": "application/n-quads"}, method="POST"
        )
        urllib.request.urlopen(request, timeout=60).read()
        queries = [
            f"SELECT ?p ?o WHERE {{ GRAPH <{settings.base_url}/studies/{a}> {{ <{settings.base_url}/studies/{a}> ?p ?o }} }}"
            for a in accessions
        ]
        oxi_port = int(urllib.parse.urlsplit(server.url).port)
        headers = {"Accept": "application/sparql-results+json"}
        # repeated: the same few queries again and again (answered from the per-process cache after the first);
        # first-time: every request a query text not seen before (a trailing comment), so each one really runs
        repeated = [urllib.parse.urlencode({"query": q}) for q in queries]
        first_time = [urllib.parse.urlencode({"query": f"{q} # {n}"}) for n in range(40_000 // len(queries) + 1) for q in queries]
        load(oxi_port, [f"/query?{q}" for q in repeated], 1, 1, headers)
        _, oxi_p50, oxi_p99 = load(oxi_port, [f"/query?{q}" for q in first_time], seconds, 1, headers)
        _, oxi_floor_p50, _ = load(oxi_port, [f"/query?{urllib.parse.urlencode({'query': 'ASK {}'})}"], seconds, 1, headers)
        env = {"BIA_DATA": str(settings.data_dir), "BIA_BASE_URL": settings.base_url, "BIA_READ_ONLY": "1"}
        print(
            f"SPARQL point queries (one client; API with 2 worker processes) against oxigraph serve "
            f"(first-time p50 {oxi_p50:.2f} ms, p99 {oxi_p99:.2f} ms; ASK {{}} p50 {oxi_floor_p50:.2f} ms):"
        )
        for name, (launch, options) in SERVERS.items():
            port = free_port()
            ours = launch("api.app:create_app()", port, env, **options)
            try:
                load(port, [f"/sparql?{q}" for q in repeated], 1, 1, headers)
                _, rep_p50, _ = load(port, [f"/sparql?{q}" for q in repeated], seconds, 1, headers)
                _, first_p50, first_p99 = load(port, [f"/sparql?{q}" for q in first_time], seconds, 1, headers)
            finally:
                stop(ours)
            empty_port = free_port()
            empty = launch("benchmarks.bare_app:empty_answer", empty_port, {}, **options)
            try:
                _, floor_p50, _ = load(empty_port, [f"/sparql?{q}" for q in repeated], seconds, 1, headers)
            finally:
                stop(empty)
            bare_port = free_port()
            store_env = {"BARE_STORE": str(settings.data_dir / "graph" / "public")}
            bare = launch("benchmarks.bare_app:in_process_query", bare_port, store_env, **options)
            try:
                _, bare_p50, _ = load(bare_port, [f"/sparql?{q}" for q in first_time], seconds, 1, headers)
            finally:
                stop(bare)
            print(
                f"  {name:16} first-time p50 {first_p50:5.2f} ms p99 {first_p99:5.2f} ms -> {first_p50 / oxi_p50:.2f}x p50, "
                f"{first_p99 / oxi_p99:.2f}x p99 (target <= 1.5x) | repeated {rep_p50:5.2f} ms ({rep_p50 / oxi_p50:.2f}x) | "
                f"floor (fixed body) p50 {floor_p50:.2f} ms ({floor_p50 / oxi_p50:.2f}x) | "
                f"query run in the serving process, nothing else, p50 {bare_p50:.2f} ms ({bare_p50 / oxi_p50:.2f}x)"
            )
    finally:
        stop_oxigraph(server)


def bench_download(tmp: Path, mib: int) -> None:
    from api.services import open_services
    from tests.servers.seaweedfs_server import start_seaweedfs, stop_seaweedfs

    s3 = start_seaweedfs(tmp / "seaweedfs")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    bucket = s3.new_bucket("bench")
    env = {
        "BIA_S3_ENDPOINT": s3.endpoint,
        "BIA_S3_BUCKET": bucket,
        "BIA_S3_ACCESS_KEY": s3.access_key,
        "BIA_S3_SECRET_KEY": s3.secret_key,
    }
    settings = Settings.from_env(env, data_dir=tmp / "dl-data", base_url=base)
    app = None
    try:
        with open_services(settings) as services:
            owner = services.archive.registry.owner_of_token(services.archive.registry.create_token("bench"))
            sub = services.deposits.create(owner)
            payload = os.urandom(1 << 20) * mib
            services.deposits.upload(sub, owner, "big.bin", io.BytesIO(payload), size=len(payload))
            services.deposits.attach_file_list(sub, owner, "files.tsv", io.BytesIO(b"path\nbig.bin\n"))
            services.deposits.attach_metadata(sub, owner, "study.yaml", (TESTS / "data" / "deposit" / "study.yaml").read_bytes())
            accession = services.deposits.finalize(sub, owner)
            file_id = services.archive.public.files.query(accession).items[0]["file_id"]
            direct_url = services.archive.file_store.presigned_get_url(f"studies/{accession}/big.bin")
        app = gunicorn(
            "api.app:create_app()", port, {**env, "BIA_DATA": str(settings.data_dir), "BIA_BASE_URL": base, "BIA_READ_ONLY": "1"}
        )

        def fetch(url: str) -> float:
            start = time.perf_counter()
            with urllib.request.urlopen(url, timeout=120) as response:
                size = 0
                while chunk := response.read(1 << 20):
                    size += len(chunk)
            assert size == len(payload)
            return size / (1 << 20) / (time.perf_counter() - start)

        fetch(direct_url)
        directs, api = [], []
        for _ in range(7):  # alternating, so drift in the machine's speed touches both alike
            directs.append(fetch(direct_url))
            api.append(fetch(f"{base}/files/{accession}/{file_id}/download"))
        direct, ours = statistics.median(directs), statistics.median(api)
        print(
            f"download of {mib} MiB: direct S3 GET {direct:7.1f} MiB/s, API (redirect to presigned URL) {ours:7.1f} MiB/s"
            f" -> {ours / direct:.2f}x (target >= 0.9x)"
        )
    finally:
        if app is not None:
            stop(app)
        stop_seaweedfs(s3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--download-mib", type=int, default=256, help="0: skip the download benchmark")
    parser.add_argument("--only-sparql", action="store_true", help="run the SPARQL point-query part only")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bia-api-bench-") as name:
        tmp = Path(name)
        if args.only_sparql:
            settings, accessions = build_catalog(tmp, f"http://127.0.0.1:{free_port()}")
            bench_sparql(tmp, settings, accessions, args.seconds)
            return
        bench_records(tmp, args.seconds, args.clients)
        if args.download_mib:
            bench_download(tmp, args.download_mib)


if __name__ == "__main__":
    main()
