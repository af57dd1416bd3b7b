"""Headers of a file the catalog's file store holds, read in the sandbox: the one way the job queue and deposit
validation read a stored file (local folder: in place; S3: not yet, see :func:`read_stored`)."""

from __future__ import annotations

from catalog.file_store import FileStore
from catalog.file_store_local import LocalFileStore

from .model import ImageHeaders
from .pool import HeaderPool


class NotReadableHere(Exception):
    """The store's files cannot be read by this catalog's readers (yet): the reason says why."""


def read_stored(pool: HeaderPool, store: FileStore, key: str) -> ImageHeaders:
    """The headers of the object ``key`` of ``store``. A missing object is an ``unreadable`` file saying so;
    a store whose objects cannot be read here raises :class:`NotReadableHere`."""
    if not isinstance(store, LocalFileStore):
        raise NotReadableHere("headers of files in S3 are not read yet")
    path = store.root / key
    if not path.is_file():
        return ImageHeaders(source=key).fail("unreadable", f"{key} is not in the file store")
    return pool.read(path)
