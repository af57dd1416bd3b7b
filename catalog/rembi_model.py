"""The REMBI model as the catalog uses it at run time, read from the generated RDF mapping.

``schema/generated/rembi.rdfmap.json`` (made by ``bia schema build`` from ``schema/rembi.yaml``) says, for
each class and slot, its IRI, whether values are literals (and of which datatype), IRIs, enum values (stored
as the IRI of their ``meaning``) or objects (inlined, or referenced by IRI). Loading LinkML itself takes
seconds, so nothing on a request path imports it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from catalog import resources
from catalog.schema_build import RDFMAP_NAME

REMBI = "https://w3id.org/rembi/"


@dataclass(frozen=True)
class SlotInfo:
    """How one slot of one class is written in RDF."""

    name: str
    uri: str
    kind: str  # literal | iri | enum | object
    multivalued: bool
    required: bool
    range: str | None = None
    datatype: str | None = None
    inlined: bool = False


@dataclass(frozen=True)
class ClassInfo:
    """A class: its IRI, identifier slot (None for value objects) and slots by name."""

    name: str
    uri: str
    identifier: str | None
    slots: dict[str, SlotInfo]


class RembiModel:
    """Classes, slots and enums of the model, with lookups in both directions."""

    def __init__(self, mapping: dict[str, Any]) -> None:
        self.version: str = mapping.get("version") or ""
        self.prefixes: dict[str, str] = mapping["prefixes"]
        self.classes: dict[str, ClassInfo] = {}
        for cname, cdef in mapping["classes"].items():
            slots = {
                sname: SlotInfo(
                    name=sname,
                    uri=sdef["uri"],
                    kind=sdef["kind"],
                    multivalued=sdef["multivalued"],
                    required=sdef["required"],
                    range=sdef.get("range"),
                    datatype=sdef.get("datatype"),
                    inlined=sdef.get("inlined", False),
                )
                for sname, sdef in cdef["slots"].items()
            }
            self.classes[cname] = ClassInfo(cname, cdef["uri"], cdef["identifier"], slots)
        self.enums: dict[str, dict[str, str]] = mapping["enums"]
        self._enum_names = {ename: {iri: name for name, iri in values.items()} for ename, values in self.enums.items()}
        self._words: dict[str, dict[str, str]] = {}  # a class's or slot's IRI → its title and description
        self._value_words: dict[str, dict[str, str]] = {}  # an enum value's IRI → its title and description
        for ename, values in mapping.get("enum_values", {}).items():
            for name, words in values.items():
                self._value_words.setdefault(self.enums[ename][name], words)
        for cname, cdef in sorted(mapping["classes"].items()):
            self._words.setdefault(cdef["uri"], {k: cdef[k] for k in ("title", "description") if k in cdef})
            for sdef in cdef["slots"].values():
                self._words.setdefault(sdef["uri"], {k: sdef[k] for k in ("title", "description") if k in sdef})

    def enum_iri(self, enum: str, value: str) -> str | None:
        """The IRI stored for a permissible value (by name, or already an IRI of the enum)."""
        values = self.enums[enum]
        if value in values:
            return values[value]
        return value if value in self._enum_names[enum] else None

    def enum_name(self, enum: str, iri: str) -> str | None:
        """The permissible value's name for a stored IRI."""
        return self._enum_names[enum].get(iri)

    def title(self, iri: str) -> str | None:
        """What pages call a class or a slot (by its RDF IRI): the schema's title."""
        return self._words.get(iri, {}).get("title")

    def description(self, iri: str) -> str | None:
        """The schema's description of a class or a slot, by its RDF IRI."""
        return self._words.get(iri, {}).get("description")

    def value_title(self, iri: str) -> str | None:
        """What pages call an enum value stored as ``iri`` (a licence's name, a relation in words)."""
        return self._value_words.get(iri, {}).get("title")

    def value_description(self, iri: str) -> str | None:
        """The schema's description of an enum value stored as ``iri``."""
        return self._value_words.get(iri, {}).get("description")

    def expand(self, curie_or_iri: str) -> str:
        """Expand a CURIE with the schema's prefixes; IRIs come back unchanged."""
        prefix, sep, local = curie_or_iri.partition(":")
        if sep and prefix in self.prefixes and not local.startswith("//"):
            return self.prefixes[prefix] + local
        return curie_or_iri


@lru_cache(maxsize=1)
def load_model() -> RembiModel:
    """The model from the generated mapping (cached for the process)."""
    path = resources.generated_folder() / RDFMAP_NAME
    return RembiModel(json.loads(path.read_text(encoding="utf-8")))
