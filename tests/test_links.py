"""Cross-resource links and correlative imaging, both directions: a constructed correlative pair (a light
microscopy deposit with its transform, an EMPIAR CLEM entry naming it), real EMPIAR/IDR/BioStudies samples,
link discovery with evidence, the API, JSON-LD and SPARQL."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from api.app import create_app
from api.services import open_services
from linkers.discover import asserted_graph, inferred_graph, link_catalog
from loaders.harvest import Harvester
from tests.catalog_helpers import BASE, DATA, make_settings, stage_sample

TESTS = Path(__file__).parent
MATRIX = [[1.0, 0.0, 0.0, 10.0], [0.0, 1.0, 0.0, 20.0], [0.0, 0.0, 1.0, 0.0]]


def correlative_deposit(tmp_path: Path, publication_doi: str) -> bytes:
    """The sample screen, declared as the light-microscopy half of a CLEM pair with a structured transform."""
    record = yaml.safe_load((DATA / "study.yaml").read_text())
    record["description"] += " The same cells were imaged by cryo-ET (EMPIAR-99999); see also idr0004."
    record["authors"][0]["orcid"] = "https://orcid.org/0000-0002-1825-0097"
    record["publications"] = [{"title": "Structure of human Pol kappa", "doi": publication_doi}]
    record["cross_references"] = [
        {
            "target": "https://www.ebi.ac.uk/empiar/EMPIAR-99999",
            "target_accession": "EMPIAR-99999",
            "resource": "EMPIAR",
            "relation": "same_specimen_imaged",
        }
    ]
    record["image_correlations"] = [
        {
            "title": "Light to EM",
            "spatial_and_temporal_alignment": "Landmarks on gold beads",
            "transformation_text": "1 0 0 10; 0 1 0 20; 0 0 1 0",
            "transformations": [
                {
                    "transformation_type": "affine",
                    "matrix_rows": 3,
                    "matrix_columns": 4,
                    "matrix": [
                        {"row": r, "column": c, "element_value": v}
                        for r, row in enumerate(MATRIX)
                        for c, v in enumerate(row)
                        if v
                    ],
                    "source_coordinate_system": "confocal image (micrometer)",
                    "target_coordinate_system": "EMPIAR-99999 tomogram",
                    "units": "micrometer",
                    "registration_software": "BigWarp 9.0",
                }
            ],
        }
    ]
    record["components"][0]["component_image_correlations"] = ["Light to EM"]
    return yaml.safe_dump(record).encode()


def clem_entry(tmp_path: Path, partner: str) -> Path:
    entry = json.loads((TESTS / "data" / "empiar" / "STARFILETEST.json").read_text())["EMPIAR-STARFILETEST"]
    entry.update(
        experiment_type="CLEM", title="Cryo-ET of the HeLa cells of a CLEM pair", biostudies_references=[{"name": partner}]
    )
    path = tmp_path / "EMPIAR-99999.json"
    path.write_text(json.dumps({"EMPIAR-99999": entry}))
    return path


@pytest.fixture(scope="module")
def linked(make_module_catalog):
    made = make_module_catalog(name="links")
    tmp, services = made.folder, made.services
    _token, owner = made.token("jane")
    sub = stage_sample(services.deposits, owner)
    services.deposits.attach_metadata(sub, owner, "study.yaml", correlative_deposit(tmp, "10.1038/s41467-021-26251-6"))
    light = services.deposits.finalize(sub, owner)
    hidden_sub = stage_sample(services.deposits, owner, release_date="2999-01-01")
    services.deposits.attach_metadata(
        hidden_sub, owner, "study.yaml", correlative_deposit(tmp, "10.1038/s41467-021-26251-6"), release_date="2999-01-01"
    )
    hidden = services.deposits.finalize(hidden_sub, owner)
    harvester = Harvester(services.archive)
    assert harvester.run("empiar", [str(clem_entry(tmp, light)), str(TESTS / "data" / "empiar" / "10934.xml")]).failed == []
    assert harvester.run("idr", [str(TESTS / "data" / "idr" / "idr0004-study.txt")]).failed == []
    assert harvester.run("legacy", [str(TESTS / "data" / "legacy" / "jcb")]).loaded
    report = link_catalog(services.archive)
    return {"services": services, "client": made.app().test_client(), "light": light, "hidden": hidden, "report": report}


def by(links, key, value):
    return [link for link in links if link[key] == value]


def test_correlative_pair_is_linked_both_ways_with_its_transform(linked):
    client, light = linked["client"], linked["light"]
    light_iri, em_iri = f"{BASE}/studies/{light}", f"{BASE}/studies/EMPIAR-99999"
    ours = client.get(f"/studies/{light}/links").get_json()
    out = by(ours["outgoing"], "target", em_iri)
    assert {(link["relation"], link["inferred"]) for link in out} >= {
        ("same_specimen_imaged", False),
        ("same_specimen_imaged", True),
    }
    assert any(link["relation"] == "same_specimen_imaged" for link in by(ours["incoming"], "source", em_iri))
    (correlation,) = [t for t in ours["transformations"] if "study" not in t]
    (transform,) = correlation["transformations"]
    assert transform["type"] == "affine" and transform["matrix"] == MATRIX
    assert transform["units"] == "micrometer" and transform["registration_software"] == "BigWarp 9.0"
    assert correlation["text"] == "1 0 0 10; 0 1 0 20; 0 0 1 0"

    theirs = client.get("/studies/EMPIAR-99999/links").get_json()
    assert any(link["relation"] == "same_specimen_imaged" for link in by(theirs["outgoing"], "target", light_iri))
    assert any(link["relation"] == "same_specimen_imaged" for link in by(theirs["incoming"], "source", light_iri))
    assert any(t.get("study") == light_iri and t["transformations"][0]["matrix"] == MATRIX for t in theirs["transformations"])
    evidence = [e for link in by(theirs["outgoing"], "target", light_iri) for e in link["evidence"]]
    assert f"{light} references EMPIAR-99999 (same_specimen_imaged)" in evidence


def test_sparql_follows_links_in_both_directions(linked):
    client, light = linked["client"], linked["light"]
    query = (
        "PREFIX rembi: <https://w3id.org/rembi/> SELECT ?a ?b WHERE { ?a rembi:sameSpecimenImaged ?b "
        'FILTER(STRSTARTS(STR(?b), "' + BASE + '/studies/")) }'
    )
    rows = client.get("/sparql", query_string={"query": query}, headers={"Accept": "application/sparql-results+json"}).get_json()
    pairs = {(r["a"]["value"].rsplit("/", 1)[-1], r["b"]["value"].rsplit("/", 1)[-1]) for r in rows["results"]["bindings"]}
    assert {(light, "EMPIAR-99999"), ("EMPIAR-99999", light)} <= pairs
    examples = client.get("/.well-known/sparql-examples", headers={"Accept": "application/json"}).get_json()
    pair_query = next(e["query"] for e in examples if e["id"] == "correlative-pairs")
    found = client.get(
        "/sparql", query_string={"query": pair_query}, headers={"Accept": "application/sparql-results+json"}
    ).get_json()
    assert {r["study"]["value"].rsplit("/", 1)[-1] for r in found["results"]["bindings"]} >= {light, "EMPIAR-99999"}


def test_inferred_links_state_their_evidence(linked):
    client, light = linked["client"], linked["light"]
    links = client.get(f"/studies/{light}/links").get_json()["outgoing"]
    inferred = [link for link in links if link["inferred"]]
    shared_pub = by(inferred, "target", f"{BASE}/studies/EMPIAR-10934")
    assert shared_pub and "both cite https://doi.org/10.1038/s41467-021-26251-6" in shared_pub[0]["evidence"]
    shared_author = by(inferred, "target", f"{BASE}/studies/S-JCBD12")
    assert shared_author and any("shared author ORCID" in e for e in shared_author[0]["evidence"])
    mention = by(inferred, "target", f"{BASE}/studies/idr0004")
    assert mention and f"{light} mentions idr0004" in mention[0]["evidence"]
    normalised = {link["target"] for link in links if not link["inferred"]}
    assert {
        "https://doi.org/10.1038/s41467-021-26251-6",
        "https://orcid.org/0000-0002-1825-0097",
        "http://purl.obolibrary.org/obo/NCBITaxon_9606",
        "http://purl.obolibrary.org/obo/FBbi_00000251",
    } <= normalised
    emdb = client.get("/studies/EMPIAR-10934/links").get_json()["outgoing"]
    assert any(
        link["target"] == "https://identifiers.org/emdb:EMD-12602" and link["relation"] == "references_map" for link in emdb
    )


def test_links_appear_in_the_records_jsonld(linked):
    client, light = linked["client"], linked["light"]
    doc = client.get(f"/studies/{light}", headers={"Accept": "application/ld+json"}).get_json()
    related = doc["isRelatedTo"] if isinstance(doc["isRelatedTo"], list) else [doc["isRelatedTo"]]
    ids = {r["@id"] if isinstance(r, dict) else r for r in related}
    assert {"https://identifiers.org/empiar:EMPIAR-99999", f"{BASE}/studies/EMPIAR-10934"} <= ids  # as stored: canonical
    citation = doc["citation"] if isinstance(doc["citation"], dict) else doc["citation"][0]
    assert citation["sameAs"]["@id"] == "https://doi.org/10.1038/s41467-021-26251-6"
    assert f"{BASE}/studies/{light}/links" in client.get(f"/studies/{light}", headers={"Accept": "text/html"}).get_data(
        as_text=True
    )


def test_embargoed_studies_take_no_part_in_links(linked):
    client, hidden = linked["client"], linked["hidden"]
    store = linked["services"].archive.public.graph
    for graph in (asserted_graph(BASE), inferred_graph(BASE)):
        assert hidden not in store.get_graph(graph).decode()
    assert client.get(f"/studies/{hidden}/links").status_code == 404


def test_link_graphs_conform_to_the_shapes(linked):
    from rdflib import Graph

    from catalog.validation import validate_graph

    store = linked["services"].archive.public.graph
    for graph in (asserted_graph(BASE), inferred_graph(BASE)):
        data = Graph().parse(data=store.get_graph(graph).decode(), format="nt")
        report = validate_graph(data)
        assert report.conforms, [(i.focus_node, i.path, i.message) for i in report.violations][:5]


def test_link_discovery_is_idempotent_and_exports(linked):
    services = linked["services"]
    store = services.archive.public.graph
    before = {g: sorted(store.get_graph(g).decode().splitlines()) for g in (asserted_graph(BASE), inferred_graph(BASE))}
    again = link_catalog(services.archive)
    after = {g: sorted(store.get_graph(g).decode().splitlines()) for g in before}
    assert before == after and again.inferred == linked["report"].inferred
    client = linked["client"]
    tsv = client.get("/links.tsv").get_data(as_text=True).splitlines()
    assert tsv[0] == "source\trelation\ttarget\tinferred\tevidence" and len(tsv) - 1 == again.asserted + again.inferred
    doc = client.get("/links.jsonld").get_json()
    assert len(doc["@graph"]) == again.asserted + again.inferred
    assert client.get("/links.xml").status_code == 404


def test_every_real_pagetab_sample_harvests_metadata_only_and_links(tmp_path):
    """All BioStudies samples (their file lists are not at hand) load metadata-only; links and correlation
    sections of the real records show through the API."""
    samples = sorted((TESTS / "data" / "pagetab").glob("S-*.json"))
    with open_services(make_settings(tmp_path)) as services:
        summary = Harvester(services.archive, metadata_only=True).run("pagetab", [str(p) for p in samples])
        assert summary.failed == [] and len(summary.loaded) == len(samples)
        report = link_catalog(services.archive)
        assert report.studies == len(samples) and report.asserted > len(samples)
        app = create_app(services.archive.settings, services=services)
        try:
            client = app.test_client()
            page = client.get("/studies/S-BIAD2808", headers={"Accept": "text/html"}).get_data(as_text=True)
            assert "Image correlation" in page and "Serial section alignment for volume EM" in page
            links = client.get("/studies/S-BIAD2808/links").get_json()["outgoing"]
            assert any(link["target"] == "https://doi.org/10.1101/2025.11.12.687478" for link in links)
            assert client.get("/studies/S-BIAD2808/files").get_json()["total"] == 0
        finally:
            app.extensions["bia.sparql"].close()


def test_one_emdb_map_is_one_node_and_the_example_finds_every_study_linking_it(tmp_path):
    """A PageTab record linking an EMDB map by its EBI page and the EMPIAR entry naming the same map get one target
    IRI (they had two: identifiers.org and the EBI page), so the shipped example finds both studies."""
    from api.sparql_examples import EXAMPLES

    doc = json.loads((TESTS / "data" / "pagetab" / "S-BIAD661_original.json").read_text())
    doc["section"]["links"] = [{"url": "https://www.ebi.ac.uk/emdb/EMD-12602", "attributes": [{"name": "Type", "value": "EMDB"}]}]
    pagetab = tmp_path / "S-BIAD661.json"
    pagetab.write_text(json.dumps(doc))
    with open_services(make_settings(tmp_path)) as services:
        harvester = Harvester(services.archive, metadata_only=True)
        assert harvester.run("pagetab", [str(pagetab)]).failed == []
        assert harvester.run("empiar", [str(TESTS / "data" / "empiar" / "10934.xml")]).failed == []
        query = next(e.query for e in EXAMPLES if e.id == "emdb-links")
        rows = services.archive.public.graph.select(query)
        found = {(r["study"]["value"].rsplit("/", 1)[-1], r["map"]["value"]) for r in rows}
        assert found == {
            ("S-BIAD661", "https://identifiers.org/emdb:EMD-12602"),
            ("EMPIAR-10934", "https://identifiers.org/emdb:EMD-12602"),
        }
        link_catalog(services.archive)
        emdb_links = services.archive.public.graph.select(
            "PREFIX rembi: <https://w3id.org/rembi/> SELECT DISTINCT ?target WHERE { GRAPH ?g { ?l rembi:linkTarget ?target ; "
            "rembi:resource <https://registry.identifiers.org/registry/emdb> } }"
        )
        assert [r["target"]["value"] for r in emdb_links] == ["https://identifiers.org/emdb:EMD-12602"]


def test_links_follow_every_change_whoever_makes_it(tmp_path):
    """Deposits, harvests, releases and withdrawals are counted in the registry; the link graphs are rebuilt once
    after any number of them (by the serving process's background duties, or a command before it ends)."""
    from catalog.stats import catalog_stats
    from linkers.discover import link_if_changed
    from tests.catalog_helpers import stage_sample

    settings = make_settings(tmp_path)
    with open_services(settings) as services:
        archive = services.archive
        assert link_if_changed(archive) is None  # nothing changed yet
        accession = services.deposits.finalize(stage_sample(services.deposits, "jane"), "jane")
        report = link_if_changed(archive)
        assert report is not None and report.studies == 1
        assert link_if_changed(archive) is None  # caught up
        study = f"{BASE}/studies/{accession}"
        linked = archive.public.graph.ask(
            f"ASK {{ GRAPH <{BASE}/graphs/links/asserted> {{ ?l <https://w3id.org/rembi/linkSource> <{study}> }} }}"
        )
        assert linked
        archive.withdraw(accession)
        assert link_if_changed(archive) is not None and catalog_stats(archive)["studies"] == 0
        assert not archive.public.graph.ask(f"ASK {{ GRAPH ?g {{ ?l <https://w3id.org/rembi/linkSource> <{study}> }} }}")
    with open_services(settings) as other:  # another process's change is seen through the registry
        other.archive.registry.record_change()
    with open_services(settings) as services:
        assert link_if_changed(services.archive) is not None


def test_transformations_read_matrices_parameters_and_texts_as_written(tmp_path):
    """:func:`linkers.study_links.transformations` on a stored study: correlations in IRI order; a matrix sized by its
    declared rows and columns (elements outside them dropped) or by its largest element; parameters by name; absent
    fields left out (a correlation's transformations always listed); a study without correlations
    has none."""
    from types import SimpleNamespace

    from catalog.graph_store_embedded import EmbeddedGraphStore
    from catalog.rembi_model import load_model
    from catalog.rembi_rdf import prepare_study, record_to_graph
    from linkers.study_links import transformations

    record = {
        "accession": "S-BIADTR1",
        "title": "Transforms",
        "license": "CC0-1.0",
        "release_date": "2024-01-01",
        "authors": [{"name": "Jane Doe"}],
        "image_correlations": [
            {
                "title": "B parameters",
                "fiducials_used": "gold beads",
                "transformations": [
                    {
                        "transformation_type": "similarity",
                        "units": "pixel",
                        "parameters": [{"name": "scale", "value": "0.5"}, {"name": "rotation_z_degrees", "value": "12.5"}],
                    },
                    {"transformation_text": "identity"},
                ],
            },
            {
                "title": "A matrices",
                "spatial_and_temporal_alignment": "landmarks",
                "transformation_text": "two matrices",
                "transformations": [
                    {
                        "transformation_type": "affine",
                        "matrix": [{"row": 0, "column": 0, "element_value": 2.0}, {"row": 1, "column": 2, "element_value": -3.5}],
                    },
                    {
                        "transformation_type": "rigid",
                        "matrix_rows": 2,
                        "matrix_columns": 2,
                        "transform_file": "t.xml",
                        "matrix": [
                            {"row": 0, "column": 1, "element_value": 1.0},
                            {"row": 2, "column": 0, "element_value": 9.0},
                            {"row": 1, "column": 5, "element_value": 9.0},
                        ],
                    },
                ],
            },
            {"title": "C without transformations"},
        ],
    }
    prepared = prepare_study(record, BASE)
    store = EmbeddedGraphStore(tmp_path / "graphs")
    try:
        store.replace_graph(prepared["id"], record_to_graph(prepared).serialize(format="nt"))
        archive = SimpleNamespace(public=SimpleNamespace(reads=store), model=load_model())
        found = transformations(archive, prepared["id"])
        assert transformations(archive, f"{BASE}/studies/S-BIADNONE") == []
    finally:
        store.close()
    expected = [
        {
            "correlation": prepared["image_correlations"][0]["id"],
            "title": "B parameters",
            "fiducials": "gold beads",
            "transformations": [
                {"type": "similarity", "units": "pixel", "parameters": {"scale": "0.5", "rotation_z_degrees": "12.5"}},
                {"transformation_text": "identity"},
            ],
        },
        {
            "correlation": prepared["image_correlations"][1]["id"],
            "title": "A matrices",
            "alignment": "landmarks",
            "text": "two matrices",
            "transformations": [
                {"type": "affine", "matrix": [[2.0, 0.0, 0.0], [0.0, 0.0, -3.5]]},
                {"type": "rigid", "transform_file": "t.xml", "matrix": [[0.0, 1.0], [0.0, 0.0]]},
            ],
        },
        {"correlation": prepared["image_correlations"][2]["id"], "title": "C without transformations", "transformations": []},
    ]
    for entry in found + expected:
        entry["transformations"].sort(key=lambda t: json.dumps(t, sort_keys=True))  # RDF keeps no order among them
    assert found == sorted(expected, key=lambda entry: entry["correlation"])
