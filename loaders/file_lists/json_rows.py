"""PageTab file-list JSON: an array of ``{"path", "size", "attributes": [{"name", "value"}], "type"}`` entries
(``filePath``/``fileName`` accepted for ``path``), streamed with ``ijson`` within depth, entry and number limits."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from typing import TYPE_CHECKING, Any, BinaryIO

import ijson

from catalog.json_shape import BoundedJsonStream, JsonShapeError
from loaders.file_lists.rows import (
    JSON_PATH_KEYS,
    MAX_COLUMNS,
    MAX_JSON_DEPTH,
    MAX_JSON_ENTRY_BYTES,
    MAX_JSON_NUMBER_DIGITS,
    FileRow,
    normalise_path,
    parse_size,
    problem,
    size_problem,
)

if TYPE_CHECKING:
    from loaders.file_lists.scan import Scan


def json_rows(scan: Scan, body: BinaryIO) -> Iterator[FileRow]:
    """The entries of a JSON file list as rows; entry problems go to ``scan.report``, those that stop the reading
    raise (not JSON, a truncated file, an entry past the limits)."""
    line = 0
    bounded = BoundedJsonStream(
        body, max_depth=MAX_JSON_DEPTH, max_entry_bytes=MAX_JSON_ENTRY_BYTES, max_digits=MAX_JSON_NUMBER_DIGITS
    )
    try:
        for line, item in enumerate(ijson.items(bounded, "item"), 1):
            row = _json_row(scan, line, item)
            if row is not None:
                yield row
    except JsonShapeError as exc:
        raise scan.fatal(
            line + 1, None, f"{exc} (in entry {line + 1} or soon after); the file list is not read further"
        ) from None
    except ijson.JSONError as exc:
        detail = exc.args[0] if exc.args else exc
        if isinstance(detail, bytes):
            detail = detail.decode(errors="replace")
        detail = str(detail).splitlines()[0] if str(detail) else type(exc).__name__
        where = f"after entry {line}" if line else "at the start"
        raise scan.fatal(line + 1, None, f"not valid JSON {where} ({detail}); is the file complete?") from None


def _json_row(scan: Scan, line: int, item: Any) -> FileRow | None:
    if not isinstance(item, dict):
        scan.report(problem(scan.label, line, None, f"entry is not an object but {type(item).__name__}"))
        return None
    found = _path(scan, line, item)
    kind = _kind(scan, line, item.get("type"), found[1] if found else "file")
    size = item.get("size")
    if size is not None:
        size = parse_size(size)
        if size is None:
            scan.report(problem(scan.label, line, "size", size_problem(str(item["size"])), item["size"]))
    attributes = _json_attributes(scan, line, item.get("attributes"))
    if found is None or kind is None or (item.get("size") is not None and size is None) or attributes is None:
        return None
    if not _add_columns(scan, line, attributes):
        return None
    return FileRow(line, found[0], size, attributes, kind)


def _path(scan: Scan, line: int, item: dict[str, Any]) -> tuple[str, str] | None:
    """(path, kind) of an entry, or None (reported)."""
    key = next((k for k in JSON_PATH_KEYS if k in item), "path")
    raw_path = item.get(key)
    if not isinstance(raw_path, str) or not raw_path.strip():
        scan.report(problem(scan.label, line, key, 'no path given ("path", "filePath" or "fileName")'))
        return None
    try:
        return normalise_path(raw_path.strip())
    except ValueError as exc:
        scan.report(problem(scan.label, line, key, str(exc), raw_path))
        return None


def _kind(scan: Scan, line: int, declared: Any, kind: str) -> str | None:
    """The kind an entry's ``type`` declares (else the one its path gives), or None (reported)."""
    if declared is None:
        return kind
    if isinstance(declared, str) and declared.strip().lower() in ("file", "directory"):
        return declared.strip().lower()
    scan.report(problem(scan.label, line, "type", "type must be 'file' or 'directory'", declared))
    return None


def _json_attributes(scan: Scan, line: int, given: Any) -> dict[str, str] | None:
    if given is None:
        return {}
    if not isinstance(given, list):
        scan.report(problem(scan.label, line, "attributes", "attributes must be a list of {name, value}"))
        return None
    attributes: dict[str, str] = {}
    names: set[str] = set()
    ok = True
    for attribute in given:
        name = attribute.get("name") if isinstance(attribute, dict) else None
        if not isinstance(name, str) or not name.strip():
            scan.report(problem(scan.label, line, "attributes", "an attribute has no name"))
            ok = False
            continue
        name = name.strip()
        value = _text(attribute.get("value"))
        if value is None:
            scan.report(problem(scan.label, line, name, "attribute value must be text or a number", attribute.get("value")))
            ok = False
        elif name in names:
            scan.report(problem(scan.label, line, name, f"attribute {name!r} given twice"))
            ok = False
        elif value:
            attributes[name] = value
        names.add(name)
    return attributes if ok else None


def _add_columns(scan: Scan, line: int, attributes: dict[str, str]) -> bool:
    """Note the attribute names of a valid row; False (and a problem) past :data:`MAX_COLUMNS` names."""
    for name in attributes:
        if name not in scan.known_columns:
            if len(scan.columns) >= MAX_COLUMNS:
                scan.report(problem(scan.label, line, name, f"more than {MAX_COLUMNS} different attribute names"))
                return False
            scan.known_columns.add(name)
            scan.columns.append(name)
    return True


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
