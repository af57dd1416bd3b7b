"""Catalog benchmarks (issue: catalog core). Prints figures and ratios against raw baselines measured in the same run.

    python -m benchmarks.catalog_bench [--files 1300000] [--studies 100000] [--deposit-files 10000] [--only NAME]

1. ingest: a generated screen-like file list of ``--files`` rows committed as one study (graph + file index +
   search), rows/s and peak RSS, against a raw ``pyoxigraph`` bulk_load of the same triples (target ≤ 1.5×);
2. file table on that study: first page, filter, prefix, numeric range, facets, sort, deep cursor page —
   p50/p95 (target p95 ≤ 50 ms);
3. keyword search over ``--studies`` generated studies: p50/p95 (target p95 ≤ 20 ms);
4. finalize of a ``--deposit-files``-file deposit (target ≤ 5 s).
"""

from __future__ import annotations

import argparse
import io
import itertools
import random
import resource
import tempfile
import time
from pathlib import Path

from benchmarks.baselines import raw_bulk_load
from catalog.config import Settings

ROOT = Path(__file__).resolve().parent.parent

BASE = "https://archive.example.org"
COMPOUNDS = [f"CPD-{i:04d}" for i in range(2000)]


def peak_rss_mib() -> float:
    """This process's peak resident memory (VmHWM: unlike ru_maxrss, not inherited across fork/exec)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def timed(fn, repeat: int = 30) -> tuple[float, float]:
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1000)
    return pct(samples, 0.5), pct(samples, 0.95)


def write_screen_list(path: Path, rows: int) -> None:
    rng = random.Random(1)
    with path.open("w", encoding="utf-8") as out:
        out.write("path\tsize\tPlate\tWell\tField\tChannel\tCompound\tConcentration\n")
        for i in range(rows):
            plate, rest = divmod(i, 384 * 9 * 4)
            well, rest = divmod(rest, 9 * 4)
            field, channel = divmod(rest, 4)
            well_name = f"{'ABCDEFGHIJKLMNOP'[well // 24]}{well % 24 + 1:02d}"
            out.write(
                f"plate{plate:03d}/{well_name}/f{field}_c{channel}.tif\t{rng.randint(10**5, 10**7)}\t{plate}\t{well_name}"
                f"\t{field}\t{channel}\t{COMPOUNDS[(plate * 384 + well) % len(COMPOUNDS)]}\t{rng.choice([0.1, 1, 10, 100])}\n"
            )


def bench_ingest(tmp: Path, n_files: int) -> str:

    from catalog.archive import Archive
    from catalog.records import read_record
    from catalog.rembi_rdf import record_to_graph
    from catalog.study_files import StudyFile, write_file_triples
    from catalog.validation import check_study_record
    from loaders.file_lists import iter_file_list

    listing = tmp / "screen.tsv"
    t0 = time.perf_counter()
    write_screen_list(listing, n_files)
    print(f"generated {n_files:,} rows in {time.perf_counter() - t0:.1f} s")

    settings = Settings.from_env({}, data_dir=tmp / "data", base_url=BASE)
    archive = Archive(settings)
    record = read_record(ROOT / "tests" / "data" / "deposit" / "study.yaml").data
    record["release_date"] = "2020-01-01"
    checked = check_study_record(record, BASE, accession="S-BIAD1")
    component = checked.record["components"][0]["id"]

    def files():
        for row in iter_file_list(listing, name="screen.tsv"):
            yield StudyFile(path=row.path, size=row.size, attributes=row.attributes, component=component)

    start = time.perf_counter()
    result = archive.commit_study("S-BIAD1", record_to_graph(checked.record), files, release_date="2020-01-01", title="bench")
    ingest_s = time.perf_counter() - start
    print(
        f"ingest: {result.files:,} files, {result.triples:,} triples in {ingest_s:.1f} s "
        f"({result.files / ingest_s:,.0f} rows/s, {result.triples / ingest_s:,.0f} triples/s); peak RSS {peak_rss_mib():,.0f} MiB"
    )

    # raw baseline: the same triples, bulk-loaded by pyoxigraph into a fresh store, in a child process
    nt = tmp / "same.nt"
    with nt.open("w", encoding="utf-8") as out:
        out.write(record_to_graph(checked.record).serialize(format="nt"))
        write_file_triples(out, f"{BASE}/studies/S-BIAD1", files())
    raw_s, raw_rss = raw_bulk_load(nt, tmp / "raw-store", f"{BASE}/studies/S-BIAD1")
    print(
        f"raw pyoxigraph bulk_load of the same triples (from a ready file): {raw_s:.1f} s, peak RSS {raw_rss:,.0f} MiB"
        f" -> ingest/raw = {ingest_s / raw_s:.2f}x (target <= 1.5x)"
    )
    nt.unlink()
    archive.close()
    return "S-BIAD1"


def build_file_table_only(tmp: Path, n_files: int) -> str:
    """The study's file table alone, from the same generated list (for measuring table queries quickly)."""
    from catalog.study_files import StudyFile
    from loaders.file_lists import iter_file_list

    listing = tmp / "screen.tsv"
    write_screen_list(listing, n_files)
    study = f"{BASE}/studies/S-BIAD1"
    rows = (
        StudyFile(path=r.path, size=r.size, attributes=r.attributes).table_row(study)
        for r in iter_file_list(listing, name="screen.tsv")
    )
    start = time.perf_counter()
    catalog_file_index(tmp).replace_study("S-BIAD1", rows)
    print(f"file table of {n_files:,} rows built in {time.perf_counter() - start:.1f} s; peak RSS {peak_rss_mib():,.0f} MiB")
    return "S-BIAD1"


