"""Search in a scientist's words, over the demo catalog's real studies: stems, folded accents, imaging-method
synonyms (FBbi names), snippets for prefixes and fields; and error pages for browsers beside the JSON error shape."""

from __future__ import annotations

from pathlib import Path

import pytest

from api.demo_loader import deposit_title
from catalog.method_names import IMAGING_METHODS, METHODS_WITHOUT_TERM, method_synonyms
from catalog.search_index import Clause, ParsedQuery, SearchIndex, StudyDocument, parse_query, with_synonyms
from loaders import ontology_terms

BROWSER = "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8"

#: S-BIAD1076 (tests/data/pagetab/S-BIAD1076_original.json): its title and its first author as the study writes them
S_BIAD1076 = StudyDocument(
    "S-BIAD1076",
    "Sample-efficient antibody assay (SerolAI) quantification images",
    authors=["Vilja Pietiäinen", "Minttu Polso"],
    imaging_methods=["fluorescence microscopy"],
    release_date="2023-11-01",
    source="BioImage Archive",
)


@pytest.fixture(scope="module")
def demo(make_module_catalog):
    made = make_module_catalog(demo=True, name="demo")
    return made.app().test_client()


def search(client, q: str, **params) -> dict:
    response = client.get("/search", query_string={"q": q, **params}, headers={"Accept": "application/json"})
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()


def found(client, q: str) -> list[str]:
    return [item["accession"] for item in search(client, q)["items"]]


# ---------------------------------------------------------------------- stems and accents


@pytest.mark.parametrize(
    "query, accession",
    [
        ("micrograph", "EMPIAR-10934"),  # title: "Cryo-EM multiframe micrographs of human Pol kappa…"
        ("mask", "S-BIAD1492"),  # title: "Synthetic images and segmentation masks…"
        ("image", "S-BIAD1492"),  # "images"
        ("labelling", "EMPIAR-STARFILETEST"),  # title: "…GEM2-labelled Mito-EGFP…"
        ("tracked", "idr0038"),  # title: "Ex vivo live cell tracking in kidney organoids…"
    ],
)
def test_words_are_found_in_other_forms(demo, query, accession):
    assert accession in found(demo, query)


def test_accents_are_folded_both_ways(demo, tmp_path, state_db):
    assert "idr0038" in found(demo, "authors:Lévy")  # the study writes "Raphael Levy"
    index = SearchIndex(tmp_path / "search", state_db, "public")
    try:
        index.replace_all([S_BIAD1076])
        for query in ("pietiainen", "Pietiäinen", "authors:PIETIAINEN", "pietiä*"):
            hits = index.search(query).hits
            assert [h.accession for h in hits] == ["S-BIAD1076"], query
            assert hits[0].snippets["authors"] == "Vilja <mark>Pietiäinen</mark>; Minttu Polso", query
    finally:
        index.close()


def test_names_are_stemmed_but_accessions_and_authors_are_not(demo):
    assert found(demo, "accession:S-BIAD1492") == ["S-BIAD1492"]
    assert found(demo, "authors:Held") == ["idr0038"]  # "Marie Held": "held" is not stemmed to "hold"…
    assert found(demo, "authors:hold") == []  # …nor does "hold" find her


# ---------------------------------------------------------------------- imaging-method synonyms


def test_cryo_et_finds_cryo_electron_tomography(demo):
    body = search(demo, "cryo-ET")
    assert [i["accession"] for i in body["items"]] == ["EMPIAR-STARFILETEST"]
    assert (
        body["items"][0]["highlights"]["title"]
        == "<mark>Cryo</mark>-<mark>electron</mark> <mark>tomography</mark> of GEM2-labelled Mito-EGFP in HeLa cells"
    )
    assert found(demo, "cryoET") == found(demo, "electron cryotomography") == ["EMPIAR-STARFILETEST"]


def test_method_abbreviations_find_the_method(demo):
    # both EMPIAR entries carry FBbi "transmission electron microscopy (TEM)", as does the demo deposit's EMDB map
    tem = {"EMPIAR-10934", "EMPIAR-STARFILETEST", *found(demo, f'"{deposit_title()}"')}
    assert len(tem) == 3
    assert set(found(demo, "TEM")) == tem
    assert set(found(demo, "imaging_method:TEM")) == tem
    assert "idr0038" in found(demo, "LSFM")  # light sheet fluorescence microscopy: FBbi SPIM
    assert "idr0038" in found(demo, "SPIM")
    assert "S-BIADTEST" in found(demo, "CLSM")  # confocal microscopy
    assert found(demo, "TEM -tomography") == ["EMPIAR-10934"]


def test_words_typed_apart_find_the_method_and_still_find_the_words(demo):
    # "light sheet microscopy", typed without quotes, is a name of FBbi:00000369 (SPIM)
    assert "idr0038" in found(demo, "light sheet microscopy")
    # the words typed apart are still searched as they were: each anywhere
    assert "idr0038" in found(demo, "kidney light")


def test_synonym_expansion_of_parsed_queries():
    expanded = with_synonyms(parse_query("SEM zebrafish"))
    sem, zebrafish = expanded.groups[0]
    assert sem.words == ["sem"] and ["scanning", "electron", "microscopy"] in sem.synonyms
    assert zebrafish == Clause(["zebrafish"])
    run = with_synonyms(parse_query("soft x-ray tomography"))
    assert len(run.groups[0]) == 1 and run.groups[0][0].loose and ["sxt"] in run.groups[0][0].synonyms
    assert with_synonyms(parse_query('"soft x-ray tomography"')).groups[0][0].loose is False
    assert with_synonyms(parse_query("tem*")) == ParsedQuery([[Clause(["tem"], prefix=True)]], [])
    excluded = with_synonyms(parse_query("-TEM")).excluded[0]
    assert ["transmission", "electron", "microscopy"] in excluded.synonyms


