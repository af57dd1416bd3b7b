"""Who holds in-flight work, and whether that holder is still alive.

Work in flight (a finalize, a harvest's commit, a release) and background duties (recovery, releases, clean-up)
are held under a *lease*: a holder name and an expiry time in the registry. The holder renews its leases while it
works (:class:`Heartbeat`); anyone may take over a lease that has expired, by compare-and-set, so a crashed
process's work is resumed exactly once and live work is never taken from under its owner.

A holder name says where it lives: ``host:pid:start:token``. On the same host a holder whose process has gone
(or whose pid now belongs to a younger process) is dead at once, without waiting for its lease to run out; a
holder of this very process is alive while its registry is open.
"""

from __future__ import annotations

import os
import secrets
import socket
import threading
import time
from typing import Callable, Iterable

_HOST = socket.gethostname()
#: holders opened by this process and not yet closed
_LIVE_HERE: set[str] = set()
_LIVE_LOCK = threading.Lock()


def _start_time(pid: int) -> str:
    """The process's start time in clock ticks since boot (``/proc``), or ``?`` where unknown."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            fields = stat.read().rsplit(b")", 1)[1].split()
        return fields[19].decode()
    except (OSError, IndexError):
        return "?"


def new_holder() -> str:
    """A holder name for one registry handle of this process (registered as alive until :func:`forget`)."""
    holder = f"{_HOST}:{os.getpid()}:{_start_time(os.getpid())}:{secrets.token_hex(4)}"
    with _LIVE_LOCK:
        _LIVE_HERE.add(holder)
    return holder


def forget(holder: str) -> None:
    """The handle behind ``holder`` is closed: its leases are dead from now on."""
    with _LIVE_LOCK:
        _LIVE_HERE.discard(holder)


def is_dead(holder: str | None) -> bool:
    """Whether ``holder`` certainly no longer runs (only provable on this host); unknown holders count as alive."""
    if not holder:
        return True
    parts = holder.split(":")
    if len(parts) != 4 or parts[0] != _HOST:
        return False
    try:
        pid = int(parts[1])
    except ValueError:
        return False
    if pid == os.getpid():
        with _LIVE_LOCK:
            return holder not in _LIVE_HERE
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        pass  # someone else's process, alive
    started = _start_time(pid)
    return parts[2] != "?" and started != "?" and started != parts[2]


def expired(holder: str | None, expires: float | None, now: float | None = None) -> bool:
    """Whether a lease may be taken over: it ran out, or its holder is dead."""
    return expires is None or expires <= (now if now is not None else time.time()) or is_dead(holder)


class Heartbeat:
    """Renews the leases a holder is working under, every third of their length, until it stops holding them."""

    def __init__(self, renew: Callable[[Iterable[str]], None], seconds: float) -> None:
        self._renew = renew
        self._every = max(0.05, seconds / 3)
        self._held: dict[str, int] = {}
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._stopped = False

    def hold(self, key: str) -> None:
        with self._lock:
            self._held[key] = self._held.get(key, 0) + 1
            if self._thread is None and not self._stopped:
                self._thread = threading.Thread(target=self._run, name="lease-heartbeat", daemon=True)
                self._thread.start()

    def drop(self, key: str) -> None:
        with self._lock:
            left = self._held.get(key, 0) - 1
            if left > 0:
                self._held[key] = left
            else:
                self._held.pop(key, None)

    def _run(self) -> None:
        while not self._wake.wait(self._every):
            with self._lock:
                keys = list(self._held)
            if keys:
                try:
                    self._renew(keys)
                except Exception:  # noqa: BLE001 - a missed beat is retried; the lease lasts three of them
                    pass

    def stop(self) -> None:
        self._stopped = True
        self._wake.set()


__all__ = ["Heartbeat", "expired", "forget", "is_dead", "new_holder"]
