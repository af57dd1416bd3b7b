"""Deposits over HTTP: the submission lifecycle with bearer-token auth (create, upload, file list, metadata,
validate, finalize), and the owner's own studies (including embargoed ones)."""

from __future__ import annotations

import base64
import binascii
import json
import sys
from typing import Any

from flask import Response, request

from api.body_limits import streamed_body
from api.context import services, settings
from api.errors import BadParameter
from api.openapi import AUTH, BINARY, Blueprint, errors, responses
from api.schemas import (
    AttachedFileList,
    AppliedSuggestions,
    AttachedMetadata,
    FileListArgs,
    Finalized,
    MetadataArgs,
    OwnStudies,
    StagedFile,
    SubmissionWithUrl,
    Submissions,
    SuggestionIds,
    ValidationReport,
)
from catalog import identifiers
from catalog.errors import CatalogError, Unauthorized
from catalog.records import metadata_too_large

blp = Blueprint("deposits", __name__, description="Deposit studies (bearer token: `bia token create NAME`)")
#: what every deposit operation can answer: no or a wrong token, a read-only replica
REFUSED = errors(401, 503)


class BadUpload(CatalogError):
    status = 400
    code = "bad_upload"


class ReadOnlyReplica(CatalogError):
    status = 503
    code = "read_only_replica"


def owner() -> str:
    if settings().read_only:
        raise ReadOnlyReplica("this server is a read-only replica (BIA_READ_ONLY): deposit on the catalog's writer")
    header = request.headers.get("Authorization", "")
    if not header.lower().startswith("bearer "):
        raise Unauthorized("send `Authorization: Bearer <token>` (create a token with `bia token create NAME`)")
    return services().archive.registry.owner_of_token(header[7:].strip())


def _json(body: Any, status: int = 200) -> Response:
    return Response(json.dumps(body, ensure_ascii=False, default=str), status=status, mimetype="application/json")


def _submission(sub_id: str, who: str) -> dict[str, Any]:
    sub = services().deposits.get(sub_id, who)
    sub.pop("metadata", None)
    return {**sub, "url": f"{settings().base_url}/deposits/{sub_id}"}


@blp.route("/deposits", methods=["POST"])
@blp.response(201, SubmissionWithUrl, headers={"Location": {"description": "The submission", "schema": {"type": "string"}}})
@blp.doc(operationId="createSubmission", summary="Open a submission", responses=REFUSED, **AUTH)
def create() -> Response:
    who = owner()
    sub_id = services().deposits.create(who)
    response = _json(_submission(sub_id, who), 201)
    response.headers["Location"] = f"{settings().base_url}/deposits/{sub_id}"
    return response


@blp.route("/deposits", methods=["GET"])
@blp.response(200, Submissions)
@blp.doc(operationId="listSubmissions", summary="The caller's submissions", responses=REFUSED, **AUTH)
def list_submissions() -> Response:
    who = owner()
    return _json(
        {"items": [{k: v for k, v in s.items() if k != "metadata"} for s in services().archive.registry.submissions(who)]}
    )


@blp.route("/deposits/<string:sub_id>", methods=["GET"])
@blp.response(200, SubmissionWithUrl)
@blp.doc(operationId="getSubmission", summary="A submission's state", responses=responses(REFUSED, errors(404)), **AUTH)
def get(sub_id: str) -> Response:
    return _json(_submission(sub_id, owner()))


@blp.route("/deposits/<string:sub_id>", methods=["DELETE"])
@blp.response(204, description="Discarded")
@blp.doc(
    operationId="discardSubmission",
    summary="Discard an open submission and its staged files",
    responses=responses(REFUSED, errors(404, 409)),
    **AUTH,
)
def discard(sub_id: str) -> Response:
    services().deposits.discard(sub_id, owner())
    return Response(status=204)


def _declared_md5() -> str | None:
    value = request.headers.get("Content-MD5")
    if not value:
        return None
    try:
        return base64.b64decode(value, validate=True).hex()
    except (binascii.Error, ValueError):
        raise BadUpload("Content-MD5 must be the base64 of the MD5 digest (RFC 1864)", [{"field": "Content-MD5"}]) from None


@blp.route("/deposits/<string:sub_id>/files/<path:path>", methods=["PUT"])
@blp.response(201, StagedFile, description="Staged: the file's size and checksums as stored")
@blp.doc(
    operationId="uploadFile",
    summary="Upload (stage) one file; Content-MD5 and X-Checksum-SHA256 are verified when sent",
    parameters=[
        {
            "name": "Content-MD5",
            "in": "header",
            "schema": {"type": "string"},
            "description": "base64 of the MD5 digest (RFC 1864)",
        },
        {"name": "X-Checksum-SHA256", "in": "header", "schema": {"type": "string"}, "description": "hex SHA-256 digest"},
    ],
    requestBody={
        "required": True,
        "description": "The file's bytes, streamed (any media type)",
        "content": {"*/*": {"schema": BINARY}},
    },
    responses=responses(REFUSED, errors(400, 404, 409, 422)),
    **AUTH,
)
@streamed_body
def upload(sub_id: str, path: str) -> Response:
    who = owner()
    declared = request.headers.get("Content-Length")
    if declared is not None and not declared.strip().isdigit():
        raise BadParameter(f"Content-Length {declared!r} is not a byte count", [{"field": "Content-Length", "value": declared}])
    if declared is None and "chunked" not in request.headers.get("Transfer-Encoding", "").lower():
        raise BadParameter("send the file's bytes with a Content-Length (or chunked)", [{"field": "Content-Length"}])
    size = request.content_length
    stored = services().deposits.upload(
        sub_id, who, path, request.stream, size=size, md5=_declared_md5(), sha256=request.headers.get("X-Checksum-SHA256")
    )
    return _json(stored, 201)


