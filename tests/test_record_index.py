"""Rendered study records (catalog/record_index.py): stored whenever a study changes, served as stored, and never
served when they were rendered under another base URL, catalog name or rendering code."""

from __future__ import annotations

import datetime
import json
import shutil
import time
from pathlib import Path

import pytest
from pyld import jsonld
from rdflib import Graph
from rdflib.compare import isomorphic

from api.app import create_app
from api.services import open_services
from catalog.study_record import build_record
from loaders.harvest import Harvester
from tests.catalog_helpers import BASE, make_settings, stage_sample

TESTS = Path(__file__).parent
PAGETAB = TESTS / "data" / "harvest" / "biostudies"


@pytest.fixture
def catalog(make_catalog, tmp_path):
    made = make_catalog(folder=tmp_path)
    settings, services = made.settings, made.services
    harvester = Harvester(services.archive)
    assert harvester.run("pagetab", [str(PAGETAB / "S-BIAD1492.json")]).loaded
    assert harvester.run("empiar", [str(TESTS / "data" / "empiar" / "10934.xml")]).loaded

    def app(app_settings=settings):
        return made.app(app_settings).test_client()

    state = {"services": services, "settings": settings, "client": app, "harvester": harvester, "tmp": tmp_path}
    yield state
    made.services = state["services"]  # a test may have reopened them; the factory closes what is open


def served_graph(response) -> Graph:
    nquads = jsonld.to_rdf(json.loads(response.data), {"format": "application/n-quads"})
    return Graph().parse(data=nquads, format="nquads")


def live_graph(services, settings, accession: str) -> Graph:
    record = build_record(services.archive.public.graph, BASE, f"{BASE}/studies/{accession}", catalog_name=settings.catalog_name)
    graph = Graph()
    for triple in record.graph:
        graph.add(triple)
    return graph


def test_each_released_study_is_served_as_stored_and_as_the_store_says(catalog):
    services, settings, client = catalog["services"], catalog["settings"], catalog["client"]()
    archive = services.archive
    for accession in ("S-BIAD1492", "EMPIAR-10934"):
        stored = archive.public.records.get(f"{BASE}/studies/{accession}", archive.record_fingerprint)
        assert stored is not None
        response = client.get(f"/studies/{accession}.jsonld", headers={"Cache-Control": "no-cache"})
        assert response.status_code == 200 and response.data == stored.body
        assert isomorphic(served_graph(response), live_graph(services, settings, accession))
        for suffix, fmt in (("ttl", "turtle"), ("nt", "nt"), ("rdf", "xml")):
            served = Graph().parse(data=client.get(f"/studies/{accession}.{suffix}").get_data(as_text=True), format=fmt)
            assert isomorphic(served, live_graph(services, settings, accession)), suffix


def test_a_stored_record_keeps_its_etag_across_other_studies_commits(catalog):
    client = catalog["client"]()
    first = client.get("/studies/EMPIAR-10934.jsonld")
    assert catalog["harvester"].run("idr", [str(TESTS / "data" / "idr" / "idr0038-study.txt")]).loaded
    again = client.get("/studies/EMPIAR-10934.jsonld")
    assert first.headers["ETag"] == again.headers["ETag"]
    assert client.get("/studies/EMPIAR-10934.jsonld", headers={"If-None-Match": first.headers["ETag"]}).status_code == 304


def test_a_new_version_of_a_study_is_rendered_again(catalog):
    client = catalog["client"]()
    changed = catalog["tmp"] / "pagetab"
    shutil.copytree(PAGETAB, changed)
    record = changed / "S-BIAD1492.json"
    data = json.loads(record.read_text())
    for attribute in data["attributes"]:
        if attribute["name"] == "Title":
            attribute["value"] = "Synthetic HL-60 nuclei, second version"
    record.write_text(json.dumps(data))
    before = client.get("/studies/S-BIAD1492.jsonld")
    assert before.get_json()["version"] == 1
    assert catalog["harvester"].run("pagetab", [str(record)]).loaded
    after = client.get("/studies/S-BIAD1492.jsonld", headers={"If-None-Match": before.headers["ETag"]})
    assert after.status_code == 200 and after.get_json()["name"] == "Synthetic HL-60 nuclei, second version"
    assert after.get_json()["version"] == 2
    assert after.get_json()["dateModified"]["@value"] >= before.get_json()["dateModified"]["@value"]
    assert catalog["harvester"].run("pagetab", [str(record)]).unchanged  # the same record again is no new version
    assert client.get("/studies/S-BIAD1492.jsonld").get_json()["version"] == 2
    assert b"second version" in client.get("/studies/S-BIAD1492", headers={"Accept": "text/html"}).data


