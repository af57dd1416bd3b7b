"""Files the catalog's file store holds, read in the sandbox: the one way the job queue, deposit validation, the
previews and the OME-Zarr converter find a stored file. :func:`locate` says where a worker reads it: a local
folder's file in place; an S3 object by HTTP Range requests the worker makes to a short-lived presigned GET URL
(signed for the address the catalog itself reaches, not the public one), so no byte of it is parsed in the caller
and no worker holds a credential. :func:`where` says the same for any file of a study, a harvested study's file
included (its URL at its source archive, :func:`~.remote.file_url`): the one way the previews and OME-Zarr jobs,
and the routes that read a file for a request, find it. :func:`read_stored` reads a stored file's headers; a Zarr
folder's root metadata file (:mod:`catalog.zarr_folders`) stands for its whole store, whose metadata objects are
read (:func:`read_zarr_folder`)."""

from __future__ import annotations

import tempfile
from dataclasses import asdict, dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import urllib3
from minio.error import MinioException

from catalog import zarr_folders
from catalog.file_paths import path_problem
from catalog.file_store import FileStore, StorageUnavailable
from catalog.file_store_local import LocalFileStore
from catalog.file_store_s3 import S3FileStore

from .model import ImageHeaders
from .pool import HeaderPool
from .remote import file_url

#: how long the URL a worker reads an S3 object through stays valid
URL_LIFETIME = timedelta(minutes=15)


class NotReadableHere(Exception):
    """The store's files cannot be read by this catalog's readers: the reason says why."""


@dataclass(frozen=True)
class Located:
    """Where a sandboxed worker reads a file: a local ``path``, or a ``url`` it reads by Range requests (a
    presigned S3 URL, or a harvested file at its source archive); ``name`` is what the file is called in results
    and messages (never the URL: it may carry a signature), ``size`` its length when known."""

    name: str
    path: str | None = None
    url: str | None = None
    size: int | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def locate(store: FileStore, key: str) -> Located | None:
    """Where a worker reads the object ``key`` of ``store`` (None: no such object). A store of another kind raises
    :class:`NotReadableHere`; an S3 server that cannot sign a URL raises
    :class:`~catalog.file_store.StorageUnavailable` (a 503 error: try again later). A Zarr folder's root metadata
    file stands for its store: a local store's folder is located (its chunks are read in place); one in S3 is not
    readable here (a worker could not read its chunks by one presigned URL)."""
    if zarr_folders.is_marker(key):
        return locate_folder(store, zarr_folders.folder_of_marker(key))
    if isinstance(store, S3FileStore):
        found = store.stat(key)
        if found is None:
            return None
        try:
            url = store.client.presigned_get_object(store.bucket, key, expires=URL_LIFETIME)
        except (MinioException, urllib3.exceptions.HTTPError) as exc:  # signing may ask the server for its region
            raise StorageUnavailable(f"object storage failed to sign a URL for {key!r}: {exc}") from exc
        return Located(name=key, url=url, size=found.size)
    if not isinstance(store, LocalFileStore):
        raise NotReadableHere(f"files in a {type(store).__name__} are not read")
    path = store.root / key
    return Located(name=key, path=str(path), size=path.stat().st_size) if path.is_file() else None


def where(
    store: FileStore, sources: tuple[tuple[str, str], ...], accession: str, file_key: str, source: str | None = None
) -> Located | None:
    """Where a worker reads a study's file ``file_key`` (``studies/<acc>/<path>``): the file store's object
    (:func:`locate`), or, for a harvested study's file (``source``: its source archive), its URL at the source's
    configured file server (:func:`source_url`; its size unknown). None: no such object. Raises
    :class:`~.remote.NotLocated` (no server configured, or a path outside the study's folder),
    :class:`NotReadableHere` or :class:`~catalog.file_store.StorageUnavailable`."""
    if source is None:
        return locate(store, file_key)
    return Located(name=file_key, url=source_url(sources, source, accession, file_key))


def source_url(sources: tuple[tuple[str, str], ...], source: str, accession: str, file_key: str) -> str:
    """The URL of a harvested study's file at its source archive (:func:`~.remote.file_url`); a Zarr store (its
    folder or its marker) raises :class:`NotReadableHere`: its pixels, many objects at the source, are not read from
    there (its headers are: :func:`source_folder_url`)."""
    path = file_key.removeprefix(f"studies/{accession}/")
    folder = zarr_folders.store_named(path)
    if folder is not None:
        raise NotReadableHere(f"{folder}: the pixels of an OME-Zarr folder at the source archive are not read from there")
    return file_url(sources, source, accession, path)


def source_folder_url(sources: tuple[tuple[str, str], ...], source: str, accession: str, file_key: str) -> str | None:
    """The URL at the source archive, ending with ``/``, of the folder of a harvested study's Zarr store, given the
    folder (listed as one entry: ``studies/<acc>/x.ome.zarr``) or its marker (the store listed file by file); None
    for any other key."""
    folder = zarr_folders.store_named(file_key.removeprefix(f"studies/{accession}/"))
    return None if folder is None else file_url(sources, source, accession, folder) + "/"


