"""Run work on untrusted bytes in worker processes that can be killed, with caps on memory, time and output.

A :class:`SandboxPool` keeps up to ``workers`` processes (``python -m catalog.sandbox``: a fresh interpreter, no
fork of the caller) and sends each call, a ``"module:function"`` name and JSON arguments, to an idle one over two
pipes; the answer comes back as JSON (never pickle: a worker that a hostile file took over must not be able to
run code in the caller). In the worker, ``RLIMIT_AS`` caps the address space (an allocation past it fails, which
Python reports as ``MemoryError``), ``RLIMIT_FSIZE`` forbids writing files (unless allowed), ``RLIMIT_CORE`` is 0,
and each call may use at most twice its time limit of CPU (so a worker whose caller died stops too: an idle one
when its pipe closes, a busy one at that limit). In the caller, a call that runs past the time limit has its
worker SIGKILLed; a worker that crashed, ran out of memory, timed out or answered more than the output cap is
replaced by a new one, and the call fails with :class:`SandboxFailure` naming why. Workers are reused between calls
(an interpreter with the reading libraries imported costs a few hundred milliseconds to start).

This is the pattern ``api.sparql_workers`` uses for SPARQL queries, made generic.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from collections import deque
from collections.abc import Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

#: environment of a worker beside the caller's: one thread per numerical library, few malloc arenas (each thread's
#: arena reserves 64 MiB of address space, which RLIMIT_AS counts)
_WORKER_ENV = {
    "OMP_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "NUMEXPR_NUM_THREADS": "1",
    "MALLOC_ARENA_MAX": "2",
    "ZARR_THREADING__MAX_WORKERS": "1",
}


@dataclass(frozen=True)
class Limits:
    """What one call may use."""

    #: seconds before the worker is killed
    seconds: float = 10.0
    #: address space of a worker process (RLIMIT_AS), bytes; 0: no cap
    memory_bytes: int = 1 << 30
    #: largest answer (JSON bytes) taken from a worker
    max_result_bytes: int = 64 << 20
    #: largest file a worker may write (RLIMIT_FSIZE); None: no cap
    max_file_bytes: int | None = 0


class SandboxFailure(Exception):
    """A call that gave no answer: ``kind`` is ``timeout``, ``memory``, ``crashed``, ``too_large`` or ``error``."""

    def __init__(self, kind: str, reason: str) -> None:
        super().__init__(reason)
        self.kind, self.reason = kind, reason


# ---------------------------------------------------------------------- the worker process


def _limit_self(memory_bytes: int, max_file_bytes: int | None) -> None:
    import resource

    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    if memory_bytes > 0:
        resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
    if max_file_bytes is not None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (max_file_bytes, max_file_bytes))


def _cpu_backstop(seconds: float) -> None:
    """Let the coming call use twice its time limit of CPU at most (SIGXCPU past it), so that a worker left busy by
    a caller that died does not run on (an idle worker stops when its pipe closes)."""
    import resource

    usage = resource.getrusage(resource.RUSAGE_SELF)
    used = usage.ru_utime + usage.ru_stime
    _, hard = resource.getrlimit(resource.RLIMIT_CPU)
    soft = int(used + 2 * seconds) + 1
    resource.setrlimit(resource.RLIMIT_CPU, (soft if hard == resource.RLIM_INFINITY else min(soft, hard), hard))


def _resolve(target: str) -> Any:
    import importlib

    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)


def _serve(conn: "Pipe", seconds: float) -> None:
    """Answer calls until the caller closes the pipe or sends an empty message."""
    while True:
        try:
            message = conn.recv_bytes()
        except EOFError:
            return
        if not message:
            return
        _cpu_backstop(seconds)
        try:
            request = json.loads(message)
            answer = {"value": _resolve(request["target"])(*request["args"])}
        except MemoryError:
            answer = {"kind": "memory", "error": "the work ran out of memory (over the memory cap)"}
        except SystemError as exc:  # a C extension failing, often for want of memory: the process is suspect
            answer = {"kind": "memory", "error": f"the work failed in a library, likely out of memory: {str(exc)[:300]}"}
        except Exception as exc:  # noqa: BLE001 - reported to the caller
            answer = {"kind": "error", "error": f"{type(exc).__name__}: {str(exc)[:500]}"}
        try:
            conn.send_bytes(json.dumps(answer).encode())
        except MemoryError:
            conn.send_bytes(b'{"kind": "memory", "error": "the answer ran out of memory"}')
        if answer.get("kind") == "memory":
            return  # a process that ran out of memory is not trusted with more work


def _worker_main(argv: Sequence[str]) -> None:
    read_fd, write_fd, seconds, memory, file_bytes, *preload = argv
    _limit_self(int(memory), None if file_bytes == "none" else int(file_bytes))
    for module in preload:
        try:
            __import__(module)
        except Exception:  # noqa: BLE001 - the call that needs it reports the failure
            pass
    _serve(Pipe(int(read_fd), int(write_fd)), float(seconds))


# ---------------------------------------------------------------------- the caller's side


class Pipe:
    """Both ends of a child's two OS pipes, used like a duplex connection (objects or bytes messages)."""

    def __init__(self, read_fd: int, write_fd: int) -> None:
        self._in = Connection(read_fd, writable=False)
        self._out = Connection(write_fd, readable=False)

    def send(self, obj: Any) -> None:
        self._out.send(obj)

    def recv(self) -> Any:
        return self._in.recv()

    def send_bytes(self, data: bytes) -> None:
        self._out.send_bytes(data)

    def recv_bytes(self, maxlength: int | None = None) -> bytes:
        return self._in.recv_bytes(maxlength)

    def poll(self, timeout: float) -> bool:
        return self._in.poll(timeout)

    def fileno(self) -> int:
        """The end messages are read from (to wait on it with a poll object kept across calls: cheaper)."""
        return self._in.fileno()

    def close(self) -> None:
        for end in (self._in, self._out):
            try:
                end.close()
            except OSError:
                pass