def test_release_stores_and_delete_drops_a_record(catalog):
    services, client = catalog["services"], catalog["client"]()
    archive = services.archive
    owner = archive.registry.owner_of_token(archive.registry.create_token("jane"))
    accession = services.deposits.finalize(stage_sample(services.deposits, owner, release_date="2999-01-01"), owner)
    iri = f"{BASE}/studies/{accession}"
    assert archive.public.records.get(iri, archive.record_fingerprint) is None
    assert client.get(f"/studies/{accession}.jsonld").status_code == 404
    assert archive.release_due(today="2999-01-01") == [accession]
    assert archive.public.records.get(iri, archive.record_fingerprint) is not None
    released = client.get(f"/studies/{accession}.jsonld")
    assert released.status_code == 200
    # deposited today, released later: it last changed when it was released; this archive publishes it
    assert released.get_json()["dateModified"] == {"@value": "2999-01-01", "@type": "xsd:date"}
    assert released.get_json()["version"] == 1
    assert released.get_json()["publisher"] == {
        "@id": "rembi:BioImageArchive",
        "@type": "Organization",
        "name": "BioImage Archive",
    }
    assert "sameAs" not in released.get_json()  # deposited here: there is no other record of it
    archive.delete_study(accession)
    assert archive.public.records.get(iri, archive.record_fingerprint) is None
    assert client.get(f"/studies/{accession}.jsonld").status_code == 404


def test_records_say_where_they_came_from_when_they_changed_and_who_funded_them(catalog):
    """Bioschemas Dataset's recommended version, dateModified, publisher, funder and sameAs, from the graph."""
    client, harvester = catalog["client"](), catalog["harvester"]
    empiar = client.get("/studies/EMPIAR-10934.jsonld").get_json()
    assert empiar["publisher"]["name"] == "Electron Microscopy Public Image Archive (EMPIAR)"
    assert {"@id": "https://identifiers.org/empiar:EMPIAR-10934"} in _as_list(empiar["sameAs"])
    assert empiar["version"] == 1 and empiar["dateModified"]["@value"] >= empiar["datePublished"]["@value"]
    assert harvester.run("pagetab", [str(PAGETAB / "S-BIADTEST.json")]).loaded
    funded = client.get("/studies/S-BIADTEST.jsonld").get_json()
    funders = [f["name"] for f in _as_list(funded["funder"])]
    grants = _as_list(funded["funding"])
    assert sorted(funders) == ["Test funding body1", "Test funding body2"]
    assert all("MonetaryGrant" in grant["@type"] for grant in grants)
    assert sorted(grant.get("identifier", "") for grant in grants) == ["", "TESTFUNDS1", "TESTFUNDS2"]
    assert {"@id": "https://identifiers.org/biostudies:S-BIADTEST"} in _as_list(funded["sameAs"])


def _as_list(value) -> list:
    return value if isinstance(value, list) else [value]


def test_records_rendered_under_another_catalog_name_are_not_served_but_rendered_again(catalog):
    services, settings = catalog["services"], catalog["settings"]
    renamed = make_settings(catalog["tmp"], catalog_name="Renamed Image Archive")
    client = catalog["client"](renamed)  # an app configured differently from the archive that rendered the records
    served = json.dumps(client.get("/studies/EMPIAR-10934.jsonld").get_json())
    assert "Renamed Image Archive" in served and settings.catalog_name not in served
    services.close()
    with open_services(renamed) as reopened:  # the writer, restarted under the new name
        archive = reopened.archive
        assert len(archive.public.records.stale(archive.record_fingerprint)) == 2
        app = create_app(renamed, services=reopened)  # renders them again in the background
        deadline = time.monotonic() + 30
        while archive.public.records.stale(archive.record_fingerprint) and time.monotonic() < deadline:
            time.sleep(0.05)
        app.extensions["bia.sparql"].close()
        assert archive.public.records.stale(archive.record_fingerprint) == []
        stored = archive.public.records.get(f"{BASE}/studies/EMPIAR-10934", archive.record_fingerprint)
        assert b"Renamed Image Archive" in stored.body
    catalog["services"] = open_services(settings)  # closed again by the fixture