@blp.route("/deposits/<string:sub_id>/file-lists/<string:name>", methods=["PUT"])
@blp.arguments(FileListArgs, location="query")
@blp.response(201, AttachedFileList, description="Attached (checked at validate)")
@blp.doc(
    operationId="attachFileList",
    summary="Attach a file list (TSV, CSV or JSON: a path column plus any columns)",
    requestBody={
        "required": True,
        "description": "The file list, streamed; its name's extension tells the format",
        "content": {media: {"schema": BINARY} for media in ("text/tab-separated-values", "text/csv", "application/json")},
    },
    responses=responses(REFUSED, errors(400, 404, 409)),
    **AUTH,
)
@streamed_body
def file_list(args: dict[str, Any], sub_id: str, name: str) -> Response:
    entry = services().deposits.attach_file_list(sub_id, owner(), name, request.stream, component=args.get("component"))
    return _json({k: v for k, v in entry.items() if k != "key"}, 201)


@blp.route("/deposits/<string:sub_id>/metadata", methods=["PUT"])
@blp.arguments(MetadataArgs, location="query")
@blp.response(200, AttachedMetadata, description="Attached: the title read and notes on the reading")
@blp.doc(
    operationId="attachMetadata",
    summary="Attach the study metadata (PageTab JSON/TSV or REMBI JSON/YAML)",
    requestBody={
        "required": True,
        "description": "The metadata file (at most BIA_MAX_METADATA_BYTES)",
        "content": {
            media: {"schema": {"type": "string"}}
            for media in ("application/json", "application/yaml", "text/yaml", "text/tab-separated-values")
        },
    },
    responses=responses(REFUSED, errors(404, 409, 413, 422)),
    **AUTH,
)
def metadata(args: dict[str, Any], sub_id: str) -> Response:
    name = args.get("name") or ("study.json" if (request.mimetype or "").endswith("json") else "study.yaml")
    who = owner()
    limit = settings().max_metadata_bytes
    if request.content_length is not None and request.content_length > limit:
        raise metadata_too_large(name, request.content_length, limit)
    request.max_content_length = min(limit + 1, request.max_content_length or sys.maxsize)  # one byte over: to tell
    data = request.get_data()
    if len(data) > limit:  # a chunked body
        raise metadata_too_large(name, None, limit)
    entry = services().deposits.attach_metadata(sub_id, who, name, data, release_date=args.get("release_date"))
    return _json(entry)


@blp.route("/deposits/<string:sub_id>/validate", methods=["POST"])
@blp.response(200, ValidationReport, description="The report (a submission no longer open: the last one)")
@blp.doc(
    operationId="validateSubmission",
    summary="Validate: metadata against the shapes, file lists, staged vs listed files",
    responses=responses(REFUSED, errors(404, 409)),
    **AUTH,
)
def validate(sub_id: str) -> Response:
    report = services().deposits.validate(sub_id, owner())
    return _json(report, 200)


@blp.route("/deposits/<string:sub_id>/suggestions", methods=["POST"])
@blp.arguments(SuggestionIds)
@blp.response(200, AppliedSuggestions, description="What was filled in, and what was not (with the reason)")
@blp.doc(
    operationId="applySuggestions",
    summary="Fill chosen suggestions of the last validation (what the image files say) into the metadata (REMBI JSON/YAML)",
    responses=responses(REFUSED, errors(400, 404, 409, 422)),
    **AUTH,
)
def apply_suggestions(args: dict[str, Any], sub_id: str) -> Response:
    return _json(services().deposits.apply_suggestions(sub_id, owner(), args["ids"]))


@blp.route("/deposits/<string:sub_id>/finalize", methods=["POST"])
@blp.response(201, Finalized, headers={"Location": {"description": "The study", "schema": {"type": "string"}}})
@blp.doc(
    operationId="finalizeSubmission",
    summary="Finalize: mint the accession and store the study (released now or on its release date)",
    responses=responses(REFUSED, errors(404, 409, 422)),
    **AUTH,
)
def finalize(sub_id: str) -> Response:
    who = owner()
    accession = services().deposits.finalize(sub_id, who)
    row = services().archive.registry.study(accession)
    url = identifiers.study_iri(settings().base_url, accession)
    response = _json(
        {
            "accession": accession,
            "url": url,
            "state": row.state if row else None,
            "release_date": row.release_date if row else None,
        },
        201,
    )
    response.headers["Location"] = url
    return response


@blp.route("/me/studies", methods=["GET"])
@blp.response(200, OwnStudies)
@blp.doc(operationId="listOwnStudies", summary="The caller's studies, released and embargoed", responses=REFUSED, **AUTH)
def my_studies() -> Response:
    who = owner()
    rows = services().archive.registry.studies(owner=who)
    base = settings().base_url
    return _json(
        {
            "items": [
                {
                    "accession": r.accession,
                    "url": identifiers.study_iri(base, r.accession),
                    "title": r.title,
                    "state": r.state,
                    "release_date": r.release_date,
                    "files": r.file_count,
                }
                for r in rows
            ]
        }
    )
