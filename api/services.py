"""Wiring of the catalog's parts for the faces (CLI, HTTP): the archive, deposits with the loaders' formats, and the
background duties (linking released studies is the linkers' part)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterator

from catalog import image_facts, zarr_folders
from catalog.archive import Archive, Change
from catalog.config import Settings
from catalog.deposits import Deposits
from catalog.jobs import JobQueue, Worker, background_worker
from catalog.maintenance import Maintenance
from catalog.records import DocumentLimits
from linkers.discover import link_if_changed
from loaders.deposit_formats import DefaultFormats
from loaders.image_headers.job import enqueue_study
from loaders.previews import job as previews
from loaders.ngff import job as ome_zarr_job


@dataclass
class Services:
    """An open archive, its deposit lifecycle and its background duties."""

    archive: Archive
    deposits: Deposits
    maintenance: Maintenance
    #: the job worker thread of a serving process (:meth:`start_jobs`)
    jobs: Worker | None = None

    def follow(self) -> None:
        """Bring what follows the catalog (the link graphs) up to date with its changes: a command that changed
        the catalog calls it before it ends, a server does it in the background."""
        self.maintenance.follow()

    def start_jobs(self) -> None:
        """Work on queued jobs of every registered kind in a background thread until :meth:`close`."""
        if self.jobs is None:
            self.jobs = background_worker(self.archive.state, self.archive.settings)

    def close(self) -> None:
        if self.jobs is not None:
            self.jobs.close()
            self.jobs = None
        self.maintenance.stop()
        self.deposits.close()
        self.archive.close()

    def __enter__(self) -> "Services":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def header_reads_for(archive: Archive) -> Callable[[Change], None]:
    """A listener that queues a header read of every file of a study the archive holds, the previews of its image
    files and the OME-Zarr of each (:mod:`loaders.ngff.job`), when it is committed."""
    queue = JobQueue.for_settings(archive.state, archive.settings)

    def listener(change: Change) -> None:
        if change.kind != "committed" or change.view is None:
            return
        if image_facts.has_results(archive.state, change.accession):
            image_facts.mark(archive.state, [change.accession])  # the new version's graph has no image nodes yet
        if not archive.holds_files(change.accession, change.view):
            return
        enqueue_study(queue, change.accession, image_file_keys(archive, change.view, change.accession))
        queue_previews(archive, queue, change.accession, change.view)
        ome_zarr_job.enqueue_study(queue, change.accession, image_file_keys(archive, change.view, change.accession))

    return listener


def queue_previews(archive: Archive, queue: JobQueue, accession: str, view: str) -> int:
    """Queue the previews of a study's image files (those not made by this renderer yet); how many were queued."""
    return previews.enqueue_study(queue, accession, image_file_keys(archive, view, accession))


def image_file_keys(archive: Archive, view: str, accession: str) -> Iterator[str]:
    """The file-store keys of a study's files that image jobs are queued for (:func:`catalog.zarr_folders.image_file_keys`)."""
    return zarr_folders.image_file_keys(archive.view(view).files, accession)


def open_services(settings: Settings, *, recover: bool = True, public_only: bool = False) -> Services:
    """Open the archive (``public_only``: the public view only, e.g. read-only commands beside a running server);
    with ``recover``, first take over any commit, release or finalize whose holder died or whose lease expired
    (never live work: see :mod:`catalog.leases`)."""
    archive = Archive(settings, public_only=public_only)
    deposits = Deposits(archive, DefaultFormats(DocumentLimits(max_bytes=settings.max_metadata_bytes)))
    images = image_facts.ImageFacts(archive)
    followers = (lambda: link_if_changed(archive), images.follow)
    services = Services(archive, deposits, Maintenance(deposits, followers=followers))
    if not public_only and not archive.settings.read_only:
        archive.subscribe(header_reads_for(archive))
    if recover and not public_only and not archive.settings.read_only:
        services.maintenance.recover()
    return services
