"""The OpenAPI description tells the truth: every operation is driven through the Flask test client over a catalog
of the demo studies, deposits and a token, and each real answer (status, media type, body), success and error, is
validated against ``/openapi.json`` by openapi-core; the description itself passes openapi-spec-validator."""

from __future__ import annotations

import base64
import hashlib
import io
import re
from dataclasses import dataclass, field
from typing import Any

import pytest
from flask_smorest.spec.plugins import FlaskPlugin
from openapi_core import Config, OpenAPI
from openapi_core.contrib.werkzeug import WerkzeugOpenAPIRequest, WerkzeugOpenAPIResponse
from openapi_core.deserializing.media_types.util import json_loads, plain_loads
from openapi_spec_validator import validate as validate_spec

from linkers.discover import link_catalog
from loaders.ngff import job as ome_zarr_job
from tests.catalog_helpers import BASE, DATA, stage_sample
from tests.test_previews import IMAGES, images_of, run_jobs
from tests.test_previews import deposit as deposit_images

MAX_BODY = 100_000  # BIA_MAX_REQUEST_BYTES here: one byte more is the error every operation can answer
HARVESTED = "S-BIAD1492"
SELECT = "SELECT ?s WHERE { ?s ?p ?o } LIMIT 2"
CONSTRUCT = "CONSTRUCT { ?s ?p ?o } WHERE { ?s ?p ?o } LIMIT 2"
SPARQL_RESULTS = [
    "application/sparql-results+json",
    "application/sparql-results+xml",
    "text/csv",
    "text/tab-separated-values",
    "application/json",
    "text/html",
]
RDF = ["text/turtle", "application/n-triples", "application/ld+json", "application/rdf+xml"]
RECORD = ["text/html", "application/ld+json", "text/turtle", "application/n-triples", "application/rdf+xml", "application/json"]
#: how the answers' bodies are read before their schema is checked (openapi-core reads only a few types itself)
READERS = {
    **dict.fromkeys(["application/ld+json", "application/sparql-results+json", "application/linkset+json"], json_loads),
    **dict.fromkeys(
        [
            "text/turtle",
            "application/n-triples",
            "application/n-quads",
            "application/rdf+xml",
            "application/xml",
            "application/sparql-results+xml",
            "text/xml",
            "application/vnd.datacite.datacite+xml",
            "text/csv",
            "text/tab-separated-values",
            "application/linkset",
        ],
        plain_loads,
    ),
}


@dataclass(frozen=True)
class Call:
    """One request (its path, headers and form name fixture values as ``{released}``…) and the status it gets."""

    method: str
    path: str
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    data: Any = None
    content_type: str | None = None
    auth: bool = False

    def __str__(self) -> str:
        accept = self.headers.get("Accept")
        return f"{self.method} {self.path}{f' [{accept}]' if accept else ''} -> {self.status}"


def get(path: str, status: int = 200, accept: str | None = None, **kwargs: Any) -> Call:
    headers = {**kwargs.pop("headers", {}), **({"Accept": accept} if accept else {})}
    return Call("GET", path, status, headers, **kwargs)


def too_large(method: str, path: str, **kwargs: Any) -> Call:
    """A body over the request limit: the 413 every operation that does not stream its body answers."""
    return Call(method, path, 413, data=b"x" * (MAX_BODY + 1), content_type="application/octet-stream", **kwargs)


def _multipart(fields: dict[str, Any]) -> dict[str, Any]:
    return {name: (io.BytesIO(value[1]), value[0]) if isinstance(value, tuple) else value for name, value in fields.items()}


FORM = {
    "title": "A form deposit",
    "description": "Typed into the deposit page.",
    "license": "CC0-1.0",
    "author_name": "Jane Doe",
    "organism": "Homo sapiens",
    "imaging_method": "confocal microscopy",
    "release_date": "2020-01-01",
}

