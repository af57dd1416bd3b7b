"""REMBI records (nested dicts shaped like the LinkML model) to RDF, and the steps that get a record ready.

A record is what a depositor writes in JSON/YAML and what loaders build: a ``Study`` with its sections
inlined. :func:`prepare_study` gives every identified object a deterministic IRI and resolves references
written as titles; :func:`record_to_graph` writes the RDF the catalog stores (enum values as the IRIs of their
meanings, ontology terms and cross-reference targets as IRIs, value objects under fragment IRIs).
"""

from __future__ import annotations

import copy
import datetime as dt
import logging
import re
from contextlib import contextmanager
from typing import Any, Iterator
from urllib.parse import quote

from rdflib import RDF, XSD, Graph, Literal, URIRef

from catalog import external_ids, identifiers
from catalog.rembi_model import ClassInfo, RembiModel, load_model

#: Slots of Study whose objects have their own IRIs, in the order they are defined.
_REFERENCE_SLOTS = {
    # slot -> class it refers to
    "component_biosamples": "BioSample",
    "component_specimens": "Specimen",
    "component_image_acquisitions": "ImageAcquisition",
    "component_image_correlations": "ImageCorrelation",
    "component_image_analyses": "ImageAnalysis",
    "component_annotation_methods": "AnnotationMethod",
    "specimen_biosamples": "BioSample",
    "file_component": "StudyComponent",
    "image_component": "StudyComponent",
    "image_files": "FileReference",
}


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, (list, tuple)) else [value]


def prepare_study(record: dict[str, Any], base_url: str, model: RembiModel | None = None) -> dict[str, Any]:
    """A copy of a Study record with IRIs minted and title references resolved.

    * the study's ``id`` becomes ``{base}/studies/{accession}``;
    * every object of an identified class (component, biosample, specimen, acquisition, correlation,
      analysis, annotation method, file, image) without an ``id`` gets one from the study, its class and its
      natural key (title; a file's path and size);
    * references in associations may name an object by id or by title (a file by its path): names become
      ids (an unknown name is left as it is, for validation to report);
    * CURIEs of ontology terms (``NCBITaxon:9606``) are expanded; authors get their ``position``.
    """
    model = model or load_model()
    rec = copy.deepcopy(record)
    study = identifiers.study_iri(base_url, rec["accession"])
    rec["id"] = study
    study_cls = model.classes["Study"]
    by_title: dict[str, dict[str, str]] = {}
    known_ids: dict[str, set[str]] = {}
    for slot in study_cls.slots.values():
        target = model.classes.get(slot.range or "")
        if slot.kind != "object" or target is None or target.identifier is None:
            continue
        seen_keys: dict[Any, int] = {}
        for obj in _as_list(rec.get(slot.name)):
            if not isinstance(obj, dict):
                continue
            if obj.get("id"):
                obj["id"] = model.expand(str(obj["id"]))
            else:
                key: Any = [obj.get("path"), obj.get("size_bytes")] if target.name == "FileReference" else obj.get("title")
                n = seen_keys.get(repr(key), 0)
                seen_keys[repr(key)] = n + 1
                obj["id"] = identifiers.object_iri(study, target.name, key if n == 0 else [key, n])
            known_ids.setdefault(target.name, set()).add(obj["id"])
            name = obj.get("path") if target.name == "FileReference" else obj.get("title")
            if name:
                by_title.setdefault(target.name, {}).setdefault(str(name), obj["id"])
    for i, author in enumerate(_as_list(rec.get("authors")), start=1):
        if isinstance(author, dict):
            author.setdefault("position", i)
    _canonical_identifiers(rec)

    def resolve(obj: dict[str, Any]) -> None:
        for slot_name, target in _REFERENCE_SLOTS.items():
            if slot_name not in obj:
                continue
            values = obj[slot_name]
            resolved = []
            for ref in _as_list(values):
                ref = str(ref)
                if ref not in known_ids.get(target, set()):
                    ref = by_title.get(target, {}).get(ref, model.expand(ref))
                resolved.append(ref)
            obj[slot_name] = resolved if isinstance(values, (list, tuple)) else resolved[0]
        for term_slot in ("organisms", "imaging_methods"):
            for term in _as_list(obj.get(term_slot)):
                if isinstance(term, dict) and term.get("id"):
                    term["id"] = model.expand(str(term["id"]))

    for slot in study_cls.slots.values():
        for obj in _as_list(rec.get(slot.name)):
            if isinstance(obj, dict):
                resolve(obj)
    return rec


