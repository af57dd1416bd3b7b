"""Each image's OME-Zarr over HTTP: its store object by object, and (for a virtual store) its reference document.

A virtual store is served as a plain Zarr too: metadata keys from the reference document, chunk keys as the byte
runs of the original file the document points at, so a client that does not speak fsspec references reads it like
any other store. An image of an unpacked ``.ome.zarr.zip`` (a series of a bioformats2raw layout, a field of a plate)
is served from where it sits in the archive's one store, so each image's ``…/ome.zarr`` is that image's multiscales
group. A converted or unpacked store's objects are streamed (Range, ETag) from a local file store, or
redirected to a presigned URL of an S3 one; a virtual store's chunks are always streamed (a window of the source
object, wherever it is held). A harvested study's file stays at its source archive: each chunk of its virtual store
is fetched from there for the request (exactly its byte range, at most ``BIA_OME_ZARR_MAX_PROXY_BYTES``), and its
reference document points at the file's download URL, which redirects there. Every answer, errors included, carries
CORS headers so browser viewers (vizarr, neuroglancer) can read it.
Images are looked up with :func:`api.routes_images.image_for_request`: an embargoed study's stores are its owner's
until release.
"""

from __future__ import annotations

import hashlib
import json
import re

from flask import Response, request
from werkzeug.wrappers import Response as BaseResponse

from api.context import services, settings
from api.errors import BadParameter
from api.object_responses import bytes_response, object_response, preconditions, requested_span, sent
from api.openapi import BINARY, NOT_MODIFIED, Blueprint, errors, responses
from api.routes_images import image_for_request
from catalog.errors import CatalogError, NotFound
from catalog.file_index import Filter
from catalog.file_paths import path_problem
from catalog.image_index import IndexedImage
from loaders.image_headers.harvested import source_archive
from loaders.image_headers.remote import NotLocated
from loaders.image_headers.window import fetch_window
from loaders.image_headers.stored import where
from loaders.ngff import results, served

blp = Blueprint("ome_zarr", __name__, description="Images as OME-Zarr: the store by key, and reference documents")
#: the longest store key accepted (bytes)
MAX_KEY_BYTES = 512
CORS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Methods": "GET, HEAD, OPTIONS",
    "Access-Control-Allow-Headers": "Range, If-None-Match, If-Match, If-Range, Accept",
    "Access-Control-Expose-Headers": "Content-Length, Content-Range, Content-Type, ETag, Accept-Ranges",
    "Access-Control-Max-Age": "86400",
}
_EXTENSION = "bia.ome_zarr_documents"
_RESULTS = "bia.ome_zarr_results"
#: the paths of the surface: a store (its root included), its objects, a reference document
_SURFACE = re.compile(r"/studies/[^/]+/images/[^/]+/ome\.zarr(\.json|/.*)?", re.DOTALL)


@blp.after_app_request
def cors(response: Response) -> Response:
    """CORS headers on every answer of the surface: errors of its routes, and the answers no route of it gives (the
    store's root, a method it does not take), which a browser would otherwise see as network errors."""
    if _SURFACE.fullmatch(request.path):
        response.headers.update(CORS)
    return response


def _documents() -> served.Documents:
    from flask import current_app

    docs = current_app.extensions.get(_EXTENSION)
    if docs is None:
        docs = current_app.extensions[_EXTENSION] = served.Documents(services().archive.file_store)
    return docs


def _results() -> results.ResultCache:
    from flask import current_app

    return current_app.extensions.setdefault(_RESULTS, results.ResultCache())


def _store_of(accession: str, image_id: str) -> tuple[object, IndexedImage, dict]:
    view, image = image_for_request(accession, image_id)
    entry = results.image_store(services().archive.state, accession, image.file_key, image_id, _results())
    if entry is None:
        raise NotFound(f"image {image_id} of {accession} has no OME-Zarr (yet)")
    return view, image, entry


