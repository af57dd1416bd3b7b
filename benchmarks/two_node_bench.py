"""Two-node load benchmark: one catalog on a site's shared stores (PostgreSQL, two ``oxigraph serve``, SeaweedFS S3),
served by (a) one API node, then (b) two nodes with the clients spread round-robin over both, as a load balancer
would, and (c) two nodes of which one is killed (SIGKILL) half-way through a round.

    python -m benchmarks.two_node_bench [--seconds 20] [--clients 20] [--rounds 2] [--workers 2] [--threads 4]
                                        [--screen-files 20000]

The catalog is built once, before any node starts, through an Archive on the shared stores with a ``BIA_DATA`` of
its own (:func:`benchmarks.load_bench.build_catalog`: the demo studies, linked, and a screen of ``--screen-files``
rows). Every node is a fresh gunicorn process tree (``--workers`` x ``--threads``) with an empty ``BIA_DATA`` of
its own, as on another machine (:func:`tests.servers.api_node.start_node`); it counts as ready once ``/health``
counts every study (its search index has caught up from PostgreSQL). Each configuration runs the request mix, warm-up
and rounds of :mod:`benchmarks.load_bench` with the same clients, seconds, workers and threads per node, and prints
per round requests/s, p50/p99 latency, errors (any answer other than 200, and any failed connection) and each node's
requests and memory (RSS of its process tree) at the end of the round, and, after the rounds of (a) and of (b), the
CPU seconds each node, each shared server and the clients (this process) used, which shows where the time went; then
the ratio of two-node to one-node throughput. Each client's requests carry an ``X-Forwarded-For`` address of its own,
as a load balancer in front of the nodes adds (``BIA_TRUSTED_PROXIES=1``), so per-client limits (SPARQL) count per
client. In (c) a client whose connection fails moves on to the other node (a load balancer taking the dead node out):
every request that failed on the way is counted and printed as an error, with when it failed relative to the kill.

On one 2-core machine the two nodes share the same two CPUs (with PostgreSQL, both graph servers, S3 and the clients),
so the two-node/one-node ratio measures the overhead of a second node and correctness under load, not the scale-out a
second machine gives.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import threading
import time
from contextlib import ExitStack
from pathlib import Path

from benchmarks.load_bench import (
    Request,
    RoundResult,
    build_catalog,
    percentile,
    print_log_faults,
    report,
    process_tree,
    request_mix,
    run_round,
    server_figures,
)
from catalog.config import Settings
from tests.servers.api_node import ApiNode, node_env, start_node
from tests.servers.oxigraph_server import start_oxigraph, stop_oxigraph
from tests.servers.postgres_server import start_postgres, stop_postgres
from tests.servers.seaweedfs_server import start_seaweedfs, stop_seaweedfs

BASE = "https://bia.example.org"


# ---------------------------------------------------------------------- the site


def start_site(tmp: Path, stack: ExitStack) -> tuple[dict[str, str], dict[str, int]]:
    """PostgreSQL, the public and private ``oxigraph serve`` and SeaweedFS, each stopped when ``stack`` closes; returns
    the ``BIA_*`` variables every node of the site shares, and the process id of each server by name."""
    postgres = start_postgres()
    stack.callback(stop_postgres, postgres)
    public = start_oxigraph(tmp / "oxigraph-public")
    stack.callback(stop_oxigraph, public)
    private = start_oxigraph(tmp / "oxigraph-private")
    stack.callback(stop_oxigraph, private)
    s3 = start_seaweedfs(tmp / "seaweedfs")
    stack.callback(stop_seaweedfs, s3)  # SIGKILL: weed ignores SIGTERM
    postmaster = int((postgres.folder / "data" / "postmaster.pid").read_text().split()[0])
    servers = {
        "oxigraph public": public.process.pid,
        "oxigraph private": private.process.pid,
        "PostgreSQL": postmaster,
        "SeaweedFS": s3.process.pid,
    }
    return {
        "BIA_DATABASE_URL": postgres.url,
        "BIA_SPARQL_URL": private.url,
        "BIA_PUBLIC_SPARQL_URL": public.url,
        "BIA_S3_ENDPOINT": s3.endpoint,
        "BIA_S3_BUCKET": s3.new_bucket("site"),
        "BIA_S3_ACCESS_KEY": s3.access_key,
        "BIA_S3_SECRET_KEY": s3.secret_key,
        "BIA_TRUSTED_PROXIES": "1",  # the clients' X-Forwarded-For, as from a load balancer: each its own client
    }, servers


def study_count(settings: Settings) -> int:
    from api.services import open_services

    with open_services(settings) as services:
        return services.archive.public.search.count()


def start_bench_node(
    tmp: Path, name: str, shared: dict[str, str], args: argparse.Namespace, stack: ExitStack, studies: int
) -> ApiNode:
    """A fresh node (empty ``BIA_DATA``), killed when ``stack`` closes, once ``/health`` counts all ``studies``."""
    started = time.perf_counter()
    node = start_node(node_env(tmp / name, BASE, **shared), workers=args.workers, threads=args.threads)
    stack.callback(node.kill)
    answering = time.perf_counter() - started
    deadline, counted = time.monotonic() + 120, -1
    while time.monotonic() < deadline:
        counted = node.json("/health")["studies"]
        if counted >= studies:
            break
        time.sleep(0.2)
    print(
        f"{name} on {node.url}: answering after {answering:.1f} s, {counted}/{studies} studies searchable after"
        f" {time.perf_counter() - started:.1f} s"
    )
    return node


def port_of(node: ApiNode) -> int:
    return int(node.url.rsplit(":", 1)[1])


def cpu_seconds(root: int) -> float:
    """User and system CPU time used so far by the live processes of ``root``'s tree (from /proc)."""
    total = 0
    for pid in process_tree(root):
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # ended meanwhile
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of proc(5))
    return total / os.sysconf("SC_CLK_TCK")


