"""EMPIAR entries → REMBI study records.

Three source shapes are read into one intermediate form (the REST API's entry object) and mapped once:

* the REST API's entry JSON, ``{"EMPIAR-10934": {...}}`` (``/empiar/api/entry/{id}/``);
* the deposition JSON of ``empiar-depositor`` (no accession; integer codes for experiment type and scale);
* the entry header XML (``EMPIAR-10934.xml``, namespace ``http://pdbe.org/empiar``).

Image sets become study components (category, formats, image counts, dimensions, pixel sizes and voxel type as
attributes); authors keep their ORCIDs, with the corresponding author and principal investigators marked in
their roles; grants become funding; citations become publications; EMDB, BioStudies, IDR and EMPIAR references
become typed cross-references. CLEM, CLXM and SXT entries are marked as correlative modalities.
"""
from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from catalog.dates import release_date_of
from catalog.errors import ValidationFailed
from loaders.ontology_terms import GENERIC_IMAGING_METHOD, imaging_method_term
from loaders.pagetab import LoadedRecord, provenance

LOADER_NAME = "bia-catalog EMPIAR loader"
LOADER_VERSION = "1"
EMPIAR_ENTRY = "https://www.ebi.ac.uk/empiar/{accession}"

#: Deposition JSON codes (empiar_deposition.schema.json) → the API's experiment type names.
EXPERIMENT_TYPES = {
    1: "SXT", 2: "Simulated", 3: "EMDB", 4: "SBF-SEM", 5: "FIB-SEM", 6: "Integrative hybrid modelling",
    7: "CLEM", 8: "CLXM", 9: "MicroED", 11: "ATUM-SEM", 12: "Hard X-ray/X-ray microCT", 13: "ssET",
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
    "category", "header_format", "data_format", "num_images_or_tilt_series", "frames_per_image", "frame_range_min",
    "frame_range_max", "voxel_type", "image_width", "image_height", "pixel_width", "pixel_height", "directory",
    "micrographs_file_pattern", "picked_particles_file_pattern", "picked_particles_directory",
)


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
        name = " ".join(str(item.get(k) or "") for k in ("first_name", "middle_name", "last_name")).split()
        name = " ".join(name)
    return {"name": name, "orcid": item.get("author_orcid"), "email": item.get("email"),
            "organization": item.get("organization")}


def _normalise_json(entry: dict[str, Any]) -> dict[str, Any]:
    experiment = entry.get("experiment_type")
    scale = entry.get("scale")
    corresponding = entry.get("corresponding_author")
    pis = entry.get("principal_investigator") or []
    return {
        "title": entry.get("title"),
        "release_date": entry.get("release_date"),
        "deposition_date": entry.get("deposition_date"),
        "status": entry.get("status"),
        "doi": entry.get("entry_doi"),
        "dataset_size": entry.get("dataset_size"),
        "experiment_type": EXPERIMENT_TYPES.get(experiment, str(experiment)) if isinstance(experiment, int) else experiment,
        "scale": SCALES.get(int(scale), str(scale)) if str(scale or "").isdigit() else scale,
        "authors": [_person_json(a) for a in entry.get("authors") or []],
        "corresponding_author": _person_json(corresponding) if corresponding else None,
        "principal_investigators": [_person_json(p) for p in (pis if isinstance(pis, list) else [pis])],
        "grants": [
            {"funder": g.get("funding_body"), "grant_id": g.get("code")}
            for g in entry.get("grant_references") or [] if isinstance(g, dict)
        ],
        "citations": [_citation_json(c) for c in entry.get("citation") or [] if isinstance(c, dict)],
        "emdb": [_ref_name(r) for r in entry.get("cross_references") or []],
        "biostudies": [_ref_name(r) for r in entry.get("biostudies_references") or []],
        "idr": [_ref_name(r) for r in entry.get("idr_references") or []],
        "empiar": [_ref_name(r) for r in entry.get("empiar_references") or []],
        "imagesets": [i for i in entry.get("imagesets") or [] if isinstance(i, dict)],
    }


def _ref_name(ref: Any) -> str:
    """The accession a cross-reference names ("" when it names none)."""
    if isinstance(ref, dict):
        ref = next((ref[k] for k in ("name", "emdb_id", "accession", "id") if ref.get(k)), None)
    return "" if ref is None else str(ref).strip()


