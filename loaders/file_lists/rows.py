"""What a file list holds: rows, the report of a check, the limits, and how paths and sizes are read."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Any

from catalog.errors import CatalogError
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
MAX_LINE_BYTES = 1 << 20

#: how much of a file list is read to tell its format; the read buffer
HEAD_BYTES = 64 * 1024
BUFFER_BYTES = MAX_LINE_BYTES
_FORBIDDEN_IN_PATH = re.compile(r"[\x00-\x1f\x7f\\]")
_DRIVE_LETTER = re.compile(r"^[A-Za-z]:/")
BOM = b"\xef\xbb\xbf"


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


def detect_format(name: str, head: bytes) -> str:
    """``"json"``, ``"tsv"`` or ``"csv"`` from a file's name and its first bytes (a ``.json`` name or a leading
    ``[``/``{`` means JSON; then ``.csv``/``.tsv``; else a header line with commas and no tab means CSV)."""
    extension = os.path.splitext(name or "")[1].lower()
    text = head.removeprefix(BOM).lstrip()
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


def label_of(source: object, name: str | None) -> str:
    """The name a file list is called by in messages: ``name``, else the file's or stream's base name."""
    if name:
        return name
    if isinstance(source, (str, os.PathLike)):
        return os.path.basename(os.fspath(source))
    stream_name = getattr(source, "name", None)
    return os.path.basename(stream_name) if isinstance(stream_name, str) else "file list"


def problem(file: str, line: int | None, column: str | None, message: str, value: Any = None) -> dict[str, Any]:
    """One problem of a file list, naming file, line and field (the value shown cut at 200 characters)."""
    found: dict[str, Any] = {"file": file, "line": line, "field": column, "message": message}
    if value is not None:
        found["value"] = value if len(str(value)) <= 200 else f"{str(value)[:200]}…"
    return found


def parse_size(value: Any) -> int | None:
    """A listed size in bytes (a whole JSON number, or ASCII digits), or None if it is not one from 0 to
    :data:`MAX_SIZE` (:func:`size_problem` says why)."""
    if isinstance(value, str):
        text = value.strip()
        if not (text.isdigit() and text.isascii()) or len(text.lstrip("0")) > len(str(MAX_SIZE)):
            return None
        value = int(text)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_SIZE:
        return None
    return value


def size_problem(raw: str) -> str:
    """Why a listed size is not one."""
    text = raw.strip()
    if text.startswith("-") and text[1:].strip().replace(".", "", 1).isdigit():
        return "size is negative"
    if text.isdigit() and text.isascii():
        return f"size is larger than {MAX_SIZE} bytes (2^63 - 1, the largest a file table holds)"
    return "size must be a whole number of bytes"
