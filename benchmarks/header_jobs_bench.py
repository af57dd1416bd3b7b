"""A study of many files harvested by the job queue: image headers read by worker processes, with a kill -9 half-way.

    python -m benchmarks.header_jobs_bench [--files 1300000] [--processes 2] [--batch 64] [--unstored 8]
                                           [--dir FOLDER] [--database-url postgresql://… | --postgres]
                                           [--no-kill] [--no-main]

Builds a local file store of ``--files`` files in one study by hard-linking clones of the real TIFF and MRC samples
(those of :mod:`benchmarks.headers_bench`; a new copy of a sample every 50,000 links, under ext4's link limit), then

1. the raw-library baseline: ``tifffile``/``mrcfile`` header reads of a sample of the files in a loop, in this
   process (headers/s per core);
2. the harvest: a fresh catalog, one ``image_headers`` job per file queued through
   :func:`loaders.image_headers.job.enqueue_study` (timed), ``--processes`` worker processes running
   :class:`catalog.jobs.Worker` as ``bia work --once --batch 64`` does until no job is left; prints headers/s
   overall, per core and per CPU-second used (workers and their sandbox children), and the peak RSS of every
   process and of all together;
3. the kill -9 test: a fresh catalog, the workers SIGKILLed once half of the jobs are done, started again until
   none is left; every read is counted (each worker logs the file key before handing it to the reader, one
   unbuffered append per read, and one more when the read completed), and the figures say how many reads were begun
   twice (at most the one in hand per killed worker) and how many completed twice (none: results a killed worker had
   not stored are kept in its journal, :mod:`catalog.job_journal`; before the journal, up to ``--unstored`` + 1 per
   killed worker: the results not stored yet and the read in hand), whether every job is done and every key has
   one result; also the time, rate and RSS of the two halves.

Target (issue 16): 1.3 M files in ≤ 45 min on this machine, RSS ≤ 1 GiB in all; after a kill -9 half-way, the rerun
reads no file twice.
"""

from __future__ import annotations

import argparse
import collections
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

STUDY = "S-BIAD-BENCH"
#: hard links per inode before a new copy of a sample is made (ext4 allows 65,000)
LINKS_PER_COPY = 50_000
#: files per folder of the file store
PER_FOLDER = 1000


# ---------------------------------------------------------------------------------------------------- the files


def build_store(store: Path, files: int) -> list[str]:
    """``files`` files under ``store/studies/STUDY/``, clones of the samples in turn; their file keys."""
    from benchmarks.headers_bench import build_corpus

    samples_dir = store.parent / "samples"
    build_corpus(samples_dir, 0)
    originals = sorted((samples_dir / "originals").iterdir())
    sources: dict[Path, Path] = {}
    links: collections.Counter[Path] = collections.Counter()
    keys = []
    for index in range(files):
        original = originals[index % len(originals)]
        if links[original] % LINKS_PER_COPY == 0:
            sources[original] = _copy(original, samples_dir / f"{links[original] // LINKS_PER_COPY}-{original.name}")
        key = f"studies/{STUDY}/{index // PER_FOLDER:05d}/{index:07d}-{original.name}"
        target = store / key
        if index % PER_FOLDER == 0:
            target.parent.mkdir(parents=True, exist_ok=True)
        os.link(sources[original], target)
        links[original] += 1
        keys.append(key)
    return keys


def _copy(original: Path, target: Path) -> Path:
    """A new inode with ``original``'s bytes (holes kept as holes)."""
    with original.open("rb") as source, target.open("wb") as out:
        size = os.fstat(source.fileno()).st_size
        offset = 0
        while offset < size:
            try:
                data_at = os.lseek(source.fileno(), offset, os.SEEK_DATA)
            except OSError:
                break
            hole_at = os.lseek(source.fileno(), data_at, os.SEEK_HOLE)
            source.seek(data_at)
            out.seek(data_at)
            out.write(source.read(hole_at - data_at))
            offset = hole_at
        out.truncate(size)
    return target


def raw_baseline(store: Path, keys: list[str], count: int) -> float:
    """Raw-library header reads per second (one process, one core) over ``count`` of the files."""
    from benchmarks.headers_bench import raw_mrc, raw_tiff

    sample = [store / key for key in keys[:count]]
    start = time.perf_counter()
    for path in sample:
        (raw_tiff if path.suffix == ".tif" else raw_mrc)(path)
    return len(sample) / (time.perf_counter() - start)


