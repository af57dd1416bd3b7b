"""Headers of a file the catalog's file store holds, read in the sandbox: the one way the job queue and deposit
validation read a stored file. A local folder's file is read in place; an S3 object by HTTP Range requests the
worker makes to a short-lived presigned GET URL (signed for the address the catalog itself reaches, not the public
one), so no byte of it is parsed in the caller."""

from __future__ import annotations

from datetime import timedelta

import urllib3
from minio.error import MinioException

from catalog.file_store import FileStore, StorageUnavailable
from catalog.file_store_local import LocalFileStore
from catalog.file_store_s3 import S3FileStore

from .model import ImageHeaders
from .pool import HeaderPool

#: how long the URL a worker reads an S3 object through stays valid
URL_LIFETIME = timedelta(minutes=15)


class NotReadableHere(Exception):
    """The store's files cannot be read by this catalog's readers: the reason says why."""


def read_stored(pool: HeaderPool, store: FileStore, key: str, name: str | None = None) -> ImageHeaders:
    """The headers of the object ``key`` of ``store``. A missing object is an ``unreadable`` file saying so; a
    store of another kind raises :class:`NotReadableHere`; an S3 server that cannot be reached raises a 503 error
    (:class:`~catalog.file_store.StorageUnavailable` or :class:`~.remote.SourceUnavailable`: try again later).
    ``name``: the file's own name when the key does not end with it (a staged upload's): it helps tell the format."""
    if isinstance(store, S3FileStore):
        return _read_s3(pool, store, key, name)
    if not isinstance(store, LocalFileStore):
        raise NotReadableHere(f"headers of files in a {type(store).__name__} are not read")
    path = store.root / key
    if not path.is_file():
        return _missing(key)
    return pool.read(path, name=name)


def _read_s3(pool: HeaderPool, store: S3FileStore, key: str, name: str | None = None) -> ImageHeaders:
    found = store.stat(key)
    if found is None:
        return _missing(key)
    try:
        url = store.client.presigned_get_object(store.bucket, key, expires=URL_LIFETIME)
    except (MinioException, urllib3.exceptions.HTTPError) as exc:  # signing may ask the server for its region
        raise StorageUnavailable(f"object storage failed to sign a URL for {key!r}: {exc}") from exc
    return pool.read_url(url, name=name or key, size=found.size)


def _missing(key: str) -> ImageHeaders:
    return ImageHeaders(source=key).fail("unreadable", f"{key} is not in the file store")
