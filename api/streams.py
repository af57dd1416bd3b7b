"""Streamed answers that fail visibly.

Once a streamed answer's status and first bytes are sent, a failure can no longer become an error answer. It must
not end like a complete one either: :func:`streamed` logs it and raises :class:`StreamBroken` out of the body, and
the WSGI server then drops the connection without ending the body properly (gunicorn and ``bia serve``'s werkzeug
leave out the last chunk of a chunked body, or send fewer bytes than ``Content-Length``), which clients report
(curl: "transfer closed with outstanding read data remaining"; requests: ``ChunkedEncodingError``).

A source that ends early without an error (an object shorter than its recorded size) is a failure too when the
size is known (``size``): a ``Content-Length`` answer would otherwise leave the client waiting for bytes that never
come, and a zip member would hold a truncated file under a valid CRC.

granian ends a chunked body properly whatever the body raises (it logs the error): there, only answers with a
``Content-Length`` (single-file downloads) are visibly cut.
"""

from __future__ import annotations

import itertools
import logging
from typing import Iterable, Iterator

from flask import stream_with_context

from catalog.errors import CatalogError

log = logging.getLogger(__name__)


class StreamBroken(CatalogError):
    """A streamed answer's source failed: an error answer before the first byte is sent, a dropped connection
    after."""

    status = 503
    code = "stream_broken"


def checked_size(chunks: Iterable[bytes], size: int, what: str) -> Iterator[bytes]:
    """``chunks``, which must add up to exactly ``size`` bytes (else :class:`StreamBroken`)."""
    sent = 0
    for chunk in chunks:
        sent += len(chunk)
        if sent > size:
            raise StreamBroken(f"{what} has more than the {size} bytes recorded")
        yield chunk
    if sent != size:
        raise StreamBroken(f"{what} ended after {sent} of its {size} bytes")


def guarded(chunks: Iterable[bytes | str], what: str) -> Iterator[bytes]:
    """``chunks`` as bytes; a failure is logged (naming ``what`` and how far it got) and raised as
    :class:`StreamBroken`. A client that goes away (``GeneratorExit``) is no failure."""
    sent = 0
    try:
        for chunk in chunks:
            data = chunk.encode("utf-8") if isinstance(chunk, str) else chunk
            sent += len(data)
            yield data
    except Exception as exc:
        log.error("streaming %s broke off after %d bytes: %s: %s; the connection is dropped", what, sent, type(exc).__name__, exc)
        raise StreamBroken(f"streaming {what} broke off after {sent} bytes: {exc}") from exc


def streamed(chunks: Iterable[bytes | str], what: str, size: int | None = None) -> Iterator[bytes]:
    """The body of a streamed answer (run in the request's context): ``chunks``, guarded as :func:`guarded` says,
    and checked to add up to ``size`` bytes when it is given.

    Call it in the view: the first chunk is made there, so a failure before any byte is sent is an error answer in
    the one error shape (e.g. a 503 when the store does not answer), not a bare 500 of the WSGI server."""
    if size is not None:
        chunks = checked_size(chunks, size, what)  # type: ignore[arg-type]
    iterator = iter(chunks)
    first = next(iterator, None)
    head = [] if first is None else [first]
    return stream_with_context(guarded(itertools.chain(head, iterator), what))
