"""The PageTab loader on real BioStudies / BioImage Archive records (tests/data/pagetab/, see SOURCES.txt).

Golden graphs: ``tests/data/pagetab/golden/*.nt`` hold the sorted N-Triples of
``check_study_record(record, BASE).graph`` for a few records and are compared exactly. After an intended
change to the loader or to the catalog's RDF (IRIs, mapping), regenerate them and review the diff::

    python -m tests.test_pagetab --regenerate        # or: REGENERATE_GOLDEN=1 pytest tests/test_pagetab.py
"""

from __future__ import annotations

import copy
import json
import os
import sys
from pathlib import Path

import pytest
from rdflib import RDF, Graph, URIRef

from catalog.validation import check_study_record
from catalog import external_ids
from loaders import ontology_terms
from loaders.enums import licence_name
from loaders.loaded import FileListRef, link_reference
from loaders.pagetab import PageTabError, load_pagetab_json, load_pagetab_tsv, parse_matrix, parse_pagetab_tsv

DATA = Path(__file__).parent / "data" / "pagetab"
GOLDEN = DATA / "golden"
BASE = "https://archive.example.org"
HARVESTED_AT = "2024-01-01T00:00:00Z"
REMBI = "https://w3id.org/rembi/"
NCBITAXON = "http://purl.obolibrary.org/obo/NCBITaxon_"
FBBI = "http://purl.obolibrary.org/obo/FBbi_"

#: Every sample record; S-BIAD2808 names biosamples it does not define, so it loads as a harvest would.
SAMPLES = {
    "S-BIAD661_original.json": {},
    "S-BIAD2808_original.json": {"unresolved_associations": "drop"},
    "S-BIAD2235_original.json": {},
    "S-BIAD1076_original.json": {},
    "S-BIAD590_original.json": {},
    "S-BSST651_original.json": {},
    "S-BIAD1752_original.json": {},
    "S-BIAD1492.json": {},
    "S-BIADTEST.json": {},
    "rembi-metadata_rembi-to-pagetab.json": {},
    "rembi-metadata_rembi-to-pagetab.tsv": {},
    "rembi-metadata-with-mifa_rembi-mifa-to-pagetab.json": {},
    "rembi-metadata-with-mifa_rembi-mifa-to-pagetab.tsv": {},
    "mifa-metadata_rembi-mifa-to-pagetab.tsv": {},
}
#: golden file → sample it is made from.
GOLDEN_SAMPLES = {
    "S-BIAD661.nt": "S-BIAD661_original.json",
    "S-BIAD1076.nt": "S-BIAD1076_original.json",
    "S-BIAD590.nt": "S-BIAD590_original.json",
    "rembi-metadata.nt": "rembi-metadata_rembi-to-pagetab.tsv",
}


def load(name: str, **options):
    loader = load_pagetab_tsv if name.endswith(".tsv") else load_pagetab_json
    options = {**SAMPLES.get(name, {}), **options}
    return loader(DATA / name, harvested_at=HARVESTED_AT, **options)


def check(record: dict):
    return check_study_record(record, BASE)


def assert_conforms(record: dict) -> Graph:
    checked = check(record)
    assert checked.report.conforms, "\n".join(str(v) for v in checked.report.violations)
    return checked.graph


def by_title(items: list[dict], title: str) -> dict:
    return next(item for item in items if item["title"] == title)


def sorted_ntriples(graph: Graph) -> str:
    lines = [line for line in graph.serialize(format="nt").splitlines() if line.strip()]
    return "\n".join(sorted(lines)) + "\n"


# --------------------------------------------------------------------------- every sample


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_every_sample_loads_and_conforms(name):
    loaded = load(name)
    assert_conforms(loaded.record)
    provenance = loaded.record["provenance"]
    assert provenance["loader"] == "pagetab" and provenance["harvested_at"] == HARVESTED_AT
    assert provenance["source_accession"] == loaded.record["accession"]


def test_loading_is_idempotent_and_leaves_the_input_alone():
    doc = json.loads((DATA / "S-BIADTEST.json").read_text())
    before = copy.deepcopy(doc)
    first, second = load_pagetab_json(doc), load_pagetab_json(doc)
    assert first.record == second.record and first.unmapped == second.unmapped
    assert doc == before
    assert sorted_ntriples(check(first.record).graph) == sorted_ntriples(check(second.record).graph)


def test_provenance_names_the_source():
    loaded = load_pagetab_json(
        DATA / "S-BSST651_original.json",
        source_url="https://www.ebi.ac.uk/biostudies/api/v1/studies/S-BSST651",
        harvested_at=HARVESTED_AT,
    )
    assert loaded.record["provenance"] == {
        "source_resource": "BioStudies",
        "source_accession": "S-BSST651",
        "source_url": "https://www.ebi.ac.uk/biostudies/api/v1/studies/S-BSST651",
        "harvested_at": HARVESTED_AT,
        "loader": "pagetab",
        "loader_version": "1.0.0",
    }
    assert load("S-BIAD661_original.json").record["provenance"]["source_resource"] == "BioImage Archive"


# --------------------------------------------------------------------------- template v4 (S-BIAD661)


def test_v4_component_associations_resolve_to_the_sections():
    loaded = load("S-BIAD661_original.json")
    record = loaded.record
    title = "FAM3C/ILEI protein is elevated in psoriatic lesions and triggers psoriasiform hyperproliferation in mice"
    (component,) = record["components"]
    assert component["component_biosamples"] == [title]
    assert component["component_specimens"] == [title]
    assert component["component_image_acquisitions"] == ["data source file"]
    assert record["specimens"][0]["specimen_biosamples"] == [title]
    assert loaded.file_lists == [
        FileListRef(title, "study composition EMM-2022-16758.json", "Study Component-6", "Study Component")
    ]
    graph = assert_conforms(record)
    prepared = check(record).record
    component_iri = URIRef(prepared["components"][0]["id"])
    assert (component_iri, URIRef(REMBI + "biosample"), URIRef(prepared["biosamples"][0]["id"])) in graph
    assert (component_iri, URIRef(REMBI + "imageAcquisition"), URIRef(prepared["image_acquisitions"][0]["id"])) in graph


