"""Resolvable IRIs for identifiers of other resources, and recognising them in text.

One table says how each resource's identifiers look and where they resolve (the resources' own landing pages,
which is what users and crawlers follow). :func:`target_iri` normalises an identifier; :func:`mentions` finds
identifiers written in free text (descriptions, attributes).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterator


@dataclass(frozen=True)
class Scheme:
    resource: str  # a ResourceEnum value
    pattern: re.Pattern
    iri: str  # format string over the normalised identifier ``{id}``

    def normalise(self, text: str) -> str:
        return text.strip()


SCHEMES = [
    Scheme("EMPIAR", re.compile(r"\bEMPIAR-(\d{5,})\b", re.I), "https://www.ebi.ac.uk/empiar/EMPIAR-{id}"),
    Scheme("EMDB", re.compile(r"\bEMD-(\d{4,})\b", re.I), "https://www.ebi.ac.uk/emdb/EMD-{id}"),
    Scheme("IDR", re.compile(r"\b(idr\d{4})\b", re.I), "https://idr.openmicroscopy.org/search/?query=Name:{id}"),
    Scheme("BioImage Archive", re.compile(r"\b(S-BIAD\d+)\b"), "https://www.ebi.ac.uk/biostudies/bioimages/studies/{id}"),
    Scheme("BioStudies", re.compile(r"\b(S-(?:BSST|EPMC|JCBD|SCDT)\d+)\b"), "https://www.ebi.ac.uk/biostudies/studies/{id}"),
    Scheme("PDB", re.compile(r"\bPDB[:\s]+([0-9][A-Za-z0-9]{3})\b"), "https://www.ebi.ac.uk/pdbe/entry/pdb/{id}"),
]
_DOI = re.compile(r"^(?:https?://(?:dx\.)?doi\.org/|doi:\s*)?(10\.\d{4,9}/\S+)$", re.I)


def accession_key(resource: str, text: str) -> str:
    """The canonical spelling of an identifier (``EMPIAR-10934``, ``EMD-12602``, ``idr0004``, ``S-BIAD12``)."""
    if resource == "EMPIAR":
        return f"EMPIAR-{re.sub(r'(?i)^EMPIAR-', '', text)}"
    if resource == "EMDB":
        return f"EMD-{re.sub(r'(?i)^EMD-', '', text)}"
    if resource == "IDR":
        return text.lower()
    if resource == "PDB":
        return text.lower()
    return text


def target_iri(resource: str, identifier: str) -> str | None:
    """The resolvable IRI of ``identifier`` in ``resource`` (None if the resource has no scheme here)."""
    if resource == "DOI":
        match = _DOI.match(identifier.strip())
        return f"https://doi.org/{match.group(1)}" if match else None
    if resource == "PubMed":
        digits = re.sub(r"\D", "", identifier)
        return f"https://pubmed.ncbi.nlm.nih.gov/{digits}/" if digits else None
    for scheme in SCHEMES:
        if scheme.resource == resource:
            key = accession_key(resource, identifier.strip())
            bare = {"EMPIAR": key.removeprefix("EMPIAR-"), "EMDB": key.removeprefix("EMD-")}.get(resource, key)
            return scheme.iri.format(id=bare)
    return None


def mentions(text: str) -> Iterator[tuple[str, str]]:
    """(resource, canonical identifier) of every identifier written in ``text``."""
    for scheme in SCHEMES:
        for match in scheme.pattern.finditer(text):
            yield scheme.resource, accession_key(scheme.resource, match.group(0) if scheme.resource in ("EMPIAR", "EMDB") else match.group(1))
