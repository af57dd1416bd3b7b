"""Load benchmark: a bounded mix of record GETs, search, file tables and SPARQL from concurrent clients against a
served catalog, in rounds; throughput, latency, errors, and the server's memory and open files around each round.

    python -m benchmarks.load_bench [--seconds 60] [--clients 20] [--rounds 2] [--server gunicorn|serve]
                                    [--workers 2] [--threads 4] [--screen-files 20000]

The catalog is built in a temporary ``BIA_DATA``: the demo studies (as ``bia serve --demo`` loads and links them) and
one screen-like study whose file table has ``--screen-files`` rows. ``--server gunicorn`` serves it as the README's
production section does for an embedded catalog (read-only replicas: ``BIA_READ_ONLY=1 gunicorn --workers W
--threads T --timeout 120 'api.app:create_app()'``); ``--server serve`` runs ``bia serve`` (one process, threads).

Each client cycles through the same fixed list of requests (from its own starting point) for ``--seconds``; the list
holds, per round of the mix, 4 record GETs (JSON-LD, HTML, Turtle; studies and objects inside them), 2 searches,
2 file-table pages (filters, sorts, a cursor page, a CSV export) and 2 SPARQL queries (one of them uncacheable, so a
query worker runs it every time). Any answer other than 200, and any failed connection, is an error.
Server figures are summed over its process tree (gunicorn master, workers, SPARQL worker processes) from /proc.
Wanted: 0 errors, and no growth of RSS or open files from the end of the first round to the end of the second.
"""

from __future__ import annotations

import argparse
import http.client
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

from catalog.config import Settings

ROOT = Path(__file__).resolve().parent.parent
MIX = (("record", 4), ("search", 2), ("files", 2), ("sparql", 2))


@dataclass(frozen=True)
class Request:
    kind: str
    path: str
    accept: str = "application/json"


# ---------------------------------------------------------------------- the catalog and its requests


def build_catalog(tmp: Path, base: str, screen_files: int, shared: Mapping[str, str] | None = None) -> Settings:
    """The demo studies, linked, and a screen of ``screen_files`` rows as ``S-BIAD1``, in ``tmp / "data"`` (with the
    ``BIA_*`` variables of ``shared``: the site's shared stores, which nodes started afterwards serve)."""
    from api.cli import load_demo
    from api.services import open_services
    from benchmarks.catalog_bench import write_screen_list
    from catalog.records import read_record
    from catalog.rembi_rdf import record_to_graph
    from catalog.study_files import StudyFile
    from catalog.validation import check_study_record
    from linkers.discover import link_catalog
    from loaders.file_lists import iter_file_list

    settings = Settings.from_env(dict(shared or {}), data_dir=tmp / "data", base_url=base)
    listing = tmp / "screen.tsv"
    write_screen_list(listing, screen_files)
    record = read_record(ROOT / "tests" / "data" / "deposit" / "study.yaml").data
    checked = check_study_record(record, base, accession="S-BIAD1")
    component = checked.record["components"][0]["id"]

    def files():
        for row in iter_file_list(listing, name="screen.tsv"):
            yield StudyFile(path=row.path, size=row.size, attributes=row.attributes, component=component)

    with open_services(settings) as services:
        print(load_demo(services))
        services.archive.commit_study(
            "S-BIAD1", record_to_graph(checked.record), files, release_date="2020-01-01", title="load benchmark screen"
        )
        link_catalog(services.archive)
    return settings


