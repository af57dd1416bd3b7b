"""Headers of a submission's staged image files, as deposit validation reads them.

A validation reads at most ``BIA_DEPOSIT_HEADER_FILES`` files whose names say they are images, spread evenly over
their paths (the same files every time). Each is read as an ``image_headers`` job of the job queue
(:mod:`catalog.jobs`), keyed by the staged upload (its own store key: a re-upload is a new key) and the readers'
version, so the queue's result is the cache: validating again reads nothing again. The validation does queued
header jobs itself (in the sandbox, through the kind's own handler) until its files are read or
``BIA_DEPOSIT_HEADER_SECONDS`` have passed; files still unread then are counted as pending, never held against the
deposit. Without the header readers installed (no ``image_headers`` kind), nothing is read.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

from catalog import jobs
from catalog.config import Settings
from catalog.state_db import StateDB

KIND = "image_headers"
#: names of files the header readers may know (anything else is not read: documents, tables, archives)
IMAGE_SUFFIXES = (
    ".tif",
    ".tiff",
    ".btf",
    ".tf2",
    ".tf8",
    ".lsm",
    ".svs",
    ".ome.xml",
    ".companion.ome",
    ".mrc",
    ".mrcs",
    ".map",
    ".rec",
    ".st",
    ".ali",
    ".ccp4",
    ".mrc2014",
    ".mrc.gz",
    ".map.gz",
    ".png",
    ".jpg",
    ".jpeg",
)
#: seconds between two looks at the results of the files being read
_POLL = 0.1


def is_image_path(path: str) -> bool:
    return path.lower().endswith(IMAGE_SUFFIXES)


def chosen_files(staged: Callable[[], Iterable[dict[str, Any]]], limit: int) -> tuple[list[dict[str, Any]], int]:
    """Up to ``limit`` staged image files spread evenly over their paths (two passes over ``staged()``, which lists
    the files by path; nothing but the chosen rows is held), and how many image files there are."""
    total = sum(1 for row in staged() if is_image_path(row["path"]))
    limit = max(0, limit)
    wanted = set(range(total)) if total <= limit else {(i * total) // limit for i in range(limit)}
    chosen, index = [], 0
    for row in staged():
        if is_image_path(row["path"]):
            if index in wanted:
                chosen.append(row)
            index += 1
    return chosen, total


@dataclass
class StagedHeaders:
    """What the headers of a submission's chosen files say: by path, each an ``ImageHeaders`` dict (``status`` ok,
    unreadable or unsupported) or ``{"status": "skipped", "reason"}`` (a store whose files are not read yet)."""

    headers: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: chosen files whose headers were not read in time
    pending: list[str] = field(default_factory=list)
    #: image files staged, and how many of them were chosen
    candidates: int = 0
    chosen: int = 0
    #: how many of the chosen files were read by this validation (the others' results were known)
    read_now: int = 0

    def summary(self, limit: int) -> dict[str, Any]:
        states = [h.get("status") for h in self.headers.values()]
        return {
            "image_files": self.candidates,
            "checked": self.chosen,
            "limit": limit,
            "read": states.count("ok"),
            "read_now": self.read_now,
            "unreadable": states.count("unreadable"),
            "unsupported": states.count("unsupported"),
            "skipped": states.count("skipped"),
            "pending": len(self.pending),
        }


class DepositHeaders:
    """Reads staged files' headers for the deposits of one archive (its queue and handler made on first use)."""

    def __init__(self, db: StateDB, settings: Settings) -> None:
        self.db = db
        self.settings = settings
        self._lock = threading.Lock()
        self._queue: jobs.JobQueue | None = None
        self._handler: jobs.Handler | None = None

    def read(self, sub_id: str, staged: Callable[[], Iterable[dict[str, Any]]], *, wait: bool = True) -> StagedHeaders | None:
        """The headers of the submission's chosen files (None: no header readers installed); ``wait``: read those not
        read yet (else they are only listed as pending)."""
        kind = jobs.kinds().get(KIND)
        if kind is None:
            return None
        rows, total = chosen_files(staged, self.settings.deposit_header_files)
        found = StagedHeaders(candidates=total, chosen=len(rows))
        if not rows:
            return found
        study = f"submission:{sub_id}"
        paths = {row.get("key") or f"staging/{sub_id}/{row['path']}": row["path"] for row in rows}
        queue = self._open(kind)
        missing = self._collect(queue, study, paths, kind.version, found)
        if missing and wait:
            # a staged upload's key has no extension: the job names the file, which helps tell its format
            queue.enqueue_many(KIND, kind.version, ((study, key, {"name": paths[key]}) for key in missing))
            missing = self._work(queue, study, paths, kind.version, found, missing)
        found.pending = sorted(paths[key] for key in missing)
        found.headers = {path: found.headers[path] for path in paths.values() if path in found.headers}  # by path
        return found

    def _open(self, kind: jobs.Kind) -> jobs.JobQueue:
        with self._lock:
            if self._queue is None:
                self._queue = jobs.JobQueue.for_settings(self.db, self.settings)
            if self._handler is None:
                self._handler = kind.setup(self.settings)
            return self._queue

    @staticmethod
    def _collect(
        queue: jobs.JobQueue, study: str, paths: dict[str, str], version: str, found: StagedHeaders, *, failed: bool = True
    ) -> list[str]:
        """Put the known results of ``paths`` into ``found`` (the done ones in one query; with ``failed``, a look at
        each key still without one); returns the keys still without a result."""
        for job in queue.results(study, KIND, version):
            path = paths.get(job.file_key)
            if path is not None and path not in found.headers and isinstance(job.result, dict):
                found.headers[path] = job.result
        missing = [key for key, path in paths.items() if path not in found.headers]
        if not failed:
            return missing
        still = []
        for key in missing:
            known = queue.job(KIND, study, key, version)
            if known is not None and known.state == jobs.FAILED:
                found.headers[paths[key]] = {"source": paths[key], "status": "unreadable", "reason": known.reason or "failed"}
            else:
                still.append(key)
        return still

    def _work(
        self, queue: jobs.JobQueue, study: str, paths: dict[str, str], version: str, found: StagedHeaders, missing: list[str]
    ) -> list[str]:
        """Do queued header jobs, in as many threads as the sandbox has workers, until ``missing`` are read or the
        time is up (a read under way then ends within the header time limit)."""
        assert self._handler is not None
        handler, before = self._handler, len(missing)
        deadline = time.monotonic() + self.settings.deposit_header_seconds
        stop = threading.Event()

        def drain() -> None:
            worker = jobs.Worker(queue, {KIND: handler}, versions={KIND: version}, batch=1)
            while not stop.is_set() and time.monotonic() < deadline and worker.run_batch(stop) is not None:
                pass

        threads = [
            threading.Thread(target=drain, daemon=True) for _ in range(self.settings.header_workers or os.cpu_count() or 1)
        ]
        for thread in threads:
            thread.start()
        try:
            while missing and time.monotonic() < deadline:
                time.sleep(_POLL)
                missing = self._collect(queue, study, {k: paths[k] for k in missing}, version, found, failed=False)
        finally:
            stop.set()
            for thread in threads:
                thread.join()
        missing = self._collect(queue, study, {k: paths[k] for k in missing}, version, found)
        found.read_now += before - len(missing)
        return missing

    def close(self) -> None:
        with self._lock:
            if self._queue is not None:
                self._queue.close()
                self._queue = None
            self._handler = None


def forget_closed(db: Any) -> int:
    """Remove the header jobs of submissions no longer open (finalized, discarded, expired: their study's own jobs
    took over, or nothing needs them); returns how many. A finalizing submission keeps its jobs."""
    with db.transaction(write=True) as conn:
        cursor = conn.execute(
            "DELETE FROM jobs WHERE study LIKE 'submission:%' AND NOT EXISTS (SELECT 1 FROM submissions"
            " WHERE 'submission:' || submissions.id = jobs.study AND submissions.status IN ('open', 'finalizing'))"
        )
        return int(cursor.rowcount or 0)
