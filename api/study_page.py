"""A study's record in the words of its science: what the study page shows of the JSON-LD tree.

Labels are the schema's titles (``schema/rembi.yaml`` → ``rembi.rdfmap.json``, read through
:class:`catalog.rembi_model.RembiModel`), enum values show their titles (a licence's name, a relation in words),
free-form attributes show as their name and value, an imaging method that is FBbi's generic root shows the
method as the depositor wrote it, and empty values are left out, so a section without content is not drawn.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from catalog.jsonld_tree import PREFIXES, VOCAB
from catalog.rembi_model import RembiModel
from catalog.study_summary import FBBI_GENERIC

ATTRIBUTES = "rembi:attributes"
IMAGING_METHOD = "rembi:imagingMethod"
#: attribute names under which a loader keeps the imaging method as written when no FBbi term matched
_AS_WRITTEN = {"imaging method", "imaging method (as written)"}
_CURIE = re.compile(r"^(?P<prefix>[A-Za-z][A-Za-z0-9_]*):(?P<local>[^/].*)$")


@dataclass
class Shown:
    """One value as a page shows it: its text, where it links to (if anywhere), and the fields of an inline node."""

    text: str
    href: str | None = None
    fields: list["Field"] = field(default_factory=list)
    note: str | None = None


@dataclass
class Field:
    """A labelled field of a node: the slot's title, its description (a tooltip) and its values."""

    label: str
    values: list[Shown]
    description: str | None = None


def expand(term: str) -> str:
    """A key or ``@id`` of the tree as a full IRI (bare keys are schema.org terms)."""
    match = _CURIE.match(term)
    if match and match.group("prefix") in PREFIXES:
        return PREFIXES[match.group("prefix")] + match.group("local")
    if ":" not in term:
        return VOCAB + term
    return term


def words(name: str) -> str:
    """A term without a title in words: ``thumbnailUrl`` → "Thumbnail url"."""
    spaced = re.sub(r"(?<=[a-z])(?=[A-Z])", " ", name.rsplit(":", 1)[-1]).replace("_", " ")
    return spaced[:1].upper() + spaced[1:].lower()


def as_list(value: Any) -> list[Any]:
    return [] if value is None else value if isinstance(value, list) else [value]


def paragraphs(text: Any) -> list[str]:
    """A description's paragraphs (split at blank lines; a literal ``\\n`` as some sources escape line breaks,
    e.g. IDR study files, counts as one)."""
    value = text.get("@value", "") if isinstance(text, dict) else str(text or "")
    value = value.replace("\\r\\n", "\n").replace("\\n", "\n").replace("\r\n", "\n")
    return [p.strip("\n") for p in re.split(r"\n\s*\n", value) if p.strip()]


class StudyPage:
    """The pieces of one study page, from its JSON-LD tree and the model's words."""

    def __init__(self, model: RembiModel, tree: dict[str, Any], titles: dict[str, str]) -> None:
        self.model, self.tree, self.titles = model, tree, titles

    def label(self, key: str) -> str:
        return self.model.title(expand(key)) or words(key)

    def licence(self) -> Shown | None:
        """The licence by its name, linked to its text."""
        licence = next(iter(as_list(self.tree.get("license") or self.tree.get("dcterms:license"))), None)
        if not isinstance(licence, dict) or "@id" not in licence:
            return None
        iri = expand(licence["@id"])
        return Shown(self.model.value_title(iri) or iri, iri, note=self.model.value_description(iri))

    def value(self, node: Any) -> Shown | None:
        """One value as shown; None when it is empty."""
        if isinstance(node, (str, int, float, bool)):
            text = str(node).strip()
            return Shown(text) if text else None
        if not isinstance(node, dict):
            return None
        if "@value" in node:
            return self.value(node["@value"])
        iri = expand(str(node.get("@id", "")))
        named = self.model.value_title(iri) or self.titles.get(node.get("@id", "")) or node.get("rdfs:label")
        href = iri if iri.startswith(("http://", "https://")) else None
        if named:
            return Shown(str(named), href)
        inner = self.fields(node)
        if inner:
            return Shown("", None, inner)
        return Shown(iri, href) if iri else None

    def fields(self, node: dict[str, Any], skip: tuple[str, ...] = ()) -> list[Field]:
        """The node's fields with values, labelled by the schema; its free-form attributes as name and value."""
        written = self._method_as_written(node)
        out = []
        for key, value in node.items():
            if key.startswith("@") or key in skip or key == ATTRIBUTES:
                continue
            if key == IMAGING_METHOD and written:
                shown = [Shown(written, note="as written: no FBbi term matched")]
                others = [v for v in as_list(value) if not (isinstance(v, dict) and expand(v.get("@id", "")) == FBBI_GENERIC)]
                shown += [s for s in map(self.value, others) if s]
            else:
                shown = [s for s in map(self.value, as_list(value)) if s]
            if shown:
                out.append(Field(self.label(key), shown, self.model.description(expand(key))))
        for attribute in as_list(node.get(ATTRIBUTES)):
            name, value = self._attribute(attribute)
            if name and value and not (written and name.lower() in _AS_WRITTEN):
                out.append(Field(name, [Shown(value)]))
        return out

    @staticmethod
    def _attribute(attribute: Any) -> tuple[str, str]:
        if not isinstance(attribute, dict):
            return "", ""
        value = attribute.get("value")
        value = value.get("@value") if isinstance(value, dict) else value
        name = str(attribute.get("name") or "").strip()
        if "_" in name and " " not in name:  # a source's field name (``pixel_width``): in words
            name = name.replace("_", " ").capitalize()
        return name, str(value or "").strip()

    def _method_as_written(self, node: dict[str, Any]) -> str | None:
        """The imaging method as written, when the node's only FBbi term is the generic root."""
        methods = [expand(m.get("@id", "")) for m in as_list(node.get(IMAGING_METHOD)) if isinstance(m, dict)]
        if FBBI_GENERIC not in methods:
            return None
        for attribute in as_list(node.get(ATTRIBUTES)):
            name, value = self._attribute(attribute)
            if name.lower() in _AS_WRITTEN and value:
                return value
        return None

    def relation(self, name: str | None) -> str:
        """A link's relation in words (its enum value's title)."""
        iri = self.model.enum_iri("RelationEnum", name or "") if name else None
        return (self.model.value_title(iri) if iri else None) or (name or "is related to").replace("_", " ")
