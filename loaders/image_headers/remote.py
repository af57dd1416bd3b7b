"""Headers of files held elsewhere, read by HTTP Range requests made in a sandboxed worker.

Two kinds of file are read this way: a harvested study's files, which its source archive holds (BioStudies, EMPIAR),
and objects of an S3 file store (through a presigned GET URL, :mod:`.stored`). Either way the caller hands a worker
(:meth:`.pool.HeaderPool.read_url`) a URL it made itself, and the worker's :class:`HttpRanges` fetches byte ranges of
it (the first :data:`FIRST_REQUEST` bytes, then what the readers ask for, in :class:`~.sources.ReadAhead` blocks of
that size) and answers JSON: no byte of the file is parsed in the caller.

Where a harvested file is: :func:`file_url` makes its URL from the configured base URL of its source
(``BIA_HEADER_SOURCES``, :class:`catalog.config.Settings`), filled in from the study's accession, plus the file's
path, percent-encoded and kept below that base. Nothing else is ever asked: not a URL written in a record or a file
list, not a redirect to another host (a redirect is followed only on the same scheme, host and port).

What the source answers decides the outcome. 404, 410, 416, another 4xx or 5xx, a redirect elsewhere, an answer
that ignores the range past the first block, or no answer within ``BIA_HEADER_REQUEST_TIMEOUT``: the file is
``unreadable`` with that reason. A refused or reset connection, an unknown host, 503 or 429: the source is down,
not the file at fault; the read raises :class:`SourceUnavailable` (a 503 error), which the job queue retries later
without counting an attempt (:func:`catalog.errors.is_transient`).

A serving process fetches bytes of a harvested file too, for a request it answers with them: :mod:`.window`.
"""

from __future__ import annotations

import re
import time
from typing import Any
from urllib.parse import quote, urljoin, urlsplit

from catalog.errors import CatalogError

#: bytes of the first request and of each block after it: a TIFF or MRC without embedded OME-XML is read in 1-3
FIRST_REQUEST = 64 << 10
#: redirects followed (same scheme, host and port only)
MAX_REDIRECTS = 3
#: answers that mean the source is down, not that the file is at fault
TRANSIENT_STATUSES = (429, 503)
_BIOSTUDIES = re.compile(r"(S-[A-Z]+)(\d+)")
_EMPIAR = re.compile(r"EMPIAR-(\d+)")


class SourceUnavailable(CatalogError):
    """The source archive's file server could not be reached or is busy: try again later."""

    status = 503
    code = "source_unavailable"


class NotLocated(Exception):
    """A harvested file whose URL cannot be made (a path that leaves its study's folder)."""


class NoSource(NotLocated):
    """No file server is configured for the file's source archive."""


# ---------------------------------------------------------------------- where a harvested file is


def source_of(accession: str) -> str | None:
    """The source archive holding a harvested study's files, by its accession: ``biostudies`` (``S-BIAD590``,
    ``S-BSST651``: BioStudies and the BioImage Archive), ``empiar`` (``EMPIAR-10934``); None for others."""
    if _BIOSTUDIES.fullmatch(accession):
        return "biostudies"
    if _EMPIAR.fullmatch(accession):
        return "empiar"
    return None


def _fill(template: str, accession: str) -> str:
    """A base URL template with the accession's parts filled in (``{relpath}``: BioStudies' folder of the study,
    ``S-BIAD/590/S-BIAD590``, the last three digits of its number zero-padded; ``{number}``: its digits)."""
    found = _BIOSTUDIES.fullmatch(accession) or _EMPIAR.fullmatch(accession)
    number = found.groups()[-1] if found else ""
    relpath = ""
    if (biostudies := _BIOSTUDIES.fullmatch(accession)) is not None:
        relpath = f"{biostudies.group(1)}/{int(biostudies.group(2)) % 1000:03d}/{accession}"
    for name, value in (("accession", accession), ("relpath", relpath), ("number", number)):
        if "{" + name + "}" in template and not value:
            raise NotLocated(f"the {name} of {accession!r} is unknown")
        template = template.replace("{" + name + "}", quote(value, safe="/"))
    return template


