"""The ``ome_zarr`` job: one per image file of a study; makes each image's OME-Zarr in a sandboxed, capped worker
(:mod:`.worker`) and stores it in the archive's file store beside the study's files.

Queued with the header reads, when a study is committed (:func:`enqueue_study`, from the listener in
``api/services.py``), for files whose names say TIFF, MRC, PNG, JPEG or ``.ome.zarr.zip``; for a harvested study's files
(whose bytes stay at its source archive) with their header reads and previews (:func:`enqueue_harvested`: ``bia
harvest … --headers``, ``bia reindex --headers``, ``bia previews ACCESSION``), each job's payload naming the source
(``{"source": "biostudies"}``). It does not wait for the ``image_headers`` job: the worker reads the headers itself
with the same readers (a few milliseconds), so its series indices, and so its image ids, are the ones the header
job records.

Where the stores go (``{id}``: the image's id, the last segment of its IRI):

- ``derived/{acc}/{id}/ome.zarr.json`` — a virtual store: an fsspec reference document (version 1) whose
  ``templates.u`` is the source file's key (``studies/{acc}/{path}``), every chunk a ``["{{u}}", offset, length]``;
- ``derived/{acc}/{id}/ome.zarr/…`` — a converted or unpacked store, object by object (an unpacked zip's images
  share the store made under its first image's id);
- nothing, for a Zarr store uploaded as a folder (its root metadata file's job, :mod:`catalog.zarr_folders`): each
  image is served from the study's own files under ``studies/{acc}/{folder}`` (kind ``in_place``).

Where the worker reads the file comes from :func:`loaders.image_headers.stored.where`: a local store's file in
place; an S3 object (by a presigned URL) or a harvested file (by its URL at its source's configured file server,
``BIA_HEADER_SOURCES``) is first copied by HTTP Range requests into the job's temporary folder, inside the sandbox
(:func:`make_stores_from_url`; at most ``BIA_OME_ZARR_MAX_SOURCE_BYTES``: the converter's libraries need a real
file, and the worker holds no credential). Either way the stores go to the archive's file store; a virtual store's
chunks are byte ranges of the source file, wherever it is (a harvested file's stay at its source: the routes fetch
each chunk from there, :mod:`api.routes_zarr`). A source that is down fails the job as an outage (retried later
without counting an attempt).

Derived keys do not depend on the study's view: an embargoed study's stores are served only to its owner (the
routes look images up with ``image_for_request``), and to everyone after release, without being made again.

The job's result (a dict), for the routes and for whoever describes the representations:

``status``
    ``ok`` (at least one image has a store). A file that cannot be read fails the job (its reason is the job's
    ``reason``).
``images``
    one dict per image with a store: ``image_id``, ``series`` (its index in the file), ``kind`` (``virtual`` |
    ``converted`` | ``unpacked`` | ``in_place``), ``store_key`` (file-store key of the reference document, or of the store's
    root folder, without a trailing ``/``), ``image_path`` (where the image group is inside the store: ``""``, a
    series of an unpacked bioformats2raw layout such as ``"1"``, a plate's field such as ``"A/1/0"``: the images of
    one zip share its one store), ``ngff_version``, ``levels``, ``size_bytes`` (of the document
    or of all the store's objects), ``software``, ``shape``, ``chunks``, ``dtype`` (numpy, with byte order),
    ``axes`` (NGFF names), ``source_key``, ``source_bytes``; a virtual store also ``references`` (chunks referenced),
    a converted TIFF ``not_virtual`` (why it could not be referenced).
``failures``
    ``[{series, reason}]`` for images of the file that got no store.
``kind``, ``store_key``, ``ngff_version``, ``levels``, ``size_bytes``, ``software``, ``image_id``
    those of the file's first image, for the common one-image file.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, Callable, Iterable

from catalog import identifiers, jobs, zarr_folders
from catalog.config import Settings
from catalog.errors import CatalogError
from catalog.file_store import FileStore, ObjectExists
from catalog.sandbox import Limits, SandboxFailure, SandboxPool
from catalog.stores import open_file_store
from loaders.image_headers import harvested
from loaders.image_headers.remote import NotLocated, SourceUnavailable
from loaders.image_headers.stored import Located, NotReadableHere, locate_folder, payload_source, where

KIND = "ome_zarr"
#: bumped when what the job writes changes (with the libraries' versions, it names the job's version)
REVISION = 3  # 3: big-endian plane TIFFs, tiled stacks, 64-bit integers, tiled 1-bit TIFFs, JPEG (audit 3)
_LIBRARIES = ("tifffile", "zarr", "numcodecs", "mrcfile", "pillow", "ome-zarr-models")
_TARGET = "loaders.ngff.worker:make_stores"
_URL_TARGET = "loaders.ngff.job:make_stores_from_url"
_PRELOAD = ("numpy", "tifffile", "mrcfile", "PIL.Image", "zarr", "numcodecs", "ome_zarr_models.v04.image", "loaders.ngff.worker")
#: names of the files a job is queued for
SUFFIXES = (".tif", ".tiff", ".btf", ".tf8", ".png", ".jpg", ".jpeg", ".ome.zarr.zip")
MRC_SUFFIXES = (".mrc", ".map", ".mrcs", ".rec", ".st", ".ali", ".ccp4", ".mrc2014")
DERIVED = "derived"


class ConversionFailed(CatalogError):
    """The file's images could not be made into OME-Zarr (the reason says why)."""

    status = 422
    code = "conversion_failed"


