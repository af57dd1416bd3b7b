"""Previews drawn in sandboxed workers (:mod:`catalog.sandbox`) with a time limit and a memory cap: a file the
sandbox had to stop (killed at the time limit, out of memory, crashed) is a failed preview whose reason says so.

Workers read a local file in place, or a URL the caller made (a presigned S3 URL, a harvested file at its source
archive) by HTTP Range requests through a capped, counted file object (:func:`loaders.image_headers.remote.open_url`);
they hold no credential. They cannot write files; they answer PNGs as base64 text, and the caller stores them.
"""

from __future__ import annotations

import base64
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

from catalog.sandbox import Limits, SandboxFailure, SandboxPool

if TYPE_CHECKING:
    from loaders.image_headers.stored import Located

_PRELOAD = (
    "numpy",
    "tifffile",
    "mrcfile",
    "PIL.Image",
    "PIL.PngImagePlugin",
    "zarr",
    "urllib3",
    "loaders.previews.render",
    "loaders.image_headers.ome_zarr",
)
_MODULE = "loaders.previews.pool"
#: bytes of each HTTP Range request of a file read from a URL (tiles and rows are fetched in whole blocks)
READ_BLOCK = 1 << 20


# ---------------------------------------------------------------------------------------------------- worker side
#
# Every call names its file as a :class:`~loaders.image_headers.stored.Located` dict: a local ``path``, or a ``url``
# the worker reads by HTTP Range requests (a presigned S3 URL, a harvested file at its source archive), at most
# ``cap`` bytes with ``timeout`` seconds per request. A source that is down answers ``{"transient": reason}``.


def images_in_worker(file: dict[str, Any], max_bytes: int, timeout: float = 5.0) -> dict[str, Any]:
    """The file's format and its images' indexes, as the header readers number them."""
    if file.get("url"):
        from loaders.image_headers.remote import read_url_in_worker

        answer = read_url_in_worker(file["url"], file["name"], file.get("size"), max_bytes, timeout)
        if "transient" in answer:
            return {"status": "transient", "reason": answer["transient"]}
        return _images(answer["headers"])
    from loaders.image_headers.read import read_headers

    return _images(read_headers(file["path"], max_bytes=max_bytes, fatal=(MemoryError, SystemError)).to_dict())


def _images(headers: dict[str, Any]) -> dict[str, Any]:
    series = [s["index"] for s in headers.get("series") or []]
    return {"status": headers["status"], "reason": headers.get("reason"), "format": headers.get("format"), "series": series}


def previews_in_worker(file: dict[str, Any], fmt: str | None, index: int, cap: int = 0, timeout: float = 5.0) -> dict[str, Any]:
    from loaders.previews.render import previews_of

    return _drawn(file, cap, timeout, lambda opened: previews_of(opened, fmt, [index], name=file["name"], cap=cap or None)[0])


def staged_in_worker(path: str, absent: list[str], action: str, args: list[Any], cap: int) -> dict[str, Any]:
    """``action`` (``images``, ``previews`` of image ``args[0]``, ``render`` of ``args`` = series, z, t, c, level)
    on an OME-Zarr store copied piecemeal into ``path`` (:class:`~loaders.image_headers.sources.DemandKeys`): the
    answer, or ``{"need": [keys]}`` when it asked for keys not copied yet (and not ``absent``)."""
    from loaders.image_headers.sources import DemandKeys

    keys = DemandKeys(path, absent)
    try:
        answer = _staged(keys, action, args, cap)
    except (MemoryError, SystemError):
        raise
    except Exception as exc:  # noqa: BLE001 - a hostile store: the drawing fails with the reason, unless keys are missing
        answer = {"status": "failed", "reason": f"{type(exc).__name__}: {str(exc)[:300]}"}
    if keys.wanted:
        return {"need": list(keys.wanted)[:MAX_NEEDED]}
    return answer


#: keys one round of a staged drawing may ask for, at most
MAX_NEEDED = 20_000
#: objects one action on a store at its source may fetch, at most (metadata on the way, then the chunks drawn)
MAX_REMOTE_OBJECTS = 20_000


