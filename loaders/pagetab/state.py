"""One conversion of a PageTab submission: the record being built, what the sections named, and the notes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from loaders.loaded import DEFAULT_LICENCE, Draft, FileListRef
from loaders.pagetab.reading import Attr, accno, section_type
from loaders.pagetab.sections import OBJECT_SLOTS

#: A component as read: its record, the REMBI sections nested in it (legacy layout), its written associations.
Component = tuple[dict[str, Any], dict[str, list[str]], list[dict[str, list[str]]]]


@dataclass(frozen=True)
class Options:
    """How to read a submission.

    ``unresolved``: ``"report"`` keeps an association to a missing section so that validation names it;
    ``"drop"`` leaves it out with a note. ``default_license``: the licence of a submission that states none
    (None: leave it unset, for validation to report). ``published``: the record is one the source archive
    released, so what it lacks is filled where the archive's own display would (an author named by their
    e-mail, a required text taken from the title), each with a note; deposits are read as written.
    """

    unresolved: Literal["report", "drop"] = "report"
    default_license: str | None = DEFAULT_LICENCE
    published: bool = False


class Conversion(Draft):
    """The state of one conversion: the study record (``record``), REMBI objects by kind, the titles and
    organisations sections define, components with their associations as written, file lists and notes."""

    def __init__(self, doc: dict[str, Any], name: str, options: Options) -> None:
        super().__init__(numbered_authors=False)
        self.doc = doc
        self.name = name
        self.options = options
        self.file_lists: list[FileListRef] = []
        self.inline_paths: set[str] = set()
        self.objects: dict[str, list[dict[str, Any]]] = {kind: [] for kind in OBJECT_SLOTS}
        self.titles: dict[str, set[str]] = {kind: set() for kind in [*OBJECT_SLOTS, "component"]}
        self.organisations: dict[str, dict[str, Any]] = {}
        self.components: list[Component] = []
        self._counters: dict[str, int] = {}

    def count(self, kind: str) -> int:
        """The number of the next section of ``kind`` (authors, publications… are named by it in notes)."""
        self._counters[kind] = self._counters.get(kind, 0) + 1
        return self._counters[kind]

    @staticmethod
    def where(section: dict[str, Any]) -> str:
        number = accno(section)
        return f"{section_type(section)} section" + (f" {number!r}" if number else "")

    def keep(self, target: dict[str, Any], attr: Attr, where: str, prefix: str = "") -> None:
        """Keep an attribute as a generic name/value pair on ``target`` (a name alone if it has no value), noted."""
        name = f"{prefix}{attr.name}"
        attributes = target.setdefault("attributes", [])
        attributes.append({"name": name, "value": attr.value} if attr.value is not None else {"name": name})
        for qual_name, qual_value in attr.valqual + attr.nmqual:
            attributes.append({"name": f"{name} ({qual_name})", "value": qual_value})
        owner = "the study" if target is self.record else f"its {target.get('title', 'object')!r}"
        self.note(f"{where}: attribute {attr.name!r} kept as a generic attribute of {owner}")

    def unique_title(self, kind: str, title: str, section: dict[str, Any]) -> str:
        """``title``, renamed if a section of the same kind has it already (noted)."""
        if title in self.titles[kind]:
            renamed = f"{title} ({accno(section) or len(self.titles[kind]) + 1})"
            self.note(f"{self.where(section)}: a second {section_type(section)} titled {title!r}; renamed {renamed!r}")
            title = renamed
        self.titles[kind].add(title)
        return title

    def match_title(self, kind: str, name: str) -> str | None:
        """The title of a section of ``kind`` that ``name`` refers to (case and spacing aside), if any."""
        if name in self.titles[kind]:
            return name
        loose = {" ".join(t.casefold().split()): t for t in self.titles[kind]}
        return loose.get(" ".join(name.casefold().split()))
