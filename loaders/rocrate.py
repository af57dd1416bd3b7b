"""The BioImage Archive's RO-Crate submission format → a REMBI study record.

A crate is a folder with ``ro-crate-metadata.json`` (JSON-LD; the root data entity ``./`` is the study) and
file lists described as ``csvw:Table`` entities (``file_list.tsv``: ``file_path``, ``size_in_bytes``, a
``dataset`` column naming the dataset entity each file belongs to, and any other columns).

Mapping: the root's name/description/licence/datePublished/keywords/accessionId; contributors (``Person`` with
ORCID IRIs, e-mail, roles, affiliations); datasets (``bia:Dataset``) become study components associated with the
acquisition protocols, specimens, biosamples, analysis and annotation methods they reference; those entities
become the REMBI objects of the same kind. Unknown properties are kept as attributes.
"""
from __future__ import annotations

import json
import re
import urllib.parse
from pathlib import Path
from typing import Any

from catalog.errors import ValidationFailed
from loaders.ontology_terms import GENERIC_IMAGING_METHOD, imaging_method_term, organism_term, taxon_curie, term_by_id
from loaders.pagetab import FileListRef, LoadedRecord, licence_name

LOADER_NAME = "bia-catalog RO-Crate loader"
LOADER_VERSION = "1"
METADATA = "ro-crate-metadata.json"


class RoCrateError(ValidationFailed):
    code = "invalid_ro_crate"


def _types(node: dict[str, Any]) -> set[str]:
    value = node.get("@type") or []
    return {value} if isinstance(value, str) else set(value)


def _ids(value: Any) -> list[str]:
    items = value if isinstance(value, list) else [value] if value else []
    return [i["@id"] if isinstance(i, dict) else str(i) for i in items if i]


def _text(value: Any) -> str | None:
    if isinstance(value, list):
        value = "; ".join(str(v) for v in value if v)
    return str(value).strip() if value not in (None, "") and str(value).strip() else None


