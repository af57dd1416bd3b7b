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
#: parsed documents kept per process
CACHED = 8
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
    """Parsed reference documents of one file store, the most recently used kept."""

    def __init__(self, store: FileStore, cached: int = CACHED) -> None:
        self.store = store
        self.cached = cached
        self._docs: OrderedDict[tuple[str, str], dict[str, Any]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: str) -> tuple[dict[str, Any], str]:
        """The document at ``key`` and its MD5; :class:`ObjectNotFound` if it is missing."""
        stored = self.store.stat(key)
        if stored is None:
            raise ObjectNotFound(f"no reference document at {key}")
        with self._lock:
            found = self._docs.get((key, stored.md5))
            if found is not None:
                self._docs.move_to_end((key, stored.md5))
                return found, stored.md5
        if stored.size > MAX_DOCUMENT_BYTES:
            raise DocumentUnusable(f"the reference document is {stored.size:,} bytes, over the {MAX_DOCUMENT_BYTES:,} served")
        try:
            document = json.loads(b"".join(self.store.open_range(key)))
            refs, templates = document["refs"], document.get("templates") or {}
        except (ValueError, KeyError, TypeError) as exc:
            raise DocumentUnusable(f"the stored reference document cannot be read: {exc}") from exc
        if not isinstance(refs, dict) or not isinstance(templates, dict):
            raise DocumentUnusable("the stored reference document has no references")
        with self._lock:
            self._docs[(key, stored.md5)] = document
            while len(self._docs) > self.cached:
                self._docs.popitem(last=False)
        return document, stored.md5


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
