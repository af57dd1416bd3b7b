"""Imaging methods a file's OME metadata implies: the reviewed table ``schema/ome_acquisition_modes.tsv`` that maps
an OME ``AcquisitionMode`` to an FBbi term, read once.

Only the table's ``exact``, ``close`` and ``broader`` rows suggest a term; a mode FBbi has no term for suggests
nothing rather than a guess.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from functools import lru_cache

from catalog.resources import data_folder

TABLE = "ome_acquisition_modes.tsv"


@dataclass(frozen=True)
class MethodTerm:
    """An FBbi imaging-method term and how closely it matches the OME acquisition mode it came from."""

    id: str
    label: str
    match: str

    @property
    def iri(self) -> str:
        return "http://purl.obolibrary.org/obo/" + self.id.replace(":", "_")


@lru_cache(maxsize=1)
def acquisition_modes() -> dict[str, MethodTerm | None]:
    """Every OME acquisition mode of the table, with its FBbi term (None: FBbi has none)."""
    with (data_folder("schema") / TABLE).open(encoding="utf-8") as handle:
        rows = csv.DictReader((line for line in handle if not line.startswith("#")), delimiter="\t")
        return {
            row["ome_acquisition_mode"]: MethodTerm(row["fbbi_id"], row["fbbi_label"], row["match"]) if row["fbbi_id"] else None
            for row in rows
        }


def method_for(acquisition_mode: str | None) -> MethodTerm | None:
    """The FBbi term an OME acquisition mode implies (case and spacing as OME writes them, or ignored), or None."""
    if not acquisition_mode:
        return None
    table = acquisition_modes()
    if acquisition_mode in table:
        return table[acquisition_mode]
    folded = {mode.lower(): term for mode, term in table.items()}
    return folded.get(acquisition_mode.replace(" ", "").lower())