def _citation_json(c: dict[str, Any]) -> dict[str, Any]:
    authors = [_person_json(a)["name"] for a in c.get("authors") or []]
    return {"title": c.get("title"), "year": c.get("year"), "doi": c.get("doi"),
            "pubmed_id": c.get("pubmedid") or c.get("pubmed_id"), "authors": authors}


def load_empiar_xml(
    data: bytes | str, name: str = "entry.xml", source_url: str | None = None, harvested_at: str | None = None
) -> LoadedRecord:
    try:
        root = ET.fromstring(data)
    except ET.ParseError as exc:
        raise EmpiarError(f"{name}: not well-formed XML ({exc})", [{"file": name, "line": exc.position[0]}]) from exc
    ns = {"e": root.tag[1 : root.tag.index("}")]} if root.tag.startswith("{") else {"e": ""}
    p = "e:" if ns["e"] else ""

    def q(path: str) -> str:
        return "/".join(f"{p}{part}" if part not in (".", "..") else part for part in path.split("/"))

    def person(node: ET.Element) -> dict[str, Any]:
        first, last = node.findtext(q("firstName"), None, ns), node.findtext(q("lastName"), None, ns)
        return {"name": " ".join(x for x in (first, last) if x), "orcid": node.findtext(q("authorORCID"), None, ns),
                "organization": node.findtext(q("organization"), None, ns)}

    accession = root.get("accessionCode")
    admin = root.find(q("admin"), ns)
    if admin is None:
        raise EmpiarError(f"{name}: no <admin> element", [{"file": name, "field": "admin"}])
    citations = []
    for cit in root.iterfind(q("crossReferences/citationList/universalCitation/journalCitation"), ns):
        refs = {r.get("type"): (r.text or "").strip() for r in cit.iterfind(q("externalReferences"), ns)}
        citations.append({
            "title": cit.findtext(q("title"), None, ns), "year": cit.findtext(q("year"), None, ns),
            "doi": refs.get("doi"), "pubmed_id": refs.get("pubmed"),
            "authors": [(a.text or "").strip() for a in cit.iterfind(q("author"), ns)],
        })
    imagesets = []
    for node in root.iterfind(q("imageSet"), ns):
        item = {
            "name": node.findtext(q("name"), None, ns), "directory": node.findtext(q("directory"), None, ns),
            "category": node.findtext(q("category"), None, ns), "header_format": node.findtext(q("headerFormat"), None, ns),
            "data_format": node.findtext(q("dataFormat"), None, ns),
            "num_images_or_tilt_series": node.findtext(q("numImagesOrTiltSeries"), None, ns),
            "frames_per_image": node.findtext(q("framesPerImage"), None, ns),
            "voxel_type": node.findtext(q("voxelType"), None, ns), "details": node.findtext(q("details"), None, ns),
            "micrographs_file_pattern": node.findtext(q("micrographsFilePattern"), None, ns),
        }
        for tag, key in (("imageWidth", "image_width"), ("imageHeight", "image_height"),
                         ("pixelWidth", "pixel_width"), ("pixelHeight", "pixel_height")):
            item[key] = node.findtext(q(f"dimensions/{tag}"), None, ns)
        imagesets.append(item)
    size = admin.find(q("datasetSize"), ns)
    corresponding = admin.find(q("correspondingAuthor"), ns)
    entry = {
        "title": admin.findtext(q("title"), None, ns),
        "release_date": admin.findtext(q("keyDates/releaseDate"), None, ns),
        "deposition_date": admin.findtext(q("keyDates/depositionDate"), None, ns),
        "status": admin.findtext(q("currentStatus"), None, ns),
        "doi": admin.findtext(q("entryDOI"), None, ns),
        "dataset_size": f"{size.text.strip()} {size.get('units', '')}".strip() if size is not None and size.text else None,
        "experiment_type": admin.findtext(q("experimentType"), None, ns),
        "scale": admin.findtext(q("scale"), None, ns),
        "authors": [{"name": (a.text or "").strip(), "orcid": a.get("authorORCID")}
                    for a in admin.iterfind(q("authorsList/author"), ns)],
        "corresponding_author": person(corresponding) if corresponding is not None else None,
        "principal_investigators": [person(n) for n in admin.iterfind(q("principalInvestigator"), ns)],
        "grants": [{"funder": g.findtext(q("fundingBody"), None, ns), "grant_id": g.findtext(q("code"), None, ns)}
                   for g in admin.iterfind(q("grantReferences/grantReference"), ns)],
        "citations": citations,
        "emdb": [(e.text or "").strip() for e in root.iterfind(q("crossReferences/relatedEMDBEntries/emdbEntry"), ns)],
        "biostudies": [(e.text or "").strip() for e in root.iterfind(q("crossReferences/biostudiesReferences/biostudiesReference"), ns)],
        "idr": [(e.text or "").strip() for e in root.iterfind(q("crossReferences/idrReferences/idrReference"), ns)],
        "empiar": [(e.text or "").strip() for e in root.iterfind(q("crossReferences/empiarReferences/empiarReference"), ns)],
        "imagesets": imagesets,
    }
    return _map(accession, entry, name, source_url, harvested_at)


