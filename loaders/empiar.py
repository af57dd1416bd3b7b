"""EMPIAR entries → REMBI study records.

Three source shapes are read into one intermediate form (the REST API's entry object) and mapped once:

* the REST API's entry JSON, ``{"EMPIAR-10934": {...}}`` (``/empiar/api/entry/{id}/``);
* the deposition JSON of ``empiar-depositor`` (no accession; integer codes for experiment type and scale);
* the entry header XML (``EMPIAR-10934.xml``, namespace ``http://pdbe.org/empiar``).

Image sets become study components (category, formats, image counts, dimensions, pixel sizes and voxel type as
attributes); authors keep their ORCIDs, with the corresponding author and principal investigators marked in
their roles; grants become funding; citations become publications; EMDB, BioStudies, IDR and EMPIAR references
become typed cross-references (:mod:`catalog.external_ids`). CLEM, CLXM and SXT entries are marked as
correlative modalities.
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from catalog import external_ids
from catalog.dates import release_date_of
from catalog.errors import ValidationFailed
from loaders.loaded import Draft, LoadedRecord, cross_reference, is_email, provenance, year
from loaders.ontology_terms import GENERIC_IMAGING_METHOD, imaging_method_term

LOADER_NAME = "bia-catalog EMPIAR loader"
LOADER_VERSION = "1"

#: Deposition JSON codes (empiar_deposition.schema.json) → the API's experiment type names.
EXPERIMENT_TYPES = {
    1: "SXT",
    2: "Simulated",
    3: "EMDB",
    4: "SBF-SEM",
    5: "FIB-SEM",
    6: "Integrative hybrid modelling",
    7: "CLEM",
    8: "CLXM",
    9: "MicroED",
    11: "ATUM-SEM",
    12: "Hard X-ray/X-ray microCT",
    13: "ssET",
}
SCALES = {1: "molecule", 2: "virus", 3: "cell", 4: "tissue", 5: "organism"}
#: Experiment types that image one specimen with two modalities: linked to their partner datasets.
CORRELATIVE = {"CLEM", "CLXM", "SXT"}
#: Experiment type → the FBbi imaging method it is an instance of. The catalog's FBbi table has no narrower term
#: for cryo-EM, tomography, SXT or CLEM, so the broader one is used; the experiment type itself is kept as an
#: attribute (and CLEM/CLXM/SXT as a correlative modality).
METHODS = {
    "EMDB": "transmission electron microscopy",
    "ssET": "transmission electron microscopy",
    "SXT": "X-ray microscopy",
    "CLXM": "X-ray microscopy",
    "Hard X-ray/X-ray microCT": "X-ray computed tomography",
    "SBF-SEM": "serial block face scanning electron microscopy",
    "FIB-SEM": "focused ion beam scanning electron microscopy",
    "ATUM-SEM": "scanning electron microscopy",
    "CLEM": "electron microscopy",
    "MicroED": "electron microscopy",
}
IMAGESET_ATTRIBUTES = (
    "category",
    "header_format",
    "data_format",
    "num_images_or_tilt_series",
    "frames_per_image",
    "frame_range_min",
    "frame_range_max",
    "voxel_type",
    "image_width",
    "image_height",
    "pixel_width",
    "pixel_height",
    "directory",
    "micrographs_file_pattern",
    "picked_particles_file_pattern",
    "picked_particles_directory",
)
#: Entry facts kept as study attributes: key → attribute name.
ENTRY_ATTRIBUTES = (
    ("experiment_type", "experiment type"),
    ("scale", "scale"),
    ("dataset_size", "dataset size"),
    ("status", "status"),
    ("deposition_date", "deposition date"),
)
#: The entry's reference lists: key → (the kind of identifier they hold, the JSON key they come from).
REFERENCES = {
    "emdb": ("EMDB", "cross_references"),
    "biostudies": ("BioStudies", "biostudies_references"),
    "idr": ("IDR", "idr_references"),
    "empiar": ("EMPIAR", "empiar_references"),
}


class EmpiarError(ValidationFailed):
    """An EMPIAR record that cannot be read; names the record and the field."""

    code = "invalid_empiar_record"


# ---------------------------------------------------------------------- reading the three shapes


def load_empiar(path: str | Path, source_url: str | None = None, harvested_at: str | None = None) -> LoadedRecord:
    """Read an EMPIAR entry JSON (API or deposition shape) or header XML file."""
    path = Path(path)
    data = path.read_bytes()
    if data.removeprefix(b"\xef\xbb\xbf").lstrip().startswith(b"<"):  # XML, after any UTF-8 byte-order mark
        return load_empiar_xml(data, name=str(path), source_url=source_url, harvested_at=harvested_at)
    return load_empiar_json(data, name=str(path), source_url=source_url, harvested_at=harvested_at)


def load_empiar_json(
    data: bytes | str | dict, name: str = "entry", source_url: str | None = None, harvested_at: str | None = None
) -> LoadedRecord:
    try:
        doc = json.loads(data) if isinstance(data, (bytes, str)) else data
    except ValueError as exc:
        raise EmpiarError(f"{name}: not JSON ({exc})", [{"file": name, "message": str(exc)}]) from exc
    if not isinstance(doc, dict):
        raise EmpiarError(f"{name}: an EMPIAR entry is a JSON object", [{"file": name}])
    keys = [k for k in doc if re.match(r"^EMPIAR-\w+$", str(k))]
    if len(doc) == 1 and keys:
        accession, entry = keys[0], doc[keys[0]]
    elif "title" in doc and "imagesets" in doc:  # deposition JSON: no accession yet
        accession, entry = None, doc
    else:
        raise EmpiarError(
            f"{name}: neither an EMPIAR API entry ({{'EMPIAR-n': {{...}}}}) nor a deposition JSON (title, imagesets)",
            [{"file": name, "field": "/"}],
        )
    return _map(accession, _normalise_json(entry), name, source_url, harvested_at)


def _person_json(item: Any) -> dict[str, Any]:
    """An author in any of the JSON shapes: {"author": {name, author_orcid}}, {name, author_orcid}, first/last."""
    if isinstance(item, dict) and isinstance(item.get("author"), dict):
        item = item["author"]
    if not isinstance(item, dict):
        return {"name": str(item)}
    name = item.get("name")
    tuple_name = re.match(r"^\('([^']*)',\s*'([^']*)'\)$", str(name or ""))  # depositor JSON: "('Smith', 'JW')"
    if tuple_name:
        name = f"{tuple_name.group(1)} {tuple_name.group(2)}"
    if not name:
        name = " ".join(" ".join(str(item.get(k) or "") for k in ("first_name", "middle_name", "last_name")).split())
    return {"name": name, "orcid": item.get("author_orcid"), "email": item.get("email"), "organization": item.get("organization")}


def _decoded(entry: dict[str, Any]) -> dict[str, Any]:
    """Experiment type and scale, decoded from the deposition JSON's integer codes."""
    experiment, scale = entry.get("experiment_type"), entry.get("scale")
    return {
        "experiment_type": EXPERIMENT_TYPES.get(experiment, str(experiment)) if isinstance(experiment, int) else experiment,
        "scale": SCALES.get(int(str(scale)), str(scale)) if str(scale or "").isdigit() else scale,
    }


