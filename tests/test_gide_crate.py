"""GIDE cross-archive search crates: the profile's MUSTs, harvesting the BIA/IDR/SSBD examples over HTTP, serving every
public study as a crate (signposted from its record, read by ro-crate-py), embargo, and the round trip."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import requests
from requests.adapters import BaseAdapter, HTTPAdapter
from rocrate.rocrate import ROCrate
from rocrate_validator import models as validator_models
from rocrate_validator import services as validator
from rocrate_validator.utils.http import HttpRequester

from catalog.gide_crate import GIDE_PROFILE
from catalog.gide_profile import MUSTS, check
from catalog.study_summary import study_document
from loaders.fetch import Fetcher
from loaders.harvest import Harvester
from loaders.rocrate import load_rocrate
from tests.catalog_helpers import BASE, stage_sample
from tests.servers.replay_server import ReplayServer

GIDE = Path(__file__).parent / "data" / "rocrate" / "gide"
PROFILE = (GIDE / "profile.md").read_text()
IDR_STUDY = Path(__file__).parent / "data" / "idr" / "idr0038-study.txt"
#: the RO-Crate 1.2 JSON-LD context (CC0), which rocrate-validator resolves over HTTP: answered from this copy
RO_CRATE_CONTEXT = Path(__file__).parent / "data" / "rocrate" / "ro-crate-1.2-context.jsonld"

#: each example crate → the accession it is stored under and the facts read from it
EXAMPLES = {
    "idr0001": (
        "idr0001",
        "A genomic Multiprocess survey of machineries",
        ["Rafael Carazo Salas"],
        ["Schizosaccharomyces pombe"],
        ["spinning disk confocal microscopy"],
        "109728",
    ),
    "idr0005": (
        "idr0005",
        "A genome-wide screen identifies conserved protein hubs",
        ["W James Nelson"],
        ["Drosophila melanogaster"],
        ["fluorescence microscopy"],
        "45792",
    ),
    "S-BIAD2482": (
        "S-BIAD2482",
        "All-optical visualization of specific molecules",
        ["Allison Cairns", "Ons M'Saad", "Joerg Bewersdorf", "Aaron Kuan"],
        [],
        ["fluorescence microscopy"],
        "245",
    ),
    "ssbd-repos-000490": (
        "ssbd-repos-000490",
        "Visualizing developmental dynamics of the adult-type fat body",
        ["Taiichi Tsuyama", "Tadashi Uemura"],
        ["Drosophila melanogaster"],
        ["time lapse microscopy"],
        "113",
    ),
    "421-Takenouchi-AgedYoungOocyte": (
        "ssbd-421-Takenouchi-AgedYoungOocyte",
        "Live chromosome identifying and tracking in mouse oocytes",
        ["Osamu Takenouchi", "Tomoya S. Kitajima", "Yogo Sakakibara"],
        ["Mus musculus"],
        ["confocal microscopy", "time lapse microscopy"],
        "468",
    ),
    "EXAMPLE-001": (
        "EXAMPLE-001",
        "High-resolution imaging of mouse brain tissue",
        ["Jane Researcher", "John Smith"],
        ["Mus musculus"],
        ["confocal microscopy"],
        "500",
    ),
}


def _crate_file(name: str) -> Path:
    return GIDE / f"{name}-ro-crate-metadata.json"


def _facts(archive, accession: str) -> tuple:
    """Title, authors, organisms and imaging methods as the search index reads them from the stored graph."""
    doc = study_document(archive.public.reads, f"{BASE}/studies/{accession}", accession)
    return doc.title, doc.authors, doc.organisms, doc.imaging_methods


def _source_count(archive, accession: str) -> str | None:
    rows = archive.public.reads.select(
        "PREFIX schema: <http://schema.org/> PREFIX rembi: <https://w3id.org/rembi/> SELECT ?v WHERE { GRAPH ?g {"
        f' <{BASE}/studies/{accession}> rembi:attributes ?a . ?a schema:name "file count (at source)" ; schema:value ?v }} }}'
    )
    return rows[0]["v"]["value"] if rows else None


# ---------------------------------------------------------------------- the profile


def test_every_must_is_quoted_from_the_profile_and_each_is_checked():
    """The checks quote the profile; every MUST sentence of the profile is covered by one of them."""
    for words, _rule in MUSTS:
        assert words in PROFILE, words
    must_lines = [line for line in PROFILE.splitlines() if re.search(r"\bMUST\b|_MUST_|REQUIRED", line)]
    assert len(must_lines) >= 20  # the profile's MUST and REQUIRED lines, which the checks below exercise
    broken = {
        "descriptor": lambda d: d["@graph"].pop(0),
        "absolute root": lambda d: _set_root_id(d, "studies/X"),
        "context term": lambda d: d["@context"][1].update(measurementMethod={"@id": "http://schema.org/measurementTechnique"}),
        "taxon": lambda d: _root(d).update(about=[a for a in _root(d)["about"] if "NCBITaxon" not in a["@id"]]),
        "imaging term": lambda d: _root(d).update(
            measurementMethod=[m for m in _root(d)["measurementMethod"] if "FBbi" not in m["@id"]]
        ),
        "person": lambda d: _root(d).update(author=[]),
        "publisher": lambda d: _root(d).update(publisher=[_root(d)["publisher"], {"@id": "https://ror.org/00000001"}]),
        "date": lambda d: _root(d).update(datePublished="15 June 2024"),
        "licence": lambda d: _root(d).pop("license"),
        "description": lambda d: _root(d).pop("description"),
        "unit text": lambda d: [n.update(unitText="files") for n in d["@graph"] if n["@id"] == "#file-count"],
    }
    good = json.loads(_crate_file("EXAMPLE-001").read_text())
    assert check(good) == []
    for name, edit in broken.items():
        doc = json.loads(json.dumps(good))
        edit(doc)
        assert check(doc), f"{name}: a crate missing it passes"


def _root(doc):
    return next(n for n in doc["@graph"] if n.get("@type") == "Dataset")


def _set_root_id(doc, new_id):
    old = _root(doc)["@id"]
    _root(doc)["@id"] = new_id
    doc["@graph"][0]["about"] = {"@id": new_id}
    assert old != new_id


def test_examples_against_the_profile_name_each_gap():
    assert check(json.loads(_crate_file("ssbd-repos-000490").read_text())) == []
    gaps = check(json.loads(_crate_file("S-BIAD2482").read_text()))
    root = "https://www.ebi.ac.uk/biostudies/bioimages/studies/S-BIAD2482"
    assert f"{root} about: no Taxon" in gaps and f"{root} measurementMethod: no DefinedTerm" in gaps
    assert "#480bb0bc-db43-46e5-88ae-071380b9d63c @type: not QuantitativeValue" in gaps


# ---------------------------------------------------------------------- harvesting the examples


@pytest.fixture(scope="module")
def harvested(make_module_catalog):
    """A catalog with every example crate harvested from a local HTTP server replaying the files, an IDR study
    harvested by its own loader, and a released and an embargoed deposit."""
    made = make_module_catalog(name="gide")
    server = ReplayServer().start()
    for name in EXAMPLES:
        server.add(f"/crates/{name}-ro-crate-metadata.json", _crate_file(name), content_type="application/ld+json")
    harvester = Harvester(made.services.archive, Fetcher(interval=0, attempts=1, backoff=0.01))
    urls = [f"{server.url}/crates/{name}-ro-crate-metadata.json" for name in EXAMPLES]
    summary = harvester.run("rocrate", urls)
    server.stop()
    assert summary.failed == [] and len(summary.loaded) == len(EXAMPLES), summary.failed
    assert harvester.run("idr", [str(IDR_STUDY)]).loaded
    registry = made.services.archive.registry
    token = registry.create_token("jane")
    owner = registry.owner_of_token(token)
    deposits = made.services.deposits
    embargoed = deposits.finalize(stage_sample(deposits, owner, release_date="2999-01-01"), owner)
    released = deposits.finalize(stage_sample(deposits, owner), owner)
    other = registry.create_token("mallory")
    app = made.app()
    yield {
        "catalog": made,
        "summary": summary,
        "client": app.test_client(),
        "token": token,
        "other": other,
        "embargoed": embargoed,
        "released": released,
    }


@pytest.mark.parametrize("name", list(EXAMPLES))
def test_each_example_crate_comes_in_with_its_facts(harvested, name):
    accession, title, authors, organisms, methods, files = EXAMPLES[name]
    archive = harvested["catalog"].services.archive
    got_title, got_authors, got_organisms, got_methods = _facts(archive, accession)
    assert got_title.startswith(title)
    assert got_authors == authors
    assert got_organisms == organisms and got_methods == methods
    assert _source_count(archive, accession) == files


def test_deviations_are_warnings_naming_entity_and_property(harvested):
    warnings = [w for item, w in harvested["summary"].warnings if item == "S-BIAD2482"]
    root = "https://www.ebi.ac.uk/biostudies/bioimages/studies/S-BIAD2482"
    assert any(f"{root} about: no Taxon" in w for w in warnings), warnings
    assert any("#8f7f1928-5f64-4dce-bee1-7c14cc9153be measurementTechnique: empty" in w for w in warnings), warnings
    assert any("#1037e7dd-b10a-47a1-885c-1f3b2998ff1c @type: not QuantitativeValue" in w for w in warnings), warnings
    ssbd = [w for item, w in harvested["summary"].warnings if item == "ssbd-421-Takenouchi-AgedYoungOocyte"]
    assert any("identifier: '421-Takenouchi-AgedYoungOocyte' is not an accession here" in w for w in ssbd), ssbd
    assert not [w for item, w in harvested["summary"].warnings if item == "ssbd-repos-000490"]  # a conforming crate


# ---------------------------------------------------------------------- serving crates


class _ContextOnly(BaseAdapter):
    """Answers the validator's requests: the RO-Crate 1.2 context from the local copy, anything else 404 (offline)."""

    def send(self, request, **kwargs):
        response = requests.Response()
        response.url, response.request = request.url, request
        if request.url.rstrip("/") == "https://w3id.org/ro/crate/1.2/context":
            response.status_code, response._content = 200, RO_CRATE_CONTEXT.read_bytes()
            response.headers["Content-Type"] = "application/ld+json"
        else:
            response.status_code, response._content = 404, b""
        return response

    def close(self):
        pass