def cpu_now(roots: dict[str, int]) -> dict[str, float]:
    """:func:`cpu_seconds` of each process tree in ``roots``, and of this process (the clients) alone."""
    own = os.times()
    return {**{name: cpu_seconds(pid) for name, pid in roots.items()}, "clients": own.user + own.system}


def print_cpu(before: dict[str, float], after: dict[str, float], seconds: float) -> None:
    """CPU seconds each process tree used between ``before`` and ``after``, against the machine's ``seconds`` x cores."""
    used = {name: after[name] - before[name] for name in before}
    print(
        f"  CPU seconds over the rounds ({seconds:.0f} s x {os.cpu_count()} cores): "
        + ", ".join(f"{name} {value:.1f}" for name, value in used.items())
    )


# ---------------------------------------------------------------------- the measurements


def print_nodes(names: list[str], nodes: list[ApiNode], result: RoundResult) -> None:
    """Each node's share of the requests and its process tree's figures now."""
    for name, node in zip(names, nodes):
        state = "killed" if node.process.poll() is not None else str(server_figures(node.process.pid))
        print(f"  {name}: {result.per_port[port_of(node)]:6d} requests; {state}")


def measure(
    label: str, names: list[str], nodes: list[ApiNode], mix: list[Request], args: argparse.Namespace, servers: dict[str, int]
) -> list[RoundResult]:
    """The warm-up and ``args.rounds`` rounds against ``nodes``, each reported, then the CPU time every server used."""
    ports = [port_of(node) for node in nodes]
    run_round(ports, mix, args.warmup, args.clients, forwarded=True)
    roots = {**{name: node.process.pid for name, node in zip(names, nodes)}, **servers}
    cpu = cpu_now(roots)
    results = []
    for number in range(1, args.rounds + 1):
        result = run_round(ports, mix, args.seconds, args.clients, forwarded=True)
        time.sleep(1)  # the last connections closed and their threads ended
        print(f"{label}, round {number}:")
        report(result)
        print_nodes(names, nodes, result)
        results.append(result)
    print_cpu(cpu, cpu_now(roots), sum(result.seconds + 1 for result in results))
    return results


def totals(results: list[RoundResult]) -> tuple[float, float, float, int]:
    """(requests/s, p50 ms, p99 ms, errors) over all ``results``."""
    every = [v for result in results for values in result.latencies.values() for v in values]
    seconds = sum(result.seconds for result in results)
    errors = sum(sum(result.errors.values()) for result in results)
    return len(every) / seconds, statistics.median(every), percentile(every, 0.99), errors


