"""The SPARQL endpoint's pre-checks on 1 MiB queries, against the regular-expression checks they replaced, and
how fast ``/health`` answers while big and long queries are being parsed and run.

    python -m benchmarks.sparql_checks_bench [--repeat 5] [--health-seconds 10]

1. in-process: for several 1 MiB query shapes (a big literal, many triple patterns, many prefixes, long comments,
   filters), the time of one :func:`api.sparql_protocol.scan` with every check reading it (target <= 20 ms), and
   the old checks (four maskings of the whole text: form, SERVICE, repeatability, dataset) as the baseline;
2. served (granian and gunicorn, one process, 8 threads each): ``/health`` latency p50/p99/max while one client
   keeps posting a ~1 MiB query and another a query that runs until the time limit (target < 200 ms).
"""

from __future__ import annotations

import argparse
import http.client
import re
import statistics
import tempfile
import threading
import time
from pathlib import Path

from api.sparql_protocol import (
    QueryTooComplex,
    check_services,
    dataset,
    repeatable,
    result_kind,
    scan,
)

MIB = 1 << 20


def shapes() -> dict[str, str]:
    """1 MiB queries of the shapes a client may send."""
    head = "PREFIX ex: <http://example.org/>\nSELECT * WHERE {\n"

    def fill(prefix: str, unit, suffix: str) -> str:
        parts, size, i = [prefix], len(prefix) + len(suffix), 0
        while size < MIB:
            part = unit(i)
            parts.append(part)
            size += len(part)
            i += 1
        return "".join(parts) + suffix

    return {
        "big literal": head + '  ?s ex:label "' + "x" * (MIB - 80) + '" .\n}',
        "triple patterns": fill(head, lambda i: f'  ?s{i} ex:p{i} "value {i}" ; <http://example.org/q> ?o{i} .\n', "}"),
        "prefixes": fill("", lambda i: f"PREFIX p{i}: <http://example.org/ns/{i}#>\n", "SELECT * WHERE { ?s p1:x ?o }"),
        "comments": fill(
            "",
            lambda i: f"# comment line {i}: SERVICE <http://elsewhere/> DELETE {{ }} \"quoted'\n",
            "SELECT * WHERE { ?s ?p ?o }",
        ),
        "filters": fill(head, lambda i: f"  ?s ex:v{i} ?v{i} FILTER(?v{i} > {i})\n", "}"),  # over the operator limit
    }


# ---------------------------------------------------------------------- the checks as they were (the baseline)

_MASK = re.compile(
    r"""(\#[^\n]*)|("{3}.*?"{3}|'{3}.*?'{3}|"(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*')|(<[^<>"{}|^`\\\s]*>)""",
    re.DOTALL,
)
_PN_PREFIX = r"[^\W\d_][\w.-]*"
_PN_LOCAL = r"(?:[\w:%-]|\\.|\.(?=[\w:%\\-]))*"
_PROLOGUE = re.compile(rf"\s*(?:PREFIX\s+(?:{_PN_PREFIX})?:\s*<\s*>|BASE\s*<\s*>)", re.IGNORECASE)
_PREFIX_DECLARATION = re.compile(rf"(?<![\w:?$])PREFIX\s+({_PN_PREFIX})?:\s*<", re.IGNORECASE)
_SERVICE = re.compile(r"(?<![\w:?$])SERVICE\s+(?:SILENT\s*)?|(?<![\w:?$])SERVICE(?=<)", re.IGNORECASE)
_DATASET_CLAUSE = re.compile(r"(?<![\w:?$])FROM\b", re.IGNORECASE)
_VOLATILE = re.compile(r"(?<![\w:?$])(?:(?:RAND|NOW|UUID|STRUUID|BNODE)\s*\(|SERVICE\b)", re.IGNORECASE)


def _masked(query: str) -> str:
    def blank(m: re.Match) -> str:
        return "<" + " " * (len(m.group(0)) - 2) + ">" if m.group(3) else " " * len(m.group(0))

    return _MASK.sub(blank, query)


def legacy_checks(query: str) -> None:
    """What the endpoint ran before: the form, the SERVICE targets, repeatability, the dataset, each masking."""
    masked = _masked(query)
    pos = 0
    while m := _PROLOGUE.match(masked, pos):
        pos = m.end()
    re.match(r"\s*([A-Za-z]+)", masked[pos:])
    re.search(r"(?<![?$\w:])(INSERT|DELETE)\s+(DATA\b|\{|WHERE\b)", masked, re.IGNORECASE)
    masked = _masked(query)
    {m.group(1) or "": m.end() for m in _PREFIX_DECLARATION.finditer(masked)}
    for m in _SERVICE.finditer(masked):
        re.match(rf"({_PN_PREFIX})?:({_PN_LOCAL})", masked[m.end() :])
    _VOLATILE.search(_masked(query))
    _DATASET_CLAUSE.search(_masked(query))