def test_v4_keywords_licence_authors_and_pending_pubmed():
    loaded = load("S-BIAD661_original.json")
    record = loaded.record
    assert record["keywords"] == ["data source file", "FAM3C/ILEI", "psoriasis"]  # one attribute, comma-separated
    assert record["license"] == "CC0-1.0" and record["release_date"] == "2023-03-17"
    assert record["authors"] == [
        {
            "name": "Agnes Csiszar",
            "orcid": "https://orcid.org/0000-0001-7911-3427",
            "email": "agnes.csiszar@meduniwien.ac.at",
            "roles": ["corresponding author"],
            "affiliations": [{"name": "Medical University of Vienna"}],
        }
    ]
    assert "publications" not in record  # its only content is 'Pubmed ID: pending'
    assert any("'pending'" in note for note in loaded.unmapped)
    assert record["funding"] == [{"funding_statement": "Fellinger Krebsforschung"}]
    assert record["image_acquisitions"][0]["imaging_methods"] == [
        {"id": "FBbi:00000365", "label": "FLIP", "ontology_name": "FBbi"}
    ]


def test_v4_correlation_keeps_its_section_and_parses_a_matrix():
    record = load("S-BIAD661_original.json").record
    (correlation,) = record["image_correlations"]
    assert correlation == {"title": record["biosamples"][0]["title"]}  # the v4 template's title, nothing else

    doc = json.loads((DATA / "S-BIAD661_original.json").read_text())
    section = next(s for s in doc["section"]["subsections"] if s.get("type") == "Image correlation")
    section["attributes"] += [
        {"name": "Spatial and temporal alignment", "value": "Landmarks in BigWarp"},
        {"name": "Transformation matrix", "value": "[[1, 0, 0, 10],\n [0, 1, 0, 20],\n [0, 0, 1, 0]]"},
    ]
    record = load_pagetab_json(doc).record
    (correlation,) = record["image_correlations"]
    assert correlation["transformation_text"].startswith("[[1, 0, 0, 10]")
    (transformation,) = correlation["transformations"]
    assert transformation["transformation_type"] == "affine"
    assert (transformation["matrix_rows"], transformation["matrix_columns"]) == (3, 4)
    assert {(e["row"], e["column"]): e["element_value"] for e in transformation["matrix"]}[(1, 3)] == 20.0
    graph = assert_conforms(record)
    assert len(set(graph.subjects(RDF.type, URIRef(REMBI + "MatrixElement")))) == 12


@pytest.mark.parametrize(
    "text, shape",
    [
        ("1 0 0 10; 0 1 0 20; 0 0 1 0", (3, 4)),
        ("1 0 0\n0 1 0\n0 0 1", (3, 3)),
        ("[[1,0,0,5],[0,1,0,6],[0,0,1,7],[0,0,0,1]]", (4, 4)),
        ("0.5, 0, 12.5; 0, 0.5, -3e2", (2, 3)),
        ("Template transformation matrix", None),
        ("Matrix is provided as a table.", None),
        ("1 2 3; 4 5", None),
    ],
)
def test_matrices_are_parsed_only_when_written_as_rows_of_numbers(text, shape):
    rows = parse_matrix(text)
    assert (None if rows is None else (len(rows), len(rows[0]))) == shape


# --------------------------------------------------------------------------- template v5 (S-BIAD2808, S-BIAD2235)


def test_v5_repeated_keywords_organisms_and_imaging_methods():
    record = load("S-BIAD2808_original.json").record
    assert record["keywords"][:3] == ["volume electron microscopy", "mitochondria", "instance segmentation"]
    assert len(record["keywords"]) == 7
    assert record["doi"] == "10.6019/S-BIAD2808" and record["title"].startswith("MitoEM 2.0")
    fib = by_title(record["image_acquisitions"], "FIB-SEM")
    assert [m["id"] for m in fib["imaging_methods"]] == ["FBbi:00000256", "FBbi:00050000"]
    sbf = by_title(record["image_acquisitions"], "SBF-SEM")
    assert [m["id"] for m in sbf["imaging_methods"]] == ["FBbi:00000256", "FBbi:00000585"]
    graph = assert_conforms(record)
    organisms = {str(o) for o in graph.objects(None, URIRef(REMBI + "organism"))}
    assert organisms == {NCBITAXON + "10090", NCBITAXON + "9606", NCBITAXON + "7227"}
    assert URIRef(FBBI + "00050000") in set(graph.objects(None, URIRef(REMBI + "imagingMethod")))
    assert record["cross_references"][0] == {
        "target": "https://doi.org/10.1101/2025.11.12.687478",
        "target_accession": "10.1101/2025.11.12.687478",
        "resource": "DOI",
        "relation": "related_to",
        "label": "Paper doi",
    }


def test_association_to_a_missing_biosample_is_reported_by_validation():
    loaded = load("S-BIAD2808_original.json", unresolved_associations="report")
    report = check(loaded.record).report
    assert not report.conforms
    dangling = {(v.focus, v.path, v.value) for v in report.violations}
    assert ("/components/1", "component_biosamples", "Homo sapiens (human) — T lymphocyte") in dangling
    assert len(dangling) == 4
    assert loaded.record["components"][1]["title"] == "Dataset002_ME2-Jurkat"
    assert any("Dataset002_ME2-Jurkat" in note and "T lymphocyte" in note for note in loaded.unmapped)


def test_harvest_mode_drops_missing_associations_with_a_note():
    loaded = load("S-BIAD2808_original.json", unresolved_associations="drop")
    component = by_title(loaded.record["components"], "Dataset002_ME2-Jurkat")
    assert "component_biosamples" not in component
    assert {"name": "Unresolved biosample", "value": "Homo sapiens (human) — T lymphocyte"} in component["attributes"]
    beta = by_title(loaded.record["components"], "Dataset001_ME2-Beta")
    assert beta["component_biosamples"] == ["Mouse biosamples (Mus musculus) — ME2-Beta"]
    assert any("association dropped" in note for note in loaded.unmapped)


def test_v5_empty_sections_and_unusable_dois():
    loaded = load("S-BIAD2235_original.json")
    record = loaded.record
    assert "image_correlations" not in record  # the section is empty
    assert record["publications"] == [
        {
            "title": "Silicon Flavylium Polymethine Dyes for Shortwave Infrared Imaging",
            "publication_authors": record["publications"][0]["publication_authors"],
        }
    ]
    assert any("'TBD'" in note for note in loaded.unmapped)
    (method,) = record["image_acquisitions"][0]["imaging_methods"]
    assert method["id"] == "FBbi:00000246"  # "Fluorescence imaging": a suffix variant of fluorescence microscopy
    assert record["components"][0]["component_image_analyses"] == ["SWIR fluorescence imaging in mice"]


