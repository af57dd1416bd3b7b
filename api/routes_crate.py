"""Each study as a detached RO-Crate of the GIDE cross-archive search profile (:mod:`catalog.gide_crate`)."""

from __future__ import annotations

import json

from flask import Response

from api.context import services, settings
from api.openapi import JSONLD, Blueprint, errors, responses
from api.records import request_owner
from api.routes_studies import study_iri_or_404
from catalog.errors import NotFound
from catalog.gide_crate import study_crate

blp = Blueprint("crates", __name__, description="Studies as GIDE search RO-Crates (detached RO-Crate 1.2)")
#: the media type of an RO-Crate metadata document (RO-Crate 1.2, "Retrieving an RO-Crate")
CRATE_TYPE = "application/ld+json"
CRATE_PROFILE = "https://w3id.org/ro/crate"


def crate_url(study_iri: str) -> str:
    return f"{study_iri}/ro-crate-metadata.json"


@blp.route("/studies/<string:accession>/ro-crate-metadata.json")
@blp.response(200, JSONLD, content_type=CRATE_TYPE, description="The study's detached RO-Crate (GIDE search profile)")
@blp.doc(
    operationId="getStudyCrate",
    summary="A released study as a detached RO-Crate for cross-archive search (BioImage Archive, IDR, SSBD)",
    responses=responses(errors(404)),
)
def get_crate(accession: str) -> Response:
    iri = study_iri_or_404(accession)
    archive = services().archive
    store, files, released = archive.public.reads, archive.public.files, True
    row = archive.registry.study(accession)
    if row is None:
        raise NotFound(f"no study {accession}")
    try:
        crate = _crate(store, files, iri, accession)
    except NotFound:
        owner = request_owner()
        if owner is None or row.owner != owner or archive.private is None:
            raise NotFound(f"no released study {accession}") from None
        store, files, released = archive.private.graph, archive.private.files, False
        crate = _crate(store, files, iri, accession)
    response = Response(json.dumps(crate, ensure_ascii=False, indent=1), mimetype=CRATE_TYPE)
    response.headers["Link"] = f'<{iri}>; rel="describes"; type="text/html"'
    response.headers["Cache-Control"] = "public, max-age=300" if released else "private, no-store"
    return response


def _crate(store, files, iri: str, accession: str) -> dict:
    try:
        totals = files.totals(accession)
    except NotFound:
        totals = {"files": 0, "bytes": 0}
    return study_crate(store, iri, accession, base_url=settings().base_url, catalog_name=settings().catalog_name, files=totals)
