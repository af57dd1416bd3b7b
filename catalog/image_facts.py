"""Bringing what image headers say into a study: its file table's ``image.*`` columns, its graph's image nodes and
summaries, its search entry and its rendered record.

Header jobs (:mod:`catalog.jobs`, kind ``image_headers``) store one result per file; this module is the follower
that brings studies up to date with them. A study is *pending* when new results were stored for it (found by a scan
of the jobs that finished since the last scan) or when it was committed again (a new version's graph has no image
nodes yet). The holder of the maintenance lease applies pending studies (:meth:`ImageFacts.follow`): a study whose
header reads are still running is applied once they are done, or every :data:`BUSY_INTERVAL` seconds meanwhile.
Pending marks and the scan's watermark live in the state database, so any node can take over.

Results of the jobs that make an image's representations (``previews``, ``ome_zarr``:
:mod:`catalog.image_representations`) mark their study pending in the same way, and are applied with the headers.

Applying is idempotent and its cost is the study's file count (the table is rebuilt from its own rows with the
columns merged in, a batch of results at a time) plus the image nodes written, at most ``BIA_IMAGE_NODES_MAX``.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterable, Iterator

from catalog.image_columns import HEADER_KIND, columns_of, header_key, latest_results, without_image_columns
from catalog import image_index
from catalog.image_representations import DERIVED_KINDS
from catalog.image_graph import ImageGraph, replace_update
from catalog.state_db import StateDB

if TYPE_CHECKING:
    from catalog.archive import Archive
    from catalog.views import CatalogView

log = logging.getLogger(__name__)

#: seconds between two applications to a study whose header reads are still running
BUSY_INTERVAL = 600.0
#: seconds the scan of finished jobs looks back before its watermark (clocks of workers on other hosts may lag)
SCAN_OVERLAP = 120.0
#: the counter pending marks are numbered by, and the meta row holding the scan's watermark
COUNTER, WATERMARK = "~image_facts", "image_facts_scanned"
#: the predicate from a file to its component
COMPONENT = "https://w3id.org/rembi/component"
#: table rows read per batch while applying
BATCH = 500
#: seconds a study whose application failed waits before it is tried again, at first and at most
FAILED_WAIT, FAILED_WAIT_MAX = 60.0, 3600.0
#: studies waiting after a failure looked past, at most, to find ones to apply
MAX_WAITING = 1000


@dataclass
class Applied:
    """What applying one study's headers wrote."""

    accession: str
    files_read: int
    images: int
    image_nodes: int


# ---------------------------------------------------------------------------------------------------- pending marks


def mark(db: StateDB, accessions: Iterable[str]) -> None:
    """Mark studies pending (their headers changed, or their graph was replaced)."""
    with db.transaction(write=True) as conn:
        for accession in dict.fromkeys(accessions):
            seq = _next(conn)
            conn.execute(
                "INSERT INTO image_facts (study, changed) VALUES (?, ?) ON CONFLICT(study) DO UPDATE SET changed = ?",
                (accession, seq, seq),
            )


def _next(conn: Any) -> int:
    return int(
        conn.execute(
            "INSERT INTO counters VALUES (?, 1) ON CONFLICT(name) DO UPDATE SET value = counters.value + 1 RETURNING value",
            (COUNTER,),
        ).fetchone()[0]
    )


def scan_finished(db: StateDB) -> list[str]:
    """Mark pending every study with header (or representation) jobs that ended since the last scan; returns them."""
    with db.transaction() as conn:
        row = conn.execute("SELECT value FROM meta WHERE name = ?", (WATERMARK,)).fetchone()
        since = float(row[0]) if row else 0.0
        rows = conn.execute(
            "SELECT study, MAX(updated) AS latest FROM jobs WHERE kind IN (?, ?, ?) AND updated > ?"
            " AND state IN ('done', 'failed') GROUP BY study",
            (HEADER_KIND, *DERIVED_KINDS, since - SCAN_OVERLAP),
        ).fetchall()
    studies = [r["study"] for r in rows if float(r["latest"]) > since]
    if studies:
        mark(db, studies)
    if rows:
        latest = max(float(r["latest"]) for r in rows)
        with db.transaction(write=True) as conn:
            conn.execute(
                "INSERT INTO meta VALUES (?, ?) ON CONFLICT(name) DO UPDATE SET value = excluded.value", (WATERMARK, repr(latest))
            )
    return studies


def pending(db: StateDB, limit: int = 100) -> list[tuple[str, int, int | None]]:
    """Pending studies: (accession, mark, mark when last applied)."""
    with db.transaction() as conn:
        rows = conn.execute(
            "SELECT study, changed, applied FROM image_facts WHERE applied IS NULL OR changed > applied ORDER BY changed LIMIT ?",
            (limit,),
        ).fetchall()
    return [(r["study"], int(r["changed"]), None if r["applied"] is None else int(r["applied"])) for r in rows]


def _applied(db: StateDB, accession: str, seq: int) -> None:
    with db.transaction(write=True) as conn:
        conn.execute(
            "UPDATE image_facts SET applied = ? WHERE study = ? AND (applied IS NULL OR applied < ?)", (seq, accession, seq)
        )


def _reading(db: StateDB, accession: str) -> bool:
    """Whether header jobs of the study are still queued or running."""
    with db.transaction() as conn:
        return (
            conn.execute(
                "SELECT 1 FROM jobs WHERE study = ? AND kind || '' = ? AND state IN ('queued', 'running') LIMIT 1",
                (accession, HEADER_KIND),
            ).fetchone()
            is not None
        )


def has_results(db: StateDB, accession: str) -> bool:
    with db.transaction() as conn:
        return (
            conn.execute(
                "SELECT 1 FROM jobs WHERE study = ? AND kind || '' = ? AND state || '' = 'done' LIMIT 1", (accession, HEADER_KIND)
            ).fetchone()
            is not None
        )