# --------------------------------------------------------------------------- MIFA (S-BIAD1076) and explicit terms


def test_mifa_ontology_terms_and_annotations():
    loaded = load("S-BIAD1076_original.json")
    record = loaded.record
    assert record["biosamples"][0]["organisms"] == [
        {"id": "NCBITaxon:9534", "label": "Chlorocebus aethiops", "ontology_name": "NCBITaxon"}
    ]
    assert record["image_acquisitions"][0]["imaging_methods"] == [
        {"id": "FBbi:00000253", "label": "spinning disk confocal microscopy", "ontology_name": "FBbi"}
    ]
    (annotation,) = record["annotation_methods"]
    assert annotation["annotation_types"] == ["segmentation_mask"]
    assert {"name": "Version: Annotation version", "value": "1.0"} in annotation["attributes"]
    assert FileListRef(None, "file_list_annotations.json", "Annotations-1", "Annotations") in loaded.file_lists
    assert record["publications"][0]["doi"] == "10.1016/j.crmeth.2023.100565"
    assert {"name": "Publication 1: PMC ID", "value": "37671026"} in record["attributes"]
    assert record["license"] == "CC0-1.0" and any("default CC0-1.0 applied" in note for note in loaded.unmapped)
    assert "license" not in load("S-BIAD1076_original.json", default_license=None).record
    vilja = next(a for a in record["authors"] if a["name"] == "Vilja Pietiäinen")
    assert vilja["roles"] == ["first author", "corresponding author"]
    assert vilja["affiliations"] == [
        {
            "name": "Institute for Molecular Medicine Finland",
            "address": "P.O.Box 20, FI-00014 University of Helsinki, Finland",
        }
    ]
    acquisition = record["image_acquisitions"][0]
    assert acquisition["attributes"][0]["name"].startswith("Image data: file format: TIFF")  # a name without a value
    graph = assert_conforms(record)
    assert (URIRef(FBBI + "00000253"), URIRef("http://www.w3.org/2000/01/rdf-schema#label"), None) in graph


def test_explicit_ontology_terms_win_over_names():
    doc = json.loads((DATA / "S-BIAD1076_original.json").read_text())
    subsections = doc["section"]["subsections"]
    biosample = next(s for s in subsections if s.get("type") == "Biosample")
    biosample["subsections"][0]["attributes"] = [
        {"name": "Scientific name", "value": "Homo sapiens"},
        {"name": "NCBI taxon ID", "value": "NCBITaxon_10090"},
    ]
    acquisition = next(s for s in subsections if s.get("type") == "Image Acquisition")
    acquisition["subsections"][0]["attributes"] = [
        {"name": "Ontology Value", "value": "confocal microscopy"},
        {"name": "Ontology Term ID", "value": "http://purl.obolibrary.org/obo/FBbi_00000254 "},
    ]
    record = load_pagetab_json(doc).record
    assert record["biosamples"][0]["organisms"][0]["id"] == "NCBITaxon:10090"
    assert record["image_acquisitions"][0]["imaging_methods"][0]["id"] == "FBbi:00000254"


@pytest.mark.parametrize(
    "name, curie",
    [
        ("Mus musculus (mouse)", "NCBITaxon:10090"),
        ("Homo Sapiens", "NCBITaxon:9606"),
        ("human ", "NCBITaxon:9606"),
        ("Danio rerio", "NCBITaxon:7955"),
        ("Drosophila melanogaster (fruit fly)", "NCBITaxon:7227"),
        ("C. elegans", "NCBITaxon:6239"),
        ("Saccharomyces cerevisiae", "NCBITaxon:4932"),
        ("Arabidopsis thaliana", "NCBITaxon:3702"),
        ("E. coli", "NCBITaxon:562"),
        ("Xenopus laevis", "NCBITaxon:8355"),
        ("Rattus norvegicus", "NCBITaxon:10116"),
        ("Gallus gallus", "NCBITaxon:9031"),
        ("fission yeast", "NCBITaxon:4896"),
        ("Dictyostelium discoideum", "NCBITaxon:44689"),
        ("Plasmodium falciparum", "NCBITaxon:5833"),
        ("SARS-CoV-2", "NCBITaxon:2697049"),
        ("Glycine max (soybean)", "NCBITaxon:3847"),
        ("simulated data", None),
    ],
)
def test_organism_names(name, curie):
    term = ontology_terms.organism_term(name)
    assert (term.id if term else None) == curie


@pytest.mark.parametrize(
    "name, curie, exact",
    [
        ("confocal microscopy", "FBbi:00000251", True),
        ("Confocal microscopy ", "FBbi:00000251", True),
        ("confocal", "FBbi:00000251", True),
        ("spinning disk confocal microscopy", "FBbi:00000253", True),
        ("bright-field microscopy", "FBbi:00000243", True),
        ("Brightfield microscopy", "FBbi:00000243", True),
        ("fluorescence microscope", "FBbi:00000246", False),
        ("Fluorescence imaging", "FBbi:00000246", False),
        ("light sheet fluorescence microscopy", "FBbi:00000369", True),
        ("TIRF microscopy", "FBbi:00000617", True),
        ("transmission electron microscopy", "FBbi:00000258", True),
        ("serial block face SEM (SBFSEM)", "FBbi:00000585", True),
        ("focussed ion beam scanning electron microscopy (FIB-SEM)", "FBbi:00050000", True),
        ("simulated fluorescence microscopy", None, False),
    ],
)
def test_imaging_method_names(name, curie, exact):
    term, was_exact = ontology_terms.imaging_method_term(name)
    assert (term.id if term else None, was_exact if term else False) == (curie, exact)


def test_taxon_ids_as_written():
    for text in (
        "NCBI:txid9534",
        "NCBITaxon_9534",
        "NCBITaxon:9534",
        "9534",
        "http://purl.obolibrary.org/obo/NCBITaxon_9534",
    ):
        assert external_ids.ncbitaxon(text) == "NCBITaxon:9534"
    assert external_ids.ncbitaxon("Homo sapiens") is None


# --------------------------------------------------------------------------- legacy layout and IDR import (S-BIAD590)