#: variables a sandboxed worker never inherits (besides every ``BIA_*`` setting)
SECRET_VARIABLES = frozenset(
    {
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "MINIO_ROOT_USER",
        "MINIO_ROOT_PASSWORD",
        "PGPASSWORD",
        "PGPASSFILE",
        "DATABASE_URL",
    }
)


def without_secrets(environment: Mapping[str, str]) -> dict[str, str]:
    """``environment`` without the catalog's settings and known credentials."""
    return {k: v for k, v in environment.items() if not k.startswith("BIA_") and k not in SECRET_VARIABLES}


class ChildProcess:
    """``python -m <module> <read fd> <write fd> *args``: a fresh interpreter (no fork of the caller) on this
    checkout's packages, talking over two pipes (:attr:`conn`); killed with SIGKILL when it must stop."""

    def __init__(
        self,
        module: str,
        args: Sequence[str] = (),
        env: dict[str, str] | None = None,
        quiet: bool = False,
        *,
        keep_secrets: bool = True,
    ) -> None:
        to_child_r, to_child_w = os.pipe()
        from_child_r, from_child_w = os.pipe()
        root = str(Path(__file__).resolve().parent.parent)
        inherited = os.environ if keep_secrets else without_secrets(os.environ)
        environment = {**inherited, **(env or {})}
        environment["PYTHONPATH"] = os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))
        self.process = subprocess.Popen(
            [sys.executable, "-m", module, str(to_child_r), str(from_child_w), *args],
            pass_fds=(to_child_r, from_child_w),
            env=environment,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL if quiet else None,  # what a library prints must not mix with the caller's
            close_fds=True,
        )
        os.close(to_child_r)
        os.close(from_child_w)
        self.conn = Pipe(from_child_r, to_child_w)

    def alive(self) -> bool:
        return self.process.poll() is None

    def kill(self) -> None:
        try:
            self.process.kill()
        except OSError:
            pass
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
        self.conn.close()


