"""A study's FAIR signposting linkset (RFC 9264), in JSON and in the ``Link`` syntax."""

from __future__ import annotations

from flask import Response

from api.negotiate import choose
from api.openapi import Blueprint, errors, formats, responses
from api.records import PUBLIC_RECORD, RECORD_CORS, build_document
from api.routes_studies import study_iri_or_404
from api.signposting import LINKSET_JSON, LINKSET_TEXT, linkset_contexts, linkset_json, linkset_text

blp = Blueprint("signposting", __name__, description="FAIR signposting linksets of studies")
LINKSET_SCHEMA = {
    "type": "object",
    "required": ["linkset"],
    "properties": {"linkset": {"type": "array", "items": {"type": "object"}}},
}


@blp.route("/studies/<string:accession>/linkset")
@blp.response(200, LINKSET_SCHEMA, content_type=LINKSET_JSON, description="The study's links (RFC 9264 JSON)")
@blp.doc(
    operationId="getStudyLinkset",
    summary="FAIR signposting linkset of a study: identifier, authors, metadata, licence, items, and their way back",
    responses=responses(formats(200, LINKSET_TEXT), errors(404, 406)),
)
def study_linkset(accession: str) -> Response:
    media = choose([LINKSET_JSON, LINKSET_TEXT])
    doc = build_document(study_iri_or_404(accession))
    contexts = linkset_contexts(doc)
    body = linkset_json(contexts) if media == LINKSET_JSON else linkset_text(contexts)
    response = Response(body, mimetype=media)
    response.headers["Cache-Control"] = PUBLIC_RECORD if doc.released else "private, no-store"
    if doc.released:
        response.headers.update(RECORD_CORS)
    return response
