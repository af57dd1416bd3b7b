"""Harvest benchmarks: records per second for each loader, and file-list rows per second into graph and index.

    python -m benchmarks.harvest_bench [--repeat 20] [--rows 200000]

1. loader only (read + map to a REMBI record) and loader + validation (JSON Schema + SHACL shapes), per kind,
   over the real samples in tests/data;
2. full harvests (validate, graph, search, file table) of those samples into a fresh embedded catalog;
3. a PageTab record with a generated ``--rows``-row file list harvested end to end: file-list rows/s, with a raw
   pyoxigraph bulk_load of the same triples (in a child process) as the baseline.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

from benchmarks.baselines import raw_bulk_load
from catalog.config import Settings

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "tests" / "data"
BASE = "https://archive.example.org"
SAMPLES = {
    "pagetab": sorted((DATA / "pagetab").glob("S-*.json")),
    "empiar": [DATA / "empiar" / n for n in ("10934.xml", "STARFILETEST.json", "IMAGELABELTEST.json")],
    "idr": sorted((DATA / "idr").glob("idr*-study.txt")),
    "rocrate": [DATA / "rocrate" / "typical"],
}


def bench_loaders(repeat: int) -> None:
    from catalog.validation import check_study_record
    from loaders.harvest import load_records

    print("loaders (records/s):")
    for kind, paths in SAMPLES.items():
        start = time.perf_counter()
        n = 0
        for _ in range(repeat):
            for path in paths:
                n += len(load_records(kind, path, source_url=None, harvested_at="2026-01-01T00:00:00Z"))
        load_s = time.perf_counter() - start
        start = time.perf_counter()
        for path in paths:
            for loaded in load_records(kind, path, source_url=None, harvested_at="2026-01-01T00:00:00Z"):
                check_study_record(loaded.record, BASE)
        validate_s = (time.perf_counter() - start) / len(paths)
        print(f"  {kind:8s} read+map {n / load_s:8.1f}/s   validation {validate_s * 1000:7.1f} ms/record ({len(paths)} samples)")


def bench_harvests(tmp: Path) -> None:
    from api.services import open_services
    from loaders.harvest import Harvester

    settings = Settings.from_env({}, data_dir=tmp / "harvest", base_url=BASE)
    print("full harvests into an embedded catalog (records/s, file lists included):")
    # PageTab records are harvested only with their file lists: the two whose lists are kept beside them
    with_lists = dict(SAMPLES, pagetab=[DATA / "harvest" / "biostudies" / n for n in ("S-BIAD1492.json", "S-BIADTEST.json")])
    with open_services(settings) as services:
        harvester = Harvester(services.archive)
        for kind, paths in with_lists.items():
            start = time.perf_counter()
            summary = harvester.run(kind, [str(p) for p in paths])
            elapsed = time.perf_counter() - start
            done = len(summary.loaded) + len(summary.unchanged)
            print(f"  {kind:8s} {done} loaded, {len(summary.failed)} failed in {elapsed:.2f} s -> {done / elapsed:.1f}/s")
            start = time.perf_counter()
            again = harvester.run(kind, [str(p) for p in paths])
            print(f"           re-harvest: {len(again.unchanged)} unchanged in {time.perf_counter() - start:.2f} s")


def bench_file_list(tmp: Path, rows: int) -> None:
    from api.services import open_services
    from loaders.harvest import Harvester

    folder = tmp / "big"
    folder.mkdir()
    doc = json.loads((DATA / "harvest" / "biostudies" / "S-BIAD1492.json").read_text())
    shutil.copy(DATA / "harvest" / "biostudies" / "bbc024_masks.json", folder / "bbc024_masks.json")
    (folder / "S-BIAD1492.json").write_text(json.dumps(doc))
    entries = [
        {
            "path": f"big/plate{i // 3456:03d}/img{i:07d}.tif",
            "size": 1000 + i,
            "attributes": [{"name": "Plate", "value": str(i // 3456)}, {"name": "Well", "value": f"W{i % 384}"}],
        }
        for i in range(rows)
    ]
    (folder / "bbc024_images.json").write_text(json.dumps(entries))
    settings = Settings.from_env({}, data_dir=tmp / "big-data", base_url=BASE)
    with open_services(settings) as services:
        start = time.perf_counter()
        summary = Harvester(services.archive).run("pagetab", [str(folder / "S-BIAD1492.json")])
        elapsed = time.perf_counter() - start
        assert summary.loaded == ["S-BIAD1492"], summary.failed
        total = services.archive.public.files.totals("S-BIAD1492")["files"]
        study = f"{BASE}/studies/S-BIAD1492"
        nt = tmp / "same.nt"
        services.archive.public.graph.save_graph(study, nt)
    raw_s, _rss = raw_bulk_load(nt, tmp / "raw", study)
    print(
        f"file list: {total:,} files harvested (graph + search + file table) in {elapsed:.1f} s -> {total / elapsed:,.0f} rows/s;"
        f" raw bulk_load of the same triples {raw_s:.1f} s -> {elapsed / raw_s:.2f}x"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--rows", type=int, default=200_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bia-harvest-bench-") as name:
        tmp = Path(name)
        bench_loaders(args.repeat)
        bench_harvests(tmp)
        bench_file_list(tmp, args.rows)


if __name__ == "__main__":
    main()
