"""Header reads of files from anyone: each in a sandboxed worker (:mod:`catalog.sandbox`) with byte, time and
memory caps. A read the sandbox had to stop (killed at the time limit, out of memory, crashed) is an
``unreadable`` file whose reason says so; nothing else happens to the caller.

Workers read local paths (:meth:`HeaderPool.read`) and URLs (:meth:`HeaderPool.read_url`: a worker makes the HTTP
Range requests itself, :mod:`.remote`), so that no untrusted bytes are parsed in the caller.
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
_URL_TARGET = "loaders.image_headers.remote:read_url_in_worker"
_ZARR_URL_TARGET = "loaders.image_headers.remote:read_zarr_url_in_worker"
_PRELOAD = (
    "numpy",
    "tifffile",
    "mrcfile",
    "PIL.Image",
    "ome_types",
    "zarr",
    "urllib3",
    "loaders.image_headers.read",
    "loaders.image_headers.remote",
)


def read_in_worker(path: str, max_bytes: int, name: str | None = None) -> dict[str, Any]:
    """The worker's side: one file's headers as a dict (``name``: the file's own name, if the path lacks it)."""
    from .read import read_headers

    return read_headers(path, max_bytes=max_bytes, fatal=(MemoryError, SystemError), name=name).to_dict()


@dataclass(frozen=True)
class HeaderCaps:
    """What reading one file may take."""

    max_bytes: int = DEFAULT_MAX_BYTES
    seconds: float = 10.0
    memory_bytes: int = 1 << 30
    #: seconds each HTTP Range request of a remote read may take (the whole read still ends at ``seconds``)
    request_timeout: float = 5.0

    @classmethod
    def from_settings(cls, settings: Any) -> "HeaderCaps":
        return cls(
            max_bytes=settings.header_max_bytes,
            seconds=settings.header_timeout,
            memory_bytes=settings.header_max_memory_mb << 20,
            request_timeout=settings.header_request_timeout,
        )


class HeaderPool:
    """Reads headers in up to ``workers`` sandboxed processes (default: one per core)."""

    def __init__(self, workers: int | None = None, caps: HeaderCaps | None = None) -> None:
        self.caps = caps or HeaderCaps()
        limits = Limits(seconds=self.caps.seconds, memory_bytes=self.caps.memory_bytes)
        self.sandbox = SandboxPool(workers or os.cpu_count() or 1, limits, preload=_PRELOAD)

    def read(self, path: str | os.PathLike[str], name: str | None = None) -> ImageHeaders:
        """The headers of a local file (``name``: its own name when ``path`` does not end with it)."""
        try:
            answer = self.sandbox.call(_TARGET, str(path), self.caps.max_bytes, name)
        except SandboxFailure as failure:
            return ImageHeaders(source=str(path)).fail("unreadable", failure.reason)
        return ImageHeaders.from_dict(answer)

    def read_url(self, url: str, name: str | None = None, size: int | None = None) -> ImageHeaders:
        """The headers of the file at ``url`` (an http(s) URL the caller made and vouches for; called ``name`` in
        the result, e.g. to keep a presigned URL's signature out of it), read by Range requests in a worker: its
        ``reads`` and ``bytes_read`` are the requests made and the bytes fetched. Raises
        :class:`~.remote.SourceUnavailable` when the server cannot be reached or is busy (try again later)."""
        name = name or url
        return self._remote(name, _URL_TARGET, url, name, size, self.caps.max_bytes, self.caps.request_timeout)

    def read_zarr_url(self, url: str, name: str) -> ImageHeaders:
        """The headers of the Zarr store in the folder at ``url`` (a URL the caller made and vouches for), its
        metadata objects fetched one GET each in a worker (:class:`~.remote.HttpKeys`). Raises
        :class:`~.remote.SourceUnavailable` as :meth:`read_url` does."""
        return self._remote(name, _ZARR_URL_TARGET, url, name, self.caps.max_bytes, self.caps.request_timeout)

    def _remote(self, name: str, target: str, *args: Any) -> ImageHeaders:
        """A worker's answer to a read over HTTP: the headers, or :class:`~.remote.SourceUnavailable`."""
        from .remote import SourceUnavailable

        try:
            answer = self.sandbox.call(target, *args)
        except SandboxFailure as failure:
            return ImageHeaders(source=name).fail("unreadable", failure.reason)
        if "transient" in answer:
            raise SourceUnavailable(f"{name}: {answer['transient']}")
        return ImageHeaders.from_dict(answer["headers"])

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
