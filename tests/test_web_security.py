"""The portal and API against hostile input, over HTTP on a real embedded catalog: only web IRIs become links,
IRI-valued fields a depositor writes are validated as such, every answer carries the security headers (a
Content-Security-Policy that lets pages run no script, Swagger UI's by nonce), error bodies never hold markup,
and the deposit form never writes a token back into the page."""

from __future__ import annotations

import base64
import hashlib
import json
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest

from api.records import RecordDocument, render_record
from catalog.record_index import body_digest
from tests.catalog_helpers import BASE, stage_sample

TEMPLATES = Path(__file__).parent.parent / "api" / "templates"
HOSTILE = [
    "javascript:alert(1)",
    "JaVaScRiPt:alert(document.domain)",
    "data:text/html,<script>alert(1)</script>",
    "vbscript:msgbox(1)",
    " javascript:alert(1)",
    "java\tscript:alert(1)",
]


@pytest.fixture(scope="module")
def catalog(make_module_catalog):
    made = make_module_catalog(name="web-security", sparql_workers=1)
    token, owner = made.token("jane")
    accession = made.services.deposits.finalize(stage_sample(made.services.deposits, owner), owner)
    app = made.app()
    client = app.test_client()
    component = client.get(f"/studies/{accession}.jsonld").get_json()["hasPart"]["@id"].removeprefix(BASE)
    return {"app": app, "client": client, "token": token, "accession": accession, "component": component}


@pytest.fixture
def client(catalog):
    return catalog["client"]


class _Links(HTMLParser):
    """Every ``href`` and ``src`` of a page, and the text of its ``<style>`` and ``<script>`` elements."""

    def __init__(self) -> None:
        super().__init__()
        self.hrefs: list[str] = []
        self.scripts: list[tuple[dict[str, str | None], str]] = []
        self.styles: list[str] = []
        self._open: tuple[str, dict[str, str | None]] | None = None

    def handle_starttag(self, tag, attrs):
        named = dict(attrs)
        self.hrefs.extend(v or "" for k, v in attrs if k in ("href", "src", "action", "formaction"))
        if tag in ("script", "style"):
            self._open = (tag, named)
            if tag == "style":
                self.styles.append("")
            else:
                self.scripts.append((named, ""))

    def handle_endtag(self, tag):
        self._open = None

    def handle_data(self, data):
        if self._open and self._open[0] == "style":
            self.styles[-1] += data
        elif self._open and self._open[0] == "script":
            attrs, text = self.scripts[-1]
            self.scripts[-1] = (attrs, text + data)


def parse(html: str) -> _Links:
    links = _Links()
    links.feed(html)
    return links


def assert_only_web_links(html: str) -> None:
    for target in parse(html).hrefs:
        assert re.match(r"(https?|ftp)://|/(?![/\\])", target), f"a link that is not to the web: {target!r}"


def _items(value):
    return value if isinstance(value, list) else [value]


def policy(response) -> dict[str, list[str]]:
    header = response.headers.get("Content-Security-Policy", "")
    return {part.split()[0]: part.split()[1:] for part in (p.strip() for p in header.split(";")) if part}


# ---------------------------------------------------------------------- item 7: links


def test_sparql_results_link_only_web_iris(client):
    binds = " ".join(f"BIND(IRI({json.dumps(iri)}) AS ?x{i})" for i, iri in enumerate(HOSTILE[:4]))
    query = f'SELECT * WHERE {{ {binds} BIND(IRI("https://example.org/ok") AS ?ok) BIND(IRI("ftp://ftp.example.org/f") AS ?f) }}'
    page = client.get("/sparql", query_string={"query": query}, headers={"Accept": "text/html"})
    assert page.status_code == 200, page.data[:500]
    html = page.get_data(as_text=True)
    assert_only_web_links(html)
    assert "<a>javascript:alert(1)</a>" in html  # shown, as text
    assert '<a href="https://example.org/ok">' in html and '<a href="ftp://ftp.example.org/f">' in html
    assert 'href="javascript' not in html.lower()


def test_record_pages_link_only_web_iris(catalog, client):
    """A stored record holding IRIs no validation would let in now (an older catalog, a harvest): the study page
    and the page of an object in it show them as text."""
    study_iri = f"{BASE}/studies/{catalog['accession']}"
    tree = client.get(f"{study_iri}.jsonld").get_json()
    hostile = iter(HOSTILE * 3)
    tree["license"] = {"@id": next(hostile)}
    _items(tree["creator"])[0]["rembi:orcid"] = {"@id": next(hostile)}
    tree["description"] = next(hostile)
    for key in ("rembi:biosamples", "hasPart"):
        for item in _items(tree[key]):
            item["@id"] = next(hostile)
            item["rembi:see_also"] = [{"@id": next(hostile)}, next(hostile)]
    body = json.dumps(tree).encode()
    with catalog["app"].test_request_context(f"/studies/{catalog['accession']}"):
        study = render_record(
            RecordDocument(study_iri, catalog["accession"], study_iri, True, body, body_digest(body)), "text/html"
        )
        part = render_record(
            RecordDocument(f"{study_iri}/x", catalog["accession"], study_iri, False, body, body_digest(body)), "text/html"
        )
    for page in (study, part):
        html = page.get_data(as_text=True)
        assert_only_web_links(html)
        assert "javascript:alert(1)" in html and '<a href="https://archive.example.org/studies/' in html


