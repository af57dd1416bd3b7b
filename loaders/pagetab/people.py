"""People and what they published and were funded by: organisations, authors (with their affiliations),
publications and funding sections."""

from __future__ import annotations

import re
from typing import Any

from loaders.loaded import is_email, year
from loaders.pagetab.reading import Attr, accno, attrs
from loaders.pagetab.sections import AUTHOR_KEYS, FUNDER_KEYS, GRANT_KEYS, ORGANISATION_KEYS, PUBLICATION_KEYS
from loaders.pagetab.state import Conversion


def organisation(conv: Conversion, section: dict[str, Any]) -> None:
    """An organisation section: remembered by its accno, for the authors that refer to it."""
    number, where = accno(section), conv.where(section)
    found: dict[str, str] = {}
    for attr in attrs(section):
        if attr.value is None:
            if attr.key not in ORGANISATION_KEYS:
                conv.keep(conv.record, attr, where, prefix=f"Organisation {number}: ")
        elif attr.key == "name":
            found.setdefault("name", attr.value)
        elif attr.key in ORGANISATION_KEYS:
            found["ror" if attr.key.startswith("ror") else attr.key] = attr.value
        else:
            conv.keep(conv.record, attr, where, prefix=f"Organisation {found.get('name', number)}: ")
    if not found:
        return
    if number and found.get("name"):
        conv.organisations[number] = conv.organisation(
            found["name"], ror=found.get("ror"), address=found.get("address"), country=found.get("country"), where=f"{where}: "
        )
    else:
        conv.note(f"{where}: organisation without an accno or a name is not referenced by anyone")


def author(conv: Conversion, section: dict[str, Any]) -> None:
    """An author section (a published record's author without a name is named by their e-mail or affiliation)."""
    where = conv.where(section)
    number = conv.count("author")
    found: dict[str, Any] = {"roles": [], "affiliations": []}
    for attr in attrs(section):
        if attr.value is None:
            if attr.key not in AUTHOR_KEYS:
                conv.keep(conv.record, attr, where, prefix=f"Author {number}: ")
        elif attr.key == "name":
            found.setdefault("name", attr.value)
        elif attr.key in {"e mail", "email"}:
            found["email"] = attr.value
        elif attr.key in {"orcid", "orcid id"}:
            found["orcid"] = attr.value
        elif attr.key in {"role", "roles"}:
            found["roles"] += re.split(r"[,;]", attr.value)
        elif attr.key in {"affiliation", "affiliations", "organisation", "organization"}:
            found["affiliations"] += _affiliations(conv, attr, where)
        else:
            conv.keep(conv.record, attr, where, prefix=f"Author {number}: ")
    name = found.get("name") or _stand_in_name(conv, found, number, where)
    if name:
        conv.author(
            name,
            orcid=found.get("orcid"),
            email=found.get("email"),
            roles=found["roles"],
            affiliations=found["affiliations"],
            where=f"{where}: ",
            number=number,
        )


def _stand_in_name(conv: Conversion, found: dict[str, Any], number: int, where: str) -> str | None:
    """A published record's author without a name, named by what identifies them (their e-mail, else their
    affiliation); None (noted) in a deposit, or when nothing identifies them."""
    organisations = ", ".join(a["name"] for a in found["affiliations"])
    email = found.get("email") if is_email(found.get("email")) else None
    stand_in = email or (f"Unnamed author ({organisations})" if organisations else None)
    if conv.options.published and stand_in:
        conv.warn(f"{where}: author {number} has no name; named {stand_in!r} (the published record names none)")
        return stand_in
    conv.warn(f"{where}: author {number} has no name; left out")
    return None


def _affiliations(conv: Conversion, attr: Attr, where: str) -> list[dict[str, Any]]:
    """The organisations an affiliation names (by accno when it is a reference, else by name)."""
    names = [attr.value or ""] if not attr.reference else [p.strip() for p in re.split(r"[,;]", attr.value or "")]
    found = []
    for name in filter(None, names):
        org = conv.organisations.get(name)
        if org is None and attr.reference:
            conv.note(f"{where}: affiliation refers to {name!r}, which no organisation section has as accno")
        found.append(org or {"name": name})
    return found


def publication(conv: Conversion, section: dict[str, Any]) -> None:
    """A publication section (one known only by its PubMed id becomes a link to PubMed)."""
    where = conv.where(section)
    number = conv.count("publication")
    found: dict[str, Any] = {}
    for attr in attrs(section):
        if attr.value is None:
            if attr.key not in PUBLICATION_KEYS:
                conv.keep(conv.record, attr, where, prefix=f"Publication {number}: ")
        elif attr.key == "title":
            found.setdefault("title", attr.value)
        elif attr.key == "doi":
            found["doi"] = attr.value
        elif attr.key in {"authors", "author"}:
            found["authors"] = attr.value
        elif attr.key in {"pubmed id", "pmid", "pubmed"}:
            found["pubmed"] = attr.value
        elif attr.key == "year" and year(attr.value) and re.fullmatch(r"\s*\d{4}\s*", attr.value):
            found["year_"] = year(attr.value)
        else:
            conv.keep(conv.record, attr, where, prefix=f"Publication {number}: ")
    conv.publication(**found, where=f"{where}: ", number=number)


def funding(conv: Conversion, section: dict[str, Any]) -> None:
    """A funding section: the funder and the grant id."""
    where = conv.where(section)
    number = conv.count("funding")
    grant: dict[str, str] = {}
    for attr in attrs(section):
        if attr.value is None:
            if attr.key not in FUNDER_KEYS + GRANT_KEYS:
                conv.keep(conv.record, attr, where, prefix=f"Funding {number}: ")
        elif attr.key in FUNDER_KEYS + GRANT_KEYS:
            grant["funder" if attr.key in FUNDER_KEYS else "grant_id"] = attr.value
        else:
            conv.keep(conv.record, attr, where, prefix=f"Funding {number}: ")
    conv.add_funding(**grant)
