"""EMPIAR loader: entry JSON (API and deposition shapes) and header XML → REMBI, golden records, harvests."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from api.services import open_services
from catalog.validation import check_study_record
from loaders.empiar import EmpiarError, load_empiar, load_empiar_json
from loaders.fetch import Fetcher
from loaders.harvest import Harvester
from tests.catalog_helpers import BASE, make_settings

DATA = Path(__file__).parent / "data" / "empiar"
WHEN = "2026-01-01T00:00:00Z"


@pytest.mark.parametrize("name", ["10934.xml", "STARFILETEST.json"])
def test_golden_records(name):
    loaded = load_empiar(DATA / name, harvested_at=WHEN)
    expected = json.loads((DATA / f"{name.split('.')[0]}.expected.json").read_text())
    assert {"record": loaded.record, "unmapped": loaded.unmapped} == expected


@pytest.mark.parametrize("name", ["10934.xml", "STARFILETEST.json", "IMAGELABELTEST.json"])
def test_every_sample_is_valid_rembi(name):
    record = load_empiar(DATA / name, harvested_at=WHEN).record
    checked = check_study_record(record, BASE)
    assert checked.report.conforms, [(i.path, i.message) for i in checked.report.violations]


def test_header_xml_mapping():
    record = load_empiar(DATA / "10934.xml").record
    assert record["accession"] == "EMPIAR-10934" and record["doi"] == "10.6019/EMPIAR-10934"
    assert record["release_date"] == "2022-02-07" and record["license"] == "CC0-1.0"
    authors = {a["name"]: a for a in record["authors"]}
    assert authors["Lancey C"]["orcid"] == "https://orcid.org/0000-0001-9064-4085"
    assert "corresponding author" in authors["Lancey C"]["roles"]
    assert "principal investigator" in authors["De Biasio A"]["roles"]  # matched by ORCID
    assert "orcid" not in authors["Sobhy MA"]
    (publication,) = record["publications"]
    assert publication["doi"] == "10.1038/s41467-021-26251-6" and publication["pubmed_id"] == "34667155"
    assert publication["year"] == 2021
    (xref,) = record["cross_references"]
    assert xref["target"] == "https://identifiers.org/emdb:EMD-12602" and xref["relation"] == "references_map"
    (component,) = record["components"]
    attributes = {a["name"]: a["value"] for a in component["attributes"]}
    assert attributes["pixel_width"] == "0.543" and attributes["num_images_or_tilt_series"] == "3889"
    assert attributes["category"] == "micrographs - multiframe" and attributes["voxel_type"] == "UNSIGNED BYTE"
    assert {a["name"]: a["value"] for a in record["attributes"]}["dataset size"] == "1.9 TB"


def test_api_json_mapping_with_grants_and_imagesets():
    record = load_empiar(DATA / "STARFILETEST.json").record
    assert record["accession"] == "EMPIAR-STARFILETEST" and len(record["components"]) == 6
    assert record["provenance"]["source_resource"] == "EMPIAR"
    assert record["provenance"]["source_url"] == "https://www.ebi.ac.uk/empiar/EMPIAR-STARFILETEST"


def test_correlative_entries_link_their_biostudies_partner():
    entry = json.loads((DATA / "STARFILETEST.json").read_text())
    body = entry["EMPIAR-STARFILETEST"]
    body.update(experiment_type="CLEM", biostudies_references=[{"name": "S-BIAD1492"}], idr_references=[{"name": "idr0004"}])
    record = load_empiar_json(entry).record
    refs = {r["target_accession"]: r for r in record["cross_references"]}
    assert refs["S-BIAD1492"]["relation"] == "same_specimen_imaged"
    assert refs["S-BIAD1492"]["resource"] == "BioImage Archive"
    assert refs["idr0004"]["resource"] == "IDR"
    assert {"name": "correlative modality", "value": "CLEM"} in record["attributes"]
    assert record["image_acquisitions"][0]["imaging_methods"][0]["id"].startswith("FBbi:")


def test_deposition_json_codes_are_decoded():
    loaded = load_empiar(DATA / "working_example.json")
    assert "accession" not in loaded.record  # a deposition has none yet
    assert {"name": "experiment type", "value": "EMDB"} in loaded.record["attributes"]
    assert any(a["name"] == "Smith JW" and "corresponding author" in a.get("roles", []) for a in loaded.record["authors"])
    assert any("release_date" in note for note in loaded.unmapped)


@pytest.mark.parametrize(
    "data, field",
    [
        (b"{not json", None),
        (b'{"something": 1}', "/"),
        (b'{"EMPIAR-1": {"imagesets": []}}', "title"),
        (b"<entry><x></entry>", None),
    ],
)
def test_bad_records_name_the_problem(tmp_path, data, field):
    path = tmp_path / ("bad.xml" if data.startswith(b"<") else "bad.json")
    path.write_bytes(data)
    with pytest.raises(EmpiarError) as err:
        load_empiar(path)
    assert str(path) in err.value.message
    if field:
        assert err.value.errors[0]["field"] == field


def test_harvest_by_id_replays_the_empiar_api(tmp_path, replay_server):
    replay_server.add(
        "/empiar/api/entry/10934/", (DATA / "STARFILETEST.json").read_bytes().replace(b"EMPIAR-STARFILETEST", b"EMPIAR-10934")
    )
    with open_services(make_settings(tmp_path, empiar_url=replay_server.url + "/empiar/api")) as services:
        harvester = Harvester(services.archive, Fetcher(interval=0, attempts=2, backoff=0.01))
        summary = harvester.run("empiar", ["EMPIAR-10934"])
        assert summary.loaded == ["EMPIAR-10934"], summary.failed
        again = harvester.run("empiar", ["EMPIAR-10934"])
        assert again.unchanged == ["EMPIAR-10934"]
        archive = services.archive
        assert archive.public.search.search('accession:"EMPIAR-10934"').total == 1
        assert archive.public.search.search("", filters={"source": ["EMPIAR"]}).total == 1
        failed = harvester.run("empiar", [str(DATA / "working_example.json")])
        assert failed.loaded == [] and failed.failed  # a deposition JSON has no accession: refused, named


def test_cross_references_that_name_no_accession_are_left_out_with_a_note(tmp_path):
    entry = json.loads((DATA / "working_example.json").read_text())
    entry = entry if "cross_references" in entry else next(iter(entry.values()))
    entry["cross_references"] = [{"name": "EMD-1111"}, {"emdb_id": "EMD-2222"}, {"name": None}, "PDB 7ABC", "3333"]
    loaded = load_empiar_json(entry)
    assert [r["target_accession"] for r in loaded.record.get("cross_references", []) if r["resource"] == "EMDB"] == [
        "EMD-1111",
        "EMD-2222",
        "EMD-3333",
    ]
    assert any("'PDB 7ABC'" in note for note in loaded.unmapped)


def test_header_xml_with_a_byte_order_mark(tmp_path):
    marked = tmp_path / "10934.xml"
    marked.write_bytes(b"\xef\xbb\xbf" + (DATA / "10934.xml").read_bytes())
    assert load_empiar(marked).record["accession"] == "EMPIAR-10934"


def test_an_orcid_with_a_wrong_check_digit_is_left_out_with_a_note(tmp_path):
    """EMPIAR kept any iD shaped like an ORCID; the PageTab loader checked the check digit. Both check it now."""
    xml = (DATA / "10934.xml").read_text().replace("0000-0001-9064-4085", "0000-0001-9064-4086")
    path = tmp_path / "10934.xml"
    path.write_text(xml)
    loaded = load_empiar(path)
    authors = {a["name"]: a for a in loaded.record["authors"]}
    assert "orcid" not in authors["Lancey C"]
    assert any("ORCID '0000-0001-9064-4086'" in note and "not a valid ORCID iD" in note for note in loaded.unmapped)