def _people_json(entry: dict[str, Any]) -> dict[str, Any]:
    corresponding = entry.get("corresponding_author")
    pis = entry.get("principal_investigator") or []
    return {
        "authors": [_person_json(a) for a in entry.get("authors") or []],
        "corresponding_author": _person_json(corresponding) if corresponding else None,
        "principal_investigators": [_person_json(p) for p in (pis if isinstance(pis, list) else [pis])],
    }


def _normalise_json(entry: dict[str, Any]) -> dict[str, Any]:
    found = {key: entry.get(key) for key in ("title", "release_date", "deposition_date", "status", "dataset_size")}
    grants = [g for g in entry.get("grant_references") or [] if isinstance(g, dict)]
    return (
        found
        | _decoded(entry)
        | _people_json(entry)
        | {
            "doi": entry.get("entry_doi"),
            "grants": [{"funder": g.get("funding_body"), "grant_id": g.get("code")} for g in grants],
            "citations": [_citation_json(c) for c in entry.get("citation") or [] if isinstance(c, dict)],
            "imagesets": [i for i in entry.get("imagesets") or [] if isinstance(i, dict)],
        }
        | {key: [_ref_name(r) for r in entry.get(source) or []] for key, (_kind, source) in REFERENCES.items()}
    )


def _ref_name(ref: Any) -> str:
    """The accession a cross-reference names ("" when it names none)."""
    if isinstance(ref, dict):
        ref = next((ref[k] for k in ("name", "emdb_id", "accession", "id") if ref.get(k)), None)
    return "" if ref is None else str(ref).strip()


