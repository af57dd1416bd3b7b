"""Ontology terms and typed values of REMBI objects: organisms (NCBITaxon), imaging methods (FBbi) and
annotation types (the schema's ``AnnotationTypeEnum``)."""

from __future__ import annotations

import re
from typing import Any

from catalog import external_ids
from loaders import ontology_terms
from loaders.enums import annotation_types as annotation_type_names
from loaders.pagetab.reading import Attr, attrs, key, values
from loaders.pagetab.sections import IMAGING_METHOD_KEYS, ORGANISM_KEYS
from loaders.pagetab.state import Conversion


def organism_text(conv: Conversion, obj: dict[str, Any], attr: Attr, where: str) -> None:
    """An ``Organism`` attribute: its term by a taxon id in its qualifiers, else by name; else kept (noted)."""
    curie = next((external_ids.ncbitaxon(v) for _n, v in attr.valqual if external_ids.ncbitaxon(v)), None)
    term = ontology_terms.term_by_id(curie) if curie else ontology_terms.organism_term(attr.value or "")
    if curie and term is None:
        obj.setdefault("organisms", []).append({"id": curie, "label": attr.value, "ontology_name": "NCBITaxon"})
    elif term:
        obj.setdefault("organisms", []).append(term.as_record())
    else:
        conv.keep(obj, attr, where)
        conv.note(f"{where}: organism {attr.value!r} has no NCBITaxon term in the table")


def organism_section(conv: Conversion, obj: dict[str, Any], section: dict[str, Any]) -> None:
    """An ``Organism`` subsection (MIFA): its term by taxon id, else by scientific or common name."""
    where = conv.where(section)
    found = values(section)
    scientific, common = found.get("scientific name"), found.get("common name")
    written_id = next((found[k] for k in ("ncbi taxon id", "ontology term id", "taxon id", "ncbitaxon") if k in found), None)
    term = _organism_term(scientific, common, written_id)
    if term:
        obj.setdefault("organisms", []).append(term)
    for attr in attrs(section):
        if attr.value is None or (attr.key in ORGANISM_KEYS and term is not None):
            continue
        conv.keep(obj, attr.renamed(f"Organism {attr.name}", qualifiers=attr.key not in ORGANISM_KEYS), where)
    if term is None and found:
        conv.note(f"{where}: organism {scientific or common or written_id!r} has no NCBITaxon term in the table")


def _organism_term(scientific: str | None, common: str | None, written_id: str | None) -> dict[str, str] | None:
    curie = external_ids.ncbitaxon(written_id) if written_id else None
    if curie:
        known = ontology_terms.term_by_id(curie)
        return {"id": curie, "label": known.label if known else (scientific or common or curie), "ontology_name": "NCBITaxon"}
    for name in (scientific, common):
        found = ontology_terms.organism_term(name) if name else None
        if found:
            return found.as_record()
    return None


def imaging_method(
    conv: Conversion, obj: dict[str, Any], written: str | None, term_id: str | None, ontology: str | None, where: str
) -> dict[str, str]:
    """The term of an imaging method: the term id given, else by name, else FBbi's generic term (the text kept)."""
    if term_id:
        curie = ontology_terms.term_curie(term_id)
        if curie:
            known = ontology_terms.term_by_id(curie)
            label = known.label if known else (written or curie)
            return {"id": curie, "label": label, "ontology_name": ontology_terms.ontology_of(curie, ontology)}
        conv.note(f"{where}: ontology term id {term_id!r} is not an IRI or CURIE; looked up by name")
    term, exact = ontology_terms.imaging_method_term(written or "")
    if term:
        if not exact:
            conv.note(f"{where}: imaging method {written!r} matched to {term.id} {term.label!r}")
        return term.as_record()
    obj.setdefault("attributes", []).append({"name": "Imaging method", "value": written or ""})
    conv.note(
        f"{where}: imaging method {written!r} has no FBbi term in the table; FBbi's generic "
        f"'imaging method' used, the text kept as an attribute"
    )
    return ontology_terms.GENERIC_IMAGING_METHOD.as_record()


def imaging_method_section(conv: Conversion, obj: dict[str, Any], section: dict[str, Any]) -> dict[str, str] | None:
    """An ``Imaging Method`` subsection (MIFA): its term, its other attributes kept on the acquisition."""
    where = conv.where(section)
    found = values(section)
    written = found.get("ontology value") or found.get("value") or found.get("name")
    term_id = found.get("ontology term id") or found.get("term id")
    if not written and not term_id:
        return None
    for attr in attrs(section):
        if attr.value and attr.key not in IMAGING_METHOD_KEYS:
            conv.keep(obj, attr.renamed(f"Imaging method {attr.name}", qualifiers=False), where)
    return imaging_method(conv, obj, written, term_id, found.get("ontology name"), where)


def annotation_types(conv: Conversion, obj: dict[str, Any], attr: Attr, where: str) -> None:
    """``Annotation type`` values that are annotation types of the schema; any other kept (noted)."""
    known = annotation_type_names()
    for part in re.split(r"[,;]", attr.value or ""):
        value = known.get(key(part))
        if value:
            if value not in obj.setdefault("annotation_types", []):
                obj["annotation_types"].append(value)
        elif key(part):
            conv.keep(obj, attr.part(part.strip()), where)
            conv.note(f"{where}: annotation type {part.strip()!r} is not a MIFA annotation type")