def catalog_file_index(tmp: Path):
    """The public file index of the catalog in ``tmp/data``, as an embedded Archive opens it."""
    from catalog.file_index import FileIndex
    from catalog.state_db import open_state_db
    from catalog.state_schema import ensure_schema

    state = open_state_db(None, tmp / "data")
    ensure_schema(state)
    return FileIndex(tmp / "data" / "index" / "public" / "files", state, "public")


def bench_file_table(tmp: Path, accession: str) -> None:
    from catalog.file_index import Filter

    index = catalog_file_index(tmp)
    total = index.totals(accession)["files"]
    cursor_holder = {}

    def deep_page():
        page = index.query(accession, sort=[("Well", False)], limit=100, cursor=cursor_holder.get("c"))
        cursor_holder["c"] = page.next_cursor

    cases = {
        "first page (path)": lambda: index.query(accession, sort=[("path", False)], limit=100),
        "filter Compound + sort Well": lambda: index.query(
            accession, filters=[Filter("Compound", "eq", "CPD-0042")], sort=[("Well", False)], limit=100
        ),
        "prefix path": lambda: index.query(accession, filters=[Filter("path", "prefix", "plate007/B")], limit=100),
        "numeric range Concentration": lambda: index.query(
            accession, filters=[Filter("Concentration", "gte", 10), Filter("Plate", "lte", 3)], limit=100
        ),
        "sort -size": lambda: index.query(accession, sort=[("size", True)], limit=100),
        "facets Compound/Channel/Plate": lambda: index.facets(
            accession, ["Compound", "Channel", "Plate"], filters=[Filter("Plate", "eq", 5)]
        ),
        "totals filtered": lambda: index.totals(accession, filters=[Filter("Channel", "eq", 2)]),
        "cursor pages (Well)": deep_page,
    }
    print(f"file table on {total:,} files (target p95 <= 50 ms):")
    for name, fn in cases.items():
        p50, p95 = timed(fn)
        print(f"  {name:32s} p50 {p50:7.2f} ms  p95 {p95:7.2f} ms")