def request_mix(settings: Settings) -> list[Request]:
    """The fixed list every client cycles through, interleaved by :data:`MIX` (read from the built catalog)."""
    from api.services import open_services

    base = settings.base_url
    with open_services(settings) as services:
        public = services.archive.public
        accessions = public.search.accessions()
        inside = [
            row["s"]["value"].removeprefix(base)
            for row in public.reads.select(
                f'SELECT DISTINCT ?s WHERE {{ GRAPH ?g {{ ?s ?p ?o }} FILTER(STRSTARTS(STR(?s), "{base}/studies/")'
                f' && CONTAINS(SUBSTR(STR(?s), {len(base) + 10}), "/") && !CONTAINS(STR(?s), "#")) }} ORDER BY ?s LIMIT 40'
            )
        ]
        tables = [a for a in accessions if public.files.has_study(a)]
        cursor = public.files.query("S-BIAD1", sort=[("size", True)], limit=100).next_cursor
    records = [
        Request("record", f"/studies/{a}", accept)
        for a in accessions
        for accept in ("application/ld+json", "text/html", "text/turtle")
    ]
    records += [Request("record", path, "application/ld+json") for path in inside]
    searches = [
        Request("search", f"/search?{urllib.parse.urlencode(q)}")
        for q in (
            {"q": "mouse"},
            {"q": "cell*"},
            {"q": 'title:"electron"'},
            {"q": "microscopy -yeast", "sort": "newest"},
            {"q": "", "filter[source]": "EMPIAR"},
            {"q": 'organism:"Homo sapiens" OR zebrafish'},
            {"q": "nuclei", "limit": "5"},
        )
    ]
    searches.append(Request("search", "/search?q=screen", "text/html"))
    screen = "/studies/S-BIAD1/files"
    file_pages = [Request("files", f"/studies/{a}/files?limit=50") for a in tables]
    file_pages += [
        Request("files", f"{screen}?{urllib.parse.urlencode(q)}")
        for q in (
            {"limit": "100"},
            {"filter[Plate]": "1", "limit": "50"},
            {"filter[Well][prefix]": "B", "sort": "-size"},
            {"filter[size][gte]": "5000000", "filter[Compound]": "CPD-0007"},
            {"sort": "-size", "limit": "100", "cursor": cursor or ""},
            {"filter[Plate]": "0", "filter[Field]": "3", "facets": "Channel,Compound"},
        )
    ]
    file_pages.append(Request("files", f"{screen}.csv?filter[Plate]=0&filter[Well]=A01", "text/csv"))
    queries = [
        "SELECT ?study ?title WHERE { ?study <http://purl.org/dc/terms/title> ?title } ORDER BY ?study LIMIT 20",
        "SELECT ?g (COUNT(*) AS ?n) WHERE { GRAPH ?g { ?s ?p ?o } } GROUP BY ?g ORDER BY ?g",
        f"CONSTRUCT {{ ?s ?p ?o }} WHERE {{ GRAPH <{base}/studies/S-BIAD1492> {{ ?s ?p ?o }} }} LIMIT 200",
        "SELECT ?s (NOW() AS ?asked) WHERE { ?s a ?type } LIMIT 5",  # NOW(): never cached, a worker runs it each time
    ]
    sparql = [
        Request(
            "sparql",
            f"/sparql?{urllib.parse.urlencode({'query': q})}",
            "text/turtle" if q.startswith("CONSTRUCT") else "application/sparql-results+json",
        )
        for q in queries
    ]
    pools = {"record": records, "search": searches, "files": file_pages, "sparql": sparql}
    mixed, turns = [], max(len(pools[name]) // share + 1 for name, share in MIX)  # every request at least once
    for turn in range(turns):
        for name, share in MIX:
            pool = pools[name]
            mixed += [pool[(turn * share + i) % len(pool)] for i in range(share)]
    return mixed


# ---------------------------------------------------------------------- the server


def start_server(kind: str, settings: Settings, port: int, workers: int, threads: int, log: Path) -> subprocess.Popen:
    """The server on ``port``, its messages (and access log, for ``serve``) in ``log``, once it answers /health."""
    env = {**os.environ, "BIA_DATA": str(settings.data_dir), "BIA_BASE_URL": settings.base_url}
    bin_dir = Path(sys.executable).parent
    if kind == "gunicorn":
        command = [
            str(bin_dir / "gunicorn"),
            "--workers",
            str(workers),
            "--threads",
            str(threads),
            "--timeout",
            "120",
            "--bind",
            f"127.0.0.1:{port}",
            "--log-level",
            "warning",
            "api.app:create_app()",
        ]
        env["BIA_READ_ONLY"] = "1"
    else:
        command = [str(bin_dir / "bia"), "serve", "--port", str(port)]
    with log.open("ab") as sink:
        process = subprocess.Popen(command, env=env, cwd=ROOT, start_new_session=True, stdout=sink, stderr=sink)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2).read()
            return process
        except (OSError, urllib.error.HTTPError):
            if process.poll() is not None:
                raise RuntimeError(f"{kind} exited with {process.returncode}: {log.read_text()[-2000:]}")
            time.sleep(0.3)
    stop(process)
    raise RuntimeError(f"{kind} did not answer /health within 120 s")


