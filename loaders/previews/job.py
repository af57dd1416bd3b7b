"""The ``previews`` job: thumbnails (128, 256 and 512 px) and a static view (1024 px) of each image of one file,
drawn in the sandbox and stored in the file store under ``derived/<acc>/<image id>/`` (see
:mod:`catalog.image_representations` for the result's shape and how it reaches the graph).

Jobs are queued with the header reads when a study is committed (:func:`enqueue_study`), and by
``bia previews ACCESSION``; a harvested study's by :func:`enqueue_harvested`, each job's payload naming the source
archive whose file server holds the file (``{"source": "biostudies"}``, as the header jobs do): its URL is made when
it is drawn, from ``BIA_HEADER_SOURCES``, so only configured hosts are asked, and redirects only on the same host.
The worker finds the file's images with the header readers (so images are numbered as the headers number them),
then draws each image in its own sandboxed call. Where the file is comes from
:func:`loaders.image_headers.stored.where`: a local store's file is read in place, an S3 object by HTTP Range
requests to a presigned URL (the worker holds no credential; at most ``BIA_PREVIEW_MAX_SOURCE_BYTES`` per image),
and the PNGs go to the same store either way. A file that cannot be read finishes ``unreadable`` with the reason;
an S3 server that cannot be reached fails the job as an outage (retried later without counting an attempt).
"""

from __future__ import annotations

import base64
import io
from typing import Any, Callable, Iterable

from catalog import identifiers, jobs, zarr_folders
from catalog.config import Settings
from catalog.file_store import FileStore
from catalog.image_representations import PREVIEW_KIND, VIEW_SIZE, preview_key
from catalog.stores import open_file_store
from loaders.image_headers import harvested
from loaders.image_headers.remote import NotLocated
from loaders.image_headers.stored import Located, NotReadableHere, payload_source, source_folder_url, where

from . import zarr_stage
from .pool import PreviewCaps, PreviewPool, RenderFailed

KIND = PREVIEW_KIND
#: bumped when what the previews look like changes (with the libraries' versions, it names the renderer's version)
RENDERER_REVISION = 1
_LIBRARIES = ("tifffile", "mrcfile", "pillow", "zarr", "numpy")
#: images of one file drawn at most (the others get no preview)
MAX_IMAGES = 64
#: names of the files previews are queued for (what the renderer draws)
SUFFIXES = (
    *(".tif", ".tiff", ".btf", ".mrc", ".map", ".mrcs", ".rec", ".st", ".map.gz", ".mrc.gz", ".png", ".jpg", ".jpeg"),
    ".ome.zarr.zip",
)


def renderer_version() -> str:
    return jobs.software_version(RENDERER_REVISION, _LIBRARIES)


def image_id(base_url: str, accession: str, path: str, index: int) -> str:
    """The id of a file's image (as :func:`catalog.identifiers.image_id` names it; the base URL does not change it)."""
    return identifiers.image_id(accession, path, index)


def store_png(store: FileStore, key: str, data: bytes) -> int:
    """Put a PNG at ``key``, replacing what an older renderer put there; its size."""
    store.delete(key)
    return store.put(key, io.BytesIO(data), size=len(data), content_type="image/png").size


