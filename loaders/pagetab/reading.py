"""Reading the PageTab JSON model: the document within limits, and sections' attributes, subsections, accnos.

Sections' subsections, links and files are an object, a list or a list of lists (tables); attribute names are
compared without case, spacing, ``-`` or ``_``; values are stripped, and the text conversion scripts write for
"no value" (``None``, ``null``) counts as none.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from catalog.errors import CatalogError
from catalog.records import MAX_BYTES, check_shape, read_document, read_limited

#: Text that conversion scripts write for "no value".
_EMPTY_VALUES = {"", "none", "null"}
#: attribute names written more than one way in real records
_KEY_ALIASES = {"release date": "releasedate", "release time": "releasedate"}


class PageTabError(CatalogError):
    """A PageTab document that cannot be read; the message names the record and the field."""

    status = 422
    code = "invalid_pagetab"


@dataclass(frozen=True)
class Attr:
    """One PageTab attribute, its value stripped (None when empty)."""

    name: str
    key: str
    value: str | None
    reference: bool
    valqual: tuple[tuple[str, str], ...]
    nmqual: tuple[tuple[str, str], ...]

    def renamed(self, name: str, *, qualifiers: bool = True) -> Attr:
        """The attribute under another name (its qualifiers kept or not)."""
        return Attr(name, self.key, self.value, False, self.valqual if qualifiers else (), self.nmqual if qualifiers else ())

    def part(self, value: str) -> Attr:
        """One part of a value that lists several, as an attribute of its own."""
        return Attr(self.name, self.key, value, False, (), ())


def key(name: str) -> str:
    """Names compared without case, spacing, ``-`` or ``_`` (``E-mail`` = ``e mail``, ``grant_id``)."""
    return " ".join(re.sub(r"[\s_\-]+", " ", name).casefold().split())


def text(value: Any) -> str | None:
    """A value as stripped text; None for no value (nothing, ``None``, a nested object)."""
    if value is None or isinstance(value, (dict, list)):
        return None
    stripped = str(value).strip()
    return None if stripped.casefold() in _EMPTY_VALUES else stripped


def flatten(items: Any) -> Iterator[dict[str, Any]]:
    """Subsections, links and files are an object, a list, or a list of lists (tables)."""
    if isinstance(items, dict):
        yield items
    elif isinstance(items, list):
        for item in items:
            yield from flatten(item)


def _qualifiers(items: Any) -> tuple[tuple[str, str], ...]:
    found = []
    for item in flatten(items):
        name, value = text(item.get("name")), text(item.get("value"))
        if name and value:
            found.append((name, value))
    return tuple(found)


def attrs(obj: dict[str, Any]) -> list[Attr]:
    """The attributes of a section, link or file (nameless ones left out)."""
    result = []
    for item in flatten(obj.get("attributes")):
        name = text(item.get("name"))
        if not name:
            continue
        reference = item.get("reference", item.get("isReference", False))
        result.append(
            Attr(
                name=name,
                key=_KEY_ALIASES.get(key(name), key(name)),
                value=text(item.get("value")),
                reference=reference is True or str(reference).lower() == "true",
                valqual=_qualifiers(item.get("valqual")),
                nmqual=_qualifiers(item.get("nmqual")),
            )
        )
    return result


def values(section: dict[str, Any]) -> dict[str, str]:
    """A section's attribute values by key (those with a value)."""
    return {a.key: a.value for a in attrs(section) if a.value}


def accno(section: dict[str, Any]) -> str | None:
    return text(section.get("accno", section.get("accNo")))


def section_type(section: dict[str, Any]) -> str:
    return text(section.get("type")) or "Section"


def is_empty(section: dict[str, Any]) -> bool:
    """Whether a section holds nothing (templates leave empty sections)."""
    has_subsections = any(True for _ in flatten(section.get("subsections")))
    return not (attrs(section) or has_subsections or section.get("files") or section.get("links"))


def read_pagetab_document(doc: dict[str, Any] | str | os.PathLike[str]) -> tuple[dict[str, Any], str]:
    """The JSON model and a name for messages (the file name, or the accession), read within the limits of
    :func:`catalog.records.read_document` (size, nesting, number of values)."""
    if isinstance(doc, dict):
        name = str(accno(doc) or "PageTab document")
        check_shape(doc, name)
        return doc, name
    try:
        if isinstance(doc, str) and doc.lstrip().startswith(("{", "[")):
            data: str | bytes = doc
            name = "PageTab JSON"
        else:
            path = Path(doc)
            data, name = read_limited(path, MAX_BYTES), path.name
        document = read_document(data, name, allow_yaml=False).data
    except PageTabError:
        raise
    except CatalogError as exc:
        raise PageTabError(exc.message, exc.errors) from None
    if not isinstance(document, dict):
        raise PageTabError(
            f"{name}: a PageTab submission must be a JSON object, not {type(document).__name__}",
            [{"file": name, "message": "not a JSON object"}],
        )
    return document, name