@pytest.fixture
def ro_crate_validator():
    """``validate(folder)``: rocrate-validator's issues of the crate in ``folder`` against RO-Crate 1.2 (REQUIRED)."""
    session = None

    def validate(folder: Path) -> list[str]:
        nonlocal session
        settings = validator.ValidationSettings(
            rocrate_uri=str(folder),
            profile_identifier="ro-crate-1.2",
            requirement_severity=validator_models.Severity.REQUIRED,
            no_cache=True,
        )
        session = HttpRequester().session
        for scheme in ("http://", "https://"):
            session.mount(scheme, _ContextOnly())
        result = validator.validate(settings)
        return [f"{i.check.identifier if i.check else ''}: {i.message}" for i in result.get_issues()]

    yield validate
    if session is not None:
        for scheme in ("http://", "https://"):
            session.mount(scheme, HTTPAdapter())


@pytest.mark.parametrize("accession", ["idr0038", "idr0001", "ssbd-repos-000490", "EXAMPLE-001"])
def test_a_public_study_is_served_as_a_crate_meeting_every_must(harvested, accession, ro_crate_validator, tmp_path):
    client = harvested["client"]
    response = client.get(f"/studies/{accession}/ro-crate-metadata.json")
    assert response.status_code == 200 and response.mimetype == "application/ld+json"
    crate = response.get_json()
    assert check(crate) == []
    root = _root(crate)
    assert root["@id"] == f"{BASE}/studies/{accession}" and root["conformsTo"] == {"@id": GIDE_PROFILE}
    assert crate["@graph"][0]["@id"] == "ro-crate-metadata.json"
    assert f'<{BASE}/studies/{accession}>; rel="describes"' in response.headers["Link"]
    # ro-crate-py reads it: the root, its publisher (this catalog) and its authors
    read = ROCrate(json.loads(json.dumps(crate)))  # (it edits what it is given)
    assert read.name == root["name"] and read.root_dataset["publisher"].id == f"{BASE}/"
    assert [a["name"] for a in read.root_dataset["author"]] == [
        next(n for n in crate["@graph"] if n["@id"] == a["@id"])["name"] for a in root["author"]
    ]
    # rocrate-validator: every REQUIRED check of RO-Crate 1.2 passes
    (tmp_path / "ro-crate-metadata.json").write_bytes(response.get_data())
    assert ro_crate_validator(tmp_path) == []


