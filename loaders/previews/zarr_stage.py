"""An OME-Zarr folder held in S3, made drawable: a sandboxed worker cannot read a store of many objects by one
presigned URL, and holds no credential, so the caller copies what a drawing needs into a temporary folder the
worker reads: first the store's metadata objects (at most ``BIA_HEADER_MAX_BYTES``), from which the worker says
which level's array the drawing reads (:meth:`~.pool.PreviewPool.zarr_level`), then that array's objects (at most
``BIA_PREVIEW_MAX_SOURCE_BYTES``, and no more chunks than the renderer reads at most). The caller copies bytes and
parses none of them."""

from __future__ import annotations

import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from catalog import zarr_folders
from catalog.file_paths import path_problem
from catalog.file_store import FileStore
from catalog.file_store_local import LocalFileStore
from loaders.image_headers.stored import Located, copy_objects, copy_zarr_metadata

from .pool import PreviewPool, RenderFailed
from .render import MAX_CHUNK_READS


def needs_staging(store: FileStore, file_key: str, source: str | None) -> bool:
    """Whether the file is a Zarr folder's marker whose store a worker cannot read in place."""
    return source is None and zarr_folders.is_marker(file_key) and not isinstance(store, LocalFileStore)


@contextmanager
def metadata_of(pool: PreviewPool, store: FileStore, file_key: str) -> Iterator[Located]:
    """A temporary folder holding the metadata objects of the store ``file_key`` stands for (to list its images)."""
    folder = zarr_folders.folder_of_marker(file_key)
    with tempfile.TemporaryDirectory(prefix="bia-zarr-stage-") as scratch:
        problem = copy_zarr_metadata(store, folder, Path(scratch), pool.caps.header_bytes)
        if problem:
            raise RenderFailed(f"{folder}: {problem}")
        yield Located(name=folder, path=scratch)


@contextmanager
def staged(pool: PreviewPool, store: FileStore, file_key: str, series: int, level: int | None, side: int) -> Iterator[Located]:
    """A temporary folder holding what drawing image ``series`` at ``level`` (None: the lowest that suffices for
    ``side`` pixels) reads; :class:`~.pool.RenderFailed` when it would take more than is allowed."""
    folder = zarr_folders.folder_of_marker(file_key)
    with metadata_of(pool, store, file_key) as located:
        assert located.path is not None
        array = pool.zarr_level(located.path, series, level, side)
        if path_problem(array):
            raise RenderFailed(f"the level's path {array[:200]!r} has {path_problem(array)}")
        problem = copy_objects(
            store,
            f"{folder}/{array}",
            Path(located.path) / array,
            pool.caps.source_bytes,
            MAX_CHUNK_READS,
            lambda relative: True,
            "chunks (BIA_PREVIEW_MAX_SOURCE_BYTES)",
        )
        if problem:
            raise RenderFailed(f"drawing it: {problem}")
        yield located
