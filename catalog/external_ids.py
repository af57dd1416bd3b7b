"""Identifiers of other resources: one table of kinds, one function per kind, one IRI policy.

(The catalog's own IRIs, for its studies and what they hold, are :mod:`catalog.identifiers`.)

Each kind of identifier has a *canonical spelling*, the form records and pages write (``10.6019/S-BIAD123``,
``0000-0002-1825-0097``, ``EMD-12602``, ``EMPIAR-10934``, ``idr0004``, ``1ABC``, ``NCBITaxon:9606``), read
from however it was written (bare, prefixed, as a CURIE, as any URL of the resource), and checked (pattern,
ORCID check digit, ROR checksum); the per-kind functions (:func:`doi`, :func:`orcid`, :func:`emdb`…) return it
or None.

The IRI policy (:func:`iri`), applied by every loader, the linker and the SPARQL examples:

* an identifier that has a persistent IRI of its own is stored as that IRI: DOIs (``https://doi.org/10…``),
  ORCID iDs (``https://orcid.org/…``), ROR ids (``https://ror.org/…``), UniProt entries
  (``http://purl.uniprot.org/uniprot/…``) and ontology terms (OBO PURLs; records write them as CURIEs,
  which the schema's prefixes expand to the same IRI);
* every other accession is stored as its identifiers.org IRI (``https://identifiers.org/emdb:EMD-12602``):
  one persistent IRI per record whoever wrote it and however (an EBI page, a bare accession, a link), which
  outlives changes to the resources' web pages. The schema's ``ResourceEnum`` names the same registry;
* pages show the resource's landing page (:func:`landing_page`), which may move without changing what is
  stored.

The accession patterns, the identifiers.org IRIs, the resources' own IRI formats and every URL form the
Bioregistry lists for them are read from ``external_ids.json`` beside this module, which
:mod:`catalog.external_ids_build` extracts from the Bioregistry (the pinned ``bioregistry`` package, whose data
ships in its wheel); a test checks the file against it. So nothing is fetched and no registry is loaded at run
time (the whole Bioregistry costs half a second and 140 MB per process). The table adds what the Bioregistry
does not say: the catalog's names for the kinds (``ResourceEnum`` values where the schema has them), the
canonical spelling, landing pages where the Bioregistry's are out of date, and how the identifiers look in free
text (:func:`mentions`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

#: The Bioregistry's data on the kinds' prefixes (made by :mod:`catalog.external_ids_build`).
REGISTRY_FILE = Path(__file__).with_name("external_ids.json")

# ----------------------------------------------------------------------------- one function per kind

_DOI_PREFIX = re.compile(r"^(?:(?:https?://)?(?:dx\.|www\.)?doi\.org/|urn:doi:|doi\s*:|doi\s+)", re.IGNORECASE)
_DOI = re.compile(r"^10\.\d{4,9}/\S+$")  # the schema's doi pattern (stricter than the Bioregistry's)


def doi(text: str) -> str | None:
    """``10.6019/S-BIAD123`` from a DOI written bare, with ``doi:``/``DOI`` or resolver prefixes, or with spaces."""
    value = _unwrap(text, "doi").strip()
    while True:
        stripped = _DOI_PREFIX.sub("", value).strip()
        if stripped == value:
            break
        value = stripped
    value = re.sub(r"\s+", "", value)
    return value if _DOI.match(value) else None


_PUBMED = re.compile(r"^(?:pmid|pubmed)?\s*:?\s*(\d+)/?$", re.IGNORECASE)


def pubmed(text: str) -> str | None:
    """The digits of a PubMed id written bare, as ``PMID: 123``, ``pubmed:123`` or a PubMed/Europe PMC URL."""
    return _spelled("PubMed", _PUBMED, _unwrap(text, "pubmed"), lambda digits: digits)


_ORCID = re.compile(
    r"^(?:(?:https?://)?(?:www\.)?orcid\.org/|orcid\s*:?\s*)?(\d{4})-?(\d{4})-?(\d{4})-?(\d{3}[\dX])$", re.IGNORECASE
)


def orcid_check_digit(digits: str) -> str:
    """The ISO 7064 11,2 check character of the first 15 digits of an ORCID iD."""
    total = 0
    for d in digits:
        total = (total + int(d)) * 2
    result = (12 - total % 11) % 11
    return "X" if result == 10 else str(result)


def orcid(text: str) -> str | None:
    """``0000-0002-1825-0097`` from an iD written bare, without hyphens or as a URL; None if its check digit fails."""
    match = _ORCID.match(_unwrap(text, "orcid").strip())
    if not match:
        return None
    body = "".join(match.groups()).upper()
    if orcid_check_digit(body[:15]) != body[15]:
        return None
    return "-".join((body[0:4], body[4:8], body[8:12], body[12:16]))


_ROR = re.compile(r"^(?:(?:https?://)?(?:www\.)?ror\.org/|ror\s*:?\s*)?(0[a-z0-9]{6}[0-9]{2})/?$", re.IGNORECASE)
_CROCKFORD = "0123456789abcdefghjkmnpqrstvwxyz"


def ror(text: str) -> str | None:
    """``02catss52`` from a ROR id written bare or as a URL; None if malformed or its checksum fails."""
    value = _spelled("ROR", _ROR, _unwrap(text, "ror"), str.lower)
    if value is None:
        return None
    number = 0
    for char in value[:7]:
        number = number * 32 + _CROCKFORD.index(char)
    return value if f"{98 - (number * 100) % 97:02d}" == value[7:] else None


_EMDB = re.compile(r"^(?:emdb\s*:\s*)?(?:EMD[-_ ]?)?(\d{4,5})$", re.IGNORECASE)


def emdb(text: str) -> str | None:
    """``EMD-12602`` from ``EMD-12602``, ``emd_12602``, ``12602``, ``emdb:EMD-12602`` or an EMDB page URL."""
    return _spelled("EMDB", _EMDB, _unwrap(text, "emdb"), lambda digits: f"EMD-{digits}")


_EMPIAR = re.compile(r"^(?:empiar\s*:\s*)?(?:EMPIAR[-_ ]?)?(\d{5,})$", re.IGNORECASE)


def empiar(text: str) -> str | None:
    """``EMPIAR-10934`` from ``EMPIAR-10934``, ``empiar-10934``, ``10934`` or an EMPIAR page URL."""
    return _spelled("EMPIAR", _EMPIAR, _unwrap(text, "empiar"), lambda digits: f"EMPIAR-{digits}")


_PDB = re.compile(r"^(?:pdb\s*[:_ ]\s*)?(?:pdb_0000)?([0-9][A-Za-z0-9]{3})$", re.IGNORECASE)


def pdb(text: str) -> str | None:
    """``1ABC`` (upper case, as the wwPDB writes them) from ``1abc``, ``PDB 1ABC``, ``pdb_00001abc`` or an entry URL."""
    return _spelled("PDB", _PDB, _unwrap(text, "pdb"), str.upper)


_IDR = re.compile(r"^(?:idr\s*:\s*)?(?:idr)?(\d{4})$", re.IGNORECASE)


def idr(text: str) -> str | None:
    """``idr0004`` from ``idr0004``, ``IDR0004``, ``0004`` (as identifiers.org writes it) or an IDR study URL."""
    return _spelled("IDR", _IDR, _unwrap(text, "idr"), lambda digits: f"idr{digits}")


_BIOSTUDIES = re.compile(r"^(?:biostudies\s*:\s*)?(S-[A-Z]{4}[-_A-Z\d]+)$", re.IGNORECASE)


def biostudies(text: str) -> str | None:
    """``S-BSST651`` (BioImage Archive studies too: ``S-BIAD590``) from an accession or a BioStudies URL."""
    return _spelled("BioStudies", _BIOSTUDIES, _unwrap(text, "biostudies"), str.upper)


_NCBITAXON = re.compile(r"^(?:NCBITaxon[_:](?:txid)?|NCBI:txid|txid|taxon:|taxonomy:|NCBI:)?\s*(\d+)$", re.IGNORECASE)


def ncbitaxon(text: str) -> str | None:
    """``NCBITaxon:9606`` from 9606, ``NCBI:txid9606``, ``NCBITaxon_9606``, ``taxonomy:9606`` or a PURL."""
    return _spelled("NCBITaxon", _NCBITAXON, _unwrap(text, "ncbitaxon"), lambda digits: f"NCBITaxon:{int(digits)}")


_FBBI = re.compile(r"^(?:FBbi[_:])?(\d{8})$", re.IGNORECASE)


def fbbi(text: str) -> str | None:
    """``FBbi:00000251`` from ``FBbi:00000251``, ``FBbi_00000251``, ``Fbbi_00000251`` or the term's PURL."""
    return _spelled("FBbi", _FBBI, _unwrap(text, "fbbi"), lambda digits: f"FBbi:{digits}")


