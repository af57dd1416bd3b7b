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

from catalog.dates import release_date_of
from catalog.errors import ValidationFailed
from loaders.ontology_terms import GENERIC_IMAGING_METHOD, imaging_method_term, organism_term, taxon_curie, term_by_id, term_curie
from loaders.pagetab import FileListRef, LoadedRecord, cross_reference, licence_name, normalise_doi, provenance

LOADER_NAME = "bia-catalog RO-Crate loader"
LOADER_VERSION = "1"
METADATA = "ro-crate-metadata.json"


class RoCrateError(ValidationFailed):
    code = "invalid_ro_crate"


def _types(node: dict[str, Any]) -> set[str]:
    value = node.get("@type") or []
    return {value} if isinstance(value, str) else set(value)


def _items(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value] if value not in (None, "", {}) else []


def _ids(value: Any) -> list[str]:
    """The ``@id`` of each reference (entities embedded without one have none and are left out)."""
    return [str(i["@id"]) if isinstance(i, dict) else str(i) for i in _items(value) if i and (not isinstance(i, dict) or "@id" in i)]


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
        doc = json.loads(metadata.read_text(encoding="utf-8-sig"))
    except (OSError, ValueError) as exc:
        raise RoCrateError(f"{name}: cannot read the crate metadata ({exc})", [{"file": name}]) from exc
    graph = doc.get("@graph") if isinstance(doc, dict) else None
    if not isinstance(graph, list):
        raise RoCrateError(f"{name}: no @graph: not an RO-Crate", [{"file": name, "field": "@graph"}])
    nodes = {n["@id"]: n for n in graph if isinstance(n, dict) and "@id" in n}

    def resolve(value: Any) -> list[dict[str, Any]]:
        """The entities a property points to: by ``@id``, embedded, or a bare IRI/text (as ``{"@id": …}``)."""
        found = []
        for item in _items(value):
            if isinstance(item, dict):
                found.append(nodes.get(item["@id"], item) if "@id" in item else item)
            elif item:
                found.append(nodes.get(str(item), {"@id": str(item)}))
        return found

    descriptor = nodes.get(METADATA) or {}
    about = descriptor.get("about")
    root_id = about.get("@id", "./") if isinstance(about, dict) else str(about or "./")
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
        record["release_date"] = release_date_of(_text(root.get("datePublished")))
    for licence in resolve(root.get("license"))[:1]:  # an IRI, or a licence entity naming one
        written = [_text(licence.get(k)) for k in ("@id", "url", "identifier", "name")]
        named = next((licence_name(w) for w in written if w and licence_name(w)), None)
        if not named:
            shown = next((w for w in written if w), "(none)")
            raise RoCrateError(f"{name}: licence {shown!r} is not one the catalog knows", [{"file": name, "node": root_id, "field": "license"}])
        record["license"] = named
    keywords = root.get("keyword") or root.get("keywords") or []
    keywords = [k.strip() for k in (keywords.split(",") if isinstance(keywords, str) else keywords) if str(k).strip()]
    if keywords:
        record["keywords"] = keywords
    if _text(root.get("acknowledgement")):
        record["acknowledgements"] = _text(root.get("acknowledgement"))

    authors = []
    for person in resolve(root.get("contributor") or root.get("author")):
        ref = str(person.get("@id", ""))
        who = _text(person.get("displayName")) or _text(person.get("name")) or ref
        if not who:
            unmapped.append(f"{name}: a contributor without a name or @id left out")
            continue
        author: dict[str, Any] = {"name": who, "position": len(authors) + 1}
        if re.match(r"^https://orcid\.org/\d{4}-\d{4}-\d{4}-\d{3}[\dX]$", ref):
            author["orcid"] = ref
        if _text(person.get("contactEmail")) and "@" in _text(person.get("contactEmail")):  # type: ignore[operator]
            author["email"] = _text(person.get("contactEmail"))
        roles = [r for r in _items(person.get("role")) if isinstance(r, str) and r]
        if roles:
            author["roles"] = roles
        affiliations = []
        for org in resolve(person.get("affiliation")):
            org_id = str(org.get("@id", ""))
            affiliation = {"name": _text(org.get("displayName")) or _text(org.get("name")) or org_id}
            if not affiliation["name"]:
                continue
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
        "bia:BioSample": "biosamples",
        "bia:ImageAnalysisMethod": "image_analyses",
        "bia:AnnotationMethod": "annotation_methods",
        "bia:ImageCorrelationMethod": "image_correlations",
    }
    titles: dict[str, str] = {}
    for node_id, node in nodes.items():
        for kind, key in kinds.items():
            if kind in _types(node):
                obj = _rembi_object(key, node, resolve, unmapped)
                record.setdefault(key, []).append(obj)
                titles[node_id] = obj["title"]
    datasets = [n for n in resolve(root.get("hasPart")) if {"bia:Dataset", "Dataset"} & _types(n)]
    _add_specimens(record, nodes, datasets, titles, resolve, unmapped)
    components, by_dataset = [], {}
    for node in datasets:
        ref = str(node.get("@id", ""))
        component: dict[str, Any] = {"title": _text(node.get("name")) or urllib.parse.unquote(ref.lstrip("#"))}
        if _text(node.get("description")):
            component["description"] = _text(node.get("description"))
        for prop, slot in (
            ("associatedImageAcquisitionProtocol", "component_image_acquisitions"),
            ("associatedSpecimen", "component_specimens"),
            ("associatedSpecimenImagingPreparationProtocol", "component_specimens"),
            ("associatedBiologicalEntity", "component_biosamples"),
            ("associatedImageAnalysisMethod", "component_image_analyses"),
            ("associatedAnnotationMethod", "component_annotation_methods"),
            ("associatedImageCorrelationMethod", "component_image_correlations"),
        ):
            linked = [titles[i] for i in _ids(node.get(prop)) if i in titles]
            if linked:
                component[slot] = list(dict.fromkeys(component.get(slot, []) + linked))
        components.append(component)
        by_dataset[ref] = component["title"]
    if components:
        record["components"] = components
    _add_publications_funding_links(record, root, resolve, unmapped)

    file_lists = [
        FileListRef(None, node_id, node_id, "RO-Crate file list", component_column="dataset", component_by_value=by_dataset)
        for node_id, node in nodes.items()
        if "bia:FileList" in _types(node) or ("csvw:Table" in _types(node) and "File" in _types(node))
    ]
    record["provenance"] = provenance("BioImage Archive", LOADER_NAME, LOADER_VERSION,
                                      accession=accession, source_url=source_url, harvested_at=harvested_at)
    return LoadedRecord(record=record, file_lists=file_lists, unmapped=unmapped)


