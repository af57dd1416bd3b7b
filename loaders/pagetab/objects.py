"""REMBI objects from their sections: biosamples, specimens, image acquisitions, correlations, analyses and
annotation methods: their text slots, terms, channels, transformation matrices and annotation file lists."""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import lru_cache
from typing import Any

from catalog.rembi_model import load_model
from loaders import ontology_terms
from loaders.loaded import FileListRef
from loaders.pagetab import terms
from loaders.pagetab.attachments import files, links, unmapped_section
from loaders.pagetab.reading import Attr, accno, attrs, flatten, is_empty, section_type
from loaders.pagetab.sections import CHANNEL_SLOTS, OBJECT_KEYS, OBJECT_SLOTS, TEXT_SLOTS, kind_of
from loaders.pagetab.state import Conversion

_NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_TRANSFORMATION_KEYS = {"transformation matrix", "transformation", "transformations"}


def parse_matrix(text: str) -> list[list[float]] | None:
    """Rows of numbers written as ``1 0 0 10; 0 1 0 20; 0 0 1 0``, on lines, or in brackets; else None.

    A homogeneous 2-D (2×3, 3×3) or 3-D (3×4, 4×4) matrix is accepted.
    """
    body = text.strip()
    if not re.fullmatch(rf"[\s\[\](),;]*(?:{_NUMBER}[\s\[\](),;]*)+", body):
        return None
    bracketed = re.compile(r"\]\s*,?\s*\[")
    chunks = bracketed.split(body) if bracketed.search(body) else re.split(r"[;\n]", body)
    rows = [[float(n) for n in re.findall(_NUMBER, chunk)] for chunk in chunks]
    rows = [row for row in rows if row]
    if not rows or len({len(r) for r in rows}) != 1:
        return None
    return rows if (len(rows), len(rows[0])) in {(2, 3), (3, 3), (3, 4), (4, 4)} else None


def _transformation(text: str) -> dict[str, Any] | None:
    rows = parse_matrix(text)
    if rows is None:
        return None
    return {
        "transformation_type": "affine",
        "matrix_rows": len(rows),
        "matrix_columns": len(rows[0]),
        "matrix": [{"row": r, "column": c, "element_value": value} for r, row in enumerate(rows) for c, value in enumerate(row)],
        "transformation_text": text,
    }


@lru_cache(maxsize=None)
def required_texts(kind: str) -> tuple[str, ...]:
    """The text slots the schema requires of a kind's objects, besides the title (``analysis_overview``…)."""
    slots = load_model().classes[OBJECT_SLOTS[kind][0]].slots.values()
    return tuple(s.name for s in slots if s.required and s.kind == "literal" and s.name != "title")


def ordered(obj: dict[str, Any]) -> dict[str, Any]:
    """Title first and attributes last: records read the same way whatever the attribute order."""
    head = {k: obj[k] for k in ("title",) if k in obj}
    tail = {k: obj[k] for k in ("attributes",) if k in obj}
    return {**head, **{k: v for k, v in obj.items() if k not in head and k not in tail}, **tail}


def add_object(conv: Conversion, kind: str, section: dict[str, Any], associations: dict[str, list[str]] | None = None) -> None:
    """A REMBI object section (``associations``: the names of a component it is nested in, legacy layout)."""
    if is_empty(section):
        return  # templates leave empty sections
    obj = _object(conv, kind, section)
    if obj is not None and associations is not None:
        associations.setdefault(kind, []).append(obj["title"])


