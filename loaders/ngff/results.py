"""Where an image's OME-Zarr is: the newest ``ome_zarr`` job result of its file (:mod:`.job` says its shape)."""

from __future__ import annotations

import json
from typing import Any

from catalog.state_db import StateDB

KIND = "ome_zarr"


def file_result(db: StateDB, accession: str, file_key: str) -> dict[str, Any] | None:
    """The newest done ``ome_zarr`` result of a file, or None."""
    with db.transaction() as conn:
        row = conn.execute(
            "SELECT result FROM jobs WHERE study = ? AND file_key = ? AND kind = ? AND state = 'done'"
            " ORDER BY updated DESC LIMIT 1",
            (accession, file_key, KIND),
        ).fetchone()
    if row is None or row["result"] is None:
        return None
    result = json.loads(row["result"])
    return result if isinstance(result, dict) else None


def image_store(db: StateDB, accession: str, file_key: str, image_id: str) -> dict[str, Any] | None:
    """The store of one image (an entry of the result's ``images``), or None while it has none."""
    result = file_result(db, accession, file_key) or {}
    return next((image for image in result.get("images") or [] if image.get("image_id") == image_id), None)