def make_previews(
    pool: PreviewPool, store: FileStore, base_url: str, job: jobs.Job, sources: tuple[tuple[str, str], ...] = ()
) -> dict[str, Any]:
    """The result of one file's previews job (the PNGs stored)."""
    source = payload_source(job.payload)
    try:
        at_source = source_folder_url(sources, source, job.study, job.file_key) if source else None
    except NotLocated as exc:
        return {"status": "unreadable", "reason": str(exc)}
    staged = zarr_stage.needs_staging(store, job.file_key, source)

    def on_store(action: str, *args: Any) -> dict[str, Any]:
        """An action on a Zarr store a worker cannot read in place: copied as asked, or read at its source."""
        if at_source:
            return pool.remote_store(at_source, job.file_key, action, *args)
        return zarr_stage.run(pool, store, job.file_key, action, *args)

    try:
        found = on_store("images") if staged or at_source else pool.images(_file(store, sources, job))
    except (NotReadableHere, NotLocated, RenderFailed) as exc:
        return {"status": "unreadable", "reason": str(exc)}
    if found["status"] != "ok":
        return {"status": found["status"], "reason": found.get("reason"), "format": found.get("format")}
    relative = job.file_key.removeprefix(f"studies/{job.study}/")
    images = []
    for index in found["series"][:MAX_IMAGES]:
        try:
            if staged or at_source:
                made = on_store("previews", index)
                made["pngs"] = {name: base64.b64decode(text) for name, text in (made.get("pngs") or {}).items()}
            else:  # a presigned URL signed afresh for each image: it lasts minutes
                made = pool.previews(_file(store, sources, job), found["format"], index)
        except (NotReadableHere, NotLocated, RenderFailed) as exc:
            made = {"status": "failed", "reason": str(exc)}
        images.append(_stored(store, base_url, job.study, relative, index, made))
    return {"status": "ok", "format": found["format"], "software": f"bia-previews {renderer_version()}", "images": images}


def _file(store: FileStore, sources: Any, job: jobs.Job) -> Located:
    """Where a worker reads the job's file (:func:`~loaders.image_headers.stored.where`)."""
    file = where(store, sources, job.study, job.file_key, payload_source(job.payload))
    if file is None:
        raise NotReadableHere(f"{job.file_key} is not in the file store")
    return file


def _stored(store: FileStore, base_url: str, accession: str, relative: str, index: int, made: dict[str, Any]) -> dict[str, Any]:
    """Store the PNGs drawn of image ``index``; its entry in the job's result."""
    if made.get("status") != "ok":
        return {"index": index, "status": "failed", "reason": made.get("reason") or "no preview was made"}
    ident = image_id(base_url, accession, relative, index)
    files = {}
    for name, data in made["pngs"].items():
        size = VIEW_SIZE if name == "view" else int(name.rsplit("-", 1)[-1])
        key = preview_key(accession, ident, size)
        width, height = made["sizes"][name]
        files[name] = {"key": key, "width": width, "height": height, "bytes": store_png(store, key, data)}
    return {"index": index, "status": "ok", "level": made.get("level"), "files": files}


def setup(settings: Settings) -> Callable[[jobs.Job], Any]:
    """The handler of a worker: the file store opened once, a pool of sandboxed renderers."""
    store = open_file_store(settings)
    pool = PreviewPool(workers=settings.preview_workers or None, caps=PreviewCaps.from_settings(settings))
    return lambda job: make_previews(pool, store, settings.base_url, job, settings.header_sources)


def register_kind() -> None:
    """Make the kind known to the job queue (the ``bia.jobs`` entry point calls this)."""
    jobs.register(KIND, None, renderer_version(), setup=setup)


def enqueue_study(queue: jobs.JobQueue, accession: str, file_keys: Iterable[str]) -> int:
    """Queue the previews of each of a study's files (``studies/<acc>/<path>`` keys) in a format the renderer
    draws; returns how many are new."""
    wanted = (key for key in file_keys if key.lower().endswith(SUFFIXES) or zarr_folders.is_marker(key))
    return queue.enqueue_many(KIND, renderer_version(), ((accession, key, None) for key in wanted))


def enqueue_harvested(queue: jobs.JobQueue, archive: Any, accessions: Iterable[str]) -> int:
    """Queue the previews of the image files of the harvested studies ``accessions`` (released or embargoed), each
    job naming its source archive (:func:`loaders.image_headers.harvested.enqueue_harvested`); returns how many are
    new. Studies whose source is unknown, deposits and studies without a file table are left out."""
    return harvested.enqueue_harvested(queue, archive, accessions, KIND, renderer_version(), _drawn).jobs


def _drawn(key: str) -> bool:
    """Whether the renderer draws a harvested file of this name (a Zarr store by its folder or its marker)."""
    return key.lower().endswith(SUFFIXES) or zarr_folders.is_marker(key) or zarr_folders.is_store_folder(key)