def test_no_template_writes_an_href_itself():
    """Every link goes through the one ``|href`` filter: no template writes ``href=`` (nor a scriptable src)."""
    for template in TEMPLATES.glob("*.html"):
        source = template.read_text()
        assert "href=" not in source, template.name
        assert not re.search(r"\bsrc=\"\{\{(?! swagger_ui_url )", source), template.name


@pytest.mark.parametrize(
    "field, record",
    [
        (
            "target",
            {
                "cross_references": [
                    {"target": "javascript:alert(document.domain)", "resource": "Other", "relation": "related_to"}
                ]
            },
        ),
        ("target", {"cross_references": [{"target": "data:text/html,<b>x</b>", "resource": "Other", "relation": "related_to"}]}),
        ("id", {"biosamples": [{"id": "javascript:name", "title": "Samples", "biological_entity": "cells"}]}),
        (
            "id",
            {
                "biosamples": [
                    {
                        "title": "Samples",
                        "biological_entity": "cells",
                        "organisms": [{"id": "JavaScript:alert(1)", "label": "human"}],
                    }
                ]
            },
        ),
    ],
)
def test_deposits_refuse_iris_that_are_not_web_iris(client, catalog, field, record):
    auth = {"Authorization": f"Bearer {catalog['token']}"}
    sub = client.post("/deposits", headers=auth).get_json()["id"]
    study = {"title": "Hostile links", "license": "CC0-1.0", "authors": [{"name": "Jane Doe"}], **record}
    assert client.put(f"/deposits/{sub}/metadata?name=study.json", data=json.dumps(study), headers=auth).status_code == 200
    report = client.post(f"/deposits/{sub}/validate", headers=auth).get_json()
    assert not report["valid"]
    issues = [e for e in report["errors"] if e["path"] == field and e["file"] == "study.json"]
    assert any("is not an http, https or ftp IRI" in e["message"] for e in issues), report["errors"]
    final = client.post(f"/deposits/{sub}/finalize", headers=auth)
    assert final.status_code == 422 and any(e["path"] == field for e in final.get_json()["errors"])


def test_deposits_keep_web_iris_and_ontology_curies(client, catalog):
    auth = {"Authorization": f"Bearer {catalog['token']}"}
    sub = client.post("/deposits", headers=auth).get_json()["id"]
    study = {
        "title": "Good links",
        "license": "CC0-1.0",
        "authors": [{"name": "Jane Doe"}],
        "biosamples": [
            {
                "title": "Samples",
                "biological_entity": "cells",
                "organisms": [{"id": "NCBITaxon:9606", "label": "Homo sapiens"}, {"id": "EFO:0000001", "label": "x"}],
            }
        ],
        "cross_references": [
            {"target": "HTTPS://www.ebi.ac.uk/empiar/EMPIAR-10002/", "resource": "EMPIAR", "relation": "related_to"},
            {"target": "ftp://ftp.ebi.ac.uk/pub/databases/emdb/", "resource": "Other", "relation": "related_to"},
        ],
    }
    client.put(f"/deposits/{sub}/metadata?name=study.json", data=json.dumps(study), headers=auth)
    report = client.post(f"/deposits/{sub}/validate", headers=auth).get_json()
    assert not [e for e in report["errors"] if e.get("path") in ("id", "target")], report["errors"]
    client.delete(f"/deposits/{sub}", headers=auth)


# ---------------------------------------------------------------------- item 7: headers


def test_every_answer_is_nosniff_and_not_framable(client, catalog):
    answers = [
        client.get("/health"),
        client.get("/"),
        client.get("/no/such/page"),
        client.get("/openapi.json"),
        client.get("/static/swagger-ui/swagger-ui-bundle.js"),
        client.get(f"/studies/{catalog['accession']}.ttl"),
        client.get("/sitemap.xml"),
        client.post("/deposits"),
        client.get("/docs"),
    ]
    for answer in answers:
        answer.get_data()  # a streamed answer (the sitemap) is read to its end
        assert answer.headers["X-Content-Type-Options"] == "nosniff", answer.request.path
        assert answer.headers["X-Frame-Options"] == "DENY"
        assert policy(answer)["frame-ancestors"] == ["'none'"]
    for answer in (a for a in answers if a.mimetype != "text/html"):
        assert policy(answer)["default-src"] == ["'none'"] and "sandbox" in policy(answer)


