"""Child process of the job queue tests: a worker over a state database, telling where it is, to be killed anywhere.

``python -m tests.jobs_child DATABASE LOG [--lease S] [--batch N] [--pause S] [--unstored N] [--journal DIR]``: ``DATABASE`` is a SQLite file or a
``postgresql://`` URL. It prints ``ready`` (nothing claimed yet), ``handling KEY`` inside the handler, ``finishing``
before a batch's results are stored and ``finished`` after, pausing ``--pause`` seconds at each point so that a
test can SIGKILL it there, and works until no job is ready. Every run of the handler writes ``start KEY RUN`` and
``end KEY RUN`` lines to ``LOG`` (appended, one write each), so tests can tell how often each job ran.
"""

from __future__ import annotations

import argparse
import os
import secrets
import sys
import time
from pathlib import Path
from typing import Any, Sequence

from catalog.jobs import Job, JobQueue, Worker
from catalog.state_db import PostgresStateDB, SqliteStateDB, StateDB

#: the kind the tests register (never a real one)
KIND = "test.square"
VERSION = "1"


def open_db(database: str) -> StateDB:
    return PostgresStateDB(database) if database.startswith("postgresql://") else SqliteStateDB(Path(database))


def log_line(log: Path, text: str) -> None:
    """Append one line in one write (O_APPEND: lines of concurrent processes never interleave)."""
    fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (text + "\n").encode())
    finally:
        os.close(fd)


def square_handler(log: Path, pause: float = 0.0, announce: bool = False):
    """A handler whose result is the square of the payload's ``n`` and the id of the run that made it."""

    def square(job: Job) -> dict[str, Any]:
        run = secrets.token_hex(6)
        key = f"{job.study}/{job.file_key}"
        log_line(log, f"start {key} {run}")
        if announce:
            print("handling", key, flush=True)
        time.sleep(pause)
        log_line(log, f"end {key} {run}")
        return {"square": job.payload["n"] ** 2, "run": run}

    return square


class AnnouncingQueue(JobQueue):
    """A queue that says when it stores results, and pauses before and after."""

    pause = 0.0

    def finish_many(self, done: Sequence[tuple[Job, Any]]) -> list[Job]:
        print("finishing", flush=True)
        time.sleep(self.pause)
        refused = super().finish_many(done)
        print("finished", flush=True)
        time.sleep(self.pause)
        return refused


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("database")
    parser.add_argument("log", type=Path)
    parser.add_argument("--lease", type=float, default=60.0)
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--pause", type=float, default=0.0)
    parser.add_argument("--unstored", type=int, default=8)
    parser.add_argument("--journal", type=Path, help="The workers' journal folder (catalog.job_journal).")
    args = parser.parse_args(argv)
    db = open_db(args.database)
    queue = AnnouncingQueue(db, args.lease, max_attempts=5, retry_seconds=0)
    queue.pause = args.pause
    worker = Worker(
        queue,
        {KIND: square_handler(args.log, args.pause, announce=True)},
        batch=args.batch,
        unstored=args.unstored,
        journal=args.journal,
    )
    print("ready", flush=True)
    time.sleep(args.pause)
    tally = worker.run(once=True)
    worker.close()
    db.close()
    print("tally", tally, flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