CALLS = [
    # site
    get("/health"),
    too_large("GET", "/health"),
    get("/ready"),
    too_large("GET", "/ready"),
    get("/stats"),
    get("/stats", accept="text/html"),
    get("/stats", 406, "image/png"),
    get("/"),
    get("/", accept="application/json"),
    get("/", 406, "image/png"),
    get("/sitemap.xml"),
    get("/sitemap.xml?page=1"),
    get("/sitemap.xml?page=99", 404),
    get("/sitemap.xml?page=x", 400),
    get("/robots.txt"),
    too_large("GET", "/robots.txt"),
    get("/export.nq"),
    too_large("GET", "/export.nq"),
    get("/rembi.context.jsonld"),
    too_large("GET", "/rembi.context.jsonld"),
    get("/static/swagger-ui/swagger-ui-bundle.js"),
    get("/static/swagger-ui/swagger-ui.css"),
    get("/static/swagger-ui/no-such-asset.js", 404),
    # studies
    get("/studies"),
    get("/studies?limit=2&offset=1"),
    get("/studies", accept="text/html"),
    get("/studies?limit=many", 400),
    get("/studies?limit=0", 400),
    get("/studies?offset=-1", 400),
    get("/studies", 406, "image/png"),
    *(get("/studies/{harvested}", accept=media) for media in RECORD),
    get("/studies/{harvested}.ttl"),
    get("/studies/{harvested}.jsonld"),
    get("/studies/{harvested}.xml", 404),
    get("/studies/{harvested}", 304, "text/turtle", headers={"If-None-Match": "{record_etag}"}),
    get("/studies/{embargoed}", accept="application/ld+json", auth=True),
    get("/studies/{embargoed}", 404, "application/ld+json"),
    get("/studies/{harvested}.datacite.xml"),
    get("/studies/{harvested}", accept="application/vnd.datacite.datacite+xml"),
    get("/studies/{embargoed}.datacite.xml", 404),
    get("/studies/{embargoed}", 404, "application/vnd.datacite.datacite+xml", auth=True),
    get("/studies/{released}/{subpath}.datacite.xml", 406),
    # OAI-PMH (the protocol's errors are 200 answers too)
    get("/oai?verb=Identify"),
    get("/oai?verb=ListRecords&metadataPrefix=oai_datacite"),
    get("/oai?verb=NoSuchVerb"),
    too_large("GET", "/oai"),
    Call(
        "POST", "/oai", 200, data="verb=ListIdentifiers&metadataPrefix=oai_dc", content_type="application/x-www-form-urlencoded"
    ),
    too_large("POST", "/oai"),
    get("/studies/S-NOPE1", 404),
    get("/studies/{harvested}", 406, "image/png"),
    *(get("/studies/{released}/{subpath}", accept=media) for media in RECORD),
    get("/studies/{released}/{subpath}.ttl"),
    get("/studies/{released}/no/such/thing", 404),
    get("/links.jsonld"),
    get("/links.tsv"),
    get("/links.xml", 404),
    get("/studies/{released}/ro-crate-metadata.json"),
    get("/studies/{embargoed}/ro-crate-metadata.json", auth=True),
    get("/studies/{embargoed}/ro-crate-metadata.json", 404),
    *(get("/links/{link}", accept=media) for media in RECORD),
    get("/links/{link}.ttl"),
    get("/links/0000000000000000", 404),
    get("/links/{link}", 406, "image/png"),
    get("/studies/{released}/links"),
    get("/studies/{released}/links", accept="application/ld+json"),
    get("/studies/EMPIAR-10934/links"),
    get("/studies/{harvested}/links", accept="application/ld+json"),
    get("/studies/S-NOPE1/links", 404),
    get("/studies/{released}/links", 406, "text/turtle"),
    get("/studies/{released}/linkset"),
    get("/studies/{harvested}/linkset", accept="application/linkset"),
    get("/studies/S-NOPE1/linkset", 404),
    get("/studies/{released}/linkset", 406, "text/turtle"),
    # files
    get("/studies/{released}/files"),
    get("/studies/{released}/files?limit=2&sort=-Well&facets=Plate&filter[Plate]=1"),
    get("/studies/{released}/files?filter[path][prefix]=plate1/&filter[Concentration][gte]=2"),
    get("/studies/{released}/files", accept="text/html"),
    get("/studies/{released}/files", accept="text/csv"),
    get("/studies/{released}/files?limit=x", 400),
    get("/studies/{released}/files?filter[Plate][near]=1", 400),
    get("/studies/{released}/files?cursor=nonsense", 400),
    get("/studies/S-NOPE1/files", 404),
    get("/studies/{released}/files.csv"),
    get("/studies/{released}/files.tsv"),
    get("/studies/{released}/files.json"),
    get("/studies/{released}/files.xml", 406),
    # images
    get("/studies/{released}/images"),
    get("/studies/{released}/images?limit=1"),
    get("/studies/{released}/images?limit=0", 400),
    get("/studies/S-NOPE1/images", 404),
    get("/studies/{imaged}/images/{image_id}/thumbnail.png"),
    get("/studies/{imaged}/images/{image_id}/thumbnail.png?size=128"),
    get("/studies/{imaged}/images/{image_id}/thumbnail.png?size=100", 400),
    get("/studies/{imaged}/images/nope/thumbnail.png", 404),
    get("/studies/{imaged}/images/{image_id}/render.png?z=0&level=0"),
    get("/studies/{imaged}/images/{image_id}/render.png?z=1", 400),
    get("/studies/{embargoed}/images/{image_id}/render.png", 404),
    # OME-Zarr
    get("/studies/{image_study}/images/{virtual_image}/ome.zarr/.zattrs"),
    get("/studies/{image_study}/images/{virtual_image}/ome.zarr/0/0/0"),
    get("/studies/{image_study}/images/{virtual_image}/ome.zarr/0/0/0", 206, headers={"Range": "bytes=0-9"}),
    get("/studies/{image_study}/images/{virtual_image}/ome.zarr/nope", 404),
    get("/studies/{image_study}/images/{virtual_image}/ome.zarr/a%5Cb", 400),
    get("/studies/{image_study}/images/{virtual_image}/ome.zarr.json"),
    get("/studies/{image_study}/images/nope/ome.zarr.json", 404),
    get("/studies/{released}/files.csv?sort=nope", 400),
    get("/files/{released}/{file_id}"),
    get("/files/{harvested}/{harvested_file_id}"),
    get("/files/{released}/nope", 404),
    get("/files/{released}/{file_id}/download"),
    get("/files/{released}/{file_id}/download", 206, headers={"Range": "bytes=0-9"}),
    get("/files/{released}/{file_id}/download", 304, headers={"If-None-Match": "{file_etag}"}),
    get("/files/{released}/{file_id}/download", 412, headers={"If-Match": '"other"'}),
    get("/files/{released}/{file_id}/download", 416, headers={"Range": "bytes=99999999-"}),
    get("/files/{harvested}/{harvested_file_id}/download", 302),  # to the file at its source archive
    get("/studies/{released}/download"),
    get("/studies/{harvested}/download", 404),
    get("/studies/{released}/manifest"),
    get("/studies/{released}/manifest", accept="application/json"),
    get("/studies/S-NOPE1/manifest", 404),
    get("/studies/{released}/manifest", 406, "image/png"),
    # search
    get("/search"),
    get("/search?q=screen&sort=newest&limit=1&offset=0&filter[organism]=Homo%20sapiens"),
    get("/search?q=nuclei&filter[release_year][]=2020"),
    get("/search?q=nuclei", accept="text/html"),
    get("/search?limit=x", 400),
    get("/search?sort=best", 400),
    get("/search?filter[organism][x]=1", 400),
    get("/search?q=%22open", 400),
    get("/search", 406, "image/png"),
    # sparql
    get("/sparql"),
    *(get("/sparql", accept=media) for media in RDF),
    *(get(f"/sparql?query={SELECT}", accept=media) for media in SPARQL_RESULTS),
    *(get(f"/sparql?query={CONSTRUCT}", accept=media) for media in [*RDF, "text/html"]),
    get("/sparql?query=ASK { ?s ?p ?o }"),
    get(f"/sparql?query={SELECT}&format=json"),
    get(f"/sparql?query={SELECT}", 304, "application/sparql-results+json", headers={"If-None-Match": "{sparql_etag}"}),
    get("/sparql?query=SELECT nonsense", 400),
    get(f"/sparql?query={SELECT}", 406, "image/png"),
    get("/sparql?query=INSERT DATA { <a:b> <a:c> <a:d> }", 403),
    Call("POST", "/sparql", 200, {"Accept": "application/sparql-results+json"}, SELECT.encode(), "application/sparql-query"),
    Call("POST", "/sparql", 200, {"Accept": "text/turtle"}, f"query={CONSTRUCT}", "application/x-www-form-urlencoded"),
    Call("POST", "/sparql", 200, {"Accept": "text/csv"}, {"query": SELECT}, "multipart/form-data"),
    Call("POST", "/sparql", 400, {}, SELECT.encode(), "text/plain"),
    Call("POST", "/sparql", 400, {}, b"", "application/x-www-form-urlencoded"),
    Call("POST", "/sparql", 403, {}, b"INSERT DATA { <a:b> <a:c> <a:d> }", "application/sparql-update"),
    too_large("POST", "/sparql"),
    *(get("/.well-known/void", accept=media) for media in RDF),
    get("/.well-known/void", 406, "image/png"),
    *(get("/.well-known/sparql-examples", accept=media) for media in [*RDF, "application/json"]),
    get("/.well-known/sparql-examples", 406, "image/png"),
    # deposits
    Call("POST", "/deposits", 201, auth=True),
    Call("POST", "/deposits", 401),
    Call("GET", "/deposits", 200, auth=True),
    Call("GET", "/deposits", 401),
    Call("GET", "/deposits/{open_sub}", 200, auth=True),
    Call("GET", "/deposits/{open_sub}", 401),
    Call("GET", "/deposits/sub-nope", 404, auth=True),
    Call("GET", "/deposits/{released_sub}", 200, auth=True),
    Call("DELETE", "/deposits/{discarded_sub}", 204, auth=True),
    Call("DELETE", "/deposits/{released_sub}", 409, auth=True),
    Call("PUT", "/deposits/{open_sub}/files/extra/notes.txt", 201, {"Content-MD5": "{notes_md5}"}, b"notes", "text/plain", True),
    Call("PUT", "/deposits/{open_sub}/files/extra/bad.txt", 400, {"Content-MD5": "not base64!"}, b"notes", "text/plain", True),
    Call("PUT", "/deposits/{open_sub}/files/extra/notes.txt", 401, {}, b"notes", "text/plain"),
    Call(
        "PUT",
        "/deposits/{open_sub}/file-lists/files.tsv",
        201,
        {},
        (DATA / "files.tsv").read_bytes(),
        "text/tab-separated-values",
        True,
    ),
    Call("PUT", "/deposits/{released_sub}/file-lists/files.tsv", 409, {}, b"path\n", "text/tab-separated-values", True),
    Call(
        "PUT",
        "/deposits/{open_sub}/metadata?name=study.yaml&release_date=2020-01-01",
        200,
        {},
        (DATA / "study.yaml").read_bytes(),
        "application/yaml",
        True,
    ),
    Call("PUT", "/deposits/{open_sub}/metadata?name=study.yaml", 422, {}, b"title: [unclosed", "application/yaml", True),
    too_large("PUT", "/deposits/{open_sub}/metadata?name=study.yaml", auth=True),
    Call("POST", "/deposits/{open_sub}/validate", 200, auth=True),
    Call("POST", "/deposits/sub-nope/validate", 404, auth=True),
    Call("POST", "/deposits/{open_sub}/suggestions", 200, {}, b'{"ids": ["nope"]}', "application/json", True),
    Call("POST", "/deposits/sub-nope/suggestions", 404, {}, b'{"ids": []}', "application/json", True),
    Call("POST", "/deposits/{finalized_sub}/finalize", 201, auth=True),
    Call("POST", "/deposits/{empty_sub}/finalize", 422, auth=True),
    Call("GET", "/me/studies", 200, auth=True),
    Call("GET", "/me/studies", 401),
    # portal
    get("/deposit"),
    too_large("GET", "/deposit"),
    Call(
        "POST",
        "/deposit",
        201,
        data={**FORM, "token": "{token}", "files": ("a.tif", b"bytes")},
        content_type="multipart/form-data",
    ),
    Call(
        "POST",
        "/deposit",
        200,
        data={**FORM, "token": "{token}", "step": "fill", "files": ("a.ome.tif", b"bytes")},
        content_type="multipart/form-data",
    ),
    Call("POST", "/deposit", 401, data={**FORM, "token": "wrong"}, content_type="multipart/form-data"),
    Call("POST", "/deposit", 422, data={**FORM, "token": "{token}", "author_orcid": "0000"}, content_type="multipart/form-data"),
    get("/deposit/{open_sub}/fill"),
    too_large("GET", "/deposit/{open_sub}/fill"),
    Call("POST", "/deposit/{open_sub}/fill", 200, data="token={token}", content_type="application/x-www-form-urlencoded"),
    Call("POST", "/deposit/{open_sub}/fill", 303, data="token={token}&apply=1", content_type="application/x-www-form-urlencoded"),
    Call("POST", "/deposit/{open_sub}/fill", 401, data="token=wrong", content_type="application/x-www-form-urlencoded"),
    Call("POST", "/deposit/{fill_sub}/finalize", 201, data="token={token}", content_type="application/x-www-form-urlencoded"),
    Call("POST", "/deposit/{empty_sub}/finalize", 422, data="token={token}", content_type="application/x-www-form-urlencoded"),
    get("/my-deposits"),
    too_large("GET", "/my-deposits"),
    Call("POST", "/my-deposits", 200, data="token={token}", content_type="application/x-www-form-urlencoded"),
    Call("POST", "/my-deposits", 401, data="token=wrong", content_type="application/x-www-form-urlencoded"),
]


