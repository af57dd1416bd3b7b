"""The durable job queue (catalog/jobs.py) on both engines: a key is done once, a job is run by one worker at a time
(threads and processes), a kill -9 at any point loses no job and writes no second result, failures are counted and
shown by `bia jobs`, and `bia work` and `bia serve` work the queue."""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import pytest
from click.testing import CliRunner

from api.cli import cli
from catalog import jobs
from catalog.jobs import DONE, FAILED, QUEUED, RUNNING, JobQueue, Worker
from catalog.registry import LeaseLost
from catalog.state_db import DatabaseUnavailable, StateDB, open_state_db
from catalog.state_schema import ensure_schema
from tests.catalog_helpers import BASE
from tests.jobs_child import KIND, VERSION, square_handler

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Site:
    """A catalog's state database as the CLI finds it: ``data`` (SQLite ``registry.sqlite``) or ``url``."""

    db: StateDB
    data: Path
    url: str | None

    @property
    def database(self) -> str:
        """How the child process names it."""
        return self.url or str(self.data / "registry.sqlite")

    def bia(self, *args: str, ok: bool = True, **env: str):
        environ = {"BIA_DATABASE_URL": self.url or "", "BIA_JOB_RETRY_SECONDS": "0", **env}
        result = CliRunner().invoke(cli, ["--data", str(self.data), "--base-url", BASE, *args], obj={}, env=environ)
        if ok:
            assert result.exit_code == 0, (result.output, result.exception)
        return result


@pytest.fixture(params=["sqlite", "postgresql"])
def site(request, tmp_path) -> Iterator[Site]:
    """The state database of a catalog in a temp folder on each engine (PostgreSQL: a fresh schema)."""
    url = request.getfixturevalue("postgres_url") if request.param == "postgresql" else None
    db = open_state_db(url, tmp_path / "data")
    ensure_schema(db)
    yield Site(db, tmp_path / "data", url)
    db.close()


@pytest.fixture
def square_kind(tmp_path) -> Iterator[Path]:
    """The test kind registered (its handler logs each run to the returned file), unregistered afterwards."""
    log = tmp_path / "runs.log"
    jobs.register(KIND, square_handler(log), VERSION)
    yield log
    jobs.unregister(KIND)


def _enqueue(queue: JobQueue, study: str, count: int) -> list[str]:
    files = [f"img/{i:04d}.tif" for i in range(count)]
    assert queue.enqueue_many(KIND, VERSION, ((study, f, {"n": i}) for i, f in enumerate(files))) == count
    return files


def _runs(log: Path) -> tuple[Counter, Counter, set[str]]:
    """How many runs of each job started and ended, and the ids of the runs that ended."""
    started, ended, finished_runs = Counter(), Counter(), set()
    for line in log.read_text().splitlines() if log.exists() else []:
        what, key, run = line.split()
        (started if what == "start" else ended)[key] += 1
        if what == "end":
            finished_runs.add(run)
    return started, ended, finished_runs


# ---------------------------------------------------------------------------------------------------- the queue


def test_enqueue_is_idempotent_on_kind_study_file_and_version(site):
    queue = JobQueue(site.db)
    assert queue.enqueue(KIND, "S-1", "a.tif", VERSION, {"n": 2}) == jobs.Enqueued(True, QUEUED)
    assert queue.enqueue(KIND, "S-1", "a.tif", VERSION, {"n": 99}) == jobs.Enqueued(False, QUEUED)  # nothing changes
    (job,) = queue.claim([KIND], 5)
    assert job.payload == {"n": 2} and job.attempts == 1
    assert queue.enqueue(KIND, "S-1", "a.tif", VERSION) == jobs.Enqueued(False, RUNNING)
    queue.finish(job, {"square": 4})
    assert queue.enqueue(KIND, "S-1", "a.tif", VERSION) == jobs.Enqueued(False, DONE)
    assert queue.enqueue(KIND, "S-1", "a.tif", "2") == jobs.Enqueued(True, QUEUED)  # new software: a new key
    files = [("S-1", "a.tif", None), ("S-1", "b.tif", {"n": 3}), ("S-1", "b.tif", {"n": 3})] + [
        ("S-2", f"{i}.tif", None) for i in range(1200)
    ]
    assert queue.enqueue_many(KIND, VERSION, files) == 1201  # a.tif was known; b.tif once; three chunks
    assert queue.enqueue_many(KIND, VERSION, files) == 0
    assert queue.counts() == {KIND: {QUEUED: 1202, RUNNING: 0, DONE: 1, FAILED: 0}}
    for bad in [("", "S-1", "c.tif", VERSION), (KIND, "S-1", "", VERSION), (KIND, "S-1", "c.tif", "")]:
        with pytest.raises(ValueError):
            queue.enqueue(*bad)
    with pytest.raises(ValueError, match="not JSON"):
        queue.enqueue(KIND, "S-1", "c.tif", VERSION, {"n": float("nan")})
    queue.close()


