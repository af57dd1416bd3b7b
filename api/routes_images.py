"""A study's images: what the headers of its files say, a page of image files at a time; each image's thumbnails
and rendered planes (previews, :mod:`loaders.previews`), with embargo decided here for every request."""

from __future__ import annotations

import atexit
import base64
import io
import json
from typing import Any

from flask import Response, current_app, request

from api.context import services, settings
from api.errors import BadParameter
from api.openapi import BINARY, NOT_MODIFIED, Blueprint, errors, responses
from api.records import self_url
from api.routes_files import file_index_for
from api.schemas import ImageList, ImagesArgs, RenderArgs, ThumbnailArgs
from catalog import identifiers, image_index
from catalog.errors import CatalogError, NotFound
from catalog.file_store import ObjectExists
from catalog.file_index import FileIndex, Filter
from catalog.image_columns import channel_label, header_key, latest_results, micrometres
from catalog.image_graph import ImageGraph
from catalog.image_index import IndexedImage
from catalog.image_representations import derived_prefix, preview_key
from catalog.views import PRIVATE, PUBLIC
from loaders.image_headers.harvested import source_archive
from loaders.image_headers.remote import NotLocated
from loaders.image_headers.stored import Located, NotReadableHere, where
from loaders.previews.job import RENDERER_REVISION
from loaders.previews import zarr_stage
from loaders.previews.pool import PreviewCaps, PreviewPool, RenderFailed

blp = Blueprint("images", __name__, description="A study's images, as their files' headers describe them")
#: images listed per file on one page (a plate may hold thousands: ``more_images`` pages through them)
LISTED_IMAGES = 100
#: the columns every file whose headers were read has
READ, SERIES = "image.status", "image.series"


@blp.route("/studies/<string:accession>/images")
@blp.arguments(ImagesArgs, location="query")
@blp.response(200, ImageList, description="A page of the study's image files, each with its images")
@blp.doc(
    operationId="listImages",
    summary="A study's images: sizes, pixel types, pixel sizes and channels read from its files' headers",
    responses=responses(errors(400, 404)),
)
def list_images(args: dict[str, Any], accession: str) -> Response:
    index = file_index_for(accession)
    study = identifiers.study_iri(settings().base_url, accession)
    body: dict[str, Any] = {"study": study, "items": [], "total": 0, "next": None}
    if READ in {column.name for column in index.columns(accession)}:
        read = [Filter(SERIES, "gte", 0)] + ([Filter("path", "eq", args["path"])] if args.get("path") else [])
        page = index.query(accession, read, limit=args["limit"], cursor=args.get("cursor"))
        body.update(items=_items(index, accession, study, page.items, args["images_from"]), total=page.total)
        body["next"] = self_url(cursor=page.next_cursor) if page.next_cursor else None
    return Response(json.dumps(body, ensure_ascii=False), mimetype="application/json")


def image_for_request(accession: str, image_id: str) -> tuple[Any, IndexedImage]:
    """The view holding a study's image and where the image is (file and series), for this request: the public
    view, or the private one for the study's owner; :class:`NotFound` otherwise (as for a study that does not exist)."""
    index = file_index_for(accession)  # NotFound unless released, or embargoed and asked for by its owner
    archive = services().archive
    found = image_index.lookup(archive.state, accession, image_id)
    if found is None:
        raise NotFound(f"no image {image_id} in {accession}")
    return archive.view(PUBLIC if index is archive.public.files else PRIVATE), found


