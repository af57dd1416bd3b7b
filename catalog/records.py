"""Reading study metadata documents (JSON or YAML) within limits, remembering where each value was written.

:func:`read_document` is the one reader of depositor-written JSON/YAML (deposits over HTTP, the web form,
``bia validate``, ``bia deposit``, PageTab JSON, REMBI records). It refuses, with an error naming the document,
the line where known and the problem:

- a document over ``max_bytes`` (``BIA_MAX_METADATA_BYTES``, default 16 MiB), before decoding it;
- nesting deeper than :data:`MAX_DEPTH` levels of lists and mappings, measured without recursion before any
  parser builds the document (``json`` and PyYAML's composer recurse once per level);
- more than :data:`MAX_NODES` values (keys, scalars, lists and mappings), YAML aliases counted as what they
  expand to: a 600-byte YAML of nested anchors otherwise becomes tens of millions of items when walked.

JSON is read as JSON (a JSON text indented with tabs is not YAML); only text that is not JSON is read as YAML.
Dates and times are kept as the strings the depositor wrote (YAML would otherwise turn ``2024-01-15`` into a
``date`` and fail on ``2024-13-45`` before validation could say which field is wrong). Every value's line is
found on demand under its JSON-pointer-like location (``/authors/0/orcid``) so errors can name file, line and
field.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from catalog import json_shape
from catalog.errors import CatalogError, ValidationFailed

#: default of ``BIA_MAX_METADATA_BYTES``: the largest metadata document read
MAX_BYTES = 16 * 1024 * 1024
#: the deepest nesting of lists and mappings in a metadata document (real ones stay under 20)
MAX_DEPTH = 100
#: the most values a metadata document may hold (keys, scalars, lists and mappings; YAML aliases count as the
#: values they stand for)
MAX_NODES = 1_000_000

_BASE_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when PyYAML was built with it


class _StringDatesLoader(_BASE_LOADER):
    """A safe loader that leaves timestamps as strings."""


_StringDatesLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


@dataclass(frozen=True)
class DocumentLimits:
    """What :func:`read_document` accepts."""

    max_bytes: int = MAX_BYTES
    max_depth: int = MAX_DEPTH
    max_nodes: int = MAX_NODES


class MetadataLimitExceeded(CatalogError):
    """A metadata document nested too deeply or holding too many values."""

    status = 400
    code = "metadata_too_complex"


class MetadataTooLarge(MetadataLimitExceeded):
    """A metadata document over the size limit."""

    status = 413
    code = "metadata_too_large"


@dataclass
class RecordSource:
    """A parsed record and, on demand, the line (1-based) each location in it came from."""

    data: Any
    path: str
    index: Callable[[], dict[str, int]] = field(default=dict, repr=False)

    @functools.cached_property
    def lines(self) -> dict[str, int]:
        return self.index()

    def line_of(self, location: str) -> int | None:
        """The line of a location, or of its nearest enclosing one."""
        location = location.rstrip("/") or "/"
        while True:
            if location in self.lines:
                return self.lines[location]
            if location in ("", "/"):
                return self.lines.get("/")
            location = location.rsplit("/", 1)[0] or "/"


def read_document(
    data: bytes | str, name: str = "<record>", limits: DocumentLimits | None = None, *, allow_yaml: bool = True
) -> RecordSource:
    """Parse a JSON or YAML document (bytes are UTF-8, a BOM allowed) within ``limits``; YAML only if the text is
    not JSON and neither ``name`` ends in ``.json`` nor ``allow_yaml`` is False.

    Raises :class:`MetadataTooLarge`, :class:`MetadataLimitExceeded` or :class:`ValidationFailed` (not UTF-8,
    not JSON or YAML), each naming ``name``, the line where known and the problem."""
    limits = limits or DocumentLimits()
    text = decode_document(data, name, limits)
    source, json_error = _read_json(text, name, limits)
    if source is not None:
        return source
    assert json_error is not None
    if not allow_yaml or name.lower().endswith(".json"):
        raise json_error
    try:
        return _read_yaml(text, name, limits)
    except ValidationFailed:
        if text.lstrip()[:1] in ("{", "["):
            raise json_error from None  # meant as JSON: say what is wrong with it as JSON
        raise


def decode_document(data: bytes | str, name: str, limits: DocumentLimits) -> str:
    """The text of a document within ``limits.max_bytes`` (:class:`MetadataTooLarge` past them)."""
    size = len(data) if isinstance(data, bytes) else len(data.encode("utf-8", "surrogatepass"))
    if size > limits.max_bytes:
        raise metadata_too_large(name, size, limits.max_bytes)
    return _decode(data, name) if isinstance(data, bytes) else data.removeprefix("\ufeff")


def read_record(path: str | Path, limits: DocumentLimits | None = None) -> RecordSource:
    """Read a record file (``.json``, ``.yaml``, ``.yml``); at most ``limits.max_bytes`` of it are read."""
    path = Path(path)
    limits = limits or DocumentLimits()
    return read_document(read_limited(path, limits.max_bytes), str(path), limits)


def read_limited(path: str | Path, max_bytes: int) -> bytes:
    """The bytes of a metadata file, refused (:class:`MetadataTooLarge`) past ``max_bytes`` without reading on."""
    try:
        with open(path, "rb") as stream:
            data = stream.read(max_bytes + 1)
            if len(data) > max_bytes:
                stream.seek(0, 2)
                raise metadata_too_large(str(path), stream.tell(), max_bytes)
    except OSError as exc:
        raise ValidationFailed(
            f"{path}: cannot read the file: {exc.strerror or exc}", [{"file": str(path), "message": str(exc)}]
        ) from exc
    return data


def check_shape(data: Any, name: str, limits: DocumentLimits | None = None) -> None:
    """Refuse a document already built in Python (e.g. from PageTab TSV) nested deeper than ``limits.max_depth``
    or holding more than ``limits.max_nodes`` values; walks it without recursion."""
    limits = limits or DocumentLimits()
    pending = [(data, 1)]
    nodes = 0
    while pending:
        value, depth = pending.pop()
        nodes += 1
        if nodes > limits.max_nodes:
            raise _too_many(name, None, limits.max_nodes)
        if isinstance(value, dict):
            children: Any = value.values()
        elif isinstance(value, list):
            children = value
        else:
            continue
        if depth > limits.max_depth:
            raise _too_deep(name, None, limits.max_depth)
        pending.extend((child, depth + 1) for child in children)


# ----------------------------------------------------------------------------- JSON


def _read_json(text: str, name: str, limits: DocumentLimits) -> tuple[RecordSource | None, ValidationFailed | None]:
    """(the document, None) if ``text`` is JSON; (None, what is wrong with it as JSON) if not."""
    if text.lstrip()[:1] in ("{", "["):
        shape = json_shape.measure(text)
        if shape.depth > limits.max_depth:
            raise _too_deep(name, json_shape.line_deeper_than(text, limits.max_depth), limits.max_depth)
        if shape.values > limits.max_nodes:
            raise _too_many(name, None, limits.max_nodes)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        return None, ValidationFailed(
            f"{name}, line {exc.lineno}: not JSON ({exc.msg} at column {exc.colno})",
            [{"file": name, "line": exc.lineno, "message": f"not JSON: {exc.msg} at column {exc.colno}"}],
        )
    except (ValueError, RecursionError) as exc:  # an integer of over 4,300 digits; nesting the shape missed
        raise _unreadable_value(name, exc) from None
    return RecordSource(data=data, path=name, index=lambda: json_shape.value_lines(text)), None


# ----------------------------------------------------------------------------- YAML


def _read_yaml(text: str, name: str, limits: DocumentLimits) -> RecordSource:
    _check_yaml_shape(text, name, limits)
    loader = _StringDatesLoader(text)
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    except yaml.YAMLError as exc:
        raise _not_yaml(name, exc) from exc
    except ValueError as exc:  # an integer of over 4,300 digits
        raise _unreadable_value(name, exc) from None
    finally:
        loader.dispose()
    return RecordSource(data=data, path=name, index=lambda: _yaml_lines(node))


def _check_yaml_shape(text: str, name: str, limits: DocumentLimits) -> None:
    """Count depth and values (aliases as what they expand to) over the parser's events, stopping at the first
    one past a limit: nothing is composed, so neither aliases nor deep nesting cost memory or recursion."""
    frames: list[list[Any]] = []  # [values before this collection, its anchor, the deepest level inside it]
    expanded: dict[str, tuple[int, int]] = {}  # anchor: (values, levels) of the node it names
    values = deepest = 0
    try:
        for event in yaml.parse(text, Loader=_BASE_LOADER):
            depth = len(frames)
            if isinstance(event, yaml.AliasEvent):
                if any(frame[1] == event.anchor for frame in frames):
                    raise _limit_error(
                        MetadataLimitExceeded, name, _line_of(event), f"alias *{event.anchor} inside the node it names (a loop)"
                    )
                count, height = expanded.get(event.anchor or "", (1, 0))
                values += count
                deepest = depth + height
            elif isinstance(event, yaml.ScalarEvent):
                values += 1
                deepest = depth
                if event.anchor:
                    expanded[event.anchor] = (1, 0)
            elif isinstance(event, (yaml.SequenceStartEvent, yaml.MappingStartEvent)):
                values += 1
                deepest = depth + 1
                frames.append([values - 1, event.anchor, deepest])
            elif isinstance(event, (yaml.SequenceEndEvent, yaml.MappingEndEvent)):
                before, anchor, inner = frames.pop()
                if anchor:
                    expanded[anchor] = (values - before, inner - depth + 1)
                if frames:
                    frames[-1][2] = max(frames[-1][2], inner)
                continue
            else:
                continue
            if frames:
                frames[-1][2] = max(frames[-1][2], deepest)
            if deepest > limits.max_depth:
                raise _too_deep(name, _line_of(event), limits.max_depth)
            if values > limits.max_nodes:
                raise _too_many(name, _line_of(event), limits.max_nodes)
    except yaml.YAMLError as exc:
        if "maximum nesting depth" in str(getattr(exc, "context", "")) + str(getattr(exc, "problem", "")):
            mark = getattr(exc, "problem_mark", None)  # libyaml's own limit (1,000), met while scanning ahead
            raise _too_deep(name, mark.line + 1 if mark else None, limits.max_depth) from None
        raise _not_yaml(name, exc) from exc


def _yaml_lines(root: yaml.Node | None) -> dict[str, int]:
    lines: dict[str, int] = {}
    pending = [(root, "")] if root is not None else []
    while pending:  # depth-first, without recursion; aliases are visited as often as they are used
        node, location = pending.pop()
        lines[location or "/"] = node.start_mark.line + 1
        if isinstance(node, yaml.MappingNode):
            for key_node, value_node in node.value:
                pending.append((value_node, f"{location}/{key_node.value}"))
        elif isinstance(node, yaml.SequenceNode):
            pending.extend((item, f"{location}/{i}") for i, item in enumerate(node.value))
    return lines


# ----------------------------------------------------------------------------- errors


def _decode(data: bytes, name: str) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise ValidationFailed(
            f"{name}, line {line}: not UTF-8 text ({exc.reason}); save the file as UTF-8",
            [{"file": name, "line": line, "message": f"not UTF-8: {exc.reason}"}],
        ) from exc


def _not_yaml(name: str, exc: yaml.YAMLError) -> ValidationFailed:
    mark = getattr(exc, "problem_mark", None)
    line = mark.line + 1 if mark else None
    where = f"{name}, line {line}" if line else name
    return ValidationFailed(
        f"{where}: not valid JSON or YAML",
        [{"file": name, "line": line, "message": str(getattr(exc, "problem", None) or exc)}],
    )


def _line_of(event: yaml.Event) -> int | None:
    """The 1-based line an event starts on (the parser always sets a mark; the stubs allow none)."""
    return event.start_mark.line + 1 if event.start_mark else None


def _limit_error(cls: type[MetadataLimitExceeded], name: str, line: int | None, problem: str) -> MetadataLimitExceeded:
    where = f"{name}, line {line}" if line else name
    return cls(f"{where}: {problem}", [{"file": name, "line": line, "message": problem}])


def _unreadable_value(name: str, exc: Exception) -> MetadataLimitExceeded:
    if "integer string conversion" in str(exc):
        return _limit_error(MetadataLimitExceeded, name, None, "a number with more than 4300 digits")
    if isinstance(exc, RecursionError):
        return _limit_error(MetadataLimitExceeded, name, None, "nested too deeply")
    return _limit_error(MetadataLimitExceeded, name, None, str(exc))


def metadata_too_large(name: str, size: int | None, limit: int) -> MetadataLimitExceeded:
    """The error for a document of ``size`` bytes (None: more than ``limit``) over the limit."""
    has = f"{size} bytes" if size is not None else f"more than {limit} bytes"
    return _limit_error(
        MetadataTooLarge, name, None, f"the document has {has}; metadata may have at most {limit} (BIA_MAX_METADATA_BYTES)"
    )


def _too_deep(name: str, line: int | None, limit: int) -> MetadataLimitExceeded:
    return _limit_error(
        MetadataLimitExceeded, name, line, f"nested too deeply (lists and mappings more than {limit} levels deep)"
    )


def _too_many(name: str, line: int | None, limit: int) -> MetadataLimitExceeded:
    return _limit_error(
        MetadataLimitExceeded,
        name,
        line,
        f"more than {limit} values (keys, items and YAML aliases expanded); is an alias repeated in a loop?",
    )
