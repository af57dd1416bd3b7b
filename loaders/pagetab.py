"""BioStudies PageTab (as the BioImage Archive uses it) to a REMBI study record.

A PageTab submission is an envelope (accession, ``Title``/``ReleaseDate``/``DOI`` attributes) around a root
``Study`` section whose subsections are the REMBI objects of the BioImages templates (v4, v5, MIFA): authors
and their organisations, publications, funding, biosamples, specimens, image acquisitions, correlations,
analyses, annotations and study components that point at the others by title under ``Associations``. The
Default template and legacy layouts (REMBI sections nested inside a component, as in IDR imports) are read
too. :func:`load_pagetab_json` returns the record (a nested dict shaped like ``schema/rembi.yaml``'s
``Study``, references written as titles) ready for :func:`catalog.validation.check_study_record`, the file
lists the sections name, and notes of everything kept only as a generic attribute or left out.

Decisions the archive would make, applied here:

* a missing licence becomes ``default_license`` (CC0-1.0, the licence BioImages templates propose, so that
  older studies without one stay loadable; a policy of this catalog: pass ``default_license=None`` to
  require one), with a note; a licence text that is not one of ``LicenseEnum`` is NOT guessed: it is kept
  as an attribute and noted, and validation then reports the study as having no licence;
* DOIs lose their resolver prefixes (``https://doi.org/``, ``doi:``) and spaces; ORCIDs become
  ``https://orcid.org/…`` IRIs and are checked (check digit); malformed ones, ``pending`` PubMed IDs and
  invalid e-mails are left out with a note; the literal text ``None`` (written by some conversion
  scripts) counts as no value;
* an imaging method not in :mod:`loaders.ontology_terms` becomes FBbi's root "imaging method" term, its
  text kept as an ``Imaging method`` attribute of the acquisition; an unknown organism is kept as an
  ``Organism`` attribute of the biosample;
* a specimen gets its biosamples from the associations it appears in (``Associations`` pair them);
* an association naming a section that does not exist is kept as written, so validation reports it against
  the component and field (what a deposit needs); harvesters of released studies may pass
  ``unresolved_associations="drop"`` to keep the study loadable (the name is then kept as a component
  attribute and noted).
"""

from __future__ import annotations

import datetime as dt
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Literal

from catalog.dates import release_date_of
from catalog.errors import CatalogError
from catalog.records import MAX_BYTES, check_shape, read_document, read_limited
from loaders import ontology_terms
from loaders.file_lists import normalise_path

LOADER_NAME = "pagetab"
LOADER_VERSION = "1.0.0"

#: Text that conversion scripts write for "no value".
_EMPTY_VALUES = {"", "none", "null"}


class PageTabError(CatalogError):
    """A PageTab document that cannot be read; the message names the record and the field."""

    status = 422
    code = "invalid_pagetab"


@dataclass(frozen=True)
class FileListRef:
    """A file list a section names: the component it belongs to (None for annotation lists), the name as
    written in its ``File List`` attribute, the section's accno and type."""

    component: str | None
    file_list: str
    accno: str | None
    section_type: str
    #: when rows name their component in a column (RO-Crate's ``dataset``): the column and value → title
    component_column: str | None = None
    component_by_value: dict[str, str] | None = None


@dataclass
class LoadedRecord:
    """A REMBI study record read from PageTab, its file lists and notes of what was not mapped."""

    record: dict[str, Any]
    file_lists: list[FileListRef] = field(default_factory=list)
    unmapped: list[str] = field(default_factory=list)


def provenance(source_resource: str, loader: str, loader_version: str, *, accession: str | None = None,
               source_url: str | None = None, harvested_at: str | None = None) -> dict[str, Any]:
    """A record's ``provenance``: where it came from and which loader made it (the unknown parts left out)."""
    found = {"source_resource": source_resource, "source_accession": accession, "source_url": source_url,
             "harvested_at": harvested_at, "loader": loader, "loader_version": loader_version}
    return {k: v for k, v in found.items() if v}


# --------------------------------------------------------------------------- the PageTab JSON model


@dataclass(frozen=True)
class Attr:
    """One PageTab attribute, its value stripped (None when empty)."""

    name: str
    key: str
    value: str | None
    reference: bool
    valqual: tuple[tuple[str, str], ...]
    nmqual: tuple[tuple[str, str], ...]


def _key(name: str) -> str:
    """Names compared without case, spacing, ``-`` or ``_`` (``E-mail`` = ``e mail``, ``grant_id``)."""
    return " ".join(re.sub(r"[\s_\-]+", " ", name).casefold().split())


def _text(value: Any) -> str | None:
    if value is None or isinstance(value, (dict, list)):
        return None
    text = str(value).strip()
    return None if text.casefold() in _EMPTY_VALUES else text


def _qualifiers(items: Any) -> tuple[tuple[str, str], ...]:
    found = []
    for item in _flatten(items):
        name, value = _text(item.get("name")), _text(item.get("value"))
        if name and value:
            found.append((name, value))
    return tuple(found)


#: attribute names written more than one way in real records
_KEY_ALIASES = {"release date": "releasedate", "release time": "releasedate"}


def _attrs(obj: dict[str, Any]) -> list[Attr]:
    result = []
    for item in _flatten(obj.get("attributes")):
        name = _text(item.get("name"))
        if not name:
            continue
        reference = item.get("reference", item.get("isReference", False))
        result.append(
            Attr(
                name=name,
                key=_KEY_ALIASES.get(_key(name), _key(name)),
                value=_text(item.get("value")),
                reference=reference is True or str(reference).lower() == "true",
                valqual=_qualifiers(item.get("valqual")),
                nmqual=_qualifiers(item.get("nmqual")),
            )
        )
    return result


def _flatten(items: Any) -> Iterator[dict[str, Any]]:
    """Subsections, links and files are an object, a list, or a list of lists (tables)."""
    if isinstance(items, dict):
        yield items
    elif isinstance(items, list):
        for item in items:
            yield from _flatten(item)


def _accno(section: dict[str, Any]) -> str | None:
    return _text(section.get("accno", section.get("accNo")))


def _type(section: dict[str, Any]) -> str:
    return _text(section.get("type")) or "Section"


# --------------------------------------------------------------------------- value normalisation

