"""PageTab TSV to the JSON model BioStudies serves (then read like any PageTab JSON).

The TSV is a series of blocks separated by empty lines (PageTab specification): a ``Submission`` block, then
sections (``Type<TAB>AccNo<TAB>ParentAccNo``; the first is the root, a section without a parent belongs to
the root), single ``File``/``Link`` blocks and ``Files``/``Links`` tables (attached to the section defined
last) and sections tables (``Type[ParentAccNo]``). Attribute rows are ``Name<TAB>Value``; ``<name>`` marks a
reference, ``[name]`` a value qualifier and ``(name)`` a name qualifier of the attribute above. Values may be
quoted to span lines; an unquoted line without a tab inside a block continues the value above (conversion
scripts write multi-line descriptions that way).
"""

from __future__ import annotations

import csv
import io
import re
from typing import Any

from loaders.pagetab.reading import PageTabError

_TABLE_HEADER = re.compile(r"^(?P<type>.+?)\[(?P<parent>[^\]]*)\]$")
Row = tuple[int, list[str]]


def _rows(text: str) -> list[Row]:
    """(line number, cells) of every row, quoted multi-line values joined (a row without a tab has one cell)."""
    reader = csv.reader(io.StringIO(text.lstrip("\ufeff")), delimiter="\t", quotechar='"')
    rows = []
    line = 1
    for cells in reader:
        for cell in cells:
            if "\n" in cell and "\t" in cell:  # rows swallowed into one value: a quote was opened, never closed
                raise PageTabError(
                    f"line {line}: a quoted value runs on over {cell.count(chr(10)) + 1} lines of tab-separated rows; "
                    "is its closing quote missing?",
                    [{"line": line, "message": "unclosed quote"}],
                )
        rows.append((line, [c.strip() for c in cells]))
        line = reader.line_num + 1
    return rows


def _blocks(rows: list[Row]) -> list[list[Row]]:
    blocks: list[list[Row]] = []
    current: list[Row] = []
    for line, cells in rows:
        if not any(cells):
            if current:
                blocks.append(current)
            current = []
        else:
            current.append((line, cells))
    if current:
        blocks.append(current)
    return blocks


def _attribute_rows(block: list[Row], where: str) -> list[dict[str, Any]]:
    """The attributes of a Submission/section/File/Link block (every row after the header)."""
    attributes: list[dict[str, Any]] = []
    for line, cells in block[1:]:
        name, rest = cells[0], cells[1:]
        while rest and not rest[-1]:
            rest.pop()
        value = "\t".join(rest)
        if len(cells) == 1 and attributes and not re.match(r"^[<\[(].*[>\])]$", name):
            attributes[-1]["value"] = f"{attributes[-1]['value']}\n{name}".strip()  # continuation line
            continue
        qualifier = re.match(r"^([\[(])(.*)[\])]$", name)
        if qualifier:
            if not attributes:
                raise PageTabError(
                    f"{where}, line {line}: qualifier {name!r} follows no attribute",
                    [{"line": line, "field": name, "message": "qualifier without an attribute"}],
                )
            kind = "valqual" if qualifier.group(1) == "[" else "nmqual"
            attributes[-1].setdefault(kind, []).append({"name": qualifier.group(2).strip(), "value": value})
            continue
        reference = re.match(r"^<(.*)>$", name)
        attribute: dict[str, Any] = {"name": reference.group(1).strip() if reference else name, "value": value}
        if reference:
            attribute["reference"] = True
        attributes.append(attribute)
    return attributes


def _table(block: list[Row], key: str) -> list[dict[str, Any]]:
    """A Files/Links/sections table: the first column is the path/url/accno, the others attributes."""
    names = block[0][1][1:]
    items = []
    for _line, cells in block[1:]:
        item: dict[str, Any] = {key: cells[0], "attributes": []}
        for i, name in enumerate(names, start=1):
            item["attributes"].append({"name": name, "value": cells[i] if i < len(cells) else ""})
        items.append(item)
    return items


class _Submission:
    """The JSON model being built, block by block."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.submission: dict[str, Any] | None = None
        self.root: dict[str, Any] | None = None
        self.by_accno: dict[str, dict[str, Any]] = {}
        self.last: dict[str, Any] | None = None

    def fail(self, line: int, problem: str, **error: Any) -> PageTabError:
        """The error of a block at ``line`` (``error`` overrides the parts of its error entry)."""
        return PageTabError(
            f"{self.name}, line {line}: {problem}", [{"file": self.name, "line": line, "message": problem} | error]
        )

    def section_for(self, line: int, what: str) -> dict[str, Any]:
        if self.last is None:
            raise self.fail(line, f"{what} before any section")
        return self.last

    def parent_of(self, accno: str | None, line: int) -> dict[str, Any]:
        if self.root is None:
            raise self.fail(line, "a subsection before the root section", message="no root section")
        if not accno:
            return self.root
        if accno not in self.by_accno:
            raise self.fail(
                line, f"parent section {accno!r} is not defined above", field="ParentAccNo", message=f"unknown {accno!r}"
            )
        return self.by_accno[accno]

    def block(self, block: list[Row]) -> None:
        line, header = block[0]
        keyword, where = header[0], f"{self.name}, line {line}"
        head = header[1] if len(header) > 1 else ""
        lowered = keyword.lower()
        if lowered == "submission":
            self.submission = {"accno": head, "attributes": _attribute_rows(block, where), "type": "submission"}
        elif lowered in ("file", "link"):
            item_key, list_key = ("path", "files") if lowered == "file" else ("url", "links")
            self.section_for(line, f"a {keyword.capitalize()}").setdefault(list_key, []).append(
                {item_key: head, "attributes": _attribute_rows(block, where)}
            )
        elif lowered in ("files", "links"):
            item_key = "path" if lowered == "files" else "url"
            self.section_for(line, f"a {keyword.capitalize()} table").setdefault(lowered, []).append(_table(block, item_key))
        elif _TABLE_HEADER.match(keyword):
            self.sections_table(block, line, keyword)
        else:
            self.section(block, line, header, where)

    def sections_table(self, block: list[Row], line: int, keyword: str) -> None:
        match = _TABLE_HEADER.match(keyword)
        assert match is not None
        rows = _table(block, "accno")
        for row in rows:
            row["type"] = match["type"].strip()
            if row["accno"]:
                self.by_accno[row["accno"]] = row
        self.parent_of(match["parent"].strip() or None, line).setdefault("subsections", []).append(rows)

    def section(self, block: list[Row], line: int, header: list[str], where: str) -> None:
        section: dict[str, Any] = {"type": header[0], "attributes": _attribute_rows(block, where)}
        accno = header[1] if len(header) > 1 and header[1] else None
        if accno:
            section["accno"] = accno
            self.by_accno[accno] = section
        if self.root is None:
            self.root = section
        else:
            parent = header[2] if len(header) > 2 and header[2] else None
            self.parent_of(parent, line).setdefault("subsections", []).append(section)
        self.last = section


def parse_pagetab_tsv(text: str, *, name: str = "PageTab TSV") -> dict[str, Any]:
    """The JSON model (``{accno, attributes, section, type}``) of a PageTab TSV submission."""
    built = _Submission(name)
    for block in _blocks(_rows(text)):
        built.block(block)
    if built.submission is None:
        raise PageTabError(
            f"{name}: no Submission block (the first line should be 'Submission<TAB>accession')",
            [{"file": name, "field": "Submission", "message": "missing"}],
        )
    if built.root is not None:
        built.submission["section"] = built.root
    return built.submission