_UNIPROT = re.compile(r"^(?:uniprot(?:kb)?\s*:\s*)?([A-Z0-9]{6,10})$", re.IGNORECASE)


def uniprot(text: str) -> str | None:
    """``P12345`` from an accession written in any case, as ``uniprot:P12345`` or as a UniProt URL."""
    return _spelled("UniProt", _UNIPROT, _unwrap(text, "uniprot"), str.upper)


_ENA = re.compile(r"^(?:ena(?:\.embl)?\s*:\s*)?([A-Z]+[0-9]+(?:\.\d+)?)$", re.IGNORECASE)


def ena(text: str) -> str | None:
    """``ERP116793`` from an ENA accession or an ENA browser URL."""
    return _spelled("ENA", _ENA, _unwrap(text, "ena.embl"), str.upper)


# ----------------------------------------------------------------------------- the table

IDENTIFIERS_ORG = "https://identifiers.org/"


@dataclass(frozen=True)
class Kind:
    """A kind of identifier: the catalog's name for it, its Bioregistry prefix, the ``ResourceEnum`` value of a
    cross-reference to it, its canonical spelling (the function), which IRI is stored, and how to read it."""

    name: str
    prefix: str
    resource: str
    spell: Callable[[str], str | None]
    stored: Literal["own", "identifiers.org"]
    #: the landing page, over the canonical spelling, where the Bioregistry's is out of date or missing
    page: str | None = None
    #: what the canonical spelling puts before the Bioregistry's local id (``EMPIAR-10934`` → ``10934``)
    banana: str = ""
    #: how the identifier is written inside a URL or a link (group 1: the identifier)
    in_url: re.Pattern[str] | None = None
    #: how the identifier is written in free text, where it is distinctive enough to be found there
    in_text: re.Pattern[str] | None = None

    def local(self, canonical: str) -> str:
        """The Bioregistry's local identifier of a canonical spelling."""
        return canonical[len(self.banana) :] if self.banana and canonical.startswith(self.banana) else canonical


