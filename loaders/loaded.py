"""What every loader returns, and the parts of a REMBI record every loader builds the same way.

:class:`LoadedRecord` is a loader's answer: the record (a dict shaped like ``schema/rembi.yaml``'s ``Study``),
the file lists it names (:class:`FileListRef`) and notes of what was not mapped or is doubtful. :class:`Draft`
builds a record's shared parts for every source: authors (ORCID iD and e-mail checked), affiliations (ROR
checked), publications (DOI and PubMed id read; one known only by its PubMed id becomes a link to it),
cross-references (one IRI per identifier, :mod:`catalog.external_ids`), funding, and the provenance.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from catalog import external_ids

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_URL = re.compile(r"^(?:https?|ftp)://[^\s<>\"{}|\\^`]+$", re.IGNORECASE)
#: The licence of a record its source published without one: the licence the BioImages templates propose. A
#: policy of this catalog (loaders note it on every record it is applied to), not a statement of the source.
DEFAULT_LICENCE = "CC0-1.0"
#: The relation a cross-reference to a kind gets when its source states none.
DEFAULT_RELATIONS = {"EMDB": "references_map", "PDB": "references_map"}


@dataclass(frozen=True)
class FileListRef:
    """A file list a record names: the component it belongs to (None for annotation lists), the name as
    written, the section's accno and type."""

    component: str | None
    file_list: str
    accno: str | None
    section_type: str
    #: when rows name their component in a column (RO-Crate's ``dataset``): the column and value → title
    component_column: str | None = None
    component_by_value: dict[str, str] | None = None


@dataclass
class LoadedRecord:
    """A REMBI study record read from a source, its file lists, notes of what was not mapped or is doubtful
    (``unmapped``) and, among them, the ``warnings``: what the source lacks or holds in doubt (an identifier that
    is not one, a licence or a name filled in, a quote that wraps nothing), for harvests to report."""

    record: dict[str, Any]
    file_lists: list[FileListRef] = field(default_factory=list)
    unmapped: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def provenance(
    source_resource: str,
    loader: str,
    loader_version: str,
    *,
    accession: str | None = None,
    source_url: str | None = None,
    harvested_at: str | None = None,
) -> dict[str, Any]:
    """A record's ``provenance``: where it came from and which loader made it (the unknown parts left out)."""
    found = {
        "source_resource": source_resource,
        "source_accession": accession,
        "source_url": source_url,
        "harvested_at": harvested_at,
        "loader": loader,
        "loader_version": loader_version,
    }
    return {k: v for k, v in found.items() if v}


def is_email(value: Any) -> bool:
    """Whether ``value`` looks like an e-mail address (one ``@``, a dot in the domain, no spaces)."""
    return isinstance(value, str) and bool(_EMAIL.match(value.strip()))


def year(value: Any) -> int | None:
    """A publication year (1600–2200) from a number or text starting with it (``2021``, ``2021-05-01``), or None."""
    match = re.match(r"^\s*(\d{4})(?:\b|-)", str(value or ""))
    return int(match.group(1)) if match and 1600 <= int(match.group(1)) <= 2200 else None


def cross_reference(kind: str, text: str, relation: str | None = None, label: str | None = None) -> dict[str, Any] | None:
    """A REMBI ``CrossReference`` to an identifier of ``kind`` (an :data:`catalog.external_ids.KINDS` name), its
    target the IRI the catalog stores for it; None if ``text`` is not such an identifier."""
    canonical = external_ids.accession(kind, text)
    if canonical is None:
        return None
    ref = {
        "target": external_ids.iri(kind, canonical),
        "target_accession": canonical,
        "resource": external_ids.KINDS[kind].resource,
        "relation": relation or DEFAULT_RELATIONS.get(kind, "related_to"),
    }
    if label:
        ref["label"] = label
    return ref


def link_reference(url: str, link_type: str | None = None, label: str | None = None) -> dict[str, Any] | None:
    """A ``CrossReference`` for a link: an identifier of a known resource (any URL of it, a CURIE, a DOI, or an
    accession read as ``link_type``), else a plain web URL (resource ``IDR`` for an IDR page, else ``Other``);
    None if it is neither."""
    found = external_ids.recognise(url, link_type)
    ref = cross_reference(*found) if found else None
    if ref is None and _URL.match(url):
        is_idr = "idr" in (link_type or "").casefold() or "idr.openmicroscopy.org" in url
        ref = {"target": url, "resource": "IDR" if is_idr else "Other", "relation": "related_to"}
    if ref is not None and label:
        ref["label"] = label
    return ref


