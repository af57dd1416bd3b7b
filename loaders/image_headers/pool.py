"""Header reads of files from anyone: each in a sandboxed worker (:mod:`catalog.sandbox`) with byte, time and
memory caps. A read the sandbox had to stop (killed at the time limit, out of memory, crashed) is an
``unreadable`` file whose reason says so; nothing else happens to the caller.

Workers read local paths. A remote file will be read the same way, by a worker that makes the HTTP Range requests
itself (:class:`~.sources.RangeSource`), so that no untrusted bytes are parsed in the caller.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from catalog.sandbox import Limits, SandboxFailure, SandboxPool

from .model import ImageHeaders
from .read import DEFAULT_MAX_BYTES

_TARGET = "loaders.image_headers.pool:read_in_worker"
_PRELOAD = ("numpy", "tifffile", "mrcfile", "PIL.Image", "ome_types", "zarr", "loaders.image_headers.read")


def read_in_worker(path: str, max_bytes: int) -> dict[str, Any]:
    """The worker's side: one file's headers as a dict."""
    from .read import read_headers

    return read_headers(path, max_bytes=max_bytes, fatal=(MemoryError, SystemError)).to_dict()


@dataclass(frozen=True)
class HeaderCaps:
    """What reading one file may take."""

    max_bytes: int = DEFAULT_MAX_BYTES
    seconds: float = 10.0
    memory_bytes: int = 1 << 30

    @classmethod
    def from_settings(cls, settings: Any) -> "HeaderCaps":
        return cls(
            max_bytes=settings.header_max_bytes,
            seconds=settings.header_timeout,
            memory_bytes=settings.header_max_memory_mb << 20,
        )


class HeaderPool:
    """Reads headers in up to ``workers`` sandboxed processes (default: one per core)."""

    def __init__(self, workers: int | None = None, caps: HeaderCaps | None = None) -> None:
        self.caps = caps or HeaderCaps()
        limits = Limits(seconds=self.caps.seconds, memory_bytes=self.caps.memory_bytes)
        self.sandbox = SandboxPool(workers or os.cpu_count() or 1, limits, preload=_PRELOAD)

    def read(self, path: str | os.PathLike[str]) -> ImageHeaders:
        try:
            answer = self.sandbox.call(_TARGET, str(path), self.caps.max_bytes)
        except SandboxFailure as failure:
            return ImageHeaders(source=str(path)).fail("unreadable", failure.reason)
        return ImageHeaders.from_dict(answer)

    def read_many(self, paths: Iterable[str | os.PathLike[str]]) -> Iterator[ImageHeaders]:
        """Each path's headers, in order, read in parallel."""
        names: list[str] = []

        def calls() -> Iterator[tuple[str, int]]:
            for path in paths:
                names.append(str(path))
                yield str(path), self.caps.max_bytes

        for index, outcome in enumerate(self.sandbox.map(_TARGET, calls())):
            if isinstance(outcome, SandboxFailure):
                yield ImageHeaders(source=names[index]).fail("unreadable", outcome.reason)
            else:
                yield ImageHeaders.from_dict(outcome)

    def close(self) -> None:
        self.sandbox.close()

    def __enter__(self) -> "HeaderPool":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