def test_legacy_sections_nested_in_a_component():
    loaded = load("S-BIAD590_original.json")
    record = loaded.record
    (component,) = record["components"]
    assert component["component_biosamples"] == ["Biosample-1-1"]
    assert component["component_specimens"] == ["Specimen-1-1"]
    assert component["component_image_acquisitions"] == ["Image Acquisition-1-1"]
    assert component["component_image_analyses"] == ["Image-Analysis-1-1"]
    assert record["specimens"][0]["specimen_biosamples"] == ["Biosample-1-1"]
    assert record["biosamples"][0]["organisms"][0] == {
        "id": "NCBITaxon:9606",
        "label": "Homo sapiens",
        "ontology_name": "NCBITaxon",
    }
    assert record["image_acquisitions"][0]["imaging_methods"][0]["id"] == "FBbi:00000243"
    assert record["license"] == "CC-BY-4.0" and record["keywords"][0] == "heart failure"
    assert record["cross_references"][0] == {
        "target": "https://identifiers.org/idr:0042",
        "target_accession": "idr0042",
        "resource": "IDR",
        "relation": "same_as",
    }
    nirschl = record["authors"][0]
    assert nirschl["orcid"] == "https://orcid.org/0000-0001-6857-341X" and "email" not in nirschl  # Email 'None'
    assert "orcid" not in record["authors"][1]
    assert record["publications"][0]["doi"] == "10.1371/journal.pone.0192726"


# --------------------------------------------------------------------------- Default template (S-BSST651)


def test_default_template_files_and_unmapped_attributes():
    loaded = load("S-BSST651_original.json")
    record = loaded.record
    assert record["files"] == [
        {
            "path": "Data.zip",
            "size_bytes": 479720254,
            "attributes": [
                {"name": "Description", "value": "1D and 2D NMR data"},
                {"name": "Type", "value": "Bruker format"},
            ],
        }
    ]
    assert {"name": "Organism", "value": "Glycine max (soybean)"} in record["attributes"]
    assert {"name": "Annotation 1", "value": "NMR"} in record["attributes"]
    assert any("'Annotation 1' kept" in note for note in loaded.unmapped)
    williams = record["authors"][1]
    assert williams["name"] == "Huw Williams" and "email" not in williams
    assert any("huw.williams@williams@nottingham.ac.uk" in note for note in loaded.unmapped)
    assert williams["affiliations"] == [{"name": "European Bioinformatics Institute (EMBL-EBI)"}]


# --------------------------------------------------------------------------- more real records


def test_funding_and_prefixed_dois():
    loaded = load("S-BIAD1752_original.json")
    record = loaded.record
    assert record["publications"][0]["doi"] == "10.26508/lsa.202403067"  # 'https://doi.org/DOI: 10.26508/…'
    assert {"funder": "NIH", "grant_id": "UM1 HG011531"} in record["funding"]
    assert len(record["keywords"]) == 26 and record["license"] == "CC-BY-4.0"
    assert len([ref for ref in loaded.file_lists if ref.component is None]) == 4
    assert by_title(record["components"], "CellCycleNet 60x Confocal Dataset: OME-Zarr")["component_biosamples"] == [
        "CellCycleNet 60x Confocal Dataset"
    ]


def test_bia_agent_record_links_and_unknown_imaging_method():
    loaded = load("S-BIAD1492.json")
    record = loaded.record
    targets = {ref["target"]: ref for ref in record["cross_references"]}
    assert targets["https://identifiers.org/empiar:EMPIAR-11380"]["resource"] == "EMPIAR"
    assert targets["https://idr.openmicroscopy.org/webclient/?project=BBBC024"]["resource"] == "IDR"
    assert record["license"] == "CC-BY-3.0" and record["doi"] == "10.1101/2023.12.07.570699"
    acquisition = record["image_acquisitions"][0]
    assert acquisition["imaging_methods"] == [ontology_terms.GENERIC_IMAGING_METHOD.as_record()]
    assert {"name": "Imaging method", "value": "simulated fluorescence microscopy"} in acquisition["attributes"]
    assert "organisms" not in record["biosamples"][0]
    assert {"name": "Organism Scientific name", "value": "simulated data"} in record["biosamples"][0]["attributes"]


def test_synthetic_record_references_tables_and_several_associations():
    loaded = load("S-BIADTEST.json")
    record = loaded.record
    author1, author2 = record["authors"]
    assert [o["name"] for o in author1["affiliations"]] == ["Test College 1", "Test College 2"]
    assert [o["name"] for o in author2["affiliations"]] == ["Test College 2", "Test College 3"]
    assert "orcid" not in author1 and "orcid" not in author2  # 0000-0000-0000-0000 fails the check digit
    assert [p.get("pubmed_id") for p in record["publications"]] == ["38381674", "38106175"]
    assert {"name": "Extra attribute 1", "value": "Extra attribute 1 to test semantic_model.study.attribute"} in record[
        "attributes"
    ]
    ena = next(ref for ref in record["cross_references"] if ref.get("target_accession") == "ERP116793")
    assert ena["target"] == "https://identifiers.org/ena.embl:ERP116793"
    component = by_title(record["components"], "Study Component 1")
    assert component["component_biosamples"] == ["Test Biosample 1", "Test Biosample 2"]
    assert component["component_image_acquisitions"] == [
        "Test Primary Screen Image Acquisition",
        "Test Secondary Screen Image Acquisition",
    ]
    specimen = by_title(record["specimens"], "Test specimen 1")
    assert specimen["specimen_biosamples"] == ["Test Biosample 1", "Test Biosample 2"]
    correlation = by_title(record["image_correlations"], "Template correlation method")
    assert correlation["transformation_text"] == "Template transformation matrix" and "transformations" not in correlation
    assert record["annotation_methods"][0]["annotation_types"] == ["class_labels", "segmentation_mask"]
    assert len(record["image_analyses"]) == 1  # the second Image analysis section is empty