def load_rocrate(path: str | Path, source_url: str | None = None, harvested_at: str | None = None) -> LoadedRecord:
    """Read a crate folder (or its ``ro-crate-metadata.json``)."""
    path = Path(path)
    metadata = path / METADATA if path.is_dir() else path
    name = str(metadata)
    try:
        doc = json.loads(metadata.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise RoCrateError(f"{name}: cannot read the crate metadata ({exc})", [{"file": name}]) from exc
    graph = doc.get("@graph") if isinstance(doc, dict) else None
    if not isinstance(graph, list):
        raise RoCrateError(f"{name}: no @graph: not an RO-Crate", [{"file": name, "field": "@graph"}])
    nodes = {n["@id"]: n for n in graph if isinstance(n, dict) and "@id" in n}
    descriptor = nodes.get(METADATA) or {}
    root_id = (descriptor.get("about") or {}).get("@id", "./")
    root = nodes.get(root_id)
    if root is None:
        raise RoCrateError(f"{name}: no root data entity {root_id!r}", [{"file": name, "field": "about"}])

    def need(node: dict[str, Any], key: str, *alternatives: str) -> str:
        for k in (key, *alternatives):
            if _text(node.get(k)):
                return _text(node.get(k))  # type: ignore[return-value]
        raise RoCrateError(f"{name}: {node.get('@id')} has no {key}", [{"file": name, "node": node.get("@id"), "field": key}])

    unmapped: list[str] = []
    title = need(root, "name", "title")
    record: dict[str, Any] = {"title": title, "description": _text(root.get("description")) or title}
    accession = _text(root.get("accessionId")) or _text(root.get("identifier"))
    if accession:
        record["accession"] = accession
    if _text(root.get("datePublished")):
        record["release_date"] = _text(root.get("datePublished"))[:10]  # type: ignore[index]
    licence = _ids(root.get("license"))
    if licence:
        named = licence_name(licence[0])
        if not named:
            raise RoCrateError(f"{name}: licence {licence[0]!r} is not one the catalog knows", [{"file": name, "node": root_id, "field": "license"}])
        record["license"] = named
    keywords = root.get("keyword") or root.get("keywords") or []
    keywords = [k.strip() for k in (keywords.split(",") if isinstance(keywords, str) else keywords) if str(k).strip()]
    if keywords:
        record["keywords"] = keywords
    if _text(root.get("acknowledgement")):
        record["acknowledgements"] = _text(root.get("acknowledgement"))

    authors = []
    for ref in _ids(root.get("contributor") or root.get("author")):
        person = nodes.get(ref, {"@id": ref})
        author: dict[str, Any] = {"name": _text(person.get("displayName")) or _text(person.get("name")) or ref, "position": len(authors) + 1}
        if re.match(r"^https://orcid\.org/\d{4}-\d{4}-\d{4}-\d{3}[\dX]$", ref):
            author["orcid"] = ref
        if _text(person.get("contactEmail")) and "@" in _text(person.get("contactEmail")):  # type: ignore[operator]
            author["email"] = _text(person.get("contactEmail"))
        roles = [r for r in (person.get("role") or []) if isinstance(r, str) and r]
        if roles:
            author["roles"] = roles
        affiliations = []
        for org_id in _ids(person.get("affiliation")):
            org = nodes.get(org_id, {})
            affiliation = {"name": _text(org.get("displayName")) or _text(org.get("name")) or org_id}
            if org_id.startswith("https://ror.org/"):
                affiliation["ror"] = org_id
            affiliations.append(affiliation)
        if affiliations:
            author["affiliations"] = affiliations
        authors.append(author)
    record["authors"] = authors

    # REMBI objects from the entities the datasets reference
    kinds = {
        "bia:ImageAcquisitionProtocol": "image_acquisitions",
        "bia:Specimen": "specimens",
        "bia:BioSample": "biosamples",
        "bia:ImageAnalysisMethod": "image_analyses",
        "bia:AnnotationMethod": "annotation_methods",
        "bia:ImageCorrelationMethod": "image_correlations",
        "bia:SpecimenImagingPreparationProtocol": "specimens",
    }
    titles: dict[str, str] = {}
    for node_id, node in nodes.items():
        for kind, key in kinds.items():
            if kind in _types(node):
                obj = _rembi_object(key, node, name, unmapped)
                record.setdefault(key, []).append(obj)
                titles[node_id] = obj["title"]
    components, by_dataset = [], {}
    for ref in _ids(root.get("hasPart")):
        node = nodes.get(ref, {})
        if "bia:Dataset" not in _types(node) and "Dataset" not in _types(node):
            continue
        component: dict[str, Any] = {"title": _text(node.get("name")) or urllib.parse.unquote(ref.lstrip("#"))}
        if _text(node.get("description")):
            component["description"] = _text(node.get("description"))
        for prop, slot in (
            ("associatedImageAcquisitionProtocol", "component_image_acquisitions"),
            ("associatedSpecimen", "component_specimens"),
            ("associatedBiologicalEntity", "component_biosamples"),
            ("associatedImageAnalysisMethod", "component_image_analyses"),
            ("associatedAnnotationMethod", "component_annotation_methods"),
            ("associatedImageCorrelationMethod", "component_image_correlations"),
        ):
            linked = [titles[i] for i in _ids(node.get(prop)) if i in titles]
            if linked:
                component[slot] = linked
        components.append(component)
        by_dataset[ref] = component["title"]
    if components:
        record["components"] = components

    file_lists = [
        FileListRef(None, node_id, node_id, "RO-Crate file list", component_column="dataset", component_by_value=by_dataset)
        for node_id, node in nodes.items()
        if "bia:FileList" in _types(node) or ("csvw:Table" in _types(node) and "File" in _types(node))
    ]
    provenance: dict[str, Any] = {"source_resource": "BioImage Archive", "loader": LOADER_NAME, "loader_version": LOADER_VERSION}
    if accession:
        provenance["source_accession"] = accession
    if source_url:
        provenance["source_url"] = source_url
    if harvested_at:
        provenance["harvested_at"] = harvested_at
    record["provenance"] = provenance
    return LoadedRecord(record=record, file_lists=file_lists, unmapped=unmapped)


def _rembi_object(key: str, node: dict[str, Any], name: str, unmapped: list[str]) -> dict[str, Any]:
    """One referenced entity as the REMBI object of its kind (protocol text in the required slot)."""
    title = _text(node.get("title")) or _text(node.get("name")) or urllib.parse.unquote(str(node["@id"]).lstrip("#"))
    text = _text(node.get("protocolDescription")) or _text(node.get("description")) or title
    obj: dict[str, Any] = {"title": title}
    used = {"@id", "@type", "title", "name", "protocolDescription", "description"}
    if key == "image_acquisitions":
        method = _text(node.get("imagingMethodName"))
        fbbi = [i for i in _ids(node.get("fbbiId")) if i]
        term = term_by_id(f"FBbi:{fbbi[0].rsplit('_', 1)[-1]}") if fbbi else None
        if term is None and method:
            term, _ = imaging_method_term(method)
        obj["imaging_methods"] = [(term or GENERIC_IMAGING_METHOD).as_record()]
        obj["acquisition_parameters"] = text
        if _text(node.get("imagingInstrumentDescription")):
            obj["imaging_instrument"] = _text(node.get("imagingInstrumentDescription"))
        used |= {"imagingMethodName", "fbbiId", "imagingInstrumentDescription"}
    elif key == "specimens":
        obj["sample_preparation"] = text
        obj["specimen_biosamples"] = []
    elif key == "biosamples":
        obj["biological_entity"] = _text(node.get("biologicalEntityDescription")) or title
        organisms = []
        for organism in node.get("organismClassification") or []:
            label = _text(organism.get("scientificName") if isinstance(organism, dict) else organism)
            curie = taxon_curie(str(organism.get("@id", ""))) if isinstance(organism, dict) else None
            term = organism_term(label or "") if label else None
            if term or curie:
                organisms.append({"id": curie or term.id, "label": label or term.label, "ontology_name": "NCBITaxon"})  # type: ignore[union-attr]
        if organisms:
            obj["organisms"] = organisms
        used |= {"biologicalEntityDescription", "organismClassification"}
    elif key == "image_analyses":
        obj["analysis_overview"] = text
    elif key == "annotation_methods":
        obj["annotation_criteria"] = text
    elif key == "image_correlations":
        obj["spatial_and_temporal_alignment"] = text
    attributes = [
        {"name": k, "value": _text(v)} for k, v in node.items() if k not in used and _text(v) and not isinstance(v, dict)
    ]
    if attributes:
        obj["attributes"] = attributes
    return obj