# ---------------------------------------------------------------------------------------------------- a worker process


def work(data_dir: Path, database_url: str | None, batch: int, unstored: int, log_path: Path) -> None:
    """One ``bia work --once`` process (the same calls), whose handler first logs the file key it reads."""
    from catalog import jobs
    from catalog.config import Settings
    from catalog.state_db import open_state_db
    from catalog.state_schema import ensure_schema
    from loaders.image_headers.job import KIND

    settings = Settings.from_env({}, data_dir=data_dir, database_url=database_url)
    state = open_state_db(settings.database_url, settings.data_dir)
    ensure_schema(state)
    known = jobs.kinds()
    handlers = jobs.handlers(settings, [KIND])
    read = handlers[KIND]
    log = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def counted(job: jobs.Job) -> object:
        os.write(log, job.file_key.encode() + b"\n")
        result = read(job)
        os.write(log, b"+" + job.file_key.encode() + b"\n")  # the read completed
        return result

    worker = jobs.Worker(
        jobs.JobQueue.for_settings(state, settings),
        {KIND: counted},
        versions={KIND: known[KIND].version},
        batch=batch,
        poll_seconds=settings.job_poll_seconds,
        unstored=unstored,
        journal=jobs.journal_folder(settings),
    )
    try:
        tally = worker.run(once=True)
    finally:
        worker.close()
        state.close()
    print(f"worker {os.getpid()}: jobs {tally}", flush=True)


# ---------------------------------------------------------------------------------------------------- measuring


class Processes:
    """The worker processes of a run, their sandbox children, and the peak RSS of each and of all together."""

    def __init__(self, data_dir: Path, args: argparse.Namespace) -> None:
        self.children = []
        for number in range(args.processes):
            command = [sys.executable, "-m", "benchmarks.header_jobs_bench", "--work", str(data_dir)]
            command += ["--batch", str(args.batch), "--unstored", str(args.unstored)]
            database_url, logs = args.database_url, data_dir
            command += ["--log", str(logs / f"reads-{number}-{time.monotonic_ns()}.log")]
            command += ["--database-url", database_url] if database_url else []
            self.children.append(subprocess.Popen(command, cwd=Path(__file__).resolve().parent.parent))
        self.peaks: dict[int, tuple[str, int]] = {}
        #: CPU seconds of each process, as last seen
        self.cpu: dict[int, float] = {}
        self.total_peak = 0
        self._stop = threading.Event()
        self._sampler = threading.Thread(target=self._sample, daemon=True)
        self._sampler.start()

    def _sample(self) -> None:
        while not self._stop.wait(0.5):
            total = 0
            for pid in self._tree():
                status = _status(pid)
                if status:
                    total += status.get("VmRSS", 0)
                    self.peaks[pid] = (status.get("Name", "?"), max(status.get("VmHWM", 0), self.peaks.get(pid, ("", 0))[1]))
                    self.cpu[pid] = _cpu(pid) or self.cpu.get(pid, 0.0)
            self.total_peak = max(self.total_peak, total)

    def _tree(self) -> list[int]:
        found, todo = [], [child.pid for child in self.children]
        while todo:
            pid = todo.pop()
            found.append(pid)
            try:
                for task in os.listdir(f"/proc/{pid}/task"):
                    todo += [int(p) for p in Path(f"/proc/{pid}/task/{task}/children").read_text().split()]
            except OSError:
                pass
        return found

    def wait(self) -> None:
        for child in self.children:
            child.wait()
        self._stop.set()

    def kill(self) -> None:
        """SIGKILL the worker processes (their sandbox children see their pipes close and end)."""
        for child in self.children:
            os.kill(child.pid, signal.SIGKILL)
        self.wait()

    def report(self) -> None:
        roles = collections.Counter()
        for pid, (name, peak) in sorted(self.peaks.items()):
            role = "worker" if pid in {c.pid for c in self.children} else "sandbox"
            roles[role] += 1
            print(f"    {role:8} {pid:>8} {peak / 1024:7.0f} MiB peak RSS")
        print(f"  all together at most {self.total_peak / 1024:.0f} MiB RSS (sampled every 0.5 s; target ≤ 1024)")


