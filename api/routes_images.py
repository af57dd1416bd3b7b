"""A study's images: what the headers of its files say, a page of image files at a time."""

from __future__ import annotations

import json
from typing import Any

from flask import Response

from api.context import services, settings
from api.openapi import Blueprint, errors, responses
from api.records import self_url
from api.routes_files import file_index_for
from api.schemas import ImageList, ImagesArgs
from catalog import identifiers, image_index
from catalog.errors import NotFound
from catalog.file_index import FileIndex, Filter
from catalog.image_columns import channel_label, header_key, latest_results, micrometres
from catalog.image_graph import ImageGraph
from catalog.image_index import IndexedImage
from catalog.views import PRIVATE, PUBLIC

blp = Blueprint("images", __name__, description="A study's images, as their files' headers describe them")
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
        read = [Filter(SERIES, "gte", 0)]
        page = index.query(accession, read, limit=args["limit"], cursor=args.get("cursor"))
        body.update(items=_items(index, accession, study, page.items), total=page.total)
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


def _items(index: FileIndex, accession: str, study: str, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    archive = services().archive
    keys = [header_key(accession, str(row["path"])) for row in rows]
    results = latest_results(archive.state, accession, keys)
    namer = ImageGraph(archive.model, study, cap=0)
    items = []
    for key, row in zip(keys, rows):
        result = results.get(key) or {}
        images = [_image(namer.image_iri(str(row["path"]), int(s.get("index") or 0)), s) for s in result.get("series") or []]
        items.append(
            {
                "file": identifiers.file_iri(study, str(row["path"]), row.get("size")),
                "path": row["path"],
                "status": result.get("status", row.get(READ)),
                "format": result.get("format"),
                "reason": result.get("reason"),
                "images": images,
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
