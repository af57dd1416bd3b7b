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
import urllib.parse
from pathlib import Path
from typing import Any

from catalog import external_ids
from catalog.dates import release_date_of
from catalog.errors import ValidationFailed
from loaders.enums import licence_name
from loaders.gide_crate import GideCrate, is_detached
from loaders.loaded import Draft, FileListRef, LoadedRecord, link_reference, provenance, year
from loaders.ontology_terms import GENERIC_IMAGING_METHOD, imaging_method_term, organism_term, term_by_id, term_curie

LOADER_NAME = "bia-catalog RO-Crate loader"
LOADER_VERSION = "1"
METADATA = "ro-crate-metadata.json"
#: Entity types → the record slot of the REMBI objects they become.
KINDS = {
    "bia:ImageAcquisitionProtocol": "image_acquisitions",
    "bia:BioSample": "biosamples",
    "bia:ImageAnalysisMethod": "image_analyses",
    "bia:AnnotationMethod": "annotation_methods",
    "bia:ImageCorrelationMethod": "image_correlations",
}
#: A dataset's properties → the component slot naming the objects they reference.
ASSOCIATIONS = (
    ("associatedImageAcquisitionProtocol", "component_image_acquisitions"),
    ("associatedSpecimen", "component_specimens"),
    ("associatedSpecimenImagingPreparationProtocol", "component_specimens"),
    ("associatedBiologicalEntity", "component_biosamples"),
    ("associatedImageAnalysisMethod", "component_image_analyses"),
    ("associatedAnnotationMethod", "component_annotation_methods"),
    ("associatedImageCorrelationMethod", "component_image_correlations"),
)
#: The slot holding an object's protocol text, by kind (acquisitions and biosamples are read apart).
PROTOCOL_SLOTS = {
    "image_analyses": "analysis_overview",
    "annotation_methods": "annotation_criteria",
    "image_correlations": "spatial_and_temporal_alignment",
}


class RoCrateError(ValidationFailed):
    code = "invalid_ro_crate"


def _types(node: dict[str, Any]) -> set[str]:
    value = node.get("@type") or []
    return {value} if isinstance(value, str) else set(value)


def _items(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value] if value not in (None, "", {}) else []


def _ids(value: Any) -> list[str]:
    """The ``@id`` of each reference (entities embedded without one have none and are left out)."""
    return [
        str(i["@id"]) if isinstance(i, dict) else str(i) for i in _items(value) if i and (not isinstance(i, dict) or "@id" in i)
    ]


def _text(value: Any) -> str | None:
    if isinstance(value, list):
        value = "; ".join(str(v) for v in value if v)
    return str(value).strip() if value not in (None, "") and str(value).strip() else None


def _first_text(node: dict[str, Any], *keys: str) -> str | None:
    return next((t for t in (_text(node.get(k)) for k in keys) if t), None)


def _title(node: dict[str, Any]) -> str:
    return _first_text(node, "title", "name") or urllib.parse.unquote(str(node["@id"]).lstrip("#"))


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
    crate = _Crate(name, graph)
    root_id = crate.root_id()
    if is_detached(root_id) and root_id in crate.nodes:  # a GIDE search crate (IDR, SSBD, the BioImage Archive)
        return GideCrate(name, doc, crate.nodes, crate.nodes[root_id]).load(source_url, harvested_at, crate.fail)
    return crate.load(source_url, harvested_at)