def origin(url: str) -> tuple[str, str, int | None]:
    """Scheme, host and port of a URL (the port as given, or the scheme's)."""
    parts = urlsplit(url)
    return parts.scheme.lower(), (parts.hostname or "").lower(), parts.port or {"http": 80, "https": 443}.get(parts.scheme)


def file_url(sources: tuple[tuple[str, str], ...], source: str, accession: str, path: str) -> str:
    """The URL of the file ``path`` of the harvested study ``accession`` at ``source``: the source's configured
    base with the path appended (percent-encoded; ``.`` and ``..`` segments refused). Raises :class:`NotLocated`."""
    template = dict(sources).get(source)
    if template is None:
        raise NoSource(f"no file server is configured for {source} (BIA_HEADER_SOURCES)")
    segments = path.split("/")
    if not path or "\\" in path or any(s in ("", ".", "..") for s in segments):
        raise NotLocated(f"{path!r} is not a path inside the study's folder")
    base = _fill(template, accession)
    base = base if base.endswith("/") else base + "/"
    url = base + quote(path, safe="/")
    if origin(url) != origin(base) or not url.startswith(base):  # cannot happen with a quoted path: checked anyway
        raise NotLocated(f"{path!r} leaves the file server of {source}")
    return url


# ---------------------------------------------------------------------- the worker's side


class SourceFailed(Exception):
    """An answer (or no answer in time) that makes the file unreadable: the reason says which."""


class NoSuchObject(SourceFailed):
    """The source answered 404 or 410: nothing is there."""


class SourceTimedOut(SourceFailed):
    """No answer, or not all of it, within the timeout."""


class SourceDown(Exception):
    """The source cannot be reached or is busy: the reason says how."""


_HTTP: Any = None


def _http() -> Any:
    """One connection pool per worker process (kept-alive connections between a file's requests and files)."""
    global _HTTP
    if _HTTP is None:
        import urllib3

        _HTTP = urllib3.PoolManager(num_pools=8, maxsize=2, retries=False)
    return _HTTP


