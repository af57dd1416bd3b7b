"""One pass over a file list, whatever its format: opened, its format told from its name and first bytes, read as
JSON or as delimited text."""

from __future__ import annotations

import io
import os
from collections.abc import Callable, Iterator
from typing import Any, BinaryIO

from loaders.file_lists.delimited import Rejoined, delimited_rows, text_lines
from loaders.file_lists.json_rows import json_rows
from loaders.file_lists.rows import BOM, BUFFER_BYTES, FORMATS, HEAD_BYTES, FileListError, FileRow, detect_format, problem


class Scan:
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
            raise FileListError(
                f"{label}: unknown file-list format {fmt!r} (one of {', '.join(FORMATS)})",
                [problem(label, None, None, f"unknown format {fmt!r}")],
            )
        self.source = source
        self.label = label
        self.format = fmt or ""
        self.report = report
        self.columns: list[str] = []  # attribute columns in order of first appearance
        self.known_columns: set[str] = set()

    def fatal(self, line: int | None, column: str | None, message: str) -> FileListError:
        where = f"{self.label}, line {line}" if line else self.label
        return FileListError(f"{where}: {message}", [problem(self.label, line, column, message)])

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

    def _head(self, stream: BinaryIO) -> bytes:
        """The first bytes, checked: readable, binary, not empty, not UTF-16."""
        try:
            head = stream.read(HEAD_BYTES)
        except OSError as exc:
            raise self.fatal(None, None, f"cannot read the file list: {exc}") from None
        if not isinstance(head, bytes):
            raise TypeError("a file list stream must be opened in binary mode")
        if not head.strip():
            raise self.fatal(None, None, "the file list is empty")
        if head.startswith((b"\xff\xfe", b"\xfe\xff")):
            raise self.fatal(1, None, "UTF-16 text; save the file list as UTF-8")
        return head

    def _rows(self, stream: BinaryIO) -> Iterator[FileRow]:
        head = self._head(stream)
        self.format = self.format or detect_format(self.label, head)
        if self.format == "json":
            head = head.removeprefix(BOM)
        body = io.BufferedReader(Rejoined(head, stream, lines=self.format != "json"), buffer_size=BUFFER_BYTES)
        if self.format != "json":
            yield from delimited_rows(self, text_lines(head, body), "\t" if self.format == "tsv" else ",")
            return
        first = head.lstrip()[:1]
        if first != b"[":
            opening = first.decode(errors="replace")
            raise self.fatal(1, None, f"a JSON file list must be an array of entries (it starts with {opening!r})")
        yield from json_rows(self, body)