def _checked_key(key: str) -> str:
    problem = path_problem(key, max_bytes=MAX_KEY_BYTES)
    if problem:
        raise BadParameter(f"store key {key[:80]!r} has {problem}", [{"field": "key"}])
    return key


@blp.route("/studies/<string:accession>/images/<string:image_id>/ome.zarr/<path:key>")
@blp.response(200, BINARY, content_type="*/*", description="The store's object at `key`: JSON metadata or a chunk's bytes")
@blp.doc(
    operationId="getOmeZarrObject",
    summary="One object of an image's OME-Zarr store (NGFF 0.4, Zarr v2): metadata or a chunk; Range, ETag, CORS",
    description=(
        "Read the store with any Zarr client at `…/images/{image_id}/ome.zarr` (e.g. "
        '`zarr.open_group(zarr.storage.FsspecStore.from_url(url), mode="r")`, napari, vizarr). A key the store '
        "does not hold is a 404 (a chunk never written reads as the fill value). A chunk of a harvested study's "
        "file is fetched from its source archive: 502, 503 or 504 when the source fails, is down or is too slow, "
        "413 when the bytes asked (the chunk, or its Range) are over `BIA_OME_ZARR_MAX_PROXY_BYTES`."
    ),
    responses=responses(
        {
            206: {"description": "The range asked for (`Content-Range`)", "content": {"*/*": {"schema": BINARY}}},
            302: {"description": "Where to fetch the object: a presigned S3 URL (`Location`)"},
            304: NOT_MODIFIED,
        },
        errors(400, 404, 412, 413, 416, 502, 503, 504),
    ),
)
def store_object(accession: str, image_id: str, key: str) -> BaseResponse:
    key = _checked_key(key)
    _view, _image, entry = _store_of(accession, image_id)
    if entry.get("kind") == "virtual":
        return _virtual_object(entry, key)
    object_key = "/".join(filter(None, (entry["store_key"], entry.get("image_path"), key)))
    stored = services().archive.file_store.stat(object_key)
    if stored is None:
        raise NotFound(f"the OME-Zarr of image {image_id} has no key {key}")
    return object_response(object_key, stored, name=key, media=_media(key))


def _virtual_object(entry: dict, key: str) -> BaseResponse:
    document, md5 = _documents().get(entry["store_key"])
    found = served.resolve(document, key)
    if found is None:
        raise NotFound(f"the OME-Zarr has no key {key}")
    tag = hashlib.md5(f"{md5}/{key}".encode()).hexdigest()
    if isinstance(found, bytes):
        return bytes_response(found, tag, name=f"key {key}", media=_media(key))
    if found.key != entry.get("source_key"):
        raise NotFound(f"the OME-Zarr key {key} points outside its image's file")
    stored = services().archive.file_store.stat(found.key)
    if stored is None:
        return _from_source(found, key, tag, entry.get("source_bytes") or None)
    if found.offset + found.length > stored.size:
        raise NotFound(f"the bytes of key {key} are not held by this archive")
    return object_response(found.key, stored, name=key, window=(found.offset, found.length), media="application/octet-stream")


class ChunkTooLarge(CatalogError):
    """A chunk of a harvested file's virtual store larger than this archive fetches from the source for a request."""

    status = 413
    code = "chunk_too_large"


