"""Generic import of a discontinued collection (e.g. the JCB DataViewer's ``S-JCBD`` studies).

A collection is a folder of records plus a mapping file (YAML) saying where each REMBI field comes from::

    collection: JCB DataViewer            # named in every study's provenance ("legacy collection: …")
    resource: JCB DataViewer              # a ResourceEnum value
    records: records/*.json               # glob, relative to the mapping; .json/.yaml one record per file,
                                          # .tsv/.csv one record per row
    defaults: {license: CC-BY-4.0}        # values used when a record has none
    fields:                               # REMBI field: dotted path in the source record
      accession: id                       # required: studies keep their identifiers
      title: article.title
      description: abstract
      release_date: published
      keywords: tags                      # a list, or text split on ";" or ","
      authors: authors                    # names, or objects with name/orcid
      doi: article.doi
      organisms: organism                 # → a biosample with NCBITaxon terms
      imaging_methods: imaging            # → an image acquisition with FBbi terms
      source_url: url

Source fields the mapping does not use are kept as study attributes; a record that lacks a required field
fails alone, naming the file (and row) and the field.
"""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path
from typing import Any, Iterator

import yaml

from catalog import external_ids
from catalog.dates import release_date_of
from catalog.errors import ValidationFailed
from loaders.enums import licence_name
from loaders.loaded import Draft, LoadedRecord, provenance
from loaders.ontology_terms import GENERIC_IMAGING_METHOD, imaging_method_term, organism_term

LOADER_VERSION = "1"
TEXT_FIELDS = ("accession", "title", "description", "release_date", "doi", "source_url", "license")
LIST_FIELDS = ("keywords", "authors", "organisms", "imaging_methods")


class LegacyCollectionError(ValidationFailed):
    code = "invalid_legacy_record"
    where: str = ""


def _get(record: Any, path: str) -> Any:
    for part in path.split("."):
        if not isinstance(record, dict) or part not in record:
            return None
        record = record[part]
    return record


def _as_list(value: Any) -> list[Any]:
    if value in (None, ""):
        return []
    if isinstance(value, list):
        return [v for v in value if v not in (None, "")]
    if isinstance(value, dict):  # one structured item (an author object), not a list written as text
        return [value]
    return [v.strip() for v in re.split(r"[;|]" if ";" in str(value) or "|" in str(value) else ",", str(value)) if v.strip()]


