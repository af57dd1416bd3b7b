"""Recovery after a kill -9 during a large re-harvest (issue: hardening, item 3). Prints figures.

    python -m benchmarks.recovery_bench [--files 200000] [--points 0.1,0.3,0.5,0.7,0.9,0.97,1.05]

A study of ``--files`` files is committed (the old version); then a re-harvest commits a new version of it (other
attribute values, 1 % more files) in a child process, which is killed with SIGKILL at each fraction of the
uninterrupted re-harvest's duration. After each kill a fresh process opens the catalog and recovers; its wall time
and peak RSS are measured, and the study is checked to be exactly the old version or exactly the new one (graph,
file table, search entry, registry). Baseline in the same run: a fresh process opening the same catalog with
nothing to recover. Targets: recovery ≤ 10 s and ≤ 500 MiB RSS whatever the kill point.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BASE = "https://archive.example.org"
ACCESSION = "S-BIADR1"


def _settings(data: Path):
    from catalog.config import Settings

    return Settings.from_env({}, data_dir=data, base_url=BASE)


def _peak_rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def child_commit(data: Path, n_files: int, version: str) -> None:
    """Commit ``n_files`` generated files as the study, every attribute saying ``version``."""
    from api.services import open_services
    from catalog.records import read_record
    from catalog.rembi_rdf import record_to_graph
    from catalog.study_files import StudyFile
    from catalog.validation import check_study_record

    with open_services(_settings(data), recover=False) as services:
        record = read_record(ROOT / "tests" / "data" / "deposit" / "study.yaml").data
        record["release_date"] = "2020-01-01"
        record["title"] = f"recovery benchmark, version {version}"
        checked = check_study_record(record, BASE, accession=ACCESSION)
        component = checked.record["components"][0]["id"]

        def files():
            for i in range(n_files):
                yield StudyFile(
                    path=f"plate{i // 3456:03d}/w{i % 3456:04d}.tif",
                    size=1000 + i,
                    attributes={"Version": version, "Well": f"w{i % 3456:04d}"},
                    component=component,
                )

        print("committing", flush=True)
        services.archive.commit_study(
            ACCESSION, record_to_graph(checked.record), files, release_date="2020-01-01", source="pagetab", title=record["title"]
        )
    print("committed", flush=True)


def child_recover(data: Path) -> None:
    """Open the catalog and recover; print the figures as JSON."""
    start = time.perf_counter()
    from api.services import open_services

    imported = time.perf_counter()
    with open_services(_settings(data), recover=False) as services:
        opened = time.perf_counter()
        handled = services.maintenance.recover()
        done = time.perf_counter()
    print(
        json.dumps(
            {
                "import_s": imported - start,
                "open_s": opened - imported,
                "recover_s": done - opened,
                "total_s": done - imported,
                "peak_rss_mib": _peak_rss_mib(),
                "handled": handled,
            }
        ),
        flush=True,
    )


def child_check(data: Path) -> None:
    """Print which version the study is, as every part of the catalog sees it (JSON)."""
    from api.services import open_services

    with open_services(_settings(data), recover=False, public_only=True) as services:
        archive = services.archive
        study = f"{BASE}/studies/{ACCESSION}"
        versions = archive.public.graph.select(
            'SELECT DISTINCT ?v WHERE { GRAPH <%s> { ?a <http://schema.org/name> "Version" ; <http://schema.org/value> ?v } }'
            % study
        )
        files = archive.public.graph.select(
            "SELECT (COUNT(?f) AS ?n) WHERE { GRAPH <%s> { <%s> <https://w3id.org/rembi/files> ?f } }" % (study, study)
        )
        table = archive.public.files.totals(ACCESSION)
        facet = archive.public.files.facets(ACCESSION, ["Version"]) if table.get("files") else {}
        hit = archive.public.search.search(f'accession:"{ACCESSION}"')
        row = archive.registry.study(ACCESSION)
        print(
            json.dumps(
                {
                    "graph_versions": sorted(v["v"]["value"] for v in versions),
                    "graph_files": int(files[0]["n"]["value"]),
                    "table_files": table.get("files"),
                    "table_versions": sorted(str(value) for value, _n in (facet.get("Version") or [])),
                    "search_title": hit.hits[0].title if hit.hits else None,
                    "row": [row.state, row.title, row.file_count] if row else None,
                }
            ),
            flush=True,
        )


def _run(*args: str, timeout: float = 3600) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.recovery_bench", *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout
    )
    if done.returncode != 0:
        raise RuntimeError(f"{args[0]} failed:\n{done.stderr[-3000:]}")
    return done.stdout


def _version_of(check: dict, n_old: int, n_new: int) -> str:
    """``old``/``new`` if every part agrees on one version, else a description of the mix."""
    for name, n in (("old", n_old), ("new", n_new)):
        wanted = (["v-" + name], n, n, ["v-" + name], f"recovery benchmark, version v-{name}")
        seen = (
            check["graph_versions"],
            check["graph_files"],
            check["table_files"],
            check["table_versions"],
            check["search_title"],
        )
        if seen == wanted and check["row"] and check["row"][0] == "released" and check["row"][2] == n:
            return name
    return "MIXED " + json.dumps(check)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=200_000)
    parser.add_argument(
        "--points", default="0.1,0.3,0.5,0.7,0.9,0.97,1.05", help="kill times as fractions of an uninterrupted re-harvest"
    )
    args = parser.parse_args()
    n_old, n_new = args.files, args.files + args.files // 100
    with tempfile.TemporaryDirectory(prefix="bia-recovery-") as tmp:
        data = Path(tmp) / "data"
        t0 = time.perf_counter()
        _run("child-commit", str(data), str(n_old), "v-old")
        print(f"old version: {n_old:,} files committed in {time.perf_counter() - t0:.1f} s")
        floor = json.loads(_run("child-recover", str(data)))
        print(
            f"baseline: opening the catalog with nothing to recover: {floor['total_s']:.2f} s, peak RSS "
            f"{floor['peak_rss_mib']:.0f} MiB (imports {floor['import_s']:.1f} s more)"
        )
        # an uninterrupted re-harvest to time the kill points, then back to the old version
        t0 = time.perf_counter()
        _run("child-commit", str(data), str(n_new), "v-new")
        full = time.perf_counter() - t0
        print(f"uninterrupted re-harvest: {n_new:,} files in {full:.1f} s (process start to exit)")
        results = []
        for fraction in (float(x) for x in args.points.split(",")):
            _run("child-commit", str(data), str(n_old), "v-old")
            child = subprocess.Popen(
                [sys.executable, "-m", "benchmarks.recovery_bench", "child-commit", str(data), str(n_new), "v-new"],
                cwd=ROOT,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
            time.sleep(fraction * full)
            os.kill(child.pid, signal.SIGKILL)
            child.wait()
            figures = json.loads(_run("child-recover", str(data)))
            outcome = _version_of(json.loads(_run("child-check", str(data))), n_old, n_new)
            results.append((fraction, figures, outcome))
            print(
                f"kill at {fraction:.2f} x ({fraction * full:5.1f} s): recovery {figures['total_s']:5.2f} s "
                f"(open {figures['open_s']:.2f} s + recover {figures['recover_s']:.2f} s), peak RSS "
                f"{figures['peak_rss_mib']:4.0f} MiB -> study is the {outcome} version"
            )
        worst_s = max(f["total_s"] for _, f, _ in results)
        worst_rss = max(f["peak_rss_mib"] for _, f, _ in results)
        whole = all(outcome in ("old", "new") for _, _, outcome in results)
        print(
            f"worst recovery {worst_s:.2f} s (target <= 10 s), {worst_s / max(floor['total_s'], 1e-3):.1f}x a clean "
            f"open; worst peak RSS {worst_rss:.0f} MiB (target <= 500 MiB); every outcome exactly old or new: {whole}"
        )


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1].startswith("child-"):
        {
            "child-commit": lambda: child_commit(Path(sys.argv[2]), int(sys.argv[3]), sys.argv[4]),
            "child-recover": lambda: child_recover(Path(sys.argv[2])),
            "child-check": lambda: child_check(Path(sys.argv[2])),
        }[sys.argv[1]]()
    else:
        main()