class HttpRanges:
    """A :class:`~.sources.ByteSource` over ``url``, one GET with a ``Range`` header per :meth:`read`.

    :meth:`open` makes the first request (``first`` bytes from the start), which gives the size (``Content-Range``)
    when it was not known; its bytes answer reads within them. Every request must end within ``timeout`` seconds,
    and at most ``cap`` bytes are fetched in all. ``requests`` and ``fetched`` count what was asked of the server.
    """

    def __init__(
        self, url: str, name: str, size: int | None, *, timeout: float, cap: int, first: int = FIRST_REQUEST, http: Any = None
    ):
        self.url, self.name, self.size = url, name, size
        #: the connection pool asked (default: the worker process's)
        self.http = http
        self.timeout, self.cap, self.first_size = timeout, cap, first
        self.requests = self.fetched = 0
        self.first = b""
        #: why the source failed during the read (the readers only see an exception)
        self.failure: SourceFailed | SourceDown | None = None

    def open(self) -> None:
        self.first = self._get(0, self.first_size if self.size is None else min(self.first_size, self.size))

    def read(self, offset: int, length: int) -> bytes:
        if self.size is not None:
            length = min(length, self.size - offset)
        if length <= 0:
            return b""
        if offset + length <= len(self.first):
            return self.first[offset : offset + length]
        try:
            return self._get(offset, length)
        except (SourceFailed, SourceDown) as exc:
            self.failure = exc
            raise

    def _get(self, offset: int, length: int) -> bytes:
        from .sources import ByteCapExceeded

        if self.fetched + length > self.cap:
            raise ByteCapExceeded(f"fetching {length:,} bytes at {offset:,} would pass the {self.cap:,}-byte cap")
        if length <= 0:
            return b""
        url, deadline = self.url, time.monotonic() + self.timeout
        for _ in range(MAX_REDIRECTS + 1):
            self.requests += 1
            response = self._request(url, offset, length, deadline)
            try:
                target = _redirect(response, url)
                if target is None:
                    data = self._body(response, offset, length, deadline)
                    self.fetched += len(data)
                    self.url = url  # after a redirect (same host), ask where it led
                    return data
                url = target
            finally:
                _done_with(response)
        raise SourceFailed(f"more than {MAX_REDIRECTS} redirects")

    def _request(self, url: str, offset: int, length: int, deadline: float) -> Any:
        import urllib3

        left = max(0.01, deadline - time.monotonic())
        try:
            return (self.http or _http()).request(
                "GET",
                url,
                headers={"Range": f"bytes={offset}-{offset + length - 1}", "Accept-Encoding": "identity"},
                preload_content=False,
                redirect=False,
                timeout=urllib3.Timeout(connect=left, read=left),
            )
        except urllib3.exceptions.NewConnectionError as exc:  # refused, unknown host (a ConnectTimeoutError too)
            raise SourceDown(f"cannot reach {_where(url)}: {_short(exc)}") from None
        except urllib3.exceptions.TimeoutError:
            raise SourceTimedOut(f"timed out: no answer within {self.timeout:g} s") from None
        except urllib3.exceptions.HTTPError as exc:
            if _not_http(exc):
                raise SourceFailed(f"{_where(url)} does not answer in HTTP: {_short(exc)}") from None
            raise SourceDown(f"cannot reach {_where(url)}: {_short(exc)}") from None

    def _body(self, response: Any, offset: int, length: int, deadline: float) -> bytes:
        status = response.status
        if status in TRANSIENT_STATUSES:
            raise SourceDown(f"{_where(self.url)} answered {status} (busy or down)")
        if status == 200 and offset == 0:  # the whole file (a server that ignores Range, or a small file)
            declared = response.headers.get("Content-Length")
            if self.size is None and declared and declared.isdigit():
                self.size = int(declared)
        elif status == 206:
            start, total = _content_range(response.headers.get("Content-Range"))
            if start != offset:
                raise SourceFailed(f"asked for bytes from {offset:,}, got bytes from {start}")
            if self.size is None:
                self.size = total
            elif total is not None and total != self.size:
                raise SourceFailed(f"the file is now {total:,} bytes, not {self.size:,}: it changed at the source")
        elif status == 200:
            raise SourceFailed("the source does not answer Range requests (200 to a range past the start)")
        elif status in (404, 410):
            raise NoSuchObject(f"the source answered {status} (no such file)")
        else:
            raise SourceFailed(f"the source answered {status}")
        return self._read_body(response, length, deadline)

    def _read_body(self, response: Any, length: int, deadline: float) -> bytes:
        import urllib3

        chunks, got = [], 0
        try:
            while got < length:
                if time.monotonic() > deadline:
                    raise SourceTimedOut(f"timed out: the answer took longer than {self.timeout:g} s")
                chunk = response.read1(min(64 << 10, length - got))
                if not chunk:
                    break
                chunks.append(chunk)
                got += len(chunk)
        except urllib3.exceptions.TimeoutError:
            raise SourceTimedOut(f"timed out: the answer stalled for {self.timeout:g} s") from None
        except urllib3.exceptions.HTTPError as exc:
            raise SourceDown(f"the connection to {_where(self.url)} broke: {_short(exc)}") from None
        return b"".join(chunks)[:length]


def _not_http(exc: BaseException) -> bool:
    """Whether an error is an answer that is not HTTP (a bad status line, too many or too long header lines), not a
    connection closed or reset (which is an outage)."""
    import http.client

    causes = [exc, *getattr(exc, "args", ()), exc.__cause__, exc.__context__]
    return any(
        isinstance(cause, http.client.HTTPException)
        and not isinstance(cause, (http.client.RemoteDisconnected, http.client.IncompleteRead))
        for cause in causes
    )


def _done_with(response: Any) -> None:
    """Give the connection back for the next request when its answer was read to the end; else close it (an
    unread rest of an answer, e.g. a whole file sent for a range, is never read)."""
    if response.length_remaining == 0:
        response.drain_conn()  # nothing left: marks the answer read, so the connection can carry the next request
    else:
        response.close()
    response.release_conn()


def _redirect(response: Any, url: str) -> str | None:
    """Where a redirect points (None: not a redirect); a redirect to another scheme, host or port is refused."""
    if response.status not in (301, 302, 303, 307, 308):
        return None
    location = response.headers.get("Location")
    if not location:
        raise SourceFailed(f"a {response.status} redirect without a Location")
    if "\\" in location or any(ord(c) < 0x21 or ord(c) == 0x7F for c in location):
        raise SourceFailed("redirected to an address with a backslash, a space or a control character: refused")
    try:
        target = urljoin(url, location)
        same = _plain_origin(target) == _plain_origin(url)
    except ValueError:
        raise SourceFailed(f"redirected to an address that cannot be read ({location[:100]!r})") from None
    if not same:
        raise SourceFailed(f"redirected to another host ({_where(target)}): refused")
    return target


