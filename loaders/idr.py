"""IDR study files (``idrNNNN-study.txt``) → REMBI study records.

An IDR study file is tab-separated ``Key<TAB>value<TAB>value…`` lines (values may be CSV-quoted), in sections
marked by ``#`` comments. Study-level keys come first; each ``Screen Number`` or ``Experiment Number`` line
starts a component block (the screen or experiment with its Library, Protocols, Phenotypes and data-file
sections) which lasts until the next one.

Mapping: the study keeps its IDR accession (``idr0004``); organisms become a biosample with NCBITaxon terms;
each screen/experiment becomes a study component with its imaging method (FBbi) as an image acquisition,
growth and library protocols as a specimen, analysis protocols as an image analysis; the remaining keys of a
block are kept as attributes, never dropped.
"""
from __future__ import annotations

import csv
import io
import re
from pathlib import Path
from typing import Any

from catalog.errors import ValidationFailed
from loaders.ontology_terms import GENERIC_IMAGING_METHOD, Term, imaging_method_term, organism_term, term_by_id
from loaders.pagetab import LoadedRecord, licence_name, normalise_pubmed, provenance, pubmed_reference

LOADER_NAME = "bia-catalog IDR loader"
LOADER_VERSION = "1"
IDR_STUDY = "https://idr.openmicroscopy.org/search/?query=Name:{accession}"
_BLOCK_START = re.compile(r"^(Screen|Experiment) Number$")
#: Study-level keys the mapping uses (everything else becomes an attribute).
_STUDY_KEYS = {
    "Comment[IDR Study Accession]", "Study Title", "Study Description", "Study Public Release Date", "Study Key Words",
    "Study Organism", "Study Organism Term Source REF", "Study Organism Term Accession", "Study PubMed ID",
    "Study Publication Title", "Study Author List", "Study DOI", "Study PMC ID", "Study License", "Study License URL",
    "Study Data DOI", "Study Person Last Name", "Study Person First Name", "Study Person Email",
    "Study Person Address", "Study Person Roles", "Study Person ORCID", "Term Source Name", "Term Source URI",
}


class IdrError(ValidationFailed):
    code = "invalid_idr_study"


def _rows(text: str) -> list[tuple[int, str, list[str]]]:
    """(line number, key, non-empty values) of every data line."""
    rows = []
    reader = csv.reader(io.StringIO(text), delimiter="\t")
    number = 1  # the line a row starts on (a quoted value may span lines)
    for fields in reader:
        start, number = number, reader.line_num + 1
        if any("\n" in v and "\t" in v for v in fields):  # rows swallowed into one value: an unclosed quote
            raise IdrError(
                f"line {start}: a quoted value runs on over tab-separated lines; is its closing quote missing?",
                [{"line": start, "field": fields[0].strip() if fields else None, "message": "unclosed quote"}],
            )
        if not fields or not fields[0].strip() or fields[0].lstrip().startswith("#"):
            continue
        values = [v.strip() for v in fields[1:]]
        while values and not values[-1]:
            values.pop()
        rows.append((start, fields[0].strip(), values))
    return rows


def _first(block: dict[str, list[str]], key: str) -> str | None:
    values = [v for v in block.get(key, []) if v]
    return values[0] if values else None


def _doi(value: str | None) -> str | None:
    text = re.sub(r"^(https?://(dx\.)?doi\.org/|doi:\s*)", "", (value or "").strip(), flags=re.I)
    return text if re.match(r"^10\.\d{4,9}/\S+$", text) else None


def _term(prefix: str, block: dict[str, list[str]], index: int, name: str) -> Term | None:
    accessions = block.get(f"{prefix} Term Accession", [])
    accession = accessions[index] if index < len(accessions) else ""
    match = re.match(r"^([A-Za-z]+)[_:](\d+)$", accession or "")
    if match:
        curie = f"{match.group(1) if match.group(1) != 'Fbbi' else 'FBbi'}:{match.group(2)}"
        known = term_by_id(curie)
        if known:
            return known
        ontology = "NCBITaxon" if curie.startswith("NCBITaxon") else curie.split(":")[0]
        return Term(curie, name, ontology)
    return None


