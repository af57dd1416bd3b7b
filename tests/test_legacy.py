"""Legacy collections: a folder of records plus a mapping; identifiers kept, provenance named, bad records alone fail."""

from __future__ import annotations

import json
import shutil

from pathlib import Path

import pytest

from api.services import open_services
from catalog.validation import check_study_record
from loaders.harvest import Harvester
from loaders.legacy import LegacyCollectionError, load_legacy_collection
from tests.catalog_helpers import BASE, make_settings

COLLECTION = Path(__file__).parent / "data" / "legacy" / "jcb"


def test_records_map_to_valid_rembi_with_their_identifiers():
    loaded = list(load_legacy_collection(COLLECTION, harvested_at="2026-01-01T00:00:00Z"))
    good = {r.record["accession"]: r.record for r in loaded if not isinstance(r, Exception)}
    assert set(good) == {"S-JCBD12", "S-JCBD13"}
    record = good["S-JCBD12"]
    assert record["doi"] == "10.1083/jcb.201108095" and record["license"] == "CC-BY-4.0"
    assert record["keywords"] == ["DNA repair", "yeast", "screen"]
    assert record["authors"][0] == {"name": "Thorpe PH", "position": 1, "orcid": "https://orcid.org/0000-0002-1825-0097"}
    assert record["biosamples"][0]["organisms"][0]["id"] == "NCBITaxon:4932"
    assert record["provenance"]["loader"] == "legacy collection: JCB DataViewer"
    assert record["provenance"]["source_resource"] == "JCB DataViewer"
    assert {"name": "viewer_id", "value": "5342"} in record["attributes"]  # unmapped fields are kept
    for rec in good.values():
        checked = check_study_record(rec, BASE)
        assert checked.report.conforms, [(i.path, i.message) for i in checked.report.violations]
    (bad,) = [r for r in loaded if isinstance(r, Exception)]
    assert bad.where.endswith("S-JCBD14.json") and bad.errors[0]["field"] == "article.title"


def test_harvest_loads_the_good_records_and_reports_the_bad_one(tmp_path):
    with open_services(make_settings(tmp_path)) as services:
        summary = Harvester(services.archive).run("legacy", [str(COLLECTION / "mapping.yaml")])
        assert sorted(summary.loaded) == ["S-JCBD12", "S-JCBD13"]
        assert len(summary.failed) == 1 and "S-JCBD14" in summary.failed[0][0]
        assert services.archive.public.search.search("spindle", filters={"source": ["JCB DataViewer"]}).total == 1
        assert sorted(Harvester(services.archive).run("legacy", [str(COLLECTION)]).unchanged) == ["S-JCBD12", "S-JCBD13"]


@pytest.mark.parametrize(
    "mapping, field",
    [
        ("collection: X\nrecords: '*.json'\n", "fields"),
        ("collection: X\nrecords: '*.json'\nfields: {title: t}\n", "fields.accession"),
        ("collection: X\nrecords: '*.json'\nfields: {accession: a, colour: c}\n", "fields.colour"),
    ],
)
def test_bad_mappings_are_refused(tmp_path, mapping, field):
    (tmp_path / "mapping.yaml").write_text(mapping)
    with pytest.raises(LegacyCollectionError) as err:
        list(load_legacy_collection(tmp_path))
    assert field in [e["field"] for e in err.value.errors]


def test_tsv_collections_name_the_row(tmp_path):
    (tmp_path / "mapping.yaml").write_text(
        "collection: Old screens\nrecords: studies.tsv\ndefaults: {license: CC0-1.0}\n"
        "fields: {accession: id, title: name, release_date: date, authors: people}\n"
    )
    (tmp_path / "studies.tsv").write_text(
        "id\tname\tdate\tpeople\nS-OLD1\tFirst\t2001-01-01\tA B; C D\nS-OLD2\tSecond\t01/01/2001\tE F\n"
    )
    loaded = list(load_legacy_collection(tmp_path))
    assert loaded[0].record["authors"][1]["name"] == "C D"
    assert isinstance(loaded[1], LegacyCollectionError) and loaded[1].where.endswith("studies.tsv:3")


def test_a_method_no_fbbi_term_matched_is_faceted_by_the_depositors_words(tmp_path):
    collection = tmp_path / "jcb"
    shutil.copytree(COLLECTION, collection)
    record = collection / "records" / "S-JCBD13.json"
    record.write_text(record.read_text().replace("spinning disk confocal microscopy", "home-built quantum ghost imaging rig"))
    with open_services(make_settings(tmp_path)) as services:
        assert "S-JCBD13" in Harvester(services.archive).run("legacy", [str(collection / "mapping.yaml")]).loaded
        facets = services.archive.public.search.search("", facet_limit=100).facets["imaging_method"]
        assert "home-built quantum ghost imaging rig" in dict(facets) and "imaging method" not in dict(facets)


def test_each_unreadable_file_fails_alone_and_nothing_is_silently_doubled(tmp_path):
    collection = tmp_path / "jcb"
    shutil.copytree(COLLECTION, collection)
    records = collection / "records"
    good = json.loads((records / "S-JCBD12.json").read_text())
    (records / "S-JCBD31.json").write_text("null")
    (records / "S-JCBD32.json").write_bytes('{"accession": "S-JCBD32", "figure_legend": "caf\u00e9"}'.encode("latin-1"))
    (records / "S-JCBD35.json").write_text(
        json.dumps({**good, "accession": "S-JCBD35", "article": {**good["article"], "authors": {"name": "Thorpe PH"}}})
    )
    (records / "S-JCBD12-again.json").write_text(json.dumps(good))
    loaded = list(load_legacy_collection(collection))
    failed = {Path(r.where).name: r.message for r in loaded if isinstance(r, Exception)}
    ok = {r.record["accession"]: r.record for r in loaded if not isinstance(r, Exception)}
    assert {"S-JCBD12", "S-JCBD13", "S-JCBD35"} <= set(ok)
    assert "not NoneType" in failed["S-JCBD31.json"] and "cannot be read" in failed["S-JCBD32.json"]
    assert "already the record at" in failed["S-JCBD12.json"] or "already the record at" in failed["S-JCBD12-again.json"]
    assert ok["S-JCBD35"]["authors"] == [{"name": "Thorpe PH", "position": 1}]
    (collection / "mapping.yaml").write_text((collection / "mapping.yaml").read_text().replace("records/*.json", "records/*.xml"))
    with pytest.raises(LegacyCollectionError, match="match no file"):
        list(load_legacy_collection(collection))
