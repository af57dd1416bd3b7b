"""The ``image_headers`` job: read the headers of one file the archive holds, in the sandbox, and keep what they say
as the job's result (one per file and reader version, so no file is read twice by the same readers).

Jobs are queued for every file of a study the archive holds when the study is committed
(:func:`enqueue_study`); `bia work`, or the serving process's background worker, reads them. Files in the local file
store are read in place. Files in S3 are not read yet: their jobs finish with status ``skipped`` and say so
(range reads through :class:`~loaders.image_headers.sources.RangeSource` are the next step).
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import Any, Callable

from catalog import jobs
from catalog.config import Settings
from catalog.stores import open_file_store

from .pool import HeaderCaps, HeaderPool
from .stored import NotReadableHere, read_stored

KIND = "image_headers"
#: bumped when what the readers extract changes (with the libraries' versions, it names the readers' version)
READERS_REVISION = 1
_LIBRARIES = ("tifffile", "ome-types", "mrcfile", "pillow", "zarr")


def readers_version() -> str:
    """The version of the readers: their revision and the versions of the libraries they use."""
    parts = [f"r{READERS_REVISION}"]
    for name in _LIBRARIES:
        try:
            parts.append(f"{name}-{version(name)}")
        except PackageNotFoundError:
            parts.append(f"{name}-none")
    return "+".join(parts)


def setup(settings: Settings) -> Callable[[jobs.Job], Any]:
    """The handler of a worker: the file store opened once, a pool of sandboxed readers."""
    store = open_file_store(settings)
    pool = HeaderPool(workers=settings.header_workers or None, caps=HeaderCaps.from_settings(settings))

    def handle(job: jobs.Job) -> Any:
        try:
            return read_stored(pool, store, job.file_key).to_dict()
        except NotReadableHere as exc:
            return {"status": "skipped", "reason": str(exc)}

    return handle


def register_kind() -> None:
    """Make the kind known to the job queue (the ``bia.jobs`` entry point calls this)."""
    jobs.register(KIND, None, readers_version(), setup=setup)


def enqueue_study(queue: jobs.JobQueue, accession: str, file_keys: Any) -> int:
    """Queue a header read of each of a study's files (``studies/<acc>/<path>`` keys); returns how many are new."""
    return queue.enqueue_many(KIND, readers_version(), ((accession, key, None) for key in file_keys))
