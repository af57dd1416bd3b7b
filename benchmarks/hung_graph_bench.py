"""A node over a hung graph server: how fast ``/health`` answers and how long graph reads wait, under gunicorn.

    python -m benchmarks.hung_graph_bench [--threads 4] [--clients 8] [--seconds 10]

Two ``oxigraph serve`` behind proxies that then hang (accept, never answer), one gunicorn gthread worker with
``--threads`` threads, ``--clients`` clients asking ``/links.jsonld`` (a graph read) without pause, and one asking
``/health`` every 0.2 s. Printed per configuration: the graph reads answered and their status codes, their latency
p50/max, and ``/health`` latency p50/p99/max. Configurations: the remote store's calls failing at once after a hang
(``BIA_SPARQL_RETRY_SECONDS=10``, the default) and waiting every time (``0``), both with a 2 s read timeout; the old
600 s wait is the baseline these replace (its reads do not come back within the run at all).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TESTS = ROOT / "tests"


def _get(url: str, timeout: float = 60.0) -> tuple[int, float]:
    started = time.perf_counter()
    try:
        with urllib.request.urlopen(url, timeout=timeout) as answer:
            answer.read()
            status = answer.status
    except urllib.error.HTTPError as exc:
        status = exc.code
    except OSError:
        status = 0  # no answer within the client's timeout
    return status, time.perf_counter() - started


def _catalog(folder: Path, public: str, private: str) -> Path:
    from api.services import open_services
    from loaders.harvest import Harvester
    from tests.catalog_helpers import make_settings

    settings = make_settings(folder, sparql_url=private, public_sparql_url=public)
    with open_services(settings) as services:
        Harvester(services.archive).run("idr", [str(TESTS / "data" / "idr" / "idr0038-study.txt")])
        services.follow()
    return settings.data_dir


def _serve(data: Path, public: str, private: str, threads: int, retry: float) -> tuple[subprocess.Popen, str]:
    from tests.catalog_helpers import BASE
    from tests.servers.seaweedfs_server import free_ports

    (port,) = free_ports(1)
    env = {
        **os.environ,
        "BIA_DATA": str(data),
        "BIA_BASE_URL": BASE,
        "BIA_SPARQL_URL": private,
        "BIA_PUBLIC_SPARQL_URL": public,
        "BIA_SPARQL_CONNECT_TIMEOUT": "1",
        "BIA_SPARQL_READ_TIMEOUT": "2",
        "BIA_SPARQL_RETRY_SECONDS": str(retry),
        "BIA_MAINTENANCE_INTERVAL": "3600",
    }
    command = [
        str(Path(sys.executable).parent / "gunicorn"),
        "--worker-class",
        "gthread",
        "--threads",
        str(threads),
        "--bind",
        f"127.0.0.1:{port}",
        "--log-level",
        "critical",
        "api.app:create_app()",
    ]
    server = subprocess.Popen(
        command, env=env, cwd=ROOT, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while _get(f"{base}/health", 2)[0] != 200:
        if time.monotonic() > deadline or server.poll() is not None:
            raise RuntimeError("gunicorn did not start")
        time.sleep(0.3)
    return server, base


def _run(base: str, clients: int, seconds: float) -> tuple[list[tuple[int, float]], list[float]]:
    reads: list[tuple[int, float]] = []
    health: list[float] = []
    stop = time.monotonic() + seconds

    def read() -> None:
        while time.monotonic() < stop:
            reads.append(_get(f"{base}/links.jsonld", timeout=seconds + 30))

    def check() -> None:
        while time.monotonic() < stop:
            health.append(_get(f"{base}/health", timeout=seconds + 30)[1])
            time.sleep(0.2)

    threads = [threading.Thread(target=read) for _ in range(clients)] + [threading.Thread(target=check)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return reads, health


def _ms(values: list[float], q: float) -> str:
    if not values:
        return "-"
    ordered = sorted(values)
    return f"{ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000:.0f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    from tests.servers.http_proxy import HttpProxy
    from tests.servers.oxigraph_server import start_oxigraph, stop_oxigraph

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        servers = [start_oxigraph(folder / name) for name in ("public", "private")]
        proxies = [HttpProxy(server.url) for server in servers]
        try:
            data = _catalog(folder, proxies[0].url, proxies[1].url)
            print(
                f"gunicorn gthread, {args.threads} threads; {args.clients} clients on /links.jsonld for "
                f"{args.seconds:g} s; both graph servers hung; read timeout 2 s"
            )
            for retry in (10.0, 0.0):
                server, base = _serve(data, proxies[0].url, proxies[1].url, args.threads, retry)
                try:
                    for proxy in proxies:
                        proxy.hang()
                    reads, health = _run(base, args.clients, args.seconds)
                finally:
                    for proxy in proxies:
                        proxy.recover()
                    os.killpg(server.pid, 9)
                    server.wait(10)
                codes = {code: sum(1 for c, _ in reads if c == code) for code in sorted({c for c, _ in reads})}
                times = [t for _, t in reads]
                print(
                    f"  BIA_SPARQL_RETRY_SECONDS={retry:g}: reads answered {len(reads)} {codes}, "
                    f"p50 {_ms(times, 0.5)} ms, max {_ms(times, 1.0)} ms; /health ({len(health)}) "
                    f"p50 {_ms(health, 0.5)} ms, p99 {_ms(health, 0.99)} ms, max {_ms(health, 1.0)} ms"
                    f"{'' if health else ' (none answered)'}; mean of reads {statistics.fmean(times) * 1000:.0f} ms"
                    if times
                    else f"  BIA_SPARQL_RETRY_SECONDS={retry:g}: no read answered"
                )
        finally:
            for proxy in proxies:
                proxy.close()
            for server in servers:
                stop_oxigraph(server)


if __name__ == "__main__":
    main()
