"""Bringing a large study up to date with its files' header results (issue 16, items 4 and 5). Prints figures.

    python -m benchmarks.image_facts_bench [--files 200000] [--cap 1000]

A study of ``--files`` files is committed, and a done ``image_headers`` job per file is written straight into the
state database (the results of reading the real samples: a 2-D fluorescence TIFF, a 3-D EMDB map and an OME-TIFF
written from the real pixels with two channels, cycled). Then a fresh process applies them
(:meth:`Archive.apply_image_headers`: file table rebuilt with the ``image.*`` columns, image nodes up to ``--cap``
and summaries in the graph, search entry, record); its wall time and peak RSS are printed. Baseline in the same run:
reading and decoding every result from the state database (the least any application must do), and rebuilding the
file table without image columns.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BASE = "https://archive.example.org"
ACCESSION = "S-BIADI1"
IMAGES = ROOT / "tests" / "data" / "images"


def _settings(data: Path, cap: int = 1000):
    from catalog.config import Settings

    return Settings.from_env({}, data_dir=data, base_url=BASE, image_nodes_max=cap)


def _peak_rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _path(i: int) -> str:
    return f"plate{i // 3456:03d}/w{i % 3456:04d}.tif"


def _sample_results(folder: Path) -> list[str]:
    """The header results of real files, as the header job stores them (JSON)."""
    import numpy as np
    import tifffile

    from loaders.image_headers import read_headers

    image = tifffile.imread(IMAGES / "tiff" / "stardist_img2d.tif")
    two = folder / "two.ome.tif"
    meta = {"axes": "CYX", "PhysicalSizeX": 0.65, "PhysicalSizeY": 0.65, "Channel": {"Name": ["DAPI", "GFP"]}}
    tifffile.imwrite(two, np.stack([image, image]), metadata=meta, photometric="minisblack")
    paths = [IMAGES / "tiff" / "stardist_img2d.tif", IMAGES / "mrc" / "EMD-3197.map", two]
    return [json.dumps(read_headers(p).to_dict()) for p in paths]


def setup(data: Path, n_files: int) -> None:
    """Commit the study and store a done header job per file."""
    from api.services import open_services
    from catalog.image_columns import HEADER_KIND, header_key
    from catalog.records import read_record
    from catalog.rembi_rdf import record_to_graph
    from catalog.study_files import StudyFile
    from catalog.validation import check_study_record

    results = _sample_results(data.parent)
    with open_services(_settings(data), recover=False) as services:
        record = read_record(ROOT / "tests" / "data" / "deposit" / "study.yaml").data
        record["release_date"] = "2020-01-01"
        checked = check_study_record(record, BASE, accession=ACCESSION)
        component = checked.record["components"][0]["id"]

        def files():
            for i in range(n_files):
                yield StudyFile(path=_path(i), size=1000 + i, attributes={"Well": f"w{i % 3456:04d}"}, component=component)

        services.archive.commit_study(
            ACCESSION, record_to_graph(checked.record), files, release_date="2020-01-01", source="pagetab"
        )
        now = time.time()
        rows = (
            (i + 1, HEADER_KIND, ACCESSION, header_key(ACCESSION, _path(i)), "bench", "done", results[i % 3], now, now, now)
            for i in range(n_files)
        )
        with services.archive.state.transaction(write=True) as conn:
            conn.executemany(
                "INSERT INTO jobs (id, kind, study, file_key, version, state, result, ready, created, updated)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                rows,
            )


def child_apply(data: Path, cap: int) -> None:
    from api.services import open_services

    with open_services(_settings(data, cap), recover=False) as services:
        start = time.perf_counter()
        applied = services.archive.apply_image_headers(ACCESSION)
        seconds = time.perf_counter() - start
    assert applied is not None
    print(json.dumps({"seconds": seconds, "rss_mib": _peak_rss_mib(), "images": applied.images, "nodes": applied.image_nodes}))


def child_baseline(data: Path) -> None:
    from api.services import open_services
    from catalog.image_columns import without_image_columns

    with open_services(_settings(data), recover=False) as services:
        state = services.archive.state
        start = time.perf_counter()
        count = sum(1 for row in state.stream("SELECT result FROM jobs WHERE study = ?", (ACCESSION,)) if json.loads(row[0]))
        read = time.perf_counter() - start
        files = services.archive.public.files
        start = time.perf_counter()
        files.replace_study(ACCESSION, (without_image_columns(r) for r in files.iter_rows(ACCESSION)))
        table = time.perf_counter() - start
    print(json.dumps({"read_results_s": read, "results": count, "plain_table_s": table, "rss_mib": _peak_rss_mib()}))


def _child(*args: str) -> dict:
    out = subprocess.run([sys.executable, "-m", "benchmarks.image_facts_bench", *args], cwd=ROOT, capture_output=True, text=True)
    if out.returncode:
        raise SystemExit(out.stderr)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=200_000)
    parser.add_argument("--cap", type=int, default=1000)
    parser.add_argument("--child", choices=("apply", "baseline"))
    parser.add_argument("--data")
    args = parser.parse_args()
    if args.child == "apply":
        return child_apply(Path(args.data), args.cap)
    if args.child == "baseline":
        return child_baseline(Path(args.data))
    with tempfile.TemporaryDirectory(prefix="image-facts-bench-") as tmp:
        data = Path(tmp) / "data"
        start = time.perf_counter()
        setup(data, args.files)
        print(f"setup: {args.files} files committed with their header results in {time.perf_counter() - start:.1f} s")
        base = _child("--child", "baseline", "--data", str(data))
        applied = _child("--child", "apply", "--data", str(data), "--cap", str(args.cap))
    print(
        f"baseline: decoding every result {base['read_results_s']:.1f} s; rebuilding the plain file table "
        f"{base['plain_table_s']:.1f} s (RSS {base['rss_mib']:.0f} MiB)"
    )
    print(
        f"apply: {applied['seconds']:.1f} s for {applied['images']} images ({applied['nodes']} nodes in the graph), "
        f"peak RSS {applied['rss_mib']:.0f} MiB; "
        f"{applied['seconds'] / max(base['read_results_s'] + base['plain_table_s'], 1e-9):.2f}x the baseline's sum"
    )


if __name__ == "__main__":
    main()
