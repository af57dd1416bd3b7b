"""What the OAI-PMH interface (``/oai``, :mod:`api.routes_oai`) publishes: one item per released or withdrawn study.

An item's datestamp is when its record last changed (the public record index's change time: its release, a new
version, a new link; UTC, to the second), falling back to its release date. Its sets are its source archive, its
organisms and its imaging methods (``source:…``, ``organism:…``, ``method:…``, each value as a set name and a
slug as setSpec; the three parents are sets too). Embargoed studies live only in the private view and never
appear. A released study that is withdrawn (:meth:`catalog.archive.Archive.withdraw`) leaves a row in
``withdrawn_studies`` with its sets and when it went: the repository keeps deleted records persistently
(``deletedRecord=persistent``); the same study released again is live again.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import threading
from dataclasses import dataclass
from typing import Any, Iterable

from lxml import etree

from catalog import identifiers
from catalog.search_index import StudyDocument
from catalog.state_db import StateDB
from catalog.study_metadata import StudyMetadata
from catalog.views import PUBLIC

#: the three set hierarchies: setSpec of the parent, its name, the StudyDocument field its subsets come from
SET_KINDS = (
    ("source", "Source archive", "source"),
    ("organism", "Organism", "organisms"),
    ("method", "Imaging method", "imaging_methods"),
)
OAI_DC = "http://www.openarchives.org/OAI/2.0/oai_dc/"
DC = "http://purl.org/dc/elements/1.1/"
_XSI = "http://www.w3.org/2001/XMLSchema-instance"


@dataclass(frozen=True)
class OaiItem:
    """One OAI-PMH record's header: the study, when it changed (seconds since the epoch), its sets, deleted or not."""

    accession: str
    datestamp: float
    sets: tuple[str, ...]
    deleted: bool = False


def slug(value: str) -> str:
    """A setSpec part for a value (letters, digits and ``-`` only)."""
    return re.sub(r"[^a-z0-9]+", "-", value.lower()).strip("-") or "unnamed"


def sets_of(doc: StudyDocument) -> dict[str, str]:
    """setSpec → set name of the leaf sets a study is in."""
    found: dict[str, str] = {}
    for spec, _name, attribute in SET_KINDS:
        value = getattr(doc, attribute)
        for item in [value] if isinstance(value, str) else value or []:
            found.setdefault(f"{spec}:{slug(item)}", item)
    return found


