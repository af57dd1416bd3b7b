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
"""
from __future__ import annotations

import csv
import io
import os
import re
import sqlite3
import tempfile
from dataclasses import dataclass, field
from decimal import Decimal
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, BinaryIO, TextIO

import ijson

from catalog.errors import CatalogError
from catalog.json_shape import BoundedJsonStream, JsonShapeError
from catalog.records import MAX_DEPTH

#: header names (compared lower-cased, spaces and hyphens as ``_``) of the path column; the first match wins
PATH_COLUMNS = ("path", "files", "file", "filename", "file_name", "file_path", "filepath")
#: header names of the size column (bytes); the first match other than the path column wins
SIZE_COLUMNS = ("size", "size_bytes", "size_in_bytes", "file_size", "bytes")
#: keys naming the path of a JSON entry, in order of preference
JSON_PATH_KEYS = ("path", "filePath", "fileName")
FORMATS = ("json", "tsv", "csv")
MAX_COLUMNS = 1000
MAX_PATH_LENGTH = 4096
#: the largest size a row may give: a file table keeps sizes as SQLite INTEGERs (signed 64-bit)
MAX_SIZE = 2**63 - 1
#: a JSON file list: the deepest nesting (the array counts), the longest entry and the longest number read
MAX_JSON_DEPTH = MAX_DEPTH
MAX_JSON_ENTRY_BYTES = 1 << 20
MAX_JSON_NUMBER_DIGITS = 100
#: the longest line of a TSV/CSV file list
MAX_LINE_BYTES = _BUFFER_BYTES = 1 << 20

_HEAD_BYTES = 64 * 1024
_FORBIDDEN_IN_PATH = re.compile(r"[\x00-\x1f\x7f\\]")
_DRIVE_LETTER = re.compile(r"^[A-Za-z]:/")
_BOM = b"\xef\xbb\xbf"


class FileListError(CatalogError):
    """A file list that cannot be read; ``errors`` name ``file``, ``line``, ``field`` and ``message``."""

    status = 422
    code = "invalid_file_list"


@dataclass(frozen=True, slots=True)
class FileRow:
    """One row of a file list."""

    line: int
    path: str
    size: int | None
    attributes: dict[str, str]
    kind: str = "file"


@dataclass
class FileListReport:
    """What :func:`check_file_list` found: a summary and the first ``max_errors`` problems (in line order)."""

    file: str
    format: str
    rows: int = 0  # data rows read, valid or not
    files: int = 0
    directories: int = 0
    columns: list[str] = field(default_factory=list)  # attribute columns, in order of first appearance
    total_size: int = 0  # sum of the sizes given
    duplicates: int = 0  # rows repeating the path of an earlier row
    error_count: int = 0  # all problems found, shown or not
    errors: list[dict[str, Any]] = field(default_factory=list)

    @property
    def valid(self) -> bool:
        return self.error_count == 0


# ----------------------------------------------------------------------------- public functions


def detect_format(name: str, head: bytes) -> str:
    """``"json"``, ``"tsv"`` or ``"csv"`` from a file's name and its first bytes (a ``.json`` name or a leading
    ``[``/``{`` means JSON; then ``.csv``/``.tsv``; else a header line with commas and no tab means CSV)."""
    extension = os.path.splitext(name or "")[1].lower()
    text = head.removeprefix(_BOM).lstrip()
    if extension == ".json" or text[:1] in (b"[", b"{"):
        return "json"
    if extension == ".csv":
        return "csv"
    if extension in (".tsv", ".tab", ".txt"):
        return "tsv"
    first_line = text.split(b"\n", 1)[0]
    return "csv" if b"," in first_line and b"\t" not in first_line else "tsv"


def normalise_path(raw: str) -> tuple[str, str]:
    """``(path, kind)`` of a listed path: POSIX, relative, ``./`` stripped; a trailing ``/`` makes it a directory.

    Raises ValueError saying what is wrong (empty, absolute, ``..``, empty or ``.`` segments, backslashes,
    control characters, longer than :data:`MAX_PATH_LENGTH`)."""
    if (
        raw[:1] not in ("", ".", "/")
        and "/." not in raw
        and "//" not in raw
        and raw[-1] != "/"
        and raw[1:2] != ":"
        and len(raw) <= MAX_PATH_LENGTH
        and raw.isprintable()
        and "\\" not in raw
    ):
        return raw, "file"  # the common case, none of the checks below can fail
    path = raw
    while path.startswith("./"):
        path = path[2:]
    if not path:
        raise ValueError("empty path")
    if path.startswith("/") or _DRIVE_LETTER.match(path):
        raise ValueError("absolute path; give the path relative to the study's top folder")
    bad = _FORBIDDEN_IN_PATH.search(path)
    if bad:
        if bad.group() == "\\":
            raise ValueError("backslash in path; separate folders with '/'")
        raise ValueError(f"control character {bad.group()!r} in path")
    kind = "file"
    if path.endswith("/"):
        path, kind = path[:-1], "directory"
    parts = path.split("/")
    if ".." in parts:
        raise ValueError("'..' in path; paths must stay inside the study")
    if "" in parts or "." in parts:
        raise ValueError("empty or '.' folder name in path")
    if len(path) > MAX_PATH_LENGTH:
        raise ValueError(f"path longer than {MAX_PATH_LENGTH} characters")
    return path, kind


def iter_file_list(
    source: str | os.PathLike | BinaryIO, *, name: str | None = None, fmt: str | None = None
) -> Iterator[FileRow]:
    """Stream the rows of a file list (a path, or a binary stream which is read but not closed).

    Raises :class:`FileListError` at the first problem, naming file, line and field: unreadable or not UTF-8,
    not JSON / not an array, no path column, a row with the wrong number of columns, a bad path or size. It does
    not look for duplicate paths (:func:`check_file_list` does)."""
    label = _label(source, name)

    def fail(problem: dict[str, Any]) -> None:
        raise FileListError(f"{label}, line {problem['line']}: {problem['message']}", [problem])

    return _Scan(source, label, fmt, fail).rows()


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
    label = _label(source, name)
    collected: list[dict[str, Any]] = []
    state = {"count": 0, "bad_rows": 0, "last_line": None}

    def collect(problem: dict[str, Any]) -> None:
        state["count"] += 1
        if problem["line"] != state["last_line"]:
            state["bad_rows"] += 1
            state["last_line"] = problem["line"]
        if len(collected) < max_errors:
            collected.append(problem)

    scan = _Scan(source, label, fmt, collect)
    report = FileListReport(file=label, format="")
    with _DuplicateFinder(tmp_dir) as duplicates:
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
    report.rows = report.files + report.directories + state["bad_rows"]
    report.error_count = state["count"] + report.duplicates
    report.errors = sorted(collected + duplicate_problems, key=lambda p: p["line"])[:max_errors]
    if report.error_count > len(report.errors):
        report.errors.append(
            _problem(label, None, None, f"… and {report.error_count - len(report.errors)} more problem(s) not shown")
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


# ----------------------------------------------------------------------------- reading


def _label(source: object, name: str | None) -> str:
    if name:
        return name
    if isinstance(source, (str, os.PathLike)):
        return os.path.basename(os.fspath(source))
    stream_name = getattr(source, "name", None)
    return os.path.basename(stream_name) if isinstance(stream_name, str) else "file list"


def _problem(file: str, line: int | None, column: str | None, message: str, value: Any = None) -> dict[str, Any]:
    problem: dict[str, Any] = {"file": file, "line": line, "field": column, "message": message}
    if value is not None:
        problem["value"] = value if len(str(value)) <= 200 else f"{str(value)[:200]}…"
    return problem


class _Rejoined(io.RawIOBase):
    """A binary stream serving bytes already read (``head``) and then the rest of ``stream``; with ``lines``, reading
    on past :data:`MAX_LINE_BYTES` without a line end raises :class:`_LineTooLong`, before the line is held whole."""

    def __init__(self, head: bytes, stream: BinaryIO, *, lines: bool = False) -> None:
        super().__init__()
        self._head = memoryview(head)
        self._stream = stream
        self._lines = lines
        self._line_bytes = len(head) - max(head.rfind(b"\n"), head.rfind(b"\r")) - 1  # of the line read last

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self._head:
            n = min(len(buffer), len(self._head))
            buffer[:n] = self._head[:n]
            self._head = self._head[n:]
            return n
        data = self._stream.read(len(buffer))
        if self._lines:
            end = max(data.rfind(b"\n"), data.rfind(b"\r"))
            self._line_bytes = self._line_bytes + len(data) if end < 0 else len(data) - end - 1
            if self._line_bytes > MAX_LINE_BYTES:
                raise _LineTooLong
        buffer[: len(data)] = data
        return len(data)


class _Scan:
    """One pass over a file list: yields valid rows, hands row problems to ``report`` (the row is then skipped),
    raises :class:`FileListError` for problems that stop the reading."""

    def __init__(
        self,
        source: str | os.PathLike | BinaryIO,
        label: str,
        fmt: str | None,
        report: Callable[[dict[str, Any]], None],
    ) -> None:
        if fmt is not None and fmt not in FORMATS:
            raise FileListError(f"{label}: unknown file-list format {fmt!r} (one of {', '.join(FORMATS)})",
                                [_problem(label, None, None, f"unknown format {fmt!r}")])
        self.source = source
        self.label = label
        self.format = fmt or ""
        self.report = report
        self.columns: list[str] = []  # attribute columns in order of first appearance
        self._known_columns: set[str] = set()

    def fatal(self, line: int | None, column: str | None, message: str) -> FileListError:
        where = f"{self.label}, line {line}" if line else self.label
        return FileListError(f"{where}: {message}", [_problem(self.label, line, column, message)])

    def rows(self) -> Iterator[FileRow]:
        if isinstance(self.source, (str, os.PathLike)):
            try:
                stream = open(self.source, "rb")  # noqa: SIM115 - closed below, also when the generator is closed
            except OSError as exc:
                raise self.fatal(None, None, f"cannot read the file list: {exc.strerror or exc}") from None
            with stream:
                yield from self._rows(stream)
        else:
            yield from self._rows(self.source)

    def _rows(self, stream: BinaryIO) -> Iterator[FileRow]:
        try:
            head = stream.read(_HEAD_BYTES)
        except OSError as exc:
            raise self.fatal(None, None, f"cannot read the file list: {exc}") from None
        if not isinstance(head, bytes):
            raise TypeError("a file list stream must be opened in binary mode")
        if not head.strip():
            raise self.fatal(None, None, "the file list is empty")
        if head.startswith((b"\xff\xfe", b"\xfe\xff")):
            raise self.fatal(1, None, "UTF-16 text; save the file list as UTF-8")
        self.format = self.format or detect_format(self.label, head)
        if self.format == "json":
            head = head.removeprefix(_BOM)
        body = io.BufferedReader(_Rejoined(head, stream, lines=self.format != "json"), buffer_size=_BUFFER_BYTES)
        if self.format == "json":
            first = head.lstrip()[:1]
            if first != b"[":
                opening = first.decode(errors="replace")
                raise self.fatal(1, None, f"a JSON file list must be an array of entries (it starts with {opening!r})")
            yield from self._json_rows(body)
        else:
            if b"\r" in head and b"\n" not in head:  # classic Mac line ends: let TextIOWrapper split them
                lines: Iterator[str] = io.TextIOWrapper(body, encoding="utf-8-sig", newline="")
            else:
                lines = _decoded_lines(body)
            yield from self._delimited_rows(lines, "\t" if self.format == "tsv" else ",")

    # ------------------------------------------------------------------ TSV / CSV

    def _header(self, reader: Any) -> tuple[int, list[str]]:
        """(line, names) of the first non-empty row, trailing empty names dropped."""
        for cells in reader:
            names = [c.strip() for c in cells]
            while names and not names[-1]:
                names.pop()
            if names:
                return reader.line_num, names
        raise self.fatal(None, None, "the file list has no header row")

    def _delimited_rows(self, lines: Iterator[str], delimiter: str) -> Iterator[FileRow]:
        reader = csv.reader(lines, delimiter=delimiter, quotechar='"', strict=True)
        start = 1
        try:
            header_line, names = self._header(reader)
            path_index, size_index = self._columns(header_line, names)
            attribute_columns = [(n, i) for i, n in enumerate(names) if i not in (path_index, size_index)]
            path_column = names[path_index]
            size_column = names[size_index] if size_index is not None else None
            width = len(names)
            report, label = self.report, self.label
            start = reader.line_num + 1
            for cells in reader:
                line, start = start, reader.line_num + 1
                if len(cells) != width and (len(cells) < width or any(c.strip() for c in cells[width:])):
                    if any(c.strip() for c in cells):  # else a blank line
                        message = f"row has {len(cells)} columns, the header (line {header_line}) has {width}"
                        report(_problem(label, line, None, message))
                    continue
                raw_path = cells[path_index].strip()
                if not raw_path:
                    if any(c.strip() for c in cells):
                        report(_problem(label, line, path_column, "no path given"))
                    continue
                ok = True
                try:
                    path, kind = normalise_path(raw_path)
                except ValueError as exc:
                    report(_problem(label, line, path_column, str(exc), raw_path))
                    ok = False
                size = None
                if size_index is not None:
                    raw_size = cells[size_index].strip()
                    if raw_size:
                        size = parse_size(raw_size)
                        if size is None:
                            report(_problem(label, line, size_column, _size_problem(raw_size), raw_size))
                            ok = False
                if ok:
                    attributes = {c: v for c, i in attribute_columns if (v := cells[i].strip())}
                    yield FileRow(line, path, size, attributes, kind)
        except csv.Error as exc:
            raise self.fatal(start, None, f"malformed row ({exc}); is a quote (\") left open?") from None
        except _LineTooLong:
            raise self.fatal(reader.line_num + 1, None, f"a line longer than {MAX_LINE_BYTES} bytes") from None
        except UnicodeDecodeError:
            raise self.fatal(reader.line_num + 1, None, "not UTF-8 text; save the file list as UTF-8") from None

    def _columns(self, header_line: int, names: list[str]) -> tuple[int, int | None]:
        """Indexes of the path and size columns; the attribute columns go to ``self.columns``."""
        for i, column in enumerate(names):
            if not column:
                raise self.fatal(header_line, "header", f"column {i + 1} of the header has no name")
        seen: set[str] = set()
        for column in names:
            if column in seen:
                raise self.fatal(header_line, column, f"column {column!r} appears twice in the header")
            seen.add(column)
        if len(names) > MAX_COLUMNS:
            raise self.fatal(header_line, "header", f"more than {MAX_COLUMNS} columns")
        keys = [c.lower().replace(" ", "_").replace("-", "_") for c in names]
        path_index = next((i for i, k in enumerate(keys) if k in PATH_COLUMNS), None)
        if path_index is None:
            raise self.fatal(
                header_line,
                "header",
                "the header has no path column (one of Files, path, file, filename, file_path);"
                f" it has: {', '.join(names)}",
            )
        size_index = next((i for i, k in enumerate(keys) if k in SIZE_COLUMNS and i != path_index), None)
        self.columns = [c for i, c in enumerate(names) if i not in (path_index, size_index)]
        return path_index, size_index

    # ------------------------------------------------------------------ JSON

    def _json_rows(self, body: BinaryIO) -> Iterator[FileRow]:
        line = 0
        bounded = BoundedJsonStream(
            body, max_depth=MAX_JSON_DEPTH, max_entry_bytes=MAX_JSON_ENTRY_BYTES, max_digits=MAX_JSON_NUMBER_DIGITS
        )
        try:
            for line, item in enumerate(ijson.items(bounded, "item"), 1):
                row = self._json_row(line, item)
                if row is not None:
                    yield row
        except JsonShapeError as exc:
            raise self.fatal(line + 1, None, f"{exc} (in entry {line + 1} or soon after); the file list is not read further") from None
        except ijson.JSONError as exc:
            detail = exc.args[0] if exc.args else exc
            if isinstance(detail, bytes):
                detail = detail.decode(errors="replace")
            detail = str(detail).splitlines()[0] if str(detail) else type(exc).__name__
            where = f"after entry {line}" if line else "at the start"
            raise self.fatal(line + 1, None, f"not valid JSON {where} ({detail}); is the file complete?") from None

    def _json_row(self, line: int, item: Any) -> FileRow | None:
        report, label = self.report, self.label
        if not isinstance(item, dict):
            report(_problem(label, line, None, f"entry is not an object but {type(item).__name__}"))
            return None
        ok = True
        key = next((k for k in JSON_PATH_KEYS if k in item), "path")
        raw_path = item.get(key)
        path, kind = "", "file"
        if not isinstance(raw_path, str) or not raw_path.strip():
            report(_problem(label, line, key, "no path given (\"path\", \"filePath\" or \"fileName\")"))
            ok = False
        else:
            try:
                path, kind = normalise_path(raw_path.strip())
            except ValueError as exc:
                report(_problem(label, line, key, str(exc), raw_path))
                ok = False
        declared = item.get("type")
        if declared is not None:
            if isinstance(declared, str) and declared.strip().lower() in ("file", "directory"):
                kind = declared.strip().lower()
            else:
                report(_problem(label, line, "type", "type must be 'file' or 'directory'", declared))
                ok = False
        size = item.get("size")
        if size is not None:
            size = parse_size(size)
            if size is None:
                report(_problem(label, line, "size", _size_problem(str(item["size"])), item["size"]))
                ok = False
        attributes = self._json_attributes(line, item.get("attributes"))
        if attributes is None or not ok or not self._add_columns(line, attributes):
            return None
        return FileRow(line, path, size, attributes, kind)

    def _json_attributes(self, line: int, given: Any) -> dict[str, str] | None:
        report, label = self.report, self.label
        if given is None:
            return {}
        if not isinstance(given, list):
            report(_problem(label, line, "attributes", "attributes must be a list of {name, value}"))
            return None
        attributes: dict[str, str] = {}
        names: set[str] = set()
        ok = True
        for attribute in given:
            name = attribute.get("name") if isinstance(attribute, dict) else None
            if not isinstance(name, str) or not name.strip():
                report(_problem(label, line, "attributes", "an attribute has no name"))
                ok = False
                continue
            name = name.strip()
            value = _text(attribute.get("value"))
            if value is None:
                report(_problem(label, line, name, "attribute value must be text or a number", attribute.get("value")))
                ok = False
            elif name in names:
                report(_problem(label, line, name, f"attribute {name!r} given twice"))
                ok = False
            elif value:
                attributes[name] = value
            names.add(name)
        return attributes if ok else None

    def _add_columns(self, line: int, attributes: dict[str, str]) -> bool:
        """Note the attribute names of a valid row; False (and a problem) past :data:`MAX_COLUMNS` names."""
        for name in attributes:
            if name not in self._known_columns:
                if len(self.columns) >= MAX_COLUMNS:
                    self.report(_problem(self.label, line, name, f"more than {MAX_COLUMNS} different attribute names"))
                    return False
                self._known_columns.add(name)
                self.columns.append(name)
        return True


class _LineTooLong(Exception):
    """A line of a TSV/CSV file list over :data:`MAX_LINE_BYTES`: a single 500 MB line of tabs would otherwise be
    read whole and become a row of 500 M cells."""


def _decoded_lines(body: BinaryIO) -> Iterator[str]:
    """The lines of a UTF-8 stream (a BOM dropped); UnicodeDecodeError at the first line that is not UTF-8."""
    lines = iter(body)
    for first in lines:
        yield first.decode("utf-8-sig")
        break
    yield from map(bytes.decode, lines)


def _text(value: Any) -> str | None:
    """An attribute value as stripped text ('' for null), or None if it is not a scalar."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, Decimal)):
        return str(value)
    return None


def parse_size(value: Any) -> int | None:
    """A listed size in bytes (a whole JSON number, or ASCII digits), or None if it is not one from 0 to
    :data:`MAX_SIZE` (:func:`_size_problem` says why)."""
    if isinstance(value, str):
        text = value.strip()
        if not (text.isdigit() and text.isascii()) or len(text.lstrip("0")) > len(str(MAX_SIZE)):
            return None
        value = int(text)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_SIZE:
        return None
    return value


def _size_problem(raw: str) -> str:
    text = raw.strip()
    if text.startswith("-") and text[1:].strip().replace(".", "", 1).isdigit():
        return "size is negative"
    if text.isdigit() and text.isascii():
        return f"size is larger than {MAX_SIZE} bytes (2^63 - 1, the largest a file table holds)"
    return "size must be a whole number of bytes"


# ----------------------------------------------------------------------------- duplicate paths


class _DuplicateFinder:
    """Paths seen so far, on disk: bulk inserts into a temporary SQLite table, one ``GROUP BY`` at the end."""

    _BATCH = 50_000

    def __init__(self, tmp_dir: str | os.PathLike | None) -> None:
        self._tmp_dir = tmp_dir
        self._batch: list[tuple[str, int]] = []

    def __enter__(self) -> _DuplicateFinder:
        self._folder = tempfile.TemporaryDirectory(dir=self._tmp_dir, prefix="file-list-")
        self._db = sqlite3.connect(os.path.join(self._folder.name, "paths.sqlite"))
        self._db.executescript(
            "PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF;"
            " CREATE TABLE seen (path TEXT NOT NULL, line INTEGER NOT NULL);"
        )
        return self

    def __exit__(self, *exc: object) -> None:
        self._db.close()
        self._folder.cleanup()

    def add(self, path: str, line: int) -> None:
        self._batch.append((path, line))
        if len(self._batch) >= self._BATCH:
            self._flush()

    def _flush(self) -> None:
        self._db.executemany("INSERT INTO seen VALUES (?, ?)", self._batch)
        self._batch.clear()

    def problems(self, label: str, limit: int) -> tuple[list[dict[str, Any]], int]:
        """(the first ``limit`` duplicate rows as problems, in line order; how many rows repeat a path)."""
        self._flush()
        db = self._db
        db.execute(
            "CREATE TABLE repeated AS"
            " SELECT path, min(line) AS first, count(*) AS n FROM seen GROUP BY path HAVING n > 1"
        )
        count = db.execute("SELECT coalesce(sum(n - 1), 0) FROM repeated").fetchone()[0]
        if not count:
            return [], 0
        rows = db.execute(
            "SELECT s.line, s.path, r.first FROM seen AS s JOIN repeated AS r ON r.path = s.path"
            " WHERE s.line > r.first ORDER BY s.line LIMIT ?",
            (limit,),
        )
        found = []
        for line, path, first in rows:
            problem = _problem(label, line, "path", f"duplicate path {path!r}, first on line {first}", path)
            found.append(problem | {"other_line": first})
        return found, count
