"""The request-body limit (``BIA_MAX_REQUEST_BYTES``): every endpoint but those streaming a body to the file store
answers a larger body with a 413 in the one error shape: at once when ``Content-Length`` says so, and as soon as a
chunked body runs past the limit (werkzeug alone would cut such a body short without a word)."""

from __future__ import annotations

import io
import sys
from collections.abc import Callable
from typing import Any, BinaryIO, TypeVar

from flask import Flask, request
from werkzeug.exceptions import RequestEntityTooLarge

View = TypeVar("View", bound=Callable[..., Any])


def streamed_body(view: View) -> View:
    """Mark a view that streams its body to the file store (uploads of files and file lists): no size limit here,
    the body never sits in memory and the deposit's own checks bound it. Put it under ``@blp.route``."""
    view.streamed_body = True  # type: ignore[attr-defined]
    return view


def limit_request_bodies(app: Flask, max_bytes: int) -> None:
    """Refuse request bodies over ``max_bytes`` except for views marked :func:`streamed_body`."""
    app.config["MAX_CONTENT_LENGTH"] = max_bytes

    @app.before_request
    def refuse_large_bodies() -> None:
        view = app.view_functions.get(request.endpoint or "")
        if getattr(view, "streamed_body", False):
            request.max_content_length = sys.maxsize  # None would fall back to MAX_CONTENT_LENGTH (Flask 3.1)
            return
        size = request.content_length
        if size is not None and size > max_bytes:
            raise _too_large(f"the request body has {size} bytes", max_bytes)
        if size is None and request.environ.get("wsgi.input_terminated"):
            cap_chunked_body(max_bytes)


def cap_chunked_body(max_bytes: int) -> None:
    """Make reading a chunked body of the current request raise a 413 past ``max_bytes`` (call it before the body is
    read; a smaller cap set later wins)."""
    request.environ["wsgi.input"] = _Capped(request.environ["wsgi.input"], max_bytes)
    request.max_content_length = max_bytes + 1  # werkzeug stops reading at its limit: let it ask for one more byte


def _too_large(what: str, max_bytes: int) -> RequestEntityTooLarge:
    return RequestEntityTooLarge(f"{what}; this server takes at most {max_bytes} (BIA_MAX_REQUEST_BYTES)")


class _Capped(io.RawIOBase):
    """A request body that raises :class:`RequestEntityTooLarge` when more than ``limit`` bytes come through."""

    def __init__(self, stream: BinaryIO, limit: int) -> None:
        super().__init__()
        self._stream, self._limit, self._seen = stream, limit, 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self._stream.read(len(buffer))
        self._seen += len(data)
        if self._seen > self._limit:
            raise _too_large("the request body is longer", self._limit)
        buffer[: len(data)] = data
        return len(data)