KINDS: dict[str, Kind] = {
    kind.name: kind
    for kind in (
        Kind("DOI", "doi", "DOI", doi, "own"),
        Kind(
            "PubMed",
            "pubmed",
            "PubMed",
            pubmed,
            "identifiers.org",
            in_url=re.compile(
                r"(?:pubmed\.ncbi\.nlm\.nih\.gov/|ncbi\.nlm\.nih\.gov/pubmed/|europepmc\.org/(?:abstract|article)/MED/)(\d+)",
                re.IGNORECASE,
            ),
        ),
        Kind("ORCID", "orcid", "Other", orcid, "own"),
        Kind("ROR", "ror", "Other", ror, "own"),
        Kind(
            "EMPIAR",
            "empiar",
            "EMPIAR",
            empiar,
            "identifiers.org",
            page="https://www.ebi.ac.uk/empiar/{}",
            banana="EMPIAR-",
            in_url=re.compile(r"\b(EMPIAR-\d{5,})\b", re.IGNORECASE),
            in_text=re.compile(r"\b(EMPIAR-\d{5,})\b", re.IGNORECASE),
        ),
        Kind(
            "EMDB",
            "emdb",
            "EMDB",
            emdb,
            "identifiers.org",
            page="https://www.ebi.ac.uk/emdb/{}",
            in_url=re.compile(r"\b(EMD-\d{4,5})\b", re.IGNORECASE),
            in_text=re.compile(r"\b(EMD-\d{4,5})\b", re.IGNORECASE),
        ),
        Kind(
            "PDB",
            "pdb",
            "PDB",
            pdb,
            "identifiers.org",
            page="https://www.ebi.ac.uk/pdbe/entry/pdb/{lower}",
            in_url=re.compile(
                r"(?:rcsb\.org/structure|ebi\.ac\.uk/pdbe/entry/pdb|wwpdb\.org/pdb\?id=pdb_0000)/?([0-9][A-Za-z0-9]{3})\b",
                re.IGNORECASE,
            ),
            in_text=re.compile(r"\bPDB[:\s]+([0-9][A-Za-z0-9]{3})\b"),
        ),
        Kind(
            "BioImage Archive",
            "biostudies",
            "BioImage Archive",
            lambda text: _only(biostudies(text), "S-BIAD"),
            "identifiers.org",
            page="https://www.ebi.ac.uk/biostudies/bioimages/studies/{}",
            in_url=re.compile(r"\b(S-BIAD\d+)\b"),
            in_text=re.compile(r"\b(S-BIAD\d+)\b"),
        ),
        Kind(
            "BioStudies",
            "biostudies",
            "BioStudies",
            biostudies,
            "identifiers.org",
            in_url=re.compile(r"\b(S-[A-Z]{4}\d+)\b"),
            in_text=re.compile(r"\b(S-(?:BSST|EPMC|JCBD|SCDT)\d+)\b"),
        ),
        Kind(
            "IDR",
            "idr",
            "IDR",
            idr,
            "identifiers.org",
            banana="idr",
            in_url=re.compile(r"\b(idr\d{4})(?:-|\b)", re.IGNORECASE),
            in_text=re.compile(r"\b(idr\d{4})\b", re.IGNORECASE),
        ),
        Kind(
            "NCBITaxon",
            "ncbitaxon",
            "Other",
            ncbitaxon,
            "own",
            banana="NCBITaxon:",
            page="https://www.ncbi.nlm.nih.gov/Taxonomy/Browser/wwwtax.cgi?id={local}",
        ),
        Kind(
            "FBbi",
            "fbbi",
            "Other",
            fbbi,
            "own",
            banana="FBbi:",
            page="https://www.ebi.ac.uk/ols4/ontologies/fbbi/classes?obo_id={}",
        ),
        Kind("UniProt", "uniprot", "Other", uniprot, "own", page="https://www.uniprot.org/uniprotkb/{}/entry"),
        Kind("ENA", "ena.embl", "Other", ena, "identifiers.org"),
    )
}