def job_version() -> str:
    return jobs.software_version(REVISION, _LIBRARIES)


def software() -> str:
    try:
        own = version("bia-catalog")
    except PackageNotFoundError:
        own = "dev"
    return f"bia-catalog {own} ome_zarr {job_version()}"


def wanted(path: str) -> bool:
    """Whether a job is queued for a file of this name (a Zarr folder's root metadata file stands for its store)."""
    lower = path.lower()
    return (
        zarr_folders.is_marker(path)
        or lower.endswith(SUFFIXES)
        or lower.endswith(MRC_SUFFIXES)
        or lower.endswith(tuple(s + ".gz" for s in MRC_SUFFIXES))
    )


def image_id(accession: str, path: str, series: int) -> str:
    """The id of a file's image, as the header facts name it (:func:`catalog.identifiers.image_id`)."""
    return identifiers.image_id(accession, path, series)


def derived_prefix(accession: str, image: str) -> str:
    return f"{DERIVED}/{accession}/{image}"


def caps_of(settings: Settings) -> dict[str, Any]:
    return {
        "max_pixels": settings.ome_zarr_max_pixels,
        "max_bytes": settings.ome_zarr_max_unpacked_bytes,
        "max_members": 200_000,
        "max_images": 64,
        "max_source_bytes": settings.ome_zarr_max_source_bytes,
        "max_metadata_bytes": settings.header_max_bytes,
        "request_timeout": settings.header_request_timeout,
    }


def sandbox_for(settings: Settings) -> SandboxPool:
    limits = Limits(
        seconds=settings.ome_zarr_timeout,
        memory_bytes=settings.ome_zarr_max_memory_mb << 20,
        max_file_bytes=None,
    )
    return SandboxPool(max(1, settings.ome_zarr_workers), limits, preload=_PRELOAD)


def setup(settings: Settings) -> Callable[[jobs.Job], Any]:
    """The handler of a worker: the file store opened once, a pool of sandboxed converters."""
    store = open_file_store(settings)
    pool = sandbox_for(settings)
    caps = caps_of(settings)

    def handle(job: jobs.Job) -> Any:
        source = payload_source(job.payload)
        return make(pool, store, job.study, job.file_key, caps, source=source, sources=settings.header_sources)

    return handle