def _canonical_identifiers(rec: dict[str, Any]) -> None:
    """Identifiers of other resources as the catalog stores them, however the record wrote them (one node per map,
    paper or person in the link graph: see :mod:`catalog.external_ids`). What is not recognised stays as written,
    for validation to judge."""
    for xref in _as_list(rec.get("cross_references")):
        if isinstance(xref, dict) and isinstance(xref.get("target"), str):
            found = external_ids.recognise(xref["target"], hint=xref.get("resource"))
            stored = external_ids.iri(*found) if found else None
            if stored:
                xref["target"] = stored
    for publication in _as_list(rec.get("publications")):
        if isinstance(publication, dict) and isinstance(publication.get("doi"), str):
            publication["doi"] = external_ids.doi(publication["doi"]) or publication["doi"]
    for author in _as_list(rec.get("authors")):
        if isinstance(author, dict) and isinstance(author.get("orcid"), str):
            canonical = external_ids.orcid(author["orcid"])
            if canonical:
                author["orcid"] = f"https://orcid.org/{canonical}"


#: C0 control characters other than tab, LF and CR: never meaningful in metadata, and not allowed in XML 1.0
#: (an RDF/XML export holding one would not parse)
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f]")


def literal_for(value: Any, datatype: str | None) -> Literal:
    """A slot's value as the literal of its datatype (control characters dropped from strings)."""
    if datatype in (None, str(XSD.string)):
        return Literal(_CONTROL.sub("", str(value)))
    if isinstance(value, bool):
        lexical = "true" if value else "false"
    elif isinstance(value, dt.datetime):
        lexical = value.isoformat()
    elif isinstance(value, dt.date):
        lexical = value.isoformat()
    else:
        lexical = str(value)
    return Literal(lexical, datatype=URIRef(datatype))


def record_to_graph(
    record: dict[str, Any],
    class_name: str = "Study",
    graph: Graph | None = None,
    model: RembiModel | None = None,
    *,
    owner: str | None = None,
    via_slot: str | None = None,
) -> Graph:
    """Write a (prepared) record and everything inlined in it into ``graph`` (a new one by default)."""
    model = model or load_model()
    graph = graph if graph is not None else Graph()
    with _quiet_ill_typed_literals():
        _write(record, model.classes[class_name], graph, model, owner, via_slot)
    return graph


@contextmanager
def _quiet_ill_typed_literals() -> Iterator[None]:
    """rdflib logs a traceback for every ill-typed literal (``2024-13-45``^^xsd:date); validation reports them."""
    logger = logging.getLogger("rdflib.term")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(level)


def _write(
    record: dict[str, Any], cls: ClassInfo, graph: Graph, model: RembiModel, owner: str | None, via_slot: str | None
) -> URIRef:
    if cls.identifier:
        node = URIRef(model.expand(str(record[cls.identifier])))
    else:
        node = URIRef(identifiers.value_iri(owner or "urn:rembi:orphan", via_slot or cls.name, record))
    graph.add((node, RDF.type, URIRef(cls.uri)))
    for key, value in record.items():
        if key == cls.identifier or value is None:
            continue
        slot = cls.slots.get(key)
        if slot is None:
            raise ValueError(f"{cls.name} has no slot {key!r}")
        predicate = URIRef(slot.uri)
        for item in _as_list(value) if slot.multivalued else [value]:
            graph.add((node, predicate, _term(item, slot, graph, model, str(node))))
    return node


def _term(item: Any, slot, graph: Graph, model: RembiModel, owner: str):
    if slot.kind == "literal":
        return literal_for(item, slot.datatype)
    if slot.kind == "iri":
        return URIRef(model.expand(str(item)))
    if slot.kind == "enum":
        iri = model.enum_iri(slot.range, str(item))
        # a value outside the enum is kept as a literal, so that validation reports it (sh:in)
        return URIRef(iri) if iri else Literal(str(item))
    target = model.classes[slot.range]
    if slot.inlined and isinstance(item, dict):
        return _write(item, target, graph, model, owner, slot.name)
    return _reference(model.expand(str(item)))


def _reference(value: str) -> URIRef:
    """An IRI for a reference; a name that is not an IRI (an unresolved title) gets a URN that says so."""
    if ":" in value and " " not in value:
        return URIRef(value)
    return URIRef("urn:rembi:unresolved:" + quote(value, safe=""))
