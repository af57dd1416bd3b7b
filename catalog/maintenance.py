"""Background duties of a catalog, done by one process at a time: whichever holds the ``maintenance`` lease.

Every serving process (each gunicorn worker, ``bia serve``) runs a :class:`Maintenance` loop, but only the holder
of the lease acts; the others wait and take over if it dies. Each round: take over in-flight work whose holder died
or whose lease expired (recovery), release studies whose date has come, bring the followers of the catalog up to
date with its changes (e.g. the link graphs, whoever made the changes), render stored records made by another
version, and clean up: abandoned submissions expire (``BIA_SUBMISSION_TTL_DAYS``); uploads cut off half-way, bytes
left under closed submissions, staging graphs of interrupted remote loads and file-table objects no pointer names
go.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

from catalog.deposit_headers import forget_closed
from catalog.deposits import Deposits
from catalog.registry import IN_FLIGHT

log = logging.getLogger(__name__)
LEASE = "maintenance"
#: folders of the file store holding one folder of bytes per submission
STAGED_FOLDERS = ("staging/", "submissions/")


@dataclass
class Round:
    """What one round of duties did."""

    recovered: list[str] = field(default_factory=list)
    released: list[str] = field(default_factory=list)
    rendered: int = 0
    #: file tables rebuilt in the current layout (catalog.file_index.TABLE_LAYOUT)
    tables: int = 0
    expired: list[str] = field(default_factory=list)
    purged: int = 0
    errors: list[str] = field(default_factory=list)


#: something that follows the catalog's changes: catches up with them (if any) when called
Follower = Callable[[], object]


class Maintenance:
    """The duties of one catalog; ``followers`` catch up with the catalog's changes after each round's releases."""

    def __init__(self, deposits: Deposits, followers: tuple[Follower, ...] = ()) -> None:
        self.deposits = deposits
        self.archive = deposits.archive
        self.followers = followers
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def recover(self) -> list[str]:
        """Take over and finish (or undo) in-flight work whose holder is gone."""
        return self.archive.recover(finish_deposit=self.deposits.finish_interrupted, give_up_deposit=self.deposits.give_up)

    def release(self, today: str | None = None) -> list[str]:
        released = self.archive.release_due(today)
        self.follow()
        return released

    def follow(self) -> None:
        """Let every follower catch up with the changes made so far (by any process)."""
        for follower in self.followers:
            follower()

    def clean(self) -> tuple[list[str], int]:
        """Expire abandoned submissions and remove leftovers of interrupted uploads and loads."""
        expired = self.deposits.expire_abandoned(self.archive.settings.submission_ttl_days)
        purged = self.archive.file_store.purge_incomplete() + self._sweep_closed_submissions()
        forget_closed(self.archive.state)  # header jobs of closed submissions (rows, not stored objects)
        purged += self.archive.public.files.tables.sweep_objects()  # file tables no pointer names (every view)
        in_flight = {row.commit_id for row in self.archive.registry.studies(states=IN_FLIGHT) if row.commit_id}
        for name in ("public", "private"):
            drop = getattr(self.archive.view(name).graph, "drop_stale_staging", None)
            if drop is not None:
                purged += len(drop(keep=in_flight))  # a commit in flight may still need its staging graph
        return expired, purged

    def _sweep_closed_submissions(self) -> int:
        """Remove the bytes still under finalized, discarded or expired submissions (``staging/<id>/``,
        ``submissions/<id>/``): those a process stopped before deleting after it closed the submission."""
        store, removed = self.archive.file_store, 0
        for folder in STAGED_FOLDERS:
            for sub_id in sorted(self.archive.registry.closed_submissions(store.folders(folder))):
                removed += store.delete_prefix(f"{folder}{sub_id}/")
        return removed

    def run_once(self) -> Round:
        """One round of every duty; a duty that fails is logged and the others still run."""
        done = Round()

        def recover() -> None:
            done.recovered = self.recover()

        def release() -> None:
            done.released = self.release()

        def render() -> None:
            done.rendered = self.archive.render_stale_records()

        def tables() -> None:
            done.tables = self.archive.upgrade_file_tables()

        def clean() -> None:
            done.expired, done.purged = self.clean()

        for name, duty in (
            ("recovery", recover),
            ("releases", release),
            ("followers", self.follow),
            ("records", render),
            ("file tables", tables),
            ("clean-up", clean),
        ):
            try:
                duty()
            except Exception as exc:  # noqa: BLE001 - the next round tries again
                log.exception("background %s failed", name)
                done.errors.append(f"{name}: {exc}")
        return done

    def start(self) -> None:
        """Run rounds in a background thread every ``BIA_MAINTENANCE_INTERVAL`` seconds while this process holds
        the lease (trying to take it each time)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="maintenance", daemon=True)
            self._thread.start()

    def _loop(self) -> None:
        registry = self.archive.registry
        interval = self.archive.settings.maintenance_interval
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                if registry.try_lease(LEASE):
                    self.run_once()
            except Exception:  # noqa: BLE001 - e.g. the registry briefly unreachable
                log.exception("background duties failed")
            self._stop.wait(max(0.0, interval - (time.monotonic() - started)))

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None
        try:
            self.archive.registry.drop_lease(LEASE)
        except Exception:  # noqa: BLE001 - it then simply runs out
            log.exception("could not drop the maintenance lease")
