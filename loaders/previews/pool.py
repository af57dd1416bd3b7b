"""Previews drawn in sandboxed workers (:mod:`catalog.sandbox`) with a time limit and a memory cap: a file the
sandbox had to stop (killed at the time limit, out of memory, crashed) is a failed preview whose reason says so.

Workers cannot write files; they answer PNGs as base64 text, and the caller stores them.
"""

from __future__ import annotations

import base64
import os
from dataclasses import dataclass
from typing import Any

from catalog.sandbox import Limits, SandboxFailure, SandboxPool

_PRELOAD = ("numpy", "tifffile", "mrcfile", "PIL.Image", "PIL.PngImagePlugin", "zarr", "loaders.previews.render")
_MODULE = "loaders.previews.pool"


# ---------------------------------------------------------------------------------------------------- worker side


def images_in_worker(path: str, max_bytes: int) -> dict[str, Any]:
    """The file's format and its images' indexes, as the header readers number them."""
    from loaders.image_headers.read import read_headers

    headers = read_headers(path, max_bytes=max_bytes, fatal=(MemoryError, SystemError))
    return {
        "status": headers.status,
        "reason": headers.reason,
        "format": headers.format,
        "series": [s.index for s in headers.series],
    }


def previews_in_worker(path: str, fmt: str | None, index: int) -> dict[str, Any]:
    from loaders.previews.render import previews_of

    return previews_of(path, fmt, [index])[0]


def render_in_worker(path: str, fmt: str | None, series: int, z: int, t: int, c: int | None, level: int) -> str:
    from loaders.previews.render import render_png

    return render_png(path, fmt, series, z, t, c, level)


# ---------------------------------------------------------------------------------------------------- caller side


@dataclass(frozen=True)
class PreviewCaps:
    """What drawing one image may take."""

    seconds: float = 60.0
    memory_bytes: int = 512 << 20
    #: bytes the header read that finds the images may take
    header_bytes: int = 32 << 20

    @classmethod
    def from_settings(cls, settings: Any) -> "PreviewCaps":
        return cls(
            seconds=settings.preview_timeout,
            memory_bytes=settings.preview_max_memory_mb << 20,
            header_bytes=settings.header_max_bytes,
        )


class RenderFailed(Exception):
    """A preview or plane the renderer did not make; the reason says why."""


class PreviewPool:
    """Draws previews in up to ``workers`` sandboxed processes (default: one per core)."""

    def __init__(self, workers: int | None = None, caps: PreviewCaps | None = None) -> None:
        self.caps = caps or PreviewCaps()
        limits = Limits(seconds=self.caps.seconds, memory_bytes=self.caps.memory_bytes)
        self.sandbox = SandboxPool(workers or os.cpu_count() or 1, limits, preload=_PRELOAD)

    def images(self, path: str) -> dict[str, Any]:
        """``{"status", "reason", "format", "series": [index…]}`` of the file at ``path``."""
        try:
            return self.sandbox.call(f"{_MODULE}:images_in_worker", path, self.caps.header_bytes)
        except SandboxFailure as failure:
            return {"status": "unreadable", "reason": failure.reason, "format": None, "series": []}

    def previews(self, path: str, fmt: str | None, index: int) -> dict[str, Any]:
        """One image's previews: ``{"index", "status", "reason"?, "level", "pngs": {name: bytes}, "sizes"}``."""
        try:
            made = self.sandbox.call(f"{_MODULE}:previews_in_worker", path, fmt, index)
        except SandboxFailure as failure:
            return {"index": index, "status": "failed", "reason": failure.reason}
        if made.get("status") == "ok":
            made["pngs"] = {name: base64.b64decode(text) for name, text in made["pngs"].items()}
        return made

    def render(self, path: str, fmt: str | None, series: int, z: int, t: int, c: int | None, level: int) -> bytes:
        """One plane as PNG bytes; :class:`RenderFailed` with the reason otherwise."""
        try:
            text = self.sandbox.call(f"{_MODULE}:render_in_worker", path, fmt, series, z, t, c, level)
        except SandboxFailure as failure:
            raise RenderFailed(failure.reason) from None
        return base64.b64decode(text)

    def close(self) -> None:
        self.sandbox.close()

    def __enter__(self) -> "PreviewPool":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