def _records(mapping_path: Path, pattern: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """(where, record) for every record the glob names, in a stable order."""
    for path in sorted(mapping_path.parent.glob(pattern)):
        if path == mapping_path or not path.is_file():
            continue
        suffix = path.suffix.lower()
        if suffix in (".tsv", ".csv"):
            yield from _table_records(path, "\t" if suffix == ".tsv" else ",")
        elif suffix in (".json", ".yaml", ".yml"):
            yield from _document_records(path, suffix)


def _table_records(path: Path, delimiter: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """One record per row of a TSV/CSV file (cells past the header's columns kept aside, to be noted)."""
    try:
        text = path.read_text("utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        yield str(path), {"__error__": f"cannot be read as UTF-8 text: {exc}"}
        return
    reader = csv.DictReader(io.StringIO(text, newline=""), delimiter=delimiter)
    for row in reader:
        extra = [cell for cell in row.pop(None, None) or [] if cell.strip()]
        record: dict[str, Any] = {k: v for k, v in row.items() if k}
        if extra:
            record["__extra__"] = extra
        yield f"{path}:{reader.line_num}", record


def _document_records(path: Path, suffix: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """One record per JSON/YAML file, or one per item of a list."""
    try:
        data = json.loads(path.read_text("utf-8")) if suffix == ".json" else yaml.safe_load(path.read_text("utf-8"))
    except (OSError, ValueError, yaml.YAMLError) as exc:  # UnicodeDecodeError is a ValueError
        yield str(path), {"__error__": f"cannot be read: {exc}"}
        return
    for i, item in enumerate(data if isinstance(data, list) else [data]):
        where = f"{path}[{i}]" if isinstance(data, list) else str(path)
        yield (
            where,
            item if isinstance(item, dict) else {"__error__": f"a record is a mapping of fields, not {type(item).__name__}"},
        )


def load_mapping(mapping_path: Path) -> dict[str, Any]:
    try:
        mapping = yaml.safe_load(mapping_path.read_text("utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise LegacyCollectionError(f"{mapping_path}: cannot read the mapping ({exc})", [{"file": str(mapping_path)}]) from exc
    problems = [key for key in ("collection", "records", "fields") if not (isinstance(mapping, dict) and mapping.get(key))]
    if problems:
        raise LegacyCollectionError(
            f"{mapping_path}: the mapping needs {', '.join(problems)}",
            [{"file": str(mapping_path), "field": key, "message": "required"} for key in problems],
        )
    if "accession" not in mapping["fields"]:
        raise LegacyCollectionError(
            f"{mapping_path}: fields.accession is required (studies keep their identifiers)",
            [{"file": str(mapping_path), "field": "fields.accession"}],
        )
    unknown = sorted(set(mapping["fields"]) - set(TEXT_FIELDS) - set(LIST_FIELDS))
    if unknown:
        raise LegacyCollectionError(
            f"{mapping_path}: unknown REMBI fields {', '.join(unknown)}",
            [{"file": str(mapping_path), "field": f"fields.{k}"} for k in unknown],
        )
    return mapping


def load_legacy_collection(
    path: str | Path, harvested_at: str | None = None, **_: Any
) -> Iterator[LoadedRecord | LegacyCollectionError]:
    """Every record of the collection whose mapping is ``path`` (or ``path/mapping.yaml``).

    A record that cannot be mapped is yielded as its :class:`LegacyCollectionError` (``.where`` names it), so
    one bad record never stops the others; a bad mapping raises.
    """
    mapping_path = Path(path)
    if mapping_path.is_dir():
        mapping_path = mapping_path / "mapping.yaml"
    mapping = load_mapping(mapping_path)
    seen: dict[str, str] = {}
    read = 0
    for where, source in _records(mapping_path, mapping["records"]):
        read += 1
        try:
            loaded = _map(where, source, mapping, harvested_at)
            accession = str(loaded.record.get("accession"))
            if accession in seen:
                raise LegacyCollectionError(
                    f"{where}: accession {accession} is already the record at {seen[accession]}",
                    [{"file": where, "field": "accession", "value": accession}],
                )
            seen[accession] = where
            yield loaded
        except LegacyCollectionError as exc:
            exc.where = where
            yield exc
    if not read:
        raise LegacyCollectionError(
            f"{mapping_path}: records {mapping['records']!r} match no file beside the mapping",
            [{"file": str(mapping_path), "field": "records"}],
        )


class _Source:
    """One source record read through the mapping: a field's value (or its default), required or not."""

    def __init__(self, where: str, source: dict[str, Any], mapping: dict[str, Any]) -> None:
        self.where, self.source = where, source
        self.fields: dict[str, str] = mapping["fields"]
        self.defaults: dict[str, Any] = mapping.get("defaults") or {}

    def value(self, name: str) -> Any:
        found = _get(self.source, self.fields[name]) if name in self.fields else None
        return found if found not in (None, "", []) else self.defaults.get(name)

    def need(self, name: str) -> str:
        found = self.value(name)
        if found in (None, ""):
            raise self.fail(
                f"no {name} (mapped from {self.fields.get(name, '(unmapped)')!r})",
                self.fields.get(name, name),
                message=f"{name} is required",
            )
        return str(found).strip()

    def fail(self, problem: str, field: str, **more: Any) -> LegacyCollectionError:
        return LegacyCollectionError(f"{self.where}: {problem}", [{"file": self.where, "field": field, **more}])


def _map(where: str, source: dict[str, Any], mapping: dict[str, Any], harvested_at: str | None) -> LoadedRecord:
    if "__error__" in source:
        raise LegacyCollectionError(f"{where}: {source['__error__']}", [{"file": where}])
    read = _Source(where, source, mapping)
    draft = Draft()
    record = draft.record
    record.update(accession=read.need("accession"), title=read.need("title"))
    record["description"] = str(read.value("description") or record["title"])
    _study_fields(read, draft)
    for item in _as_list(read.value("authors")):
        name = item.get("name") if isinstance(item, dict) else str(item)
        if name:
            draft.author(str(name).strip(), orcid=item.get("orcid") if isinstance(item, dict) else None, where=f"{where}: ")
    record.setdefault("authors", [])
    if source.get("__extra__"):
        draft.note(f"{where}: cells past the header's columns left out: {source['__extra__']!r}")
    _samples_and_imaging(read, draft)
    used = {str(path).split(".")[0] for path in read.fields.values()}
    attributes = [
        {"name": key, "value": json.dumps(val, ensure_ascii=False) if isinstance(val, (dict, list)) else str(val)}
        for key, val in source.items()
        if key not in used and val not in (None, "", [], {})
    ]
    if attributes:
        record["attributes"] = attributes
    record["provenance"] = provenance(
        mapping.get("resource") or "Other",
        f"legacy collection: {mapping['collection']}",
        LOADER_VERSION,
        accession=record["accession"],
        source_url=str(read.value("source_url") or "") or None,
        harvested_at=harvested_at,
    )
    return draft.loaded()


def _study_fields(read: _Source, draft: Draft) -> None:
    """Release date, licence (the mapping's default where a record has none), DOI and keywords."""
    record = draft.record
    released = release_date_of(read.value("release_date"))
    if released:
        if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", released):
            raise read.fail(f"release date {released!r} is not YYYY-MM-DD", read.fields.get("release_date", "release_date"))
        record["release_date"] = released
    licence = read.value("license")
    if licence:
        named = licence_name(str(licence))
        if not named:
            raise read.fail(f"licence {licence!r} is not one the catalog knows", read.fields.get("license", "defaults.license"))
        record["license"] = named
    doi = read.value("doi")
    if doi and external_ids.doi(str(doi)):
        record["doi"] = external_ids.doi(str(doi))
    elif doi:
        draft.note(f"{read.where}: DOI {doi!r} is not a DOI; left out")
    keywords = [str(k) for k in _as_list(read.value("keywords"))]
    if keywords:
        record["keywords"] = keywords


def _samples_and_imaging(read: _Source, draft: Draft) -> None:
    """A biosample with the organisms' NCBITaxon terms, an image acquisition with the methods' FBbi terms (the
    words as written kept), and one component using them."""
    record, accession = draft.record, draft.record["accession"]
    written_organisms, written_methods = _as_list(read.value("organisms")), _as_list(read.value("imaging_methods"))
    organisms = []
    for name in written_organisms:
        term = organism_term(str(name))
        if term:
            organisms.append(term.as_record())
        else:
            draft.note(f"organism {name!r}: no NCBITaxon term")
    methods = []
    for name in written_methods:
        term, _ = imaging_method_term(str(name))
        methods.append((term or GENERIC_IMAGING_METHOD).as_record())
        if term is None:
            draft.note(f"imaging method {name!r}: no FBbi term (kept as the generic term and an attribute)")
    component: dict[str, Any] = {"title": f"{accession} images"}
    if written_organisms:
        biosample: dict[str, Any] = {"title": f"{accession} sample", "biological_entity": "; ".join(map(str, written_organisms))}
        if organisms:
            biosample["organisms"] = organisms
        record["biosamples"] = [biosample]
        component["component_biosamples"] = [biosample["title"]]
    if methods:
        written = [{"name": "imaging method (as written)", "value": str(m)} for m in written_methods]
        record["image_acquisitions"] = [{"title": f"{accession} imaging", "imaging_methods": methods, "attributes": written}]
        component["component_image_acquisitions"] = [f"{accession} imaging"]
    record["components"] = [component]
