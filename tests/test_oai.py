"""OAI-PMH 2.0 at ``/oai``: every verb and error answered as the protocol's XSD says (metadata included, against the
oai_dc and DataCite schemas), and a real harvester (sickle) copying the whole demo catalog over HTTP, page by
page, with sets, date ranges and deleted records, never seeing an embargoed study."""

from __future__ import annotations

import base64
import json
import shutil
import threading
from pathlib import Path

import pytest
from lxml import etree
from sickle import Sickle
from sickle.oaiexceptions import BadResumptionToken, IdDoesNotExist, NoRecordsMatch
from werkzeug.serving import make_server

from tests.catalog_helpers import stage_sample
from tests.servers.seaweedfs_server import free_ports

XSD = Path(__file__).parent / "data" / "xsd"
OAI = "{http://www.openarchives.org/OAI/2.0/}"
HOST = "archive.example.org"
WITHDRAWN = "S-TEST123"
PAGE = 2


@pytest.fixture(scope="module")
def schema() -> etree.XMLSchema:
    return etree.XMLSchema(etree.parse(str(XSD / "oai-responses.xsd")))


@pytest.fixture(scope="module")
def oai(make_module_catalog):
    """The demo catalog (pages of two), a released and an embargoed deposit, one demo study withdrawn."""
    made = make_module_catalog(name="oai", demo=True, oai_page_size=PAGE)
    services = made.services
    _token, owner = made.token("jane")
    released = services.deposits.finalize(stage_sample(services.deposits, owner), owner)
    embargoed = services.deposits.finalize(stage_sample(services.deposits, owner, release_date="2999-01-01"), owner)
    services.archive.withdraw(WITHDRAWN)
    app = made.app()
    public = set(services.archive.public.search.accessions())
    return {"app": app, "client": app.test_client(), "released": released, "embargoed": embargoed, "public": public}


