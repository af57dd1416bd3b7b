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
        (lambda doc: [n.update(license="https://example.org/all-rights-reserved") for n in doc["@graph"] if n["@id"] == "./"], "license"),
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