#: Names a link's ``Type`` (or a field) gives a kind by, compared lower-cased without spaces, dots or dashes.
_HINTS = {
    "doi": "DOI",
    "pubmed": "PubMed",
    "pmid": "PubMed",
    "pubmedid": "PubMed",
    "orcid": "ORCID",
    "ror": "ROR",
    "empiar": "EMPIAR",
    "emdb": "EMDB",
    "pdb": "PDB",
    "pdbe": "PDB",
    "idr": "IDR",
    "biostudies": "BioStudies",
    "bioimagearchive": "BioImage Archive",
    "ncbitaxon": "NCBITaxon",
    "fbbi": "FBbi",
    "uniprot": "UniProt",
    "ena": "ENA",
    "enaembl": "ENA",
}


def kind_named(name: str | None) -> Kind | None:
    """The kind a name (``EMDB``, ``PubMed ID``, ``ena embl``, a ``ResourceEnum`` value…) stands for, if any."""
    if not name:
        return None
    if name in KINDS:
        return KINDS[name]
    key = re.sub(r"[\s._\-]+", "", name.casefold())
    return KINDS.get(_HINTS.get(key) or _HINTS.get(key.removesuffix("id"), ""))


# ----------------------------------------------------------------------------- spelling, IRIs, pages


def accession(kind: str, text: Any) -> str | None:
    """The canonical spelling of ``text`` as an identifier of ``kind`` (a :data:`KINDS` name), or None."""
    if not isinstance(text, str) or not text.strip():
        return None
    return KINDS[kind].spell(text.strip())


def iri(kind: str, text: Any) -> str | None:
    """The IRI the catalog stores for an identifier of ``kind`` (see the policy above), or None if it is not one."""
    canonical = accession(kind, text)
    if canonical is None:
        return None
    entry = KINDS[kind]
    stored = registry(entry.prefix)["provider_iri" if entry.stored == "own" else "identifiers_org_iri"]
    return str(stored).replace("$1", entry.local(canonical))


def landing_page(kind: str, text: Any, *, as_written: bool = False) -> str | None:
    """The resource's web page for an identifier of ``kind`` (what pages link to), or None if it is not one;
    ``as_written``: the page of the text as written when it is not (a test entry's own accession)."""
    canonical = accession(kind, text) or (str(text).strip() if as_written and text else None)
    if canonical is None:
        return None
    entry = KINDS[kind]
    if entry.page:
        return entry.page.format(canonical, local=entry.local(canonical), lower=canonical.lower())
    return str(registry(entry.prefix)["provider_iri"]).replace("$1", entry.local(canonical))


def identifiers_org_namespace(kind: str) -> str:
    """What the stored IRIs of a kind stored as identifiers.org IRIs start with (``https://identifiers.org/emdb:``),
    for queries."""
    return f"{IDENTIFIERS_ORG}{KINDS[kind].prefix}:"


def pattern(kind: str) -> re.Pattern[str]:
    """The Bioregistry's pattern of the kind's local identifiers."""
    return _pattern(KINDS[kind].prefix)