def test_tolerates_the_shapes_real_documents_take():
    doc = {
        "accno": "S-BSST9",
        "rtime": 1700000000,
        "section": {
            "type": "Study",
            "attributes": [
                {"name": "Title", "value": "On the section"},
                {"name": "Keywords", "value": "a"},
                {"name": "Keywords", "value": "b, c"},
                {
                    "name": "License",
                    "value": "see URL",
                    "valqual": [{"name": "URL", "value": "https://creativecommons.org/licenses/by/4.0/"}],
                },
            ],
            "links": [[{"url": "https://www.ebi.ac.uk/empiar/EMPIAR-10002/", "attributes": []}]],
            "subsections": {
                "type": "Author",
                "attributes": [
                    {"name": "Name", "value": "Jane Doe"},
                    {"name": "ORCID", "value": "orcid.org/0000-0002-1825-0097"},
                    {"name": "affiliation", "value": "o1", "isReference": "true"},
                    {"name": "affiliation", "value": "A lab written as text"},
                ],
                "subsections": [],
            },
        },
    }
    doc["section"]["subsections"] = [
        doc["section"]["subsections"],
        [
            {
                "type": "organization",
                "accno": "o1",
                "attributes": [{"name": "Name", "value": "EMBL-EBI"}, {"name": "RORID", "value": "02catss52"}],
            }
        ],
    ]
    record = load_pagetab_json(doc).record
    assert record["title"] == "On the section" and record["release_date"] == "2023-11-14"
    assert record["keywords"] == ["a", "b, c"] and record["license"] == "CC-BY-4.0"
    assert record["authors"] == [
        {
            "name": "Jane Doe",
            "orcid": "https://orcid.org/0000-0002-1825-0097",
            "affiliations": [
                {"name": "EMBL-EBI", "ror": "https://ror.org/02catss52"},
                {"name": "A lab written as text"},
            ],
        }
    ]
    assert record["cross_references"][0]["target"] == "https://identifiers.org/empiar:EMPIAR-10002"
    assert_conforms(record)


# --------------------------------------------------------------------------- records the archive published (issue 14)

PUBLISHED = DATA / "published"


def test_a_published_record_whose_author_has_no_name_loads_and_a_deposit_stays_strict():
    """The archive published S-BIAD661's author with an e-mail, ORCID and affiliation but no name (it then patched it:
    "authors is a required property"). A harvest names the author by the e-mail and says so; a deposit is read as
    written, so validation still refuses it."""
    loaded = load_pagetab_json(PUBLISHED / "S-BIAD661_author-without-name.json", published=True)
    (author,) = loaded.record["authors"]
    assert author["name"] == "agnes.csiszar@meduniwien.ac.at" and author["orcid"] == "https://orcid.org/0000-0001-7911-3427"
    assert author["affiliations"] == [{"name": "Medical University of Vienna"}] and author["roles"] == ["corresponding author"]
    assert any("author 1 has no name; named 'agnes.csiszar@meduniwien.ac.at'" in note for note in loaded.unmapped)
    assert_conforms(loaded.record)
    deposit = load_pagetab_json(PUBLISHED / "S-BIAD661_author-without-name.json")
    assert "authors" not in deposit.record and any("author 1 has no name; left out" in n for n in deposit.unmapped)
    assert "authors" in [v.path for v in check(deposit.record).report.violations]


def test_a_published_image_analysis_with_only_a_title_loads_and_a_deposit_stays_strict():
    loaded = load_pagetab_json(PUBLISHED / "S-BIAD661_analysis-title-only.json", published=True)
    (analysis,) = loaded.record["image_analyses"]
    assert analysis["analysis_overview"] == analysis["title"]
    assert any("no analysis_overview; its title" in note for note in loaded.unmapped)
    assert_conforms(loaded.record)
    deposit = load_pagetab_json(PUBLISHED / "S-BIAD661_analysis-title-only.json")
    assert "analysis_overview" not in deposit.record["image_analyses"][0]
    assert not check(deposit.record).report.conforms


def test_harvests_load_the_published_records_and_report_what_was_filled_in(tmp_path):
    from api.services import open_services
    from loaders.harvest import Harvester
    from tests.catalog_helpers import make_settings

    with open_services(make_settings(tmp_path)) as services:
        summary = Harvester(services.archive, metadata_only=True).run(
            "pagetab", [str(p) for p in sorted(PUBLISHED.glob("*.json"))]
        )
        assert summary.failed == [] and summary.loaded == ["S-BIAD661", "S-BIAD661"]
        warnings = [w["warning"] for w in summary.to_dict()["warnings"]]
        assert any("no analysis_overview; its title" in w for w in warnings)
        assert any("author 1 has no name; named 'agnes.csiszar@meduniwien.ac.at'" in w for w in warnings)
        assert not any("kept as a generic attribute" in w for w in warnings)  # notes of what was mapped otherwise stay notes


# --------------------------------------------------------------------------- normalisation


@pytest.mark.parametrize(
    "text, doi",
    [
        ("10.6019/S-BIAD661", "10.6019/S-BIAD661"),
        ("https://doi.org/10.1038/s41597-020-00608-w", "10.1038/s41597-020-00608-w"),
        ("doi:10.1000/xyz", "10.1000/xyz"),
        ("DOI: 10.1000/ xyz", "10.1000/xyz"),
        ("http://dx.doi.org/10.5281/zenodo.1", "10.5281/zenodo.1"),
        ("https://doi.org/DOI: 10.26508/lsa.202403067", "10.26508/lsa.202403067"),
        ("TBD", None),
        ("None", None),
    ],
)
def test_dois_are_normalised(text, doi):
    assert external_ids.doi(text) == doi


@pytest.mark.parametrize(
    "text, orcid",
    [
        ("0000-0002-1825-0097", "https://orcid.org/0000-0002-1825-0097"),
        ("http://orcid.org/0000-0001-6857-341X", "https://orcid.org/0000-0001-6857-341X"),
        ("https://orcid.org/0000000218250097", "https://orcid.org/0000-0002-1825-0097"),
        ("0000-0002-1825-0098", None),
        ("0000-0000-0000-0000", None),
        ("not an orcid", None),
    ],
)
def test_orcids_are_normalised_and_checked(text, orcid):
    assert external_ids.iri("ORCID", text) == orcid


@pytest.mark.parametrize(
    "text, name",
    [
        ("CC0", "CC0-1.0"),
        ("CC BY 4.0", "CC-BY-4.0"),
        ("cc-by-4.0", "CC-BY-4.0"),
        ("CC BY 3.0", "CC-BY-3.0"),
        ("https://creativecommons.org/publicdomain/zero/1.0/legalcode", "CC0-1.0"),
        ("https://creativecommons.org/licenses/by-nc-sa/4.0/", "CC-BY-NC-SA-4.0"),
        ("Creative Commons Attribution 4.0 International", "CC-BY-4.0"),
        ("Apache 2.0", "Apache-2.0"),
        ("Creative Commons Attribution 4.0 International (CC BY 4.0)", "CC-BY-4.0"),
        ("Attribution-NonCommercial 4.0 International (CC BY-NC 4.0)", "CC-BY-NC-4.0"),
        ("CC0 1.0 Universal", "CC0-1.0"),
        ("Creative Commons Zero v1.0 Universal", "CC0-1.0"),
        ("All rights reserved", None),
        ("CC BY", None),
    ],
)
def test_licences_written_as_text(text, name):
    assert licence_name(text) == name


