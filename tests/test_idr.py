"""IDR loader: idrNNNN-study.txt → REMBI, golden records, errors naming line and field, harvest by name."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from api.services import open_services
from catalog.validation import check_study_record
from loaders.fetch import Fetcher
from loaders.harvest import Harvester
from loaders.idr import IdrError, load_idr_study
from tests.catalog_helpers import BASE, make_settings

DATA = Path(__file__).parent / "data" / "idr"
WHEN = "2026-01-01T00:00:00Z"


@pytest.mark.parametrize("accession", ["idr0004", "idr0038"])
def test_golden_records_and_validity(accession):
    loaded = load_idr_study(DATA / f"{accession}-study.txt", harvested_at=WHEN)
    expected = json.loads((DATA / f"{accession}.expected.json").read_text())
    assert {"record": loaded.record, "unmapped": loaded.unmapped} == expected
    checked = check_study_record(loaded.record, BASE)
    assert checked.report.conforms, [(i.path, i.message) for i in checked.report.violations]


def test_screen_study_mapping():
    record = load_idr_study(DATA / "idr0004-study.txt").record
    assert record["accession"] == "idr0004" and record["license"] == "CC-BY-NC-SA-3.0"
    assert record["release_date"] == "2016-04-27"
    assert [p["pubmed_id"] for p in record["publications"]] == ["21893595", "18085829"]
    assert record["biosamples"][0]["organisms"][0]["id"] == "NCBITaxon:4932"
    (screen,) = record["components"]
    assert screen["title"] == "idr0004-thorpe-rad52/screenA"
    attributes = {a["name"]: a["value"] for a in screen["attributes"]}
    assert attributes["Library File Name"] == "idr0004-screenA-library.txt"
    assert attributes["Screen Technology Type"] == "gene deletion screen"
    assert record["image_acquisitions"][0]["imaging_methods"][0]["id"] == "FBbi:00000246"
    assert record["specimens"][0]["growth_protocol"].startswith("Individual deletions of nonessential genes")
    assert "108 mutants were initially identified" in record["image_acquisitions"][0]["acquisition_parameters"]
    assert "image_analyses" not in record  # its protocol has no description in the file


def test_experiment_study_has_one_component_per_experiment():
    record = load_idr_study(DATA / "idr0038-study.txt").record
    assert len(record["components"]) == 3 and record["license"] == "CC-BY-4.0"
    assert record["doi"] == "10.17867/10000110"
    assert [a["name"] for a in record["authors"]] == ["Marie Held", "Raphael Levy"]
    assert record["authors"][1]["roles"] == ["Principal Investigator"]


@pytest.mark.parametrize(
    "edit, field",
    [
        (
            lambda t: t.replace("Comment[IDR Study Accession]\tidr0004", "Comment[IDR Study Accession]\tnope"),
            "Comment[IDR Study Accession]",
        ),
        (lambda t: t.replace("Study Title\t", "Study Title-x\t"), "Study Title"),
        (lambda t: t.replace("2016-04-27", "27/04/2016"), "Study Public Release Date"),
        (
            lambda t: t.replace("CC BY-NC-SA 3.0", "all rights reserved").replace(
                "https://creativecommons.org/licenses/by-nc-sa/3.0/", ""
            ),
            "Study License",
        ),
    ],
)
def test_bad_files_name_line_and_field(tmp_path, edit, field):
    path = tmp_path / "idr0004-study.txt"
    path.write_text(edit((DATA / "idr0004-study.txt").read_text()))
    with pytest.raises(IdrError) as err:
        load_idr_study(path)
    assert err.value.errors[0]["field"] == field and str(path) in err.value.message


def test_harvest_by_study_folder_name(tmp_path, replay_server):
    name = "idr0038-held-kidneylightsheet"
    replay_server.add(f"/idr-metadata/{name}/idr0038-study.txt", DATA / "idr0038-study.txt")
    with open_services(make_settings(tmp_path, idr_url=replay_server.url + "/idr-metadata")) as services:
        harvester = Harvester(services.archive, Fetcher(interval=0, attempts=2, backoff=0.01))
        summary = harvester.run("idr", [name])
        assert summary.loaded == ["idr0038"], summary.failed
        assert services.archive.public.search.search("kidney organoids", filters={"source": ["IDR"]}).total == 1
        assert harvester.run("idr", [name]).unchanged == ["idr0038"]  # the same source: nothing rewritten


def test_an_unclosed_quote_is_noted_with_its_line_and_repeated_protocol_types_are_both_kept(tmp_path):
    """Issue 14 changed the first half: the IDR's own tools read a line as a row, so an unmatched quote no longer
    stops the file (it did: "a quoted value runs on"); the value is kept as written and the note names the line."""
    lines = (DATA / "idr0004-study.txt").read_text().splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith("Screen Description"))
    broken = tmp_path / "idr0004-study.txt"
    broken.write_text("\n".join(lines[:at] + [lines[at].replace("\t", '\t"', 1)] + lines[at + 1 :]) + "\n")
    loaded = load_idr_study(broken)
    assert loaded.record["components"][0]["description"].startswith('"')
    assert any(note.startswith(f"line {at + 1}: a quote at one end of") for note in loaded.unmapped)
    twice = tmp_path / "twice" / "idr0004-study.txt"
    twice.parent.mkdir()
    protocol_types = next(i for i, line in enumerate(lines) if line.startswith("Protocol Type\t"))
    descriptions = next(i for i, line in enumerate(lines) if line.startswith("Protocol Description\t"))
    edited = list(lines)
    edited[protocol_types] = edited[protocol_types].replace("HCS library protocol", "growth protocol")
    twice.write_text("\n".join(edited) + "\n")
    specimen = load_idr_study(twice).record["specimens"][0]
    first, second = edited[descriptions].split("\t")[1:3]
    assert first.strip('"')[:30] in specimen["growth_protocol"] and second.strip('"')[:30] in specimen["growth_protocol"]


def test_a_publication_known_only_by_its_pubmed_id_becomes_a_link(tmp_path):
    lines = (DATA / "idr0004-study.txt").read_text().splitlines()
    kept = [
        "Study PubMed ID\tPMID: 22094257" if line.startswith("Study PubMed ID") else line
        for line in lines
        if not line.startswith(("Study Publication Title", "Study DOI"))
    ]
    source = tmp_path / "idr0004-study.txt"
    source.write_text("\n".join(kept) + "\n")
    record = load_idr_study(source).record
    assert "publications" not in record
    pubmed = [r for r in record["cross_references"] if r["resource"] == "PubMed"]
    assert pubmed == [
        {
            "target": "https://identifiers.org/pubmed:22094257",
            "resource": "PubMed",
            "target_accession": "22094257",
            "relation": "supplements_publication",
        }
    ]
    checked = check_study_record(record, BASE)
    assert checked.report.conforms, [(i.path, i.message) for i in checked.report.violations]


# ---------------------------------------------------------------------- study files the IDR published (issue 14)


def test_a_stray_quote_inside_a_value_is_kept_and_noted(tmp_path):
    """Real IDR files carry '…United Kingdom"<TAB>"Department…': read as the IDR's tools read them (a line is a row,
    quotes only wrap a whole cell), the file loads, both addresses kept as written and the line named."""
    loaded = load_idr_study(DATA / "idr0038-stray-quote-study.txt", harvested_at=WHEN)
    reference = load_idr_study(DATA / "idr0038-study.txt", harvested_at=WHEN)
    assert [a["name"] for a in loaded.record["authors"]] == ["Marie Held", "Raphael Levy"]
    assert {k: v for k, v in loaded.record.items() if k != "attributes"} == {
        k: v for k, v in reference.record.items() if k != "attributes"
    }
    assert [n for n in loaded.unmapped if n.startswith("line 31: a quote at one end of")] and len(loaded.unmapped) == 2
    checked = check_study_record(loaded.record, BASE)
    assert checked.report.conforms, [(i.path, i.message) for i in checked.report.violations]


def test_quotes_inside_a_long_protocol_description_are_text():
    loaded = load_idr_study(DATA / "idr0038-quoted-protocol-study.txt", harvested_at=WHEN)
    acquisition = loaded.record["image_acquisitions"][0]["acquisition_parameters"]
    assert acquisition.endswith('Organoids were then kept in "organoid medium"') and loaded.unmapped == []
    assert len(loaded.record["components"]) == 3  # nothing after the description was swallowed into it
    checked = check_study_record(loaded.record, BASE)
    assert checked.report.conforms, [(i.path, i.message) for i in checked.report.violations]


def test_a_study_without_a_licence_line_loads_with_the_default_and_a_note(tmp_path):
    loaded = load_idr_study(DATA / "idr0004-no-licence-study.txt")
    assert loaded.record["license"] == "CC0-1.0"
    assert any("no Study License; the catalog's default CC0-1.0 applied" in note for note in loaded.unmapped)
    assert load_idr_study(DATA / "idr0004-no-licence-study.txt", default_license="CC-BY-4.0").record["license"] == "CC-BY-4.0"
    with open_services(make_settings(tmp_path)) as services:
        files = [
            str(DATA / name)
            for name in ("idr0004-no-licence-study.txt", "idr0038-stray-quote-study.txt", "idr0038-quoted-protocol-study.txt")
        ]
        summary = Harvester(services.archive).run("idr", files)
        assert summary.failed == [] and sorted(summary.loaded) == ["idr0004", "idr0038", "idr0038"]
        warnings = "\n".join(warning for _item, warning in summary.warnings)
        assert "no Study License; the catalog's default CC0-1.0 applied" in warnings and "line 31: a quote at one end" in warnings
