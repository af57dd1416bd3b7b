"""One error shape for every 4xx/5xx answer: ``{code, status, message, errors}``; never a stack trace."""

from __future__ import annotations

import logging
from typing import Any, NoReturn

import marshmallow as ma
from flask import Flask, Response, current_app, redirect, request
from jinja2.utils import htmlsafe_json_dumps
from webargs.flaskparser import FlaskParser
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Response as BaseResponse

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


def _http_code(exc: HTTPException) -> str:
    return (exc.name or "error").lower().replace(" ", "_").replace("'", "")


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(CatalogError)
    def catalog_error(exc: CatalogError) -> Response:
        response = error_response(exc.status, exc.code, exc.message, exc.errors)
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
        response = error_response(exc.code or 500, _http_code(exc), str(message), errors)
        if exc.code == 405 and hasattr(exc, "valid_methods") and exc.valid_methods:
            response.headers["Allow"] = ", ".join(exc.valid_methods)
        return response

    @app.errorhandler(Exception)
    def unexpected(exc: Exception) -> Response:
        log.exception("unhandled error")
        return error_response(500, "internal_error", "the server failed to answer this request; it has been logged")
