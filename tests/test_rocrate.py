"""RO-Crate submissions: metadata → REMBI, the file list's dataset column → components, harvest, errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from api.services import open_services
from catalog.validation import check_study_record
from loaders.harvest import Harvester
from loaders.rocrate import RoCrateError, load_rocrate
from tests.catalog_helpers import BASE, make_settings

CRATE = Path(__file__).parent / "data" / "rocrate" / "typical"


def test_crate_maps_to_valid_rembi():
    loaded = load_rocrate(CRATE)
    record = loaded.record
    assert record["accession"] == "S-TEST123" and record["license"] == "CC0-1.0"
    assert record["authors"] == [{"name": "Test Author", "position": 1, "orcid": "https://orcid.org/9999-0001-2222-3333"}]
    assert {c["title"] for c in record["components"]} == {"Imaging Dataset", "Annotation Dataset"}
    assert record["image_acquisitions"][0]["imaging_instrument"] == "Microscope"
    (ref,) = loaded.file_lists
    assert ref.file_list == "file_list.tsv" and ref.component_column == "dataset"
    checked = check_study_record(record, BASE)
    assert checked.report.conforms, [(i.path, i.message) for i in checked.report.violations]


def test_harvest_assigns_files_to_their_dataset(tmp_path):
    with open_services(make_settings(tmp_path)) as services:
        summary = Harvester(services.archive).run("rocrate", [str(CRATE)])
        assert summary.loaded == ["S-TEST123"], summary.failed
        archive = services.archive
        assert archive.public.files.totals("S-TEST123")["files"] == 6
        rows = archive.public.graph.select(
            "PREFIX rembi: <https://w3id.org/rembi/> PREFIX dcterms: <http://purl.org/dc/terms/>"
            " SELECT ?path ?title WHERE { GRAPH ?g { ?f rembi:path ?path ; rembi:component ?c . ?c dcterms:title ?title } }"
        )
        components = {r["path"]["value"]: r["title"]["value"] for r in rows}
        assert components["data/tomograms/TS_026.rec"] == "Imaging Dataset"
        assert components["data/particle_lists/TS_026_cyto_ribosomes.csv"] == "Annotation Dataset"


@pytest.mark.parametrize(
    "edit, field",
    [
        (lambda doc: doc.pop("@graph"), "@graph"),
        (
            lambda doc: [n.update(license="https://example.org/all-rights-reserved") for n in doc["@graph"] if n["@id"] == "./"],
            "license",
        ),
        (lambda doc: [n.pop("name") for n in doc["@graph"] if n["@id"] == "./"], "name"),
    ],
)
def test_bad_crates_name_the_field(tmp_path, edit, field):
    crate = tmp_path / "crate"
    shutil.copytree(CRATE, crate)
    doc = json.loads((crate / "ro-crate-metadata.json").read_text())
    edit(doc)
    (crate / "ro-crate-metadata.json").write_text(json.dumps(doc))
    with pytest.raises(RoCrateError) as err:
        load_rocrate(crate)
    assert err.value.errors[0]["field"] == field


def edited_crate(tmp_path: Path, edit, bom: bool = False) -> Path:
    crate = tmp_path / "crate"
    shutil.copytree(CRATE, crate)
    doc = json.loads((crate / "ro-crate-metadata.json").read_text())
    edit(doc)
    (crate / "ro-crate-metadata.json").write_text(("\ufeff" if bom else "") + json.dumps(doc), encoding="utf-8")
    return crate


def node(doc: dict, node_id: str) -> dict:
    return next(n for n in doc["@graph"] if n.get("@id") == node_id)


def test_specimens_biosamples_and_taxa_by_reference_as_bia_writes_them(tmp_path):
    def edit(doc):
        node(doc, "#Imaging%20Dataset").update(
            associatedBiologicalEntity=[{"@id": "#BioSample"}],
            associatedSpecimen=[{"@id": "#Specimen"}],
            associatedSpecimenImagingPreparationProtocol=[{"@id": "#Cryo"}],
        )
        doc["@graph"] += [
            {
                "@id": "#BioSample",
                "@type": ["bia:BioSample"],
                "title": "HeLa",
                "biologicalEntityDescription": "HeLa cells",
                "organismClassification": [{"@id": "#Taxon"}, {"@id": "http://purl.obolibrary.org/obo/NCBITaxon_10090"}],
                "growthProtocol": {"@id": "#Growth"},
            },
            {"@id": "#Taxon", "@type": ["bia:Taxon"], "scientificName": "Homo sapiens", "commonName": "human"},
            {
                "@id": "#Specimen",
                "@type": ["bia:Specimen"],
                "title": "Fixed cells",
                "biologicalEntity": [{"@id": "#BioSample"}],
                "imagingPreparationProtocol": [{"@id": "#Fix"}],
            },
            {
                "@id": "#Fix",
                "@type": ["bia:SpecimenImagingPreparationProtocol"],
                "title": "Fixation",
                "protocolDescription": "4% PFA",
            },
            {
                "@id": "#Cryo",
                "@type": ["bia:SpecimenImagingPreparationProtocol"],
                "title": "Plunge freezing",
                "protocolDescription": "Vitrobot",
            },
        ]

    loaded = load_rocrate(edited_crate(tmp_path, edit, bom=True))
    record = loaded.record
    assert [o["id"] for o in record["biosamples"][0]["organisms"]] == ["NCBITaxon:9606", "NCBITaxon:10090"]
    assert {s["title"]: (s["sample_preparation"], s["specimen_biosamples"]) for s in record["specimens"]} == {
        "Fixed cells": ("4% PFA", ["HeLa"]),
        "Plunge freezing": ("Vitrobot", ["HeLa"]),
    }
    imaging = next(c for c in record["components"] if c["title"] == "Imaging Dataset")
    assert imaging["component_specimens"] == ["Fixed cells", "Plunge freezing"] and imaging["component_biosamples"] == ["HeLa"]
    assert not any("{" in a["value"] for b in record["biosamples"] for a in b.get("attributes", []))
    assert any("growthProtocol" in note for note in loaded.unmapped)
    checked = check_study_record(record, BASE)
    assert checked.report.conforms, [(i.path, i.message) for i in checked.report.violations]


def test_embedded_entities_licence_nodes_publications_grants_and_links(tmp_path):
    def edit(doc):
        node(doc, "ro-crate-metadata.json")["about"] = "./"
        node(doc, "./").update(
            contributor=[
                {"@id": "https://orcid.org/9999-0001-2222-3333"},
                {"@type": "Person", "name": "Embedded Person", "role": "curator"},
            ],
            license={"@id": "#licence"},
            relatedPublication=[{"@id": "https://doi.org/10.1038/s41592-021-01146-5"}],
            funding=[{"@id": "#grant"}],
            seeAlso=[{"@id": "#ext"}],
        )
        doc["@graph"] += [
            {"@id": "#licence", "@type": "CreativeWork", "url": "https://spdx.org/licenses/CC-BY-4.0"},
            {
                "@id": "https://doi.org/10.1038/s41592-021-01146-5",
                "@type": ["bia:Publication"],
                "title": "REMBI",
                "doi": "10.1038/s41592-021-01146-5",
                "pubmedId": "33948031",
                "yearPublished": 2021,
            },
            {"@id": "#grant", "@type": ["bia:Grant"], "identifier": "220526/Z/20/Z", "funder": [{"@id": "#funder"}]},
            {"@id": "#funder", "@type": ["bia:Funder"], "displayName": "Wellcome Trust"},
            {"@id": "#ext", "@type": ["bia:ExternalReference"], "link": "https://www.ebi.ac.uk/empiar/EMPIAR-10934"},
        ]

    record = load_rocrate(edited_crate(tmp_path, edit)).record
    assert record["license"] == "CC-BY-4.0"
    assert [a["name"] for a in record["authors"]] == ["Test Author", "Embedded Person"] and record["authors"][1]["roles"] == [
        "curator"
    ]
    assert record["publications"] == [
        {"title": "REMBI", "doi": "10.1038/s41592-021-01146-5", "year": 2021, "pubmed_id": "33948031"}
    ]
    assert record["funding"] == [{"funder": "Wellcome Trust", "grant_id": "220526/Z/20/Z"}]
    assert record["cross_references"][0]["target_accession"] == "EMPIAR-10934"
    checked = check_study_record(record, BASE)
    assert checked.report.conforms, [(i.path, i.message) for i in checked.report.violations]