def remote_store_in_worker(url: str, name: str, action: str, args: list[Any], cap: int, timeout: float) -> dict[str, Any]:
    """``action`` as :func:`staged_in_worker` does it, on the OME-Zarr store in the folder at ``url`` (a harvested
    study's store at its source archive), each object one GET (:class:`~loaders.image_headers.remote.HttpKeys`); a
    source that is down answers ``{"transient": reason}``."""
    from loaders.image_headers.remote import HttpKeys, SourceDown

    keys = HttpKeys(url, name, timeout=timeout, max_objects=MAX_REMOTE_OBJECTS)
    try:
        answer = _staged(keys, action, args, cap)
    except (MemoryError, SystemError):
        raise
    except Exception as exc:  # noqa: BLE001 - a hostile store: the drawing fails with the reason
        answer = {"status": "failed", "reason": f"{type(exc).__name__}: {str(exc)[:300]}"}
    if isinstance(keys.failure, SourceDown):
        return {"transient": str(keys.failure)}
    if keys.failure is not None and answer.get("status") in ("failed", "unreadable"):
        answer["reason"] = str(keys.failure)
    return answer


def _staged(keys: Any, action: str, args: list[Any], cap: int) -> dict[str, Any]:
    from loaders.previews.render import previews_of, render_png

    if action == "images":
        from loaders.image_headers import ome_zarr
        from loaders.image_headers.model import ImageHeaders, bounded
        from loaders.image_headers.sources import CountingKeys

        found = ImageHeaders(source=keys.name)
        ome_zarr.read(CountingKeys(keys, cap), found)
        if found.status == "ok" and not found.series:
            found.fail("unreadable", "no image found in it")
        return _images(bounded(found).to_dict())
    if action == "previews":
        return previews_of(keys, "ome-zarr", [int(args[0])], name=keys.name, cap=cap)[0]
    series, z, t, c, level = args
    return {"png": render_png(keys, "ome-zarr", series, z, t, c, level, name=keys.name, cap=cap)}


def render_in_worker(
    file: dict[str, Any],
    fmt: str | None,
    series: int,
    z: int,
    t: int,
    c: int | None,
    level: int,
    cap: int = 0,
    timeout: float = 5.0,
) -> Any:
    from loaders.previews.render import render_png

    return _drawn(
        file, cap, timeout, lambda opened: render_png(opened, fmt, series, z, t, c, level, name=file["name"], cap=cap or None)
    )


def _drawn(file: dict[str, Any], cap: int, timeout: float, draw: Callable[[Any], Any]) -> Any:
    """``draw(path or file object)``. Reading a URL, what failed at the source (or the byte cap) is raised as the
    reason of a drawing that failed; a source that is down answers ``{"transient": reason}``."""
    if not file.get("url"):
        return draw(file["path"])
    from loaders.image_headers.remote import SourceDown, SourceFailed, open_url
    from loaders.image_headers.sources import ByteCapExceeded

    over = f"drawing it would read more than the {cap:,}-byte cap (BIA_PREVIEW_MAX_SOURCE_BYTES)"
    try:
        reader, ranges = open_url(file["url"], file["name"], file.get("size"), cap=cap, timeout=timeout, block=READ_BLOCK)
    except SourceDown as exc:
        return {"transient": str(exc)}
    except ByteCapExceeded:
        raise SourceFailed(over) from None
    try:
        made = draw(reader)
    except (MemoryError, SystemError):
        raise
    except Exception as exc:  # noqa: BLE001 - re-raised below, unless the source explains it
        made = exc
    failure = ranges.failure
    if isinstance(failure, SourceDown):
        return {"transient": str(failure)}
    if reader.over_cap or isinstance(made, ByteCapExceeded):  # the reader's cap, or the fetches' (read ahead) one
        failure = SourceFailed(over)
    if failure is not None and (isinstance(made, Exception) or (isinstance(made, dict) and made.get("status") == "failed")):
        raise SourceFailed(str(failure))
    if isinstance(made, Exception):
        raise made
    return made


# ---------------------------------------------------------------------------------------------------- caller side


@dataclass(frozen=True)
class PreviewCaps:
    """What drawing one image may take."""

    seconds: float = 60.0
    memory_bytes: int = 512 << 20
    #: bytes the header read that finds the images may take
    header_bytes: int = 32 << 20
    #: bytes one drawing may fetch from a file read by URL (S3, a source archive)
    source_bytes: int = 2 << 30
    #: seconds each HTTP Range request of such a read may take
    request_timeout: float = 5.0

    @classmethod
    def from_settings(cls, settings: Any) -> "PreviewCaps":
        return cls(
            seconds=settings.preview_timeout,
            memory_bytes=settings.preview_max_memory_mb << 20,
            header_bytes=settings.header_max_bytes,
            source_bytes=settings.preview_max_source_bytes,
            request_timeout=settings.header_request_timeout,
        )