def test_reindex_renders_lost_records_and_drops_orphans(catalog):
    archive = catalog["services"].archive
    records, fingerprint = archive.public.records, archive.record_fingerprint
    records.delete(f"{BASE}/studies/S-BIAD1492")
    records.put(f"{BASE}/studies/S-GONE1", b"{}", fingerprint)
    assert archive.reindex()["public"] == 2
    assert records.get(f"{BASE}/studies/S-BIAD1492", fingerprint) is not None
    assert records.iris() == [f"{BASE}/studies/EMPIAR-10934", f"{BASE}/studies/S-BIAD1492"]


def test_a_rendering_fault_never_undoes_a_commit(catalog, monkeypatch):
    from catalog import study_record
    from catalog.registry import RELEASED

    def broken(self):
        raise RuntimeError("a renderer bug")

    monkeypatch.setattr(study_record.Record, "body", broken)
    assert catalog["harvester"].run("idr", [str(TESTS / "data" / "idr" / "idr0038-study.txt")]).loaded
    archive = catalog["services"].archive
    assert archive.registry.study("idr0038").state == RELEASED
    assert archive.public.records.get(f"{BASE}/studies/idr0038", archive.record_fingerprint) is None
    monkeypatch.undo()
    client = catalog["client"]()
    assert client.get("/studies/idr0038.jsonld").get_json()["identifier"]  # built per request meanwhile


def test_last_modified_moves_only_when_the_record_changes(catalog):
    archive, client = catalog["services"].archive, catalog["client"]()
    iri = f"{BASE}/studies/EMPIAR-10934"
    first = client.get("/studies/EMPIAR-10934.jsonld")
    stamp = first.headers["Last-Modified"]
    assert client.get("/studies/EMPIAR-10934.jsonld", headers={"If-Modified-Since": stamp}).status_code == 304
    assert (
        client.get("/studies/EMPIAR-10934.jsonld", headers={"If-Modified-Since": "Mon, 01 Jan 2001 00:00:00 GMT"}).status_code
        == 200
    )
    changed = archive.public.records.get(iri, archive.record_fingerprint).changed
    archive.reindex()  # renders every record again: the same content keeps its time
    assert archive.public.records.get(iri, archive.record_fingerprint).changed == changed
    assert client.get("/studies/EMPIAR-10934.jsonld").headers["Last-Modified"] == stamp
    archive.public.records.put(iri, first.data.replace(b'"name":"', b'"name":"Renamed: '), archive.record_fingerprint)
    assert archive.public.records.get(iri, archive.record_fingerprint).changed > changed
    sitemap = client.get("/sitemap.xml").get_data(as_text=True)
    day = datetime.datetime.fromtimestamp(changed, datetime.timezone.utc).date().isoformat()
    assert f"<loc>{iri}</loc><lastmod>{day}</lastmod>" in sitemap


# ---------------------------------------------------------------------- the schema.org Dataset view of a study

DV_STUDY = f"{BASE}/studies/S-BIADDV1"
DV_PREFIXES = {
    DV_STUDY: "S",
    "http://schema.org/": "schema:",
    "https://w3id.org/rembi/": "rembi:",
    "http://www.w3.org/1999/02/22-rdf-syntax-ns#": "rdf:",
    "http://purl.org/dc/terms/": "dcterms:",
    "http://purl.obolibrary.org/obo/": "obo:",
}


def _short(term) -> str:
    from rdflib import URIRef

    text = term.n3()
    if isinstance(term, URIRef):
        for iri, short in DV_PREFIXES.items():
            if str(term).startswith(iri):
                return f"<{short}{str(term)[len(iri) :]}>" if short == "S" else short + str(term)[len(iri) :]
    return text