# ---------------------------------------------------------------------- one mapping to REMBI


def _orcid(value: Any) -> str | None:
    text = str(value or "").strip().removeprefix("https://orcid.org/").removeprefix("http://orcid.org/").upper()  # …-123x
    return f"https://orcid.org/{text}" if re.match(r"^\d{4}-\d{4}-\d{4}-\d{3}[\dX]$", text) else None


def _doi(value: Any) -> str | None:
    text = re.sub(r"^(https?://(dx\.)?doi\.org/|doi:\s*)", "", str(value or "").strip(), flags=re.I).replace(" ", "")
    return text if text.startswith("10.") else None


def _cross_reference(resource: str, accession: str, relation: str) -> dict[str, Any] | None:
    accession = accession.strip()
    if not accession:
        return None
    if resource == "EMDB":
        number = accession.upper().removeprefix("EMD-").strip()
        if not re.fullmatch(r"\d{4,6}", number):
            return None  # not an EMDB accession ("PDB 7ABC", a name…): not a link to make
        target, accession = f"https://www.ebi.ac.uk/emdb/EMD-{number}", f"EMD-{number}"
    elif resource == "BioStudies":
        target = f"https://www.ebi.ac.uk/biostudies/studies/{accession}"
        resource = "BioImage Archive" if accession.startswith("S-BIAD") else "BioStudies"
    elif resource == "IDR":
        target = f"https://idr.openmicroscopy.org/search/?query=Name:{accession}"
    else:
        number = accession.upper().removeprefix("EMPIAR-").strip()
        if not re.fullmatch(r"\d{5,6}", number):
            return None
        target, accession = EMPIAR_ENTRY.format(accession=f"EMPIAR-{number}"), f"EMPIAR-{number}"
    return {"target": target, "target_accession": accession, "resource": resource, "relation": relation,
            "label": f"{resource} {accession}"}


