"""Wiring of the catalog's parts for the faces (CLI, HTTP): the archive, deposits with the loaders' formats."""
from __future__ import annotations

from dataclasses import dataclass

from catalog.archive import Archive
from catalog.config import Settings
from catalog.deposits import Deposits
from catalog.records import DocumentLimits
from loaders.deposit_formats import DefaultFormats


@dataclass
class Services:
    """An open archive and its deposit lifecycle."""

    archive: Archive
    deposits: Deposits

    def close(self) -> None:
        self.archive.close()

    def __enter__(self) -> "Services":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_services(settings: Settings, *, recover: bool = True) -> Services:
    """Open the archive, then roll forward any commit, release or finalize a crash interrupted."""
    archive = Archive(settings, recover=False)
    deposits = Deposits(archive, DefaultFormats(DocumentLimits(max_bytes=settings.max_metadata_bytes)))
    if recover and not settings.read_only:
        archive.recover(finish_deposit=deposits.finish_interrupted)
    return Services(archive, deposits)