def _dataset_view_input(keywords: bool):
    """A study graph holding what the view reads: title, dates, a person and a body as authors, a publication, three
    kinds of cross-reference, an imaging method only written down, FBbi's generic root and a real FBbi term, an
    organism, where it was harvested from (its version in the catalog, when) and a grant."""
    from rdflib import Literal, URIRef
    from rdflib.namespace import DCTERMS, PROV, RDFS, XSD

    from catalog.record_graph import RecordGraph
    from catalog.study_record import REMBI, SCHEMA

    study, obo = URIRef(DV_STUDY), "http://purl.obolibrary.org/obo/"
    generic, fluorescence, human = URIRef(obo + "FBbi_00000222"), URIRef(obo + "FBbi_00000246"), URIRef(obo + "NCBITaxon_9606")

    def node(path: str) -> URIRef:
        return URIRef(f"{DV_STUDY}/{path}")

    graph = RecordGraph()
    for triple in [
        (study, DCTERMS.title, Literal("A title")),
        (study, DCTERMS.description, Literal("Words.")),
        (study, DCTERMS.identifier, Literal("S-BIADDV1")),
        (study, REMBI.doi, Literal("10.1234/abc")),
        (study, DCTERMS.license, URIRef("https://creativecommons.org/licenses/by/4.0/")),
        (study, DCTERMS.available, Literal("2024-03-05T10:00:00", datatype=XSD.dateTime)),
        (study, SCHEMA.creator, node("author/1")),
        (node("author/1"), SCHEMA.name, Literal("Jane Doe")),
        (study, SCHEMA.creator, node("author/2")),
        (node("author/2"), SCHEMA.name, Literal("Imaging Facility of Somewhere")),
        (study, SCHEMA.citation, node("publication/1")),
        (node("publication/1"), DCTERMS.title, Literal("A paper")),
        (node("publication/1"), REMBI.doi, Literal("10.5678/paper")),
        (study, REMBI.cross_references, node("xref/1")),
        (node("xref/1"), REMBI.relation, URIRef("http://schema.org/sameAs")),
        (node("xref/1"), REMBI.target, Literal("https://www.ebi.ac.uk/empiar/EMPIAR-1")),
        (study, REMBI.cross_references, node("xref/2")),
        (node("xref/2"), REMBI.relation, URIRef("http://www.w3.org/ns/prov#wasDerivedFrom")),
        (node("xref/2"), REMBI.target, URIRef("https://idr.openmicroscopy.org/idr0001")),
        (study, REMBI.cross_references, node("xref/3")),
        (node("xref/3"), REMBI.target, URIRef("https://doi.org/10.9/x")),
        (node("acquisition/1"), REMBI.imagingMethod, generic),
        (node("acquisition/1"), REMBI.attributes, node("acquisition/1#a")),
        (node("acquisition/1#a"), SCHEMA.name, Literal("Imaging method (as written)")),
        (node("acquisition/1#a"), SCHEMA.value, Literal("lattice light sheet")),
        (node("acquisition/2"), REMBI.imagingMethod, generic),
        (generic, RDFS.label, Literal("imaging method")),
        (node("acquisition/3"), REMBI.imagingMethod, fluorescence),
        (fluorescence, RDFS.label, Literal("fluorescence microscopy")),
        (node("biosample/1"), REMBI.organism, human),
        (human, RDFS.label, Literal("Homo sapiens")),
        (study, PROV.wasGeneratedBy, node("provenance")),
        (node("provenance"), REMBI.source_resource, URIRef("https://registry.identifiers.org/registry/empiar")),
        (node("provenance"), REMBI.source_accession, Literal("EMPIAR-10934")),
        (node("provenance"), PROV.endedAtTime, Literal("2025-01-02T03:04:05+00:00", datatype=XSD.dateTime)),
        (node("provenance"), REMBI.record_version, Literal(3)),
        (study, SCHEMA.funding, node("grant/1")),
        (node("grant/1"), REMBI.funder, Literal("Wellcome Trust")),
        (node("grant/1"), REMBI.grant_id, Literal("212345/Z/18/Z")),
    ] + ([(study, SCHEMA.keywords, Literal("given"))] if keywords else []):
        graph.add(triple)
    return graph