def test_a_deposit_with_files_gives_their_count_and_bytes(harvested):
    accession = harvested["released"]
    crate = harvested["client"].get(f"/studies/{accession}/ro-crate-metadata.json").get_json()
    assert check(crate) == [] and _root(crate)["conformsTo"] == {"@id": GIDE_PROFILE}
    totals = harvested["catalog"].services.archive.public.files.totals(accession)
    sizes = {n["unitText"]: n["value"] for n in crate["@graph"] if n.get("@type") == "QuantitativeValue"}
    assert totals["files"] > 0 and sizes == {"file count": totals["files"], "bytes": totals["bytes"]}


def test_the_record_signposts_its_crate(harvested):
    client = harvested["client"]
    crate = f"{BASE}/studies/idr0038/ro-crate-metadata.json"
    link = client.get("/studies/idr0038", headers={"Accept": "text/html"}).headers["Link"]
    assert f'<{crate}>; rel="describedby"; type="application/ld+json"; profile="https://w3id.org/ro/crate"' in link
    page = client.get("/studies/idr0038", headers={"Accept": "text/html"}).get_data(as_text=True)
    assert f'<link rel="describedby" href="{crate}"' in page


def test_a_study_without_an_organism_gets_a_crate_that_does_not_claim_the_profile(harvested):
    crate = harvested["client"].get("/studies/S-BIAD2482/ro-crate-metadata.json").get_json()
    assert check(crate) == [f"{BASE}/studies/S-BIAD2482 about: no Taxon"]
    assert "conformsTo" not in _root(crate)