@pytest.mark.parametrize(
    "path",
    [
        "/",
        "/studies",
        "/search?q=HeLa",
        "/sparql",
        "/deposit",
        "/my-deposits",
        "/stats",
        "/studies/{accession}",
        "/studies/{accession}/files",
        "{component}",
    ],
)
def test_pages_may_run_no_script_and_load_nothing_from_elsewhere(client, catalog, path):
    page = client.get(path.format(**catalog), headers={"Accept": "text/html"})
    assert page.mimetype == "text/html", page.data[:300]
    rules = policy(page)
    assert rules["default-src"] == ["'none'"] and "script-src" not in rules  # default-src 'none': no script at all
    assert rules["base-uri"] == ["'none'"] and rules["img-src"] == ["'self'"]
    assert set(rules["form-action"]) <= {"'self'", BASE}
    found = parse(page.get_data(as_text=True))
    for css in found.styles:  # the inline stylesheet is allowed by its hash, nothing else is
        digest = base64.b64encode(hashlib.sha256(css.encode()).digest()).decode()
        assert rules["style-src"] == [f"'sha256-{digest}'"]
    assert found.styles, "the pages keep their inline stylesheet"
    assert all(attrs.get("type") == "application/ld+json" for attrs, _text in found.scripts)  # data blocks only


def test_repeated_sparql_answers_keep_their_headers(client):
    query = {"query": "SELECT (COUNT(*) AS ?n) WHERE { ?s ?p ?o }"}
    first, second = (client.get("/sparql", query_string=query, headers={"Accept": "text/html"}) for _ in range(2))
    assert first.headers.get("ETag") and first.headers["ETag"] == second.headers["ETag"]  # the second is a cached replay
    for answer in (first, second):
        assert answer.headers["X-Content-Type-Options"] == "nosniff" and policy(answer)["default-src"] == ["'none'"]


def test_docs_run_only_swagger_ui_from_this_site(client):
    first, second = client.get("/docs"), client.get("/docs")
    rules = policy(first)
    nonce = next(s for s in rules["script-src"] if s.startswith("'nonce-"))[len("'nonce-") : -1]
    assert rules["default-src"] == ["'none'"] and set(rules["script-src"]) == {"'self'", f"'nonce-{nonce}'"}
    assert rules["connect-src"] == ["'self'"] and "'unsafe-inline'" not in first.headers["Content-Security-Policy"]
    scripts = parse(first.get_data(as_text=True)).scripts
    inline = [attrs for attrs, text in scripts if text.strip()]
    assert inline == [{"nonce": nonce}]
    assert all(attrs["src"].startswith("/static/swagger-ui/") for attrs, text in scripts if not text.strip())
    assert policy(second)["script-src"] != rules["script-src"]  # a nonce per answer
    assert "validatorUrl: null" in first.get_data(as_text=True)  # no badge fetched from elsewhere


def test_the_docs_policy_stays_with_the_docs(client):
    """A streamed answer still being read keeps its app context (and ``g``) alive; the next page's policy is its own."""
    streaming = client.get("/sitemap.xml")  # not read yet
    assert "script-src" in policy(client.get("/docs"))
    assert "script-src" not in policy(client.get("/", headers={"Accept": "text/html"}))
    streaming.get_data()


# ---------------------------------------------------------------------- item 14: tokens and error bodies


@pytest.mark.parametrize(
    "path",
    [
        "/<script>alert(1)</script>",
        "/studies/<script>alert(1)</script>",
        "/studies/{accession}/<script>alert(1)</script>",
        "/files/<script>/1",
        "/studies/{accession}/files?sort=<script>",
        "/sparql?query=SELECT%20<script>",
        "/deposits/<script>",
    ],
)
def test_error_bodies_hold_no_markup(client, catalog, path):
    for accept in ("application/json", "*/*"):
        answer = client.get(path.format(accession=catalog["accession"]), headers={"Accept": accept})
        assert 400 <= answer.status_code < 500
        assert answer.mimetype == "application/json" and answer.headers["X-Content-Type-Options"] == "nosniff"
        assert b"<" not in answer.data and b">" not in answer.data
        assert set(answer.get_json()) == {"code", "status", "message", "errors"}
    # a browser (Accept prefers text/html) gets a page in the site's frame: the markup it sent is escaped there
    page = client.get(path.format(accession=catalog["accession"]), headers={"Accept": "text/html"})
    assert 400 <= page.status_code < 500
    assert page.mimetype == "text/html" and page.headers["X-Content-Type-Options"] == "nosniff"
    assert b"<script" not in page.data.lower() and b'<p class="error" role="alert">' in page.data
    echoed = client.get(f"/studies/{catalog['accession']}/<script>alert(1)</script>").get_json()["message"]
    assert echoed.endswith("/<script>alert(1)</script>")  # the client reads what it sent, unescaped by JSON


def test_a_failed_form_deposit_never_writes_the_token_back(client, catalog):
    token = catalog["token"]
    for form in (
        {"token": token, "title": "Kept title", "author_orcid": "https://orcid.org/0000"},
        {"token": token + "x", "title": "Kept title"},
    ):
        page = client.post("/deposit", data=form)
        assert page.status_code in (401, 422)
        html = page.get_data(as_text=True)
        assert token not in html and 'value="Kept title"' in html