def _from_source(found: served.Chunk, key: str, tag: str, size: int | None) -> BaseResponse:
    """A chunk of a harvested study's file, whose bytes stay at its source archive: exactly its byte range, fetched
    from the file's URL there (:func:`~loaders.image_headers.stored.where`: configured sources only, redirects on
    the same host only, ``BIA_HEADER_REQUEST_TIMEOUT``), at most ``BIA_OME_ZARR_MAX_PROXY_BYTES``; a source that is
    down, fails or is too slow is a 503, 502 or 504 (:func:`~loaders.image_headers.window.fetch_window`)."""
    accession = str((request.view_args or {})["accession"])
    url = _source_url(accession, found.key)
    if url is None:
        raise NotFound(f"the bytes of key {key} are not held by this archive")
    answered = preconditions(tag, f"key {key}")
    if answered is not None:
        return answered
    span = requested_span(tag, found.length, f"key {key}")
    if isinstance(span, BaseResponse):
        return span
    lo, hi = span or (0, found.length)  # a Range is fetched as just those bytes of the source file
    cap = settings().ome_zarr_max_proxy_bytes
    if hi - lo > cap:
        raise ChunkTooLarge(
            f"key {key} is {found.length:,} bytes of the source file; this archive fetches at most {cap:,} per "
            "request (BIA_OME_ZARR_MAX_PROXY_BYTES): ask for a Range of it, or read it through the reference "
            "document (ome.zarr.json)"
        )
    data = b""  # a HEAD: the headers a GET would send, the source asked nothing
    if request.method != "HEAD":
        timeout = settings().header_request_timeout
        data = fetch_window(url, found.key, found.offset + lo, hi - lo, timeout=timeout, size=size)
    return sent(data, span, found.length, "application/octet-stream", {"ETag": f'"{tag}"', "Accept-Ranges": "bytes"})


def _source_url(accession: str, file_key: str) -> str | None:
    """The URL of a harvested study's file at its source archive's configured file server; None for a study whose
    files this archive holds (a deposit), or whose source has no file server."""
    source = source_archive(services().archive.registry, accession)
    if source is None:
        return None
    try:
        located = where(services().archive.file_store, settings().header_sources, accession, file_key, source)
    except NotLocated:
        return None
    return located.url if located is not None else None


def _media(key: str) -> str:
    name = key.rsplit("/", 1)[-1]
    return (
        "application/json" if name in (".zattrs", ".zarray", ".zgroup", "zarr.json", ".zmetadata") else "application/octet-stream"
    )


@blp.route("/studies/<string:accession>/images/<string:image_id>/ome.zarr.json")
@blp.response(
    200,
    {"type": "object", "description": "An fsspec reference document (version 1): `refs` and `templates`"},
    content_type="application/json",
    description="The reference document of a virtual store; its template `u` is the source file's download URL",
)
@blp.doc(
    operationId="getOmeZarrReferences",
    summary="The fsspec reference document of an image's virtual OME-Zarr (pointing into the original file)",
    description=(
        "Open it with `fsspec.filesystem('reference', fo=url, remote_protocol='https')` and zarr. Only images "
        "stored as tiled TIFF with Zarr-readable codecs have one; the others are a 404 (read their converted "
        "store at `…/ome.zarr/`). Range, If-Match and If-Range as for the store's objects."
    ),
    responses=responses(
        {206: {"description": "The range asked for (`Content-Range`)", "content": {"application/json": {}}}, 304: NOT_MODIFIED},
        errors(404, 412, 416),
    ),
)
def reference_document(accession: str, image_id: str) -> BaseResponse:
    view, image, entry = _store_of(accession, image_id)
    if entry.get("kind") != "virtual":
        raise NotFound(f"image {image_id} of {accession} has a {entry.get('kind')} store, no reference document")
    document, md5 = _documents().get(entry["store_key"])
    url = _download_url(view, accession, image.file_key)
    tag = hashlib.md5(f"{md5} {url}".encode()).hexdigest()
    body = json.dumps(served.with_source_url(document, url), separators=(",", ":")).encode()
    return bytes_response(body, tag, name="the reference document", media="application/json")


def _download_url(view: object, accession: str, file_key: str) -> str:
    path = file_key.removeprefix(f"studies/{accession}/")
    page = view.files.query(accession, [Filter("path", "eq", path)], limit=1)  # type: ignore[attr-defined]
    if not page.items:
        raise NotFound(f"the file of this image ({path}) is not in {accession}'s file table")
    return f"{settings().base_url}/files/{accession}/{page.items[0]['file_id']}/download"
