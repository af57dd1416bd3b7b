"""Each image's OME-Zarr over HTTP: its store object by object, and (for a virtual store) its reference document.

A virtual store is served as a plain Zarr too: metadata keys from the reference document, chunk keys as the byte
runs of the original file the document points at, so a client that does not speak fsspec references reads it like
any other store. An image of an unpacked ``.ome.zarr.zip`` (a series of a bioformats2raw layout, a field of a plate)
is served from where it sits in the archive's one store, so each image's ``…/ome.zarr`` is that image's multiscales
group. A converted or unpacked store's objects are streamed (Range, ETag) from a local file store, or
redirected to a presigned URL of an S3 one; a virtual store's chunks are always streamed (a window of the source
object, wherever it is held). Every answer, errors included, carries CORS headers so browser viewers (vizarr, neuroglancer) can read it.
Images are looked up with :func:`api.routes_images.image_for_request`: an embargoed study's stores are its owner's
until release.
"""

from __future__ import annotations

import hashlib
import json

from flask import Response, request
from werkzeug.wrappers import Response as BaseResponse

from api.context import services, settings
from api.errors import BadParameter
from api.object_responses import object_response
from api.openapi import BINARY, NOT_MODIFIED, Blueprint, errors, responses
from api.routes_images import image_for_request
from catalog.errors import NotFound
from catalog.file_index import Filter
from catalog.file_paths import path_problem
from catalog.image_index import IndexedImage
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


@blp.after_request
def cors(response: Response) -> Response:
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
        "does not hold is a 404 (a chunk never written reads as the fill value)."
    ),
    responses=responses(
        {
            206: {"description": "The range asked for (`Content-Range`)", "content": {"*/*": {"schema": BINARY}}},
            302: {"description": "Where to fetch the object: a presigned S3 URL (`Location`)"},
            304: NOT_MODIFIED,
        },
        errors(400, 404, 412, 416),
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
    if isinstance(found, bytes):
        etag = '"' + hashlib.md5(f"{md5}/{key}".encode()).hexdigest() + '"'
        if request.if_none_match.contains_weak(etag.strip('"')):
            return Response(status=304, headers={"ETag": etag})
        return Response(found, mimetype=_media(key), headers={"ETag": etag})
    if found.key != entry.get("source_key"):
        raise NotFound(f"the OME-Zarr key {key} points outside its image's file")
    stored = services().archive.file_store.stat(found.key)
    if stored is None or found.offset + found.length > stored.size:
        raise NotFound(f"the bytes of key {key} are not held by this archive")
    return object_response(found.key, stored, name=key, window=(found.offset, found.length), media="application/octet-stream")


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
        "store at `…/ome.zarr/`)."
    ),
    responses=responses({304: NOT_MODIFIED}, errors(404)),
)
def reference_document(accession: str, image_id: str) -> Response:
    view, image, entry = _store_of(accession, image_id)
    if entry.get("kind") != "virtual":
        raise NotFound(f"image {image_id} of {accession} has a {entry.get('kind')} store, no reference document")
    document, md5 = _documents().get(entry["store_key"])
    url = _download_url(view, accession, image.file_key)
    etag = '"' + hashlib.md5(f"{md5} {url}".encode()).hexdigest() + '"'
    if request.if_none_match.contains_weak(etag.strip('"')):
        return Response(status=304, headers={"ETag": etag})
    body = json.dumps(served.with_source_url(document, url), separators=(",", ":"))
    return Response(body, mimetype="application/json", headers={"ETag": etag})


def _download_url(view: object, accession: str, file_key: str) -> str:
    path = file_key.removeprefix(f"studies/{accession}/")
    page = view.files.query(accession, [Filter("path", "eq", path)], limit=1)  # type: ignore[attr-defined]
    if not page.items:
        raise NotFound(f"the file of this image ({path}) is not in {accession}'s file table")
    return f"{settings().base_url}/files/{accession}/{page.items[0]['file_id']}/download"