def _citation_json(c: dict[str, Any]) -> dict[str, Any]:
    authors = [_person_json(a)["name"] for a in c.get("authors") or []]
    return {
        "title": c.get("title"),
        "year": c.get("year"),
        "doi": c.get("doi"),
        "pubmed_id": c.get("pubmedid") or c.get("pubmed_id"),
        "authors": authors,
    }


class _Xml:
    """An entry header XML document, read with or without its namespace."""

    def __init__(self, root: ET.Element) -> None:
        self.root = root
        self.ns = {"e": root.tag[1 : root.tag.index("}")]} if root.tag.startswith("{") else {"e": ""}
        self.prefix = "e:" if self.ns["e"] else ""

    def q(self, path: str) -> str:
        return "/".join(f"{self.prefix}{part}" if part not in (".", "..") else part for part in path.split("/"))

    def text(self, node: ET.Element, path: str) -> str | None:
        return node.findtext(self.q(path), None, self.ns)

    def all(self, node: ET.Element, path: str) -> list[ET.Element]:
        return list(node.iterfind(self.q(path), self.ns))

    def texts(self, path: str) -> list[str]:
        return [(e.text or "").strip() for e in self.all(self.root, path)]

    def person(self, node: ET.Element | None) -> dict[str, Any] | None:
        if node is None:
            return None
        first, last = self.text(node, "firstName"), self.text(node, "lastName")
        return {
            "name": " ".join(x for x in (first, last) if x),
            "orcid": self.text(node, "authorORCID"),
            "organization": self.text(node, "organization"),
        }

    def citations(self) -> list[dict[str, Any]]:
        found = []
        for cit in self.all(self.root, "crossReferences/citationList/universalCitation/journalCitation"):
            refs = {r.get("type"): (r.text or "").strip() for r in self.all(cit, "externalReferences")}
            found.append(
                {
                    "title": self.text(cit, "title"),
                    "year": self.text(cit, "year"),
                    "doi": refs.get("doi"),
                    "pubmed_id": refs.get("pubmed"),
                    "authors": [(a.text or "").strip() for a in self.all(cit, "author")],
                }
            )
        return found

    def imagesets(self) -> list[dict[str, Any]]:
        tags = {
            "name": "name",
            "directory": "directory",
            "category": "category",
            "header_format": "headerFormat",
            "data_format": "dataFormat",
            "num_images_or_tilt_series": "numImagesOrTiltSeries",
            "frames_per_image": "framesPerImage",
            "voxel_type": "voxelType",
            "details": "details",
            "micrographs_file_pattern": "micrographsFilePattern",
            "image_width": "dimensions/imageWidth",
            "image_height": "dimensions/imageHeight",
            "pixel_width": "dimensions/pixelWidth",
            "pixel_height": "dimensions/pixelHeight",
        }
        return [{key: self.text(node, tag) for key, tag in tags.items()} for node in self.all(self.root, "imageSet")]

    def admin(self, admin: ET.Element) -> dict[str, Any]:
        size = admin.find(self.q("datasetSize"), self.ns)
        tags = {
            "title": "title",
            "release_date": "keyDates/releaseDate",
            "deposition_date": "keyDates/depositionDate",
            "status": "currentStatus",
            "doi": "entryDOI",
            "experiment_type": "experimentType",
            "scale": "scale",
        }
        return {key: self.text(admin, tag) for key, tag in tags.items()} | {
            "dataset_size": f"{size.text.strip()} {size.get('units', '')}".strip() if size is not None and size.text else None,
            "authors": [
                {"name": (a.text or "").strip(), "orcid": a.get("authorORCID")} for a in self.all(admin, "authorsList/author")
            ],
            "corresponding_author": self.person(admin.find(self.q("correspondingAuthor"), self.ns)),
            "principal_investigators": [self.person(n) for n in self.all(admin, "principalInvestigator")],
            "grants": [
                {"funder": self.text(g, "fundingBody"), "grant_id": self.text(g, "code")}
                for g in self.all(admin, "grantReferences/grantReference")
            ],
        }


