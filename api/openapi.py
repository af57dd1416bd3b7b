"""How the API describes itself: flask-smorest's ``Api`` and ``Blueprint`` with the catalog's error shape, and the
pieces of the description that answers other than JSON (records, tables, RDF, downloads, pages) share."""

from __future__ import annotations

import copy
from http import HTTPStatus
from typing import Any

import flask_smorest
from flask import Flask
from flask_smorest.utils import deepupdate

from api.errors import ArgumentsParser, ErrorSchema

DESCRIPTION = "REMBI metadata of bioimaging studies: records, SPARQL, search, files, deposits."
#: the schema of a text answer (HTML, Turtle, CSV…) and of a binary one (a file, a zip)
TEXT = {"type": "string"}
BINARY = {"type": "string", "format": "binary"}
#: any JSON-LD document: compacted (an object) or expanded (an array of nodes)
JSONLD = {"description": "A JSON-LD document", "anyOf": [{"type": "object"}, {"type": "array", "items": {"type": "object"}}]}
HTML = "text/html"
AUTH: dict[str, Any] = {"security": [{"bearerAuth": []}]}


class Api(flask_smorest.Api):
    """The API of one app: every error answer documented as :class:`api.errors.ErrorSchema`, the bearer scheme."""

    ERROR_SCHEMA = ErrorSchema

    def __init__(self, app: Flask) -> None:
        super().__init__(app, spec_kwargs={"info": {"description": DESCRIPTION}})
        self.spec.components.security_scheme("bearerAuth", {"type": "http", "scheme": "bearer"})


class Blueprint(flask_smorest.Blueprint):
    """A flask-smorest blueprint whose ``@blp.arguments`` answer bad parameters in the one error shape."""

    ARGUMENTS_PARSER = ArgumentsParser()


def formats(status: int, *media_types: str, schema: Any = None) -> dict[int, Any]:
    """The answer of ``status`` in more ``media_types`` (text unless ``schema`` says otherwise), for
    ``@blp.doc(responses=...)``, which merges it with what ``@blp.response`` documents for that status."""
    return {status: {"content": {media_type: {"schema": schema or TEXT} for media_type in media_types}}}


def responses(*parts: dict[Any, Any]) -> dict[Any, Any]:
    """``parts`` (from :func:`formats`, :func:`errors`…) merged: two answers of one status in different media types
    become one answer in both. Statuses are numbers, as ``@blp.response`` keys them (``"4XX"``, ``"default"`` text)."""
    merged: dict[Any, Any] = {}
    for part in parts:
        merged = deepupdate(merged, copy.deepcopy(part))
    return merged


def errors(*statuses: int) -> dict[int, str]:
    """References to the documented error answers of ``statuses`` (each in the one error shape)."""
    return {status: HTTPStatus(status).name for status in statuses}


def path_choice(name: str, *values: str) -> dict[str, Any]:
    """A path parameter that takes one of ``values`` (others are answered 404 or 406)."""
    return {"name": name, "in": "path", "required": True, "schema": {"type": "string", "enum": list(values)}}


NOT_MODIFIED = {"description": "Not Modified: the copy the client holds (`If-None-Match`) is current"}