def test_results_are_stored_with_the_state_change_and_read_by_key_and_by_study(site):
    first, second = JobQueue(site.db), JobQueue(site.db)
    for name in ("b.tif", "a.tif"):
        first.enqueue(KIND, "S-1", name, VERSION, {"n": 3})
    first.enqueue(KIND, "S-2", "c.tif", VERSION)
    taken = first.claim([KIND], 2)
    assert len(taken) == 2 and all(job.state == RUNNING and job.claim_id for job in taken)
    (other,) = second.claim([KIND], 5)  # what is held by a live worker is not handed out again
    assert other.key not in {job.key for job in taken}
    assert second.claim([KIND], 5) == []
    for job in taken:
        first.finish(job, {"file": job.file_key, "µm": 0.5})
    with pytest.raises(LeaseLost):
        first.finish(taken[0], {"again": True})  # once done, never a second result
    assert first.result(KIND, "S-1", "a.tif", VERSION) == {"file": "a.tif", "µm": 0.5}
    assert first.result(KIND, "S-2", "c.tif", VERSION) is None  # still running
    assert [(j.file_key, j.result["file"]) for j in second.results("S-1")] == [("a.tif", "a.tif"), ("b.tif", "b.tif")]
    assert list(second.results("S-1", kind="other.kind")) == [] and list(second.results("S-1", version="2")) == []
    with pytest.raises(ValueError, match="not JSON"):
        second.finish(other, {"bytes": b"\x00"})
    assert second.job(*other.key).state == RUNNING  # nothing written; still held
    second.finish(other, None)
    assert second.job(*other.key).state == DONE
    first.close()
    second.close()


def test_a_worker_that_lost_its_job_has_its_result_refused(site):
    """A worker stalls past its lease (its heartbeat stopped: here, its lease is made to run out); another takes the
    job over and finishes it; the first one's result and failure are then refused and the taker's result stays."""
    stalled, taker = JobQueue(site.db, 60), JobQueue(site.db, 60)
    stalled.enqueue(KIND, "S-1", "a.tif", VERSION, {"n": 1})
    (job,) = stalled.claim([KIND])
    assert taker.claim([KIND]) == []  # held: its lease runs and its holder lives
    with site.db.transaction(write=True) as conn:
        conn.execute("UPDATE jobs SET expires = 0")
    (again,) = taker.claim([KIND])
    assert again.key == job.key and again.attempts == 2 and again.claim_id != job.claim_id
    with pytest.raises(LeaseLost):
        stalled.finish(job, "stalled's")  # while the taker works on it
    with pytest.raises(LeaseLost):
        stalled.fail(job, "too late")
    assert stalled.release([job]) == 0
    assert taker.job(*job.key).state == RUNNING
    taker.finish(again, "taker's")
    with pytest.raises(LeaseLost):
        stalled.finish(job, "stalled's")  # after it
    assert taker.result(*job.key) == "taker's"
    stalled.close()
    taker.close()


def test_the_heartbeat_keeps_a_long_job_and_a_closed_queue_frees_its_jobs_at_once(site):
    worker, other = JobQueue(site.db, 1.5), JobQueue(site.db, 1.5)
    worker.enqueue(KIND, "S-1", "a.tif", VERSION)
    worker.enqueue(KIND, "S-1", "b.tif", VERSION)
    (held,) = worker.claim([KIND])
    time.sleep(3.5)  # well past the lease: renewed meanwhile
    (free,) = other.claim([KIND], 5)
    assert free.key != held.key
    worker.close()  # its holder is gone: its job is free without waiting for the lease
    (taken,) = other.claim([KIND], 5)
    assert taken.key == held.key and taken.attempts == 2
    other.close()