_XML_REFERENCES = {
    "emdb": "relatedEMDBEntries/emdbEntry",
    "biostudies": "biostudiesReferences/biostudiesReference",
    "idr": "idrReferences/idrReference",
    "empiar": "empiarReferences/empiarReference",
}


def load_empiar_xml(
    data: bytes | str, name: str = "entry.xml", source_url: str | None = None, harvested_at: str | None = None
) -> LoadedRecord:
    try:
        xml = _Xml(ET.fromstring(data))
    except ET.ParseError as exc:
        raise EmpiarError(f"{name}: not well-formed XML ({exc})", [{"file": name, "line": exc.position[0]}]) from exc
    admin = xml.root.find(xml.q("admin"), xml.ns)
    if admin is None:
        raise EmpiarError(f"{name}: no <admin> element", [{"file": name, "field": "admin"}])
    entry = xml.admin(admin) | {"citations": xml.citations(), "imagesets": xml.imagesets()}
    entry |= {key: xml.texts(f"crossReferences/{path}") for key, path in _XML_REFERENCES.items()}
    return _map(xml.root.get("accessionCode"), entry, name, source_url, harvested_at)


# ---------------------------------------------------------------------- one mapping to REMBI


def _map(
    accession: str | None, entry: dict[str, Any], name: str, source_url: str | None, harvested_at: str | None
) -> LoadedRecord:
    title = (entry.get("title") or "").strip()
    if not title:
        raise EmpiarError(f"{name}: the entry has no title", [{"file": name, "field": "title"}])
    experiment = (entry.get("experiment_type") or "").strip() or None
    draft = Draft()
    draft.record.update({"title": title, "license": "CC0-1.0"} | ({"accession": accession} if accession else {}))
    _study_fields(draft, entry, title)
    _authors(draft, entry)
    for grant in entry.get("grants") or []:
        if grant.get("funder"):
            draft.add_funding(grant["funder"], grant.get("grant_id"))
    for citation in entry.get("citations") or []:
        _citation(draft, citation)
    _references(draft, entry, experiment in CORRELATIVE)
    _images(draft, entry, experiment)
    _attributes(draft, entry, experiment)
    draft.record["provenance"] = provenance(
        "EMPIAR",
        LOADER_NAME,
        LOADER_VERSION,
        accession=accession,
        harvested_at=harvested_at,
        source_url=source_url or (external_ids.landing_page("EMPIAR", accession, as_written=True) if accession else None),
    )
    return draft.loaded()


def _study_fields(draft: Draft, entry: dict[str, Any], title: str) -> None:
    """Release date, DOI and a description made of the entry's facts."""
    release = release_date_of(entry.get("release_date"))
    if release is not None and re.fullmatch(r"\d{4}-\d{2}-\d{2}", release):
        draft.record["release_date"] = release
    elif release is not None:
        draft.note(f"release_date {entry['release_date']!r} is not a date (deposition JSON code?)")
    doi = external_ids.doi(str(entry.get("doi") or ""))
    if doi:
        draft.record["doi"] = doi
    facts = [
        f"experiment type {entry['experiment_type']}" if entry.get("experiment_type") else None,
        f"scale {entry['scale']}" if entry.get("scale") else None,
        f"dataset size {entry['dataset_size']}" if entry.get("dataset_size") else None,
    ]
    written = "; ".join(f for f in facts if f)
    draft.record["description"] = f"EMPIAR entry: {title}." + (f" {written.capitalize()}." if written else "")


