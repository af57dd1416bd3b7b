"""The ``image_headers`` job: read the headers of one file the archive holds, in the sandbox, and keep what they say
as the job's result (one per file and reader version, so no file is read twice by the same readers).

Jobs are queued for every file of a study the archive holds when the study is committed
(:func:`enqueue_study`), and for the files of harvested studies when asked (:func:`enqueue_harvested`: ``bia harvest
… --headers``, ``bia reindex --headers``, with their previews and OME-Zarr conversions); `bia work`, or the serving
process's background worker, reads them.
A file the archive holds is read from the file store (:func:`~.stored.read_stored`: in place, or from S3 by range
requests). A harvested file's job carries the name of its source archive as its payload (``{"source":
"biostudies"}``, chosen by :func:`~.remote.source_of` from the accession when it is queued); its URL is made when it
is read, from the study, the file's path (its key is ``studies/<acc>/<path>`` too) and the source's base URL as
configured then (``BIA_HEADER_SOURCES``), so no URL is stored and only configured hosts are asked
(:mod:`.remote`). A source that is down fails the job as an outage: the queue tries it again later without counting
an attempt.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Callable

from catalog import jobs
from catalog.config import Settings
from catalog.stores import open_file_store

from . import harvested
from .harvested import HarvestedQueued
from .model import ImageHeaders
from .pool import HeaderCaps, HeaderPool
from .remote import NoSource, NotLocated
from .stored import NotReadableHere, read_stored, source_folder_url, source_url

KIND = "image_headers"
#: bumped when what the readers extract changes (with the libraries' versions, it names the readers' version)
READERS_REVISION = 4
_LIBRARIES = ("tifffile", "ome-types", "mrcfile", "pillow", "zarr", "czifile", "nd2", "liffile")


def readers_version() -> str:
    """The version of the readers: their revision and the versions of the libraries they use."""
    return jobs.software_version(READERS_REVISION, _LIBRARIES)


def setup(settings: Settings) -> Callable[[jobs.Job], Any]:
    """The handler of a worker: the file store opened once, a pool of sandboxed readers."""
    store = open_file_store(settings)
    pool = HeaderPool(workers=settings.header_workers or None, caps=HeaderCaps.from_settings(settings))

    def handle(job: jobs.Job) -> Any:
        payload = job.payload if isinstance(job.payload, dict) else {}
        source, name = payload.get("source"), payload.get("name")
        try:
            if source is not None:
                return read_harvested(pool, settings.header_sources, str(source), job.study, job.file_key).to_dict()
            return read_stored(pool, store, job.file_key, name=str(name) if name else None).to_dict()
        except (NotReadableHere, NoSource) as exc:
            return {"status": "skipped", "reason": str(exc)}

    return handle


def read_harvested(
    pool: HeaderPool, sources: tuple[tuple[str, str], ...], source: str, accession: str, file_key: str
) -> ImageHeaders:
    """The headers of a harvested study's file (``studies/<acc>/<path>``), read from ``source``'s file server by
    range requests. Raises :class:`~.remote.NoSource` when no server is configured for ``source``, and
    :class:`~.remote.SourceUnavailable` when it cannot be reached or is busy."""
    try:
        folder = source_folder_url(sources, source, accession, file_key)
        if folder is not None:  # a Zarr store: its metadata objects
            return pool.read_zarr_url(folder, file_key)
        url = source_url(sources, source, accession, file_key)
    except NoSource:
        raise
    except NotLocated as exc:
        return ImageHeaders(source=file_key).fail("unreadable", str(exc))
    return pool.read_url(url)


def register_kind() -> None:
    """Make the kind known to the job queue (the ``bia.jobs`` entry point calls this)."""
    jobs.register(KIND, None, readers_version(), setup=setup)


def enqueue_study(queue: jobs.JobQueue, accession: str, file_keys: Any) -> int:
    """Queue a header read of each of a study's files (``studies/<acc>/<path>`` keys); returns how many are new."""
    return queue.enqueue_many(KIND, readers_version(), ((accession, key, None) for key in file_keys))


def enqueue_harvested(queue: jobs.JobQueue, archive: Any, accessions: Iterable[str] | None = None) -> HarvestedQueued:
    """Queue a header read of every listed file of the harvested studies ``accessions`` (default: all released or
    embargoed ones; deposited studies are left to :func:`enqueue_study`), by :func:`.harvested.enqueue_harvested`.
    Jobs already known are not added again."""
    return harvested.enqueue_harvested(queue, archive, accessions, KIND, readers_version())