def test_threads_of_workers_never_run_one_job_twice(site, tmp_path):
    log = tmp_path / "runs.log"
    queue = JobQueue(site.db)
    files = _enqueue(queue, "S-1", 120)
    workers = [Worker(JobQueue(site.db, 5), {KIND: square_handler(log, 0.002)}, batch=3) for _ in range(4)]
    threads = [threading.Thread(target=w.run, kwargs={"once": True}) for w in workers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    started, ended, _ = _runs(log)
    assert set(started) == {f"S-1/{f}" for f in files} and set(started.values()) == {1} and ended == started
    assert queue.counts()[KIND][DONE] == 120
    assert [j.result["square"] for j in queue.results("S-1")] == [i * i for i in range(120)]
    for worker in workers:
        worker.close()
    queue.close()


def test_worker_processes_never_run_one_job_twice(site, tmp_path):
    log = tmp_path / "runs.log"
    queue = JobQueue(site.db)
    files = _enqueue(queue, "S-1", 150)
    children = [
        subprocess.Popen(
            [sys.executable, "-m", "tests.jobs_child", site.database, str(log), "--batch", "4"],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    for child in children:
        assert child.wait(120) == 0, child.stderr.read()
    started, ended, _ = _runs(log)
    assert set(started) == {f"S-1/{f}" for f in files} and set(started.values()) == {1} and ended == started
    assert queue.counts()[KIND][DONE] == 150
    queue.close()


#: where the worker is killed: the marker it prints there (None: at a random moment)
KILL_POINTS = ["ready", "handling", "finishing", "finished", None, None, None]


def test_kill_9_of_a_worker_at_any_moment_loses_no_job_and_writes_no_second_result(site, tmp_path):
    """Kill a worker process before it claims, inside a handler, between the handler and storing the result, after
    storing, and at random moments; a new worker takes over (at once when the dead worker is on this host, after its
    lease otherwise) and every job ends done with one result, from a run that completed; a stored result is never
    redone."""
    rng = random.Random(20261216)
    log = tmp_path / "runs.log"
    lease = 2.0
    queue = JobQueue(site.db, lease, max_attempts=5, retry_seconds=0)
    for round_no, point in enumerate(KILL_POINTS):
        study = f"S-{round_no}"
        files = _enqueue(queue, study, 5)
        child = subprocess.Popen(
            [sys.executable, "-m", "tests.jobs_child", site.database, str(log), "--lease", str(lease), "--pause", "0.3"],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        _wait_for(child, point, rng)
        child.send_signal(signal.SIGKILL)
        child.wait(30)
        before = {job.file_key: job for job in _all_jobs(queue, study, files)}
        running = {key for key, job in before.items() if job.state == RUNNING}
        elsewhere = round_no % 2 == 1  # as if the dead worker ran on another host: only its lease ending frees its jobs
        if elsewhere:
            with site.db.transaction(write=True) as conn:
                conn.execute("UPDATE jobs SET holder = 'elsewhere:1:1:ab' WHERE state = 'running'")
            early = queue.claim([KIND], 10)
            assert not {job.file_key for job in early} & running
            queue.release(early)
            time.sleep(lease + 0.2)
        Worker(queue, {KIND: square_handler(log)}).run(once=True)
        _check_round(queue, log, study, files, before, running)
    queue.close()


def _wait_for(child: subprocess.Popen, point: str | None, rng: random.Random) -> None:
    """Read the child's markers until ``point`` (or, for None, until ``ready`` and a random while after)."""
    while True:
        line = child.stdout.readline()
        assert line, f"the worker ended before {point!r}: {child.stderr.read()}"
        if line.split()[0] == (point or "ready"):
            break
    if point is None:
        time.sleep(rng.uniform(0.0, 2.5))


def _all_jobs(queue: JobQueue, study: str, files: list[str]) -> list[jobs.Job]:
    found = [queue.job(KIND, study, f, VERSION) for f in files]
    assert all(job is not None for job in found)
    return found  # type: ignore[return-value]


def _check_round(queue, log, study, files, before, running) -> None:
    started, ended, finished_runs = _runs(log)
    for index, job in enumerate(_all_jobs(queue, study, files)):
        key = f"{study}/{job.file_key}"
        assert job.state == DONE and job.result["square"] == index * index, job
        assert job.result["run"] in finished_runs  # made by a run that completed
        earlier = before[job.file_key]
        if earlier.state == DONE:  # stored before the kill: never redone, never rewritten
            assert job.result == earlier.result and started[key] == 1
        assert job.attempts == (2 if job.file_key in running else 1)
    assert len(list(queue.results(study))) == len(files)


def test_a_failing_handler_fails_after_its_attempts_with_the_reason_shown_by_bia_jobs(site):
    calls = Counter()

    def broken(job):
        calls[job.file_key] += 1
        raise KeyError("no such tag: ImageWidth")

    jobs.register(KIND, broken, VERSION)
    try:
        queue = JobQueue(site.db)
        queue.enqueue(KIND, "S-1", "bad.tif", VERSION)
        assert "done 0, failed 1, retried 2" in site.bia("work", "--once", "--kinds", KIND, BIA_JOB_ATTEMPTS="3").output
    finally:
        jobs.unregister(KIND)
    assert calls == {"bad.tif": 3}
    job = queue.job(KIND, "S-1", "bad.tif", VERSION)
    assert job.state == FAILED and job.attempts == 3 and job.reason == "KeyError: 'no such tag: ImageWidth'"
    shown = site.bia("jobs", "--failed").output
    assert "failed: test.square 1 S-1 bad.tif (3 attempt(s)): KeyError: 'no such tag: ImageWidth'" in shown
    assert KIND in shown.splitlines()[1] and shown.splitlines()[1].split()[1:] == ["0", "0", "0", "1"]
    answer = json.loads(site.bia("jobs", "--failed", "--json").output)
    assert answer["counts"] == {KIND: {QUEUED: 0, RUNNING: 0, DONE: 0, FAILED: 1}}
    assert answer["total"][FAILED] == 1
    (failure,) = answer["failures"]
    assert failure["file"] == "bad.tif" and failure["reason"] == job.reason and failure["attempts"] == 3
    assert json.loads(site.bia("jobs", "--retry", "--json").output)["retried"] == 1
    assert queue.job(KIND, "S-1", "bad.tif", VERSION).state == QUEUED and queue.job(KIND, "S-1", "bad.tif", VERSION).attempts == 0
    queue.close()


def test_a_transient_failure_costs_no_attempt(site):
    """An outage (a store unreachable) in the handler queues the job again without counting the attempt: with one
    attempt allowed, a job that meets two outages is still done."""
    outages = [DatabaseUnavailable("the state database is unavailable"), ConnectionError("S3 unreachable")]

    def flaky(job):
        if outages:
            raise outages.pop(0)
        return "read"

    queue = JobQueue(site.db, max_attempts=1, retry_seconds=0)
    queue.enqueue(KIND, "S-1", "a.tif", VERSION)
    (job,) = queue.claim([KIND])
    assert queue.fail(job, "ConnectionError: reset", transient=True) == QUEUED
    assert queue.job(*job.key).attempts == 0
    tally = Worker(queue, {KIND: flaky}).run(once=True)
    assert (tally.done, tally.retried, tally.failed) == (1, 2, 0)
    done = queue.job(*job.key)
    assert done.state == DONE and done.attempts == 1 and done.result == "read"
    queue.enqueue(KIND, "S-1", "b.tif", VERSION)
    tally = Worker(queue, {KIND: lambda job: 1 / 0}).run(once=True)
    assert (tally.done, tally.failed) == (0, 1)  # one attempt, not transient: failed at once
    assert queue.job(KIND, "S-1", "b.tif", VERSION).reason == "ZeroDivisionError: division by zero"
    queue.close()


def test_a_job_whose_worker_keeps_dying_is_failed_with_that_reason(site):
    queue = JobQueue(site.db, max_attempts=2)
    queue.enqueue(KIND, "S-1", "bomb.tif", VERSION)
    for _ in range(2):
        dying = JobQueue(site.db)
        assert len(dying.claim([KIND])) == 1
        dying.close()  # as if killed while reading the file
    assert queue.claim([KIND]) == []
    job = queue.job(KIND, "S-1", "bomb.tif", VERSION)
    assert job.state == FAILED and job.attempts == 2 and "stopped during its last attempt (2)" in job.reason
    queue.close()


def test_a_stopping_worker_hands_back_the_jobs_it_did_not_start(site):
    queue = JobQueue(site.db)
    files = _enqueue(queue, "S-1", 4)
    stop = threading.Event()

    def first_then_stop(job):
        stop.set()
        return job.payload["n"]

    tally = Worker(queue, {KIND: first_then_stop}, batch=4).run_batch(stop)
    assert tally.done == 1
    states = Counter(queue.job(KIND, "S-1", f, VERSION).state for f in files)
    assert states == {DONE: 1, QUEUED: 3}
    assert {queue.job(KIND, "S-1", f, VERSION).attempts for f in files} == {0, 1}
    queue.close()


def test_a_batch_s_results_are_stored_while_its_later_jobs_run(site):
    """With at most one result waiting to be stored, every job but the one before is stored when a job starts."""
    queue, watcher = JobQueue(site.db), JobQueue(site.db)
    files = _enqueue(queue, "S-1", 8)
    stored_at_start = []

    def square(job):
        earlier = files[: files.index(job.file_key)]
        stored_at_start.append(sum(watcher.job(KIND, "S-1", f, VERSION).state == DONE for f in earlier) - len(earlier))
        return job.payload["n"] ** 2

    tally = Worker(queue, {KIND: square}, batch=8, unstored=1).run(once=True)
    assert tally.done == 8 and [j.result for j in queue.results("S-1")] == [i * i for i in range(8)]
    assert stored_at_start[:1] == [0] and all(missing >= -1 for missing in stored_at_start), stored_at_start
    queue.close()
    watcher.close()


def test_results_are_stored_in_groups_of_half_the_unstored_most(site):
    """A transaction costs more than storing a result: one is shared by half as many results as may wait."""
    groups = []

    class Counting(JobQueue):
        def finish_many(self, done):
            groups.append(len(done))
            return super().finish_many(done)

    def square(job):
        time.sleep(0.02)  # time for the background transaction to start between two results
        return job.payload["n"] ** 2

    queue = Counting(site.db)
    _enqueue(queue, "S-1", 9)
    assert Worker(queue, {KIND: square}, batch=9, unstored=4).run(once=True).done == 9
    assert sum(groups) == 9 and all(size >= 2 for size in groups[:-1]) and max(groups) <= 4, groups
    queue.close()


def test_a_worker_killed_in_the_middle_of_a_batch_has_lost_the_work_of_unstored_plus_one_jobs(site, tmp_path):
    """Killed while handling the 7th job of a batch of 12 with at most one result unstored: the rerun does again
    at most 2 jobs (the one in hand and the one being stored); the jobs claimed but not started are taken over."""
    log = tmp_path / "runs.log"
    queue = JobQueue(site.db, max_attempts=5)
    files = _enqueue(queue, "S-1", 12)
    child = subprocess.Popen(
        [sys.executable, "-m", "tests.jobs_child", site.database, str(log), "--batch", "12", "--unstored", "1"]
        + ["--pause", "0.05"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    handling = 0
    while handling < 7:
        line = child.stdout.readline()
        assert line, child.stderr.read()
        handling += line.startswith("handling")
    child.send_signal(signal.SIGKILL)
    child.wait(30)
    assert queue.counts()[KIND][DONE] >= 5
    Worker(queue, {KIND: square_handler(log)}).run(once=True)
    started, ended, _ = _runs(log)
    assert queue.counts()[KIND][DONE] == 12 and set(started) == {f"S-1/{f}" for f in files}
    assert sum(n - 1 for n in started.values()) <= 2, started
    queue.close()


def _kill_while_handling(site, log: Path, nth: int, extra: list[str]) -> None:
    """Start a worker child over 12 jobs (batch 12, at most 4 results unstored) and SIGKILL it while it handles
    the ``nth`` job."""
    child = subprocess.Popen(
        [sys.executable, "-m", "tests.jobs_child", site.database, str(log), "--batch", "12", "--unstored", "4"]
        + ["--pause", "0.05", *extra],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    handling = 0
    while handling < nth:
        line = child.stdout.readline()
        assert line, child.stderr.read()
        handling += line.startswith("handling")
    child.send_signal(signal.SIGKILL)
    child.wait(30)


def test_with_a_journal_a_worker_killed_in_the_middle_of_a_batch_has_lost_only_the_job_in_hand(site, tmp_path):
    """Killed while handling the 9th job of a batch with results of earlier jobs not stored yet: the next worker
    stores those from the dead worker's journal and does again only the job that was in hand."""
    log, journal = tmp_path / "runs.log", tmp_path / "journal"
    queue = JobQueue(site.db, max_attempts=5)
    files = _enqueue(queue, "S-1", 12)
    _kill_while_handling(site, log, 9, ["--journal", str(journal)])
    assert queue.counts()[KIND][DONE] < 8  # finished jobs whose results were not stored when it died
    assert [p.name for p in journal.iterdir()]  # ... kept in its journal
    worker = Worker(JobQueue(site.db, max_attempts=5), {KIND: square_handler(log)}, journal=journal)
    worker.run(once=True)
    worker.close()
    started, ended, _ = _runs(log)
    assert queue.counts()[KIND][DONE] == 12 and set(started) == {f"S-1/{f}" for f in files}
    assert sum(n - 1 for n in started.values()) <= 1, started
    assert [j.result["square"] for j in sorted(queue.results("S-1"), key=lambda j: j.payload["n"])] == [i * i for i in range(12)]
    assert list(journal.iterdir()) == []  # the salvaged journal is gone; the new worker closed its own
    queue.close()


def test_a_journal_is_salvaged_only_from_dead_workers_and_only_for_claims_they_still_hold(site, tmp_path):
    from catalog import job_journal

    queue = JobQueue(site.db)
    _enqueue(queue, "S-1", 3)
    first, second, third = queue.claim([KIND], 3)
    folder = tmp_path / "journal"
    live = job_journal.Journal(folder, queue.holder)  # this handle is alive: its journal is not touched
    live.write(first, "1")
    dead = folder / "somehost:1:1:dead.jsonl"
    dead_here = folder / f"{queue.holder.split(':')[0]}:999999999:1:ab.jsonl"  # no such process on this host
    with site.db.transaction(write=True) as conn:
        conn.execute("UPDATE jobs SET holder = ? WHERE id = ?", (dead_here.name[:-6], second.id))
    lines = [
        json.dumps({"id": second.id, "claim": second.claim_id, "result": "4"}),
        json.dumps({"id": third.id, "claim": "someone-else", "result": "9"}),  # its claim is not the dead one's
        '{"id": 1, "cl',  # cut short
    ]
    dead_here.write_text("\n".join(lines))
    dead.write_text(lines[0] + "\n")  # another host's worker: maybe alive, left alone
    other = JobQueue(site.db)
    assert job_journal.salvage(other, folder) == 1
    assert queue.job(KIND, "S-1", second.file_key, VERSION).result == 4
    assert queue.job(KIND, "S-1", third.file_key, VERSION).state == RUNNING
    assert queue.job(KIND, "S-1", first.file_key, VERSION).state == RUNNING
    assert sorted(p.name for p in folder.iterdir()) == sorted([live.path.name, dead.name])
    live.close()
    other.close()
    queue.close()


def test_a_result_that_could_not_be_stored_fails_the_batch_after_the_others_are_stored(site):
    class Flaky(JobQueue):
        calls = 0

        def finish_many(self, done):
            self.calls += 1
            if self.calls == 1:
                raise DatabaseUnavailable("the database went away")
            return super().finish_many(done)

    queue = Flaky(site.db)
    files = _enqueue(queue, "S-1", 4)
    with pytest.raises(DatabaseUnavailable):
        Worker(queue, {KIND: lambda job: job.payload["n"]}, batch=4, unstored=1).run(once=True)
    states = Counter(queue.job(KIND, "S-1", f, VERSION).state for f in files)
    assert states == {DONE: 3, RUNNING: 1}  # the lost one is taken up again when its lease runs out
    queue.close()


def test_versions_of_a_kind_are_claimed_apart(site):
    queue = JobQueue(site.db)
    queue.enqueue(KIND, "S-1", "a.tif", "1")
    queue.enqueue(KIND, "S-1", "a.tif", "2")
    (job,) = queue.claim([KIND], 5, versions={KIND: "2"})
    assert job.version == "2" and queue.claim([KIND], 5, versions={KIND: "2"}) == []
    assert queue.claim(["other.kind"], 5) == []
    assert [j.version for j in queue.claim([KIND], 5)] == ["1"]
    queue.close()


# ---------------------------------------------------------------------------------------------------- commands


def test_bia_work_once_processes_the_queue_in_one_or_more_processes(site, square_kind):
    queue = JobQueue(site.db)
    files = _enqueue(queue, "S-1", 40)
    assert "jobs done 40, failed 0" in site.bia("work", "--once").output
    assert queue.counts()[KIND][DONE] == 40
    more = _enqueue(queue, "S-2", 60)
    site.bia("work", "--once", "--processes", "3", "--batch", "5")
    assert queue.counts()[KIND] == {QUEUED: 0, RUNNING: 0, DONE: 100, FAILED: 0}
    started, _, _ = _runs(square_kind)
    assert set(started.values()) == {1} and len(started) == len(files) + len(more)
    refused = site.bia("work", "--once", "--kinds", "no.such", ok=False)
    assert refused.exit_code == 2 and "unknown job kind(s): no.such" in refused.output and KIND in refused.output
    queue.close()


def test_bia_work_stops_on_sigterm(tmp_path, monkeypatch):
    """`bia work` (no --once) waits for jobs until SIGTERM, then exits cleanly; with no kinds it says so."""
    data = tmp_path / "data"
    script = (
        "import sys; from catalog import jobs; jobs.register('test.noop', lambda job: None, '1');"
        "from api.cli import main; sys.argv = ['bia', '--data', sys.argv[1], 'work']; main()"
    )
    child = subprocess.Popen([sys.executable, "-c", script, str(data)], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    time.sleep(2.0)
    child.send_signal(signal.SIGTERM)
    assert child.wait(30) == 0
    assert "jobs done 0" in child.stdout.read()
    from catalog import jobs

    monkeypatch.setattr(jobs, "kinds", lambda: {})  # an install without any kind (image_headers comes with the project)
    refused = CliRunner().invoke(cli, ["--data", str(data), "work", "--once"], obj={})
    assert refused.exit_code == 2 and "no job kinds are registered" in refused.output


def test_a_serving_process_works_the_queue_in_the_background_unless_told_not_to(tmp_path, square_kind):
    from api.app import create_app
    from api.services import open_services
    from tests.catalog_helpers import make_settings

    settings = make_settings(tmp_path, job_poll_seconds=0.1)
    with open_services(settings) as services:
        queue = JobQueue(services.archive.state)
        queue.enqueue(KIND, "S-1", "a.tif", VERSION, {"n": 7})
        apps = [create_app(settings.with_(background="off"), services=services)]
        time.sleep(0.5)
        assert services.jobs is None and queue.job(KIND, "S-1", "a.tif", VERSION).state == QUEUED
        apps.append(create_app(settings, services=services))
        deadline = time.monotonic() + 30
        while queue.result(KIND, "S-1", "a.tif", VERSION) is None:
            assert time.monotonic() < deadline, "the background worker never did the job"
            time.sleep(0.05)
        assert queue.result(KIND, "S-1", "a.tif", VERSION)["square"] == 49
        thread = services.jobs._thread
        for app in apps:
            app.extensions["bia.sparql"].close()
        queue.close()
    assert services.jobs is None and not thread.is_alive()  # closing the services stopped the worker


def test_kinds_are_registered_by_name_with_a_version():
    with pytest.raises(ValueError):
        jobs.register("a,b", lambda job: None, "1")
    with pytest.raises(ValueError):
        jobs.register("x.kind", lambda job: None, "")
    with pytest.raises(ValueError):
        jobs.register("x.kind", None, "1")
    made: list[Any] = []
    jobs.register("x.kind", None, "3", setup=lambda settings: made.append(settings) or (lambda job: "ok"))
    try:
        assert jobs.kinds()["x.kind"].version == "3"
        handler = jobs.handlers("settings", ["x.kind"])["x.kind"]  # type: ignore[arg-type]
        assert made == ["settings"] and handler(None) == "ok"
    finally:
        jobs.unregister("x.kind")
    assert "x.kind" not in jobs.kinds()