@pytest.fixture(scope="module")
def catalog(make_module_catalog, tmp_path_factory):
    """The app over the demo studies and deposits (released, embargoed, open, finalized, to discard, empty), with
    ``names``: what :data:`CALLS` refer to."""
    made = make_module_catalog(name="openapi", demo=True, sparql_timeout=5.0, sparql_workers=1, max_request_bytes=MAX_BODY)
    services, deposits = made.services, made.services.deposits
    token, owner = made.token("jane")
    released_sub = stage_sample(deposits, owner)
    released = deposits.finalize(released_sub, owner)
    embargoed = deposits.finalize(stage_sample(deposits, owner, release_date="2999-01-01"), owner)
    imaged, _ = deposit_images(services, {"nuclei/img2d.tif": (IMAGES / "tiff" / "stardist_img2d.tif").read_bytes()})
    run_jobs(services)
    image_study = _image_study(services, tmp_path_factory)
    link_catalog(services.archive)  # as `bia link` does: the link graphs are not empty
    names = {
        "token": token,
        "harvested": HARVESTED,
        "released": released,
        "embargoed": embargoed,
        "released_sub": released_sub,
        "open_sub": deposits.create(owner),
        "discarded_sub": deposits.create(owner),
        "empty_sub": deposits.create(owner),
        "finalized_sub": stage_sample(deposits, owner),
        "fill_sub": stage_sample(deposits, owner),
        "file_id": services.archive.public.files.query(released).items[0]["file_id"],
        "harvested_file_id": services.archive.public.files.query(HARVESTED).items[0]["file_id"],
        "image_study": image_study,
        "virtual_image": ome_zarr_job.image_id(image_study, "tiled/pyramid.ome.tif", 0),
        "notes_md5": base64.b64encode(hashlib.md5(b"notes").digest()).decode(),
        "imaged": imaged,
    }
    app = made.app()
    client = app.test_client()
    names["image_id"] = next(iter(images_of(client, imaged).values()))
    names["subpath"] = re.search(
        rf'"{BASE}/studies/{released}/(components/\w+)"', client.get(f"/studies/{released}.jsonld").text
    )[1]
    names["link"] = client.get("/links.jsonld").get_json()["@graph"][0]["@id"].rsplit("/", 1)[1]
    names["record_etag"] = client.get(f"/studies/{HARVESTED}", headers={"Accept": "text/turtle"}).headers["ETag"]
    names["file_etag"] = client.get(f"/files/{released}/{names['file_id']}/download").headers["ETag"]
    names["sparql_etag"] = client.get(f"/sparql?query={SELECT}", headers={"Accept": "application/sparql-results+json"}).headers[
        "ETag"
    ]
    return {"app": app, "client": client, "names": names, "spec": client.get("/openapi.json").get_json()}