def test_an_unknown_licence_is_kept_and_not_guessed():
    doc = json.loads((DATA / "S-BIAD661_original.json").read_text())
    licence = next(a for a in doc["section"]["attributes"] if a["name"] == "License")
    licence["value"] = "Custom academic licence"
    loaded = load_pagetab_json(doc)
    assert "license" not in loaded.record
    assert {"name": "License", "value": "Custom academic licence"} in loaded.record["attributes"]
    assert any("Custom academic licence" in note for note in loaded.unmapped)
    report = check(loaded.record).report
    assert [v.path for v in report.violations] == ["license"]


@pytest.mark.parametrize(
    "url, link_type, target, resource",
    [
        ("EMPIAR-10002", None, "https://identifiers.org/empiar:EMPIAR-10002", "EMPIAR"),
        ("https://www.ebi.ac.uk/empiar/EMPIAR-10002/", None, "https://identifiers.org/empiar:EMPIAR-10002", "EMPIAR"),
        ("EMD-1234", "EMDB", "https://identifiers.org/emdb:EMD-1234", "EMDB"),
        ("https://www.rcsb.org/structure/1ABC", None, "https://identifiers.org/pdb:1ABC", "PDB"),
        ("1abc", "PDB", "https://identifiers.org/pdb:1ABC", "PDB"),
        (
            "https://www.ebi.ac.uk/biostudies/bioimages/studies/S-BIAD1",
            None,
            "https://identifiers.org/biostudies:S-BIAD1",
            "BioImage Archive",
        ),
        (
            "https://www.ebi.ac.uk/biostudies/studies/S-BSST401",
            None,
            "https://identifiers.org/biostudies:S-BSST401",
            "BioStudies",
        ),
        ("idr0004", "IDR", "https://identifiers.org/idr:0004", "IDR"),  # identifiers.org writes IDR ids as digits
        ("https://doi.org/10.1101/2025.11.12.687478", None, "https://doi.org/10.1101/2025.11.12.687478", "DOI"),
        ("10.5281/zenodo.6352550", "DOI", "https://doi.org/10.5281/zenodo.6352550", "DOI"),
        ("https://pubmed.ncbi.nlm.nih.gov/123/", None, "https://identifiers.org/pubmed:123", "PubMed"),
        ("123", "PubMed", "https://identifiers.org/pubmed:123", "PubMed"),
        ("https://github.com/BioImage-Archive", None, "https://github.com/BioImage-Archive", "Other"),
    ],
)
def test_links_become_cross_references(url, link_type, target, resource):
    ref = link_reference(url, link_type)
    assert (ref["target"], ref["resource"]) == (target, resource)
    assert ref["relation"] in {"related_to", "references_map"}


def test_a_link_that_is_not_a_url_is_kept_as_an_attribute():
    doc = json.loads((DATA / "S-BIAD661_original.json").read_text())
    doc["section"]["links"] = [
        {"url": "some local name", "attributes": [{"name": "Type", "value": "Lab notebook"}]},
        {"url": "EMD-1234", "attributes": [{"name": "Relation", "value": "same specimen imaged"}]},
    ]
    loaded = load_pagetab_json(doc)
    assert {"name": "Link", "value": "some local name (Lab notebook)"} in loaded.record["attributes"]
    assert loaded.record["cross_references"] == [
        {
            "target": "https://identifiers.org/emdb:EMD-1234",
            "target_accession": "EMD-1234",
            "resource": "EMDB",
            "relation": "same_specimen_imaged",
        }
    ]
    assert_conforms(loaded.record)


# --------------------------------------------------------------------------- TSV


@pytest.mark.parametrize("stem", ["rembi-metadata_rembi-to-pagetab", "rembi-metadata-with-mifa_rembi-mifa-to-pagetab"])
def test_tsv_and_json_of_the_same_record_give_the_same_record(stem):
    from_json = load(f"{stem}.json")
    from_tsv = load(f"{stem}.tsv")
    assert from_tsv.record == from_json.record
    assert from_tsv.unmapped == from_json.unmapped and from_tsv.file_lists == from_json.file_lists


def test_tsv_continuation_lines_and_quoted_values():
    record = load("mifa-metadata_rembi-mifa-to-pagetab.tsv").record
    assert record["description"].startswith("This dataset contains annotated fluorescent nuclear images")
    assert "\nIt consists of 79 expert-annotated fluorescence images" in record["description"]
    criteria = record["annotation_methods"][0]["annotation_criteria"]
    assert criteria.startswith("The annotation of nuclei") and not criteria.startswith('"')


def test_tsv_tables_qualifiers_and_references():
    text = "\n".join(
        [
            "Submission\tS-TEST1",
            "Title\tA study",
            "ReleaseDate\t2024-01-02",
            "",
            "Study\tSECT-001",
            'Description\t"Line one',
            'line two"',
            "Tissue type\tblood",
            "[Ontology]\tUBERON",
            "(Tissue)\tBlood",
            "",
            "Files\tDescription\tType",
            "a/b.tif\tfirst\tImage",
            "a/c.tif\tsecond\tImage",
            "",
            "Links\tType",
            "EMPIAR-10002\tEMPIAR",
            "",
            "author",
            "Name\tJane Doe",
            "<affiliation>\to1",
            "",
            "organisation\to1",
            "Name\tEBI",
            "",
            "Data[SECT-001]\tTitle\tDescription",
            "DT-1\tGroup 1\tdata 1",
            "DT-2\tGroup 2\tdata 2",
            "",
        ]
    )
    doc = parse_pagetab_tsv(text)
    section = doc["section"]
    assert doc["accno"] == "S-TEST1" and section["accno"] == "SECT-001"
    assert section["attributes"][0] == {"name": "Description", "value": "Line one\nline two"}
    assert section["attributes"][1] == {
        "name": "Tissue type",
        "value": "blood",
        "valqual": [{"name": "Ontology", "value": "UBERON"}],
        "nmqual": [{"name": "Tissue", "value": "Blood"}],
    }
    assert [f["path"] for f in section["files"][0]] == ["a/b.tif", "a/c.tif"]
    assert section["links"][0][0]["url"] == "EMPIAR-10002"
    author = section["subsections"][0]
    assert author["attributes"][1] == {"name": "affiliation", "value": "o1", "reference": True}
    table = section["subsections"][2]
    assert [(row["accno"], row["type"]) for row in table] == [("DT-1", "Data"), ("DT-2", "Data")]
    loaded = load_pagetab_json(doc)
    assert loaded.record["authors"] == [{"name": "Jane Doe", "affiliations": [{"name": "EBI"}]}]
    assert {"name": "Tissue type (Ontology)", "value": "UBERON"} in loaded.record["attributes"]
    assert {"name": "Data DT-1: Title", "value": "Group 1"} in loaded.record["attributes"]
    assert loaded.record["cross_references"][0]["target"] == "https://identifiers.org/empiar:EMPIAR-10002"