def _plain_origin(url: str) -> tuple[str, str, int | None]:
    """:func:`origin` of a URL with no user part, read alike by ``urllib.parse`` and by urllib3 (which connects):
    ValueError otherwise (two parsers that disagree name two hosts, one of them not the source)."""
    from urllib3.util import parse_url

    parsed = parse_url(url)
    found = origin(url)
    if urlsplit(url).username is not None or parsed.auth is not None:
        raise ValueError("a user part")
    if (parsed.host or "").lower().strip("[]") != found[1].strip("[]") or (parsed.port or found[2]) != found[2]:
        raise ValueError("parsers disagree on the host")
    return found


def _content_range(value: str | None) -> tuple[int, int | None]:
    found = re.fullmatch(r"\s*bytes\s+(\d+)-(\d+)/(\d+|\*)\s*", value or "")
    if not found:
        raise SourceFailed(f"a 206 answer without a usable Content-Range ({(value or '')[:80]!r})")
    return int(found.group(1)), None if found.group(3) == "*" else int(found.group(3))


def _where(url: str) -> str:
    scheme, host, port = origin(url)
    return f"{scheme}://{host}:{port}"


def _short(exc: BaseException) -> str:
    return str(exc)[:300]


def read_url_in_worker(url: str, name: str, size: int | None, max_bytes: int, timeout: float) -> dict[str, Any]:
    """The worker's side of :meth:`.pool.HeaderPool.read_url`: ``{"headers": …}`` (whose ``reads`` and
    ``bytes_read`` are the range requests made and the bytes they fetched), or ``{"transient": reason}``."""
    from .model import ImageHeaders
    from .read import read_source
    from .sources import ReadAhead

    ranges = HttpRanges(url, name, size, timeout=timeout, cap=max_bytes + 2 * FIRST_REQUEST)
    try:
        ranges.open()
    except SourceDown as exc:
        return {"transient": str(exc)}
    except SourceFailed as exc:
        return {"headers": _counted(ImageHeaders(source=name).fail("unreadable", str(exc)), ranges).to_dict()}
    headers = read_source(ReadAhead(ranges, block=FIRST_REQUEST), max_bytes=max_bytes, fatal=(MemoryError, SystemError))
    if isinstance(ranges.failure, SourceDown):
        return {"transient": str(ranges.failure)}
    if ranges.failure is not None and headers.status != "ok":
        headers.fail("unreadable", str(ranges.failure))
    return {"headers": _counted(headers, ranges).to_dict()}


def _counted(headers: Any, ranges: HttpRanges) -> Any:
    headers.reads, headers.bytes_read = ranges.requests, ranges.fetched
    return headers


# ---------------------------------------------------------------------- other workers reading a URL