def make(
    pool: SandboxPool,
    store: FileStore,
    accession: str,
    file_key: str,
    caps: dict[str, Any],
    *,
    source: str | None = None,
    sources: tuple[tuple[str, str], ...] = (),
) -> dict[str, Any]:
    """Make and store the OME-Zarr of each image of the file ``file_key`` (a harvested study's: ``source`` names
    its source archive, whose file server ``sources`` configures); returns the job's result (see module)."""
    path = file_key.removeprefix(f"studies/{accession}/")
    with tempfile.TemporaryDirectory(prefix="bia-ome-zarr-") as out:
        located = _located(store, accession, file_key, caps, Path(out) / ".metadata", source=source, sources=sources)
        made = _made(pool, located, out, path, file_key, caps)
        size = located.size or int(made.get("source_bytes") or 0)
        stored: dict[str, tuple[str, int]] = {}
        images = [_store(store, Path(out), accession, path, file_key, size, image, stored) for image in made["images"]]
    result: dict[str, Any] = {"status": "ok", "format": made.get("format"), "images": images, "failures": made["failures"]}
    first = images[0]
    result.update({k: first[k] for k in ("kind", "store_key", "ngff_version", "levels", "size_bytes", "software", "image_id")})
    return result


def _located(
    store: FileStore,
    accession: str,
    file_key: str,
    caps: dict[str, Any],
    scratch: Path,
    *,
    source: str | None,
    sources: tuple[tuple[str, str], ...],
) -> Located:
    """Where the worker reads the file (:func:`~loaders.image_headers.stored.where`; a Zarr folder's marker: the
    folder, or from S3 a copy of its metadata objects in ``scratch``); :class:`ConversionFailed` when it cannot."""
    try:
        if source is None and zarr_folders.is_marker(file_key):
            folder = zarr_folders.folder_of_marker(file_key)
            located = locate_folder(store, folder, scratch, int(caps["max_metadata_bytes"]))
        else:
            located = where(store, sources, accession, file_key, source)
    except (NotReadableHere, NotLocated) as exc:
        raise ConversionFailed(str(exc)) from None
    if located is None:
        raise ConversionFailed(f"{file_key} is not in the file store")
    return located


def _made(pool: SandboxPool, source: Located, out: str, path: str, file_key: str, caps: dict[str, Any]) -> dict[str, Any]:
    """What the sandboxed worker made under ``out`` (:func:`.worker.make_stores`), or :class:`ConversionFailed`."""
    try:
        if source.url is None:
            made = pool.call(_TARGET, str(source.path), out, path, file_key, caps)
        else:
            made = pool.call(_URL_TARGET, source.to_json(), out, path, file_key, caps)
    except SandboxFailure as failure:
        raise ConversionFailed(f"the conversion was stopped: {failure.reason}") from None
    if made.get("status") == "transient":
        raise SourceUnavailable(f"{file_key}: {made.get('reason')}")
    if made.get("status") != "ok":
        raise ConversionFailed(made.get("reason") or "no image could be read")
    return made


def make_stores_from_url(file: dict[str, Any], out: str, name: str, source_key: str, caps: dict[str, Any]) -> dict[str, Any]:
    """The worker's side for a file read by URL: copy it into ``out/.source/`` by Range requests (at most
    ``caps["max_source_bytes"]``), then :func:`.worker.make_stores` on the copy, which is removed after."""
    from loaders.image_headers.remote import SourceDown, SourceFailed, fetch_to_file
    from loaders.image_headers.sources import ByteCapExceeded

    from .worker import make_stores

    folder = Path(out) / ".source"
    folder.mkdir()
    local = folder / (Path(name).name or "file")
    cap = int(caps["max_source_bytes"])
    try:
        fetch_to_file(file["url"], file["name"], file.get("size"), str(local), cap=cap, timeout=caps["request_timeout"])
    except SourceDown as exc:
        return {"status": "transient", "reason": str(exc)}
    except SourceFailed as exc:
        return {"status": "unreadable", "reason": f"the file could not be fetched: {exc}"}
    except ByteCapExceeded as exc:
        return {"status": "unreadable", "reason": f"{exc} (BIA_OME_ZARR_MAX_SOURCE_BYTES)"}
    try:
        return {**make_stores(str(local), out, name, source_key, caps), "source_bytes": local.stat().st_size}
    finally:
        local.unlink(missing_ok=True)


