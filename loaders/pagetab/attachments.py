"""What any PageTab section may carry besides its own attributes: links, files, and sections of types no REMBI
slot holds (their attributes kept as generic attributes, prefixed by the section's type)."""

from __future__ import annotations

from typing import Any

from loaders.enums import relations
from loaders.file_lists import normalise_path
from loaders.loaded import link_reference
from loaders.pagetab.reading import accno, attrs, flatten, key, section_type, text, values
from loaders.pagetab.state import Conversion


def link(conv: Conversion, item: dict[str, Any], where: str) -> None:
    """A link: a cross-reference of the study, or a ``Link`` attribute when it is neither a URL nor an accession."""
    url = text(item.get("url"))
    if not url:
        return
    found = values(item)
    ref = link_reference(url, found.get("type"), found.get("description") or found.get("title"))
    relation = relations().get(key(found.get("relation") or found.get("relationship") or ""))
    if ref and relation:
        ref["relation"] = relation
    if ref is None:
        described = f"{url} ({found['type']})" if found.get("type") else url
        conv.record.setdefault("attributes", []).append({"name": "Link", "value": described})
        conv.note(f"{where}: link {url!r} is neither a URL nor a known accession; kept as an attribute")
        return
    conv.add_cross_reference(ref)


def links(conv: Conversion, section: dict[str, Any]) -> None:
    for item in flatten(section.get("links")):
        link(conv, item, conv.where(section))


def files(conv: Conversion, section: dict[str, Any], component: str | None) -> None:
    """Files attached to a section: inline files of the study (of ``component``, if given)."""
    where = conv.where(section)
    for item in flatten(section.get("files")):
        path = text(item.get("path") or item.get("filePath"))
        if not path:
            continue
        if str(item.get("type", "file")).lower() == "directory":
            conv.note(f"{where}: directory {path!r} attached to the section is not a file; left out")
            continue
        ref = _file(conv, item, path, where)
        if ref is None:
            continue
        if component:
            ref["file_component"] = component
        attributes = [{"name": a.name, "value": a.value} for a in attrs(item) if a.value is not None]
        if attributes:
            ref["attributes"] = attributes
        conv.record.setdefault("files", []).append(ref)


def _file(conv: Conversion, item: dict[str, Any], path: str, where: str) -> dict[str, Any] | None:
    """A file's path and size, or None (noted) when the path is unsafe, the size unknown or the file seen."""
    try:
        path, _ = normalise_path(path.lstrip("/"))
    except ValueError as exc:
        conv.note(f"{where}: file {path!r} left out: {exc}")
        return None
    size = item.get("size")
    if isinstance(size, str) and size.strip().isdigit():
        size = int(size.strip())
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        conv.note(f"{where}: file {path!r} has no size; left out of the record (add it with a file list)")
        return None
    if path in conv.inline_paths:
        conv.note(f"{where}: file {path!r} is attached twice; the second left out")
        return None
    conv.inline_paths.add(path)
    return {"path": path, "size_bytes": size}


def unmapped_section(conv: Conversion, section: dict[str, Any], target: dict[str, Any], component: str | None = None) -> None:
    """A section of a type no REMBI slot holds: its attributes kept on ``target``, prefixed by its type."""
    where = conv.where(section)
    label = section_type(section) + (f" {accno(section)}" if accno(section) else "")
    for attr in attrs(section):
        conv.keep(target, attr, where, prefix=f"{label}: ")
    links(conv, section)
    files(conv, section, component)
    for sub in flatten(section.get("subsections")):
        unmapped_section(conv, sub, target, component)


def rest_of(conv: Conversion, section: dict[str, Any]) -> None:
    """What an author, publication… section holds beyond its attributes: its links, files and subsections."""
    links(conv, section)
    files(conv, section, None)
    for sub in flatten(section.get("subsections")):
        unmapped_section(conv, sub, conv.record)
