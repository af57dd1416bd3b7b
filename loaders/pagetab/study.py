"""The study's own fields: from the submission envelope (title, release date, DOI) and the Study section
(description, keywords, licence, acknowledgements, funding statement, IDR accession, a study-level file list)."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from typing import Any

from catalog import external_ids
from catalog.dates import release_date_of
from loaders.enums import licence_name
from loaders.loaded import FileListRef, cross_reference
from loaders.pagetab.reading import Attr, accno, section_type, text
from loaders.pagetab.sections import SECTION_FIELDS_ON_ENVELOPE, STUDY_KEYS
from loaders.pagetab.state import Conversion

_READ_FIRST = {"title", "releasedate", "keywords", "keyword"}


def release_date(value: Any) -> str | None:
    """A ``YYYY-MM-DD`` from a date, an ISO timestamp or epoch seconds/milliseconds."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = value / 1000 if value > 1e11 else value
        return dt.datetime.fromtimestamp(seconds, dt.timezone.utc).date().isoformat()
    written = text(value)
    if written is None:
        return None
    return release_date_of(written)  # a time: the first UTC day from it; not a date: kept for validation to refuse


def envelope(conv: Conversion, envelope_attrs: list[Attr], study_attrs: list[Attr]) -> None:
    """Title, release date and DOI from the submission (or its Study section); its other attributes kept."""
    first = {a.key: a for a in reversed(envelope_attrs)}
    section_first = {a.key: a for a in reversed(study_attrs)}
    title = first.get("title") or section_first.get("title")
    if title and title.value:
        conv.record["title"] = title.value
    release = first.get("releasedate") or section_first.get("releasedate")
    raw_release = release.value if release else None
    for name in ("rtime", "releaseTime", "releaseDate", "releasetime"):
        if raw_release is None and conv.doc.get(name) is not None:
            raw_release = conv.doc[name]
    date = release_date(raw_release)
    if date:
        conv.record["release_date"] = date
    for attr in envelope_attrs:
        if attr.key in SECTION_FIELDS_ON_ENVELOPE or attr.key == "releasedate":
            continue  # read with the Study section's attributes, or above
        if attr.key == "title":
            if attr.value and attr.value != conv.record.get("title"):
                conv.keep(conv.record, attr, "submission")
        elif attr.key == "doi":
            study_doi(conv, attr, "submission")
        else:
            conv.keep(conv.record, attr, "submission")


def study_doi(conv: Conversion, attr: Attr, where: str) -> None:
    if attr.value is None or "doi" in conv.record:
        return
    found = external_ids.doi(attr.value)
    if found:
        conv.record["doi"] = found
    else:
        conv.warn(f"{where}: DOI {attr.value!r} is not a DOI; left out")


def study_attributes(conv: Conversion, attrs: list[Attr], root: dict[str, Any]) -> None:
    """The Study section's attributes: the study's fields, the others kept as generic attributes."""
    where = conv.where(root)
    licence_attr = None
    for attr in attrs:
        if attr.key in _READ_FIRST:
            if attr.key == "title" and attr.value and attr.value != conv.record.get("title"):
                conv.keep(conv.record, attr, where)
        elif attr.value is None:
            if attr.key not in STUDY_KEYS:
                conv.keep(conv.record, attr, where)
        elif attr.key in {"license", "licence"}:
            licence_attr = licence_attr or attr
        elif attr.key == "abstract":
            _abstract(conv, attr, attrs, where)
        else:
            _FIELDS.get(attr.key, _keep)(conv, attr, root, where)
    keywords = _keywords(attrs)
    if keywords:
        conv.record["keywords"] = keywords
    licence(conv, licence_attr, where)


def _keywords(attrs: list[Attr]) -> list[str]:
    """One list (``a, b; c``), or one keyword per attribute (which may hold a comma)."""
    written = [a.value for a in attrs if a.key in {"keywords", "keyword"} and a.value]
    found = [k.strip() for k in re.split(r"[,;]", written[0])] if len(written) == 1 else written
    return list(dict.fromkeys(k for k in found if k))


def _keep(conv: Conversion, attr: Attr, root: dict[str, Any], where: str) -> None:
    conv.keep(conv.record, attr, where)


def _description(conv: Conversion, attr: Attr, root: dict[str, Any], where: str) -> None:
    if "description" in conv.record and conv.record["description"] != attr.value:
        conv.keep(conv.record, attr, where)  # a second description: kept, not lost
    else:
        conv.record["description"] = attr.value


def _abstract(conv: Conversion, attr: Attr, attrs: list[Attr], where: str) -> None:
    if "description" not in conv.record and not any(a.key == "description" for a in attrs):
        conv.record["description"] = attr.value  # no Description: the Abstract describes the study
    else:
        conv.keep(conv.record, attr, where)


def _acknowledgements(conv: Conversion, attr: Attr, root: dict[str, Any], where: str) -> None:
    conv.record["acknowledgements"] = attr.value


def _doi(conv: Conversion, attr: Attr, root: dict[str, Any], where: str) -> None:
    study_doi(conv, attr, where)


def _funding_statement(conv: Conversion, attr: Attr, root: dict[str, Any], where: str) -> None:
    conv.add_funding(statement=attr.value)


def _file_list(conv: Conversion, attr: Attr, root: dict[str, Any], where: str) -> None:
    title = conv.unique_title("component", "Study files", root)
    conv.note(f"{where}: File List {attr.value!r} on the Study section; its files form the component {title!r}")
    conv.components.append(({"title": title, "file_list_name": attr.value}, {}, []))
    conv.file_lists.append(FileListRef(title, str(attr.value), accno(root), section_type(root)))


def _idr_accession(conv: Conversion, attr: Attr, root: dict[str, Any], where: str) -> None:
    ref = cross_reference("IDR", str(attr.value), "same_as")
    if ref:
        conv.add_cross_reference(ref)
    else:
        conv.keep(conv.record, attr, where)


_FIELDS: dict[str, Callable[[Conversion, Attr, dict[str, Any], str], None]] = {
    "description": _description,
    "acknowledgements": _acknowledgements,
    "doi": _doi,
    "funding statement": _funding_statement,
    "file list": _file_list,
    "idr accession number": _idr_accession,
}


def licence(conv: Conversion, attr: Attr | None, where: str) -> None:
    """The study's licence; without one, the default (noted); one the catalog does not know is kept as an
    attribute and noted, never guessed."""
    if attr is None or attr.value is None:
        if conv.options.default_license:
            conv.record["license"] = conv.options.default_license
            conv.warn(f"{where}: no License attribute; the default {conv.options.default_license} applied")
        else:
            conv.warn(f"{where}: no License attribute")
        return
    for candidate in [attr.value] + [value for _name, value in attr.valqual]:
        name = licence_name(candidate)
        if name:
            conv.record["license"] = name
            return
    conv.keep(conv.record, attr, where)
    conv.warn(f"{where}: licence {attr.value!r} is not one the catalog knows; no licence set")