class _Crate:
    """A crate's entities by ``@id``, read into one record."""

    def __init__(self, name: str, graph: list[Any]) -> None:
        self.name = name
        self.nodes = {n["@id"]: n for n in graph if isinstance(n, dict) and "@id" in n}
        self.draft = Draft()
        self.record = self.draft.record
        self.titles: dict[str, str] = {}  # entity @id → the title of the REMBI object it became

    def resolve(self, value: Any) -> list[dict[str, Any]]:
        """The entities a property points to: by ``@id``, embedded, or a bare IRI/text (as ``{"@id": …}``)."""
        found = []
        for item in _items(value):
            if isinstance(item, dict):
                found.append(self.nodes.get(item["@id"], item) if "@id" in item else item)
            elif item:
                found.append(self.nodes.get(str(item), {"@id": str(item)}))
        return found

    def fail(self, message: str, **where: Any) -> RoCrateError:
        return RoCrateError(f"{self.name}: {message}", [{"file": self.name, **where}])

    def root_id(self) -> str:
        """The root data entity the metadata descriptor is ``about``: the descriptor is ``ro-crate-metadata.json``
        or, in a detached crate, a name or URL ending ``-ro-crate-metadata.json``."""
        descriptor = self.nodes.get(METADATA) or next(
            (n for i, n in self.nodes.items() if str(i).endswith(METADATA) and n.get("about")), {}
        )
        about = descriptor.get("about")
        about = about[0] if isinstance(about, list) and about else about
        return str(about.get("@id", "./")) if isinstance(about, dict) else str(about or "./")

    def load(self, source_url: str | None, harvested_at: str | None) -> LoadedRecord:
        root_id = self.root_id()
        root = self.nodes.get(root_id)
        if root is None:
            raise self.fail(f"no root data entity {root_id!r}", field="about")
        accession = self._study(root, root_id)
        self._contributors(root)
        for node_id, node in self.nodes.items():
            for kind, key in KINDS.items():
                if kind in _types(node):
                    self.record.setdefault(key, []).append(self._object(key, node))
                    self.titles[node_id] = self.record[key][-1]["title"]
        datasets = [n for n in self.resolve(root.get("hasPart")) if {"bia:Dataset", "Dataset"} & _types(n)]
        self._specimens(datasets)
        by_dataset = self._components(datasets)
        self._publications(root)
        self._funding_and_links(root)
        file_lists = [
            FileListRef(None, node_id, node_id, "RO-Crate file list", component_column="dataset", component_by_value=by_dataset)
            for node_id, node in self.nodes.items()
            if "bia:FileList" in _types(node) or ("csvw:Table" in _types(node) and "File" in _types(node))
        ]
        self.record["provenance"] = provenance(
            "BioImage Archive", LOADER_NAME, LOADER_VERSION, accession=accession, source_url=source_url, harvested_at=harvested_at
        )
        return self.draft.loaded(file_lists)

    # ------------------------------------------------------------------ the study and its people

    def _study(self, root: dict[str, Any], root_id: str) -> str | None:
        title = _first_text(root, "name", "title")
        if not title:
            raise self.fail(f"{root_id} has no name", node=root_id, field="name")
        self.record.update(title=title, description=_text(root.get("description")) or title)
        accession = _first_text(root, "accessionId", "identifier")
        if accession:
            self.record["accession"] = accession
        if _text(root.get("datePublished")):
            self.record["release_date"] = release_date_of(_text(root.get("datePublished")))
        for licence in self.resolve(root.get("license"))[:1]:  # an IRI, or a licence entity naming one
            written = [w for w in (_text(licence.get(k)) for k in ("@id", "url", "identifier", "name")) if w]
            named = next((licence_name(w) for w in written if licence_name(w)), None)
            if not named:
                shown = written[0] if written else "(none)"
                raise self.fail(f"licence {shown!r} is not one the catalog knows", node=root_id, field="license")
            self.record["license"] = named
        keywords = root.get("keyword") or root.get("keywords") or []
        keywords = [k.strip() for k in (keywords.split(",") if isinstance(keywords, str) else keywords) if str(k).strip()]
        if keywords:
            self.record["keywords"] = keywords
        if _text(root.get("acknowledgement")):
            self.record["acknowledgements"] = _text(root.get("acknowledgement"))
        return accession

    def _contributors(self, root: dict[str, Any]) -> None:
        """Contributors (``Person`` entities, their ``@id`` an ORCID IRI where they have one) as authors."""
        for person in self.resolve(root.get("contributor") or root.get("author")):
            ref = str(person.get("@id", ""))
            who = _first_text(person, "displayName", "name") or ref
            if not who:
                self.draft.note(f"{self.name}: a contributor without a name or @id left out")
                continue
            email = _text(person.get("contactEmail"))
            self.draft.author(
                who,
                orcid=ref if "orcid.org/" in ref else None,
                email=email if email and "@" in email else None,
                roles=[r for r in _items(person.get("role")) if isinstance(r, str)],
                affiliations=self._affiliations(person),
                where=f"{self.name}: ",
            )
        self.record.setdefault("authors", [])

    def _affiliations(self, person: dict[str, Any]) -> list[dict[str, Any]]:
        found = []
        for org in self.resolve(person.get("affiliation")):
            org_id = str(org.get("@id", ""))
            name = _first_text(org, "displayName", "name") or org_id
            if name:
                found.append(self.draft.organisation(name, ror=org_id if "ror.org/" in org_id else None, where=f"{self.name}: "))
        return found

    # ------------------------------------------------------------------ REMBI objects

    def _object(self, key: str, node: dict[str, Any]) -> dict[str, Any]:
        """One referenced entity as the REMBI object of its kind (protocol text in the required slot)."""
        title = _title(node)
        text = _first_text(node, "protocolDescription", "description") or title
        obj: dict[str, Any] = {"title": title}
        used = {"@id", "@type", "title", "name", "protocolDescription", "description"}
        if key == "image_acquisitions":
            used |= self._acquisition(obj, node, text)
        elif key == "biosamples":
            used |= self._biosample(obj, node, title)
        else:
            obj[PROTOCOL_SLOTS[key]] = text
        self._kept(obj, node, used)
        return obj

    def _acquisition(self, obj: dict[str, Any], node: dict[str, Any], text: str) -> set[str]:
        method = _text(node.get("imagingMethodName"))
        fbbi = [term_curie(i) for i in _ids(node.get("fbbiId")) if i]
        term = next((term_by_id(c) for c in fbbi if c and term_by_id(c)), None)
        if term is None and method:
            term, _ = imaging_method_term(method)
        obj["imaging_methods"] = [(term or GENERIC_IMAGING_METHOD).as_record()]
        obj["acquisition_parameters"] = text
        if _text(node.get("imagingInstrumentDescription")):
            obj["imaging_instrument"] = _text(node.get("imagingInstrumentDescription"))
        return {"imagingMethodName", "fbbiId", "imagingInstrumentDescription"}

    def _biosample(self, obj: dict[str, Any], node: dict[str, Any], title: str) -> set[str]:
        obj["biological_entity"] = _text(node.get("biologicalEntityDescription")) or title
        organisms = []
        for taxon in self.resolve(node.get("organismClassification")):  # Taxon entities, or taxon IRIs
            label = _first_text(taxon, "scientificName", "commonName", "name")
            curie = next(
                (c for c in (external_ids.ncbitaxon(str(v)) for v in (taxon.get("ncbiId"), taxon.get("@id")) if v) if c), None
            )
            term = (organism_term(label) if label else None) or (term_by_id(curie) if curie else None)
            if curie or term:
                organisms.append(
                    {
                        "id": curie or term.id,  # type: ignore[union-attr]
                        "label": label or (term.label if term else curie),
                        "ontology_name": "NCBITaxon",
                    }
                )
            elif label:
                self.draft.note(f"{node['@id']}: organism {label!r} has no NCBITaxon id the catalog knows; left out")
        if organisms:
            obj["organisms"] = organisms
        return {"biologicalEntityDescription", "organismClassification"}

    def _kept(self, obj: dict[str, Any], node: dict[str, Any], used: set[str]) -> None:
        """An entity's other properties: text as attributes, references noted as not mapped."""

        def is_reference(value: Any) -> bool:
            return isinstance(value, dict) or (isinstance(value, list) and any(isinstance(i, dict) for i in value))

        attributes = [
            {"name": k, "value": _text(v)} for k, v in node.items() if k not in used and _text(v) and not is_reference(v)
        ]
        dropped = [k for k, v in node.items() if k not in used and is_reference(v)]
        if dropped:
            self.draft.note(f"{node['@id']}: {', '.join(dropped)} (references) not mapped")
        if attributes:
            obj["attributes"] = attributes

    def _specimens(self, datasets: list[dict[str, Any]]) -> None:
        """REMBI specimens: a ``bia:Specimen`` (its preparation protocols and the biosamples it was made from), or a
        ``bia:SpecimenImagingPreparationProtocol`` that datasets use with biosamples (BIA's newer crates imply the
        specimen by that pair). A protocol no biosample goes with has no REMBI specimen; it is noted."""
        used_protocols: set[str] = set()
        for node_id, node in self.nodes.items():
            if "bia:Specimen" in _types(node):
                protocols = self.resolve(node.get("imagingPreparationProtocol"))
                used_protocols |= {str(p.get("@id")) for p in protocols}
                text = "; ".join(filter(None, (_first_text(p, "protocolDescription", "title", "name") for p in protocols)))
                title = _title(node)
                self._specimen(
                    node_id,
                    title,
                    text or _text(node.get("description")) or title,
                    [self.titles[i] for i in _ids(node.get("biologicalEntity")) if i in self.titles],
                )
        for node_id, node in self.nodes.items():
            if "bia:SpecimenImagingPreparationProtocol" in _types(node) and node_id not in used_protocols:
                self._implied_specimen(node_id, node, datasets)

    def _implied_specimen(self, node_id: str, node: dict[str, Any], datasets: list[dict[str, Any]]) -> None:
        title = _title(node)
        biosamples = [
            self.titles[b]
            for d in datasets
            if node_id in _ids(d.get("associatedSpecimenImagingPreparationProtocol"))
            for b in _ids(d.get("associatedBiologicalEntity"))
            if b in self.titles
        ]
        if not biosamples:
            self.draft.note(f"{node_id}: preparation protocol {title!r} goes with no biosample, so it makes no REMBI specimen")
            return
        self._specimen(
            node_id, title, _first_text(node, "protocolDescription", "description") or title, list(dict.fromkeys(biosamples))
        )

    def _specimen(self, node_id: str, title: str, preparation: str, biosamples: list[str]) -> None:
        self.record.setdefault("specimens", []).append(
            {"title": title, "sample_preparation": preparation, "specimen_biosamples": biosamples}
        )
        self.titles[node_id] = title

    def _components(self, datasets: list[dict[str, Any]]) -> dict[str, str]:
        """One component per dataset, associated with the objects it references; dataset @id → component title."""
        by_dataset = {}
        for node in datasets:
            ref = str(node.get("@id", ""))
            component: dict[str, Any] = {"title": _text(node.get("name")) or urllib.parse.unquote(ref.lstrip("#"))}
            if _text(node.get("description")):
                component["description"] = _text(node.get("description"))
            for prop, slot in ASSOCIATIONS:
                linked = [self.titles[i] for i in _ids(node.get(prop)) if i in self.titles]
                if linked:
                    component[slot] = list(dict.fromkeys(component.get(slot, []) + linked))
            self.record.setdefault("components", []).append(component)
            by_dataset[ref] = component["title"]
        return by_dataset

    # ------------------------------------------------------------------ publications, grants, links

    def _publications(self, root: dict[str, Any]) -> None:
        """Publications (``relatedPublication``/``citation``): a DOI from their @id, identifier, doi or url."""
        for article in self.resolve(root.get("relatedPublication") or root.get("citation")):
            doi = next(
                (
                    d
                    for d in (
                        external_ids.doi(i) for i in (_text(article.get(k)) for k in ("@id", "identifier", "doi", "url")) if i
                    )
                    if d
                ),
                None,
            )
            title = _first_text(article, "title", "name", "headline")
            if title or doi:
                self.draft.publication(
                    title or f"doi:{doi}",
                    doi=doi,
                    pubmed=_text(article.get("pubmedId")),
                    year_=year(_first_text(article, "yearPublished", "datePublished")),
                    authors=_text(article.get("authorNames")),
                    where=f"{self.name}: ",
                )

    def _funding_and_links(self, root: dict[str, Any]) -> None:
        """Grants (``funding``: the funder's name, else its IRI) and links (``seeAlso``)."""
        for grant in self.resolve(root.get("funding")):
            funders = self.resolve(grant.get("funder"))
            funder = next(
                (
                    _first_text(f, "displayName", "name")
                    or (None if str(f.get("@id", "#")).startswith("#") else _text(f.get("@id")))
                    for f in funders
                ),
                None,
            )
            self.draft.add_funding(funder, _text(grant.get("identifier")))
        for link in self.resolve(root.get("seeAlso")):
            target = next((t for t in (_text(link.get(k)) for k in ("link", "url", "@id")) if t and "://" in t), None)
            ref = link_reference(target) if target else None
            if ref:
                self.draft.add_cross_reference(ref)
            elif target:
                self.draft.note(f"seeAlso {target!r} is not a link the catalog understands; left out")