def _status(pid: int) -> dict[str, object]:
    """VmRSS and VmHWM (KiB) and the name of a process, from /proc; empty if it is gone."""
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except OSError:
        return {}
    found: dict[str, object] = {}
    for line in lines:
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            found[name] = int(value.split()[0])
        elif name == "Name":
            found[name] = value.strip()
    return found


def _cpu(pid: int) -> float:
    """User and system CPU seconds of a process so far (0 if it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# ---------------------------------------------------------------------------------------------------- runs


def fresh_catalog(root: Path, store: Path, database_url: str | None) -> tuple[Path, object]:
    """A new catalog folder whose file store is ``store`` (linked), and its queue; the PostgreSQL jobs emptied."""
    from catalog.jobs import JobQueue
    from catalog.state_db import open_state_db
    from catalog.state_schema import ensure_schema

    data_dir = Path(tempfile.mkdtemp(dir=root, prefix="catalog-"))
    (data_dir / "files").symlink_to(store)
    db = open_state_db(database_url, data_dir)
    ensure_schema(db)
    if database_url:
        with db.transaction(write=True) as conn:
            conn.execute("DELETE FROM jobs")
    return data_dir, JobQueue(db)


def enqueue(queue, keys: list[str]) -> float:
    from loaders.image_headers.job import enqueue_study

    start = time.perf_counter()
    added = enqueue_study(queue, STUDY, keys)
    took = time.perf_counter() - start
    assert added == len(keys), (added, len(keys))
    print(f"  enqueue_study of {len(keys):,} jobs: {took:.1f} s ({len(keys) / took:,.0f} jobs/s)")
    return took


def done_count(queue) -> int:
    """Jobs done (one index range, not the whole table as :meth:`~catalog.jobs.JobQueue.counts` reads)."""
    with queue.db.transaction() as conn:
        return conn.execute("SELECT count(*) AS n FROM jobs WHERE kind = 'image_headers' AND state = 'done'").fetchone()["n"]


def main_run(args, root: Path, store: Path, keys: list[str], raw: float) -> None:
    print(f"\nHARVEST ({args.processes} worker processes, batch {args.batch}, unstored {args.unstored}; load {_load()})")
    data_dir, queue = fresh_catalog(root, store, args.database_url)
    enqueue(queue, keys)
    start = time.perf_counter()
    workers = Processes(data_dir, args)
    workers.wait()
    took, cpu = time.perf_counter() - start, sum(workers.cpu.values())
    counts = queue.counts()["image_headers"]
    cores = os.cpu_count() or 1
    rate = len(keys) / took
    print(f"  {counts}; load after {_load()}")
    print(f"  {len(keys):,} headers in {took:.0f} s: {rate:,.0f} headers/s, {rate / cores:,.0f} per core ({cores} cores)")
    print(
        f"  {len(keys) / cpu:,.0f} headers per CPU-second of the workers and their sandboxes ({cpu:.0f} CPU-s, sampled"
        " every 0.5 s: up to half a second short per process)"
    )
    print(f"  raw library: {raw:,.0f} headers/s per core; the harvest per core is {rate / cores / raw:.2f} x raw")
    print(f"  1.3 M files at this rate: {1_300_000 / rate / 60:.0f} min (target ≤ 45)")
    workers.report()
    read_twice(data_dir, keys)


def kill_run(args, root: Path, store: Path, keys: list[str]) -> None:
    print(f"\nKILL -9 HALF-WAY ({args.processes} worker processes, batch {args.batch}, unstored {args.unstored}; load {_load()})")
    data_dir, queue = fresh_catalog(root, store, args.database_url)
    enqueue(queue, keys)
    start = time.perf_counter()
    workers = Processes(data_dir, args)
    while done_count(queue) < len(keys) // 2:
        time.sleep(5)
    workers.kill()
    first = time.perf_counter() - start
    print(f"  killed after {first:.0f} s at {queue.counts()['image_headers']}; load {_load()}")
    workers.report()
    start = time.perf_counter()
    rerun = Processes(data_dir, args)
    rerun.wait()
    second = time.perf_counter() - start
    print(f"  rerun: {second:.0f} s, {queue.counts()['image_headers']}; load {_load()}")
    rerun.report()
    rate = len(keys) / (first + second)
    print(
        f"  {len(keys):,} headers in {(first + second) / 60:.1f} min in all: {rate:,.0f} headers/s, {rate / (os.cpu_count() or 1):,.0f} per core"
    )
    if not args.database_url:
        print(f"  state database: {_size(data_dir):,.0f} MiB")
    results = collections.Counter(job.file_key for job in queue.results(STUDY))
    assert len(results) == len(keys) and set(results.values()) == {1}, "every key has one result"
    print(f"  every one of the {len(keys):,} files has one result")
    twice, completed_twice = read_twice(data_dir, keys)
    print(f"  reads begun twice: {twice} (at most the read in hand of each killed worker: {args.processes})")
    print(f"  reads completed twice: {completed_twice} (wanted: 0; finished results are kept in the workers' journals)")


def _size(data_dir: Path) -> float:
    return sum(path.stat().st_size for path in data_dir.glob("registry.sqlite*")) / (1 << 20)


def read_twice(data_dir: Path, keys: list[str]) -> tuple[int, int]:
    """How many files the workers' logs say were begun more than once, and how many were read through more than
    once (a read cut off by the kill is begun again, but completed once)."""
    begun: collections.Counter[str] = collections.Counter()
    completed: collections.Counter[str] = collections.Counter()
    for log in data_dir.glob("reads-*.log"):
        for line in log.read_text().split():
            (completed if line.startswith("+") else begun)[line.removeprefix("+")] += 1
    twice = {key: n for key, n in begun.items() if n > 1}
    unread = len(keys) - len(begun)
    print(f"  reads: {sum(begun.values()):,} of {len(keys):,} files; {len(twice)} begun more than once, {unread} never")
    return len(twice), sum(1 for n in completed.values() if n > 1)


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=1_300_000)
    parser.add_argument("--processes", type=int, default=os.cpu_count() or 1, help="Worker processes [one per core].")
    parser.add_argument("--batch", type=int, default=64, help="Jobs a worker claims at once (bia work --batch).")
    parser.add_argument("--unstored", type=int, default=8, help="Results a worker may hold unstored (Worker).")
    parser.add_argument("--kill-files", type=int, help="Files of the kill -9 test [default: --files].")
    parser.add_argument("--baseline-files", type=int, default=3000, help="Files the raw libraries read.")
    parser.add_argument("--database-url", help="PostgreSQL state database (its jobs table is emptied).")
    parser.add_argument(
        "--postgres", action="store_true", help="Start a throw-away PostgreSQL cluster (as the tests do: fsync off) and use it."
    )
    parser.add_argument("--dir", type=Path, help="Folder for the files and catalogs (default: a temporary one).")
    parser.add_argument("--no-main", action="store_true", help="Only the kill -9 test.")
    parser.add_argument("--no-kill", action="store_true", help="Only the harvest.")
    parser.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--log", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.work:
        return work(args.work, args.database_url, args.batch, args.unstored, args.log)
    root = Path(tempfile.mkdtemp(dir=args.dir, prefix="header-jobs-bench-"))
    postgres = None
    if args.postgres:
        from tests.servers.postgres_server import start_postgres

        postgres = start_postgres()
        args.database_url = postgres.url
        print(f"PostgreSQL {postgres.url} (a throw-away cluster, fsync off as in the tests)")
    try:
        start = time.perf_counter()
        keys = build_store(root / "store", max(args.files, args.kill_files or 0))
        print(f"{len(keys):,} files hard-linked in {time.perf_counter() - start:.0f} s; load {_load()}")
        raw = raw_baseline(root / "store", keys, args.baseline_files)
        print(f"raw library (tifffile/mrcfile), one process: {raw:,.0f} headers/s per core")
        if not args.no_main:
            main_run(args, root, root / "store", keys[: args.files], raw)
        if not args.no_kill:
            kill_run(args, root, root / "store", keys[: args.kill_files or args.files])
    finally:
        if postgres is not None:
            from tests.servers.postgres_server import stop_postgres

            stop_postgres(postgres)
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
