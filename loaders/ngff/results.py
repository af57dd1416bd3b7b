"""Where an image's OME-Zarr is: the newest ``ome_zarr`` job result of its file (:mod:`.job` says its shape)."""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from typing import Any

from catalog.state_db import StateDB

KIND = "ome_zarr"
#: parsed results kept by a :class:`ResultCache` (a plate's result lists every field: parsing it per chunk is waste),
#: at most, and the JSON bytes they were parsed from, at most in all
CACHED_RESULTS = 64
CACHED_BYTES = 32 << 20


def file_result(db: StateDB, accession: str, file_key: str, cache: "ResultCache | None" = None) -> dict[str, Any] | None:
    """The newest done ``ome_zarr`` result of a file, or None (parsed once per job update when given a cache)."""
    where = "FROM jobs WHERE study = ? AND file_key = ? AND kind = ? AND state = 'done' ORDER BY updated DESC LIMIT 1"
    with db.transaction() as conn:
        head = conn.execute(f"SELECT id, updated {where}", (accession, file_key, KIND)).fetchone()
        if head is None:
            return None
        version = (int(head["id"]), float(head["updated"]))
        if cache is not None and (hit := cache.get((accession, file_key), version)) is not None:
            return hit
        row = conn.execute("SELECT result FROM jobs WHERE id = ?", (version[0],)).fetchone()
    text: str | None = row["result"] if row is not None else None
    if text is None:
        return None
    result = json.loads(text)
    if not isinstance(result, dict):
        return None
    if cache is not None:
        cache.put((accession, file_key), version, result, len(text))
    return result


def image_store(
    db: StateDB, accession: str, file_key: str, image_id: str, cache: "ResultCache | None" = None
) -> dict[str, Any] | None:
    """The store of one image (an entry of the result's ``images``), or None while it has none."""
    result = file_result(db, accession, file_key, cache) or {}
    return next((image for image in result.get("images") or [] if image.get("image_id") == image_id), None)


class ResultCache:
    """The last :data:`CACHED_RESULTS` parsed results (from at most :data:`CACHED_BYTES` of JSON), each valid for the
    job row version it was read at."""

    def __init__(self, size: int = CACHED_RESULTS, max_bytes: int = CACHED_BYTES) -> None:
        self._size, self._max_bytes, self._bytes, self._lock = size, max_bytes, 0, threading.Lock()
        self._kept: OrderedDict[tuple[str, str], tuple[tuple[int, float], dict[str, Any], int]] = OrderedDict()

    def get(self, file: tuple[str, str], version: tuple[int, float]) -> dict[str, Any] | None:
        with self._lock:
            kept = self._kept.get(file)
            if kept is None or kept[0] != version:
                return None
            self._kept.move_to_end(file)
            return kept[1]

    def put(self, file: tuple[str, str], version: tuple[int, float], result: dict[str, Any], size: int) -> None:
        """Keep ``result`` (parsed from ``size`` bytes of JSON); one larger than the whole cache is not kept."""
        with self._lock:
            old = self._kept.pop(file, None)
            self._bytes -= old[2] if old else 0
            if size > self._max_bytes:
                return
            self._kept[file] = (version, result, size)
            self._bytes += size
            while len(self._kept) > self._size or self._bytes > self._max_bytes:
                self._bytes -= self._kept.popitem(last=False)[1][2]