def utc_seconds(stamp: float) -> str:
    return dt.datetime.fromtimestamp(int(stamp), dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _day_start(day: str | None) -> float:
    try:
        return dt.datetime.strptime((day or "")[:10], "%Y-%m-%d").replace(tzinfo=dt.timezone.utc).timestamp()
    except ValueError:
        return 0.0


def record_withdrawal(db: StateDB, doc: StudyDocument, when: float) -> None:
    """Remember that a released study was withdrawn (its sets as they were), for its deleted record."""
    with db.transaction(write=True) as conn:
        conn.execute(
            "INSERT INTO withdrawn_studies (accession, withdrawn, sets) VALUES (?, ?, ?) ON CONFLICT(accession)"
            " DO UPDATE SET withdrawn = excluded.withdrawn, sets = excluded.sets",
            (doc.accession, when, json.dumps(sets_of(doc))),
        )


class OaiCatalog:
    """The items and sets of one catalog's public view, read from the state database and kept until it changes."""

    def __init__(self, db: StateDB, base_url: str) -> None:
        self.db = db
        self.base_url = base_url
        self._lock = threading.Lock()
        self._cached: tuple[Any, list[OaiItem], dict[str, str]] | None = None

    def _version(self) -> tuple:
        with self.db.transaction() as conn:
            return tuple(
                conn.execute(
                    "SELECT (SELECT MAX(seq) FROM search_docs WHERE view = ?), (SELECT MAX(changed) FROM records"
                    " WHERE view = ?), (SELECT COUNT(*) FROM records WHERE view = ?), (SELECT MAX(withdrawn) FROM"
                    " withdrawn_studies), (SELECT COUNT(*) FROM withdrawn_studies)",
                    (PUBLIC, PUBLIC, PUBLIC),
                ).fetchone()
            )

    def _load(self) -> tuple[list[OaiItem], dict[str, str]]:
        version = self._version()
        with self._lock:
            if self._cached is not None and self._cached[0] == version:
                return self._cached[1], self._cached[2]
        changed = {row[0]: float(row[1]) for row in self.db.stream("SELECT iri, changed FROM records WHERE view = ?", (PUBLIC,))}
        items: dict[str, OaiItem] = {}
        names: dict[str, str] = {}
        for accession, text in self.db.stream(
            "SELECT accession, doc FROM search_docs WHERE view = ? AND doc IS NOT NULL", (PUBLIC,)
        ):
            doc = StudyDocument(**json.loads(text))
            sets = sets_of(doc)
            names.update(sets)
            iri = identifiers.study_iri(self.base_url, accession)
            items[accession] = OaiItem(accession, changed.get(iri) or _day_start(doc.release_date), tuple(sorted(sets)))
        for accession, when, sets_text in self.db.stream("SELECT accession, withdrawn, sets FROM withdrawn_studies"):
            if accession not in items:
                sets = json.loads(sets_text)
                names.update(sets)
                items[accession] = OaiItem(accession, float(when), tuple(sorted(sets)), deleted=True)
        ordered = sorted(items.values(), key=lambda item: (int(item.datestamp), item.accession))
        with self._lock:
            self._cached = (version, ordered, names)
        return ordered, names

    def items(self) -> list[OaiItem]:
        """Every item, oldest datestamp first (then by accession)."""
        return self._load()[0]

    def item(self, accession: str) -> OaiItem | None:
        return next((item for item in self.items() if item.accession == accession), None)

    def sets(self) -> list[tuple[str, str]]:
        """(setSpec, setName) of every set: the three parents, then each leaf that holds an item."""
        leaves = self._load()[1]
        return [(spec, name) for spec, name, _ in SET_KINDS] + sorted(leaves.items())

    def earliest(self) -> float:
        items = self.items()
        return min((item.datestamp for item in items), default=0.0)


def in_set(item: OaiItem, spec: str) -> bool:
    """Whether an item is in a set (a parent set holds the items of its subsets)."""
    return any(s == spec or s.startswith(spec + ":") for s in item.sets)


def dublin_core(meta: StudyMetadata, landing_page: str) -> etree._Element:
    """A study as unqualified Dublin Core (``oai_dc``), from the same metadata as its DataCite record."""
    root = etree.Element(f"{{{OAI_DC}}}dc", nsmap={"oai_dc": OAI_DC, "dc": DC, "xsi": _XSI})
    root.set(f"{{{_XSI}}}schemaLocation", f"{OAI_DC} http://www.openarchives.org/OAI/2.0/oai_dc.xsd")

    def add(name: str, values: Iterable[str | None]) -> None:
        for value in values:
            if value:
                etree.SubElement(root, f"{{{DC}}}{name}").text = value

    add("title", [meta.title])
    add("creator", [c.name for c in meta.creators])
    add("subject", [t.label for t in meta.subjects] + meta.keywords)
    add("description", [meta.description])
    add("publisher", [meta.publisher])
    add("date", [meta.released])
    add("type", ["Dataset"])
    add("identifier", [landing_page, f"https://doi.org/{meta.doi}" if meta.doi else None, meta.accession])
    add("relation", [_relation_iri(r.identifier, r.kind) for r in meta.related])
    add("rights", [meta.licence])
    return root


def _relation_iri(identifier: str, kind: str) -> str:
    return {"DOI": f"https://doi.org/{identifier}", "PMID": f"https://identifiers.org/pubmed:{identifier}"}.get(kind, identifier)
