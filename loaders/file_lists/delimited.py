"""TSV and CSV file lists, line by line: the header (a path column, an optional size column, attribute columns)
and one row per line (a quoted value may span lines), lines longer than :data:`MAX_LINE_BYTES` refused before
they are held whole."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, BinaryIO

from loaders.file_lists.rows import (
    MAX_COLUMNS,
    MAX_LINE_BYTES,
    PATH_COLUMNS,
    SIZE_COLUMNS,
    FileRow,
    normalise_path,
    parse_size,
    problem,
    size_problem,
)

if TYPE_CHECKING:
    from loaders.file_lists.scan import Scan


class Rejoined(io.RawIOBase):
    """A binary stream serving bytes already read (``head``) and then the rest of ``stream``; with ``lines``, reading
    on past :data:`MAX_LINE_BYTES` without a line end raises :class:`LineTooLong`, before the line is held whole."""

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
                raise LineTooLong
        buffer[: len(data)] = data
        return len(data)


class LineTooLong(Exception):
    """A line of a TSV/CSV file list over :data:`MAX_LINE_BYTES`: a single 500 MB line of tabs would otherwise be
    read whole and become a row of 500 M cells."""


def decoded_lines(body: BinaryIO) -> Iterator[str]:
    """The lines of a UTF-8 stream (a BOM dropped); UnicodeDecodeError at the first line that is not UTF-8."""
    lines = iter(body)
    for first in lines:
        yield first.decode("utf-8-sig")
        break
    yield from map(bytes.decode, lines)


class _Columns:
    """Where a delimited file list's path, size and attribute columns are, and how wide its rows are."""

    def __init__(self, scan: Scan, header_line: int, names: list[str]) -> None:
        for i, column in enumerate(names):
            if not column:
                raise scan.fatal(header_line, "header", f"column {i + 1} of the header has no name")
        seen: set[str] = set()
        for column in names:
            if column in seen:
                raise scan.fatal(header_line, column, f"column {column!r} appears twice in the header")
            seen.add(column)
        if len(names) > MAX_COLUMNS:
            raise scan.fatal(header_line, "header", f"more than {MAX_COLUMNS} columns")
        keys = [c.lower().replace(" ", "_").replace("-", "_") for c in names]
        path_index = next((i for i, k in enumerate(keys) if k in PATH_COLUMNS), None)
        if path_index is None:
            raise scan.fatal(
                header_line,
                "header",
                f"the header has no path column (one of Files, path, file, filename, file_path); it has: {', '.join(names)}",
            )
        self.header_line, self.width, self.path = header_line, len(names), path_index
        self.size = next((i for i, k in enumerate(keys) if k in SIZE_COLUMNS and i != path_index), None)
        self.path_name = names[path_index]
        self.size_name = names[self.size] if self.size is not None else None
        self.attributes = [(n, i) for i, n in enumerate(names) if i not in (path_index, self.size)]
        scan.columns = [n for n, _i in self.attributes]


def _header(scan: Scan, reader: Any) -> tuple[int, list[str]]:
    """(line, names) of the first non-empty row, trailing empty names dropped."""
    for cells in reader:
        names = [c.strip() for c in cells]
        while names and not names[-1]:
            names.pop()
        if names:
            return reader.line_num, names
    raise scan.fatal(None, None, "the file list has no header row")


def delimited_rows(scan: Scan, lines: Iterator[str], delimiter: str) -> Iterator[FileRow]:
    """The rows of a TSV/CSV file list; row problems go to ``scan.report``, those that stop the reading raise."""
    reader = csv.reader(lines, delimiter=delimiter, quotechar='"', strict=True)
    start = 1
    try:
        columns = _Columns(scan, *_header(scan, reader))
        start = reader.line_num + 1
        for cells in reader:
            line, start = start, reader.line_num + 1
            row = _row(scan, columns, line, cells)
            if row is not None:
                yield row
    except csv.Error as exc:
        raise scan.fatal(start, None, f'malformed row ({exc}); is a quote (") left open?') from None
    except LineTooLong:
        raise scan.fatal(reader.line_num + 1, None, f"a line longer than {MAX_LINE_BYTES} bytes") from None
    except UnicodeDecodeError:
        raise scan.fatal(reader.line_num + 1, None, "not UTF-8 text; save the file list as UTF-8") from None


def _row(scan: Scan, columns: _Columns, line: int, cells: list[str]) -> FileRow | None:
    """One line's row, or None (its problems reported; a blank line has none)."""
    width = columns.width
    if len(cells) != width and (len(cells) < width or any(c.strip() for c in cells[width:])):
        if any(c.strip() for c in cells):  # else a blank line
            scan.report(
                problem(
                    scan.label, line, None, f"row has {len(cells)} columns, the header (line {columns.header_line}) has {width}"
                )
            )
        return None
    raw_path = cells[columns.path].strip()
    if not raw_path:
        if any(c.strip() for c in cells):
            scan.report(problem(scan.label, line, columns.path_name, "no path given"))
        return None
    ok = True
    try:
        path, kind = normalise_path(raw_path)
    except ValueError as exc:
        scan.report(problem(scan.label, line, columns.path_name, str(exc), raw_path))
        ok = False
    size = None
    raw_size = cells[columns.size].strip() if columns.size is not None else ""
    if raw_size:
        size = parse_size(raw_size)
        if size is None:
            scan.report(problem(scan.label, line, columns.size_name, size_problem(raw_size), raw_size))
            ok = False
    if not ok:
        return None
    return FileRow(line, path, size, {c: v for c, i in columns.attributes if (v := cells[i].strip())}, kind)


def text_lines(head: bytes, body: BinaryIO) -> Iterator[str]:
    """The lines of a delimited file list's body (classic Mac line ends split by a text wrapper)."""
    if b"\r" in head and b"\n" not in head:
        return io.TextIOWrapper(body, encoding="utf-8-sig", newline="")
    return decoded_lines(body)