def _authors(draft: Draft, entry: dict[str, Any]) -> None:
    """The authors, with the corresponding author and the principal investigators marked in their roles (matched
    by ORCID iD or name; added when not an author)."""
    for person in entry.get("authors") or []:
        if person.get("name"):
            draft.author(person["name"], orcid=person.get("orcid"))
    draft.record.setdefault("authors", [])
    _mark(draft, entry.get("corresponding_author"), "corresponding author")
    for pi in entry.get("principal_investigators") or []:
        _mark(draft, pi, "principal investigator")


def _mark(draft: Draft, person: dict[str, Any] | None, role: str) -> None:
    if not person or not person.get("name"):
        return
    orcid = external_ids.iri("ORCID", str(person.get("orcid") or ""))
    author = next(
        (a for a in draft.record["authors"] if (orcid and a.get("orcid") == orcid) or a["name"] == person["name"]), None
    )
    if author is None:
        author = draft.author(person["name"], orcid=orcid)
    draft.add_role(author, role)
    if is_email(person.get("email")):
        author.setdefault("email", person["email"].strip())


def _citation(draft: Draft, citation: dict[str, Any]) -> None:
    authors = ", ".join(a for a in citation.get("authors") or [] if a)
    draft.publication(
        citation.get("title"),
        doi=citation.get("doi"),
        pubmed=citation.get("pubmed_id"),
        year_=year(citation.get("year")),
        authors=authors or None,
    )


def _references(draft: Draft, entry: dict[str, Any], correlative: bool) -> None:
    """EMDB maps, BioStudies/BioImage Archive studies (imaging the same specimen, for correlative entries), IDR
    studies and other EMPIAR entries."""
    relations = {"emdb": "references_map", "biostudies": "same_specimen_imaged" if correlative else "related_to"}
    for key, (kind, _source) in REFERENCES.items():
        for written in entry.get(key) or []:
            written_kind = "BioImage Archive" if kind == "BioStudies" and written.upper().startswith("S-BIAD") else kind
            ref = cross_reference(written_kind, written, relations.get(key, "related_to"))
            if ref:
                draft.add_cross_reference(ref | {"label": f"{ref['resource']} {ref['target_accession']}"})
            elif written.strip():
                draft.warn(f"cross-reference {written!r} is not a {kind} accession; left out")


def _images(draft: Draft, entry: dict[str, Any], experiment: str | None) -> None:
    """One image acquisition (the experiment type's FBbi method); one component per image set."""
    term, _exact = imaging_method_term(METHODS.get(experiment or "", "electron microscopy"))
    acquisition = {
        "title": f"EMPIAR {experiment or 'imaging'}",
        "imaging_methods": [(term or GENERIC_IMAGING_METHOD).as_record()],
    }
    draft.record["image_acquisitions"] = [acquisition]
    for i, imageset in enumerate(entry.get("imagesets") or [], start=1):
        attributes = [
            {"name": key, "value": str(imageset[key])} for key in IMAGESET_ATTRIBUTES if imageset.get(key) not in (None, "")
        ]
        extra = sorted(set(imageset) - set(IMAGESET_ATTRIBUTES) - {"name", "details", "segmentations"})
        for key in extra:
            if imageset.get(key) not in (None, "", []):
                draft.note(f"imagesets[{i}].{key}")
        component: dict[str, Any] = {
            "title": (imageset.get("name") or f"Image set {i}").strip(),
            "component_image_acquisitions": [acquisition["title"]],
        }
        if imageset.get("details"):
            component["description"] = imageset["details"]
        if attributes:
            component["attributes"] = attributes
        draft.record.setdefault("components", []).append(component)


def _attributes(draft: Draft, entry: dict[str, Any], experiment: str | None) -> None:
    attributes = [{"name": label, "value": str(entry[key])} for key, label in ENTRY_ATTRIBUTES if entry.get(key)]
    if experiment in CORRELATIVE:
        attributes.append({"name": "correlative modality", "value": experiment})
    if attributes:
        draft.record["attributes"] = attributes
