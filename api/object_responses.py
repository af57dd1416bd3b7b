"""Answers that send a stored object's bytes: a presigned S3 redirect, or the bytes streamed, with ETag,
conditional requests (If-None-Match, If-Match, If-Range) and a single Range; and the same for bytes held in memory
(:func:`bytes_response`: a virtual store's metadata, a reference document).

A *window* serves a run of an object's bytes as if it were an object of its own (a chunk a reference document
points into an image file): its ETag names the object's MD5 and the window, Range applies within it, and it is
always streamed (a presigned URL would give the whole object).
"""

from __future__ import annotations

from typing import Any

from flask import Response, redirect, request
from werkzeug.http import unquote_etag
from werkzeug.wrappers import Response as BaseResponse

from api.context import services
from api.errors import error_response
from api.streams import streamed
from catalog.errors import PreconditionFailed
from catalog.file_store import StoredObject, content_disposition


def object_response(
    key: str,
    stored: StoredObject,
    *,
    name: str,
    filename: str | None = None,
    window: tuple[int, int] | None = None,
    media: str | None = None,
    headers: dict[str, str] | None = None,
) -> BaseResponse:
    """The answer to a GET of ``key`` (``stored``: its stat), called ``name`` in messages; ``filename`` makes it an
    attachment; ``window``: ``(offset, length)`` of the bytes to serve (see the module)."""
    store = services().archive.file_store
    if window is None:
        url = store.presigned_get_url(key, filename=filename)
        if url:
            return redirect(url, code=302)
    start, size = window if window is not None else (0, stored.size)
    tag = stored.md5 if window is None else f"{stored.md5}-{start}-{size}"
    etag = f'"{tag}"'
    out = {"Accept-Ranges": "bytes", "ETag": etag, **(headers or {})}
    if filename is not None:
        out["Content-Disposition"] = content_disposition(filename)
    if window is None:
        out["Digest"] = f"md5={stored.md5}"
    answered = preconditions(tag, name, headers)
    if answered is not None:
        return answered
    mimetype = media or stored.content_type or "application/octet-stream"
    span = requested_span(tag, size, name, headers)
    if isinstance(span, BaseResponse):
        return span
    if span is not None:
        lo, hi = span
        body = streamed(store.open_range(key, start + lo, start + hi - 1), f"{key} bytes {start + lo}-{start + hi - 1}", hi - lo)
        return sent(body, span, size, mimetype, out)
    if size == 0:
        return sent(b"", None, 0, mimetype, out)
    body = store.open_range(key, start, start + size - 1) if window is not None else store.open_range(key)
    return sent(streamed(body, key, size), None, size, mimetype, out)


def bytes_response(data: bytes, tag: str, *, name: str, media: str) -> BaseResponse:
    """The answer to a GET of an entity held in memory, ``data`` tagged ``tag``: preconditions and a single Range,
    as for a stored object."""
    answered = preconditions(tag, name)
    if answered is not None:
        return answered
    span = requested_span(tag, len(data), name)
    if isinstance(span, BaseResponse):
        return span
    headers = {"Accept-Ranges": "bytes", "ETag": f'"{tag}"'}
    return sent(data if span is None else data[span[0] : span[1]], span, len(data), media, headers)


def sent(body: Any, span: tuple[int, int] | None, size: int, mimetype: str, headers: dict[str, str]) -> Response:
    """``body`` (the bytes ``span`` of an entity of ``size`` bytes, or all of them when ``span`` is None) as a 200 or
    a 206 with its Content-Range; Content-Length says how many bytes the body holds (a HEAD's too)."""
    lo, hi = span or (0, size)
    out = {**headers, "Content-Length": str(hi - lo)}
    if span is not None:
        out["Content-Range"] = f"bytes {lo}-{hi - 1}/{size}"
    response = Response(body, status=206 if span is not None else 200, mimetype=mimetype)
    response.headers.update(out)  # after the body: bytes set a Content-Length of their own (b"" for a HEAD)
    return response


def preconditions(tag: str, name: str, headers: dict[str, str] | None = None) -> BaseResponse | None:
    """A 304 when the client's copy (If-None-Match) is the entity tagged ``tag``; 412 (raised) when If-Match names
    another; else None."""
    if request.if_none_match.contains_weak(tag):
        return Response(status=304, headers={"ETag": f'"{tag}"', **(headers or {})})
    if request.if_match and not request.if_match.contains(tag):
        raise PreconditionFailed(f'{name} has changed: its ETag is "{tag}"')
    return None


def requested_span(
    tag: str, size: int, name: str, headers: dict[str, str] | None = None
) -> tuple[int, int] | BaseResponse | None:
    """The bytes ``[lo, hi)`` of an entity of ``size`` bytes tagged ``tag`` that a GET's single Range asks for; None
    for the whole entity (no Range, several ranges, another unit, or If-Range naming another copy: RFC 9110
    13.1.5); the 416 answer for a range outside it."""
    ranges = request.range
    if ranges is None or ranges.units != "bytes" or len(ranges.ranges) != 1:
        return None
    if "If-Range" in request.headers and not _if_range_holds(tag):
        return None
    first, _last = ranges.ranges[0]
    if first < 0:  # a suffix: the last -first bytes, all of them if the entity is shorter
        span = (max(0, size + first), size) if size and first != 0 else None
    else:
        span = ranges.range_for_length(size)
    if span is None:
        response = error_response(416, "range_not_satisfiable", f"{name} has {size} bytes; the range asked is outside them")
        response.headers["Content-Range"] = f"bytes */{size}"
        response.headers.update(headers or {})
        return response
    return span


def _if_range_holds(tag: str) -> bool:
    """Whether the request's If-Range names this copy (RFC 9110 13.1.5): its strong ETag; a weak tag never matches,
    nor does a date (no Last-Modified is sent)."""
    etag, weak = unquote_etag(request.headers["If-Range"])
    return not weak and etag == tag