def _map(accession: str | None, entry: dict[str, Any], name: str, source_url: str | None, harvested_at: str | None) -> LoadedRecord:
    unmapped: list[str] = []
    title = (entry.get("title") or "").strip()
    if not title:
        raise EmpiarError(f"{name}: the entry has no title", [{"file": name, "field": "title"}])
    experiment = (entry.get("experiment_type") or "").strip() or None
    correlative = experiment in CORRELATIVE
    record: dict[str, Any] = {"title": title, "license": "CC0-1.0"}
    if accession:
        record["accession"] = accession
    release = release_date_of(entry.get("release_date"))
    if release is not None and re.fullmatch(r"\d{4}-\d{2}-\d{2}", release):
        record["release_date"] = release
    elif release is not None:
        unmapped.append(f"release_date {entry['release_date']!r} is not a date (deposition JSON code?)")
    doi = _doi(entry.get("doi"))
    if doi:
        record["doi"] = doi
    facts = [f"experiment type {experiment}" if experiment else None,
             f"scale {entry['scale']}" if entry.get("scale") else None,
             f"dataset size {entry['dataset_size']}" if entry.get("dataset_size") else None]
    record["description"] = f"EMPIAR entry: {title}." + (
        " " + "; ".join(f for f in facts if f).capitalize() + "." if any(facts) else ""
    )

    # authors, with the corresponding author and PIs in their roles
    authors: list[dict[str, Any]] = []
    for person in entry.get("authors") or []:
        if person.get("name"):
            author = {"name": person["name"], "position": len(authors) + 1}
            if _orcid(person.get("orcid")):
                author["orcid"] = _orcid(person.get("orcid"))
            authors.append(author)

    def mark(person: dict[str, Any] | None, role: str) -> None:
        if not person or not person.get("name"):
            return
        orcid = _orcid(person.get("orcid"))
        for author in authors:
            if (orcid and author.get("orcid") == orcid) or author["name"] == person["name"]:
                author.setdefault("roles", []).append(role)
                break
        else:
            author = {"name": person["name"], "position": len(authors) + 1, "roles": [role]}
            if orcid:
                author["orcid"] = orcid
            authors.append(author)
        if person.get("email") and "@" in str(person["email"]):
            author.setdefault("email", person["email"])

    mark(entry.get("corresponding_author"), "corresponding author")
    for pi in entry.get("principal_investigators") or []:
        mark(pi, "principal investigator")
    record["authors"] = authors

    funding = [{k: v for k, v in g.items() if v} for g in entry.get("grants") or [] if g.get("funder")]
    if funding:
        record["funding"] = funding
    publications = []
    for c in entry.get("citations") or []:
        pub: dict[str, Any] = {}
        if c.get("title"):
            pub["title"] = c["title"]
        if _doi(c.get("doi")):
            pub["doi"] = _doi(c.get("doi"))
        if str(c.get("year") or "").isdigit():
            pub["year"] = int(c["year"])
        if str(c.get("pubmed_id") or "").isdigit():
            pub["pubmed_id"] = str(c["pubmed_id"])
        if c.get("authors"):
            pub["publication_authors"] = ", ".join(a for a in c["authors"] if a)
        if pub.get("title") or pub.get("doi"):
            publications.append(pub)
    if publications:
        record["publications"] = publications

    references = []
    for resource, key, relation in (("EMDB", "emdb", "references_map"),
                                    ("BioStudies", "biostudies", "same_specimen_imaged" if correlative else "related_to"),
                                    ("IDR", "idr", "related_to"), ("EMPIAR", "empiar", "related_to")):
        for written in entry.get(key) or []:
            reference = _cross_reference(resource, written, relation)
            if reference:
                references.append(reference)
            elif written.strip():
                unmapped.append(f"cross-reference {written!r} is not a {resource} accession; left out")
    if references:
        record["cross_references"] = references

    method_name = METHODS.get(experiment or "", "electron microscopy")
    term, _exact = imaging_method_term(method_name)
    acquisition = {
        "title": f"EMPIAR {experiment or 'imaging'}",
        "imaging_methods": [(term or GENERIC_IMAGING_METHOD).as_record()],
    }
    record["image_acquisitions"] = [acquisition]
    components = []
    for i, imageset in enumerate(entry.get("imagesets") or [], start=1):
        attributes = [
            {"name": key, "value": str(imageset[key])}
            for key in IMAGESET_ATTRIBUTES
            if imageset.get(key) not in (None, "")
        ]
        extra = sorted(set(imageset) - set(IMAGESET_ATTRIBUTES) - {"name", "details", "segmentations"})
        unmapped += [f"imagesets[{i}].{key}" for key in extra if imageset.get(key) not in (None, "", [])]
        component = {
            "title": (imageset.get("name") or f"Image set {i}").strip(),
            "component_image_acquisitions": [acquisition["title"]],
        }
        if imageset.get("details"):
            component["description"] = imageset["details"]
        if attributes:
            component["attributes"] = attributes
        components.append(component)
    if components:
        record["components"] = components

    attributes = [
        {"name": label, "value": str(entry[key])}
        for key, label in (("experiment_type", "experiment type"), ("scale", "scale"), ("dataset_size", "dataset size"),
                           ("status", "status"), ("deposition_date", "deposition date"))
        if entry.get(key)
    ]
    if correlative:
        attributes.append({"name": "correlative modality", "value": experiment})
    if attributes:
        record["attributes"] = attributes
    record["provenance"] = provenance(
        "EMPIAR", LOADER_NAME, LOADER_VERSION, accession=accession, harvested_at=harvested_at,
        source_url=source_url or (EMPIAR_ENTRY.format(accession=accession) if accession else None),
    )
    return LoadedRecord(record=record, file_lists=[], unmapped=unmapped)