def test_the_method_table_is_fbbis():
    """Every FBbi id and label of the table is one of tests/data/fbbi/fbbi-labels.tsv (FBbi 2020-11-06)."""
    table = Path(__file__).parent / "data" / "fbbi" / "fbbi-labels.tsv"
    labels = dict(line.split("\t") for line in table.read_text(encoding="utf-8").splitlines()[1:])
    for digits, (label, _others) in IMAGING_METHODS.items():
        assert labels.get(f"FBbi:{digits}") == label, digits
    for name in METHODS_WITHOUT_TERM:  # FBbi has no term for these: generic term, the words kept
        assert name.lower() not in {v.lower() for v in labels.values()}
        assert ontology_terms.imaging_method_term(name) == (None, False)
    assert "cat scan" in method_synonyms()["x ray computed tomography"]  # FBbi's EXACT synonym of FBbi:00001002


# ---------------------------------------------------------------------- snippets for prefixes and fields


def test_prefixes_and_fields_are_highlighted(demo):
    hit = search(demo, "segment*")["items"][0]
    assert hit["accession"] == "S-BIAD1492"
    assert "<mark>segmentation</mark>" in hit["highlights"]["title"]
    assert "<mark>segmentation</mark>" in hit["highlights"]["keywords"]
    organism = search(demo, 'organism:"mus musculus"')["items"]
    assert {i["accession"] for i in organism} == {"S-BIADTEST", "idr0038"}
    marked = {i["accession"]: i["highlights"] for i in organism}
    assert marked["idr0038"] == {"organism": "<mark>Mus</mark> <mark>musculus</mark>"}
    assert marked["S-BIADTEST"] == {"organism": "Homo sapiens; <mark>Mus</mark> <mark>musculus</mark>"}  # one a line
    method = search(demo, "imaging_method:tomog*")  # TEM is no tomography: nothing, and nothing marked
    assert method["total"] == 0
    authors = search(demo, "authors:sobh*")["items"]
    assert [i["accession"] for i in authors] == ["EMPIAR-10934"]
    assert "<mark>Sobhy</mark>" in authors[0]["highlights"]["authors"]


def test_snippets_escape_what_studies_say(demo):
    page = demo.get("/search", query_string={"q": "title:synthetic"}, headers={"Accept": BROWSER})
    assert page.status_code == 200 and "<mark>Synthetic</mark>" in page.get_data(as_text=True)


# ---------------------------------------------------------------------- error pages for browsers


@pytest.mark.parametrize("accept", [BROWSER, "text/html"])
def test_a_browser_gets_an_error_page_in_the_sites_frame(demo, accept):
    response = demo.get("/studies/S-BIAD99999", headers={"Accept": accept})
    assert response.status_code == 404 and response.mimetype == "text/html"
    page = response.get_data(as_text=True)
    assert "<header>" in page and 'role="search"' in page  # base.html's frame
    assert "Not Found" in page and "404" in page
    main = page.split("<main>")[1]
    assert 'href="https://archive.example.org/"' in main and 'href="https://archive.example.org/studies"' in main
    assert "no record https://archive.example.org/studies/S-BIAD99999" in main  # the message
    assert 'href="https://archive.example.org/studies/S-BIAD99999"' not in main  # no link to a study not held
    assert 'name="robots" content="noindex"' in page


def test_an_error_page_links_to_the_study_it_is_about(demo):
    response = demo.get("/studies/S-BIAD1492/files/no-such-file", headers={"Accept": BROWSER})
    assert response.status_code == 404 and response.mimetype == "text/html"
    main = response.get_data(as_text=True).split("<main>")[1]
    assert "/studies/S-BIAD1492" in main and "Synthetic images and segmentation masks" in main


def test_a_400_for_a_browser_is_a_page_with_the_message(demo):
    response = demo.get("/search", query_string={"q": '"unbalanced'}, headers={"Accept": BROWSER})
    assert response.status_code == 400 and response.mimetype == "text/html"
    assert "the query has an unbalanced double quote" in response.get_data(as_text=True)


def test_error_pages_escape_the_message(demo):
    key = "filter[organism][<script>alert(1)</script>]"  # the message names the parameter as sent
    response = demo.get("/search", query_string={key: "x"}, headers={"Accept": BROWSER})
    assert response.status_code == 400 and response.mimetype == "text/html"
    page = response.get_data(as_text=True)
    assert "<script>alert(1)</script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page


@pytest.mark.parametrize(
    "headers, path",
    [
        ({"Accept": "application/json"}, "/studies/S-BIAD99999"),
        ({}, "/studies/S-BIAD99999"),
        ({"Accept": "*/*"}, "/studies/S-BIAD99999"),
        ({"Accept": "application/ld+json"}, "/studies/S-BIAD99999"),
        ({"Accept": BROWSER}, "/studies/S-BIAD99999.json"),  # the suffix asks for JSON
        ({"Accept": BROWSER}, "/studies/S-BIAD99999?format=json"),
        ({"Accept": "application/json, text/html;q=0.5"}, "/search?q=%22x"),
    ],
)
def test_api_clients_keep_the_json_error_shape(demo, headers, path):
    response = demo.get(path, headers=headers)
    assert response.status_code in (400, 404) and response.mimetype == "application/json"
    assert set(response.get_json()) == {"code", "status", "message", "errors"}