class Draft:
    """A record being built, and the notes of what was left out or is doubtful, said once each."""

    def __init__(self, *, numbered_authors: bool = True) -> None:
        self.record: dict[str, Any] = {}
        self.notes: list[str] = []
        self.warnings: list[str] = []
        self.numbered_authors = numbered_authors

    def note(self, message: str) -> None:
        if message not in self.notes:
            self.notes.append(message)

    def warn(self, message: str) -> None:
        """A note of what the source lacks or holds in doubt (a warning of the harvest too)."""
        self.note(message)
        if message not in self.warnings:
            self.warnings.append(message)

    def loaded(self, file_lists: Iterable[FileListRef] = ()) -> LoadedRecord:
        return LoadedRecord(record=self.record, file_lists=list(file_lists), unmapped=self.notes, warnings=self.warnings)

    # ---- people

    def author(
        self,
        name: str,
        *,
        orcid: Any = None,
        email: Any = None,
        roles: Iterable[str] = (),
        affiliations: Iterable[dict[str, Any]] = (),
        where: str = "",
        number: int | None = None,
    ) -> dict[str, Any]:
        """Add an author (the ORCID iD and e-mail kept only if valid; noted otherwise, naming the author by
        ``number``, its place in the source); the author is returned."""
        position = len(self.record.get("authors", [])) + 1
        number = number or position
        author: dict[str, Any] = {"name": name}
        if self.numbered_authors:
            author["position"] = position
        if orcid:
            iri = external_ids.iri("ORCID", str(orcid))
            if iri:
                author["orcid"] = iri
            else:
                self.warn(f"{where}ORCID {orcid!r} of author {number} is not a valid ORCID iD; left out")
        if email:
            if is_email(email):
                author["email"] = str(email).strip()
            else:
                self.warn(f"{where}e-mail {email!r} of author {number} is not an e-mail address; left out")
        for role in roles:
            self.add_role(author, role)
        for affiliation in affiliations:
            if affiliation not in author.setdefault("affiliations", []):
                author["affiliations"].append(dict(affiliation))
        self.record.setdefault("authors", []).append(author)
        return author

    @staticmethod
    def add_role(author: dict[str, Any], role: str) -> None:
        if role.strip() and role.strip() not in author.setdefault("roles", []):
            author["roles"].append(role.strip())

    def organisation(
        self, name: str, *, ror: Any = None, address: Any = None, country: Any = None, where: str = ""
    ) -> dict[str, Any]:
        """An affiliation (its ROR id kept only if valid; noted otherwise)."""
        org: dict[str, Any] = {"name": name}
        if ror:
            iri = external_ids.iri("ROR", str(ror))
            if iri:
                org["ror"] = iri
            else:
                self.warn(f"{where}ROR {ror!r} is not a ROR id; left out")
        org.update({k: v for k, v in (("address", address), ("country", country)) if v})
        return org

    # ---- publications, links, funding

    def publication(
        self,
        title: Any = None,
        *,
        doi: Any = None,
        pubmed: Any = None,
        year_: Any = None,
        authors: Any = None,
        where: str = "",
        number: int | None = None,
    ) -> dict[str, Any] | None:
        """Add a publication: its DOI and PubMed id read (noted and left out when they are not one); without a
        title or a DOI it is a link to PubMed if it has a PubMed id, else left out (noted)."""
        number = number or len(self.record.get("publications", [])) + 1
        pub: dict[str, Any] = {"title": str(title).strip()} if title and str(title).strip() else {}
        if authors:
            pub["publication_authors"] = authors
        if year_ is not None:
            pub["year"] = year_
        for key, kind, value in (("doi", "DOI", doi), ("pubmed_id", "PubMed", pubmed)):
            if value:
                canonical = external_ids.accession(kind, str(value))
                if canonical:
                    pub[key] = canonical
                else:
                    self.warn(
                        f"{where}{'DOI' if kind == 'DOI' else 'PubMed ID'} {value!r} of publication {number} "
                        f"is not a {'DOI' if kind == 'DOI' else 'PubMed ID'}; left out"
                    )
        if pub.get("title") or pub.get("doi"):
            self.record.setdefault("publications", []).append(pub)
            return pub
        if pub.get("pubmed_id"):  # known by its PubMed id alone: a link to it (REMBI publications need a title or DOI)
            self.add_cross_reference(cross_reference("PubMed", pub["pubmed_id"], "supplements_publication"))
            self.note(f"{where}publication {number} has only a PubMed id; kept as a link to PubMed")
        elif pub:
            self.note(f"{where}publication {number} has neither a title nor a DOI; left out ({pub})")
        return None

    def add_cross_reference(self, ref: dict[str, Any] | None) -> None:
        """Add a cross-reference unless one to the same target is there."""
        if ref is None:
            return
        refs = self.record.setdefault("cross_references", [])
        if all(r["target"] != ref["target"] for r in refs):
            refs.append(ref)

    def add_funding(self, funder: Any = None, grant_id: Any = None, statement: Any = None) -> None:
        grant = {
            k: str(v).strip()
            for k, v in (("funder", funder), ("grant_id", grant_id), ("funding_statement", statement))
            if v and str(v).strip()
        }
        if grant:
            self.record.setdefault("funding", []).append(grant)