def load_idr_study(path: str | Path, source_url: str | None = None, harvested_at: str | None = None) -> LoadedRecord:
    """Read one ``idrNNNN-study.txt`` file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise IdrError(f"{path}: not UTF-8 text ({exc})", [{"file": str(path)}]) from exc
    study: dict[str, list[str]] = {}
    blocks: list[tuple[str, dict[str, list[str]]]] = []
    lines: dict[str, int] = {}
    for number, key, values in _rows(text):
        if _BLOCK_START.match(key):
            blocks.append((key.split()[0], {}))
        target = blocks[-1][1] if blocks else study
        target.setdefault(key, []).extend(values)
        lines.setdefault(key, number)
    name = str(path)

    def need(key: str) -> str:
        value = _first(study, key)
        if not value:
            raise IdrError(f"{name}: no {key!r}", [{"file": name, "line": lines.get(key), "field": key}])
        return value

    accession = need("Comment[IDR Study Accession]")
    if not re.match(r"^idr\d{4}$", accession):
        raise IdrError(
            f"{name}:{lines.get('Comment[IDR Study Accession]')}: {accession!r} is not an IDR accession (idr0004)",
            [{"file": name, "line": lines.get("Comment[IDR Study Accession]"), "field": "Comment[IDR Study Accession]"}],
        )
    unmapped: list[str] = []
    record: dict[str, Any] = {
        "accession": accession,
        "title": need("Study Title"),
        "description": _first(study, "Study Description") or need("Study Title"),
    }
    released = _first(study, "Study Public Release Date")
    if released and re.match(r"^\d{4}-\d{2}-\d{2}$", released):
        record["release_date"] = released
    elif released:
        raise IdrError(
            f"{name}:{lines['Study Public Release Date']}: release date {released!r} is not YYYY-MM-DD",
            [{"file": name, "line": lines["Study Public Release Date"], "field": "Study Public Release Date"}],
        )
    keywords = [k.strip() for v in study.get("Study Key Words", []) for k in re.split(r"[,;]", v) if k.strip()]
    if keywords:
        record["keywords"] = [k.strip() for k in keywords]
    licence = licence_name(_first(study, "Study License URL") or "") or licence_name(_first(study, "Study License") or "")
    if licence:
        record["license"] = licence
    else:
        raise IdrError(
            f"{name}: licence {(_first(study, 'Study License') or '(none)')!r} is not one the catalog knows",
            [{"file": name, "line": lines.get("Study License"), "field": "Study License"}],
        )
    data_doi = _doi(_first(study, "Study Data DOI"))
    if data_doi:
        record["doi"] = data_doi

    # contacts: parallel columns
    last, first = study.get("Study Person Last Name", []), study.get("Study Person First Name", [])
    emails, roles, orcids = study.get("Study Person Email", []), study.get("Study Person Roles", []), study.get("Study Person ORCID", [])
    authors = []
    for i in range(max(len(last), len(first))):
        full = " ".join(x for x in ((first[i] if i < len(first) else ""), (last[i] if i < len(last) else "")) if x)
        if not full:
            continue
        author: dict[str, Any] = {"name": full, "position": len(authors) + 1}
        if i < len(emails) and "@" in emails[i]:
            author["email"] = emails[i]
        if i < len(roles) and roles[i]:
            author["roles"] = [r.strip() for r in roles[i].split(",") if r.strip()]
        orcid = orcids[i].rsplit("/", 1)[-1].strip().upper() if i < len(orcids) else ""
        if re.match(r"^\d{4}-\d{4}-\d{4}-\d{3}[\dX]$", orcid):
            author["orcid"] = "https://orcid.org/" + orcid
        authors.append(author)
    if not authors:  # IDR files always name a publication author list; better than no author
        for i, person in enumerate((_first(study, "Study Author List") or "").split(",")):
            if person.strip():
                authors.append({"name": person.strip(), "position": i + 1})
    record["authors"] = authors

    publications = []
    titles, dois = study.get("Study Publication Title", []), study.get("Study DOI", [])
    pubmeds, author_lists = study.get("Study PubMed ID", []), study.get("Study Author List", [])
    for i in range(max(len(titles), len(dois), len(pubmeds))):
        pub: dict[str, Any] = {}
        if i < len(titles) and titles[i]:
            pub["title"] = titles[i]
        if i < len(dois) and _doi(dois[i]):
            pub["doi"] = _doi(dois[i])
        if i < len(pubmeds) and normalise_pubmed(pubmeds[i]):
            pub["pubmed_id"] = normalise_pubmed(pubmeds[i])
        if i < len(author_lists) and author_lists[i]:
            pub["publication_authors"] = author_lists[i]
        if pub.get("title") or pub.get("doi"):
            publications.append(pub)
        elif pub.get("pubmed_id"):  # known by its PubMed id alone: a link to it
            record.setdefault("cross_references", []).append(pubmed_reference(pub["pubmed_id"]))
    if publications:
        record["publications"] = publications

    organisms = []
    for i, organism in enumerate(study.get("Study Organism", [])):
        term = _term("Study Organism", study, i, organism) or organism_term(organism)
        if term:
            organisms.append(term.as_record())
        else:
            unmapped.append(f"Study Organism {organism!r}: no NCBITaxon term")
    biosample = {"title": f"{accession} samples", "biological_entity": ", ".join(study.get("Study Organism", [])) or "not stated"}
    if organisms:
        biosample["organisms"] = organisms
    record["biosamples"] = [biosample]

    record["attributes"] = [
        {"name": key, "value": "; ".join(values)}
        for key, values in study.items()
        if key not in _STUDY_KEYS and values
    ]
    record["image_acquisitions"], record["specimens"], record["image_analyses"], record["components"] = [], [], [], []
    for kind, block in blocks:
        record["components"].append(_component(kind, block, accession, biosample["title"], record))
    for key in ("image_acquisitions", "specimens", "image_analyses", "attributes"):
        if not record[key]:
            del record[key]
    record["provenance"] = provenance("IDR", LOADER_NAME, LOADER_VERSION, accession=accession, harvested_at=harvested_at,
                                      source_url=source_url or IDR_STUDY.format(accession=accession))
    record["cross_references"] = [{
        "target": IDR_STUDY.format(accession=accession), "target_accession": accession, "resource": "IDR",
        "relation": "same_as", "label": f"IDR {accession}",
    }, *record.get("cross_references", [])]
    return LoadedRecord(record=record, file_lists=[], unmapped=unmapped)


def _component(kind: str, block: dict[str, list[str]], accession: str, biosample: str, record: dict[str, Any]) -> dict[str, Any]:
    number = _first(block, f"{kind} Number") or str(len(record["components"]) + 1)
    name = _first(block, f"Comment[IDR {kind} Name]") or f"{accession} {kind.lower()} {number}"
    used = {f"{kind} Number", f"Comment[IDR {kind} Name]", f"{kind} Description"}
    component: dict[str, Any] = {"title": name, "component_biosamples": [biosample]}
    if _first(block, f"{kind} Description"):
        component["description"] = _first(block, f"{kind} Description")

    methods = block.get(f"{kind} Imaging Method", [])
    terms = []
    for i, method in enumerate(methods):
        term = _term(f"{kind} Imaging Method", block, i, method)
        if term is None:
            term, _ = imaging_method_term(method)
        terms.append((term or GENERIC_IMAGING_METHOD).as_record())
    used |= {f"{kind} Imaging Method", f"{kind} Imaging Method Term Source REF", f"{kind} Imaging Method Term Accession"}
    acquisition = {"title": f"{name} imaging", "imaging_methods": terms or [GENERIC_IMAGING_METHOD.as_record()]}
    protocols: dict[str, str] = {}  # type → description(s): two protocols of one type are both kept
    for t, d in zip(block.get("Protocol Type", block.get("Protocol Name", [])), block.get("Protocol Description", [])):
        if d:
            protocols[t] = f"{protocols[t]}\n{d}" if t in protocols else d
    used |= {"Protocol Name", "Protocol Type", "Protocol Type Term Source REF", "Protocol Type Term Accession", "Protocol Description"}
    acquisition_protocol = "\n".join(d for t, d in protocols.items() if "acqui" in t.lower())
    if acquisition_protocol:
        acquisition["acquisition_parameters"] = acquisition_protocol
    record["image_acquisitions"].append(acquisition)
    component["component_image_acquisitions"] = [acquisition["title"]]

    growth = "\n".join(d for t, d in protocols.items() if "growth" in t.lower() or "library" in t.lower())
    preparation = "\n".join(d for t, d in protocols.items() if "prep" in t.lower() or "sample" in t.lower()) or growth
    if preparation:
        specimen = {"title": f"{name} specimen", "specimen_biosamples": [biosample], "sample_preparation": preparation}
        if growth:
            specimen["growth_protocol"] = growth
        record["specimens"].append(specimen)
        component["component_specimens"] = [specimen["title"]]
    analysis = "\n".join(d for t, d in protocols.items() if "analysis" in t.lower())
    if analysis:
        record["image_analyses"].append({"title": f"{name} analysis", "analysis_overview": analysis})
        component["component_image_analyses"] = [f"{name} analysis"]
    component["attributes"] = [
        {"name": key, "value": "; ".join(values)} for key, values in block.items() if key not in used and values
    ]
    for t, d in protocols.items():
        if not any(w in t.lower() for w in ("growth", "library", "prep", "sample", "analysis", "acqui")):
            component["attributes"].append({"name": f"protocol: {t}", "value": d})
    if not component["attributes"]:
        del component["attributes"]
    return component
