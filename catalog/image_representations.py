"""An image's representations (the uploaded file, OME-Zarr stores, thumbnails, a static view) as the graph states
them, from the results of the jobs that make them; where derived files live; the URLs that serve them.

:class:`~catalog.image_graph.ImageGraph` is the one writer of derived image triples: it calls
:func:`representations` for each image it describes, with the file's latest results of these job kinds:

``previews`` (:mod:`loaders.previews.job`), one job per file::

    {"status": "ok" | "skipped" | "unsupported", "reason": str?, "software": "bia-previews r1+…",
     "images": [{"index": 0, "status": "ok", "level": 0,
                 "files": {"thumbnail-128": {"key": "derived/<acc>/<image id>/thumbnail-128.png",
                                              "width": 128, "height": 96, "bytes": 9120}, …, "view": {…}}},
                {"index": 1, "status": "failed", "reason": "…"}]}

``ome_zarr`` (the OME-Zarr jobs), one job per file; either one image's facts at the top level (the file's first
image) or a list of them under ``images``::

    {"status": "ok", "images": [{"index": 0, "kind": "virtual" | "converted", "store_url": "https://…/ome.zarr",
                                 "store_key": "derived/…", "ngff_version": "0.4", "levels": 3, "software": "…"}]}

Absent ``store_url``, the store is the image's ``…/ome.zarr`` URL. A result whose status is not ``ok`` gives no
representation. Derived files are stored under ``derived/<acc>/<image id>/`` in the file store: no file route
serves that prefix, so only the image routes (which decide embargo per request) hand them out, and releasing a
study makes them visible with no rebuild.
"""

from __future__ import annotations

from typing import Any, Iterable, Iterator, Mapping

from catalog import identifiers

#: the job kinds whose results are representations
PREVIEW_KIND = "previews"
OME_ZARR_KIND = "ome_zarr"
DERIVED_KINDS = (PREVIEW_KIND, OME_ZARR_KIND)
#: thumbnail sizes served by ``…/thumbnail.png?size=``; the static view is served as the largest
THUMBNAIL_SIZES = (128, 256, 512)
VIEW_SIZE = 1024
#: the thumbnail size search engines and pages are given
SHOWN_SIZE = 256
#: representative images per study or component
REPRESENTATIVES = 4
_KINDS = {
    "virtual": "virtual_ome_zarr",
    "converted": "converted_ome_zarr",
    "unpacked": "unpacked_ome_zarr",
    "in_place": "uploaded_ome_zarr",
}


def derived_prefix(accession: str, image_id: str) -> str:
    """The file-store folder of an image's derived files."""
    return f"derived/{accession}/{image_id}/"


def preview_key(accession: str, image_id: str, size: int) -> str:
    """The key of an image's thumbnail of ``size`` (or its static view, :data:`VIEW_SIZE`)."""
    name = "view" if size == VIEW_SIZE else f"thumbnail-{size}"
    return f"{derived_prefix(accession, image_id)}{name}.png"


def thumbnail_url(image_iri: str, size: int = SHOWN_SIZE) -> str:
    return f"{image_iri}/thumbnail.png?size={size}"


def store_url(image_iri: str) -> str:
    """The URL the image's OME-Zarr store is served at."""
    return f"{image_iri}/ome.zarr"


def download_url(study: str, file_iri: str) -> str:
    """The download URL of a study's file (as the file routes serve it)."""
    base, _, accession = study.rpartition("/studies/")
    return f"{base}/files/{accession}/{file_iri.rsplit('/', 1)[-1]}/download"


def _for_image(result: Mapping[str, Any] | None, index: int) -> Mapping[str, Any] | None:
    """The part of a per-file result about the image ``index``."""
    if not isinstance(result, Mapping) or result.get("status", "ok") != "ok":
        return None
    images = result.get("images")
    if isinstance(images, list):
        # previews number a file's images ``index``, the ome_zarr job ``series``
        return next((i for i in images if isinstance(i, Mapping) and _number(i) == index), None)
    return result if index == 0 else None


def _number(image: Mapping[str, Any]) -> int:
    try:
        return int(image.get("index", image.get("series")) or 0)
    except (TypeError, ValueError):
        return -1


def has_thumbnail(previews: Mapping[str, Any] | None, index: int) -> bool:
    image = _for_image(previews, index)
    return bool(image and image.get("status") == "ok" and isinstance(image.get("files"), Mapping))


def representations(
    study: str, image_iri: str, file_iri: str, fmt: str | None, size: int | None, index: int, derived: Mapping[str, Any]
) -> Iterator[tuple[str, dict[str, Any]]]:
    """(name, ImageRepresentation slot values) of an image: its uploaded file, then what ``derived`` (job kind →
    the file's latest result) says was made of it."""
    uploaded = download_url(study, file_iri)
    yield (
        "uploaded-file",
        {
            "representation_kind": "uploaded_file",
            "content_url": uploaded,
            "file_format": fmt,
            "size_bytes": size,
        },
    )
    previews = derived.get(PREVIEW_KIND)
    if has_thumbnail(previews, index):
        image = _for_image(previews, index) or {}
        software = previews.get("software") if isinstance(previews, Mapping) else None
        for name, made in sorted(image["files"].items()):
            if not isinstance(made, Mapping):
                continue
            view = name == "view"
            shown = VIEW_SIZE if view else int(name.rsplit("-", 1)[-1])
            yield (
                name,
                {
                    "representation_kind": "static_view" if view else "thumbnail",
                    "content_url": thumbnail_url(image_iri, shown),
                    "file_format": "image/png",
                    "size_x": made.get("width"),
                    "size_y": made.get("height"),
                    "size_bytes": made.get("bytes"),
                    "software": software,
                    "derived_from": file_iri,
                },
            )
    zarr = _for_image(derived.get(OME_ZARR_KIND), index)
    if zarr and zarr.get("kind") in _KINDS:
        yield (
            "ome-zarr",
            {
                "representation_kind": _KINDS[zarr["kind"]],
                "content_url": zarr.get("store_url") or store_url(image_iri),
                "file_format": "OME-Zarr",
                "ngff_version": zarr.get("ngff_version"),
                "pyramid_levels": zarr.get("levels"),
                "software": zarr.get("software"),
                "derived_from": file_iri,
            },
        )


def shown_thumbnails(store: Any, study: str, rows: Iterable[Mapping[str, Any]], size: int = 128) -> dict[str, str]:
    """path → thumbnail URL of the first image of each of a file table's ``rows`` whose thumbnail is made (rows
    whose headers found images only)."""
    accession = study.rsplit("/", 1)[-1]
    found = {}
    for row in rows:
        if not isinstance(row.get("image.series"), int) or row["image.series"] < 1:
            continue
        path = str(row.get("path"))
        image = identifiers.image_iri(study, path, 0)
        if store.stat(preview_key(accession, image.rsplit("/", 1)[-1], size)) is not None:
            found[path] = thumbnail_url(image, size)
    return found
