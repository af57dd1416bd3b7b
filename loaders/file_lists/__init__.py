"""Streaming readers of study file lists: one row per file, a path column and any number of attribute columns.

Formats: the PageTab file-list JSON (an array of ``{"path", "size", "attributes": [{"name", "value"}], "type"}``,
``filePath``/``fileName`` accepted for ``path``), the PageTab file-list TSV (first column ``Files``), plain TSV/CSV
with a header row naming a path column (``path``, ``Files``, ``file``, ``filename``, ``file_path``, any case) and an
optional size column (``size``, ``size_bytes``, ``size_in_bytes``), which covers the BioImage Archive's RO-Crate
``file_list.tsv``.

A list may have millions of rows: nothing here holds it in memory. JSON is read with ``ijson``, TSV/CSV with the
``csv`` module line by line, and the duplicate-path check of :func:`check_file_list` uses a temporary SQLite table
(bulk inserts, then one ``GROUP BY``: 1.3 M paths in ~2–3 s in ~30 MB, sorted or not; an in-memory set of
16-byte digests needed ~160 MB).

Line numbers: TSV/CSV rows carry the physical line where the row starts (a quoted value may span lines); JSON
rows carry their index in the array + 1. Cell values are stripped of surrounding white space; empty values are
left out of a row's attributes; empty cells past the header's last column are ignored (spreadsheets write them).
A path ending in ``/`` (or a JSON entry of ``"type": "directory"``) is a directory.

The package: :mod:`.rows` (rows, limits, paths and sizes), :mod:`.delimited` (TSV/CSV), :mod:`.json_rows`
(JSON), :mod:`.scan` (one pass over any format) and :mod:`.checks` (the duplicate-path check).
"""

from __future__ import annotations

import csv
import os
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, BinaryIO, TextIO

from loaders.file_lists.checks import DuplicateFinder
from loaders.file_lists.rows import (
    FORMATS,
    JSON_PATH_KEYS,
    MAX_COLUMNS,
    MAX_JSON_DEPTH,
    MAX_JSON_ENTRY_BYTES,
    MAX_JSON_NUMBER_DIGITS,
    MAX_LINE_BYTES,
    MAX_PATH_LENGTH,
    MAX_SIZE,
    PATH_COLUMNS,
    SIZE_COLUMNS,
    FileListError,
    FileListReport,
    FileRow,
    detect_format,
    label_of,
    normalise_path,
    parse_size,
    problem,
)
from loaders.file_lists.scan import Scan

__all__ = [
    "FORMATS",
    "JSON_PATH_KEYS",
    "MAX_COLUMNS",
    "MAX_JSON_DEPTH",
    "MAX_JSON_ENTRY_BYTES",
    "MAX_JSON_NUMBER_DIGITS",
    "MAX_LINE_BYTES",
    "MAX_PATH_LENGTH",
    "MAX_SIZE",
    "PATH_COLUMNS",
    "SIZE_COLUMNS",
    "FileListError",
    "FileListReport",
    "FileRow",
    "check_file_list",
    "detect_format",
    "iter_file_list",
    "normalise_path",
    "parse_size",
    "write_tsv",
]


def iter_file_list(source: str | os.PathLike | BinaryIO, *, name: str | None = None, fmt: str | None = None) -> Iterator[FileRow]:
    """Stream the rows of a file list (a path, or a binary stream which is read but not closed).

    Raises :class:`FileListError` at the first problem, naming file, line and field: unreadable or not UTF-8,
    not JSON / not an array, no path column, a row with the wrong number of columns, a bad path or size. It does
    not look for duplicate paths (:func:`check_file_list` does)."""
    label = label_of(source, name)

    def fail(problem: dict[str, Any]) -> None:
        raise FileListError(f"{label}, line {problem['line']}: {problem['message']}", [problem])

    return Scan(source, label, fmt, fail).rows()


def check_file_list(
    source: str | os.PathLike | BinaryIO,
    *,
    name: str | None = None,
    fmt: str | None = None,
    max_errors: int = 100,
    tmp_dir: str | os.PathLike | None = None,
) -> FileListReport:
    """Read a whole file list once: collect row problems (bad or duplicate path, bad size, wrong number of
    columns, …) and a summary. Problems that stop the reading (not JSON, no path column, …) raise
    :class:`FileListError` carrying the problems found before them. Duplicates are found in a temporary SQLite
    database under ``tmp_dir`` (default: the system's temporary folder)."""
    label = label_of(source, name)
    collected: list[dict[str, Any]] = []
    counts = {"problems": 0, "bad_rows": 0}
    last_line: list[int | None] = [None]

    def collect(found: dict[str, Any]) -> None:
        counts["problems"] += 1
        if found["line"] != last_line[0]:
            counts["bad_rows"] += 1
            last_line[0] = found["line"]
        if len(collected) < max_errors:
            collected.append(found)

    scan = Scan(source, label, fmt, collect)
    report = FileListReport(file=label, format="")
    with DuplicateFinder(tmp_dir) as duplicates:
        try:
            for row in scan.rows():
                if row.kind == "file":
                    report.files += 1
                else:
                    report.directories += 1
                if row.size is not None:
                    report.total_size += row.size
                duplicates.add(row.path, row.line)
        except FileListError as exc:
            raise FileListError(exc.message, collected + exc.errors) from None
        duplicate_problems, report.duplicates = duplicates.problems(label, max_errors)
    report.format = scan.format
    report.columns = list(scan.columns)
    report.rows = report.files + report.directories + counts["bad_rows"]
    report.error_count = counts["problems"] + report.duplicates
    report.errors = sorted(collected + duplicate_problems, key=lambda p: p["line"])[:max_errors]
    if report.error_count > len(report.errors):
        report.errors.append(
            problem(label, None, None, f"… and {report.error_count - len(report.errors)} more problem(s) not shown")
        )
    return report


def write_tsv(rows: Iterable[FileRow], out: TextIO, columns: Sequence[str]) -> int:
    """Write rows as a normalised TSV (``path``, ``size``, then ``columns``; directories end in ``/``; values with
    tabs, quotes or newlines quoted) that :func:`iter_file_list` reads back; returns the number of rows written.
    Attributes not in ``columns`` are left out. ``out`` should be opened with ``newline=""``."""
    names = list(columns)
    if len(set(names)) != len(names) or any(not c or c in ("path", "size") for c in names):
        raise ValueError(f"columns must be distinct, non-empty and other than 'path' and 'size': {names}")
    writer = csv.writer(out, delimiter="\t", lineterminator="\n")
    writer.writerow(["path", "size", *names])
    count = 0
    for row in rows:
        path = f"{row.path}/" if row.kind == "directory" else row.path
        attributes = row.attributes
        writer.writerow([path, "" if row.size is None else row.size, *(attributes.get(c, "") for c in names)])
        count += 1
    return count
