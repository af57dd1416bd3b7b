"""A second hostile audit of the OME-Zarr surfaces: harvested studies' files (bytes at the source archive, fetched by
Range requests for the ``ome_zarr`` job and for each chunk of a virtual store), the image listing's paging, and
previews of OME-Zarr folders held in S3 (a real SeaweedFS).

Real catalogs, real harvests (S-BIAD1492, a real record, as tests/test_ome_zarr_harvested.py harvests it), real jobs
and real HTTP; the source archive is a local range server, or a raw socket server answering as a broken or hostile
file server would (:class:`Hostile`: bytes it is told to write, nothing normalised).

Problems the audit found, fixed at their root and tested here: a redirect whose Location parsed as two hosts reached
the other one (Locations with a user part or a backslash, or that the two URL parsers read differently, are
refused); a Location with a bad port was a 500; headers dripped a line at a time outlasted the timeout (a watchdog
now cuts the connection at the deadline); a stalled source held every request thread (at most
``SERVING_FETCHES`` fetches run at once per process; the others get a 503 within a second); an answer that is not
HTTP made a job retry for ever (it now fails the job); a file changed at its source was served at its old offsets
(its size is checked against the one recorded); drawing one plane of a folder store in S3 copied every chunk of the
level, listed every object of the store, and copied a level the renderer then refused (the worker now asks for the
objects it reads, round by round: loaders/previews/zarr_stage.py). The others are hostile inputs that are handled.
"""

from __future__ import annotations

import gzip
import io
import json
import re
import socket
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator
from urllib.parse import quote

import numpy as np
import pytest
import requests
import zarr
from PIL import Image
from werkzeug.serving import make_server

from catalog import identifiers
from catalog.errors import is_transient
from loaders.harvest import Harvester
from loaders.image_headers.job import KIND as HEADERS
from loaders.image_headers.remote import NotLocated, file_url, origin
from loaders.ngff import job as ome_zarr_job
from tests.catalog_helpers import deposit_files as deposit
from tests.catalog_helpers import run_image_jobs
from tests.servers.range_server import RangeServer
from tests.servers.seaweedfs_server import free_ports
from tests.test_ome_zarr import SETTINGS as ZARR_SETTINGS
from tests.test_ome_zarr import pyramid_tiff
from tests.test_ome_zarr_harvested import (
    EMBARGOED,
    PYRAMID,
    RELEASED,
    SETTINGS,
    chunk_of,
    files_path,
    image_path,
    records,
    serving_source,
)

IMAGES = Path(__file__).parent / "data" / "images"
NUCLEI = IMAGES / "tiff" / "stardist_img2d.tif"
#: file-list paths the harvester accepts that look like URL syntax: each must be fetched as a path below the source
ODD_PATHS = ["odd/a?b#c@d.tif", "odd/%2e%2e/up.tif", "odd/http:/evil.example/x.tif", "odd/ä b;c=d&e+f.tif"]


# ---------------------------------------------------------------------- a source archive that misbehaves


def _window(request: str) -> tuple[int, int]:
    found = re.search(r"(?im)^range:\s*bytes=(\d+)-(\d+)\s*$", request)
    return (int(found.group(1)), int(found.group(2))) if found else (0, 0)


def pattern(start: int, length: int) -> bytes:
    """Bytes a hostile source claims are the file's from ``start`` on (deterministic, so a test can compare)."""
    return bytes((start + i) % 251 for i in range(length))


Answer = Callable[[socket.socket, str, tuple[int, int]], None]


class Hostile:
    """A raw HTTP responder on a free loopback port: each connection's request is read up to the end of its headers
    and answered by ``answer(connection, request, (first, last))`` (the Range asked for), then the connection is
    closed. ``requests`` logs request lines; ``most`` is the most requests it was answering at once."""

    def __init__(self, answer: Answer | None = None) -> None:
        self.answer = answer or partial()
        self.requests: list[str] = []
        self.busy = self.most = 0
        self._lock = threading.Lock()
        self.sock = socket.create_server(("127.0.0.1", 0), backlog=128)
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(connection,), daemon=True).start()

    def _serve(self, connection: socket.socket) -> None:
        with connection:
            request = b""
            while b"\r\n\r\n" not in request:
                data = connection.recv(65536)
                if not data:
                    return
                request += data
            text = request.decode("latin-1")
            with self._lock:
                self.requests.append(text.split("\r\n", 1)[0])
                self.busy += 1
                self.most = max(self.most, self.busy)
            try:
                self.answer(connection, text, _window(text))
            except OSError:
                pass
            finally:
                with self._lock:
                    self.busy -= 1

    def sources(self) -> tuple[tuple[str, str], ...]:
        """``BIA_HEADER_SOURCES`` naming this server as BioStudies' file server."""
        return (("biostudies", f"{self.url}/fire/{{relpath}}/Files/"),)

    def close(self) -> None:
        self.sock.close()