def _items(index: FileIndex, accession: str, study: str, rows: list[dict[str, Any]], start: int) -> list[dict[str, Any]]:
    """The listing's items: each file with its images from ``start`` on (at most :data:`LISTED_IMAGES`)."""
    archive = services().archive
    keys = [header_key(accession, str(row["path"])) for row in rows]
    results = latest_results(archive.state, accession, keys)
    namer = ImageGraph(archive.model, study, cap=0)
    items = []
    for key, row in zip(keys, rows):
        result = results.get(key) or {}
        series = result.get("series") or []
        shown = series[start : start + LISTED_IMAGES]
        more = start + LISTED_IMAGES < len(series)
        items.append(
            {
                "file": identifiers.file_iri(study, str(row["path"]), row.get("size")),
                "path": row["path"],
                "status": result.get("status", row.get(READ)),
                "format": result.get("format"),
                "reason": result.get("reason"),
                "image_count": len(series),
                "images": [_image(namer.image_iri(str(row["path"]), int(s.get("index") or 0)), s) for s in shown],
                "more_images": self_url(path=row["path"], images_from=start + LISTED_IMAGES, cursor=None) if more else None,
            }
        )
    _drop_unwritten(archive.view(PUBLIC if index is archive.public.files else PRIVATE), study, items)
    return items


def _image(iri: str, series: dict[str, Any]) -> dict[str, Any]:
    return {
        "@id": iri,
        "index": int(series.get("index") or 0),
        "name": series.get("name"),
        "axes": series.get("axes"),
        **{f"size_{axis}": series.get(f"size_{axis}") for axis in "xyzct"},
        "pixel_type": series.get("pixel_type"),
        **{f"physical_size_{axis}": micrometres(series.get(f"physical_size_{axis}")) for axis in "xyz"},
        "channels": [label for label in map(channel_label, series.get("channels") or []) if label],
    }


def _drop_unwritten(view: Any, study: str, items: list[dict[str, Any]]) -> None:
    """Keep an image's ``@id`` only when the study's graph describes it (images past the cap are not in the graph)."""
    iris = [image["@id"] for item in items for image in item["images"]]
    if not iris:
        return
    values = " ".join(f"<{iri}>" for iri in iris)
    rows = view.reads.select(
        f"SELECT ?s WHERE {{ GRAPH <{study}> {{ VALUES ?s {{ {values} }} ?s a <https://w3id.org/rembi/Image> }} }}"
    )
    written = {row["s"]["value"] for row in rows}
    for item in items:
        for image in item["images"]:
            if image["@id"] not in written:
                image["@id"] = None


# ---------------------------------------------------------------------------------------------------- previews


class RenderRefused(CatalogError):
    """An image the renderer would not draw (a hostile or broken file, a store it cannot read)."""

    status = 422
    code = "render_failed"


#: how long clients may keep a released image's PNG before asking again (an embargoed one: not kept)
PUBLIC_PNG = "public, max-age=300"
PRIVATE_PNG = "private, no-store"


@blp.route("/studies/<string:accession>/images/<string:image_id>/thumbnail.png")
@blp.arguments(ThumbnailArgs, location="query")
@blp.response(200, BINARY, content_type="image/png", description="The image's thumbnail (or static view), as made")
@blp.doc(
    operationId="getImageThumbnail",
    summary="An image's thumbnail, 128, 256 or 512 px (1024: its static view), once its previews are made",
    responses=responses({304: NOT_MODIFIED}, errors(400, 404)),
)
def image_thumbnail(args: dict[str, Any], accession: str, image_id: str) -> Response:
    view, found = image_for_request(accession, image_id)
    key = preview_key(accession, image_id, args["size"])
    if services().archive.file_store.stat(key) is None:
        raise NotFound(f"no thumbnail of image {image_id} of {accession} has been made (yet)")
    return _png(key, view)