class RenderFailed(Exception):
    """A preview or plane the renderer did not make; the reason says why."""


def _located(file: Located | str) -> dict[str, Any]:
    return {"name": file, "path": file, "url": None, "size": None} if isinstance(file, str) else file.to_json()


def _checked(answer: Any, file: Located | str) -> Any:
    """The worker's answer; :class:`~loaders.image_headers.remote.SourceUnavailable` when the source was down."""
    if isinstance(answer, dict) and "transient" in answer:
        from loaders.image_headers.remote import SourceUnavailable

        raise SourceUnavailable(f"{file if isinstance(file, str) else file.name}: {answer['transient']}")
    return answer


class PreviewPool:
    """Draws previews in up to ``workers`` sandboxed processes (default: one per core). Files are local paths, or
    :class:`~loaders.image_headers.stored.Located` ones (a worker reads a URL by Range requests, at most
    ``caps.source_bytes``); a source that is down raises :class:`~loaders.image_headers.remote.SourceUnavailable`."""

    def __init__(self, workers: int | None = None, caps: PreviewCaps | None = None) -> None:
        self.caps = caps or PreviewCaps()
        limits = Limits(seconds=self.caps.seconds, memory_bytes=self.caps.memory_bytes)
        self.sandbox = SandboxPool(workers or os.cpu_count() or 1, limits, preload=_PRELOAD)

    def images(self, file: Located | str) -> dict[str, Any]:
        """``{"status", "reason", "format", "series": [index…]}`` of the file."""
        try:
            found = self.sandbox.call(
                f"{_MODULE}:images_in_worker", _located(file), self.caps.header_bytes, self.caps.request_timeout
            )
        except SandboxFailure as failure:
            return {"status": "unreadable", "reason": failure.reason, "format": None, "series": []}
        if found.get("status") == "transient":
            _checked({"transient": found.get("reason")}, file)
        return found

    def previews(self, file: Located | str, fmt: str | None, index: int) -> dict[str, Any]:
        """One image's previews: ``{"index", "status", "reason"?, "level", "pngs": {name: bytes}, "sizes"}``."""
        caps = (self.caps.source_bytes, self.caps.request_timeout)
        try:
            made = _checked(self.sandbox.call(f"{_MODULE}:previews_in_worker", _located(file), fmt, index, *caps), file)
        except SandboxFailure as failure:
            return {"index": index, "status": "failed", "reason": failure.reason}
        if made.get("status") == "ok":
            made["pngs"] = {name: base64.b64decode(text) for name, text in made["pngs"].items()}
        return made

    def render(self, file: Located | str, fmt: str | None, series: int, z: int, t: int, c: int | None, level: int) -> bytes:
        """One plane as PNG bytes; :class:`RenderFailed` with the reason otherwise."""
        caps = (self.caps.source_bytes, self.caps.request_timeout)
        try:
            text = self.sandbox.call(f"{_MODULE}:render_in_worker", _located(file), fmt, series, z, t, c, level, *caps)
        except SandboxFailure as failure:
            raise RenderFailed(failure.reason) from None
        return base64.b64decode(_checked(text, file))

    def staged(self, path: str, absent: list[str], action: str, *args: Any) -> dict[str, Any]:
        """:func:`staged_in_worker` in a sandboxed worker; a worker the sandbox stopped is a failed answer."""
        try:
            return dict(
                self.sandbox.call(f"{_MODULE}:staged_in_worker", path, absent, action, list(args), self.caps.source_bytes)
            )
        except SandboxFailure as failure:
            return {"status": "failed", "reason": failure.reason}

    def remote_store(self, url: str, name: str, action: str, *args: Any) -> dict[str, Any]:
        """:func:`remote_store_in_worker` in a sandboxed worker; a worker the sandbox stopped is a failed answer, a
        source that is down raises :class:`~loaders.image_headers.remote.SourceUnavailable`."""
        caps = (self.caps.source_bytes, self.caps.request_timeout)
        try:
            answer = self.sandbox.call(f"{_MODULE}:remote_store_in_worker", url, name, action, list(args), *caps)
        except SandboxFailure as failure:
            return {"status": "failed", "reason": failure.reason}
        return dict(_checked(answer, name))

    def close(self) -> None:
        self.sandbox.close()

    def __enter__(self) -> "PreviewPool":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