# ---------------------------------------------------------------------------------------------------- applying


def file_components(view: "CatalogView", study: str, file_ids: list[str]) -> dict[str, str]:
    """The component IRI of each of some files of the study (by file id), by index lookups of their IRIs."""
    if not file_ids:
        return {}
    values = " ".join(f"<{study}/files/{file_id}>" for file_id in file_ids)
    rows = view.graph.select(
        f"SELECT ?f ?component WHERE {{ GRAPH <{study}> {{ VALUES ?f {{ {values} }} ?f <{COMPONENT}> ?component }} }}"
    )
    return {r["f"]["value"].rsplit("/", 1)[-1]: r["component"]["value"] for r in rows}


def apply_to_view(archive: "Archive", view: "CatalogView", accession: str) -> Applied:
    """Rebuild the study's file table with its image columns and replace the image part of its graph (the caller
    updates the search entry and the record). Rows, results and components are read a batch at a time."""
    study = archive.study_iri(accession)
    graph = ImageGraph(archive.model, study, cap=archive.settings.image_nodes_max)
    generation = image_index.new_generation(archive.state)
    found: list[image_index.IndexedImage] = []

    def rows() -> Iterator[dict[str, Any]]:
        for batch in _batches(view.files.iter_rows(accession, batch=BATCH)):
            keys = [header_key(accession, str(row.get("path"))) for row in batch]
            results = latest_results(archive.state, accession, keys)
            made = [key for key in keys if key in results]
            derived = {kind: latest_results(archive.state, accession, made, kind) if made else {} for kind in DERIVED_KINDS}
            read = [str(row.get("file_id")) for key, row in zip(keys, batch) if key in results]
            components = file_components(view, study, read)
            for key, row in zip(keys, batch):
                result = results.get(key)
                if result is None:
                    yield row
                    continue
                path = str(row["path"])
                mine = {kind: by_key[key] for kind, by_key in derived.items() if key in by_key}
                graph.add(path, row.get("size"), result, components.get(str(row.get("file_id"))), mine)
                found.extend(_indexed(graph, accession, path, result))
                yield {**row, **columns_of(result)}
            if len(found) >= image_index.BATCH:
                image_index.write(archive.state, generation, found)
                found.clear()

    view.files.replace_study(accession, rows(), commit=view.files.commit_of(accession))
    image_index.write(archive.state, generation, found)
    image_index.drop_older(archive.state, accession, generation)
    view.graph.update(replace_update(study, graph.all_triples()), graph=study)
    summary = graph.study_summary
    return Applied(accession, summary.files_read, summary.image_count, graph.images_written)


def _indexed(graph: ImageGraph, accession: str, path: str, result: Any) -> Iterator[image_index.IndexedImage]:
    if result.get("status") != "ok":
        return
    for series in result.get("series") or []:
        index = int(series.get("index") or 0)
        image_id = graph.image_iri(path, index).rsplit("/", 1)[-1]
        yield image_index.IndexedImage(accession, image_id, header_key(accession, path), index)


def _batches(rows: Iterable[dict[str, Any]]) -> Iterator[list[dict[str, Any]]]:
    """Table rows without image columns, a batch at a time."""
    batch: list[dict[str, Any]] = []
    for row in rows:
        batch.append(without_image_columns(row))
        if len(batch) >= BATCH:
            yield batch
            batch = []
    if batch:
        yield batch


class ImageFacts:
    """The follower of header results for one archive (run by the maintenance lease holder)."""

    def __init__(self, archive: "Archive") -> None:
        self.archive = archive
        self._busy_since: dict[str, float] = {}
        #: studies whose application failed: (when to try again, seconds waited last)
        self._failed: dict[str, tuple[float, float]] = {}

    def follow(self, limit: int = 20) -> list[Applied]:
        """Scan for new header results, then apply up to ``limit`` pending studies. A study whose application
        fails goes to the back of the queue and waits (:data:`FAILED_WAIT`, doubling to :data:`FAILED_WAIT_MAX`), so
        studies that keep failing never hold up the others."""
        db = self.archive.state
        scan_finished(db)
        done: list[Applied] = []
        now = time.monotonic()
        tried = 0
        for accession, seq, applied in pending(db, limit + min(len(self._failed), MAX_WAITING)):
            if tried >= limit:
                break
            if self._failed.get(accession, (0.0, 0.0))[0] > now:
                continue
            if _reading(db, accession) and not self._due(accession, applied):
                continue
            tried += 1
            try:
                outcome = self.archive.apply_image_headers(accession)
            except Exception:  # noqa: BLE001 - the study stays pending, behind the others; it is tried again later
                log.exception("applying the image headers of %s failed", accession)
                self._wait(accession)
                continue
            self._failed.pop(accession, None)
            _applied(db, accession, seq)
            self._busy_since.pop(accession, None)
            if outcome is not None:
                done.append(outcome)
        return done

    def _wait(self, accession: str) -> None:
        """Put a study whose application failed behind every pending study, and wait before trying it again."""
        waited = self._failed.get(accession, (0.0, FAILED_WAIT / 2))[1]
        wait = min(FAILED_WAIT_MAX, waited * 2)
        self._failed[accession] = (time.monotonic() + wait, wait)
        mark(self.archive.state, [accession])

    def _due(self, accession: str, applied: int | None) -> bool:
        """A study whose reads are running is applied at first, then every BUSY_INTERVAL seconds."""
        now = time.monotonic()
        first = self._busy_since.setdefault(accession, now)
        if applied is None and first == now:
            return False  # wait one interval before the first partial application
        if now - first >= BUSY_INTERVAL:
            self._busy_since[accession] = now
            return True
        return False
