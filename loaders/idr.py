"""IDR study files (``idrNNNN-study.txt``) → REMBI study records.

An IDR study file is read the way the IDR's own tools read it: one row per line, ``Key<TAB>value<TAB>value…``,
a quote only as the wrapper of a whole cell (``"a, b"``; ``""`` inside it is a quote); a quote anywhere else is
text, kept as written and noted, never a reason to refuse the file. Rows are in sections marked by ``#``
comments. Study-level keys come first; each ``Screen Number`` or ``Experiment Number`` line starts a component
block (the screen or experiment with its Library, Protocols, Phenotypes and data-file sections) which lasts
until the next one.

Mapping: the study keeps its IDR accession (``idr0004``); organisms become a biosample with NCBITaxon terms;
each screen/experiment becomes a study component with its imaging method (FBbi) as an image acquisition,
growth and library protocols as a specimen, analysis protocols as an image analysis; the remaining keys of a
block are kept as attributes, never dropped. A study the IDR published without a licence line gets the
catalog's default licence, noted.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from catalog import external_ids
from catalog.errors import ValidationFailed
from loaders.enums import licence_name
from loaders.loaded import DEFAULT_LICENCE, Draft, LoadedRecord, cross_reference, provenance
from loaders.ontology_terms import GENERIC_IMAGING_METHOD, Term, imaging_method_term, organism_term, term_by_id, term_curie

LOADER_NAME = "bia-catalog IDR loader"
LOADER_VERSION = "1"
_BLOCK_START = re.compile(r"^(Screen|Experiment) Number$")
#: Study-level keys the mapping uses (everything else becomes an attribute).
_STUDY_KEYS = {
    "Comment[IDR Study Accession]",
    "Study Title",
    "Study Description",
    "Study Public Release Date",
    "Study Key Words",
    "Study Organism",
    "Study Organism Term Source REF",
    "Study Organism Term Accession",
    "Study PubMed ID",
    "Study Publication Title",
    "Study Author List",
    "Study DOI",
    "Study PMC ID",
    "Study License",
    "Study License URL",
    "Study Data DOI",
    "Study Person Last Name",
    "Study Person First Name",
    "Study Person Email",
    "Study Person Address",
    "Study Person Roles",
    "Study Person ORCID",
    "Term Source Name",
    "Term Source URI",
}
#: Protocol types by the REMBI object their description goes to (matched as parts of the type's name).
_PROTOCOL_WORDS = {
    "acquisition": ("acqui",),
    "growth": ("growth", "library"),
    "preparation": ("prep", "sample"),
    "analysis": ("analysis",),
}

Block = dict[str, list[str]]


class IdrError(ValidationFailed):
    code = "invalid_idr_study"


# ----------------------------------------------------------------------------- reading the file


def _cell(cell: str, line: int, draft: Draft) -> str:
    """A cell's text: unwrapped if quotes wrap it whole; a quote at one end only (an unmatched wrapper) is kept
    as written and noted; quotes inside text are text."""
    text = cell.strip()
    if len(text) >= 2 and text[0] == text[-1] == '"':
        return text[1:-1].replace('""', '"').strip()
    if text.startswith('"') or text.endswith('"'):
        shown = text if len(text) <= 80 else f"{text[:38]}…{text[-38:]}"
        draft.warn(f"line {line}: a quote at one end of {shown!r} wraps nothing; kept as written")
    return text


def _rows(text: str, draft: Draft) -> list[tuple[int, str, list[str]]]:
    """(line number, key, values) of every data line (comments and empty lines left out)."""
    rows = []
    for number, line in enumerate(text.splitlines(), start=1):
        first = line.split("\t", 1)[0].strip()
        if not first or first.lstrip('"').startswith("#"):
            continue
        key, *values = (_cell(cell, number, draft) for cell in line.split("\t"))
        while values and not values[-1]:
            values.pop()
        rows.append((number, key, values))
    return rows


class _Study:
    """The study's keys, its component blocks, where each key was read, and what is required of them."""

    def __init__(self, name: str, rows: list[tuple[int, str, list[str]]]) -> None:
        self.name = name
        self.keys: Block = {}
        self.blocks: list[tuple[str, Block]] = []
        self.lines: dict[str, int] = {}
        for number, key, values in rows:
            if _BLOCK_START.match(key):
                self.blocks.append((key.split()[0], {}))
            (self.blocks[-1][1] if self.blocks else self.keys).setdefault(key, []).extend(values)
            self.lines.setdefault(key, number)

    def first(self, key: str) -> str | None:
        return _first(self.keys, key)

    def fail(self, key: str, message: str) -> IdrError:
        line = self.lines.get(key)
        where = f"{self.name}:{line}" if line else self.name
        return IdrError(f"{where}: {message}", [{"file": self.name, "line": line, "field": key}])

    def need(self, key: str) -> str:
        value = self.first(key)
        if not value:
            raise IdrError(f"{self.name}: no {key!r}", [{"file": self.name, "line": self.lines.get(key), "field": key}])
        return value


def _first(block: Block, key: str) -> str | None:
    values = [v for v in block.get(key, []) if v]
    return values[0] if values else None