def open_url(
    url: str, name: str, size: int | None, *, cap: int, timeout: float, block: int = FIRST_REQUEST
) -> tuple[Any, HttpRanges]:
    """A seekable binary file over ``url`` for a worker's library (the previews' renderer), and the
    :class:`HttpRanges` below it (whose ``failure`` says why a read failed): a :class:`~.sources.CountingReader` (at
    most ``cap`` bytes) over :class:`~.sources.ReadAhead` blocks of ``block`` bytes. Raises :class:`SourceFailed` or
    :class:`SourceDown` when the first request fails."""
    from .sources import CountingReader, ReadAhead

    ranges = HttpRanges(url, name, size, timeout=timeout, cap=cap + 2 * block, first=block)
    ranges.open()
    return CountingReader(ReadAhead(ranges, block=block, keep=max(4, (32 << 20) // block)), cap), ranges


def fetch_to_file(url: str, name: str, size: int | None, target: str, *, cap: int, timeout: float, part: int = 8 << 20) -> int:
    """Copy the file at ``url`` to the local file ``target`` by Range requests of ``part`` bytes (for a library that
    needs a real file); its size. Refuses a file over ``cap`` bytes (:class:`~.sources.ByteCapExceeded`) before
    fetching past it; raises :class:`SourceFailed` or :class:`SourceDown` as :class:`HttpRanges` does."""
    from .sources import ByteCapExceeded

    if size is not None and size > cap:
        raise ByteCapExceeded(f"{name} is {size:,} bytes, over the {cap:,}-byte cap")
    ranges = HttpRanges(url, name, size, timeout=timeout, cap=cap, first=min(part, cap))
    ranges.open()
    if ranges.size is not None and ranges.size > cap:
        raise ByteCapExceeded(f"{name} is {ranges.size:,} bytes, over the {cap:,}-byte cap")
    with open(target, "wb") as out:
        out.write(ranges.first)
        offset = len(ranges.first)
        while ranges.size is None or offset < ranges.size:
            data = ranges.read(offset, part)
            if not data:
                break
            out.write(data)
            offset += len(data)
    if ranges.size is not None and offset != ranges.size:
        raise SourceFailed(f"the source sent {offset:,} of {ranges.size:,} bytes")
    return offset


# ---------------------------------------------------------------------- a Zarr store at the source


#: metadata objects of one Zarr store fetched from its source at most (each is a request; a plate of many wells and
#: fields needs one or two per well and per field)
MAX_REMOTE_ZARR_OBJECTS = 2_000


class HttpKeys:
    """A :class:`~.sources.KeySource` over a Zarr store at a URL (a folder at a source's file server): each key is one
    GET of the folder's URL plus the key (percent-encoded, never leaving the folder); 404 or 410 is an absent key.
    At most ``max_objects`` keys are asked for; what the source did wrong is kept in :attr:`failure`, and once it
    failed (or the cap was reached) every key raises it."""

    def __init__(self, url: str, name: str, *, timeout: float, max_objects: int = MAX_REMOTE_ZARR_OBJECTS) -> None:
        self.base = url if url.endswith("/") else url + "/"
        self.name, self.timeout, self.max_objects = name, timeout, max_objects
        self.requests = self.fetched = self.asked = self.found = 0
        self.failure: SourceFailed | SourceDown | None = None

    def get(self, key: str, limit: int) -> bytes | None:
        from .sources import ByteCapExceeded

        segments = key.split("/")
        if not key or "\\" in key or any(s in ("", ".", "..") for s in segments):
            return None  # a path a store's metadata names that is not inside the store
        if self.failure is not None:  # the source failed, or the cap was reached: nothing more is asked
            raise self.failure
        if self.asked >= self.max_objects:
            self.failure = SourceFailed(f"reading the store needs more than {self.max_objects:,} requests to the source")
            raise self.failure
        self.asked += 1
        ranges = HttpRanges(self.base + quote(key, safe="/"), key, None, timeout=self.timeout, cap=limit + 1, first=limit + 1)
        try:
            ranges.open()
        except NoSuchObject:
            return None
        except (SourceFailed, SourceDown) as exc:
            self.failure = exc
            raise
        finally:
            self.requests, self.fetched = self.requests + ranges.requests, self.fetched + ranges.fetched
        if (ranges.size or 0) > limit or len(ranges.first) > limit:
            raise ByteCapExceeded(f"{key} is over what is left of the byte cap ({limit:,})")
        self.found += 1
        return ranges.first


def read_zarr_url_in_worker(url: str, name: str, max_bytes: int, timeout: float) -> dict[str, Any]:
    """The worker's side of :meth:`.pool.HeaderPool.read_zarr_url`: the headers of the Zarr store at the folder
    ``url`` (its metadata objects only), as :func:`read_url_in_worker` answers."""
    from .read import ZARR_MARKERS, read_keys

    keys = HttpKeys(url, name, timeout=timeout)
    headers = read_keys(keys, name, max_bytes=max_bytes, fatal=(MemoryError, SystemError))
    if isinstance(keys.failure, SourceDown):
        return {"transient": str(keys.failure)}
    if keys.failure is not None and headers.status != "ok":
        headers.fail("unreadable", str(keys.failure))
    elif keys.found == 0 and headers.status != "ok":  # every object asked for was absent
        headers.fail("unreadable", f"no Zarr store there: none of {', '.join(ZARR_MARKERS)}")
    headers.reads, headers.bytes_read = keys.requests, keys.fetched
    return {"headers": headers.to_dict()}
