"""Which file and series each image of a study is: the lookup behind ``…/studies/{acc}/images/{id}/…`` routes.

Image ids are digests (:meth:`catalog.image_graph.ImageGraph.image_iri`), so they cannot be read back: every image
the headers found, in the graph or past its cap, gets a row here when the study's headers are applied
(:mod:`catalog.image_facts`). Rows are written under a new generation and the older generation is removed last, so
a reader sees each image's row throughout.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

from catalog.state_db import StateDB

#: rows written per transaction
BATCH = 1000
#: the counter generations are drawn from
GENERATIONS = "~image_index"


@dataclass(frozen=True)
class IndexedImage:
    accession: str
    image_id: str
    #: the file's key in the file store (``studies/<acc>/<path>``)
    file_key: str
    #: the image's index among its file's images
    series: int


def new_generation(db: StateDB) -> int:
    with db.transaction(write=True) as conn:
        return int(
            conn.execute(
                "INSERT INTO counters VALUES (?, 1) ON CONFLICT(name) DO UPDATE SET value = counters.value + 1 RETURNING value",
                (GENERATIONS,),
            ).fetchone()[0]
        )


def write(db: StateDB, generation: int, images: Iterable[IndexedImage]) -> int:
    """Record ``images`` under ``generation``; returns how many."""
    count = 0
    batch: list[tuple[str, str, str, int, int]] = []

    def flush() -> None:
        with db.transaction(write=True) as conn:
            conn.executemany(
                "INSERT INTO images (study, image_id, file_key, series, generation) VALUES (?, ?, ?, ?, ?)"
                " ON CONFLICT(study, image_id) DO UPDATE SET file_key = excluded.file_key, series = excluded.series,"
                " generation = excluded.generation",
                batch,
            )
        batch.clear()

    for image in images:
        batch.append((image.accession, image.image_id, image.file_key, image.series, generation))
        count += 1
        if len(batch) >= BATCH:
            flush()
    if batch:
        flush()
    return count


def drop_older(db: StateDB, accession: str, generation: int) -> None:
    """Remove the study's rows of generations before ``generation`` (images no longer found)."""
    with db.transaction(write=True) as conn:
        conn.execute("DELETE FROM images WHERE study = ? AND generation < ?", (accession, generation))


def lookup(db: StateDB, accession: str, image_id: str) -> IndexedImage | None:
    with db.transaction() as conn:
        row = conn.execute(
            "SELECT file_key, series FROM images WHERE study = ? AND image_id = ?", (accession, image_id)
        ).fetchone()
    return IndexedImage(accession, image_id, row["file_key"], int(row["series"])) if row else None
