"""One pass over a submission: the envelope, the Study section, every subsection by its kind, then the
associations resolved and the record put in order."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from loaders.loaded import LoadedRecord, provenance
from loaders.pagetab import people
from loaders.pagetab.attachments import files, links, rest_of, unmapped_section
from loaders.pagetab.components import component, link_specimens, resolve_components
from loaders.pagetab.objects import add_object, ordered
from loaders.pagetab.reading import PageTabError, accno, attrs, flatten, is_empty, section_type
from loaders.pagetab.sections import OBJECT_SLOTS, SECTION_FIELDS_ON_ENVELOPE, STUDY_ORDER, kind_of
from loaders.pagetab.state import Conversion
from loaders.pagetab.study import envelope, study_attributes

LOADER_NAME = "pagetab"
LOADER_VERSION = "1.0.0"

_HANDLERS: dict[str, Callable[[Conversion, dict[str, Any]], None]] = {
    "author": people.author,
    "publication": people.publication,
    "funding": people.funding,
    "organisation": lambda conv, section: None,  # read first, for the authors that refer to it
}


def convert(conv: Conversion, source_url: str | None, harvested_at: str | None) -> LoadedRecord:
    """The REMBI record of the submission ``conv`` holds."""
    doc = conv.doc
    accession = accno(doc)
    root = doc.get("section")
    if not isinstance(root, dict):
        raise PageTabError(
            f"{conv.name} ({accession or 'no accno'}): no Study section (the submission's 'section' is missing)",
            [{"file": conv.name, "accno": accession, "field": "section", "message": "missing Study section"}],
        )
    if accession:
        conv.record["accession"] = accession
    else:  # a new deposit gets its accession when it is finalised
        conv.note("submission: no accession (accno)")
    envelope_attrs, study_attrs = attrs(doc), attrs(root)
    on_section = {a.key for a in study_attrs}
    # the study's own fields written on the submission instead (older records): read as the section's
    study_attrs += [a for a in envelope_attrs if a.key in SECTION_FIELDS_ON_ENVELOPE and a.key not in on_section]
    envelope(conv, envelope_attrs, study_attrs)
    study_attributes(conv, study_attrs, root)
    links(conv, root)
    files(conv, root, None)
    subsections = list(flatten(root.get("subsections")))
    for section in subsections:  # organisations first: authors refer to them
        if kind_of(section) == "organisation":
            people.organisation(conv, section)
    for section in subsections:
        _section(conv, section)
    resolve_components(conv)
    link_specimens(conv)
    _finish(conv, accession, source_url, harvested_at)
    return conv.loaded(conv.file_lists)


def _section(conv: Conversion, section: dict[str, Any]) -> None:
    """One subsection of the study, by its kind (a section of another type with a File List is a component)."""
    if is_empty(section):
        return  # templates leave empty sections
    kind = kind_of(section)
    if kind in OBJECT_SLOTS:
        add_object(conv, kind, section)
    elif kind == "component":
        component(conv, section)
    elif kind in _HANDLERS:
        _HANDLERS[kind](conv, section)
        rest_of(conv, section)
    elif any(a.key == "file list" and a.value for a in attrs(section)):
        conv.note(f"{conv.where(section)}: a {section_type(section)} section with a File List read as a study component")
        component(conv, section)
    else:
        unmapped_section(conv, section, conv.record)


def _finish(conv: Conversion, accession: str | None, source_url: str | None, harvested_at: str | None) -> None:
    for kind, (_class, slot, _association) in OBJECT_SLOTS.items():
        if conv.objects[kind]:
            conv.record[slot] = [ordered(o) for o in conv.objects[kind]]
    # BioStudies holds S-BSST… and other collections; S-BIAD… and new deposits (no accno yet) are this archive's
    from_biostudies = bool(accession) and not str(accession).upper().startswith("S-BIAD")
    conv.record["provenance"] = provenance(
        "BioStudies" if from_biostudies else "BioImage Archive",
        LOADER_NAME,
        LOADER_VERSION,
        accession=accession,
        source_url=source_url,
        harvested_at=harvested_at,
    )
    ordered_record = {field: conv.record[field] for field in STUDY_ORDER if field in conv.record}
    conv.record.clear()
    conv.record.update(ordered_record)