def recognise(text: Any, hint: str | None = None) -> tuple[str, str] | None:
    """(kind, canonical spelling) of the identifier a link names: a URL or IRI of a known resource, a CURIE, a DOI,
    or an accession, read as ``hint`` (a kind's name or a link type such as ``PubMed ID``) first; else None."""
    if not isinstance(text, str) or not text.strip():
        return None
    text = text.strip()
    hinted = kind_named(hint)
    canonical = hinted.spell(text) if hinted else None
    if hinted and canonical:
        return hinted.name, canonical
    if "://" in text:
        found = _from_iri(text)
        if found:
            return found
    if "doi" in text.casefold() or text.startswith("10."):
        found_doi = doi(text)
        if found_doi:
            return "DOI", found_doi
    for entry in KINDS.values():
        match = entry.in_url.search(text) if entry.in_url else None
        canonical = entry.spell(match.group(1)) if match else None
        if canonical:
            return entry.name, canonical
    return None


def mentions(text: str) -> Iterator[tuple[str, str]]:
    """(kind, canonical spelling) of every distinctive identifier written in free text (descriptions, attributes)."""
    for entry in KINDS.values():
        if entry.in_text is None:
            continue
        for match in entry.in_text.finditer(text):
            canonical = entry.spell(match.group(1))
            if canonical:
                yield entry.name, canonical


# ----------------------------------------------------------------------------- helpers


def _only(canonical: str | None, start: str) -> str | None:
    return canonical if canonical and canonical.startswith(start) else None


def _spelled(kind: str, read: re.Pattern[str], text: str, spell: Callable[[str], str]) -> str | None:
    """The canonical spelling of what ``read`` finds in ``text`` (group 1), if it fits the Bioregistry's pattern."""
    match = read.match(text.strip())
    if not match:
        return None
    canonical = spell(match.group(1))
    return canonical if pattern(kind).match(KINDS[kind].local(canonical)) else None


def _unwrap(text: str, prefix: str) -> str:
    """The local identifier in an IRI the Bioregistry knows for ``prefix`` (or in the kind's URL pattern); any other
    text unchanged."""
    if "://" not in text:
        return text
    parsed = _parse_iri(text.strip())
    if parsed and parsed[0] == prefix:
        return parsed[1].rstrip("/")
    for entry in KINDS.values():
        match = entry.in_url.search(text) if entry.prefix == prefix and entry.in_url else None
        if match:
            return match.group(1)
    return text


def _from_iri(text: str) -> tuple[str, str] | None:
    parsed = _parse_iri(text)
    if not parsed:
        return None
    prefix, local = parsed[0], parsed[1].rstrip("/")
    for entry in KINDS.values():
        if entry.prefix == prefix:
            canonical = entry.spell(local)
            if canonical:
                return entry.name, canonical
    return None


@lru_cache(maxsize=1)
def _registry() -> dict[str, dict[str, Any]]:
    return json.loads(REGISTRY_FILE.read_text(encoding="utf-8"))["prefixes"]


def registry(prefix: str) -> dict[str, Any]:
    """The Bioregistry's data on a prefix: ``pattern``, ``example``, ``provider_iri`` (the default provider's) and ``identifiers_org_iri`` (formats
    over ``$1``, the local id) and ``uri_formats`` (every URL form of its identifiers the Bioregistry lists)."""
    return _registry()[prefix]


@lru_cache(maxsize=None)
def _pattern(prefix: str) -> re.Pattern[str]:
    return re.compile(registry(prefix)["pattern"] or r"^\S+$")


@lru_cache(maxsize=1)
def _uri_forms() -> list[tuple[str, str, str]]:
    """(before ``$1``, after it, prefix) of the URL forms of every kind's identifiers, the longest start first."""
    forms = {
        (f.split("$1")[0], f.split("$1")[1], prefix)
        for prefix in {k.prefix for k in KINDS.values()}
        for f in registry(prefix)["uri_formats"]
        if f.count("$1") == 1
    }
    return sorted(forms, key=lambda form: (-len(form[0]), form))


@lru_cache(maxsize=4096)
def _parse_iri(text: str) -> tuple[str, str] | None:
    """(Bioregistry prefix, local id) of a URL in one of the forms the Bioregistry lists for a kind, or None."""
    for head, tail, prefix in _uri_forms():
        if text.startswith(head) and text.endswith(tail) and len(text) > len(head) + len(tail):
            return prefix, text[len(head) : len(text) - len(tail)]
    return None
