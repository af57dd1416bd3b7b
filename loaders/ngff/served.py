"""Reading a virtual store's reference document to serve it as a plain Zarr over HTTP: each key is inline bytes
(metadata) or a byte range of the source file (a chunk).

Documents are read from the file store at most :data:`MAX_DOCUMENT_BYTES` and kept parsed, a few at a time, keyed
by their key and MD5 (a document made again is read again).
"""

from __future__ import annotations

import base64
import json
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from catalog.errors import CatalogError
from catalog.file_store import FileStore, ObjectNotFound

#: the largest reference document served (a 1 % document of a 25 GB image)
MAX_DOCUMENT_BYTES = 256 << 20
#: parsed documents kept per process, and the JSON bytes they were parsed from, at most in all
CACHED = 8
CACHED_BYTES = 32 << 20
TEMPLATE = "{{u}}"


class DocumentUnusable(CatalogError):
    """A stored reference document that cannot be served (too large, or not a reference document)."""

    status = 503
    code = "reference_document_unusable"


@dataclass(frozen=True)
class Chunk:
    """A chunk of a virtual store: ``length`` bytes at ``offset`` of the file-store object ``key``."""

    key: str
    offset: int
    length: int


class Documents:
    """Parsed reference documents of one file store, the most recently used kept: at most ``cached`` of them, parsed
    from at most :data:`CACHED_BYTES` of JSON in all (a parsed document takes about nine times its JSON). A document
    is parsed once however many requests ask for it at the same time."""

    def __init__(self, store: FileStore, cached: int = CACHED, max_bytes: int = CACHED_BYTES) -> None:
        self.store = store
        self.cached, self.max_bytes = cached, max_bytes
        self._docs: OrderedDict[tuple[str, str], tuple[dict[str, Any], int]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self._loading: dict[tuple[str, str], threading.Lock] = {}

    def get(self, key: str) -> tuple[dict[str, Any], str]:
        """The document at ``key`` and its MD5; :class:`ObjectNotFound` if it is missing."""
        stored = self.store.stat(key)
        if stored is None:
            raise ObjectNotFound(f"no reference document at {key}")
        name = (key, stored.md5)
        found = self._kept(name)
        if found is not None:
            return found, stored.md5
        if stored.size > MAX_DOCUMENT_BYTES:
            raise DocumentUnusable(f"the reference document is {stored.size:,} bytes, over the {MAX_DOCUMENT_BYTES:,} served")
        with self._lock:
            loading = self._loading.setdefault(name, threading.Lock())
        with loading:  # one parse per document; the others wait for it
            found = self._kept(name)
            if found is None:
                found = self._parse(key)
                self._keep(name, found, stored.size)
        with self._lock:
            self._loading.pop(name, None)
        return found, stored.md5

    def _kept(self, name: tuple[str, str]) -> dict[str, Any] | None:
        with self._lock:
            kept = self._docs.get(name)
            if kept is None:
                return None
            self._docs.move_to_end(name)
            return kept[0]

    def _parse(self, key: str) -> dict[str, Any]:
        try:
            document = json.loads(b"".join(self.store.open_range(key)))
            refs, templates = document["refs"], document.get("templates") or {}
        except (ValueError, KeyError, TypeError) as exc:
            raise DocumentUnusable(f"the stored reference document cannot be read: {exc}") from exc
        if not isinstance(refs, dict) or not isinstance(templates, dict):
            raise DocumentUnusable("the stored reference document has no references")
        return document

    def _keep(self, name: tuple[str, str], document: dict[str, Any], size: int) -> None:
        """Keep a parsed document (one larger than the byte cap is used once, not kept)."""
        if size > self.max_bytes:
            return
        with self._lock:
            self._docs[name] = (document, size)
            self._bytes += size
            while len(self._docs) > self.cached or self._bytes > self.max_bytes:
                self._bytes -= self._docs.popitem(last=False)[1][1]


def resolve(document: dict[str, Any], key: str) -> bytes | Chunk | None:
    """What ``key`` of the store is: inline bytes, a :class:`Chunk` of the source, or None (no such key)."""
    value = document["refs"].get(key)
    if value is None:
        return None
    if isinstance(value, str):
        return base64.b64decode(value[7:]) if value.startswith("base64:") else value.encode("utf-8")
    if isinstance(value, list) and len(value) == 3 and isinstance(value[1], int) and isinstance(value[2], int):
        url = str(value[0])
        for name, target in (document.get("templates") or {}).items():
            url = url.replace("{{" + name + "}}", str(target))
        return Chunk(url, value[1], value[2])
    return None


def with_source_url(document: dict[str, Any], url: str) -> dict[str, Any]:
    """The document as clients get it: its template pointing at ``url`` (where the source file is downloaded)."""
    return {**document, "templates": {**(document.get("templates") or {}), "u": url}}
