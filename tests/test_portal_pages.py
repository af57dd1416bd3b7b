"""The portal's pages for people, over the demo catalog: the home page as a way in (search, recent studies, browse
links whose counts are those of the search they open), the statistics page without empty rows (its JSON unchanged),
and study pages in the words of the schema (labels, licence names, relations in words, paragraphs, no empty
sections)."""

from __future__ import annotations

import re
from html import unescape
from urllib.parse import parse_qsl, urlsplit

import pytest

from catalog.rembi_model import load_model
from tests.catalog_helpers import BASE

HTML = {"Accept": "text/html"}
JSON = {"Accept": "application/json"}


@pytest.fixture(scope="module")
def demo(make_module_catalog):
    return make_module_catalog(demo=True, name="portal").app().test_client()


def page(client, path: str) -> str:
    response = client.get(path, headers=HTML)
    assert response.status_code == 200 and response.mimetype == "text/html", path
    return response.get_data(as_text=True)


def section(html: str, heading: str) -> str:
    match = re.search(rf"<h2>{re.escape(heading)}</h2>(.*?)(?=<h2>|</main>)", html, re.DOTALL)
    assert match, heading
    return match.group(1)


def test_home_is_a_way_in_search_recent_studies_and_browse_links(demo):
    home = page(demo, "/")
    assert 'role="search"' in home and 'name="q"' in home and "released studies" in home
    assert "<h2>Growth</h2>" not in home and "Cumulative" not in home  # the statistics live at /stats
    recent = section(home, "Recently released")
    newest = demo.get("/studies?limit=6", headers=JSON).get_json()["items"]
    shown = re.findall(rf'<a href="{re.escape(BASE)}/studies/([^"]+)">', recent)
    assert shown == [item["accession"] for item in newest]
    assert "simulated fluorescence microscopy" in recent and "Homo sapiens" in recent and "418.1 MB" in recent
    browse = section(home, "Browse")
    for heading in ("Organisms", "Imaging methods", "Sources"):
        assert f"<h3>{heading}</h3>" in browse


def test_home_counts_are_links_to_the_search_that_finds_as_many(demo):
    browse = section(page(demo, "/"), "Browse")
    links = re.findall(r'<a href="([^"]+)">([^<]+)</a> <span class="count">\((\d+)\)</span>', browse)
    facets = {dict(parse_qsl(urlsplit(unescape(href)).query)).popitem()[0] for href, _, _ in links}
    assert facets == {"filter[organism]", "filter[imaging_method]", "filter[source]"}
    for href, value, count in links:
        url = urlsplit(unescape(href))
        assert url.path == "/search" and value in dict(parse_qsl(url.query)).values()
        found = demo.get(f"{url.path}?{url.query}", headers=JSON).get_json()
        assert found["total"] == int(count), href


def test_stats_page_leaves_out_empty_rows_and_json_stays_as_it_was(demo):
    body = demo.get("/stats", headers=JSON).get_json()
    assert set(body) == {"studies", "by_source", "by_imaging_method", "by_organism", "by_licence", "by_file_format", "growth"}
    assert any(row["released"] == 0 for row in body["growth"])  # the demo has months without a release
    html = page(demo, "/stats")
    growth = section(html, "Growth")
    months = re.findall(r"<tr><td>(\d{4}-\d{2})</td><td>(\d+)</td>", growth)
    assert months == [(row["month"], str(row["released"])) for row in body["growth"] if row["released"]]
    assert "<polyline" in growth
    for source, count in body["by_source"].items():
        assert re.search(rf"filter%5Bsource%5D=[^\"]+\">{re.escape(source)}</a></td><td>{count}</td>", html), source


def test_study_page_speaks_the_schema_not_the_slot_names(demo):
    html = page(demo, "/studies/S-BIAD1492")
    main = html.split("<main>", 1)[1]
    model = load_model()
    for slot_name in ("imageAcquisition", "preparedFrom", "imagingMethod", "related_to", "file_list_name", "biosample<"):
        assert slot_name not in main.split('<script type="application/ld+json">')[0], slot_name
    components = section(main, "Study components")
    acquisitions = model.classes["StudyComponent"].slots["component_image_acquisitions"]
    assert model.title(acquisitions.uri) == "Image acquisitions"  # the schema's title, from the generated mapping
    assert ">Image acquisitions</dt>" in components
    assert ">Prepared from</dt>" in section(main, "Specimens")
    # an attribute shows its value beside its name
    assert re.search(r"<dt>Organism Scientific name</dt>\s*<dd>simulated data</dd>", section(main, "Biosamples"))
    # the method as written, not FBbi's generic "imaging method"
    acquisition = section(main, "Image acquisition")
    assert "<dd>simulated fluorescence microscopy" in acquisition and "<dd>imaging method</dd>" not in acquisition


def test_study_page_names_its_licence_and_reads_relations_as_words(demo):
    main = page(demo, "/studies/S-BIAD1492").split("<main>", 1)[1]
    assert re.search(r'<a href="https://creativecommons.org/licenses/by/3.0/"[^>]*>CC BY 3.0</a>', main)
    assert ">https://creativecommons.org/licenses/by/3.0/<" not in main
    related = section(main, "Related records")
    assert "This study is related to <a" in related
    words = {load_model().value_title(iri) for iri in load_model().enums["RelationEnum"].values()}
    for sentence in re.findall(r"<li>This study (.+?) <a", related):
        assert sentence in words, sentence  # every relation in the schema's words, never its name (related_to)
    assert "FBbi_" not in related and "orcid.org" not in related  # shown in their own places


def test_study_page_keeps_paragraphs_and_shows_no_empty_sections(demo):
    idr = page(demo, "/studies/idr0038").split("<main>", 1)[1]
    description = section(idr, "Description")
    assert "\\n" not in description and description.count('<p class="text">') >= 2
    tiny = page(demo, "/studies/S-TEST123").split("<main>", 1)[1]
    for heading in re.findall(r"<h2>([^<]+)</h2>", tiny):
        body = section(tiny, heading)
        assert re.search(r"<(dd|li|p|td|img)[ >]", body), heading  # every section drawn has something in it
    assert "No links recorded" not in tiny and "<dt>" not in re.sub(r"<dt[^>]*>[^<]+</dt>\s*<dd>", "", tiny)


def test_object_pages_label_fields_with_the_schema_titles(demo):
    study = demo.get("/studies/S-BIAD1492.jsonld").get_json()
    specimen = study["rembi:specimens"]["@id"]
    html = page(demo, specimen.removeprefix(BASE))
    assert "<dt>Prepared from</dt>" in html and "<dt>rembi:preparedFrom</dt>" not in html