def payload_source(payload: Any) -> str | None:
    """The source archive a job's payload names for a harvested study's file (``{"source": "biostudies"}``); None:
    a file of the archive's own store."""
    found = payload.get("source") if isinstance(payload, dict) else None
    return str(found) if found else None


def read_stored(pool: HeaderPool, store: FileStore, key: str, name: str | None = None) -> ImageHeaders:
    """The headers of the object ``key`` of ``store``. A missing object is an ``unreadable`` file saying so; a
    store of another kind raises :class:`NotReadableHere`; an S3 server that cannot be reached raises a 503 error
    (:class:`~catalog.file_store.StorageUnavailable` or :class:`~.remote.SourceUnavailable`: try again later).
    ``name``: the file's own name when the key does not end with it (a staged upload's): it helps tell the format."""
    if zarr_folders.is_marker(key):
        return read_zarr_folder(pool, store, zarr_folders.folder_of_marker(key))
    found = locate(store, key)
    if found is None:
        return missing(key)
    if found.url is not None:
        return pool.read_url(found.url, name=name or key, size=found.size)
    return pool.read(str(found.path), name=name)


def missing(key: str) -> ImageHeaders:
    return ImageHeaders(source=key).fail("unreadable", f"{key} is not in the file store")


#: names of a Zarr store's metadata objects (what the header readers read: never a chunk)
ZARR_METADATA = (".zattrs", ".zgroup", ".zarray", ".zmetadata", "zarr.json")
ZARR_OME_XML = "OME/METADATA.ome.xml"
#: metadata objects of one store copied at most (each is a request to the object store)
MAX_METADATA_OBJECTS = 100_000


class MetadataTooLarge(NotReadableHere):
    """A Zarr folder in S3 whose metadata objects are more, or larger, than may be copied for a worker to read."""


def is_zarr_metadata(key: str) -> bool:
    """Whether a key of a Zarr store (relative to its root) is a metadata object, the OME-XML of a layout included."""
    return key.rsplit("/", 1)[-1] in ZARR_METADATA or key == ZARR_OME_XML


def locate_folder(store: FileStore, folder: str, copy_into: Path | None = None, cap: int = 0) -> Located | None:
    """Where a worker reads the Zarr store held as the files under ``folder`` (None: no such folder): a local store's
    folder in place; from S3, given ``copy_into``, a copy of its metadata objects made there (enough to read its
    headers and validate its images: never a chunk; at most ``cap`` bytes, else :class:`MetadataTooLarge`).
    Otherwise :class:`NotReadableHere` (a worker could not read the store's objects by one presigned URL)."""
    if isinstance(store, LocalFileStore):
        path = store.root / folder
        return Located(name=folder, path=str(path)) if path.is_dir() else None
    if isinstance(store, S3FileStore) and copy_into is not None:
        problem = copy_zarr_metadata(store, folder, copy_into, cap)
        if problem:
            raise MetadataTooLarge(f"{folder}: {problem}")
        return Located(name=folder, path=str(copy_into))
    raise NotReadableHere(
        f"the pixels of an OME-Zarr folder are read only from a local file store, not from a {type(store).__name__}"
    )


def read_zarr_folder(pool: HeaderPool, store: FileStore, folder: str) -> ImageHeaders:
    """The headers of the Zarr store held as the files under ``folder`` (:func:`locate_folder`: from S3, its
    metadata objects are first copied, at most the readers' byte cap; the worker holds no credential, and the caller
    parses nothing)."""
    with tempfile.TemporaryDirectory(prefix="bia-zarr-metadata-") as copy:
        try:
            found = locate_folder(store, folder, Path(copy), pool.caps.max_bytes)
        except MetadataTooLarge as exc:
            return ImageHeaders(source=folder).fail("unreadable", str(exc))
        headers = pool.read(str(found.path)) if found is not None else missing(folder)
    headers.source = folder
    return headers


def copy_zarr_metadata(store: FileStore, folder: str, target: Path, cap: int) -> str | None:
    """Copy the metadata objects of the store under ``folder`` into ``target`` (each under its path); a reason when
    they hold more than ``cap`` bytes or are more than :data:`MAX_METADATA_OBJECTS`."""
    copied = count = 0
    for found in store.list(folder + "/", checksums=False):
        relative = found.key[len(folder) + 1 :]
        if not is_zarr_metadata(relative) or path_problem(relative):
            continue
        copied, count = copied + found.size, count + 1
        if copied > cap:
            return f"its metadata objects hold more than the {cap:,}-byte cap"
        if count > MAX_METADATA_OBJECTS:
            return f"it holds more than {MAX_METADATA_OBJECTS:,} metadata objects"
        copy_object(store, found.key, target / relative)
    return None


def copy_object(store: FileStore, key: str, local: Path) -> None:
    """Write the object ``key`` of ``store`` to the local file ``local`` (its folders made)."""
    local.parent.mkdir(parents=True, exist_ok=True)
    with local.open("wb") as out:
        for chunk in store.open_range(key):
            out.write(chunk)