_DOI_PREFIX = re.compile(r"^(?:https?://(?:dx\.)?doi\.org/|doi\s*:|doi\s+)", re.IGNORECASE)
_DOI = re.compile(r"^10\.\d{4,9}/\S+$")
_ORCID = re.compile(r"^(\d{4})-?(\d{4})-?(\d{4})-?(\d{3}[\dX])$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_ROR = re.compile(r"^(?:https?://)?(?:www\.)?(?:ror\.org/)?(0[a-z0-9]{6}[0-9]{2})$", re.IGNORECASE)


def normalise_doi(text: str) -> str | None:
    """The bare ``10.x/y`` form of a DOI written with resolver prefixes or spaces, or None."""
    doi = text.strip()
    while True:
        stripped = _DOI_PREFIX.sub("", doi).strip()
        if stripped == doi:
            break
        doi = stripped
    doi = re.sub(r"\s+", "", doi)
    return doi if _DOI.match(doi) else None


_PUBMED = re.compile(r"^(?:pmid\s*:?\s*|pubmed\s*:?\s*|https?://(?:www\.)?(?:pubmed\.ncbi\.nlm\.nih\.gov|ncbi\.nlm\.nih\.gov/pubmed)/)?(\d+)/?$",
                     re.IGNORECASE)


def normalise_pubmed(text: str) -> str | None:
    """The digits of a PubMed id written bare, as ``PMID: 123`` or as a PubMed URL; None otherwise."""
    match = _PUBMED.match(text.strip())
    return match.group(1) if match else None


def pubmed_reference(pmid: str) -> dict[str, Any]:
    """A cross-reference to a publication known only by its PubMed id (REMBI publications need a title or DOI)."""
    return {"target": f"https://identifiers.org/pubmed:{pmid}", "resource": "PubMed", "target_accession": pmid,
            "relation": "supplements_publication"}


def _orcid_check_digit(digits: str) -> str:
    total = 0
    for d in digits:
        total = (total + int(d)) * 2
    result = (12 - total % 11) % 11
    return "X" if result == 10 else str(result)


def normalise_orcid(text: str) -> str | None:
    """``https://orcid.org/0000-0002-1825-0097`` from a bare iD or a URL; None if malformed or the check fails."""
    value = re.sub(r"^(?:https?://)?(?:www\.)?orcid\.org/|^orcid\s*:?\s*", "", text.strip(), flags=re.IGNORECASE)
    match = _ORCID.match(value.upper())
    if not match:
        return None
    body = "".join(match.groups())
    if _orcid_check_digit(body[:15]) != body[15]:
        return None
    return "https://orcid.org/" + "-".join(match.groups())


def normalise_ror(text: str) -> str | None:
    """``https://ror.org/02catss52`` from a bare ROR id or a URL, or None."""
    match = _ROR.match(text.strip())
    return f"https://ror.org/{match.group(1).lower()}" if match else None


_LICENCE_WORDS = [
    (r"creative\s*commons", "cc"),
    (r"attribution", "by"),
    (r"non-?commercial", "nc"),
    (r"share-?alike", "sa"),
    (r"no-?deriv(?:ative)?s?", "nd"),
    (r"licen[cs]e|international|unported|generic|universal|public\s*domain\s*dedication", ""),
    (r"\bv(?=\d)", ""),  # "v1.0"
]
_LICENCES = {
    "cc0": "CC0-1.0",
    "cc01.0": "CC0-1.0",
    "cczero": "CC0-1.0",
    "cczero1.0": "CC0-1.0",
    "ccby4.0": "CC-BY-4.0",
    "ccbysa4.0": "CC-BY-SA-4.0",
    "ccbync4.0": "CC-BY-NC-4.0",
    "ccbyncsa4.0": "CC-BY-NC-SA-4.0",
    "ccbynd4.0": "CC-BY-ND-4.0",
    "ccbyncnd4.0": "CC-BY-NC-ND-4.0",
    "ccby3.0": "CC-BY-3.0",
    "ccbysa3.0": "CC-BY-SA-3.0",
    "ccbync3.0": "CC-BY-NC-3.0",
    "ccbyncsa3.0": "CC-BY-NC-SA-3.0",
    "ccbynd3.0": "CC-BY-ND-3.0",
    "ccbyncnd3.0": "CC-BY-NC-ND-3.0",
    "ccby2.5": "CC-BY-2.5",
    "mit": "MIT",
    "apache2.0": "Apache-2.0",
}
_LICENCE_URL = re.compile(r"creativecommons\.org/(?:licenses/([a-z\-]+)|publicdomain/(zero))/(\d\.\d)", re.IGNORECASE)


def licence_name(text: str) -> str | None:
    """The ``LicenseEnum`` name of a licence written as text (``CC BY 4.0``, ``CC0``) or a URL, or None."""
    spdx = re.search(r"spdx\.org/licenses/([\w.+-]+?)(?:\.html|\.json)?/?$", text.strip())
    if spdx:  # an SPDX identifier IRI: the enum names are SPDX ids
        return spdx.group(1) if spdx.group(1) in _LICENCES.values() else None
    url = _LICENCE_URL.search(text)
    if url:
        kind = "0" if url.group(2) else url.group(1).lower().replace("-", "")
        return _LICENCES.get(f"cc{kind}{url.group(3)}")
    # "Creative Commons Attribution 4.0 International (CC BY 4.0)": the whole, the name, or the bracketed short form
    pieces = [text, re.sub(r"\(.*?\)", " ", text), *re.findall(r"\((.*?)\)", text)]
    for piece in pieces:
        compact = piece.casefold()
        for pattern, replacement in _LICENCE_WORDS:
            compact = re.sub(pattern, replacement, compact)
        compact = re.sub(r"[^a-z0-9.]+", "", compact)
        compact = f"cc{compact}" if compact.startswith("by") else compact
        found = _LICENCES.get(compact) or _LICENCES.get(f"{compact}.0")
        if found:
            return found
    return None


def _release_date(value: Any) -> str | None:
    """A ``YYYY-MM-DD`` from a date, an ISO timestamp or epoch seconds/milliseconds."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = value / 1000 if value > 1e11 else value
        return dt.datetime.fromtimestamp(seconds, dt.timezone.utc).date().isoformat()
    text = _text(value)
    if text is None:
        return None
    return release_date_of(text)  # a time: the first UTC day from it; not a date: kept for validation to refuse


# --------------------------------------------------------------------------- correlation matrices

_NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"


def parse_matrix(text: str) -> list[list[float]] | None:
    """Rows of numbers written as ``1 0 0 10; 0 1 0 20; 0 0 1 0``, on lines, or in brackets; else None.

    A homogeneous 2-D (2×3, 3×3) or 3-D (3×4, 4×4) matrix is accepted.
    """
    body = text.strip()
    if not re.fullmatch(rf"[\s\[\](),;]*(?:{_NUMBER}[\s\[\](),;]*)+", body):
        return None
    bracketed = re.compile(r"\]\s*,?\s*\[")
    chunks = bracketed.split(body) if bracketed.search(body) else re.split(r"[;\n]", body)
    rows = []
    for chunk in chunks:
        numbers = re.findall(_NUMBER, chunk)
        if numbers:
            rows.append([float(n) for n in numbers])
    if not rows or len({len(r) for r in rows}) != 1:
        return None
    shape = (len(rows), len(rows[0]))
    return rows if shape in {(2, 3), (3, 3), (3, 4), (4, 4)} else None


def _transformation(text: str) -> dict[str, Any] | None:
    rows = parse_matrix(text)
    if rows is None:
        return None
    return {
        "transformation_type": "affine",
        "matrix_rows": len(rows),
        "matrix_columns": len(rows[0]),
        "matrix": [
            {"row": r, "column": c, "element_value": value} for r, row in enumerate(rows) for c, value in enumerate(row)
        ],
        "transformation_text": text,
    }


# --------------------------------------------------------------------------- cross-references

_RELATIONS = {
    "same specimen imaged",
    "derived from",
    "source of",
    "supplements publication",
    "references map",
    "same as",
    "related to",
}


@dataclass(frozen=True)
class _Resource:
    name: str
    pattern: re.Pattern[str]
    prefix: str  # identifiers.org prefix
    relation: str = "related_to"


_RESOURCES = [
    _Resource("EMPIAR", re.compile(r"\b(EMPIAR-\d{5,})\b", re.IGNORECASE), "empiar"),
    _Resource("EMDB", re.compile(r"\b(EMD-\d{4,})\b", re.IGNORECASE), "emdb", "references_map"),
    _Resource("BioStudies", re.compile(r"\b(S-[A-Z]{2,}\d+)\b"), "biostudies"),
    _Resource("IDR", re.compile(r"\b(idr\d{4})(?:-|\b)", re.IGNORECASE), "idr"),
]
_PDB_URL = re.compile(
    r"(?:rcsb\.org/structure|ebi\.ac\.uk/pdbe/entry/pdb|wwpdb\.org/pdb\?id=pdb_0000)/?([0-9][A-Za-z0-9]{3})\b", re.I
)
_PUBMED_URL = re.compile(r"(?:pubmed\.ncbi\.nlm\.nih\.gov/|ncbi\.nlm\.nih\.gov/pubmed/)(\d+)", re.IGNORECASE)
_URL = re.compile(r"^(?:https?|ftp)://[^\s<>\"{}|\\^`]+$", re.IGNORECASE)


def cross_reference(url: str, link_type: str | None = None, label: str | None = None) -> dict[str, Any] | None:
    """A REMBI ``CrossReference`` for a PageTab link (a URL or a bare accession with a ``Type``), or None."""
    kind = _key(link_type or "")
    ref: dict[str, Any] | None = None
    doi = normalise_doi(url) if (kind == "doi" or "doi" in url.casefold() or url.startswith("10.")) else None
    pubmed = _PUBMED_URL.search(url) or (re.fullmatch(r"\d+", url) if kind in {"pubmed", "pmid"} else None)
    pdb = _PDB_URL.search(url) or (re.fullmatch(r"[0-9][A-Za-z0-9]{3}", url) if kind in {"pdb", "pdbe"} else None)
    if doi:
        ref = {"target": f"https://doi.org/{doi}", "target_accession": doi, "resource": "DOI"}
    elif pubmed:
        ref = {
            "target": f"https://identifiers.org/pubmed:{pubmed.group(1) if pubmed.groups() else pubmed.group(0)}",
            "resource": "PubMed",
        }
        ref["target_accession"] = ref["target"].rsplit(":", 1)[1]
    elif pdb:
        code = (pdb.group(1) if pdb.groups() else pdb.group(0)).upper()
        ref = {
            "target": f"https://identifiers.org/pdb:{code}",
            "target_accession": code,
            "resource": "PDB",
            "relation": "references_map",
        }
    else:
        for resource in _RESOURCES:
            match = resource.pattern.search(url)
            if match:
                accession = match.group(1)
                accession = accession.lower() if resource.name == "IDR" else accession.upper()
                name = "BioImage Archive" if accession.startswith("S-BIAD") else resource.name
                ref = {
                    "target": f"https://identifiers.org/{resource.prefix}:{accession}",
                    "target_accession": accession,
                    "resource": name,
                    "relation": resource.relation,
                }
                break
    if ref is None and _URL.match(url):
        resource = "IDR" if ("idr" in kind or "idr.openmicroscopy.org" in url) else "Other"
        ref = {"target": url, "resource": resource}
    if ref is None and kind in {"ena", "ena embl"} and re.fullmatch(r"[A-Z]{3,}\d+", url):
        ref = {"target": f"https://identifiers.org/ena.embl:{url}", "target_accession": url, "resource": "Other"}
    if ref is None:
        return None
    ref.setdefault("relation", "related_to")
    if label:
        ref["label"] = label
    return ref


# --------------------------------------------------------------------------- section kinds

_KINDS = {
    "study component": "component",
    "biosample": "biosample",
    "specimen": "specimen",
    "image acquisition": "acquisition",
    "image correlation": "correlation",
    "image analysis": "analysis",
    "annotations": "annotation",
    "annotation": "annotation",
    "annotation method": "annotation",
    "author": "author",
    "organisation": "organisation",
    "organization": "organisation",
    "publication": "publication",
    "funding": "funding",
    "associations": "associations",
    "association": "associations",
    "organism": "organism",
    "imaging method": "imaging method",
    "version": "version",
}


#: Study fields some records write on the submission rather than on its Study section
_SECTION_FIELDS_ON_ENVELOPE = {"description", "abstract", "keywords", "keyword", "license", "licence"}


def _kind_key(name: str) -> str:
    """A section type reduced for lookup: CamelCase split, case, spacing and a plural ``s`` set aside
    (``Study Components`` = ``StudyComponent`` = ``study component``)."""
    key = _key(re.sub(r"(?<=[a-z])(?=[A-Z])", " ", name)).replace(" ", "")
    return key[:-1] if key.endswith("s") else key


_KIND_INDEX = {_kind_key(name): kind for name, kind in _KINDS.items()} | {_kind_key("image analyses"): "analysis"}


def _kind(section: dict[str, Any]) -> str | None:
    """The REMBI kind of a PageTab section (None: a section type no REMBI slot holds)."""
    return _KIND_INDEX.get(_kind_key(_type(section)))


#: REMBI object kind → (record slot of Study, component association slot).
_OBJECT_SLOTS = {
    "biosample": ("biosamples", "component_biosamples"),
    "specimen": ("specimens", "component_specimens"),
    "acquisition": ("image_acquisitions", "component_image_acquisitions"),
    "correlation": ("image_correlations", "component_image_correlations"),
    "analysis": ("image_analyses", "component_image_analyses"),
    "annotation": ("annotation_methods", "component_annotation_methods"),
}
_ASSOCIATION_KEYS = {
    "biosample": "biosample",
    "specimen": "specimen",
    "image acquisition": "acquisition",
    "image correlation": "correlation",
    "image analysis": "analysis",
    "annotation": "annotation",
    "annotations": "annotation",
    "annotation method": "annotation",
}
_ANNOTATION_TYPES = {
    "class labels",
    "bounding boxes",
    "counts",
    "derived annotations",
    "geometrical annotations",
    "graphs",
    "point annotations",
    "segmentation mask",
    "tracks",
    "weak annotations",
    "other",
}
#: Plain text attributes per kind: attribute key → record slot (lists for multivalued slots).
_TEXT_SLOTS = {
    "biosample": {
        "title": "title",
        "description": "description",
        "biological entity": "biological_entity",
        "intrinsic variable": ["intrinsic_variables"],
        "intrinsic variables": ["intrinsic_variables"],
        "extrinsic variable": ["extrinsic_variables"],
        "extrinsic variables": ["extrinsic_variables"],
        "experimental variable": ["experimental_variables"],
        "experimental variables": ["experimental_variables"],
    },
    "specimen": {
        "title": "title",
        "sample preparation protocol": "sample_preparation",
        "sample preparation": "sample_preparation",
        "growth protocol": "growth_protocol",
    },
    "acquisition": {
        "title": "title",
        "imaging instrument": "imaging_instrument",
        "image acquisition parameters": "acquisition_parameters",
        "acquisition parameters": "acquisition_parameters",
    },
    "correlation": {
        "title": "title",
        "spatial and temporal alignment": "spatial_and_temporal_alignment",
        "fiducials used": "fiducials_used",
    },
    "analysis": {
        "title": "title",
        "image analysis overview": "analysis_overview",
        "analysis overview": "analysis_overview",
    },
    "annotation": {
        "title": "title",
        "annotation overview": "annotation_overview",
        "annotation method": "annotation_method",
        "annotation criteria": "annotation_criteria",
        "annotation coverage": "annotation_coverage",
        "annotation confidence level": "annotation_confidence",
        "annotation confidence": "annotation_confidence",
    },
    "component": {"title": "title", "name": "title", "description": "description"},
}
_STUDY_KEYS = {
    "title",
    "releasedate",
    "keywords",
    "keyword",
    "description",
    "license",
    "licence",
    "acknowledgements",
    "doi",
    "funding statement",
    "idr accession number",
}
_OBJECT_KEYS = {
    "organism",
    "imaging method",
    "imaging methods",
    "transformation matrix",
    "transformation",
    "transformations",
    "annotation type",
    "annotation types",
    "file list",
    "signal/contrast mechanism",
    "contrast method",
    "channel content",
    "channel biological entity",
    "channel name",
}
_AUTHOR_KEYS = {
    "name",
    "e mail",
    "email",
    "orcid",
    "orcid id",
    "role",
    "roles",
    "affiliation",
    "affiliations",
    "organisation",
    "organization",
}
_PUBLICATION_KEYS = {"title", "authors", "author", "year", "doi", "pubmed id", "pmid", "pubmed"}
_FUNDING_KEYS = ("agency", "funder", "funding body", "grant id", "grant", "grant identifier", "grant number")
_CHANNEL_SLOTS = {
    "signal/contrast mechanism": "contrast_method",
    "contrast method": "contrast_method",
    "channel content": "dye",
    "channel biological entity": "channel_biological_entity",
    "channel name": "channel_name",
}


# --------------------------------------------------------------------------- the loader


class _Loader:
    """One conversion: walks the submission once, collecting the record and notes."""

    def __init__(self, doc: dict[str, Any], name: str, unresolved: str, default_license: str | None) -> None:
        self.doc = doc
        self.name = name
        self.unresolved = unresolved
        self.default_license = default_license
        self.notes: list[str] = []
        self.file_lists: list[FileListRef] = []
        self.inline_paths: set[str] = set()
        self.study: dict[str, Any] = {}
        self.objects: dict[str, list[dict[str, Any]]] = {kind: [] for kind in _OBJECT_SLOTS}
        self.titles: dict[str, set[str]] = {kind: set() for kind in [*_OBJECT_SLOTS, "component"]}
        self.organisations: dict[str, dict[str, Any]] = {}
        self.components: list[tuple[dict[str, Any], dict[str, list[str]], list[dict[str, list[str]]]]] = []
        self.counters: dict[str, int] = {}

    # ---- helpers

    def note(self, message: str) -> None:
        if message not in self.notes:
            self.notes.append(message)

    def where(self, section: dict[str, Any]) -> str:
        accno = _accno(section)
        return f"{_type(section)} section" + (f" {accno!r}" if accno else "")

    def keep(self, target: dict[str, Any], attr: Attr, where: str, prefix: str = "") -> None:
        """Keep an attribute as a generic name/value pair on ``target`` (a name alone if it has no value), noted."""
        name = f"{prefix}{attr.name}"
        attributes = target.setdefault("attributes", [])
        attributes.append({"name": name, "value": attr.value} if attr.value is not None else {"name": name})
        for qual_name, qual_value in attr.valqual + attr.nmqual:
            attributes.append({"name": f"{name} ({qual_name})", "value": qual_value})
        owner = "the study" if target is self.study else f"its {target.get('title', 'object')!r}"
        self.note(f"{where}: attribute {attr.name!r} kept as a generic attribute of {owner}")

    # ---- envelope and study

    def load(self, source_url: str | None, harvested_at: str | None) -> LoadedRecord:
        doc = self.doc
        accession = _accno(doc)
        root = doc.get("section")
        if not isinstance(root, dict):
            raise PageTabError(
                f"{self.name} ({accession or 'no accno'}): no Study section (the submission's 'section' is missing)",
                [{"file": self.name, "accno": accession, "field": "section", "message": "missing Study section"}],
            )
        if accession:
            self.study["accession"] = accession
        else:  # a new deposit gets its accession when it is finalised
            self.note("submission: no accession (accno)")
        envelope = _attrs(doc)
        study_attrs = _attrs(root)
        on_section = {a.key for a in study_attrs}
        # the study's own fields written on the submission instead (older records): read as the section's
        study_attrs += [a for a in envelope if a.key in _SECTION_FIELDS_ON_ENVELOPE and a.key not in on_section]
        self._envelope(envelope, study_attrs, root)
        self._study_attributes(study_attrs, root)
        for link in _flatten(root.get("links")):
            self._link(link, self.where(root))
        self._files(root, None)
        subsections = list(_flatten(root.get("subsections")))
        for section in subsections:  # organisations first: authors refer to them
            if _kind(section) == "organisation":
                self._organisation(section)
        for section in subsections:
            self._section(section)
        self._resolve_components()
        self._link_specimens()
        self._finish(accession, source_url, harvested_at)
        return LoadedRecord(record=self.study, file_lists=self.file_lists, unmapped=self.notes)

    def _envelope(self, envelope: list[Attr], study_attrs: list[Attr], root: dict[str, Any]) -> None:
        first = {a.key: a for a in reversed(envelope)}
        section_first = {a.key: a for a in reversed(study_attrs)}
        title = first.get("title") or section_first.get("title")
        if title and title.value:
            self.study["title"] = title.value
        release = first.get("releasedate") or section_first.get("releasedate")
        raw_release = release.value if release else None
        for key in ("rtime", "releaseTime", "releaseDate", "releasetime"):
            if raw_release is None and self.doc.get(key) is not None:
                raw_release = self.doc[key]
        date = _release_date(raw_release)
        if date:
            self.study["release_date"] = date
        for attr in envelope:
            if attr.key in _SECTION_FIELDS_ON_ENVELOPE:
                continue  # read with the Study section's attributes
            if attr.key in {"title", "releasedate"}:
                if attr.key == "title" and attr.value and attr.value != self.study.get("title"):
                    self.keep(self.study, attr, "submission")
                continue
            if attr.key == "doi":
                self._study_doi(attr, "submission")
            else:
                self.keep(self.study, attr, "submission")

    def _study_doi(self, attr: Attr, where: str) -> None:
        if attr.value is None or "doi" in self.study:
            return
        doi = normalise_doi(attr.value)
        if doi:
            self.study["doi"] = doi
        else:
            self.note(f"{where}: DOI {attr.value!r} is not a DOI; left out")

    def _study_attributes(self, attrs: list[Attr], root: dict[str, Any]) -> None:
        where = self.where(root)
        keywords: list[str] = []
        keyword_attrs = [a for a in attrs if a.key in {"keywords", "keyword"} and a.value]
        for attr in keyword_attrs:  # one list ("a, b; c"), or one keyword per attribute (which may hold a comma)
            if len(keyword_attrs) == 1:
                keywords.extend(k.strip() for k in re.split(r"[,;]", attr.value or ""))
            else:
                keywords.append(attr.value or "")
        licence_attr = None
        for attr in attrs:
            if attr.key in {"title", "releasedate", "keywords", "keyword"}:
                if attr.key == "title" and attr.value and attr.value != self.study.get("title"):
                    self.keep(self.study, attr, where)
                continue
            if attr.value is None:
                if attr.key not in _STUDY_KEYS:
                    self.keep(self.study, attr, where)
                continue
            if attr.key == "description":
                if "description" in self.study and self.study["description"] != attr.value:
                    self.keep(self.study, attr, where)  # a second description: kept, not lost
                else:
                    self.study["description"] = attr.value
            elif attr.key == "abstract" and "description" not in self.study and not any(a.key == "description" for a in attrs):
                self.study["description"] = attr.value  # no Description: the Abstract describes the study
            elif attr.key in {"license", "licence"}:
                licence_attr = licence_attr or attr
            elif attr.key == "acknowledgements":
                self.study["acknowledgements"] = attr.value
            elif attr.key == "doi":
                self._study_doi(attr, where)
            elif attr.key == "funding statement":
                self.study.setdefault("funding", []).append({"funding_statement": attr.value})
            elif attr.key == "file list":
                title = self._unique_title("component", "Study files", root)
                self.note(f"{where}: File List {attr.value!r} on the Study section; its files form the component {title!r}")
                self.components.append(({"title": title, "file_list_name": attr.value}, {}, []))
                self.file_lists.append(FileListRef(title, attr.value, _accno(root), _type(root)))
            elif attr.key == "idr accession number":
                ref = cross_reference(attr.value, "IDR")
                if ref and ref.get("resource") == "IDR" and ref["target"].startswith("https://identifiers.org/idr:"):
                    ref["relation"] = "same_as"
                    self._add_cross_reference(ref)
                else:
                    self.keep(self.study, attr, where)
            else:
                self.keep(self.study, attr, where)
        keywords = list(dict.fromkeys(k for k in keywords if k))
        if keywords:
            self.study["keywords"] = keywords
        self._licence(licence_attr, where)

    def _licence(self, attr: Attr | None, where: str) -> None:
        if attr is None or attr.value is None:
            if self.default_license:
                self.study["license"] = self.default_license
                self.note(f"{where}: no License attribute; the default {self.default_license} applied")
            else:
                self.note(f"{where}: no License attribute")
            return
        candidates = [attr.value] + [value for _name, value in attr.valqual]
        for text in candidates:
            name = licence_name(text)
            if name:
                self.study["license"] = name
                return
        self.keep(self.study, attr, where)
        self.note(f"{where}: licence {attr.value!r} is not one the catalog knows; no licence set")

    # ---- sections

    def _section(self, section: dict[str, Any], associations: dict[str, list[str]] | None = None) -> None:
        """One subsection of the study (or a REMBI section nested in a component, recorded in ``associations``)."""
        kind = _kind(section)
        if (
            not _attrs(section)
            and not list(_flatten(section.get("subsections")))
            and not section.get("files")
            and not section.get("links")
        ):
            return  # an empty section (templates leave them) holds nothing
        if kind in _OBJECT_SLOTS:
            obj = self._object(kind, section)
            if obj is not None and associations is not None:
                associations.setdefault(kind, []).append(obj["title"])
            return
        handler = {
            "component": self._component,
            "author": self._author,
            "publication": self._publication,
            "funding": self._funding,
            "organisation": lambda s: None,
        }.get(kind or "")
        if handler is None and any(a.key == "file list" and a.value for a in _attrs(section)):
            self.note(f"{self.where(section)}: a {_type(section)} section with a File List read as a study component")
            handler, kind = self._component, "component"
        if handler is None:
            self._unmapped_section(section, self.study)
            return
        handler(section)
        if kind != "component":  # what an author, publication… section holds beyond its attributes is kept too
            for link in _flatten(section.get("links")):
                self._link(link, self.where(section))
            self._files(section, None)
            for sub in _flatten(section.get("subsections")):
                self._unmapped_section(sub, self.study)

    def _unmapped_section(self, section: dict[str, Any], target: dict[str, Any], component: str | None = None) -> None:
        """A section of a type no REMBI slot holds: its attributes kept on ``target``, prefixed by its type."""
        where = self.where(section)
        label = _type(section) + (f" {_accno(section)}" if _accno(section) else "")
        for attr in _attrs(section):
            self.keep(target, attr, where, prefix=f"{label}: ")
        for link in _flatten(section.get("links")):
            self._link(link, where)
        self._files(section, component)
        for sub in _flatten(section.get("subsections")):
            self._unmapped_section(sub, target, component)

    def _unique_title(self, kind: str, title: str, section: dict[str, Any]) -> str:
        if title in self.titles[kind]:
            renamed = f"{title} ({_accno(section) or len(self.titles[kind]) + 1})"
            self.note(f"{self.where(section)}: a second {_type(section)} titled {title!r}; renamed {renamed!r}")
            title = renamed
        self.titles[kind].add(title)
        return title

    def _object(self, kind: str, section: dict[str, Any]) -> dict[str, Any] | None:
        where = self.where(section)
        obj: dict[str, Any] = {}
        slots = _TEXT_SLOTS[kind]
        attrs = _attrs(section)
        channel: dict[str, Any] = {}
        methods: list[dict[str, str]] = []
        for attr in attrs:
            if attr.value is None:
                if attr.key not in slots and attr.key not in _OBJECT_KEYS:
                    self.keep(obj, attr, where)
                continue
            if attr.key == "file list" and kind == "annotation":
                continue
            slot = slots.get(attr.key)
            if isinstance(slot, list):
                obj.setdefault(slot[0], []).append(attr.value)
            elif slot:
                obj.setdefault(slot, attr.value)
            elif kind == "biosample" and attr.key == "organism":
                self._organism_text(obj, attr, where)
            elif kind == "acquisition" and attr.key in {"imaging method", "imaging methods"}:
                methods.append(self._imaging_method(obj, attr.value, None, None, where))
            elif kind == "specimen" and attr.key in _CHANNEL_SLOTS:
                channel[_CHANNEL_SLOTS[attr.key]] = attr.value
            elif kind == "correlation" and attr.key in {"transformation matrix", "transformation", "transformations"}:
                obj["transformation_text"] = attr.value
                transformation = _transformation(attr.value)
                if transformation:
                    obj["transformations"] = [transformation]
            elif kind == "annotation" and attr.key in {"annotation type", "annotation types"}:
                self._annotation_types(obj, attr, where)
            else:
                self.keep(obj, attr, where)
        for sub in _flatten(section.get("subsections")):
            sub_kind = _kind(sub)
            if kind == "biosample" and sub_kind == "organism":
                self._organism_section(obj, sub)
            elif kind == "acquisition" and sub_kind == "imaging method":
                term = self._imaging_method_section(obj, sub)
                if term:
                    methods.append(term)
            else:
                self._unmapped_section(sub, obj)
        if not obj and not methods:
            return None
        if channel:
            obj["signal_channels"] = [channel]
        if kind == "acquisition":
            if not methods:
                self.note(f"{where}: no imaging method; FBbi's generic 'imaging method' used")
                methods.append(ontology_terms.GENERIC_IMAGING_METHOD.as_record())
            obj["imaging_methods"] = list({m["id"]: m for m in methods}.values())
        if "title" not in obj:
            obj["title"] = _accno(section) or f"{_type(section)} {len(self.objects[kind]) + 1}"
            self.note(f"{where}: no Title; titled {obj['title']!r}")
        obj["title"] = self._unique_title(kind, obj["title"], section)
        for link in _flatten(section.get("links")):
            self._link(link, where)
        self._files(section, None)
        for attr in attrs:
            if kind == "annotation" and attr.key == "file list" and attr.value:
                self.file_lists.append(FileListRef(None, attr.value, _accno(section), _type(section)))
        self.objects[kind].append(self._ordered(obj))
        return obj

    @staticmethod
    def _ordered(obj: dict[str, Any]) -> dict[str, Any]:
        """Title first and attributes last: records read the same way whatever the attribute order."""
        head = {k: obj[k] for k in ("title",) if k in obj}
        tail = {k: obj[k] for k in ("attributes",) if k in obj}
        return {**head, **{k: v for k, v in obj.items() if k not in head and k not in tail}, **tail}

    # ---- ontology terms

    def _organism_text(self, obj: dict[str, Any], attr: Attr, where: str) -> None:
        curie = next((ontology_terms.taxon_curie(v) for _n, v in attr.valqual if ontology_terms.taxon_curie(v)), None)
        term = ontology_terms.term_by_id(curie) if curie else ontology_terms.organism_term(attr.value or "")
        if curie and term is None:
            obj.setdefault("organisms", []).append({"id": curie, "label": attr.value, "ontology_name": "NCBITaxon"})
        elif term:
            obj.setdefault("organisms", []).append(term.as_record())
        else:
            self.keep(obj, attr, where)
            self.note(f"{where}: organism {attr.value!r} has no NCBITaxon term in the table")

    def _organism_section(self, obj: dict[str, Any], section: dict[str, Any]) -> None:
        where = self.where(section)
        values = {a.key: a.value for a in _attrs(section) if a.value}
        scientific = values.get("scientific name")
        common = values.get("common name")
        written_id = next(
            (values[k] for k in ("ncbi taxon id", "ontology term id", "taxon id", "ncbitaxon") if k in values), None
        )
        curie = ontology_terms.taxon_curie(written_id) if written_id else None
        term = None
        if curie:
            known = ontology_terms.term_by_id(curie)
            label = known.label if known else (scientific or common or curie)
            term = {"id": curie, "label": label, "ontology_name": "NCBITaxon"}
        else:
            for name in (scientific, common):
                found = ontology_terms.organism_term(name) if name else None
                if found:
                    term = found.as_record()
                    break
        if term:
            obj.setdefault("organisms", []).append(term)
        for attr in _attrs(section):
            if attr.value is None:
                continue
            if attr.key in {
                "scientific name",
                "common name",
                "ncbi taxon id",
                "ontology term id",
                "taxon id",
                "ncbitaxon",
            }:
                if term is None:
                    self.keep(obj, Attr(f"Organism {attr.name}", attr.key, attr.value, False, (), ()), where)
                continue
            self.keep(obj, Attr(f"Organism {attr.name}", attr.key, attr.value, False, attr.valqual, attr.nmqual), where)
        if term is None and values:
            self.note(f"{where}: organism {scientific or common or written_id!r} has no NCBITaxon term in the table")

    def _imaging_method(
        self, obj: dict[str, Any], text: str | None, term_id: str | None, ontology: str | None, where: str
    ) -> dict[str, str]:
        if term_id:
            curie = ontology_terms.term_curie(term_id)
            if curie:
                known = ontology_terms.term_by_id(curie)
                label = known.label if known else (text or curie)
                return {"id": curie, "label": label, "ontology_name": ontology_terms.ontology_of(curie, ontology)}
            self.note(f"{where}: ontology term id {term_id!r} is not an IRI or CURIE; looked up by name")
        term, exact = ontology_terms.imaging_method_term(text or "")
        if term:
            if not exact:
                self.note(f"{where}: imaging method {text!r} matched to {term.id} {term.label!r}")
            return term.as_record()
        obj.setdefault("attributes", []).append({"name": "Imaging method", "value": text or ""})
        self.note(
            f"{where}: imaging method {text!r} has no FBbi term in the table; FBbi's generic "
            f"'imaging method' used, the text kept as an attribute"
        )
        return ontology_terms.GENERIC_IMAGING_METHOD.as_record()

    def _imaging_method_section(self, obj: dict[str, Any], section: dict[str, Any]) -> dict[str, str] | None:
        where = self.where(section)
        values = {a.key: a.value for a in _attrs(section) if a.value}
        text = values.get("ontology value") or values.get("value") or values.get("name")
        term_id = values.get("ontology term id") or values.get("term id")
        if not text and not term_id:
            return None
        for attr in _attrs(section):
            if attr.value and attr.key not in {
                "ontology value",
                "value",
                "name",
                "ontology term id",
                "term id",
                "ontology name",
            }:
                self.keep(obj, Attr(f"Imaging method {attr.name}", attr.key, attr.value, False, (), ()), where)
        return self._imaging_method(obj, text, term_id, values.get("ontology name"), where)

    def _annotation_types(self, obj: dict[str, Any], attr: Attr, where: str) -> None:
        for part in re.split(r"[,;]", attr.value or ""):
            key = _key(part)
            if not key:
                continue
            if key in _ANNOTATION_TYPES:
                value = key.replace(" ", "_")
                if value not in obj.setdefault("annotation_types", []):
                    obj["annotation_types"].append(value)
            else:
                self.keep(obj, Attr(attr.name, attr.key, part.strip(), False, (), ()), where)
                self.note(f"{where}: annotation type {part.strip()!r} is not a MIFA annotation type")

    # ---- people, publications, funding

    def _organisation(self, section: dict[str, Any]) -> None:
        accno = _accno(section)
        org: dict[str, Any] = {}
        where = self.where(section)
        for attr in _attrs(section):
            if attr.value is None:
                if attr.key not in {"name", "address", "country", "rorid", "ror", "ror id"}:
                    self.keep(self.study, attr, where, prefix=f"Organisation {accno}: ")
                continue
            if attr.key == "name":
                org.setdefault("name", attr.value)
            elif attr.key == "address":
                org["address"] = attr.value
            elif attr.key == "country":
                org["country"] = attr.value
            elif attr.key in {"rorid", "ror", "ror id"}:
                ror = normalise_ror(attr.value)
                if ror:
                    org["ror"] = ror
                else:
                    self.note(f"{where}: ROR {attr.value!r} is not a ROR id; left out")
            else:
                self.keep(self.study, attr, where, prefix=f"Organisation {org.get('name', accno)}: ")
        if accno and org.get("name"):
            self.organisations[accno] = org
        elif org:
            self.note(f"{where}: organisation without an accno or a name is not referenced by anyone")

    def _author(self, section: dict[str, Any]) -> None:
        where = self.where(section)
        author: dict[str, Any] = {}
        number = self.counters["author"] = self.counters.get("author", 0) + 1
        for attr in _attrs(section):
            if attr.value is None:
                if attr.key not in _AUTHOR_KEYS:
                    self.keep(self.study, attr, where, prefix=f"Author {number}: ")
                continue
            if attr.key == "name":
                author.setdefault("name", attr.value)
            elif attr.key in {"e mail", "email"}:
                if _EMAIL.match(attr.value):
                    author["email"] = attr.value
                else:
                    self.note(f"{where}: e-mail {attr.value!r} of author {number} is not an e-mail address; left out")
            elif attr.key in {"orcid", "orcid id"}:
                orcid = normalise_orcid(attr.value)
                if orcid:
                    author["orcid"] = orcid
                else:
                    self.note(f"{where}: ORCID {attr.value!r} of author {number} is not a valid ORCID iD; left out")
            elif attr.key in {"role", "roles"}:
                for role in re.split(r"[,;]", attr.value):
                    if role.strip() and role.strip() not in author.setdefault("roles", []):
                        author["roles"].append(role.strip())
            elif attr.key in {"affiliation", "affiliations", "organisation", "organization"}:
                self._affiliations(author, attr, where)
            else:
                self.keep(self.study, attr, where, prefix=f"Author {number}: ")
        if not author.get("name"):
            self.note(f"{where}: author {number} has no name; left out")
            return
        ordered = {k: author[k] for k in ("name", "orcid", "email", "roles", "affiliations") if k in author}
        self.study.setdefault("authors", []).append(ordered)

    def _affiliations(self, author: dict[str, Any], attr: Attr, where: str) -> None:
        names = [attr.value or ""] if not attr.reference else [p.strip() for p in re.split(r"[,;]", attr.value or "")]
        for name in filter(None, names):
            org = self.organisations.get(name)
            if org is None and attr.reference:
                self.note(f"{where}: affiliation refers to {name!r}, which no organisation section has as accno")
                org = {"name": name}
            org = org or {"name": name}
            if org not in author.setdefault("affiliations", []):
                author["affiliations"].append(dict(org))

    def _publication(self, section: dict[str, Any]) -> None:
        where = self.where(section)
        number = self.counters["publication"] = self.counters.get("publication", 0) + 1
        pub: dict[str, Any] = {}
        for attr in _attrs(section):
            if attr.value is None:
                if attr.key not in _PUBLICATION_KEYS:
                    self.keep(self.study, attr, where, prefix=f"Publication {number}: ")
                continue
            if attr.key == "title":
                pub.setdefault("title", attr.value)
            elif attr.key in {"authors", "author"}:
                pub["publication_authors"] = attr.value
            elif attr.key == "year":
                match = re.fullmatch(r"\s*(\d{4})\s*", attr.value)
                if match and 1600 <= int(match.group(1)) <= 2200:
                    pub["year"] = int(match.group(1))
                else:
                    self.keep(self.study, attr, where, prefix=f"Publication {number}: ")
            elif attr.key == "doi":
                doi = normalise_doi(attr.value)
                if doi:
                    pub["doi"] = doi
                else:
                    self.note(f"{where}: DOI {attr.value!r} of publication {number} is not a DOI; left out")
            elif attr.key in {"pubmed id", "pmid", "pubmed"}:
                if normalise_pubmed(attr.value):
                    pub["pubmed_id"] = normalise_pubmed(attr.value)
                else:
                    self.note(f"{where}: PubMed ID {attr.value!r} of publication {number} is not a PubMed ID; left out")
            else:
                self.keep(self.study, attr, where, prefix=f"Publication {number}: ")
        if not pub.get("title") and not pub.get("doi"):
            if pub.get("pubmed_id"):  # known by its PubMed id alone: a link to it
                self._add_cross_reference(pubmed_reference(pub["pubmed_id"]))
                self.note(f"{where}: publication {number} has only a PubMed id; kept as a link to PubMed")
            elif pub:
                self.note(f"{where}: publication {number} has neither a title nor a DOI; left out ({pub})")
            return
        ordered = {k: pub[k] for k in ("title", "publication_authors", "year", "doi", "pubmed_id") if k in pub}
        self.study.setdefault("publications", []).append(ordered)

    def _funding(self, section: dict[str, Any]) -> None:
        where = self.where(section)
        grant: dict[str, Any] = {}
        number = self.counters["funding"] = self.counters.get("funding", 0) + 1
        for attr in _attrs(section):
            if attr.value is None:
                if attr.key not in _FUNDING_KEYS:
                    self.keep(self.study, attr, where, prefix=f"Funding {number}: ")
                continue
            if attr.key in _FUNDING_KEYS[:3]:
                grant["funder"] = attr.value
            elif attr.key in _FUNDING_KEYS[3:]:
                grant["grant_id"] = attr.value
            else:
                self.keep(self.study, attr, where, prefix=f"Funding {number}: ")
        if grant:
            self.study.setdefault("funding", []).append(grant)

    # ---- links and files

    def _link(self, link: dict[str, Any], where: str) -> None:
        url = _text(link.get("url"))
        if not url:
            return
        attrs = {a.key: a.value for a in _attrs(link) if a.value}
        label = attrs.get("description") or attrs.get("title")
        ref = cross_reference(url, attrs.get("type"), label)
        relation = _key(attrs.get("relation") or attrs.get("relationship") or "")
        if ref and relation in _RELATIONS:
            ref["relation"] = relation.replace(" ", "_")
        if ref is None:
            described = f"{url} ({attrs.get('type')})" if attrs.get("type") else url
            self.study.setdefault("attributes", []).append({"name": "Link", "value": described})
            self.note(f"{where}: link {url!r} is neither a URL nor a known accession; kept as an attribute")
            return
        self._add_cross_reference(ref)

    def _add_cross_reference(self, ref: dict[str, Any]) -> None:
        refs = self.study.setdefault("cross_references", [])
        if all(r["target"] != ref["target"] for r in refs):
            refs.append(ref)

    def _files(self, section: dict[str, Any], component: str | None) -> None:
        where = self.where(section)
        for item in _flatten(section.get("files")):
            path = _text(item.get("path") or item.get("filePath"))
            if not path:
                continue
            if str(item.get("type", "file")).lower() == "directory":
                self.note(f"{where}: directory {path!r} attached to the section is not a file; left out")
                continue
            try:
                path, _ = normalise_path(path.lstrip("/"))
            except ValueError as exc:
                self.note(f"{where}: file {path!r} left out: {exc}")
                continue
            size = item.get("size")
            if isinstance(size, str) and size.strip().isdigit():
                size = int(size.strip())
            if not isinstance(size, int) or isinstance(size, bool) or size < 0:
                self.note(f"{where}: file {path!r} has no size; left out of the record (add it with a file list)")
                continue
            if path in self.inline_paths:
                self.note(f"{where}: file {path!r} is attached twice; the second left out")
                continue
            self.inline_paths.add(path)
            ref: dict[str, Any] = {"path": path, "size_bytes": size}
            if component:
                ref["file_component"] = component
            attributes = [{"name": a.name, "value": a.value} for a in _attrs(item) if a.value is not None]
            if attributes:
                ref["attributes"] = attributes
            self.study.setdefault("files", []).append(ref)

    # ---- components

    def _component(self, section: dict[str, Any]) -> None:
        where = self.where(section)
        component: dict[str, Any] = {}
        for attr in _attrs(section):
            if attr.value is None:
                if attr.key not in _TEXT_SLOTS["component"] and attr.key != "file list":
                    self.keep(component, attr, where)
                continue
            slot = _TEXT_SLOTS["component"].get(attr.key)
            if slot:
                component.setdefault(slot, attr.value)
            elif attr.key == "file list":
                component["file_list_name"] = attr.value
            else:
                self.keep(component, attr, where)
        if "title" not in component:
            named = _type(section) if _kind(section) != "component" else None  # e.g. an older study's "Data" section
            component["title"] = _accno(section) or named or f"Study Component {len(self.components) + 1}"
            self.note(f"{where}: no Name; titled {component['title']!r}")
        component["title"] = self._unique_title("component", component["title"], section)
        if "file_list_name" in component:
            self.file_lists.append(
                FileListRef(component["title"], component["file_list_name"], _accno(section), _type(section))
            )
        nested: dict[str, list[str]] = {}
        written: list[dict[str, list[str]]] = []
        for sub in _flatten(section.get("subsections")):
            kind = _kind(sub)
            if kind == "associations":
                written.append(self._associations(sub, component))
            elif kind in _OBJECT_SLOTS:
                self._section(sub, nested)  # legacy layout: REMBI sections inside the component
            else:
                self._unmapped_section(sub, component, component["title"])
        for link in _flatten(section.get("links")):
            self._link(link, where)
        self._files(section, component["title"])
        self.components.append((component, nested, written))

    def _associations(self, section: dict[str, Any], component: dict[str, Any]) -> dict[str, list[str]]:
        where = self.where(section)
        found: dict[str, list[str]] = {}
        for attr in _attrs(section):
            if attr.value is None:
                continue
            kind = _ASSOCIATION_KEYS.get(attr.key)
            if kind:
                found.setdefault(kind, []).append(attr.value)
            else:
                self.keep(component, attr, where, prefix="Association ")
        for link in _flatten(section.get("links")):  # tables the TSV form attaches to the last section read
            self._link(link, where)
        self._files(section, component.get("title"))
        return found

    def _match_title(self, kind: str, name: str) -> str | None:
        if name in self.titles[kind]:
            return name
        loose = {" ".join(t.casefold().split()): t for t in self.titles[kind]}
        return loose.get(" ".join(name.casefold().split()))

    def _resolve_components(self) -> None:
        for component, nested, written in self.components:
            refs: dict[str, list[str]] = {kind: list(titles) for kind, titles in nested.items()}
            for association in written:
                for kind, names in association.items():
                    for name in names:
                        title = self._match_title(kind, name)
                        if title is None:
                            title = self._unresolved(component, kind, name)
                        if title is not None:
                            refs.setdefault(kind, []).append(title)
            record = {"title": component["title"]}
            if "description" in component:
                record["description"] = component["description"]
            for kind, (_slot, association_slot) in _OBJECT_SLOTS.items():
                if refs.get(kind):
                    record[association_slot] = list(dict.fromkeys(refs[kind]))
            for key in ("file_list_name", "attributes"):
                if key in component:
                    record[key] = component[key]
            self.study.setdefault("components", []).append(record)

    def _unresolved(self, component: dict[str, Any], kind: str, name: str) -> str | None:
        label = _OBJECT_SLOTS[kind][1]
        if self.unresolved == "drop":
            component.setdefault("attributes", []).append({"name": f"Unresolved {kind}", "value": name})
            self.note(
                f"Study Component {component['title']!r}: {label} names {name!r}, which no section defines; "
                f"association dropped, the name kept as an attribute"
            )
            return None
        self.note(f"Study Component {component['title']!r}: {label} names {name!r}, which no section defines")
        return name

    def _link_specimens(self) -> None:
        """A specimen's biosamples are those it is associated with (in one association or one component)."""
        pairs: dict[str, list[str]] = {}
        for _component, nested, written in self.components:
            for group in [nested, *written]:
                biosamples = [self._match_title("biosample", b) for b in group.get("biosample", [])]
                for specimen in group.get("specimen", []):
                    title = self._match_title("specimen", specimen)
                    if title:
                        pairs.setdefault(title, []).extend(b for b in biosamples if b)
        biosample_titles = [b["title"] for b in self.objects["biosample"]]
        for specimen in self.objects["specimen"]:
            linked = list(dict.fromkeys(pairs.get(specimen["title"], [])))
            if not linked and len(biosample_titles) == 1:
                linked = biosample_titles
                self.note(
                    f"Specimen {specimen['title']!r}: no association names its biosample; the study's only "
                    f"biosample {biosample_titles[0]!r} used"
                )
            if linked:
                specimen["specimen_biosamples"] = linked
            else:
                self.note(f"Specimen {specimen['title']!r}: no association names its biosample")

    # ---- the record

    def _finish(self, accession: str | None, source_url: str | None, harvested_at: str | None) -> None:
        for kind, (slot, _association) in _OBJECT_SLOTS.items():
            if self.objects[kind]:
                self.study[slot] = [self._ordered(o) for o in self.objects[kind]]
        # BioStudies holds S-BSST… and other collections; S-BIAD… and new deposits (no accno yet) are this archive's
        from_biostudies = bool(accession) and not str(accession).upper().startswith("S-BIAD")
        self.study["provenance"] = provenance(
            "BioStudies" if from_biostudies else "BioImage Archive", LOADER_NAME, LOADER_VERSION,
            accession=accession, source_url=source_url, harvested_at=harvested_at,
        )
        order = [
            "accession",
            "title",
            "description",
            "keywords",
            "license",
            "release_date",
            "doi",
            "authors",
            "publications",
            "funding",
            "acknowledgements",
            "cross_references",
            "provenance",
            "components",
            "biosamples",
            "specimens",
            "image_acquisitions",
            "image_correlations",
            "image_analyses",
            "annotation_methods",
            "files",
            "attributes",
        ]
        ordered = {key: self.study[key] for key in order if key in self.study}
        self.study.clear()
        self.study.update(ordered)


# --------------------------------------------------------------------------- public functions


def _read_document(doc: dict[str, Any] | str | os.PathLike[str]) -> tuple[dict[str, Any], str]:
    """The JSON model and a name for messages (the file name, or the accession), read within the limits of
    :func:`catalog.records.read_document` (size, nesting, number of values)."""
    if isinstance(doc, dict):
        name = str(_accno(doc) or "PageTab document")
        check_shape(doc, name)
        return doc, name
    try:
        if isinstance(doc, str) and doc.lstrip().startswith(("{", "[")):
            data: str | bytes = doc
            name = "PageTab JSON"
        else:
            path = Path(doc)
            data, name = read_limited(path, MAX_BYTES), path.name
        document = read_document(data, name, allow_yaml=False).data
    except PageTabError:
        raise
    except CatalogError as exc:
        raise PageTabError(exc.message, exc.errors) from None
    if not isinstance(document, dict):
        raise PageTabError(
            f"{name}: a PageTab submission must be a JSON object, not {type(document).__name__}",
            [{"file": name, "message": "not a JSON object"}],
        )
    return document, name


def load_pagetab_json(
    doc: dict[str, Any] | str | os.PathLike[str],
    *,
    source_url: str | None = None,
    harvested_at: str | None = None,
    unresolved_associations: Literal["report", "drop"] = "report",
    default_license: str | None = "CC0-1.0",
) -> LoadedRecord:
    """A REMBI study record from a PageTab submission (a parsed JSON dict, JSON text or a file path).

    ``harvested_at`` is written as given (pass it for harvests; loading the same input twice gives the same
    record). ``unresolved_associations``: ``"report"`` keeps an association to a missing section so that
    validation names it; ``"drop"`` leaves it out with a note. ``default_license`` is the licence of a
    submission that states none (None: leave it unset, for validation to report).
    """
    if unresolved_associations not in ("report", "drop"):
        raise ValueError(f"unresolved_associations must be 'report' or 'drop', not {unresolved_associations!r}")
    data, name = _read_document(doc)
    return _Loader(data, name, unresolved_associations, default_license).load(source_url, harvested_at)


def load_pagetab_tsv(text_or_path: str | os.PathLike[str], **options: Any) -> LoadedRecord:
    """A REMBI study record from PageTab TSV text or a TSV file (see :mod:`loaders.pagetab_tsv`)."""
    from loaders.pagetab_tsv import load_pagetab_tsv as load

    return load(text_or_path, **options)
