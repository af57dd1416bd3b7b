"""An OME-Zarr folder held in S3, made drawable: a sandboxed worker cannot read a store of many objects by one
presigned URL, and holds no credential, so it works on a local folder that the caller fills as it asks. The worker
runs the action (list the images, draw the previews of one, render one plane) over
:class:`~loaders.image_headers.sources.DemandKeys`; when it needed objects not copied yet, it answers which, the
caller copies those that exist (noting the others absent) and asks again. So only what the action reads is fetched:
the metadata objects on the way to the image, then the chunks of the one plane at the one level drawn; a drawing the
renderer refuses (too many chunk reads) is refused before any chunk is fetched. Nothing is listed. At most
``BIA_PREVIEW_MAX_SOURCE_BYTES`` (of which ``BIA_HEADER_MAX_BYTES`` of metadata) and :data:`MAX_OBJECTS` objects
are copied per action, in at most :data:`MAX_ROUNDS` rounds. The caller copies bytes and parses none of them."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from catalog import zarr_folders
from catalog.file_paths import path_problem
from catalog.file_store import FileStore
from catalog.file_store_local import LocalFileStore
from loaders.image_headers.stored import copy_object, is_zarr_metadata

from .pool import PreviewPool, RenderFailed
from .render import MAX_CHUNK_READS

#: rounds of asking an action may take (the depth of a plate: root, well, field, level, chunks)
MAX_ROUNDS = 12
#: objects one action may have copied, at most
MAX_OBJECTS = MAX_CHUNK_READS + 20_000


def needs_staging(store: FileStore, file_key: str, source: str | None) -> bool:
    """Whether the file is a Zarr folder's marker whose store a worker cannot read in place."""
    return source is None and zarr_folders.is_marker(file_key) and not isinstance(store, LocalFileStore)


def run(pool: PreviewPool, store: FileStore, file_key: str, action: str, *args: Any) -> dict[str, Any]:
    """The worker's answer to ``action`` on the store ``file_key`` stands for (:func:`~.pool.staged_in_worker`);
    :class:`~.pool.RenderFailed` when it would take more than is allowed."""
    folder = zarr_folders.folder_of_marker(file_key)
    with tempfile.TemporaryDirectory(prefix="bia-zarr-stage-") as scratch:
        absent: set[str] = set()
        copied = objects = metadata = 0
        for _ in range(MAX_ROUNDS):
            answer = pool.staged(scratch, sorted(absent), action, *args)
            if "need" not in answer:
                return answer
            for key in answer["need"]:
                allowed = pool.caps.header_bytes - metadata if is_zarr_metadata(str(key)) else None
                size = _copy(store, folder, str(key), Path(scratch), absent, allowed)
                copied, objects = copied + size, objects + (size > 0)
                metadata += size if allowed is not None else 0
                if copied > pool.caps.source_bytes:
                    raise RenderFailed(f"it would read more than {pool.caps.source_bytes:,} bytes (BIA_PREVIEW_MAX_SOURCE_BYTES)")
                if objects > MAX_OBJECTS:
                    raise RenderFailed(f"it would read more than {MAX_OBJECTS:,} objects")
        raise RenderFailed(f"its store still lacked objects after {MAX_ROUNDS} rounds")


def _copy(store: FileStore, folder: str, key: str, scratch: Path, absent: set[str], allowed: int | None) -> int:
    """Copy ``folder/key`` into ``scratch/key``; its size (0 and noted absent when there is none, or the key is not
    a plain path inside the store). A metadata object larger than ``allowed`` bytes is refused before it is read."""
    if path_problem(key):
        absent.add(key)
        return 0
    found = store.stat(f"{folder}/{key}")
    if found is None:
        absent.add(key)
        return 0
    if allowed is not None and found.size > allowed:
        raise RenderFailed(f"its metadata objects hold more than the header readers' byte cap (BIA_HEADER_MAX_BYTES): {key}")
    copy_object(store, found.key, scratch / key)
    return max(1, found.size)
