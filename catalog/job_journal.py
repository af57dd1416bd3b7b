"""Results of a worker's finished jobs, kept on this host until the state database has them.

A worker stores its results in the background (:class:`catalog.jobs.Worker`), so a worker killed with ``kill -9``
has finished jobs whose results never reached the database; without a journal the next worker does them again.
With one, each result is first appended to the worker's journal file (``{folder}/{holder}.jsonl``, ``holder``
being the queue handle's lease-holder name), one line per job written in one ``write`` call: the kernel keeps it
when the process dies (a machine crash may lose it, and then those jobs are done again, as without a journal).
The file is emptied whenever all its results are stored, and removed when the worker closes.

Before claiming jobs, a worker salvages the journals of holders that are certainly dead
(:func:`catalog.leases.is_dead`: on this host): it stores each result whose job is still running under the dead
worker's claim (:meth:`catalog.jobs.JobQueue.store_claimed`), then deletes the file. A line cut short (never
expected: one ``write`` each) or naming a job someone else took over is skipped, and that job is done again.
Workers on other hosts cannot see the file; their take-over of such jobs redoes them, as before.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

from catalog import leases

if TYPE_CHECKING:
    from catalog.jobs import Job, JobQueue

log = logging.getLogger(__name__)
SUFFIX = ".jsonl"


class Journal:
    """The journal file of one worker (one queue handle)."""

    def __init__(self, folder: Path, holder: str) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.folder = folder
        self.path = folder / f"{holder}{SUFFIX}"
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)

    def write(self, job: Job, encoded_result: str) -> None:
        """Keep the result of ``job`` (JSON text) until :meth:`clear`."""
        line = json.dumps({"id": job.id, "claim": job.claim_id, "result": encoded_result}, separators=(",", ":"))
        os.write(self._fd, (line + "\n").encode("utf-8"))

    def clear(self) -> None:
        """Every result written so far is stored: forget them."""
        os.ftruncate(self._fd, 0)

    def close(self, keep: bool = False) -> None:
        """Close the file; remove it unless ``keep`` (it holds results that may not be stored)."""
        os.close(self._fd)
        if not keep:
            self.path.unlink(missing_ok=True)


def entries(path: Path) -> Iterator[tuple[int, str, str]]:
    """(job id, claim id, result text) of each whole line of a journal file."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return
    for line in text.splitlines():
        try:
            entry = json.loads(line)
            yield int(entry["id"]), str(entry["claim"]), str(entry["result"])
        except (ValueError, KeyError, TypeError):
            continue  # a line cut short: that job is done again


def salvage(queue: JobQueue, folder: Path) -> int:
    """Store the results left in the journals of dead workers in ``folder`` and delete those journals; how many
    results were stored."""
    stored = 0
    try:
        paths = [p for p in folder.iterdir() if p.name.endswith(SUFFIX)]
    except FileNotFoundError:
        return 0
    for path in paths:
        holder = path.name[: -len(SUFFIX)]
        if holder == queue.holder or not leases.is_dead(holder):
            continue
        found = list(entries(path))
        if found:
            stored += queue.store_claimed(found)
        path.unlink(missing_ok=True)
    if stored:
        log.info("stored %d job results a stopped worker had not stored", stored)
    return stored


__all__ = ["Journal", "entries", "salvage"]