# --------------------------------------------------------------------------- broken inputs


def test_not_json_is_a_clear_error(tmp_path):
    path = tmp_path / "S-BIAD9.json"
    path.write_text('{"accno": "S-BIAD9",\n "attributes": [}')
    with pytest.raises(PageTabError) as err:
        load_pagetab_json(path)
    assert err.value.status == 422
    assert "S-BIAD9.json" in err.value.message and "not JSON" in err.value.message
    assert err.value.errors[0]["line"] == 2


def test_a_file_that_is_not_utf8_or_nested_too_deeply_is_a_clear_error(tmp_path):
    latin = tmp_path / "S-BIAD8.json"
    latin.write_bytes('{"accno": "S-BIAD8",\n "attributes": [{"name": "Title", "value": "Caf\u00e9"}]}'.encode("latin-1"))
    with pytest.raises(PageTabError) as err:
        load_pagetab_json(latin)
    assert "S-BIAD8.json" in err.value.message and "not UTF-8" in err.value.message and err.value.errors[0]["line"] == 2
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(PageTabError, match="nested too deeply"):
        load_pagetab_json(deep)


def minimal(*subsections, study_attributes=(), files=None) -> dict:
    """A small legal submission around some subsections."""
    section = {
        "type": "Study",
        "attributes": [
            {"name": "Title", "value": "A study"},
            {"name": "Description", "value": "What it is."},
            {"name": "License", "value": "CC0"},
            *study_attributes,
        ],
        "subsections": list(subsections),
    }
    if files is not None:
        section["files"] = files
    return {"accno": "S-BIAD7", "attributes": [{"name": "ReleaseDate", "value": "2024-01-05"}], "section": section}


def test_section_types_written_in_other_ways_are_recognised():
    doc = minimal(
        {"type": "Authors", "attributes": [{"name": "Name", "value": "Jane Doe"}]},
        {"type": "Biosamples", "attributes": [{"name": "Title", "value": "bs"}, {"name": "Biological entity", "value": "cells"}]},
        {
            "type": "ImageAcquisition",
            "attributes": [{"name": "Title", "value": "acq"}, {"name": "Imaging method", "value": "confocal microscopy"}],
        },
        {"type": "Study Components", "attributes": [{"name": "Name", "value": "comp"}, {"name": "Description", "value": "d"}]},
        {"type": "StudyComponent", "attributes": [{"name": "Name", "value": "comp 2"}]},
    )
    record = load_pagetab_json(doc).record
    assert [a["name"] for a in record["authors"]] == ["Jane Doe"]
    assert [b["title"] for b in record["biosamples"]] == ["bs"]
    assert [a["title"] for a in record["image_acquisitions"]] == ["acq"]
    assert [c["title"] for c in record["components"]] == ["comp", "comp 2"]


def test_file_lists_outside_study_components_are_read():
    doc = minimal(
        {"type": "Data", "accno": "Data-1", "attributes": [{"name": "File List", "value": "data.json"}]},
        study_attributes=[{"name": "File List", "value": "study.json"}],
    )
    loaded = load_pagetab_json(doc)
    assert {(ref.component, ref.file_list) for ref in loaded.file_lists} == {
        ("Study files", "study.json"),
        ("Data-1", "data.json"),
    }
    assert {c["title"] for c in loaded.record["components"]} == {"Study files", "Data-1"}
    assert not any(a.get("name") == "File List" for a in loaded.record.get("attributes", []))


def test_links_and_files_attached_to_associations_are_kept():
    component = {
        "type": "Study Component",
        "attributes": [{"name": "Name", "value": "comp"}],
        "subsections": [
            {
                "type": "Associations",
                "attributes": [{"name": "Comment", "value": "x"}],
                "links": [{"url": "EMPIAR-10934", "attributes": [{"name": "Type", "value": "EMPIAR"}]}],
                "files": [{"path": "a.tif", "size": 5}],
            }
        ],
    }
    record = load_pagetab_json(minimal(component)).record
    assert any("10934" in ref["target"] for ref in record["cross_references"])
    assert record["files"] == [{"path": "a.tif", "size_bytes": 5, "file_component": "comp"}]


def test_inline_files_are_checked_like_file_lists():
    loaded = load_pagetab_json(
        minimal(
            files=[
                {"path": "../escape.tif", "size": 1},
                {"path": "dir\\win.tif", "size": 1},
                {"path": "ok.tif", "size": "12"},
                {"path": "ok.tif", "size": 13},
                {"path": "nosize.tif"},
            ]
        )
    )
    assert loaded.record["files"] == [{"path": "ok.tif", "size_bytes": 12}]
    notes = " ".join(loaded.unmapped)
    assert "'..' in path" in notes and "backslash" in notes and "attached twice" in notes and "no size" in notes


@pytest.mark.parametrize("name", ["ReleaseDate", "Release Date", "release_date"])
def test_release_date_attribute_spellings(name):
    doc = minimal()
    doc["attributes"] = [{"name": name, "value": "2024-02-03"}]
    assert load_pagetab_json(doc).record["release_date"] == "2024-02-03"