class _Reading:
    """One object section being read: the object, its channel and imaging methods."""

    def __init__(self, conv: Conversion, kind: str, section: dict[str, Any]) -> None:
        self.conv, self.kind, self.section = conv, kind, section
        self.where = conv.where(section)
        self.obj: dict[str, Any] = {}
        self.channel: dict[str, Any] = {}
        self.methods: list[dict[str, str]] = []

    def attribute(self, attr: Attr) -> None:
        slots = TEXT_SLOTS[self.kind]
        if attr.value is None:
            if attr.key not in slots and attr.key not in OBJECT_KEYS:
                self.conv.keep(self.obj, attr, self.where)
            return
        if attr.key == "file list" and self.kind == "annotation":
            return  # an annotation file list: read once the object is titled
        slot = slots.get(attr.key)
        if isinstance(slot, list):
            self.obj.setdefault(slot[0], []).append(attr.value)
        elif slot:
            self.obj.setdefault(slot, attr.value)
        else:
            self._typed(attr)

    def _typed(self, attr: Attr) -> None:
        read = self._readers().get((self.kind, attr.key))
        if read is None:
            self.conv.keep(self.obj, attr, self.where)
        else:
            read(attr)

    def _readers(self) -> dict[tuple[str, str], Callable[[Attr], None]]:
        readers: dict[tuple[str, str], Callable[[Attr], None]] = {
            ("biosample", "organism"): lambda a: terms.organism_text(self.conv, self.obj, a, self.where),
            ("annotation", "annotation type"): lambda a: terms.annotation_types(self.conv, self.obj, a, self.where),
            ("annotation", "annotation types"): lambda a: terms.annotation_types(self.conv, self.obj, a, self.where),
        }
        for name in ("imaging method", "imaging methods"):
            readers["acquisition", name] = lambda a: self.methods.append(
                terms.imaging_method(self.conv, self.obj, a.value, None, None, self.where)
            )
        for name, slot in CHANNEL_SLOTS.items():
            readers["specimen", name] = lambda a, slot=slot: self.channel.__setitem__(slot, a.value)  # type: ignore[misc]
        for name in _TRANSFORMATION_KEYS:
            readers["correlation", name] = self._transformation
        return readers

    def _transformation(self, attr: Attr) -> None:
        self.obj["transformation_text"] = attr.value
        transformation = _transformation(attr.value or "")
        if transformation:
            self.obj["transformations"] = [transformation]

    def subsection(self, sub: dict[str, Any]) -> None:
        sub_kind = kind_of(sub)
        if self.kind == "biosample" and sub_kind == "organism":
            terms.organism_section(self.conv, self.obj, sub)
        elif self.kind == "acquisition" and sub_kind == "imaging method":
            term = terms.imaging_method_section(self.conv, self.obj, sub)
            if term:
                self.methods.append(term)
        else:
            unmapped_section(self.conv, sub, self.obj)


def _object(conv: Conversion, kind: str, section: dict[str, Any]) -> dict[str, Any] | None:
    reading = _Reading(conv, kind, section)
    for attr in attrs(section):
        reading.attribute(attr)
    for sub in flatten(section.get("subsections")):
        reading.subsection(sub)
    obj, where = reading.obj, reading.where
    if not obj and not reading.methods:
        return None
    if reading.channel:
        obj["signal_channels"] = [reading.channel]
    if kind == "acquisition":
        if not reading.methods:
            conv.note(f"{where}: no imaging method; FBbi's generic 'imaging method' used")
            reading.methods.append(ontology_terms.GENERIC_IMAGING_METHOD.as_record())
        obj["imaging_methods"] = list({m["id"]: m for m in reading.methods}.values())
    _title(conv, kind, obj, section)
    links(conv, section)
    files(conv, section, None)
    for attr in attrs(section):
        if kind == "annotation" and attr.key == "file list" and attr.value:
            conv.file_lists.append(FileListRef(None, attr.value, accno(section), section_type(section)))
    conv.objects[kind].append(ordered(obj))
    return obj


def _title(conv: Conversion, kind: str, obj: dict[str, Any], section: dict[str, Any]) -> None:
    """The object's title (its accno or type and number without one, noted), unique among its kind; in a published
    record, the required texts it lacks taken from it (noted)."""
    where = conv.where(section)
    if "title" not in obj:
        obj["title"] = accno(section) or f"{section_type(section)} {len(conv.objects[kind]) + 1}"
        conv.note(f"{where}: no Title; titled {obj['title']!r}")
    obj["title"] = conv.unique_title(kind, obj["title"], section)
    for slot in required_texts(kind) if conv.options.published else ():
        if slot not in obj:
            obj[slot] = obj["title"]
            conv.warn(f"{where}: no {slot}; its title {obj['title']!r} stands in (the published record gives none)")