def bench_search(tmp: Path, n_studies: int) -> None:
    from catalog.search_index import SearchIndex, StudyDocument

    rng = random.Random(2)
    topical = "cell nucleus mitochondria actin tubulin zebrafish embryo mouse brain neuron confocal light-sheet electron tomography segmentation screen kinase".split()
    # a Zipf-like vocabulary: a few common words, a long tail of rare ones, as in real study descriptions
    vocabulary = topical + [f"term{i}" for i in range(20_000)]
    weights = list(itertools.accumulate(1.0 / (rank + 1) ** 1.07 for rank in range(len(vocabulary))))
    organisms = ["Homo sapiens", "Mus musculus", "Danio rerio", "Drosophila melanogaster", "Saccharomyces cerevisiae"]
    methods = ["confocal microscopy", "light sheet fluorescence microscopy", "electron tomography", "soft X-ray tomography"]
    from catalog.state_db import SqliteStateDB
    from catalog.state_schema import ensure_schema

    state = SqliteStateDB(tmp / "search-bench.sqlite")  # documents in a state database, as a catalog keeps them
    ensure_schema(state)
    index = SearchIndex(tmp / "search-bench", state, "public")
    docs = (
        StudyDocument(
            accession=f"S-BIAD{i}",
            title=" ".join(rng.choices(vocabulary, cum_weights=weights, k=8)),
            description=" ".join(rng.choices(vocabulary, cum_weights=weights, k=120)),
            keywords=rng.choices(vocabulary, cum_weights=weights, k=3),
            authors=[f"Author {rng.randint(1, 5000)}"],
            organisms=[rng.choice(organisms)],
            imaging_methods=[rng.choice(methods)],
            licence="CC0-1.0",
            release_date=f"{rng.randint(2015, 2026)}-01-01",
        )
        for i in range(n_studies)
    )
    start = time.perf_counter()
    docs = list(docs)
    generated = time.perf_counter() - start
    start = time.perf_counter()
    index.replace_all(docs)
    print(
        f"search index of {n_studies:,} studies built in {time.perf_counter() - start:.1f} s (documents generated in {generated:.1f} s)"
    )
    queries = [
        "zebrafish",
        "confocal mitochondria",
        '"electron tomography"',
        'organism:"Mus musculus" neuron',
        "kin*",
        "S-BIAD4242",
        "term150 term900",
        "term5000",
    ]
    print("search, top 20 hits + total (target p95 <= 20 ms):")
    for q in queries:
        total = index.search(q, limit=0, facet_fields=()).total
        p50, p95 = timed(lambda: index.search(q, limit=20, facet_fields=()), repeat=30)
        print(f"  {q:34s} {total:7,d} hits  p50 {p50:7.2f} ms  p95 {p95:7.2f} ms")
    print("facet counts (5 fields) over all matches:")
    for q in queries[:3] + [""]:
        samples = []
        for _ in range(10):
            start = time.perf_counter()
            index.search(q, limit=0)
            samples.append((time.perf_counter() - start) * 1000)
        print(f"  {q or '(all studies)':34s} p50 {pct(samples, 0.5):7.2f} ms  p95 {pct(samples, 0.95):7.2f} ms")


def bench_finalize(tmp: Path, n_files: int) -> None:
    from api.services import open_services

    settings = Settings.from_env({}, data_dir=tmp / "deposit-data", base_url=BASE)
    with open_services(settings) as services:
        deposits = services.deposits
        sub = deposits.create("bench")
        lines = ["path\tWell"]
        for i in range(n_files):
            deposits.upload(sub, "bench", f"img/{i:05d}.tif", io.BytesIO(b"x" * 256))
            lines.append(f"img/{i:05d}.tif\tW{i % 384}")
        deposits.attach_file_list(sub, "bench", "files.tsv", io.BytesIO(("\n".join(lines) + "\n").encode()))
        deposits.attach_metadata(sub, "bench", "study.yaml", (ROOT / "tests" / "data" / "deposit" / "study.yaml").read_bytes())
        start = time.perf_counter()
        accession = deposits.finalize(sub, "bench")
        print(f"finalize of a {n_files:,}-file deposit ({accession}): {time.perf_counter() - start:.2f} s (target <= 5 s)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=1_300_000)
    parser.add_argument("--studies", type=int, default=100_000)
    parser.add_argument("--deposit-files", type=int, default=10_000)
    parser.add_argument(
        "--only",
        choices=["ingest", "files", "search", "finalize"],
        help="one part; 'files' builds only the file table (no graph) and measures it",
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bia-bench-") as name:
        tmp = Path(name)
        if args.only in (None, "ingest"):
            accession = bench_ingest(tmp, args.files)
            bench_file_table(tmp, accession)
        if args.only == "files":
            bench_file_table(tmp, build_file_table_only(tmp, args.files))
        if args.only in (None, "search"):
            bench_search(tmp, args.studies)
        if args.only in (None, "finalize"):
            bench_finalize(tmp, args.deposit_files)


if __name__ == "__main__":
    main()
