"""Reading REMBI records from JSON or YAML files, remembering where each value was written.

Dates and times are kept as the strings the depositor wrote (YAML would otherwise turn ``2024-01-15`` into a
``date`` and fail on ``2024-13-45`` before validation could say which field is wrong). Every value's line is
recorded under its JSON-pointer-like location (``/authors/0/orcid``) so errors can name file, line and field.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from catalog.errors import ValidationFailed


class _StringDatesLoader(yaml.SafeLoader):
    """A safe loader that leaves timestamps as strings."""


_StringDatesLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


@dataclass
class RecordSource:
    """A parsed record and the line (1-based) each location in it came from."""

    data: Any
    path: str
    lines: dict[str, int] = field(default_factory=dict)

    def line_of(self, location: str) -> int | None:
        """The line of a location, or of its nearest enclosing one."""
        location = location.rstrip("/") or "/"
        while True:
            if location in self.lines:
                return self.lines[location]
            if location in ("", "/"):
                return self.lines.get("/")
            location = location.rsplit("/", 1)[0] or "/"


def _index_lines(node: yaml.Node, location: str, lines: dict[str, int]) -> None:
    lines[location or "/"] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            _index_lines(value_node, f"{location}/{key_node.value}", lines)
            lines.setdefault(f"{location}/{key_node.value}", key_node.start_mark.line + 1)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _index_lines(item, f"{location}/{i}", lines)


def parse_record_text(text: str, path: str = "<record>") -> RecordSource:
    """Parse JSON or YAML text (JSON is YAML) into a :class:`RecordSource`."""
    try:
        node = yaml.compose(text, Loader=_StringDatesLoader)
        data = yaml.load(text, Loader=_StringDatesLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark else None
        where = f"{path}, line {line}" if line else path
        raise ValidationFailed(
            f"{where}: not valid JSON or YAML",
            [{"file": path, "line": line, "message": str(getattr(exc, "problem", None) or exc)}],
        ) from exc
    lines: dict[str, int] = {}
    if node is not None:
        _index_lines(node, "", lines)
    return RecordSource(data=data, path=path, lines=lines)


def read_record(path: str | Path) -> RecordSource:
    """Read a record file (``.json``, ``.yaml``, ``.yml``)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ValidationFailed(f"{path}: cannot read the file: {exc}", [{"file": str(path), "message": str(exc)}]) from exc
    if path.suffix.lower() == ".json":
        try:
            json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValidationFailed(
                f"{path}: not valid JSON",
                [{"file": str(path), "line": exc.lineno, "message": exc.msg}],
            ) from exc
    return parse_record_text(text, str(path))
