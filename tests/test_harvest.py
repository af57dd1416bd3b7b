"""Harvest runs on real records: local files and recorded BioStudies responses replayed by a local HTTP server."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from loaders.fetch import Fetcher
from loaders.harvest import Harvester
from tests.catalog_helpers import BASE
from tests.servers.replay_server import ReplayServer, Response, replay_server  # noqa: F401

DATA = Path(__file__).parent / "data" / "harvest" / "biostudies"


def _fast(harvester: Harvester) -> Harvester:
    harvester.fetcher = Fetcher(interval=0, attempts=3, backoff=0.01)
    return harvester


@pytest.fixture
def services(make_catalog, tmp_path):
    return make_catalog(folder=tmp_path).services


def _graph_nt(services, accession: str) -> set[str]:
    data = services.archive.public.graph.get_graph(f"{BASE}/studies/{accession}").decode()
    return {line for line in data.splitlines() if line.strip()}


def test_local_pagetab_with_file_lists_beside_it(services, tmp_path):
    folder = tmp_path / "S-BIAD1492"
    folder.mkdir()
    for name in ("S-BIAD1492.json", "bbc024_images.json", "bbc024_masks.json"):
        shutil.copy(DATA / name, folder / name)
    harvester = Harvester(services.archive)
    summary = harvester.run("pagetab", [str(folder / "S-BIAD1492.json")])
    assert summary.failed == [] and summary.loaded == ["S-BIAD1492"]
    archive = services.archive
    listed = len(json.loads((DATA / "bbc024_images.json").read_text())) + len(
        json.loads((DATA / "bbc024_masks.json").read_text())
    )
    assert archive.public.files.totals("S-BIAD1492")["files"] == listed
    assert archive.public.search.search('accession:"S-BIAD1492"').total == 1
    assert archive.registry.study("S-BIAD1492").source != "deposit"

    before = _graph_nt(services, "S-BIAD1492")
    again = harvester.run("pagetab", [str(folder / "S-BIAD1492.json")])
    assert again.unchanged == ["S-BIAD1492"] and again.loaded == []
    assert _graph_nt(services, "S-BIAD1492") == before  # idempotent: the identical graph

    # a changed source replaces the study whole
    doc = json.loads((folder / "S-BIAD1492.json").read_text())
    doc["attributes"] = [a for a in doc["attributes"] if a.get("name") != "Title"] + [
        {"name": "Title", "value": "A changed title"}
    ]
    (folder / "S-BIAD1492.json").write_text(json.dumps(doc))
    changed = harvester.run("pagetab", [str(folder / "S-BIAD1492.json")])
    assert changed.loaded == ["S-BIAD1492"]
    assert archive.public.search.search('title:"changed title"').total == 1
    assert archive.public.search.search("").total == 1


def test_a_missing_file_list_fails_that_record_and_stores_nothing(services, tmp_path):
    shutil.copy(DATA / "S-BIAD1492.json", tmp_path / "S-BIAD1492.json")
    summary = Harvester(services.archive).run("pagetab", [str(tmp_path / "S-BIAD1492.json"), str(tmp_path / "nope.json")])
    assert summary.loaded == []
    reasons = dict(summary.failed)
    assert "bbc024" in reasons["S-BIAD1492"] and "not found" in reasons["S-BIAD1492"]
    assert "no such file" in reasons[str(tmp_path / "nope.json")]
    assert services.archive.registry.studies() == [] and services.archive.public.graph.graphs() == []


def test_remote_biostudies_harvest_replays_the_api(services, replay_server):  # noqa: F811
    api = "/biostudies/api/v1"
    replay_server.add(f"{api}/studies/S-BIADTEST", Response(b"busy", 503, "text/plain"), DATA / "S-BIADTEST.json")
    info = json.loads((DATA / "S-BIADTEST_INFO.json").read_text())
    info["httpLink"] = f"{replay_server.url}/files/S-BIADTEST"
    replay_server.add(f"{api}/studies/S-BIADTEST/info", json.dumps(info).encode())
    for name in ("file_list_study_component_1.json", "file_list_study_component_2.json", "file_list_annotations_1.json"):
        replay_server.add(f"/files/S-BIADTEST/Files/{name}", DATA / name)
    settings = services.archive.settings
    services.archive.settings = settings.with_(biostudies_url=replay_server.url + api)
    harvester = _fast(Harvester(services.archive))

    summary = harvester.run("pagetab", ["S-BIADTEST"])
    assert summary.failed == [] and summary.loaded == ["S-BIADTEST"], summary
    assert replay_server.requests.count(f"{api}/studies/S-BIADTEST") == 2  # the 503 was retried
    assert services.archive.public.files.totals("S-BIADTEST")["files"] > 0
    provenance = services.archive.public.graph.select(
        "PREFIX prov: <http://www.w3.org/ns/prov#> PREFIX rembi: <https://w3id.org/rembi/>"
        f" SELECT ?url WHERE {{ GRAPH <{BASE}/studies/S-BIADTEST> {{ ?s prov:wasGeneratedBy ?p . ?p rembi:source_url ?url }} }}"
    )
    assert [row["url"]["value"] for row in provenance] == [f"{replay_server.url}{api}/studies/S-BIADTEST"]

    assert harvester.run("pagetab", ["S-BIADTEST"]).unchanged == ["S-BIADTEST"]
    missing = harvester.run("pagetab", ["S-BIAD999999"])
    assert "404" in missing.failed[0][1]


def test_unknown_identifiers_are_reported(services):
    summary = Harvester(services.archive).run("empiar", ["not-an-id"])
    assert summary.failed and "EMPIAR identifier" in summary.failed[0][1]


def test_a_record_no_loader_copes_with_fails_alone_and_reasons_name_the_field(services, tmp_path, monkeypatch):
    import loaders.harvest as harvest

    latin = tmp_path / "latin.json"
    latin.write_bytes('{"accno": "S-BIAD8", "attributes": [{"name": "Title", "value": "Caf\u00e9"}]}'.encode("latin-1"))
    bad_date = json.loads((DATA / "S-BIAD1492.json").read_text())
    bad_date["attributes"] = [a for a in bad_date["attributes"] if a.get("name") != "ReleaseDate"] + [
        {"name": "ReleaseDate", "value": "05/01/2024"}
    ]
    (tmp_path / "bad-date.json").write_text(json.dumps(bad_date))
    for name in ("bbc024_images.json", "bbc024_masks.json"):
        shutil.copy(DATA / name, tmp_path / name)
    real = harvest.load_records

    def fragile(kind, path, **options):
        if path.name == "broken.json":
            raise RuntimeError("a loader bug")
        return real(kind, path, **options)

    monkeypatch.setattr(harvest, "load_records", fragile)
    (tmp_path / "broken.json").write_text("{}")
    shutil.copy(DATA / "S-BIADTEST.json", tmp_path / "S-BIADTEST.json")
    items = [str(tmp_path / n) for n in ("latin.json", "broken.json", "bad-date.json")]
    summary = Harvester(services.archive, metadata_only=True).run("pagetab", items + [str(tmp_path / "S-BIADTEST.json")])
    reasons = dict(summary.failed)
    assert summary.loaded == ["S-BIADTEST"]  # the item after the faults is harvested
    assert "not UTF-8" in reasons[items[0]]
    assert "RuntimeError: a loader bug" in reasons[items[1]]
    assert "release_date" in reasons["S-BIAD1492"]  # the field, not only the message