def _at(values: list[str], i: int) -> str:
    return values[i] if i < len(values) else ""


def _term(prefix: str, block: Block, index: int, name: str) -> Term | None:
    """The term a ``… Term Accession`` column gives (``NCBITaxon_4932``, ``Fbbi_00000246``), if any."""
    written = _at(block.get(f"{prefix} Term Accession", []), index)
    curie = term_curie(written) if re.match(r"^[A-Za-z]+[_:]\d+$", written) else None
    if curie is None:
        return None
    return term_by_id(curie) or Term(curie, name, curie.split(":")[0])


# ----------------------------------------------------------------------------- the study


def load_idr_study(
    path: str | Path, source_url: str | None = None, harvested_at: str | None = None, default_license: str = DEFAULT_LICENCE
) -> LoadedRecord:
    """Read one ``idrNNNN-study.txt`` file (``default_license``: the licence of a study that states none)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise IdrError(f"{path}: not UTF-8 text ({exc})", [{"file": str(path)}]) from exc
    draft = Draft()
    study = _Study(str(path), _rows(text, draft))
    accession = study.need("Comment[IDR Study Accession]")
    if not re.match(r"^idr\d{4}$", accession):
        raise study.fail("Comment[IDR Study Accession]", f"{accession!r} is not an IDR accession (idr0004)")
    record = draft.record
    record.update(accession=accession, title=study.need("Study Title"))
    record["description"] = study.first("Study Description") or record["title"]
    _dates_and_keywords(study, record)
    _licence(study, draft, default_license)
    data_doi = external_ids.doi(study.first("Study Data DOI") or "")
    if data_doi:
        record["doi"] = data_doi
    _people(study, draft)
    _publications(study, draft)
    biosample = _biosample(study, draft, accession)
    record["attributes"] = [
        {"name": key, "value": "; ".join(values)} for key, values in study.keys.items() if key not in _STUDY_KEYS and values
    ]
    for key in ("image_acquisitions", "specimens", "image_analyses", "components"):
        record[key] = []
    for kind, block in study.blocks:
        record["components"].append(_component(kind, block, accession, biosample, record))
    for key in ("image_acquisitions", "specimens", "image_analyses", "attributes"):
        if not record[key]:
            del record[key]
    record["provenance"] = provenance(
        "IDR",
        LOADER_NAME,
        LOADER_VERSION,
        accession=accession,
        harvested_at=harvested_at,
        source_url=source_url or external_ids.landing_page("IDR", accession),
    )
    itself = cross_reference("IDR", accession, "same_as", label=f"IDR {accession}")
    record["cross_references"] = [itself, *record.get("cross_references", [])]
    return draft.loaded()


def _dates_and_keywords(study: _Study, record: dict[str, Any]) -> None:
    released = study.first("Study Public Release Date")
    if released and re.match(r"^\d{4}-\d{2}-\d{2}$", released):
        record["release_date"] = released
    elif released:
        raise study.fail("Study Public Release Date", f"release date {released!r} is not YYYY-MM-DD")
    keywords = [k.strip() for v in study.keys.get("Study Key Words", []) for k in re.split(r"[,;]", v) if k.strip()]
    if keywords:
        record["keywords"] = keywords


def _licence(study: _Study, draft: Draft, default_license: str) -> None:
    """The licence its URL or name gives; without either, the default (noted); one not known is refused."""
    url, written = study.first("Study License URL"), study.first("Study License")
    if not url and not written:
        draft.record["license"] = default_license
        draft.warn(f"{study.name}: no Study License; the catalog's default {default_license} applied (the IDR states none)")
        return
    licence = licence_name(url or "") or licence_name(written or "")
    if not licence:
        raise study.fail("Study License", f"licence {(written or url)!r} is not one the catalog knows")
    draft.record["license"] = licence


def _people(study: _Study, draft: Draft) -> None:
    """The study's contacts (parallel columns), else the names of the publication's author list."""
    last, first = study.keys.get("Study Person Last Name", []), study.keys.get("Study Person First Name", [])
    emails, roles = study.keys.get("Study Person Email", []), study.keys.get("Study Person Roles", [])
    orcids = study.keys.get("Study Person ORCID", [])
    for i in range(max(len(last), len(first))):
        full = " ".join(x for x in (_at(first, i), _at(last, i)) if x)
        if full:
            draft.author(
                full,
                email=_at(emails, i) if "@" in _at(emails, i) else None,
                orcid=_at(orcids, i),
                roles=_at(roles, i).split(","),
                where=f"{study.name}: ",
            )
    if not draft.record.get("authors"):  # IDR files always name a publication author list; better than no author
        for person in (study.first("Study Author List") or "").split(","):
            if person.strip():
                draft.author(person.strip())
    draft.record.setdefault("authors", [])


def _publications(study: _Study, draft: Draft) -> None:
    """Publications in parallel columns (one known only by its PubMed id becomes a link to it)."""
    titles, dois = study.keys.get("Study Publication Title", []), study.keys.get("Study DOI", [])
    pubmeds, author_lists = study.keys.get("Study PubMed ID", []), study.keys.get("Study Author List", [])
    for i in range(max(len(titles), len(dois), len(pubmeds))):
        draft.publication(
            _at(titles, i),
            doi=_at(dois, i),
            pubmed=_at(pubmeds, i),
            authors=_at(author_lists, i) or None,
            where=f"{study.name}: ",
        )


def _biosample(study: _Study, draft: Draft, accession: str) -> str:
    """The study's one biosample: its organisms' terms (from the term accessions, else by name)."""
    names = study.keys.get("Study Organism", [])
    organisms = []
    for i, organism in enumerate(names):
        term = _term("Study Organism", study.keys, i, organism) or organism_term(organism)
        if term:
            organisms.append(term.as_record())
        else:
            draft.note(f"Study Organism {organism!r}: no NCBITaxon term")
    biosample: dict[str, Any] = {"title": f"{accession} samples", "biological_entity": ", ".join(names) or "not stated"}
    if organisms:
        biosample["organisms"] = organisms
    draft.record["biosamples"] = [biosample]
    return biosample["title"]


# ----------------------------------------------------------------------------- screens and experiments


def _component(kind: str, block: Block, accession: str, biosample: str, record: dict[str, Any]) -> dict[str, Any]:
    """A screen or experiment: a component, its image acquisition, specimen and analysis, its other keys kept."""
    number = _first(block, f"{kind} Number") or str(len(record["components"]) + 1)
    name = _first(block, f"Comment[IDR {kind} Name]") or f"{accession} {kind.lower()} {number}"
    component: dict[str, Any] = {"title": name, "component_biosamples": [biosample]}
    if _first(block, f"{kind} Description"):
        component["description"] = _first(block, f"{kind} Description")
    protocols = _protocols(block)
    component["component_image_acquisitions"] = [_acquisition(kind, block, name, protocols, record)]
    _specimen_and_analysis(name, biosample, protocols, component, record)
    used = {
        f"{kind} Number",
        f"Comment[IDR {kind} Name]",
        f"{kind} Description",
        "Protocol Name",
        "Protocol Type",
        "Protocol Type Term Source REF",
        "Protocol Type Term Accession",
        "Protocol Description",
        f"{kind} Imaging Method",
        f"{kind} Imaging Method Term Source REF",
        f"{kind} Imaging Method Term Accession",
    }
    attributes = [{"name": key, "value": "; ".join(values)} for key, values in block.items() if key not in used and values]
    attributes += [{"name": f"protocol: {t}", "value": d} for t, d in protocols.items() if _protocol_kind(t) is None]
    if attributes:
        component["attributes"] = attributes
    return component


def _protocols(block: Block) -> dict[str, str]:
    """Protocol descriptions by type (two protocols of one type are both kept)."""
    protocols: dict[str, str] = {}
    for written, description in zip(
        block.get("Protocol Type", block.get("Protocol Name", [])), block.get("Protocol Description", [])
    ):
        if description:
            protocols[written] = f"{protocols[written]}\n{description}" if written in protocols else description
    return protocols


def _protocol_kind(written: str) -> str | None:
    return next((kind for kind, words in _PROTOCOL_WORDS.items() if any(w in written.lower() for w in words)), None)


def _described(protocols: dict[str, str], *kinds: str) -> str:
    """The descriptions of the protocols whose type names one of ``kinds`` (by its words)."""
    words = [w for kind in kinds for w in _PROTOCOL_WORDS[kind]]
    return "\n".join(d for t, d in protocols.items() if any(w in t.lower() for w in words))


def _acquisition(kind: str, block: Block, name: str, protocols: dict[str, str], record: dict[str, Any]) -> str:
    terms = []
    for i, method in enumerate(block.get(f"{kind} Imaging Method", [])):
        term = _term(f"{kind} Imaging Method", block, i, method) or imaging_method_term(method)[0]
        terms.append((term or GENERIC_IMAGING_METHOD).as_record())
    acquisition: dict[str, Any] = {"title": f"{name} imaging", "imaging_methods": terms or [GENERIC_IMAGING_METHOD.as_record()]}
    if _described(protocols, "acquisition"):
        acquisition["acquisition_parameters"] = _described(protocols, "acquisition")
    record["image_acquisitions"].append(acquisition)
    return str(acquisition["title"])


def _specimen_and_analysis(
    name: str, biosample: str, protocols: dict[str, str], component: dict[str, Any], record: dict[str, Any]
) -> None:
    growth = _described(protocols, "growth")
    preparation = _described(protocols, "preparation") or growth
    if preparation:
        specimen = {"title": f"{name} specimen", "specimen_biosamples": [biosample], "sample_preparation": preparation}
        if growth:
            specimen["growth_protocol"] = growth
        record["specimens"].append(specimen)
        component["component_specimens"] = [specimen["title"]]
    analysis = _described(protocols, "analysis")
    if analysis:
        record["image_analyses"].append({"title": f"{name} analysis", "analysis_overview": analysis})
        component["component_image_analyses"] = [f"{name} analysis"]