def _store(
    store: FileStore,
    out: Path,
    accession: str,
    path: str,
    file_key: str,
    source_bytes: int,
    image: dict[str, Any],
    stored: dict[str, tuple[str, int]],
) -> dict[str, Any]:
    """Upload what the worker made for ``image`` (a store several images share, ``folder``, once: ``stored`` maps
    each uploaded folder to its key and size) and describe it as the result's ``images`` entry."""
    ident = image_id(accession, path, int(image["series"]))
    if image["kind"] == "in_place":  # served where it lies: the study's own files
        store_key = zarr_folders.folder_of_marker(file_key)
        return {
            "image_id": ident,
            **image,
            "store_key": store_key,
            "size_bytes": None,
            "software": software(),
            "source_key": file_key,
        }
    folder = str(image.pop("folder", image["series"]))
    local = out / folder / image.pop("file")
    root = image.pop("root", "")
    if folder not in stored:
        stored[folder] = _upload(store, local, derived_prefix(accession, ident), image, source_bytes, root)
    key, size = stored[folder]
    return {
        "image_id": ident,
        **image,
        "image_path": image.get("image_path", ""),
        "store_key": key,
        "size_bytes": size,
        "software": software(),
        "source_key": file_key,
        "source_bytes": source_bytes,
    }


def _upload(store: FileStore, local: Path, prefix: str, image: dict[str, Any], source_bytes: int, root: str) -> tuple[str, int]:
    """Put a reference document or a store folder under ``prefix``; its key and size in bytes."""
    if image["kind"] == "virtual":
        key = f"{prefix}/ome.zarr.json"
        size = _put(store, key, local, "application/json")
        image["reference_ratio"] = size / source_bytes if source_bytes else None
        return key, size
    key = f"{prefix}/ome.zarr"
    top = local / root
    return key, sum(_put(store, f"{key}/{rel}", top / rel, None) for rel in _files(top))


def _files(root: Path) -> Iterable[str]:
    for folder, _dirs, names in os.walk(root):
        for name in names:
            yield Path(folder, name).relative_to(root).as_posix()


def _put(store: FileStore, key: str, local: Path, content_type: str | None) -> int:
    """Store ``local`` at ``key``; an object already there is kept if it has the same bytes, else replaced."""
    size = local.stat().st_size
    existing = store.stat(key)
    if existing is not None:
        if existing.size == size and existing.sha256 == _sha256(local):
            return size
        store.delete(key)
    with local.open("rb") as stream:
        try:
            store.put(key, stream, size=size, content_type=content_type or _media(key))
        except ObjectExists:  # another worker stored it meanwhile: the same job's output
            pass
    return size


def _media(key: str) -> str:
    return (
        "application/json"
        if key.rsplit("/", 1)[-1] in (".zattrs", ".zarray", ".zgroup", "zarr.json")
        else "application/octet-stream"
    )


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def register_kind() -> None:
    """Make the kind known to the job queue (the ``bia.jobs`` entry point calls this)."""
    jobs.register(KIND, None, job_version(), setup=setup)


def enqueue_study(queue: jobs.JobQueue, accession: str, file_keys: Iterable[str]) -> int:
    """Queue an OME-Zarr job for each of a study's image files (``studies/<acc>/<path>`` keys); returns how many
    are new."""
    return queue.enqueue_many(KIND, job_version(), ((accession, key, None) for key in file_keys if wanted(key)))


def enqueue_harvested(queue: jobs.JobQueue, archive: Any, accessions: Iterable[str]) -> int:
    """Queue an OME-Zarr job for each image file of the harvested studies ``accessions`` (released or embargoed),
    each naming its source archive (:func:`loaders.image_headers.harvested.enqueue_harvested`); returns how many are
    new. Studies whose source is unknown, deposits and studies without a file table are left out, and so are Zarr
    folders (their stores stay at the source, not read from there: :func:`~loaders.image_headers.stored.source_url`)."""

    def harvested_wanted(key: str) -> bool:
        return wanted(key) and not zarr_folders.is_marker(key)

    return harvested.enqueue_harvested(queue, archive, accessions, KIND, job_version(), harvested_wanted).jobs
