"""Study components: their sections, the associations naming the REMBI objects they use (resolved once every
section is read), and the biosamples of specimens (from the associations that pair them)."""

from __future__ import annotations

from typing import Any

from loaders.loaded import FileListRef
from loaders.pagetab.attachments import files, links, unmapped_section
from loaders.pagetab.objects import add_object
from loaders.pagetab.reading import accno, attrs, flatten, section_type
from loaders.pagetab.sections import ASSOCIATION_KEYS, OBJECT_SLOTS, TEXT_SLOTS, kind_of
from loaders.pagetab.state import Conversion


def component(conv: Conversion, section: dict[str, Any]) -> None:
    """A study component section: its fields, file list, associations and (legacy layout) nested REMBI sections."""
    where = conv.where(section)
    found: dict[str, Any] = {}
    slots = TEXT_SLOTS["component"]
    for attr in attrs(section):
        if attr.value is None:
            if attr.key not in slots and attr.key != "file list":
                conv.keep(found, attr, where)
        elif attr.key in slots:
            found.setdefault(slots[attr.key], attr.value)
        elif attr.key == "file list":
            found["file_list_name"] = attr.value
        else:
            conv.keep(found, attr, where)
    _title(conv, found, section)
    nested: dict[str, list[str]] = {}
    written: list[dict[str, list[str]]] = []
    for sub in flatten(section.get("subsections")):
        kind = kind_of(sub)
        if kind == "associations":
            written.append(_associations(conv, sub, found))
        elif kind in OBJECT_SLOTS:
            add_object(conv, kind, sub, nested)  # legacy layout: REMBI sections inside the component
        else:
            unmapped_section(conv, sub, found, found["title"])
    links(conv, section)
    files(conv, section, found["title"])
    conv.components.append((found, nested, written))


def _title(conv: Conversion, found: dict[str, Any], section: dict[str, Any]) -> None:
    if "title" not in found:
        named = section_type(section) if kind_of(section) != "component" else None  # e.g. an older study's "Data" section
        found["title"] = accno(section) or named or f"Study Component {len(conv.components) + 1}"
        conv.note(f"{conv.where(section)}: no Name; titled {found['title']!r}")
    found["title"] = conv.unique_title("component", found["title"], section)
    if "file_list_name" in found:
        conv.file_lists.append(FileListRef(found["title"], found["file_list_name"], accno(section), section_type(section)))


def _associations(conv: Conversion, section: dict[str, Any], found: dict[str, Any]) -> dict[str, list[str]]:
    where = conv.where(section)
    names: dict[str, list[str]] = {}
    for attr in attrs(section):
        if attr.value is None:
            continue
        kind = ASSOCIATION_KEYS.get(attr.key)
        if kind:
            names.setdefault(kind, []).append(attr.value)
        else:
            conv.keep(found, attr, where, prefix="Association ")
    links(conv, section)  # tables the TSV form attaches to the last section read
    files(conv, section, found.get("title"))
    return names


def resolve_components(conv: Conversion) -> None:
    """The components of the record, their associations resolved to the titles of the sections they name."""
    for found, nested, written in conv.components:
        refs: dict[str, list[str]] = {kind: list(titles) for kind, titles in nested.items()}
        for association in written:
            for kind, names in association.items():
                for name in names:
                    title = conv.match_title(kind, name) or _unresolved(conv, found, kind, name)
                    if title is not None:
                        refs.setdefault(kind, []).append(title)
        record = {"title": found["title"]}
        if "description" in found:
            record["description"] = found["description"]
        for kind, (_class, _slot, association_slot) in OBJECT_SLOTS.items():
            if refs.get(kind):
                record[association_slot] = list(dict.fromkeys(refs[kind]))
        record.update({k: found[k] for k in ("file_list_name", "attributes") if k in found})
        conv.record.setdefault("components", []).append(record)


def _unresolved(conv: Conversion, found: dict[str, Any], kind: str, name: str) -> str | None:
    label = OBJECT_SLOTS[kind][2]
    if conv.options.unresolved == "drop":
        found.setdefault("attributes", []).append({"name": f"Unresolved {kind}", "value": name})
        conv.note(
            f"Study Component {found['title']!r}: {label} names {name!r}, which no section defines; "
            f"association dropped, the name kept as an attribute"
        )
        return None
    conv.note(f"Study Component {found['title']!r}: {label} names {name!r}, which no section defines")
    return name


def link_specimens(conv: Conversion) -> None:
    """A specimen's biosamples are those it is associated with (in one association or one component); a study
    with one biosample gives it to the specimens no association pairs (noted)."""
    pairs: dict[str, list[str]] = {}
    for _found, nested, written in conv.components:
        for group in [nested, *written]:
            biosamples = [conv.match_title("biosample", b) for b in group.get("biosample", [])]
            for name in group.get("specimen", []):
                title = conv.match_title("specimen", name)
                if title:
                    pairs.setdefault(title, []).extend(b for b in biosamples if b)
    biosample_titles = [b["title"] for b in conv.objects["biosample"]]
    for specimen in conv.objects["specimen"]:
        linked = list(dict.fromkeys(pairs.get(specimen["title"], [])))
        if not linked and len(biosample_titles) == 1:
            linked = biosample_titles
            conv.note(
                f"Specimen {specimen['title']!r}: no association names its biosample; the study's only "
                f"biosample {biosample_titles[0]!r} used"
            )
        if linked:
            specimen["specimen_biosamples"] = linked
        else:
            conv.note(f"Specimen {specimen['title']!r}: no association names its biosample")