class _Worker(ChildProcess):
    def __init__(self, limits: Limits, preload: Sequence[str]) -> None:
        file_bytes = "none" if limits.max_file_bytes is None else str(limits.max_file_bytes)
        args = [str(limits.seconds), str(limits.memory_bytes), file_bytes, *preload]
        # a process that parses untrusted bytes gets no credential: not the catalog's settings (S3 keys, the
        # database's URL and password), not a cloud SDK's
        super().__init__("catalog.sandbox", args, env=_WORKER_ENV, quiet=True, keep_secrets=False)

    def stop(self) -> None:
        try:
            self.conn.send_bytes(b"")
            self.process.wait(timeout=2)
        except (OSError, subprocess.TimeoutExpired):
            pass
        self.kill()


class SandboxPool:
    """Up to ``workers`` sandboxed worker processes, reused between calls; thread-safe."""

    def __init__(self, workers: int = 1, limits: Limits | None = None, preload: Sequence[str] = ()) -> None:
        self.workers = max(1, workers)
        self.limits = limits or Limits()
        self.preload = tuple(preload)
        self._idle: list[_Worker] = []
        self._lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(self.workers)
        #: workers started, and killed (timeouts, crashes, memory): for tests and figures
        self.started = self.killed = 0

    def call(self, target: str, *args: Any) -> Any:
        """``target(*args)`` in a worker (``"module:function"``, JSON arguments and result);
        :class:`SandboxFailure` when it gives no answer."""
        message = json.dumps({"target": target, "args": list(args)}).encode()
        with self._slots:
            worker = self._take()
            answer = self._exchange(worker, message)
        if "value" in answer:
            return answer["value"]
        raise SandboxFailure(answer.get("kind", "error"), answer.get("error", "the worker failed"))

    def map(self, target: str, calls: Iterable[Sequence[Any]]) -> Iterator[Any]:
        """``target(*args)`` for each ``args``, as many at once as there are workers; yields each call's value or
        its :class:`SandboxFailure`, in order, taking only a few calls ahead of the consumer."""
        pending: deque[Future] = deque()
        with ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="sandbox") as executor:
            for args in calls:
                pending.append(executor.submit(self._outcome, target, args))
                if len(pending) >= 2 * self.workers:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()

    def _outcome(self, target: str, args: Sequence[Any]) -> Any:
        try:
            return self.call(target, *args)
        except SandboxFailure as failure:
            return failure

    def _take(self) -> _Worker:
        with self._lock:
            while self._idle:
                worker = self._idle.pop()
                if worker.alive():
                    return worker
                worker.kill()
            self.started += 1
        return _Worker(self.limits, self.preload)

    def _exchange(self, worker: _Worker, message: bytes) -> dict:
        seconds = self.limits.seconds
        try:
            worker.conn.send_bytes(message)
            if not worker.conn.poll(seconds):
                self._discard(worker)
                raise SandboxFailure("timeout", f"it ran longer than {seconds:g} s; the worker was killed")
            raw = worker.conn.recv_bytes(self.limits.max_result_bytes)
        except OSError as exc:  # a message over maxlength, or a broken pipe
            dead = not worker.alive()
            self._discard(worker)
            if dead:
                raise self._death(worker) from exc
            raise SandboxFailure("too_large", f"its answer is over the {self.limits.max_result_bytes:,}-byte cap") from exc
        except EOFError as exc:
            self._discard(worker)
            raise self._death(worker) from exc
        answer = json.loads(raw)
        if answer.get("kind") == "memory":
            self._discard(worker)
        else:
            with self._lock:
                self._idle.append(worker)
        return answer

    def _discard(self, worker: _Worker) -> None:
        worker.kill()
        with self._lock:
            self.killed += 1

    def _death(self, worker: _Worker) -> SandboxFailure:
        code = worker.process.returncode
        if code is not None and code < 0:
            name = signal.Signals(-code).name if -code in signal.valid_signals() else f"signal {-code}"
            hint = " (it may have run out of memory)" if -code in (signal.SIGABRT, signal.SIGSEGV, signal.SIGBUS) else ""
            return SandboxFailure("crashed", f"the worker died of {name}{hint}")
        return SandboxFailure("crashed", f"the worker exited (status {code})")

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for worker in idle:
            worker.stop()

    def __enter__(self) -> "SandboxPool":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


if __name__ == "__main__":  # a worker: python -m catalog.sandbox READ_FD WRITE_FD SECONDS MEMORY FILE_BYTES [MODULE…]
    _worker_main(sys.argv[1:])
