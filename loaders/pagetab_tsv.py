"""PageTab TSV to the JSON model BioStudies serves, then the JSON loader.

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
import os
import re
from pathlib import Path
from typing import Any

from loaders.pagetab import LoadedRecord, PageTabError, load_pagetab_json

_TABLE_HEADER = re.compile(r"^(?P<type>.+?)\[(?P<parent>[^\]]*)\]$")


def _rows(text: str) -> list[tuple[int, list[str]]]:
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


def _blocks(rows: list[tuple[int, list[str]]]) -> list[list[tuple[int, list[str]]]]:
    blocks: list[list[tuple[int, list[str]]]] = []
    current: list[tuple[int, list[str]]] = []
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


def _attribute_rows(block: list[tuple[int, list[str]]], where: str) -> list[dict[str, Any]]:
    """The attributes of a Submission/section/File/Link block (every row after the header)."""
    attributes: list[dict[str, Any]] = []
    for line, cells in block[1:]:
        name = cells[0]
        rest = cells[1:]
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


def _table(block: list[tuple[int, list[str]]], key: str) -> list[dict[str, Any]]:
    """A Files/Links/sections table: the first column is the path/url/accno, the others attributes."""
    names = block[0][1][1:]
    items = []
    for _line, cells in block[1:]:
        item: dict[str, Any] = {key: cells[0], "attributes": []}
        for i, name in enumerate(names, start=1):
            item["attributes"].append({"name": name, "value": cells[i] if i < len(cells) else ""})
        items.append(item)
    return items


def parse_pagetab_tsv(text: str, *, name: str = "PageTab TSV") -> dict[str, Any]:
    """The JSON model (``{accno, attributes, section, type}``) of a PageTab TSV submission."""
    submission: dict[str, Any] | None = None
    root: dict[str, Any] | None = None
    by_accno: dict[str, dict[str, Any]] = {}
    last: dict[str, Any] | None = None

    def section_for(line: int, what: str) -> dict[str, Any]:
        if last is None:
            raise PageTabError(
                f"{name}, line {line}: {what} before any section",
                [{"file": name, "line": line, "message": f"{what} before any section"}],
            )
        return last

    def parent_of(accno: str | None, line: int) -> dict[str, Any]:
        if root is None:
            raise PageTabError(
                f"{name}, line {line}: a subsection before the root section",
                [{"file": name, "line": line, "message": "no root section"}],
            )
        if not accno:
            return root
        if accno not in by_accno:
            raise PageTabError(
                f"{name}, line {line}: parent section {accno!r} is not defined above",
                [{"file": name, "line": line, "field": "ParentAccNo", "message": f"unknown {accno!r}"}],
            )
        return by_accno[accno]

    for block in _blocks(_rows(text)):
        line, header = block[0]
        keyword = header[0]
        where = f"{name}, line {line}"
        if keyword.lower() == "submission":
            submission = {
                "accno": header[1] if len(header) > 1 else "",
                "attributes": _attribute_rows(block, where),
                "type": "submission",
            }
        elif keyword.lower() == "file":
            target = section_for(line, "a File")
            target.setdefault("files", []).append(
                {"path": header[1] if len(header) > 1 else "", "attributes": _attribute_rows(block, where)}
            )
        elif keyword.lower() == "link":
            target = section_for(line, "a Link")
            target.setdefault("links", []).append(
                {"url": header[1] if len(header) > 1 else "", "attributes": _attribute_rows(block, where)}
            )
        elif keyword.lower() == "files":
            section_for(line, "a Files table").setdefault("files", []).append(_table(block, "path"))
        elif keyword.lower() == "links":
            section_for(line, "a Links table").setdefault("links", []).append(_table(block, "url"))
        elif _TABLE_HEADER.match(keyword):
            match = _TABLE_HEADER.match(keyword)
            assert match is not None
            rows = _table(block, "accno")
            for row in rows:
                row["type"] = match["type"].strip()
                if row["accno"]:
                    by_accno[row["accno"]] = row
            parent_of(match["parent"].strip() or None, line).setdefault("subsections", []).append(rows)
        else:
            section: dict[str, Any] = {"type": keyword, "attributes": _attribute_rows(block, where)}
            accno = header[1] if len(header) > 1 and header[1] else None
            if accno:
                section["accno"] = accno
                by_accno[accno] = section
            if root is None:
                root = section
            else:
                parent_of(header[2] if len(header) > 2 and header[2] else None, line).setdefault(
                    "subsections", []
                ).append(section)
            last = section
    if submission is None:
        raise PageTabError(
            f"{name}: no Submission block (the first line should be 'Submission<TAB>accession')",
            [{"file": name, "field": "Submission", "message": "missing"}],
        )
    if root is not None:
        submission["section"] = root
    return submission


def load_pagetab_tsv(text_or_path: str | os.PathLike[str], **options: Any) -> LoadedRecord:
    """A REMBI study record from PageTab TSV text or a file path (options as :func:`load_pagetab_json`)."""
    if isinstance(text_or_path, str) and ("\t" in text_or_path or "\n" in text_or_path):
        text, name = text_or_path, "PageTab TSV"
    else:
        path = Path(text_or_path)
        try:
            text = path.read_text(encoding="utf-8-sig")
        except (OSError, UnicodeDecodeError) as exc:
            raise PageTabError(
                f"{path}: cannot read the PageTab TSV ({exc})", [{"file": str(path), "message": str(exc)}]
            ) from exc
        name = path.name
    return load_pagetab_json(parse_pagetab_tsv(text, name=name), **options)
