"""Throughput and memory of the file-list readers against the raw parsers they are built on.

    cd /work/main && /work/venv/bin/python -m benchmarks.file_list_bench [ROWS] [--dir FOLDER]

Writes a screen-like file list of ROWS rows (default 1.3 M: Plate/Well/Field/Channel/Compound/Concentration) as
a TSV and as PageTab JSON, then reads each in a fresh process and prints rows/s, peak RSS and the ratio to the
baseline (``csv.reader`` counting the TSV's rows; ``ijson.items`` over the JSON): ``iter_file_list`` and
``check_file_list`` (which adds the duplicate-path check and the summary).
"""

from __future__ import annotations

import argparse
import csv
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CHANNELS = ("DAPI", "GFP", "RFP", "Cy5")
HEADER = ("Files", "size", "Plate", "Well", "Field", "Channel", "Compound", "Concentration")


def screen_rows(n: int):
    """(path, size, plate, well, field, channel, compound, concentration) of a 384-well, 9-field, 4-channel screen."""
    for i in range(n):
        plate, rest = divmod(i, 384 * 9 * 4)
        well_index, rest = divmod(rest, 9 * 4)
        field, channel = divmod(rest, 4)
        well = f"{chr(65 + well_index // 24)}{well_index % 24 + 1:02d}"
        compound = f"CMPD-{(plate * 384 + well_index) % 5000:05d}"
        yield (
            f"plates/P{plate + 1:04d}/{well}/{well}_f{field + 1:02d}_{CHANNELS[channel]}.tiff",
            2_000_000 + i % 100_000,
            f"P{plate + 1:04d}",
            well,
            str(field + 1),
            CHANNELS[channel],
            compound,
            f"{(well_index % 8) * 1.25:g} uM",
        )


def write_tsv(path: Path, n: int) -> None:
    with open(path, "w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out, delimiter="\t", lineterminator="\n")
        writer.writerow(HEADER)
        writer.writerows(screen_rows(n))


def write_json(path: Path, n: int) -> None:
    with open(path, "w", encoding="utf-8") as out:
        out.write("[\n")
        for i, (file_path, size, *values) in enumerate(screen_rows(n)):
            entry = {
                "path": file_path,
                "size": size,
                "attributes": [{"name": name, "value": value} for name, value in zip(HEADER[2:], values, strict=True)],
                "type": "file",
            }
            out.write(("" if i == 0 else ",\n") + json.dumps(entry))
        out.write("\n]\n")


# ----------------------------------------------------------------------------- one measurement (child process)


def measure(kind: str, path: str) -> dict[str, float]:
    """Read ``path`` one way; rows, seconds and this process's peak RSS."""
    start = time.perf_counter()
    if kind == "csv.reader":
        with open(path, newline="", encoding="utf-8") as stream:
            rows = sum(1 for _ in csv.reader(stream, delimiter="\t")) - 1
    elif kind == "ijson.items":
        import ijson

        with open(path, "rb") as stream:
            rows = sum(1 for _ in ijson.items(stream, "item"))
    elif kind == "iter_file_list":
        from loaders.file_lists import iter_file_list

        rows = sum(1 for _ in iter_file_list(path))
    elif kind == "check_file_list":
        from loaders.file_lists import check_file_list

        report = check_file_list(path, tmp_dir=str(Path(path).parent))
        assert report.valid, report.errors[:3]
        rows = report.rows
    else:
        raise SystemExit(f"unknown measurement {kind}")
    seconds = time.perf_counter() - start
    return {"rows": rows, "seconds": seconds, "rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def run_child(kind: str, path: Path) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, "-m", "benchmarks.file_list_bench", "--measure", kind, str(path)],
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(out.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("rows", nargs="?", type=int, default=1_300_000, help="rows per list (default 1300000)")
    parser.add_argument("--dir", type=Path, default=None, help="work folder (default: a temporary one)")
    parser.add_argument("--measure", nargs=2, metavar=("KIND", "PATH"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(*args.measure)))
        return
    with tempfile.TemporaryDirectory(dir=args.dir, prefix="file-list-bench-") as folder:
        tsv, js = Path(folder) / "screen.tsv", Path(folder) / "screen.json"
        for path, writer in ((tsv, write_tsv), (js, write_json)):
            start = time.perf_counter()
            writer(path, args.rows)
            seconds = time.perf_counter() - start
            print(f"wrote {path.name}: {args.rows:,} rows, {path.stat().st_size / 2**20:.0f} MiB in {seconds:.1f} s")
        idle = run_child("csv.reader", _tiny(Path(folder)))
        print(f"python alone: peak RSS {idle['rss_mib']:.0f} MiB")
        print(f"{'file':12} {'reader':16} {'rows':>10} {'s':>7} {'rows/s':>10} {'peak RSS':>9} {'time ratio':>10}")
        for path, baseline in ((tsv, "csv.reader"), (js, "ijson.items")):
            base = None
            for kind in (baseline, "iter_file_list", "check_file_list"):
                result = run_child(kind, path)
                assert result["rows"] == args.rows, result
                base = base or result
                print(
                    f"{path.name:12} {kind:16} {result['rows']:>10,} {result['seconds']:>7.2f}"
                    f" {result['rows'] / result['seconds']:>10,.0f} {result['rss_mib']:>6.0f} MiB"
                    f" {result['seconds'] / base['seconds']:>9.2f}x"
                )


def _tiny(folder: Path) -> Path:
    path = folder / "tiny.tsv"
    path.write_text("Files\nx\n")
    return path


if __name__ == "__main__":
    main()