def _add_specimens(record: dict[str, Any], nodes: dict[str, dict[str, Any]], datasets: list[dict[str, Any]],
                   titles: dict[str, str], resolve: Any, unmapped: list[str]) -> None:
    """REMBI specimens: a ``bia:Specimen`` (its preparation protocols and the biosamples it was made from), or a
    ``bia:SpecimenImagingPreparationProtocol`` that datasets use with biosamples (BIA's newer crates imply the
    specimen by that pair). A protocol no biosample goes with has no REMBI specimen; it is noted."""
    specimens: list[dict[str, Any]] = []
    used_protocols: set[str] = set()
    for node_id, node in nodes.items():
        if "bia:Specimen" not in _types(node):
            continue
        protocols = resolve(node.get("imagingPreparationProtocol"))
        used_protocols |= {str(p.get("@id")) for p in protocols}
        text = "; ".join(filter(None, (_text(p.get("protocolDescription")) or _text(p.get("title")) or _text(p.get("name")) for p in protocols)))
        title = _text(node.get("title")) or _text(node.get("name")) or urllib.parse.unquote(node_id.lstrip("#"))
        specimens.append({"title": title, "sample_preparation": text or _text(node.get("description")) or title,
                          "specimen_biosamples": [titles[i] for i in _ids(node.get("biologicalEntity")) if i in titles]})
        titles[node_id] = title
    for node_id, node in nodes.items():
        if "bia:SpecimenImagingPreparationProtocol" not in _types(node) or node_id in used_protocols:
            continue
        title = _text(node.get("title")) or _text(node.get("name")) or urllib.parse.unquote(node_id.lstrip("#"))
        biosamples = [titles[b] for d in datasets if node_id in _ids(d.get("associatedSpecimenImagingPreparationProtocol"))
                      for b in _ids(d.get("associatedBiologicalEntity")) if b in titles]
        if not biosamples:
            unmapped.append(f"{node_id}: preparation protocol {title!r} goes with no biosample, so it makes no REMBI specimen")
            continue
        specimens.append({"title": title, "sample_preparation": _text(node.get("protocolDescription")) or _text(node.get("description")) or title,
                          "specimen_biosamples": list(dict.fromkeys(biosamples))})
        titles[node_id] = title
    if specimens:
        record["specimens"] = specimens