#: what every study's view holds, in the order a rendering lists it
DV_HEAD = [
    "<S> rdf:type schema:Dataset",
    "<S> dcterms:conformsTo <https://bioschemas.org/profiles/Dataset/1.0-RELEASE>",
    "<S> schema:url <S>",
    '<S> schema:isAccessibleForFree "true"^^<http://www.w3.org/2001/XMLSchema#boolean>',
    '<S> schema:name "A title"',
    '<S> schema:description "Words."',
    '<S> schema:identifier "S-BIADDV1"',
    "<S> schema:identifier <https://doi.org/10.1234/abc>",
    "<S> schema:license <https://creativecommons.org/licenses/by/4.0/>",
    '<S> schema:datePublished "2024-03-05"^^<http://www.w3.org/2001/XMLSchema#date>',
    '<S> schema:version "3"^^<http://www.w3.org/2001/XMLSchema#integer>',
    '<S> schema:dateModified "2025-01-02T03:04:05+00:00"^^<http://www.w3.org/2001/XMLSchema#dateTime>',
    "<S> schema:publisher <https://registry.identifiers.org/registry/empiar>",
    "<S> schema:sameAs <https://identifiers.org/empiar:EMPIAR-10934>",  # the record it was harvested from
    "<S> schema:sameAs <https://www.ebi.ac.uk/empiar/EMPIAR-1>",
    "<S> schema:funder <S/grant/1-funder>",
    "<S> schema:isBasedOn <https://idr.openmicroscopy.org/idr0001>",
    "<S> schema:isRelatedTo <https://doi.org/10.9/x>",
    '<S> schema:measurementTechnique "lattice light sheet"',
    "<S> schema:measurementTechnique obo:FBbi_00000222",
    "<S> schema:measurementTechnique obo:FBbi_00000246",
]
DV_PEOPLE_AND_TERMS = [
    "<S/author/1> rdf:type schema:Person",
    "<S/author/2> rdf:type schema:Organization",
    "<S/publication/1> rdf:type schema:ScholarlyArticle",
    '<S/publication/1> schema:name "A paper"',
    "<S/publication/1> schema:sameAs <https://doi.org/10.5678/paper>",
    "obo:FBbi_00000222 rdf:type schema:DefinedTerm",
    'obo:FBbi_00000222 schema:name "imaging method"',
    "obo:FBbi_00000246 rdf:type schema:DefinedTerm",
    'obo:FBbi_00000246 schema:name "fluorescence microscopy"',
    "<S/grant/1> rdf:type schema:MonetaryGrant",
    '<S/grant/1> schema:identifier "212345/Z/18/Z"',
    "<S/grant/1> schema:funder <S/grant/1-funder>",
    "<https://registry.identifiers.org/registry/empiar> rdf:type schema:Organization",
    '<https://registry.identifiers.org/registry/empiar> schema:name "Electron Microscopy Public Image Archive (EMPIAR)"',
    "<S/grant/1-funder> rdf:type schema:Organization",
    '<S/grant/1-funder> schema:name "Wellcome Trust"',
]
DV_CATALOG = [
    "<https://archive.example.org/#catalog> rdf:type schema:DataCatalog",
    '<https://archive.example.org/#catalog> schema:name "Test catalog"',
    "<https://archive.example.org/#catalog> schema:url <https://archive.example.org/>",
]


@pytest.mark.parametrize(
    ("keywords", "downloadable", "added"),
    [
        (
            False,
            True,
            DV_HEAD
            + [
                '<S> schema:keywords "fluorescence microscopy"',  # no keywords given: the methods, then the organisms
                '<S> schema:keywords "lattice light sheet"',
                '<S> schema:keywords "Homo sapiens"',
                "<S> schema:distribution <S#download>",
                "<S> schema:includedInDataCatalog <https://archive.example.org/#catalog>",
            ]
            + DV_PEOPLE_AND_TERMS
            + [
                "<S#download> rdf:type schema:DataDownload",
                "<S#download> schema:contentUrl <S/download>",
                '<S#download> schema:encodingFormat "application/zip"',
            ]
            + DV_CATALOG,
        ),
        (
            True,
            False,
            DV_HEAD
            + ["<S> schema:includedInDataCatalog <https://archive.example.org/#catalog>"]
            + DV_PEOPLE_AND_TERMS
            + DV_CATALOG,
        ),
    ],
)
def test_the_dataset_view_adds_exactly_these_statements_in_this_order(keywords, downloadable, added):
    """:func:`catalog.study_record.add_dataset_view` on a graph holding everything it reads: each statement it adds,
    in the order a rendering lists them (every renderer starts from this graph)."""
    from rdflib import URIRef

    from catalog.study_record import add_dataset_view

    graph = _dataset_view_input(keywords)
    before = list(graph)
    add_dataset_view(graph, URIRef(DV_STUDY), BASE + "/", "Test catalog", downloadable=downloadable)
    after = list(graph)
    assert [t for t in after if t in before] == before
    assert [" ".join(map(_short, t)) for t in after if t not in before] == added