def failover(names: list[str], nodes: list[ApiNode], mix: list[Request], args: argparse.Namespace) -> None:
    """One round over both nodes; half-way through, ``nodes[1]`` is killed with SIGKILL."""
    victim, killed_at = nodes[1], []

    def kill() -> None:
        killed_at.append(time.monotonic())
        victim.kill()

    timer = threading.Timer(args.seconds / 2, kill)
    timer.start()
    result = run_round([port_of(node) for node in nodes], mix, args.seconds, args.clients, forwarded=True)
    timer.join()
    time.sleep(1)
    print(f"(c) failover: {names[1]} killed with SIGKILL {args.seconds / 2:.0f} s into the round:")
    report(result)
    print_nodes(names, nodes, result)
    failed = sorted(t - killed_at[0] for t, key in result.error_times if key.split()[1] == "connection")
    others = [t - killed_at[0] for t, key in result.error_times if key.split()[1] != "connection"]
    span = f", {failed[0]:+.2f} s to {failed[-1]:+.2f} s from the kill" if failed else ""
    print(
        f"  failover: {len(failed)} requests failed on a connection{span}; other errors:"
        f" {sum(t < 0 for t in others)} before the kill, {sum(t >= 0 for t in others)} after it"
    )
    survivor = nodes[0].json("/health")
    print(f"  {names[0]} after the round: /health {survivor}")


def compare(one: list[RoundResult], two: list[RoundResult]) -> None:
    (rate1, p50_1, p99_1, errors1), (rate2, p50_2, p99_2, errors2) = totals(one), totals(two)
    print("summary over all rounds:")
    print(f"  (a) one node:  {rate1:7.1f} req/s, p50 {p50_1:7.2f} ms, p99 {p99_1:8.2f} ms, errors {errors1}")
    print(f"  (b) two nodes: {rate2:7.1f} req/s, p50 {p50_2:7.2f} ms, p99 {p99_2:8.2f} ms, errors {errors2}")
    print(
        f"  two nodes / one node: throughput x{rate2 / rate1:.2f}, p99 x{p99_2 / p99_1:.2f}"
        " (one 2-core machine: both nodes share its CPUs)"
    )


def run(tmp: Path, args: argparse.Namespace, stack: ExitStack) -> list[ApiNode]:
    started = time.perf_counter()
    shared, servers = start_site(tmp, stack)
    print(f"site started in {time.perf_counter() - started:.1f} s: PostgreSQL, two oxigraph serve, SeaweedFS S3")
    started = time.perf_counter()
    (tmp / "builder").mkdir()
    settings = build_catalog(tmp / "builder", BASE, args.screen_files, shared)
    mix, studies = request_mix(settings), study_count(settings)
    print(f"catalog built in {time.perf_counter() - started:.1f} s: {studies} studies; {len(mix)} requests in the mix")
    print(
        f"each node: gunicorn {args.workers} workers x {args.threads} threads; {args.clients} clients,"
        f" {args.rounds} rounds of {args.seconds:.0f} s after {args.warmup:.0f} s of warm-up"
    )
    names = ["node1", "node2"]
    nodes = [start_bench_node(tmp, names[0], shared, args, stack, studies)]
    one = measure("(a) one node", names[:1], nodes, mix, args, servers)
    nodes.append(start_bench_node(tmp, names[1], shared, args, stack, studies))
    two = measure("(b) two nodes", names, nodes, mix, args, servers)
    failover(names, nodes, mix, args)
    compare(one, two)
    return nodes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=20, help="length of each round")
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--warmup", type=float, default=5, help="seconds of load before the first round of a configuration")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn worker processes per node")
    parser.add_argument("--threads", type=int, default=4, help="threads per gunicorn worker")
    parser.add_argument("--screen-files", type=int, default=20_000, help="rows of the screen study's file table")
    args = parser.parse_args()
    began = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bia-two-node-bench-") as name:
        nodes: list[ApiNode] = []
        with ExitStack() as stack:  # everything started is stopped, in reverse order, however the run ends
            nodes = run(Path(name), args, stack)
        for number, node in enumerate(nodes, 1):
            print_log_faults(f"node{number} log", node.log)
    print(f"done in {time.perf_counter() - began:.0f} s")


if __name__ == "__main__":
    main()