def _image_study(services, tmp_path_factory) -> str:
    """A released study of one tiled OME-TIFF, its OME-Zarr made (a virtual store)."""
    from tests.test_ome_zarr import deposit, pyramid_tiff, work

    path = tmp_path_factory.mktemp("openapi-images") / "pyramid.ome.tif"
    pyramid_tiff(path, repeat=1)
    accession, _token = deposit(services, {"tiled/pyramid.ome.tif": path.read_bytes()})
    work(services)
    return accession


def _fill(text: str, names: dict[str, str]) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: names.get(m.group(1), m.group(0)), text)


def _fill_data(data: Any, names: dict[str, str]) -> Any:
    if isinstance(data, str):
        return _fill(data, names)
    if isinstance(data, dict):
        return _multipart({k: _fill_data(v, names) for k, v in data.items()})
    return data


def perform(client, call: Call, names: dict[str, str]):
    headers = {k: _fill(v, names) for k, v in call.headers.items()}
    if call.auth:
        headers["Authorization"] = f"Bearer {names['token']}"
    return client.open(
        _fill(call.path, names),
        method=call.method,
        headers=headers,
        data=_fill_data(call.data, names),
        content_type=call.content_type,
    )


class RoutedRequest(WerkzeugOpenAPIRequest):
    """A request as openapi-core sees it, found in the description by the rule that served it (as its Flask
    integration does): ``/studies/{accession}/files`` is not ``/studies/{accession}/{subpath}``."""

    def __init__(self, request, app) -> None:
        super().__init__(request)
        rule, _ = app.url_map.bind("localhost").match(request.path, method=request.method, return_rule=True)
        self.rule = rule

    @property
    def path_pattern(self) -> str:
        return FlaskPlugin.flaskpath2openapi(self.rule.rule)

    @property
    def body(self) -> bytes | None:
        return None  # answers are validated here, not requests (whose bodies the app has read)


