"""The ``image.*`` columns of a file table: what a file's headers say, beside its file-list columns.

The results of the header jobs (:mod:`catalog.jobs`, kind :data:`HEADER_KIND`) are the headers' one home; a study's
file table takes its image columns from them whenever it is built (commit, release, rebuild) and again when new
headers have been read (:mod:`catalog.image_facts`). Results are looked up in batches by file, so building the
table of a 1.3 M-file study holds one batch of them at a time, never the whole study's.
"""

from __future__ import annotations

import json
from typing import Any, Iterable, Iterator, Mapping

from catalog.state_db import StateDB

#: the job kind whose results are a file's headers (``ImageHeaders.to_dict()`` of :mod:`loaders.image_headers`)
HEADER_KIND = "image_headers"
PREFIX = "image."
#: the columns, in the order a table shows them
COLUMNS = (
    "image.status",
    "image.format",
    "image.series",
    "image.size_x",
    "image.size_y",
    "image.size_z",
    "image.size_c",
    "image.size_t",
    "image.physical_size_x",
    "image.dtype",
    "image.channels",
)
#: statuses of a read (``skipped``: the file could not be read by this catalog, e.g. not reachable)
READ_STATUSES = ("ok", "unreadable", "unsupported")
#: files looked up per query
BATCH = 500
#: longest ``image.channels`` cell (characters)
MAX_CHANNELS_TEXT = 300


def header_key(accession: str, path: str) -> str:
    """The file key header jobs of a study's file carry (its key in the file store)."""
    return f"studies/{accession}/{path}"


def micrometres(quantity: Mapping[str, Any] | None) -> float | None:
    """A length (a ``Quantity`` dict) in µm, to 6 significant digits; None when it is not a physical length."""
    si = (quantity or {}).get("si")
    if not isinstance(si, (int, float)) or si <= 0:
        return None
    return float(f"{si * 1e6:.6g}")


def channel_label(channel: Mapping[str, Any]) -> str | None:
    """What a channel is called: its name, else its fluorophore."""
    for key in ("name", "fluorophore"):
        value = channel.get(key)
        if isinstance(value, str) and value.strip():
            return value.strip()
    return None


def columns_of(result: Mapping[str, Any] | None) -> dict[str, Any]:
    """The image columns of one file from its header result (first image's sizes; ``image.series`` counts them);
    empty when the file was not read."""
    if not isinstance(result, Mapping) or result.get("status") not in READ_STATUSES:
        return {}
    series = [s for s in result.get("series") or [] if isinstance(s, Mapping)]
    columns: dict[str, Any] = {"image.status": result["status"], "image.format": result.get("format")}
    if result["status"] != "ok" or not series:
        columns["image.series"] = 0
        return columns
    first = series[0]
    names = [label for label in map(channel_label, first.get("channels") or []) if label]
    columns.update(
        {
            "image.series": len(series),
            "image.size_x": first.get("size_x"),
            "image.size_y": first.get("size_y"),
            "image.size_z": first.get("size_z"),
            "image.size_c": first.get("size_c"),
            "image.size_t": first.get("size_t"),
            "image.physical_size_x": micrometres(first.get("physical_size_x")),
            "image.dtype": first.get("pixel_type"),
            "image.channels": "; ".join(names)[:MAX_CHANNELS_TEXT] or None,
        }
    )
    return columns


def latest_results(db: StateDB, accession: str, keys: list[str], kind: str = HEADER_KIND) -> dict[str, dict[str, Any]]:
    """The newest done result of a job of ``kind`` (default: the headers) of each of ``keys`` (files of
    ``accession``) that has one."""
    found: dict[str, tuple[float, dict[str, Any]]] = {}
    for start in range(0, len(keys), BATCH):
        chunk = keys[start : start + BATCH]
        marks = ",".join("?" * len(chunk))
        with db.transaction() as conn:
            rows = conn.execute(
                # kind and state are compared as expressions so that no planner picks an index on them (a scan of
                # every job of the kind) over the key's, whatever its statistics say
                f"SELECT file_key, result, updated FROM jobs WHERE study = ? AND file_key IN ({marks})"
                " AND kind || '' = ? AND state || '' = 'done'",
                (accession, *chunk, kind),
            ).fetchall()
        for row in rows:
            key, updated = row["file_key"], float(row["updated"])
            if key not in found or found[key][0] < updated:
                found[key] = (updated, _decoded(row["result"]))
    return {key: result for key, (_, result) in found.items()}


def _decoded(text: str | None) -> dict[str, Any]:
    try:
        value = json.loads(text) if text else None
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def without_image_columns(row: Mapping[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in row.items() if not key.startswith(PREFIX)}


def with_image_columns(db: StateDB, accession: str, rows: Iterable[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """``rows`` of a study's file table with the image columns of what their files' headers say (replacing any
    they had: a file-list column named ``image.…`` is the catalog's, not the depositor's)."""
    batch: list[dict[str, Any]] = []
    for row in rows:
        batch.append(without_image_columns(row))
        if len(batch) >= BATCH:
            yield from _decorated(db, accession, batch)
            batch = []
    if batch:
        yield from _decorated(db, accession, batch)


def _decorated(db: StateDB, accession: str, batch: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    keys = [header_key(accession, str(row.get("path"))) for row in batch]
    results = latest_results(db, accession, keys)
    for key, row in zip(keys, batch):
        columns = columns_of(results.get(key))
        yield {**row, **columns} if columns else row