def new_checks(query: str) -> str:
    """What the endpoint runs now: one scan, every check reading it; "refused" when the scan stops at a limit."""
    try:
        shape = scan(query)
    except QueryTooComplex:
        return "refused: too complex"
    result_kind(shape.form)
    check_services(shape, ())
    repeatable(shape)
    dataset(shape, [], [])
    return "accepted"


def best_ms(check, query: str, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        check(query)
        times.append((time.perf_counter() - start) * 1000)
    return min(times)


def bench_checks(repeat: int) -> None:
    print(f"pre-checks of a 1 MiB query (best of {repeat}; target <= 20 ms):")
    for name, query in shapes().items():
        new = best_ms(new_checks, query, repeat)
        old = best_ms(legacy_checks, query, max(1, repeat // 2))
        print(
            f"  {name:16} {len(query.encode()) / MIB:4.2f} MiB  one scan {new:7.2f} ms ({new_checks(query)}) | "
            f"old regex checks {old:8.2f} ms -> {old / new:6.1f}x faster"
        )


# ---------------------------------------------------------------------- /health while queries are parsed and run


def bench_health(seconds: float) -> None:
    from benchmarks.api_bench import build_catalog, free_port, granian, gunicorn, stop

    with tempfile.TemporaryDirectory(prefix="bia-checks-bench-") as name:
        settings, _ = build_catalog(Path(name), "http://127.0.0.1:5000")
        for label, launch in (("granian", granian), ("gunicorn gthread", gunicorn)):
            port = free_port()
            env = {
                "BIA_DATA": str(settings.data_dir),
                "BIA_BASE_URL": settings.base_url,
                "BIA_READ_ONLY": "1",
                "BIA_SPARQL_TIMEOUT": "5",
                "BIA_SPARQL_MAX_PER_CLIENT": "8",
            }  # every client here is 127.0.0.1
            server = launch("api.app:create_app()", port, env, workers=1, threads=8)
            try:
                health_under_load(label, port, seconds)
            finally:
                stop(server)


def health_under_load(label: str, port: int, seconds: float) -> None:
    """/health latencies while one client keeps posting ~1 MiB queries and another queries that run to the limit."""
    # ~1 MiB queries that run at once (so that many are sent and scanned): a big literal, many prefixes, comments
    big = [shapes()[name][: MIB - 100] for name in ("big literal", "prefixes", "comments")]
    big = [q if q.endswith("}") else q.rsplit("\n", 1)[0] + "\nASK {}" for q in big]
    big[0] = 'SELECT * WHERE { ?s ?p "' + "x" * (MIB - 100) + '" } LIMIT 1'
    slow = "SELECT (COUNT(*) AS ?n) WHERE { ?a ?b ?c . ?d ?e ?f . ?g ?h ?i . ?j ?k ?l . ?m ?n ?o }"
    stop_at = time.monotonic() + seconds
    counts = {"big": 0, "slow": 0}

    def post(kind: str, bodies: list[str]) -> None:
        while time.monotonic() < stop_at:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            conn.request(
                "POST",
                "/sparql",
                body=bodies[counts[kind] % len(bodies)].encode(),
                headers={"Content-Type": "application/sparql-query"},
            )
            status = conn.getresponse()
            status.read()
            conn.close()
            if kind == "big" and status.status != 200:
                raise RuntimeError(f"a ~1 MiB query was answered {status.status}")
            counts[kind] += 1

    posters = [threading.Thread(target=post, args=("big", big)), threading.Thread(target=post, args=("slow", [slow]))]
    for thread in posters:
        thread.start()
    time.sleep(0.5)
    latencies = []
    while time.monotonic() < stop_at:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        start = time.perf_counter()
        conn.request("GET", "/health")
        conn.getresponse().read()
        latencies.append((time.perf_counter() - start) * 1000)
        conn.close()
        time.sleep(0.02)
    for thread in posters:
        thread.join()
    ordered = sorted(latencies)
    print(
        f"/health under {label} (1 process, 8 threads) while ~1 MiB queries ({counts['big']} sent) and queries "
        f"running to the time limit ({counts['slow']}) are served: p50 {statistics.median(ordered):.1f} ms, "
        f"p99 {ordered[int(0.99 * (len(ordered) - 1))]:.1f} ms, max {ordered[-1]:.1f} ms over {len(ordered)} requests"
        f" (target < 200 ms)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--health-seconds", type=float, default=10, help="0: skip the served /health measure")
    args = parser.parse_args()
    bench_checks(args.repeat)
    if args.health_seconds:
        bench_health(args.health_seconds)


if __name__ == "__main__":
    main()