def _add_publications_funding_links(record: dict[str, Any], root: dict[str, Any], resolve: Any, unmapped: list[str]) -> None:
    """Publications (``relatedPublication``/``citation``), grants (``funding``) and links (``seeAlso``)."""
    for article in resolve(root.get("relatedPublication") or root.get("citation")):
        ids = [_text(article.get(k)) for k in ("@id", "identifier", "doi", "url")]
        doi = next((normalise_doi(i) for i in ids if i and normalise_doi(i)), None)
        title = _text(article.get("title")) or _text(article.get("name")) or _text(article.get("headline"))
        if not (title or doi):
            continue
        publication: dict[str, Any] = {"title": title or f"doi:{doi}"}
        if doi:
            publication["doi"] = doi
        year = _text(article.get("yearPublished")) or _text(article.get("datePublished"))
        if year and year[:4].isdigit():
            publication["year"] = int(year[:4])
        if _text(article.get("authorNames")):
            publication["publication_authors"] = _text(article.get("authorNames"))
        pubmed = _text(article.get("pubmedId"))
        if pubmed and pubmed.isdigit():
            publication["pubmed_id"] = pubmed
        record.setdefault("publications", []).append(publication)
    for grant in resolve(root.get("funding")):
        funder = next((_text(f.get("displayName")) or _text(f.get("name")) or (None if str(f.get("@id", "#")).startswith("#") else _text(f.get("@id")))
                       for f in resolve(grant.get("funder"))), None)
        entry = {k: v for k, v in (("funder", funder), ("grant_id", _text(grant.get("identifier")))) if v}
        if entry:
            record.setdefault("funding", []).append(entry)
    for link in resolve(root.get("seeAlso")):
        target = next((t for t in (_text(link.get(k)) for k in ("link", "url", "@id")) if t and "://" in t), None)
        ref = cross_reference(target) if target else None
        if ref:
            record.setdefault("cross_references", []).append(ref)
        elif target:
            unmapped.append(f"seeAlso {target!r} is not a link the catalog understands; left out")


def _rembi_object(key: str, node: dict[str, Any], resolve: Any, unmapped: list[str]) -> dict[str, Any]:
    """One referenced entity as the REMBI object of its kind (protocol text in the required slot)."""
    title = _text(node.get("title")) or _text(node.get("name")) or urllib.parse.unquote(str(node["@id"]).lstrip("#"))
    text = _text(node.get("protocolDescription")) or _text(node.get("description")) or title
    obj: dict[str, Any] = {"title": title}
    used = {"@id", "@type", "title", "name", "protocolDescription", "description"}
    if key == "image_acquisitions":
        method = _text(node.get("imagingMethodName"))
        fbbi = [term_curie(i) for i in _ids(node.get("fbbiId")) if i]
        term = next((term_by_id(c) for c in fbbi if c and term_by_id(c)), None)
        if term is None and method:
            term, _ = imaging_method_term(method)
        obj["imaging_methods"] = [(term or GENERIC_IMAGING_METHOD).as_record()]
        obj["acquisition_parameters"] = text
        if _text(node.get("imagingInstrumentDescription")):
            obj["imaging_instrument"] = _text(node.get("imagingInstrumentDescription"))
        used |= {"imagingMethodName", "fbbiId", "imagingInstrumentDescription"}
    elif key == "biosamples":
        obj["biological_entity"] = _text(node.get("biologicalEntityDescription")) or title
        organisms = []
        for taxon in resolve(node.get("organismClassification")):  # Taxon entities, or taxon IRIs
            label = _text(taxon.get("scientificName")) or _text(taxon.get("commonName")) or _text(taxon.get("name"))
            curie = next((taxon_curie(str(v)) for v in (taxon.get("ncbiId"), taxon.get("@id")) if v and taxon_curie(str(v))), None)
            term = (organism_term(label) if label else None) or (term_by_id(curie) if curie else None)
            if curie or term:
                organisms.append({"id": curie or term.id, "label": label or (term.label if term else curie),  # type: ignore[union-attr]
                                  "ontology_name": "NCBITaxon"})
            elif label:
                unmapped.append(f"{node['@id']}: organism {label!r} has no NCBITaxon id the catalog knows; left out")
        if organisms:
            obj["organisms"] = organisms
        used |= {"biologicalEntityDescription", "organismClassification"}
    elif key == "image_analyses":
        obj["analysis_overview"] = text
    elif key == "annotation_methods":
        obj["annotation_criteria"] = text
    elif key == "image_correlations":
        obj["spatial_and_temporal_alignment"] = text
    def is_reference(value: Any) -> bool:
        return isinstance(value, dict) or (isinstance(value, list) and any(isinstance(i, dict) for i in value))

    attributes = [
        {"name": k, "value": _text(v)} for k, v in node.items() if k not in used and _text(v) and not is_reference(v)
    ]
    dropped = [k for k, v in node.items() if k not in used and is_reference(v)]
    if dropped:
        unmapped.append(f"{node['@id']}: {', '.join(dropped)} (references) not mapped")
    if attributes:
        obj["attributes"] = attributes
    return obj