def test_embargoed_and_unknown_crates_are_404_except_for_the_owner(harvested):
    client, accession = harvested["client"], harvested["embargoed"]
    url = f"/studies/{accession}/ro-crate-metadata.json"
    for headers in ({}, {"Authorization": f"Bearer {harvested['other']}"}):
        response = client.get(url, headers=headers)
        assert response.status_code == 404 and response.get_json()["code"] == "not_found"
    own = client.get(url, headers={"Authorization": f"Bearer {harvested['token']}"})
    assert own.status_code == 200 and own.headers["Cache-Control"] == "private, no-store"
    assert client.get("/studies/S-NOSUCH1/ro-crate-metadata.json").status_code == 404


@pytest.mark.parametrize("name", ["idr0001", "421-Takenouchi-AgedYoungOocyte", "S-BIAD2482"])
def test_round_trip_a_harvested_study_served_as_a_crate_reads_back_the_same(harvested, name, tmp_path):
    accession, *_ = EXAMPLES[name]
    crate = harvested["client"].get(f"/studies/{accession}/ro-crate-metadata.json").get_json()
    path = tmp_path / f"{accession}-ro-crate-metadata.json"
    path.write_text(json.dumps(crate))
    again = load_rocrate(path).record
    first = load_rocrate(_crate_file(name)).record
    assert again["accession"] == accession and again["title"] == first["title"]
    assert [a["name"] for a in again["authors"]] == [a["name"] for a in first["authors"]]
    assert [a.get("orcid") for a in again["authors"]] == [a.get("orcid") for a in first["authors"]]

    def organisms(record):
        return sorted({o["id"] for b in record.get("biosamples", []) for o in b.get("organisms", [])})

    def methods(record):
        return sorted({m["id"] for a in record["image_acquisitions"] for m in a["imaging_methods"]})

    def attribute(record, name):
        return next((a["value"] for a in record.get("attributes", []) if a["name"] == name), None)

    assert organisms(again) == organisms(first) and methods(again) == methods(first)
    assert again["license"] == first["license"] and again["release_date"] == first["release_date"]
    assert attribute(again, "file count (at source)") == attribute(first, "file count (at source)")
    assert attribute(again, "bytes (at source)") == attribute(first, "bytes (at source)")
    assert [p.get("doi") for p in again.get("publications", [])] == [p.get("doi") for p in first.get("publications", [])]