@pytest.mark.parametrize(
    "value, date",
    [
        ("2024-02-29", "2024-02-29"),  # a leap day
        ("2024-02-29T00:00:00.000Z", "2024-02-29"),  # midnight UTC: that day
        ("2026-01-01T23:00:00-05:00", "2026-01-03"),  # 2026-01-02 04:00 UTC: released from the next UTC day on
        ("2026-01-02T01:00:00+02:00", "2026-01-02"),  # 2026-01-01 23:00 UTC
        ("2026-01-01T12:00:00", "2026-01-02"),  # no zone: UTC
        ("2023-02-29T00:00:00Z", "2023-02-29T00:00:00Z"),  # not a day: kept for validation to refuse
    ],
)
def test_release_times_become_the_first_utc_day_from_them(value, date):
    """A study is released at the start of its date in UTC: a release time with a zone never becomes a date on
    which the source still withholds the study (cutting the text at 10 characters released it up to a day early)."""
    doc = minimal()
    doc["attributes"] = [{"name": "ReleaseDate", "value": value}]
    assert load_pagetab_json(doc).record["release_date"] == date


def test_control_characters_never_reach_the_graph():
    doc = minimal({"type": "Author", "attributes": [{"name": "Name", "value": "Jane Doe"}]})
    doc["section"]["attributes"][0]["value"] = "Bad\x00 ti\x07tle"
    graph = assert_conforms(load_pagetab_json(doc).record)
    titles = {str(o) for _s, p, o in graph if str(p) == "http://purl.org/dc/terms/title"}
    assert "Bad title" in titles
    graph.serialize(format="xml")  # an RDF/XML export stays well-formed


def test_pubmed_ids_in_the_ways_they_are_written():
    doc = minimal(
        {"type": "Publication", "attributes": [{"name": "Title", "value": "A paper"}, {"name": "PMID", "value": "PMID: 123"}]},
        {"type": "Publication", "attributes": [{"name": "PubMed ID", "value": "https://pubmed.ncbi.nlm.nih.gov/456/"}]},
    )
    record = load_pagetab_json(doc).record
    assert record["publications"] == [{"title": "A paper", "pubmed_id": "123"}]
    assert [r["target_accession"] for r in record["cross_references"] if r["resource"] == "PubMed"] == ["456"]


def test_study_fields_on_the_submission_an_abstract_and_a_second_description():
    doc = minimal()
    doc["section"]["attributes"] = [{"name": "Title", "value": "A study"}, {"name": "Abstract", "value": "What it found."}]
    doc["attributes"] += [{"name": "License", "value": "CC BY 4.0"}, {"name": "Keywords", "value": "a; b"}]
    record = load_pagetab_json(doc).record
    assert (record["description"], record["license"], record["keywords"]) == ("What it found.", "CC-BY-4.0", ["a", "b"])
    doc["section"]["attributes"] += [{"name": "Description", "value": "First."}, {"name": "Description", "value": "Second."}]
    record = load_pagetab_json(doc).record
    assert record["description"] == "First." and {"name": "Description", "value": "Second."} in record["attributes"]


def test_tsv_with_an_unclosed_quote_names_its_line():
    text = 'Submission\tS-BIAD5\nTitle\t"Unclosed title\n\nStudy\nDescription\tx\nLicense\tCC0\n'
    with pytest.raises(PageTabError, match="line 2: a quoted value runs on"):
        load_pagetab_tsv(text)


def test_a_deposit_without_an_accession_loads_for_the_accession_given_at_finalize():
    doc = json.loads((DATA / "rembi-metadata_rembi-to-pagetab.json").read_text())
    doc["accno"] = ""
    loaded = load_pagetab_json(doc)
    assert "accession" not in loaded.record and "submission: no accession (accno)" in loaded.unmapped
    assert loaded.record["provenance"] == {
        "source_resource": "BioImage Archive",
        "loader": "pagetab",
        "loader_version": "1.0.0",
    }
    assert check_study_record(loaded.record, BASE, accession="S-BIAD42").report.conforms


def test_a_submission_without_a_study_section_is_a_clear_error():
    with pytest.raises(PageTabError) as err:
        load_pagetab_json({"accno": "S-BIAD9", "attributes": [{"name": "Title", "value": "x"}], "type": "submission"})
    assert "S-BIAD9" in err.value.message and "no Study section" in err.value.message
    assert err.value.errors[0]["field"] == "section"


def test_tsv_without_a_submission_or_with_an_unknown_parent_is_a_clear_error():
    with pytest.raises(PageTabError, match="no Submission block"):
        load_pagetab_tsv("Study\tS1\nTitle\tx\n")
    with pytest.raises(PageTabError, match="line 5: parent section 'nowhere' is not defined"):
        load_pagetab_tsv("Submission\tS-X1\n\nStudy\n\nAssociations\t\tnowhere\nBiosample\tb\n")


def test_a_component_associated_to_a_missing_biosample_is_reported_by_validation():
    doc = json.loads((DATA / "rembi-metadata_rembi-to-pagetab.json").read_text())
    component = next(s for s in doc["section"]["subsections"] if s.get("type") == "Study Component")
    association = component["subsections"][0]
    next(a for a in association["attributes"] if a["name"] == "Biosample")["value"] = "No such biosample"
    loaded = load_pagetab_json(doc)
    report = check(loaded.record).report
    assert [(v.focus, v.path, v.value) for v in report.violations] == [
        ("/components/0", "component_biosamples", "No such biosample")
    ]
    assert any("Study Component 'Ultrasound images'" in note and "No such biosample" in note for note in loaded.unmapped)


# --------------------------------------------------------------------------- golden graphs


def golden_text(sample: str) -> str:
    loaded = load(sample, source_url=f"https://www.ebi.ac.uk/biostudies/files/{sample}")
    checked = check(loaded.record)
    assert checked.report.conforms, "\n".join(str(v) for v in checked.report.violations)
    return sorted_ntriples(checked.graph)


def regenerate_golden() -> list[Path]:
    GOLDEN.mkdir(parents=True, exist_ok=True)
    written = []
    for golden, sample in GOLDEN_SAMPLES.items():
        path = GOLDEN / golden
        path.write_text(golden_text(sample), encoding="utf-8")
        written.append(path)
    return written


@pytest.mark.parametrize("golden", sorted(GOLDEN_SAMPLES))
def test_golden_graphs(golden):
    expected_path = GOLDEN / golden
    actual = golden_text(GOLDEN_SAMPLES[golden])
    if os.environ.get("REGENERATE_GOLDEN"):
        expected_path.write_text(actual, encoding="utf-8")
    expected = expected_path.read_text(encoding="utf-8")
    assert actual == expected, f"{golden} differs; if intended, run `python -m tests.test_pagetab --regenerate`"


if __name__ == "__main__":
    if "--regenerate" in sys.argv[1:]:
        for written_path in regenerate_golden():
            print(f"wrote {written_path}")
    else:
        print(__doc__)
