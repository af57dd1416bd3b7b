"""Jobs for the files of harvested studies: the one way header reads, previews and OME-Zarr conversions of files
whose bytes stay at their source archive are queued (``bia harvest … --headers``, ``bia reindex --headers``,
``bia previews ACCESSION``).

Each job's payload names the source archive (``{"source": "biostudies"}``, :func:`~.remote.source_of` of the
accession); the job makes the file's URL when it runs (:func:`~.stored.where`), from the source's base URL as
configured then (``BIA_HEADER_SOURCES``), so no URL is stored and only configured hosts are asked.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from catalog import jobs, zarr_folders
from catalog.errors import NotFound
from catalog.registry import EMBARGOED, RELEASED
from catalog.views import PRIVATE, PUBLIC

from .remote import source_of


@dataclass
class HarvestedQueued:
    """What :func:`enqueue_harvested` did: jobs added, studies whose files were queued, studies left out because no
    source archive is known for their accession (e.g. IDR studies, legacy collections)."""

    jobs: int = 0
    studies: list[str] = field(default_factory=list)
    no_source: list[str] = field(default_factory=list)
    #: previews queued for the same files (set by the caller that queues them too)
    previews: int = 0
    #: OME-Zarr conversions queued for the same files (set by the caller that queues them too)
    ome_zarr: int = 0


def enqueue_harvested(
    queue: jobs.JobQueue,
    archive: Any,
    accessions: Iterable[str] | None,
    kind: str,
    version: str,
    wanted: Callable[[str], bool] | None = None,
) -> HarvestedQueued:
    """Queue a ``kind`` job at ``version`` for every listed file (each ``studies/<acc>/<path>`` key ``wanted``
    accepts; default: all; of a Zarr folder, its marker only, as for deposits) of the harvested studies
    ``accessions`` (None: every released or embargoed one).
    Deposited studies (left to each kind's ``enqueue_study``), studies not committed and studies without a file
    table are left out; jobs already known are not added again."""
    done = HarvestedQueued()
    for row in _harvested(archive, accessions):
        source = source_of(row.accession)
        if source is None:
            done.no_source.append(row.accession)
            continue
        view = archive.view(PUBLIC if row.state == RELEASED else PRIVATE)
        try:
            # a Zarr folder: its marker only, or the folder when the source lists it as one entry
            keys = zarr_folders.image_file_keys(view.files, row.accession, folders=True)
            items = ((row.accession, key, {"source": source}) for key in keys if wanted is None or wanted(key))
            done.jobs += queue.enqueue_many(kind, version, items)
        except NotFound:  # no file table
            continue
        done.studies.append(row.accession)
    return done


def source_archive(registry: Any, accession: str) -> str | None:
    """The source archive whose file server holds a study's files (:func:`~.remote.source_of`); None for a
    deposit (its files are held here), a study the registry does not know, or a source with no known file server."""
    row = registry.study(accession)
    return source_of(accession) if row is not None and row.source != "deposit" else None


def _harvested(archive: Any, accessions: Iterable[str] | None) -> Iterator[Any]:
    """The registry rows of the released or embargoed harvested studies among ``accessions`` (None: all)."""
    if accessions is None:
        rows = archive.registry.studies(states=(RELEASED, EMBARGOED))
    else:
        rows = (archive.registry.study(accession) for accession in dict.fromkeys(accessions))
    for row in rows:
        if row is not None and row.source != "deposit" and row.state in (RELEASED, EMBARGOED):
            yield row
