"""Every loader over every sample it has (tests/data, api/demo) emits only canonical identifiers: the spelling and the
one IRI catalog/external_ids gives them. And the loaders' enum tables are the schema's."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from catalog import external_ids
from catalog.rembi_model import load_model
from loaders import enums
from loaders.harvest import load_records
from loaders.loaded import LoadedRecord

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "tests" / "data"
DEMO = ROOT / "api" / "demo"


def _samples() -> Iterator[tuple[str, Path]]:
    pagetab = [
        *DATA.glob("pagetab/*.json"),
        *DATA.glob("pagetab/*.tsv"),
        *DATA.glob("pagetab/published/*.json"),
        *(p for p in DATA.glob("harvest/biostudies/S-*.json") if not p.stem.endswith("_INFO")),
        *DEMO.glob("biostudies/S-*.json"),
    ]
    yield from (("pagetab", p) for p in pagetab)
    yield from (
        ("empiar", p)
        for p in [*DATA.glob("empiar/*.json"), *DATA.glob("empiar/*.xml"), *DEMO.glob("empiar/*")]
        if "expected" not in p.name
    )
    yield from (("idr", p) for p in [*DATA.glob("idr/*-study.txt"), *DEMO.glob("idr/*-study.txt")])
    yield from (("rocrate", p) for p in [DATA / "rocrate" / "typical", DEMO / "rocrate"])
    yield "legacy", DATA / "legacy" / "jcb"


SAMPLES = sorted(_samples())


def _walk(value: Any, path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    """Every object of a record with its JSON path."""
    if isinstance(value, dict):
        yield path, value
        for key, item in value.items():
            yield from _walk(item, f"{path}/{key}")
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _walk(item, f"{path}/{i}")


#: slot → (kind, the form records hold: the canonical spelling or the stored IRI)
SLOTS = {"doi": ("DOI", "spelling"), "pubmed_id": ("PubMed", "spelling"), "orcid": ("ORCID", "iri"), "ror": ("ROR", "iri")}


def identifier_problems(record: dict[str, Any]) -> list[str]:
    """What in a record is an identifier not written the one way the catalog writes it (empty: all canonical)."""
    problems = []
    for path, obj in _walk(record):
        for slot, (kind, form) in SLOTS.items():
            if slot in obj:
                want = external_ids.accession(kind, obj[slot]) if form == "spelling" else external_ids.iri(kind, obj[slot])
                if obj[slot] != want:
                    problems.append(f"{path}/{slot}: {obj[slot]!r} (canonical: {want!r})")
        if "target" in obj:
            problems += _target_problems(path, obj)
        if {"id", "ontology_name"} <= set(obj) and obj["ontology_name"] in ("NCBITaxon", "FBbi"):
            if obj["id"] != external_ids.accession(obj["ontology_name"], obj["id"]):
                problems.append(f"{path}/id: {obj['id']!r} is not a canonical {obj['ontology_name']} CURIE")
    return problems


def _target_problems(path: str, ref: dict[str, Any]) -> list[str]:
    """A cross-reference to a known kind of identifier: its accession canonical and its target that identifier's IRI;
    any other target names no identifier the catalog knows."""
    found = external_ids.recognise(ref["target"])
    kind = external_ids.kind_named(ref.get("resource"))
    accession = ref.get("target_accession")
    if kind is not None and accession and external_ids.accession(kind.name, accession):
        want = (external_ids.accession(kind.name, accession), external_ids.iri(kind.name, accession))
        return [] if (accession, ref["target"]) == want else [f"{path}: {accession!r} → {ref['target']!r} (canonical: {want})"]
    if found is not None and ref["target"] != external_ids.iri(*found):
        return [f"{path}/target: {ref['target']!r} is {found} (its IRI: {external_ids.iri(*found)!r})"]
    return []


@pytest.mark.parametrize("kind, path", SAMPLES, ids=[f"{k}:{p.relative_to(ROOT)}" for k, p in SAMPLES])
def test_every_identifier_a_loader_emits_is_canonical(kind, path):
    records = [
        r for r in load_records(kind, path, source_url=None, harvested_at="2026-01-01T00:00:00Z") if isinstance(r, LoadedRecord)
    ]
    assert records
    for loaded in records:
        assert identifier_problems(loaded.record) == []


def test_the_check_finds_what_is_not_canonical():
    """The test above would see the spellings the loaders used to write."""
    record = {
        "doi": "doi:10.6019/S-BIAD1",
        "authors": [{"name": "A", "orcid": "https://orcid.org/0000-0002-1825-0096"}],
        "publications": [{"title": "T", "pubmed_id": "PMID 1"}],
        "cross_references": [
            {"target": "https://www.ebi.ac.uk/emdb/EMD-12602", "target_accession": "EMD-12602", "resource": "EMDB"},
            {"target": "https://identifiers.org/idr:idr0042", "target_accession": "idr0042", "resource": "IDR"},
            {"target": "https://pubmed.ncbi.nlm.nih.gov/123/", "resource": "Other"},
            {"target": "https://github.com/BioImage-Archive", "resource": "Other"},
        ],
        "biosamples": [{"organisms": [{"id": "NCBITaxon_9606", "label": "human", "ontology_name": "NCBITaxon"}]}],
    }
    assert len(identifier_problems(record)) == 7


def test_enum_tables_of_the_loaders_are_the_schemas():
    model = load_model()
    assert set(enums.relations().values()) == set(model.enums["RelationEnum"])
    assert set(enums.annotation_types().values()) == set(model.enums["AnnotationTypeEnum"])
    for name, iri in model.enums["LicenseEnum"].items():  # every licence is read by its name and by its IRI
        assert enums.licence_name(name) == name and enums.licence_name(iri) == name, (name, iri)
    assert set(enums.LICENCE_ALIASES.values()) <= set(model.enums["LicenseEnum"])