@pytest.fixture(scope="module")
def served(oai):
    """The app on a loopback port, as a harvester reaches it."""
    (port,) = free_ports(1)
    server = make_server("127.0.0.1", port, oai["app"], threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{port}/oai"
    server.shutdown()


def ask(oai, query: str, schema: etree.XMLSchema, method: str = "GET") -> etree._Element:
    """The answer to ``query``, checked against the OAI-PMH schema (and its metadata against theirs)."""
    client = oai["client"]
    if method == "POST":
        response = client.post("/oai", data=query, content_type="application/x-www-form-urlencoded")
    else:
        response = client.get(f"/oai?{query}")
    assert response.status_code == 200 and response.mimetype == "text/xml"
    document = etree.fromstring(response.data)
    assert schema.validate(document), (query, schema.error_log.last_error)
    return document


def error_code(document: etree._Element) -> str | None:
    found = document.find(f"{OAI}error")
    return None if found is None else found.get("code")


def oai_id(accession: str) -> str:
    return f"oai:{HOST}:{accession}"


ANSWERS = [
    ("verb=Identify", None),
    ("verb=ListMetadataFormats", None),
    (f"verb=ListMetadataFormats&identifier={oai_id('S-BIAD1492')}", None),
    ("verb=ListSets", None),
    ("verb=ListIdentifiers&metadataPrefix=oai_dc", None),
    ("verb=ListRecords&metadataPrefix=oai_dc", None),
    ("verb=ListRecords&metadataPrefix=oai_datacite", None),
    ("verb=ListRecords&metadataPrefix=oai_datacite&set=source:empiar", None),
    ("verb=ListRecords&metadataPrefix=oai_dc&set=organism", None),
    (f"verb=GetRecord&metadataPrefix=oai_datacite&identifier={oai_id('idr0038')}", None),
    (f"verb=GetRecord&metadataPrefix=oai_dc&identifier={oai_id('S-BIAD1492')}", None),
    (f"verb=GetRecord&metadataPrefix=oai_dc&identifier={oai_id(WITHDRAWN)}", None),
    ("", "badVerb"),
    ("verb=Bogus", "badVerb"),
    ("verb=Identify&verb=Identify", "badVerb"),
    ("verb=Identify&set=x", "badArgument"),
    ("verb=ListRecords", "badArgument"),
    ("verb=ListRecords&metadataPrefix=oai_dc&metadataPrefix=oai_dc", "badArgument"),
    ("verb=ListRecords&metadataPrefix=oai_dc&from=2020-01-01&until=2020-01-02T00:00:00Z", "badArgument"),
    ("verb=ListRecords&metadataPrefix=oai_dc&from=2021-01-01&until=2020-01-01", "badArgument"),
    ("verb=ListRecords&metadataPrefix=oai_dc&from=yesterday", "badArgument"),
    ("verb=ListRecords&metadataPrefix=oai_dc&from=2020-1-1", "badArgument"),
    ("verb=ListRecords&metadataPrefix=oai_dc&resumptionToken=x", "badArgument"),
    ("verb=GetRecord&identifier=oai:archive.example.org:idr0038", "badArgument"),
    ("verb=ListRecords&metadataPrefix=marc21", "cannotDisseminateFormat"),
    (f"verb=GetRecord&metadataPrefix=mods&identifier={oai_id('idr0038')}", "cannotDisseminateFormat"),
    ("verb=GetRecord&metadataPrefix=oai_dc&identifier=oai:archive.example.org:S-NOPE", "idDoesNotExist"),
    ("verb=GetRecord&metadataPrefix=oai_dc&identifier=https://archive.example.org/studies/idr0038", "idDoesNotExist"),
    ("verb=ListMetadataFormats&identifier=oai:elsewhere.org:idr0038", "idDoesNotExist"),
    ("verb=ListRecords&metadataPrefix=oai_dc&set=organism:no-such-organism", "noRecordsMatch"),
    ("verb=ListIdentifiers&metadataPrefix=oai_dc&from=2999-01-01", "noRecordsMatch"),
    ("verb=ListRecords&resumptionToken=not-ours", "badResumptionToken"),
    ("verb=ListSets&resumptionToken=eyJ2IjoiTGlzdFNldHMiLCJvIjotMX0", "badResumptionToken"),  # {"v":"ListSets","o":-1}
]


@pytest.mark.parametrize("method", ["GET", "POST"])
@pytest.mark.parametrize(("query", "code"), ANSWERS, ids=[q or "(none)" for q, _ in ANSWERS])
def test_every_answer_is_valid_oai_pmh_with_the_protocols_error_codes(oai, schema, query, code, method):
    document = ask(oai, query, schema, method)
    assert error_code(document) == code, etree.tostring(document)[:800]
    request = document.find(f"{OAI}request")
    assert request.text == "https://archive.example.org/oai"
    if code in ("badVerb", "badArgument"):  # the protocol: echo no arguments of a request that was not understood
        assert dict(request.attrib) == {}


def test_identify_declares_what_the_lists_do(oai, schema):
    identify = ask(oai, "verb=Identify", schema).find(f"{OAI}Identify")
    assert identify.findtext(f"{OAI}granularity") == "YYYY-MM-DDThh:mm:ssZ"
    assert identify.findtext(f"{OAI}deletedRecord") == "persistent"
    earliest = identify.findtext(f"{OAI}earliestDatestamp")
    stamps = [h.findtext(f"{OAI}datestamp") for h in harvest_headers(oai, schema, "verb=ListIdentifiers&metadataPrefix=oai_dc")]
    assert earliest == min(stamps)


def harvest_headers(oai, schema, query: str) -> list[etree._Element]:
    """Every header of a list, following resumption tokens (each page at most PAGE long, the last token empty)."""
    headers: list[etree._Element] = []
    while True:
        document = ask(oai, query, schema)
        listed = document.find(f"{OAI}ListIdentifiers")
        page = listed.findall(f"{OAI}header")
        assert len(page) <= PAGE
        headers += page
        token = listed.find(f"{OAI}resumptionToken")
        if token is None or not token.text:
            return headers
        assert int(token.get("cursor")) == len(headers) - len(page)
        query = f"verb=ListIdentifiers&resumptionToken={token.text}"


def test_a_harvester_copies_every_released_study_and_no_embargoed_one(oai, served):
    sickle = Sickle(served, max_retries=0)
    for prefix in ("oai_dc", "oai_datacite"):
        records = list(sickle.ListRecords(metadataPrefix=prefix, ignore_deleted=False))
        live = {r.header.identifier for r in records if not r.header.deleted}
        deleted = {r.header.identifier for r in records if r.header.deleted}
        assert live == {oai_id(a) for a in oai["public"]} and oai["released"] in oai["public"]
        assert deleted == {oai_id(WITHDRAWN)}
        assert oai_id(oai["embargoed"]) not in live | deleted
        assert len(records) > 2 * PAGE  # it took several pages
    dublin_core = {r.header.identifier: r.metadata for r in sickle.ListRecords(metadataPrefix="oai_dc", ignore_deleted=True)}
    assert dublin_core[oai_id("idr0038")]["identifier"][0] == "https://archive.example.org/studies/idr0038"
    assert "Mus musculus" in dublin_core[oai_id("idr0038")]["subject"]
    with pytest.raises(IdDoesNotExist):
        sickle.GetRecord(identifier=oai_id(oai["embargoed"]), metadataPrefix="oai_dc")
    with pytest.raises(IdDoesNotExist):
        sickle.ListMetadataFormats(identifier=oai_id(oai["embargoed"]))
    assert {f.metadataPrefix for f in sickle.ListMetadataFormats()} == {"oai_dc", "oai_datacite"}
    assert sickle.Identify().repositoryName == "BioImage Archive catalog"


def test_sets_split_the_catalog_by_source_organism_and_imaging_method(oai, served):
    sickle = Sickle(served, max_retries=0)
    sets = {s.setSpec: s.setName for s in sickle.ListSets()}
    assert {"source", "organism", "method", "source:empiar", "organism:mus-musculus"} <= set(sets)
    assert sets["organism:mus-musculus"] == "Mus musculus"
    empiar = {h.identifier for h in sickle.ListIdentifiers(metadataPrefix="oai_dc", set="source:empiar")}
    assert empiar == {oai_id("EMPIAR-10934"), oai_id("EMPIAR-STARFILETEST")}
    for spec in sets:  # every set listed holds records, and every record's sets are listed
        headers = list(sickle.ListIdentifiers(metadataPrefix="oai_dc", set=spec, ignore_deleted=False))
        assert headers and all(any(s == spec or s.startswith(spec + ":") for s in h.setSpecs) for h in headers)
    with pytest.raises(NoRecordsMatch):
        list(sickle.ListIdentifiers(metadataPrefix="oai_dc", set="organism:unicorn"))


def test_from_and_until_select_by_datestamp_at_either_granularity(oai, schema):
    headers = harvest_headers(oai, schema, "verb=ListIdentifiers&metadataPrefix=oai_dc")
    stamps = sorted({h.findtext(f"{OAI}datestamp") for h in headers})
    last = stamps[-1]
    newest = harvest_headers(oai, schema, f"verb=ListIdentifiers&metadataPrefix=oai_dc&from={last}")
    assert {h.findtext(f"{OAI}datestamp") for h in newest} == {last}
    older = harvest_headers(oai, schema, f"verb=ListIdentifiers&metadataPrefix=oai_dc&until={stamps[0]}")
    assert {h.findtext(f"{OAI}datestamp") for h in older} == {stamps[0]}
    day = last[:10]
    that_day = harvest_headers(oai, schema, f"verb=ListIdentifiers&metadataPrefix=oai_dc&from={day}&until={day}")
    assert len(that_day) == sum(h.findtext(f"{OAI}datestamp").startswith(day) for h in headers)


def test_a_resumption_token_is_checked_and_keeps_its_request(oai, schema, served):
    first = ask(oai, "verb=ListRecords&metadataPrefix=oai_datacite&set=method", schema)
    token = first.find(f"{OAI}ListRecords/{OAI}resumptionToken").text
    following = ask(oai, f"verb=ListRecords&resumptionToken={token}", schema)
    assert following.find(f"{OAI}ListRecords/{OAI}record/{OAI}metadata") is not None
    for header in following.iter(f"{OAI}header"):  # the token kept the set
        assert any(spec.text.startswith("method:") for spec in header.iter(f"{OAI}setSpec"))
    state = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    for forged in ({**state, "v": "ListIdentifiers"}, {**state, "a": "x"}, {**state, "w": {"from": "never"}}):
        text = base64.urlsafe_b64encode(json.dumps(forged).encode()).decode()
        assert error_code(ask(oai, f"verb=ListRecords&resumptionToken={text}", schema)) == "badResumptionToken"
    with pytest.raises(BadResumptionToken):
        list(Sickle(served, max_retries=0).ListIdentifiers(resumptionToken="x" * 40))


def test_a_withdrawn_study_is_a_deleted_record_without_metadata(oai, schema):
    record = ask(oai, f"verb=GetRecord&metadataPrefix=oai_datacite&identifier={oai_id(WITHDRAWN)}", schema)
    header = record.find(f"{OAI}GetRecord/{OAI}record/{OAI}header")
    assert header.get("status") == "deleted" and header.findall(f"{OAI}setSpec")
    assert record.find(f"{OAI}GetRecord/{OAI}record/{OAI}metadata") is None


def test_a_released_study_embargoed_again_by_a_new_version_is_a_deleted_record(make_catalog, tmp_path, schema):
    """A source that moves a released study's release date into the future: harvesters that copied it are told it
    went (a deleted record), and it is live again once released."""
    from loaders.harvest import Harvester

    made = make_catalog(folder=tmp_path / "catalog")
    harvester = Harvester(made.services.archive)
    source = Path(__file__).parent / "data" / "harvest" / "biostudies" / "S-BIAD1492.json"
    assert harvester.run("pagetab", [str(source)]).loaded
    later = json.loads(source.read_text())
    for attribute in later["attributes"]:
        if attribute["name"] == "ReleaseDate":
            attribute["value"] = "2999-01-01"
    shutil.copytree(source.parent, tmp_path / "source")  # with its file lists
    moved = tmp_path / "source" / "S-BIAD1492.json"
    moved.write_text(json.dumps(later))
    assert harvester.run("pagetab", [str(moved)]).loaded
    state = {"client": made.app().test_client()}
    query = f"verb=GetRecord&metadataPrefix=oai_dc&identifier={oai_id('S-BIAD1492')}"
    header = ask(state, query, schema).find(f"{OAI}GetRecord/{OAI}record/{OAI}header")
    assert header is not None and header.get("status") == "deleted"
    assert made.services.archive.release_due(today="2999-01-01") == ["S-BIAD1492"]
    header = ask(state, query, schema).find(f"{OAI}GetRecord/{OAI}record/{OAI}header")
    assert header is not None and header.get("status") is None
