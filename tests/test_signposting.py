"""FAIR signposting (level 2) read by an independent client (the ``signposting`` package, over real HTTP) from a
deposited study and a harvested one; linksets in both media types; CORS on records; robots.txt against the
``contentUrl`` the records advertise; an embargoed study's linkset."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest
import requests
from protego import Protego
from werkzeug.serving import make_server

from loaders.harvest import Harvester
from tests.catalog_helpers import stage_sample
from tests.servers.seaweedfs_server import free_ports

TESTS = Path(__file__).parent
HARVESTED = "S-BIAD1492"


@pytest.fixture(scope="module")
def site(make_module_catalog):
    """A catalog served over HTTP at its own base URL: a harvested BioStudies study, a released and an embargoed deposit."""
    (port,) = free_ports(1)
    base = f"http://127.0.0.1:{port}"
    made = make_module_catalog(name="signposting", base_url=base)
    services = made.services
    assert (
        Harvester(services.archive).run("pagetab", [str(TESTS / "data" / "harvest" / "biostudies" / f"{HARVESTED}.json")]).loaded
    )
    token, owner = made.token("jane")
    released = services.deposits.finalize(stage_sample(services.deposits, owner), owner)
    embargoed = services.deposits.finalize(stage_sample(services.deposits, owner, release_date="2999-01-01"), owner)
    server = make_server("127.0.0.1", port, made.app(), threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield {"base": base, "released": released, "embargoed": embargoed, "token": token}
    server.shutdown()


def _hrefs(signposts) -> list[str]:
    return [str(s.target) for s in signposts]


def _read_all(url: str):
    """The signposting of a landing page as the client reads it from the Link header, the HTML and both linksets."""
    from signposting import find_signposting_html, find_signposting_http, find_signposting_linkset

    header = find_signposting_http(url)
    html = find_signposting_html(url)
    # a linkset's links are about their anchors (the landing page, its documents and items)
    linksets = [find_signposting_linkset(str(s.target), str(s.type)).for_context(url) for s in header.linksets]
    return header, html, linksets


@pytest.mark.parametrize("which", ["deposited", "harvested"])
def test_a_signposting_client_finds_every_level_2_link(site, which):
    base = site["base"]
    accession = site["released"] if which == "deposited" else HARVESTED
    landing = f"{base}/studies/{accession}"
    header, html, linksets = _read_all(landing)
    assert sorted(str(s.type) for s in header.linksets) == ["application/linkset", "application/linkset+json"]
    assert len(linksets) == 2
    record = requests.get(f"{landing}.jsonld").json()
    creators = record["creator"] if isinstance(record["creator"], list) else [record["creator"]]
    orcids = {c["rembi:orcid"]["@id"] for c in creators if "rembi:orcid" in c}
    assert orcids
    for found in (header, html, *linksets):
        assert set(_hrefs(found.authors)) == orcids
        assert found.citeAs is not None
        assert {str(s.type) for s in found.describedBy} == {
            "application/ld+json",
            "text/turtle",
            "application/n-triples",
            "application/rdf+xml",
        }
        assert found.license is not None and str(found.license.target) == record["license"]["@id"]
        assert "https://schema.org/Dataset" in _hrefs(found.types)
        assert found.items and all(s.type for s in found.items)
    items = _hrefs(header.items)
    if which == "deposited":
        assert f"{landing}/download" in items
        assert all(i.startswith(base) for i in items)
    else:  # the files where the source archive serves them, not a JSON listing here
        assert items and all(i.startswith("https://ftp.ebi.ac.uk/biostudies/fire/S-BIAD/492/S-BIAD1492/Files/") for i in items)
    # every metadata document answers in the type it is announced with, and names its landing page
    for described in header.describedBy:
        answer = requests.get(str(described.target))
        assert answer.status_code == 200 and answer.headers["Content-Type"].startswith(str(described.type))
        assert f'<{landing}>; rel="describes"' in answer.headers["Link"]


def test_linksets_link_items_and_metadata_back_to_the_landing_page(site):
    from signposting import find_signposting_http

    landing = f"{site['base']}/studies/{site['released']}"
    as_json = requests.get(f"{landing}/linkset", headers={"Accept": "application/linkset+json"})
    as_text = requests.get(f"{landing}/linkset", headers={"Accept": "application/linkset"})
    assert as_json.headers["Content-Type"].startswith("application/linkset+json")
    assert as_text.headers["Content-Type"].startswith("application/linkset")
    contexts = {c["anchor"]: c for c in as_json.json()["linkset"]}
    landing_links = contexts[landing]
    for item in landing_links["item"]:
        assert contexts[item["href"]]["collection"] == [{"href": landing, "type": "text/html"}]
    for described in landing_links["describedby"]:
        assert contexts[described["href"]]["describes"] == [{"href": landing, "type": "text/html"}]
    # the text form holds the same links (each with its anchor)
    lines = as_text.text.strip().split(",\n")
    assert len(lines) == sum(len(v) for c in contexts.values() for k, v in c.items() if k != "anchor")
    # a download names its landing page (rel=collection), as the client reads it
    for item in landing_links["item"][:3]:
        found = find_signposting_http(item["href"])
        assert [str(s.target) for s in found.signposts if s.rel == "collection"] == [landing]


def test_records_are_readable_by_browser_clients_elsewhere(site):
    landing = f"{site['base']}/studies/{HARVESTED}"
    for url, accept in (
        (f"{landing}.jsonld", None),
        (landing, "application/ld+json"),
        (landing, "text/turtle"),
        (f"{landing}.ttl", None),
        (f"{landing}/linkset", "application/linkset+json"),
    ):
        answer = requests.get(url, headers={"Origin": "https://elsewhere.example", **({"Accept": accept} if accept else {})})
        assert answer.status_code == 200 and answer.headers["Access-Control-Allow-Origin"] == "*", url
        assert "Link" in answer.headers["Access-Control-Expose-Headers"]
    etag = requests.get(f"{landing}.jsonld").headers["ETag"]
    again = requests.get(f"{landing}.jsonld", headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.headers["Access-Control-Allow-Origin"] == "*"


def test_robots_txt_lets_crawlers_fetch_every_content_url_the_records_advertise(site):
    base = site["base"]
    robots = Protego.parse(requests.get(f"{base}/robots.txt").text)

    def content_urls(node) -> list[str]:
        if isinstance(node, dict):
            found = [v["@id"] if isinstance(v, dict) else v for k, v in node.items() if k == "contentUrl"]
            return found + [u for v in node.values() for u in content_urls(v)]
        if isinstance(node, list):
            return [u for v in node for u in content_urls(v)]
        return []

    urls = [u for acc in (site["released"], HARVESTED) for u in content_urls(requests.get(f"{base}/studies/{acc}.jsonld").json())]
    assert f"{base}/studies/{site['released']}/download" in urls
    items = [str(s.target) for s in _read_all(f"{base}/studies/{site['released']}")[0].items]
    for url in urls + items:
        assert robots.can_fetch(url, "Googlebot"), url


def test_an_embargoed_studys_linkset_is_its_owners_only(site):
    url = f"{site['base']}/studies/{site['embargoed']}/linkset"
    assert requests.get(url).status_code == 404
    owner = requests.get(url, headers={"Authorization": f"Bearer {site['token']}"})
    assert owner.status_code == 200 and owner.headers["Cache-Control"] == "private, no-store"
    assert "Access-Control-Allow-Origin" not in owner.headers
    assert json.loads(owner.text)["linkset"][0]["anchor"].endswith(site["embargoed"])