@blp.route("/studies/<string:accession>/images/<string:image_id>/render.png")
@blp.arguments(RenderArgs, location="query")
@blp.response(200, BINARY, content_type="image/png", description="One plane of the image, drawn on demand and kept")
@blp.doc(
    operationId="renderImagePlane",
    summary="One plane (z, t, one channel or the first few composited) at one pyramid level, as PNG (ETag, 304)",
    responses=responses({304: NOT_MODIFIED}, errors(400, 404, 422)),
)
def render_plane(args: dict[str, Any], accession: str, image_id: str) -> Response:
    view, found = image_for_request(accession, image_id)
    archive = services().archive
    result = latest_results(archive.state, accession, [found.file_key]).get(found.file_key) or {}
    series = next((s for s in result.get("series") or [] if int(s.get("index") or 0) == found.series), None)
    if series is None:
        raise NotFound(f"the headers of image {image_id} of {accession} are not read yet")
    _check_plane(args, series)
    c = args.get("c")
    key = f"{derived_prefix(accession, image_id)}render/z{args['z']}-t{args['t']}-c{'all' if c is None else c}-l{args['level']}-r{RENDERER_REVISION}.png"
    store = archive.file_store
    if store.stat(key) is None:
        pool, plane = preview_pool(), (found.series, args["z"], args["t"], c, args["level"])
        source = source_archive(archive.registry, accession)
        try:
            if zarr_stage.needs_staging(store, found.file_key, source):
                data = _staged_png(zarr_stage.run(pool, store, found.file_key, "render", *plane))
            else:
                data = pool.render(_located(store, accession, found.file_key, source), result.get("format"), *plane)
        except RenderFailed as failed:
            raise RenderRefused(f"image {image_id} cannot be rendered: {failed}") from None
        try:
            store.put(key, io.BytesIO(data), size=len(data), content_type="image/png")
        except ObjectExists:
            pass  # another request rendered it first
    return _png(key, view)


def _located(store: Any, accession: str, file_key: str, source: str | None) -> Located:
    """Where the sandboxed renderer reads the image's file: in place, an S3 object by a presigned URL, or a harvested
    study's file at its source archive's (``source``) configured file server."""
    try:
        file = where(store, settings().header_sources, accession, file_key, source)
    except (NotReadableHere, NotLocated) as exc:
        raise RenderRefused(str(exc)) from None
    if file is None:
        raise NotFound(f"{file_key} is not in the file store")
    return file


def _staged_png(answer: dict[str, Any]) -> bytes:
    """The PNG of a plane drawn from an OME-Zarr folder in S3 (:mod:`loaders.previews.zarr_stage`)."""
    if "png" not in answer:
        raise RenderFailed(str(answer.get("reason") or "the plane was not drawn"))
    return base64.b64decode(answer["png"])


def _check_plane(args: dict[str, Any], series: dict[str, Any]) -> None:
    """Each of z, t, c and level within the image's sizes, else a 400 naming it."""
    bounds = {
        "z": series.get("size_z") or 1,
        "t": series.get("size_t") or 1,
        "c": series.get("size_c") or 1,
        "level": series.get("pyramid_levels") or 1,
    }
    problems = [
        {"field": name, "value": args[name], "message": f"{name} must be between 0 and {bound - 1} for this image"}
        for name, bound in bounds.items()
        if args.get(name) is not None and args[name] >= bound
    ]
    if problems:
        raise BadParameter("; ".join(p["message"] for p in problems), problems)


def _png(key: str, view: Any) -> Response:
    """A stored PNG with its ETag (304 when the client's copy is current)."""
    store = services().archive.file_store
    stored = store.stat(key)
    if stored is None:
        raise NotFound("the picture is gone")
    cache = PUBLIC_PNG if view is services().archive.public else PRIVATE_PNG
    headers = {"ETag": f'"{stored.md5}"', "Cache-Control": cache}
    if request.if_none_match.contains_weak(stored.md5):
        return Response(status=304, headers=headers)
    return Response(b"".join(store.open_range(key)), mimetype="image/png", headers=headers)


def preview_pool() -> PreviewPool:
    """The app's sandboxed renderers (started on first use, closed when the process ends)."""
    pool = current_app.extensions.get("bia.previews")
    if pool is None:
        pool = PreviewPool(workers=settings().preview_workers or 1, caps=PreviewCaps.from_settings(settings()))
        current_app.extensions["bia.previews"] = pool
        atexit.register(pool.close)
    return pool
