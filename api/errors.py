"""One error shape for every 4xx/5xx answer: ``{code, status, message, errors}``; never a stack trace."""

from __future__ import annotations

import logging
import re
from typing import Any, NoReturn

import marshmallow as ma
from flask import Flask, Response, current_app, redirect, render_template, request
from jinja2.utils import htmlsafe_json_dumps
from webargs.flaskparser import FlaskParser
from werkzeug.exceptions import HTTPException
from werkzeug.http import HTTP_STATUS_CODES
from werkzeug.wrappers import Response as BaseResponse

from api.context import services, settings
from api.negotiate import SUFFIXES
from catalog import identifiers
from catalog.errors import CatalogError

log = logging.getLogger(__name__)


class ErrorSchema(ma.Schema):
    """The one error shape, as the OpenAPI description documents every error answer."""

    code = ma.fields.String(required=True, metadata={"description": "A short machine-readable name, e.g. `not_found`"})
    status = ma.fields.Integer(required=True, metadata={"description": "The HTTP status code"})
    message = ma.fields.String(required=True, metadata={"description": "What went wrong, for people"})
    errors = ma.fields.List(
        ma.fields.Dict(),
        required=True,
        metadata={
            "description": "Details, each naming what it is about (`field`, `location`, `value`, `file`, `line`…) and a `message`"
        },
    )


class BadParameter(CatalogError):
    status = 400
    code = "bad_parameter"


class ArgumentsParser(FlaskParser):
    """The parser of ``@blp.arguments``: a query parameter that does not fit its schema is a :class:`BadParameter`
    (400) in the one error shape, its message the first field's, each detail naming the field and the value sent."""

    DEFAULT_VALIDATION_STATUS = 400  # what flask-smorest documents

    def handle_error(
        self, error: ma.ValidationError, req: Any, schema: ma.Schema, *, error_status_code: int | None, error_headers: Any
    ) -> NoReturn:
        details = []
        for location, fields in _as_dict(error.messages).items():
            for name, texts in _as_dict(fields).items():
                for text in texts if isinstance(texts, list) else [texts]:
                    details.append({"field": name, "value": _sent(req, location, name), "message": str(text)})
        message = details[0]["message"] if details else "the request's parameters are not valid"
        raise BadParameter(message, details)


def _as_dict(messages: Any) -> dict[str, Any]:
    return messages if isinstance(messages, dict) else {"_schema": messages}


def _sent(req: Any, location: str, name: str) -> Any:
    values = req.args if location in ("query", "querystring") else req.form if location == "form" else {}
    return values.get(name)


def error_response(status: int, code: str, message: str, errors: list[dict[str, Any]] | None = None) -> Response:
    """The error shape as JSON with ``<``, ``>``, ``&`` and ``'`` escaped (``\\u003c``…): a message that echoes a
    request's path or parameters holds no markup, whatever a client makes of the body."""
    body = htmlsafe_json_dumps(
        {"code": code, "status": status, "message": message, "errors": errors or []}, dumps=current_app.json.dumps
    )
    return Response(f"{body}\n", status=status, mimetype="application/json")


#: the media types an error is written in: the one error shape (JSON, the default), or a page for browsers
ERROR_MEDIA = ["application/json", "text/html"]
_STUDY_PATH = re.compile(r"^/(?:studies|files)/(?P<accession>[^/.]+)")


def wants_page() -> bool:
    """Whether this request's error is answered as an HTML page: its Accept header prefers ``text/html`` to JSON
    (what browsers send), and no URL suffix or ``format`` asks for another rendering. No Accept, ``*/*`` and JSON
    get the error shape."""
    last = request.path.rsplit("/", 1)[-1]
    suffix = last.rpartition(".")[2].lower() if "." in last else ""
    hint = (request.args.get("format") or request.args.get("output") or "").lower()
    if suffix in SUFFIXES or hint:
        return SUFFIXES.get(suffix) == "text/html" or hint == "html"
    if not request.accept_mimetypes:
        return False
    return request.accept_mimetypes.best_match(ERROR_MEDIA) == "text/html" and request.accept_mimetypes["text/html"] > 0


def error_page(status: int, code: str, message: str, errors: list[dict[str, Any]] | None = None) -> Response:
    """The error as a page in the site's frame (the message escaped by the template), with ways on: home, search,
    and the study the URL is about when the catalog holds it."""
    title = HTTP_STATUS_CODES.get(status, "Error")
    body = render_template(
        "error.html",
        status=status,
        code=code,
        title=title,
        message=message,
        errors=[e for e in errors or [] if isinstance(e, dict)],
        study=_study_of_request(),
        settings=settings(),
    )
    return Response(body, status=status, mimetype="text/html")


def _study_of_request() -> dict[str, str] | None:
    """The released study the requested URL is under, if the catalog holds it (else None: no link to a 404)."""
    match = _STUDY_PATH.match(request.path)
    if match is None:
        return None
    try:
        doc = services().archive.public.search.get(match["accession"])
        url = identifiers.study_iri(settings().base_url, match["accession"]) if doc else None
    except Exception:  # noqa: BLE001 - an error page answers even when the catalog cannot: no link then
        log.warning("no study link on the error page of %s", request.path, exc_info=True)
        return None
    return {"accession": doc.accession, "title": doc.title, "url": url} if doc and url else None


def _answer(status: int, code: str, message: str, errors: list[dict[str, Any]] | None = None) -> Response:
    """The error for this request: a page for a browser, else the one error shape."""
    if wants_page():
        return error_page(status, code, message, errors)
    return error_response(status, code, message, errors)


def _http_code(exc: HTTPException) -> str:
    return (exc.name or "error").lower().replace(" ", "_").replace("'", "")


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(CatalogError)
    def catalog_error(exc: CatalogError) -> Response:
        response = _answer(exc.status, exc.code, exc.message, exc.errors)
        if exc.status in (401,):
            response.headers["WWW-Authenticate"] = 'Bearer realm="bia"'
        if exc.retry_after:
            response.headers["Retry-After"] = str(exc.retry_after)
        return response

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> BaseResponse:
        if exc.code == 404 and request.routing_exception is exc and len(request.path) > 1 and request.path.endswith("/"):
            bare = request.path.rstrip("/")
            try:
                app.url_map.bind("").match(bare, method=request.method)
            except HTTPException:
                pass
            else:  # /studies/S-BIAD1/ is /studies/S-BIAD1: one URL per page
                query = request.query_string.decode("latin-1")
                return redirect(f"{request.root_path}{bare}" + (f"?{query}" if query else ""), code=308)
        errors: list[dict[str, Any]] = []
        data = getattr(exc, "data", None) or {}
        messages = data.get("messages") if isinstance(data, dict) else None
        if isinstance(messages, dict):  # webargs/flask-smorest validation: {location: {field: [messages]}}
            for location, fields in messages.items():
                # a body that is not JSON at all: {"json": ["Invalid JSON body."]}, no field to name
                by_field = fields if isinstance(fields, dict) else {"body": fields}
                for field, texts in by_field.items():
                    for text in texts if isinstance(texts, list) else [texts]:
                        errors.append({"field": field, "location": location, "message": str(text)})
        message = exc.description or exc.name or "error"
        response = _answer(exc.code or 500, _http_code(exc), str(message), errors)
        if exc.code == 405 and hasattr(exc, "valid_methods") and exc.valid_methods:
            response.headers["Allow"] = ", ".join(exc.valid_methods)
        return response

    @app.errorhandler(Exception)
    def unexpected(exc: Exception) -> Response:
        log.exception("unhandled error")
        return _answer(500, "internal_error", "the server failed to answer this request; it has been logged")