@pytest.fixture(scope="module")
def openapi(catalog):
    return OpenAPI.from_dict(catalog["spec"], config=Config(extra_media_type_deserializers=READERS))


def test_the_description_is_valid_openapi(catalog):
    validate_spec(catalog["spec"])


def test_every_operation_is_named_and_answers_a_documented_success(catalog):
    operations = [
        (path, method, op)
        for path, item in catalog["spec"]["paths"].items()
        for method, op in item.items()
        if method != "parameters"
    ]
    ids = [op.get("operationId") for _, _, op in operations]
    assert all(ids) and len(set(ids)) == len(ids), ids
    for path, method, op in operations:
        success = [status for status in op["responses"] if status.startswith(("2", "3"))]
        assert success, f"{method.upper()} {path} documents no success response"
        assert all("content" in op["responses"][s] for s in success if s not in ("204", "206", "302", "304")), (path, method)


def test_the_error_shape_is_documented_as_sent(catalog):
    error = catalog["spec"]["components"]["schemas"]["Error"]
    assert error["properties"]["code"]["type"] == "string" and error["properties"]["status"]["type"] == "integer"
    assert error["properties"]["errors"]["type"] == "array" and set(error["required"]) == {"code", "status", "message", "errors"}


def test_the_calls_cover_every_operation_with_a_success_and_an_error(catalog):
    """Every operation of the description is among :data:`CALLS`, answering a success and an error."""
    app, names = catalog["app"], catalog["names"]
    adapter = app.url_map.bind("localhost")
    seen: dict[tuple[str, str], set[bool]] = {}
    for call in CALLS:
        rule, _ = adapter.match(_fill(call.path, names).split("?")[0], method=call.method, return_rule=True)
        seen.setdefault((FlaskPlugin.flaskpath2openapi(rule.rule), call.method.lower()), set()).add(call.status < 400)
    documented = {(path, method) for path, item in catalog["spec"]["paths"].items() for method in item if method != "parameters"}
    assert set(seen) == documented
    assert {op for op, kinds in seen.items() if kinds != {True, False}} == set()


@pytest.mark.parametrize("call", CALLS, ids=str)
def test_every_answer_is_as_documented(catalog, openapi, call):
    response = perform(catalog["client"], call, catalog["names"])
    assert response.status_code == call.status, response.get_data(as_text=True)[:500]
    openapi.validate_response(RoutedRequest(response.request, catalog["app"]), WerkzeugOpenAPIResponse(response))


def test_bad_query_parameters_answer_in_the_one_error_shape(catalog):
    """``@blp.arguments`` parses the query, and what does not fit is a 400 ``bad_parameter`` naming each field."""
    body = catalog["client"].get("/search?limit=many&offset=-1&q=x").get_json()
    assert body["code"] == "bad_parameter" and body["status"] == 400
    assert body["message"] == "limit must be a whole number, not 'many'"
    assert body["errors"] == [
        {"field": "limit", "value": "many", "message": "limit must be a whole number, not 'many'"},
        {"field": "offset", "value": "-1", "message": "offset must be between 0 and 100000"},
    ]
    assert catalog["client"].get("/studies?limit=&offset=").get_json()["total"] > 0  # empty numbers are the defaults