def stop(process: subprocess.Popen) -> None:
    os.killpg(process.pid, 9)
    process.wait(10)


def process_tree(root: int) -> list[int]:
    """``root`` and every process descended from it (read from /proc)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo += children.get(pid, [])
    return tree


@dataclass
class ServerFigures:
    processes: int = 0
    rss_mib: float = 0.0
    largest_mib: float = 0.0
    open_files: int = 0
    threads: int = 0

    def __str__(self) -> str:
        return (
            f"{self.processes} processes, RSS {self.rss_mib:7.1f} MiB (largest {self.largest_mib:6.1f}),"
            f" open files {self.open_files:4d}, threads {self.threads:3d}"
        )


def server_figures(root: int) -> ServerFigures:
    figures = ServerFigures()
    for pid in process_tree(root):
        try:
            status = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
            fds = len(os.listdir(f"/proc/{pid}/fd"))
        except OSError:
            continue  # ended meanwhile
        rss = int(status.get("VmRSS", "0 kB").split()[0]) / 1024
        figures.processes += 1
        figures.rss_mib += rss
        figures.largest_mib = max(figures.largest_mib, rss)
        figures.open_files += fds
        figures.threads += int(status.get("Threads", "0"))
    return figures


# ---------------------------------------------------------------------- the clients


@dataclass
class RoundResult:
    seconds: float
    latencies: dict[str, list[float]] = field(default_factory=dict)
    errors: Counter = field(default_factory=Counter)
    examples: dict[str, str] = field(default_factory=dict)
    per_port: Counter = field(default_factory=Counter)
    error_times: list[tuple[float, str]] = field(default_factory=list)  # (time.monotonic(), key) of each error

    @property
    def requests(self) -> int:
        return sum(len(v) for v in self.latencies.values())


def run_round(ports: Sequence[int], mix: list[Request], seconds: float, clients: int, forwarded: bool = False) -> RoundResult:
    """``clients`` keep-alive clients, each cycling through ``mix`` from its own offset, for ``seconds``. Client ``n``
    talks to ``ports[n % len(ports)]`` (round-robin, as a load balancer spreads clients over nodes) and, after a
    failed connection, to the next port (as a load balancer takes a dead node out): the failed request is an error.
    ``forwarded``: each client's requests carry ``X-Forwarded-For: 10.0.<n>``, the address of a client of its own
    that a load balancer adds (for servers with ``BIA_TRUSTED_PROXIES=1``)."""
    result = RoundResult(seconds)
    lock = threading.Lock()
    stop_at = time.monotonic() + seconds

    def client(n: int) -> None:
        first = n % len(ports)
        headers = {"X-Forwarded-For": f"10.0.{n // 256}.{n % 256}"} if forwarded else {}
        mine = _client_loop(mix, n * len(mix) // clients, [*ports[first:], *ports[:first]], stop_at, headers)
        with lock:
            _merge(result, mine)

    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    started = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    result.seconds = time.monotonic() - started
    return result


def _client_loop(mix: list[Request], offset: int, ports: list[int], stop_at: float, headers: dict[str, str]) -> RoundResult:
    """One client's requests (with ``headers``) until ``stop_at``: ``mix`` from ``offset`` to ``ports[0]``, on to the
    next port whenever a connection fails."""
    mine = RoundResult(0.0)
    turn, i = 0, offset
    conn = http.client.HTTPConnection("127.0.0.1", ports[0], timeout=60)
    while time.monotonic() < stop_at:
        request, port = mix[i % len(mix)], ports[turn % len(ports)]
        i += 1
        start = time.perf_counter()
        try:
            conn.request("GET", request.path, headers={"Accept": request.accept, **headers})
            response = conn.getresponse()
            body = response.read()
            status = response.status
            if response.will_close:
                conn.close()
        except (OSError, http.client.HTTPException) as exc:
            conn.close()
            turn += 1
            conn = http.client.HTTPConnection("127.0.0.1", ports[turn % len(ports)], timeout=60)
            status, body = 0, repr(exc).encode()
        mine.latencies.setdefault(request.kind, []).append((time.perf_counter() - start) * 1000)
        mine.per_port[port] += 1
        if status != 200:
            key = f"{request.kind} {status or 'connection'}" + (f" on :{port}" if len(ports) > 1 else "")
            mine.errors[key] += 1
            mine.examples.setdefault(key, f"{request.path}: {body[:160]!r}")
            mine.error_times.append((time.monotonic(), key))
    conn.close()
    return mine


def _merge(into: RoundResult, part: RoundResult) -> None:
    for kind, values in part.latencies.items():
        into.latencies.setdefault(kind, []).extend(values)
    into.errors.update(part.errors)
    for key, text in part.examples.items():
        into.examples.setdefault(key, text)
    into.per_port.update(part.per_port)
    into.error_times.extend(part.error_times)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * (len(ordered) - 1)))] if ordered else float("nan")


def report(result: RoundResult) -> None:
    every = [v for values in result.latencies.values() for v in values]
    errors = sum(result.errors.values())
    print(
        f"  {result.requests} requests in {result.seconds:.1f} s: {result.requests / result.seconds:7.1f} req/s,"
        f" p50 {statistics.median(every):7.2f} ms, p99 {percentile(every, 0.99):8.2f} ms, errors {errors}"
    )
    for kind, _ in MIX:
        values = result.latencies.get(kind, [])
        if values:
            print(
                f"    {kind:7s} {len(values):7d} req  {len(values) / result.seconds:7.1f} req/s"
                f"  p50 {statistics.median(values):7.2f} ms  p99 {percentile(values, 0.99):8.2f} ms"
            )
    for key, count in result.errors.most_common():
        print(f"    error {key}: {count} (e.g. {result.examples[key]})")


def print_log_faults(name: str, log: Path) -> None:
    """How many tracebacks and ERROR lines a server wrote to ``log``, and the first ten of them."""
    faults = [line for line in log.read_text(errors="replace").splitlines() if "Traceback" in line or "ERROR" in line]
    print(f"{name}: {len(faults)} tracebacks or errors" + "".join(f"\n  {line}" for line in faults[:10]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=60, help="length of each round")
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--warmup", type=float, default=5, help="seconds of load before the first round")
    parser.add_argument("--server", choices=["gunicorn", "serve"], default="gunicorn")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn worker processes")
    parser.add_argument("--threads", type=int, default=4, help="threads per gunicorn worker")
    parser.add_argument("--screen-files", type=int, default=20_000, help="rows of the screen study's file table")
    args = parser.parse_args()
    from benchmarks.api_bench import free_port

    with tempfile.TemporaryDirectory(prefix="bia-load-bench-") as name:
        port = free_port()
        started = time.perf_counter()
        settings = build_catalog(Path(name), f"http://127.0.0.1:{port}", args.screen_files)
        mix = request_mix(settings)
        print(f"catalog built in {time.perf_counter() - started:.1f} s; {len(mix)} requests in the mix")
        log = Path(name) / "server.log"
        server = start_server(args.server, settings, port, args.workers, args.threads, log)
        shape = f"{args.workers} workers x {args.threads} threads, read-only" if args.server == "gunicorn" else "one process"
        print(f"server: {args.server} ({shape}); {args.clients} clients, {args.rounds} rounds of {args.seconds:.0f} s")
        try:
            run_round([port], mix, args.warmup, args.clients)
            after = []
            for number in range(1, args.rounds + 1):
                before = server_figures(server.pid)
                result = run_round([port], mix, args.seconds, args.clients)
                time.sleep(1)  # the last connections closed and their threads ended
                after.append(server_figures(server.pid))
                print(f"round {number}:")
                print(f"  server before: {before}")
                report(result)
                print(f"  server after:  {after[-1]}")
            if len(after) > 1:
                first, last = after[0], after[-1]
                print(
                    f"growth from the end of round 1 to the end of round {len(after)}: RSS {last.rss_mib - first.rss_mib:+.1f} MiB,"
                    f" open files {last.open_files - first.open_files:+d}, threads {last.threads - first.threads:+d}"
                    f" (wanted: none)"
                )
        finally:
            stop(server)
        print_log_faults("server log", log)


if __name__ == "__main__":
    main()