def head(status: str, headers: list[tuple[str, str]]) -> bytes:
    lines = [f"HTTP/1.1 {status}", *(f"{k}: {v}" for k, v in headers), "Connection: close"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def partial(
    *, extra: int = 0, short: int = 0, shift: int = 0, headers: list[tuple[str, str]] | None = None, cut: bool = False
) -> Answer:
    """A 206 answer to the range asked for; ``extra``/``short`` bytes more/fewer than asked, its Content-Range
    starting ``shift`` bytes later (``headers``: these instead of a Content-Range); ``cut``: the connection closed
    half-way through the body its Content-Length announces."""

    def answer(connection: socket.socket, request: str, window: tuple[int, int]) -> None:
        first, last = window
        body = pattern(first, last - first + 1 + extra - short)
        given = [("Content-Range", f"bytes {first + shift}-{last + shift}/{10 << 20}")] if headers is None else headers
        connection.sendall(head("206 Partial Content", [*given, ("Content-Length", str(len(body)))]))
        connection.sendall(body[: len(body) // 2] if cut else body)

    return answer


def raw(data: bytes) -> Answer:
    return lambda connection, request, window: connection.sendall(data)


def redirect(location: str) -> Answer:
    return raw(head("302 Found", [("Location", location), ("Content-Length", "0")]))


def stalled(seconds: float) -> Answer:
    def answer(connection: socket.socket, request: str, window: tuple[int, int]) -> None:
        time.sleep(seconds)
        partial()(connection, request, window)

    return answer


def dripped(lines: int, every: float) -> Answer:
    """Headers one line every ``every`` seconds (each within the timeout of one socket read), then a good answer."""

    def answer(connection: socket.socket, request: str, window: tuple[int, int]) -> None:
        connection.sendall(b"HTTP/1.1 206 Partial Content\r\n")
        for number in range(lines):
            time.sleep(every)
            connection.sendall(f"X-Drip-{number}: .\r\n".encode())
        first, last = window
        body = pattern(first, last - first + 1)
        given = [("Content-Range", f"bytes {first}-{last}/{10 << 20}"), ("Content-Length", str(len(body)))]
        connection.sendall(head("206 Partial Content", given).split(b"\r\n", 1)[1] + body)

    return answer


def whole_file(size: int) -> Answer:
    """A 200 with the whole (huge) file, whatever the range: sent until the client stops reading."""

    def answer(connection: socket.socket, request: str, window: tuple[int, int]) -> None:
        connection.sendall(head("200 OK", [("Content-Length", str(size))]))
        block = b"\0" * (1 << 16)
        for _ in range(size >> 16):
            connection.sendall(block)

    return answer


@pytest.fixture
def hostile():
    server = Hostile()
    yield server
    server.close()


# ---------------------------------------------------------------------- a harvested study (S-BIAD1492)


@pytest.fixture(scope="module")
def pyramid(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("audit2-pyramid") / "pyramid.ome.tif"
    pyramid_tiff(path, repeat=3)
    return path


@pytest.fixture(scope="module")
def harvested(make_module_catalog, pyramid, tmp_path_factory):
    """S-BIAD1492 and an embargoed copy (S-BIAD1493) harvested, the released one also listing files whose paths look
    like URL syntax (:data:`ODD_PATHS`); header reads and OME-Zarr jobs done against a range server standing for
    BioStudies' file server; the app served over HTTP too."""
    source = serving_source(pyramid)
    for path in ODD_PATHS:
        source.add(f"{files_path(RELEASED)}/{quote(path, safe='/')}", NUCLEI)
    (port,) = free_ports(1)
    base = f"http://127.0.0.1:{port}"
    sources = (("biostudies", f"{source.url}/fire/{{relpath}}/Files/"),)
    made = make_module_catalog(name="audit2-harvested", base_url=base, header_sources=sources, **SETTINGS)
    evil = RangeServer().start()
    try:
        found = records(tmp_path_factory.mktemp("audit2-records"), pyramid, evil.url)
        listed = found[0].parent / "bbc024_images.json"
        rows = json.loads(listed.read_text())
        rows += [{"path": path, "size": NUCLEI.stat().st_size, "attributes": []} for path in ODD_PATHS]
        listed.write_text(json.dumps(rows))
        summary = Harvester(made.services.archive).run("pagetab", [str(r) for r in found])
        assert summary.loaded == [RELEASED, EMBARGOED], summary.failed
        made.services.follow()
        from api.cli import _queue_headers

        _queue_headers(made.services, summary.loaded)
        run_image_jobs(made.services, HEADERS, ome_zarr_job.KIND)
    finally:
        evil.stop()
    app = made.app()
    server = make_server("127.0.0.1", port, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield {"catalog": made, "base": base, "client": app.test_client(), "source": source, "evil": evil}
    server.shutdown()
    source.stop()


def chunk(harvested, key: str = "0/1/1") -> tuple[str, int, int]:
    """The served path of a chunk of the pyramid's virtual store (not at the file's start), its offset and length."""
    path, offset, length = chunk_of(harvested, key)
    assert offset > 0
    return path, offset, length


def against(harvested, hostile: Hostile, **settings: Any):
    """A test client of the app whose BioStudies file server is ``hostile``."""
    changes = {"header_sources": hostile.sources(), "header_request_timeout": 1.0, **settings}
    return harvested["catalog"].app(**changes).test_client()


def assert_error(answer, status: int, code: str | None = None) -> dict:
    body = answer.get_json()
    assert answer.status_code == status, (answer.status_code, answer.data[:300])
    assert set(body) == {"code", "status", "message", "errors"} and body["status"] == status, body
    assert code is None or body["code"] == code, body
    if "/ome.zarr" in answer.request.path:  # the stores' routes answer CORS headers, errors included
        assert answer.headers["Access-Control-Allow-Origin"] == "*"
    return body


def job_of(harvested, path: str, accession: str = RELEASED):
    from catalog.jobs import JobQueue

    made = harvested["catalog"]
    queue = JobQueue.for_settings(made.services.archive.state, made.settings)
    try:
        return queue.job(ome_zarr_job.KIND, accession, f"studies/{accession}/{path}", ome_zarr_job.job_version())
    finally:
        queue.close()


# ---------------------------------------------------------------------- found: the source's answers


@pytest.mark.parametrize("trick", ["\\@", "\\.@"])
def test_a_redirect_naming_two_hosts_reaches_neither_other_host(harvested, hostile, trick):
    path, _offset, length = chunk(harvested)
    other = Hostile(partial())  # e.g. a cloud metadata service, or any host the source should not make us reach
    try:
        hostile.answer = redirect(f"http://127.0.0.1:{other.port}{trick}127.0.0.1:{hostile.port}/x")
        answer = against(harvested, hostile).get(path)
        reached = list(other.requests)
    finally:
        other.close()
    assert reached == [], f"fetched from another host: {reached} (answered {answer.status_code}, {len(answer.data)} bytes)"
    assert_error(answer, 502, "source_failed")


@pytest.mark.parametrize("location", ["http://127.0.0.1:99999/x", "http://127.0.0.1:abc/x", "http://[::1/x"])
def test_a_redirect_to_an_unparsable_location_is_a_502(harvested, hostile, location):
    path, _offset, _length = chunk(harvested)
    hostile.answer = redirect(location)
    assert_error(against(harvested, hostile).get(path), 502, "source_failed")


def test_a_source_that_drips_its_headers_is_cut_off_at_the_timeout(harvested, hostile):
    path, _offset, _length = chunk(harvested)
    hostile.answer = dripped(lines=16, every=0.4)  # 6.4 s of headers, each line well within the 1 s timeout
    started = time.monotonic()
    answer = against(harvested, hostile).get(path)
    took = time.monotonic() - started
    assert took < 3.0 and answer.status_code == 504, f"answered {answer.status_code} after {took:.1f} s (timeout 1 s)"


def test_a_stalled_source_does_not_hold_every_request_thread(harvested, hostile):
    path, _offset, _length = chunk(harvested)
    hostile.answer = stalled(3.0)
    (port,) = free_ports(1)
    app = harvested["catalog"].app(header_sources=hostile.sources(), header_request_timeout=5.0)
    server = make_server("127.0.0.1", port, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    answers: list[tuple[int, float]] = []

    def ask() -> None:
        started = time.monotonic()
        status = requests.get(f"http://127.0.0.1:{port}{path}", timeout=30).status_code
        answers.append((status, time.monotonic() - started))

    try:
        clients = [threading.Thread(target=ask) for _ in range(24)]
        for client in clients:
            client.start()
        for client in clients:
            client.join()
    finally:
        server.shutdown()
    quick = [status for status, took in answers if took < 1.5]
    assert quick and set(quick) == {503}, f"{hostile.most} requests waited on the source at once; answers {sorted(answers)}"


@pytest.mark.parametrize(
    "answer",
    [b"SSH-2.0-OpenSSH_9.6\r\n", b"HTTP/1.1 206 Partial\r\n" + b"".join(b"X-%d: y\r\n" % i for i in range(150)) + b"\r\n"],
    ids=["not-http", "too-many-headers"],
)
def test_a_source_that_does_not_speak_http_fails_the_job(harvested, hostile, answer):
    made = harvested["catalog"]
    hostile.answer = raw(answer)
    pool = ome_zarr_job.sandbox_for(made.settings)
    caps = {**ome_zarr_job.caps_of(made.settings), "request_timeout": 1.0}
    try:
        with pytest.raises(Exception) as failed:
            ome_zarr_job.make(
                pool,
                made.services.archive.file_store,
                RELEASED,
                f"studies/{RELEASED}/images/img3d.tif",
                caps,
                source="biostudies",
                sources=hostile.sources(),
            )
    finally:
        pool.close()
    assert hostile.requests, "the source was not asked"
    assert not is_transient(failed.value), f"retried for ever: {type(failed.value).__name__}: {failed.value}"


def test_a_file_changed_at_the_source_is_not_served_as_the_old_files_chunks(harvested, pyramid, tmp_path):
    path, offset, length = chunk(harvested)
    changed = tmp_path / "changed.ome.tif"
    pyramid_tiff(changed, repeat=2)
    assert changed.stat().st_size != pyramid.stat().st_size
    served = f"{files_path(RELEASED)}/{PYRAMID}"
    client, source = harvested["client"], harvested["source"]
    before = client.get(path)
    source.files[served] = changed
    try:
        after = client.get(path)
    finally:
        source.files[served] = pyramid
    assert before.status_code == 200 and before.data == pyramid.read_bytes()[offset : offset + length]
    assert after.status_code != 200 or after.data == before.data, (
        f"served bytes {offset:,}-{offset + length - 1:,} of another file, ETag {after.headers.get('ETag')} "
        f"(before: {before.headers.get('ETag')})"
    )


# ---------------------------------------------------------------------- held: the source's answers


@pytest.mark.parametrize(
    "answer, status",
    [
        (partial(short=7), 502),  # fewer bytes than asked
        (partial(shift=1), 502),  # a Content-Range starting elsewhere
        (partial(headers=[]), 502),  # a 206 without Content-Range
        (partial(headers=[("Content-Range", "bytes */1000")]), 502),
        (raw(head("416 Range Not Satisfiable", [("Content-Length", "0")])), 502),  # refs past the end of the file
        (raw(head("301 Moved", [("Location", "/elsewhere"), ("Content-Length", "0")])), 502),  # a loop on one host
        (raw(head("302 Found", [("Content-Length", "0")])), 502),  # a redirect without a Location
        (raw(head("304 Not Modified", [])), 502),
        (raw(head("429 Too Many Requests", [("Content-Length", "0")])), 503),
        (partial(cut=True), (502, 503)),  # the connection closed before the body's end
        (raw(b""), (502, 503)),  # closed without a word
        (raw(b"HTTP/1.1 206 Partial\r\nX-Big: " + b"y" * 100_000 + b"\r\n\r\n"), (502, 503)),  # a 100 kB header
        (whole_file(8 << 30), 502),  # a 200 with the whole 8 GiB file for a range: not read
        (dripped(lines=1, every=3.0), 504),
    ],
    ids=[
        "short",
        "shifted",
        "no-content-range",
        "star-range",
        "416",
        "redirect-loop",
        "no-location",
        "304",
        "429",
        "cut-off",
        "silent",
        "huge-header",
        "whole-file",
        "stalled",
    ],
)
def test_a_source_that_misanswers_gives_a_chunk_5xx_in_the_error_shape(harvested, hostile, answer, status):
    path, _offset, _length = chunk(harvested)
    hostile.answer = answer
    started = time.monotonic()
    got = against(harvested, hostile).get(path)
    assert got.status_code in (status if isinstance(status, tuple) else (status,)), (got.status_code, got.data[:300])
    assert_error(got, got.status_code)
    assert time.monotonic() - started < 4.0


def encoded(kind: str, extra: int = 0) -> Answer:
    """A 206 answer whose body is sent gzip-encoded (although identity was asked for; ``extra`` zero bytes more
    than asked: a bomb) or chunked."""

    def answer(connection: socket.socket, request: str, window: tuple[int, int]) -> None:
        first, last = window
        body = pattern(first, last - first + 1) + b"\0" * extra
        given = [("Content-Range", f"bytes {first}-{last}/{10 << 20}")]
        if kind == "gzip":
            data = gzip.compress(body, compresslevel=1)
            given += [("Content-Encoding", "gzip"), ("Content-Length", str(len(data)))]
        else:
            data, given = b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body), [*given, ("Transfer-Encoding", "chunked")]
        connection.sendall(head("206 Partial Content", given) + data)

    return answer


@pytest.mark.parametrize(
    "answer",
    [partial(extra=5000), encoded("gzip"), encoded("gzip", extra=64 << 20), encoded("chunked")],
    ids=["more-than-asked", "gzip", "gzip-bomb", "chunked"],
)
def test_a_chunk_is_exactly_its_bytes_whatever_the_source_adds(harvested, hostile, answer):
    path, offset, length = chunk(harvested)
    hostile.answer = answer
    got = against(harvested, hostile).get(path)
    if got.status_code != 200:
        assert_error(got, 502)
    else:
        assert got.data == pattern(offset, length)


# ---------------------------------------------------------------------- held: where a harvested file is fetched


@pytest.mark.parametrize(
    "path",
    [
        "a/../../S-BIAD1493/Files/x.tif",
        "../x.tif",
        "./x.tif",
        "a//b.tif",
        "/etc/passwd",
        "a\\..\\b.tif",
        "",
        "http://evil.example/x.tif",
        "//evil.example/x.tif",
        "@evil.example/x.tif",
        "x.tif?u=http://evil.example/",
        "x.tif#@evil.example",
        "%2e%2e/%2e%2e/x.tif",
        "..%2f..%2fx.tif",
        "x\r\nHost: evil.example",
        "x\tevil",
        "ä/\u202egnp.tif",
        "a/..",
        "a/.",
    ],
)
def test_a_harvested_files_url_stays_below_its_source_whatever_its_path(path):
    base = "https://ftp.example.org/biostudies/fire/{relpath}/Files/"
    try:
        url = file_url((("biostudies", base),), "biostudies", RELEASED, path)
    except NotLocated:
        return
    folder = base.replace("{relpath}", "S-BIAD/492/S-BIAD1492")
    assert origin(url) == origin(folder) and url.startswith(folder), url
    below = url.removeprefix(folder)
    assert not re.search(r"[?#@\s]|(^|/)\.\.?(/|$)", below), url


def test_file_paths_that_look_like_urls_are_fetched_as_paths_below_the_source(harvested):
    """The harvester takes ``odd/a?b#c@d.tif``, ``odd/%2e%2e/up.tif``, ``odd/http:/evil.example/x.tif``…: each is
    fetched, percent-encoded, at the source and converted; nothing else was asked for, and the other host the record
    names was never asked anything."""
    for path in ODD_PATHS:
        done = job_of(harvested, path)
        assert done is not None and done.state == "done", (path, done and done.reason)
        assert done.result["images"][0]["source_bytes"] == NUCLEI.stat().st_size
    asked = {path for path, _ in harvested["source"].requests}
    assert all(path.startswith((files_path(RELEASED) + "/", files_path(EMBARGOED) + "/")) for path in asked), asked
    assert {f"{files_path(RELEASED)}/{quote(p, safe='/')}" for p in ODD_PATHS} <= asked
    assert harvested["evil"].requests == []


@contextmanager
def json_replaced(store: Any, key: str) -> Iterator[tuple[dict, Any]]:
    """The JSON object stored at ``key`` and ``put(document)``, which stores another in its place; the original is
    stored again afterwards."""
    from io import BytesIO

    original = b"".join(store.open_range(key))

    def put(document: dict) -> None:
        data = json.dumps(document).encode()
        store.delete(key)
        store.put(key, BytesIO(data), size=len(data), content_type="application/json")

    try:
        yield json.loads(original), put
    finally:
        store.delete(key)
        store.put(key, BytesIO(original), size=len(original), content_type="application/json")


@pytest.fixture
def tampered(harvested):
    """Put refs into the pyramid's stored reference document (as a hostile TIFF's tile table would make them);
    the document is restored after the test."""
    store = harvested["catalog"].services.archive.file_store
    key = job_of(harvested, PYRAMID).result["images"][0]["store_key"]
    with json_replaced(store, key) as (original, put):

        def tamper(refs: dict[str, Any], templates: dict[str, str] | None = None) -> None:
            document = json.loads(json.dumps(original))
            document["refs"].update(refs)
            document["templates"].update(templates or {})
            put(document)

        yield tamper


def test_refs_past_the_file_negative_or_to_another_file_are_4xx_or_502(harvested, tampered):
    source = harvested["source"]
    other = f"studies/{EMBARGOED}/{PYRAMID}"
    refs = {
        "0/9/0": (["{{u}}", 10**13, 100], 502),  # past the end of the file: the source answers 416
        "0/9/1": (["{{u}}", 10**30, 10], 502),
        "0/9/2": (["{{u}}", 1000, -5], 502),
        "0/9/3": (["{{u}}", -100, 50], 502),
        "0/9/4": (["{{u}}", 0, 1 << 62], 413),
        "0/9/5": ([other, 1000, 10], 404),  # another study's (embargoed) file
        "0/9/6": (["{{v}}", 1000, 10], 404),
        "0/9/7": (["{{u}}", 1.5, 10], 404),
        "0/9/8": (["http://127.0.0.1:1/x", 0, 10], 404),
        "0/9/9": ([True, True, True], 404),
    }
    tampered({key: ref for key, (ref, _status) in refs.items()}, {"v": other})
    source.requests.clear()
    for key, (_ref, status) in refs.items():
        assert_error(harvested["client"].get(f"{image_path(PYRAMID)}/ome.zarr/{key}"), status)
    assert {path for path, _ in source.requests} <= {f"{files_path(RELEASED)}/{PYRAMID}"}


def test_an_embargoed_harvested_study_shows_nothing_and_asks_its_source_nothing(harvested):
    from catalog.file_index import Filter

    client, source, made = harvested["client"], harvested["source"], harvested["catalog"]
    token, _owner = made.token("jane")
    image = image_path(PYRAMID, EMBARGOED)
    (row,) = made.services.archive.private.files.query(EMBARGOED, [Filter("path", "eq", PYRAMID)], limit=1).items
    source.requests.clear()
    for headers in ({}, {"Authorization": f"Bearer {token}"}):  # a harvested study has no owner
        for url in (
            f"/files/{EMBARGOED}/{row['file_id']}",
            f"/files/{EMBARGOED}/{row['file_id']}/download",
            image,
            f"/studies/{EMBARGOED}/images",
            f"/studies/{EMBARGOED}/images?path={quote(PYRAMID)}",
            f"{image}/render.png",
            f"{image}/thumbnail.png",
            f"{image}/ome.zarr.json",
            f"{image}/ome.zarr/0/0/0",
            f"{image}/ome.zarr/.zattrs",
        ):
            assert_error(client.get(url, headers=headers), 404)
    listed = client.get(f"/studies/{RELEASED}/images?path={quote(f'../{EMBARGOED}/{PYRAMID}')}").get_json()
    assert listed["items"] == []
    assert source.requests == []


# ---------------------------------------------------------------------- the image listing's paging

MANY = "odd dir/a&b=c#d+e%41?f.ome.zarr.zip"
BASE_PATH = "/catalog/v1"


@pytest.fixture(scope="module")
def listed(make_module_catalog):
    """A catalog under a base URL with a path, whose released study holds a file of 230 images at a path full of
    URL syntax and a file of one image, and an embargoed study; headers read."""
    from tests.test_ome_zarr_audit import members, one_image, under
    from tests.test_ome_zarr_zip import zipped

    layout = {".zgroup": b'{"zarr_format": 2}', ".zattrs": b'{"bioformats2raw.layout": 3}'}
    for number in range(230):
        layout.update(under(str(number), one_image([2, 2])))
    base = "http://127.0.0.1:9" + BASE_PATH
    made = make_module_catalog(name="audit2-listing", base_url=base, **ZARR_SETTINGS)
    one = zipped(IMAGES / "ome-zarr" / "fake-series-2.zarr" / "0")
    accession, _ = deposit(made.services, {MANY: members(layout), "one.ome.zarr.zip": one})
    secret, token = deposit(made.services, {"secret.ome.zarr.zip": one}, release_date="2999-01-01")
    run_image_jobs(made.services, HEADERS)
    return {
        "made": made,
        "base": base,
        "client": made.app().test_client(),
        "accession": accession,
        "secret": secret,
        "token": token,
    }


def follow(listed, link: str) -> dict:
    assert link.startswith(listed["base"] + "/studies/"), link
    answer = listed["client"].get(link.removeprefix(listed["base"]))
    assert answer.status_code == 200, answer.data[:300]
    return answer.get_json()


def test_paging_links_under_a_base_url_with_a_path_reach_every_file_and_image(listed):
    accession = listed["accession"]
    page = listed["client"].get(f"/studies/{accession}/images?limit=1").get_json()
    files, images = [], []
    while True:
        (item,) = page["items"]
        files.append(item["path"])
        seen = [image["index"] for image in item["images"]]
        link = item["more_images"]
        while link:
            more = follow(listed, link)
            assert [i["path"] for i in more["items"]] == [item["path"]]
            seen += [image["index"] for image in more["items"][0]["images"]]
            link = more["items"][0]["more_images"]
        images.append((item["path"], seen))
        if not page["next"]:
            break
        page = follow(listed, page["next"])
    assert sorted(files) == sorted([MANY, "one.ome.zarr.zip"])
    assert dict(images) == {MANY: list(range(230)), "one.ome.zarr.zip": [0]}


@pytest.mark.parametrize(
    "query, field",
    [
        ("images_from=-1", "images_from"),
        (f"images_from={(1 << 40) + 1}", "images_from"),
        ("images_from=1e3", "images_from"),
        ("limit=0", "limit"),
        ("limit=501", "limit"),
        ("limit=ten", "limit"),
        ("cursor=garbage", None),
        ("cursor=" + "A" * 5000, None),
    ],
)
def test_bad_paging_values_are_400_in_the_error_shape(listed, query, field):
    answer = listed["client"].get(f"/studies/{listed['accession']}/images?{query}")
    body = assert_error(answer, 400)
    assert field is None or field in json.dumps(body), body


def test_a_cursor_is_refused_with_another_path(listed):
    client, accession = listed["client"], listed["accession"]
    cursor = client.get(f"/studies/{accession}/images?limit=1").get_json()["next"].split("cursor=")[1]
    assert_error(client.get(f"/studies/{accession}/images?limit=1&path=one.ome.zarr.zip&cursor={cursor}"), 400)


@pytest.mark.parametrize(
    "path",
    [
        "' OR '1'='1",
        "%",
        "*",
        "one.ome.zarr.zip' --",
        "one.ome.zarr.zip\x00",
        "ONE.OME.ZARR.ZIP",
        "one.ome.zarr.zip/",
        "./one.ome.zarr.zip",
        "secret.ome.zarr.zip",
        "x" * 20_000,
    ],
)
def test_a_path_that_is_not_one_of_the_studys_files_lists_nothing(listed, path):
    answer = listed["client"].get(f"/studies/{listed['accession']}/images", query_string={"path": path})
    assert answer.status_code in (200, 400), answer.data[:300]
    if answer.status_code == 200:
        assert answer.get_json()["items"] == []


def test_images_from_past_the_end_lists_files_without_images(listed):
    answer = listed["client"].get(f"/studies/{listed['accession']}/images?images_from={1 << 40}").get_json()
    assert {item["path"]: (item["image_count"], item["images"], item["more_images"]) for item in answer["items"]} == {
        MANY: (230, [], None),
        "one.ome.zarr.zip": (1, [], None),
    }


def test_an_embargoed_studys_listing_is_its_owners(listed):
    client, secret = listed["client"], listed["secret"]
    other, _ = listed["made"].token("mallory")
    for headers in ({}, {"Authorization": f"Bearer {other}"}):
        assert_error(client.get(f"/studies/{secret}/images?path=secret.ome.zarr.zip", headers=headers), 404)
    owner = client.get(f"/studies/{secret}/images", headers={"Authorization": f"Bearer {listed['token']}"})
    assert owner.status_code == 200 and [i["path"] for i in owner.get_json()["items"]] == ["secret.ome.zarr.zip"]


# ---------------------------------------------------------------------- OME-Zarr folders held in S3: drawing them

ZSTACK = "zstack.ome.zarr"  # z 16 × 64 × 64, one chunk per plane; level 1 halves y and x
SPARSE = "sparse.ome.zarr"  # claims 100,000 × 100,000 pixels in 16 × 16 chunks; holds 120 of them
SWAP = "swap.ome.zarr"  # a copy of ZSTACK whose metadata the tests change after its headers were read
BIG = "big.ome.zarr"  # a copy of ZSTACK whose .zattrs is 200 kB


def ngff(folder: Path, levels: list[tuple[tuple[int, ...], tuple[int, ...]]], axes: str, fill: bool = True) -> dict[str, bytes]:
    """An NGFF 0.4 image (Zarr v2, '/' separated chunk keys) of ``levels`` (shape, chunks), uint16; its files."""
    root = zarr.open_group(str(folder), mode="w", zarr_format=2)
    datasets = []
    for number, (shape, chunks) in enumerate(levels):
        array = root.create_array(
            str(number),
            shape=shape,
            chunks=chunks,
            dtype="uint16",
            chunk_key_encoding={"name": "v2", "separator": "/"},
            compressors=None,
            fill_value=0,
        )
        if fill:
            array[...] = (np.arange(int(np.prod(shape))) % 4093).reshape(shape).astype("uint16")
        datasets.append({"path": str(number), "coordinateTransformations": [{"type": "scale", "scale": [1.0] * len(shape)}]})
    names = {"z": "space", "y": "space", "x": "space"}
    root.attrs["multiscales"] = [{"version": "0.4", "axes": [{"name": a, "type": names[a]} for a in axes], "datasets": datasets}]
    return {item.relative_to(folder).as_posix(): item.read_bytes() for item in sorted(folder.rglob("*")) if item.is_file()}


def stores(scratch: Path) -> dict[str, bytes]:
    zstack = ngff(scratch / "z", [((16, 64, 64), (1, 64, 64)), ((16, 32, 32), (1, 32, 32))], "zyx")
    sparse = ngff(scratch / "s", [((100_000, 100_000), (16, 16))], "yx", fill=False)
    sparse.update({f"0/0/{column}": bytes(512) for column in range(120)})
    big = dict(zstack)
    attrs = json.loads(big[".zattrs"])
    attrs["padding"] = "p" * 200_000
    big[".zattrs"] = json.dumps(attrs).encode()
    files: dict[str, bytes] = {}
    for name, store in ((ZSTACK, zstack), (SPARSE, sparse), (SWAP, zstack), (BIG, big)):
        files.update({f"{name}/{key}": value for key, value in store.items()})
    return files


@pytest.fixture(scope="module")
def s3site(make_module_catalog, seaweedfs_s3, tmp_path_factory):
    from tests.test_previews_s3 import s3_settings

    settings = {**s3_settings(seaweedfs_s3, "audit2"), "background": "off", **ZARR_SETTINGS}
    made = make_module_catalog(name="audit2-s3", **settings)
    accession, _ = deposit(made.services, stores(tmp_path_factory.mktemp("audit2-stores")))
    files = stores(tmp_path_factory.mktemp("audit2-secret"))
    secret, token = deposit(made.services, {k: v for k, v in files.items() if k.startswith(ZSTACK + "/")}, "2999-01-01")
    run_image_jobs(made.services, HEADERS)
    return {"made": made, "client": made.app().test_client(), "accession": accession, "secret": secret, "token": token}


@pytest.fixture
def s3reads(s3site, monkeypatch):
    """The keys the catalog lists and reads of its S3 file store while the test runs."""
    store = s3site["made"].services.archive.file_store
    seen: dict[str, list[str]] = {"listed": [], "read": []}
    real_list, real_read = store.list, store.open_range

    def listed(prefix: str = "", **kwargs: Any):
        for found in real_list(prefix, **kwargs):
            seen["listed"].append(found.key)
            yield found

    def read(key: str, *args: Any, **kwargs: Any):
        seen["read"].append(key)
        return real_read(key, *args, **kwargs)

    monkeypatch.setattr(store, "list", listed)
    monkeypatch.setattr(store, "open_range", read)
    return seen


def drawn(s3site, store: str, query: str, accession: str | None = None, client: Any = None, **headers: str):
    accession = accession or s3site["accession"]
    image = identifiers.image_id(accession, f"{store}/.zattrs", 0)
    return (client or s3site["client"]).get(f"/studies/{accession}/images/{image}/render.png?{query}", headers=headers)


def chunk_keys(keys: list[str], folder: str) -> list[str]:
    """Of ``keys``, the chunk objects (not metadata) under ``folder`` of a store."""
    return [k for k in keys if f"/{folder}/" in k and not k.rsplit("/", 1)[-1].startswith(".z")]


def test_a_plane_of_a_folder_store_in_s3_renders_its_pixels(s3site, s3reads):
    answer = drawn(s3site, ZSTACK, "z=3&level=0")
    assert answer.status_code == 200, answer.data[:300]
    expected = (np.arange(16 * 64 * 64) % 4093).reshape(16, 64, 64)[3]
    picture = np.asarray(Image.open(io.BytesIO(answer.data)).convert("L")).astype(float)
    assert picture.shape == (64, 64) and np.corrcoef(picture.ravel(), expected.ravel())[0, 1] > 0.9


def test_drawing_one_plane_copies_only_that_planes_chunks(s3site, s3reads):
    answer = drawn(s3site, ZSTACK, "z=5&level=0")
    assert answer.status_code == 200, answer.data[:300]
    copied = chunk_keys(s3reads["read"], f"{ZSTACK}/0")
    assert len(copied) <= 1, f"{len(copied)} chunks copied to draw a plane of one chunk"


def test_drawing_one_level_lists_no_other_levels_chunks(s3site, s3reads):
    answer = drawn(s3site, ZSTACK, "z=7&level=1")
    assert answer.status_code == 200, answer.data[:300]
    listed = chunk_keys(s3reads["listed"], f"{ZSTACK}/0")
    assert listed == [], f"{len(listed)} chunks of level 0 listed to draw level 1"


def test_a_level_the_renderer_refuses_is_refused_before_its_chunks_are_copied(s3site, s3reads):
    answer = drawn(s3site, SPARSE, "level=0")
    assert_error(answer, 422)
    copied = chunk_keys(s3reads["read"], f"{SPARSE}/0")
    assert copied == [], f"{len(copied)} chunks copied, then refused: {answer.get_json()['message']}"


@pytest.fixture
def swapped(s3site):
    """Replace the ``.zattrs`` of SWAP in S3 after its headers were read (the renderer reads it anew)."""
    store = s3site["made"].services.archive.file_store
    with json_replaced(store, f"studies/{s3site['accession']}/{SWAP}/.zattrs") as (original, put):

        def swap(level_path: str) -> None:
            attrs = json.loads(json.dumps(original))
            attrs["multiscales"][0]["datasets"][0]["path"] = level_path
            put(attrs)

        yield swap


@pytest.mark.parametrize(
    "level_path",
    [
        f"../{ZSTACK}/0",
        f"0/../../{ZSTACK}/0",
        "/0",
        "0/",
        f"%2e%2e/{ZSTACK}/0",
        "..",
        ".",
        "",
        "0\\..\\1",
        "../../../derived",
        "../../{secret}/" + ZSTACK + "/0",
        "0\x00",
        "\u202e0",
        "0//0",
        "http://127.0.0.1:1/0",
    ],
)
def test_a_level_path_out_of_the_store_copies_nothing_outside_it(s3site, s3reads, swapped, level_path):
    swapped(level_path.replace("{secret}", s3site["secret"]))
    s3reads["read"].clear()
    s3reads["listed"].clear()
    answer = drawn(s3site, SWAP, "level=0")
    assert_error(answer, 422, "render_failed")
    folder = f"studies/{s3site['accession']}/{SWAP}/"
    outside = [k for k in s3reads["read"] + s3reads["listed"] if not k.startswith(folder) and "/render/" not in k]
    assert outside == []


def test_metadata_over_the_header_cap_is_refused_without_reading_it(s3site, s3reads):
    client = s3site["made"].app(header_max_bytes=64 << 10).test_client()
    answer = drawn(s3site, BIG, "level=0", client=client)
    body = assert_error(answer, 422)
    assert "cap" in body["message"] and not [k for k in s3reads["read"] if k.endswith(f"{BIG}/.zattrs")]


def test_an_embargoed_folder_store_in_s3_is_drawn_for_its_owner_only(s3site, s3reads):
    other, _ = s3site["made"].token("mallory")
    for headers in ({}, {"Authorization": f"Bearer {other}"}):
        assert_error(drawn(s3site, ZSTACK, "z=1", accession=s3site["secret"], **headers), 404)
    assert s3reads["read"] == [] and s3reads["listed"] == []
    owner = drawn(s3site, ZSTACK, "z=1", accession=s3site["secret"], Authorization=f"Bearer {s3site['token']}")
    assert owner.status_code == 200 and owner.headers["Cache-Control"] == "private, no-store", owner.data[:300]
